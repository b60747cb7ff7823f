import assert from "node:assert/strict";
import { configHash, requireTorchForParallel, stripLauncherFlags } from "../../src/app/parallel.ts";

Deno.test("the launcher's flags are stripped from the ranks' command line", () => {
  assert.deepEqual(
    stripLauncherFlags(["--nproc", "4", "--model", "gan", "--master-port=29600", "--nproc=2"]),
    ["--model", "gan"],
  );
});

Deno.test("data parallelism on tfjs is refused with the torch backends named", () => {
  assert.throws(() => requireTorchForParallel("tfjs-wasm", 2), /torch-cpu.*torch-cuda/);
  requireTorchForParallel("tfjs-wasm", 1);
  requireTorchForParallel("torch-cpu", 4);
});

Deno.test("configHash is the same for equal configurations and differs otherwise", async () => {
  assert.equal(await configHash({ a: 1, b: [2] }), await configHash({ a: 1, b: [2] }));
  assert.notEqual(await configHash({ a: 1 }), await configHash({ a: 2 }));
});
