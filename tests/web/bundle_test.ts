import assert from "node:assert/strict";
import * as real from "../../src/backend/tfjs_worker.ts";
import * as stub from "../../src/web/browser/tfjs_worker_stub.ts";

Deno.test("the browser's conv-worker stub exports what the tfjs backend imports, with the same values", () => {
  assert.deepEqual(stub.CONV_OP, real.CONV_OP);
  const names = [
    "acquireConvWorker",
    "releaseConvWorker",
    "currentConvWorker",
    "initWasm",
    "wasmThreadsWanted",
  ] as const;
  for (const name of names) {
    assert.equal(typeof stub[name], typeof real[name], name);
  }
  assert.equal(stub.acquireConvWorker(), undefined);
  assert.equal(stub.currentConvWorker(), undefined);
});
