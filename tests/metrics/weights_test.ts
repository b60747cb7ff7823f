import assert from "node:assert/strict";
import {
  cachedWeightsPath,
  FID_WEIGHTS_FILE,
  resolveInceptionWeights,
} from "../../src/metrics/weights.ts";
import { evalWithEnv } from "../_env.ts";

const dir = await Deno.makeTempDir({ prefix: "weights_test_" });
globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));

/** The help every "no weights" error carries: the file's name, where to get it, where to put it. */
function isFullHelp(e: Error): boolean {
  return e.message.includes(FID_WEIGHTS_FILE) &&
    e.message.includes("https://github.com/mseitzer/pytorch-fid/releases/download") &&
    e.message.includes(cachedWeightsPath()) && e.message.includes("--inception-weights") &&
    e.message.includes("DENO_DIFFUSION_INCEPTION");
}

/** The message resolveInceptionWeights() fails with when DENO_DIFFUSION_INCEPTION is `value`. */
async function failureWithEnv(value: string): Promise<Error> {
  // Read in a child: setting the variable here would change it for the test files beside.
  const r = await evalWithEnv(
    `import { resolveInceptionWeights } from "src/metrics/weights.ts";`,
    `resolveInceptionWeights({ download: false }).then(() => "resolved", (e) => e.message)`,
    { DENO_DIFFUSION_INCEPTION: value },
  );
  assert.equal(r.code, 0, r.stderr);
  return new Error(String(r.value));
}

Deno.test("a missing --inception-weights file gets the same help as no weights at all", async () => {
  await assert.rejects(
    resolveInceptionWeights({ path: `${dir}/nope.pth` }),
    (e: Error) =>
      /nope\.pth \(from --inception-weights\) does not exist/.test(e.message) &&
      isFullHelp(e),
  );
});

Deno.test("a folder given as the weights (flag or DENO_DIFFUSION_INCEPTION) gets the full help", async () => {
  await assert.rejects(
    resolveInceptionWeights({ path: dir }),
    (e: Error) => /\(from --inception-weights\) is a folder/.test(e.message) && isFullHelp(e),
  );
  const folder = await failureWithEnv(dir);
  assert.match(folder.message, /\(from DENO_DIFFUSION_INCEPTION\) is a folder/);
  assert.ok(isFullHelp(folder), folder.message);
  const absent = await failureWithEnv(`${dir}/absent.pth`);
  assert.match(absent.message, /absent\.pth \(from DENO_DIFFUSION_INCEPTION\) does not exist/);
  assert.ok(isFullHelp(absent), absent.message);
});
