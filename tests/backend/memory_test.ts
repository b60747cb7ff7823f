import assert from "node:assert/strict";
import type { Backend } from "../../src/backend/backend.ts";
import { BackendError } from "../../src/backend/backend.ts";
import { fitBatch, splitSizes } from "../../src/backend/memory.ts";
import { isWasmFault, wasmFaultDetail, WasmHeapFullError } from "../../src/backend/tfjs_memory.ts";
import { testEachBackend } from "../_backends.ts";

/** `b` with another memory limit (methods stay bound to the real backend). */
export function withLimit(b: Backend, limit: number | null): Backend {
  return new Proxy(b, {
    get(target, key) {
      if (key === "capabilities") return { ...target.capabilities, memoryLimitBytes: limit };
      const v = Reflect.get(target, key, target);
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
}

Deno.test("splitSizes makes the fewest near-equal parts of at most the size", () => {
  assert.deepEqual(splitSizes(32, 9), [8, 8, 8, 8]);
  assert.deepEqual(splitSizes(10, 4), [4, 3, 3]);
  assert.deepEqual(splitSizes(5, 5), [5]);
  assert.deepEqual(splitSizes(3, 1), [1, 1, 1]);
});

testEachBackend("peakBytes counts the tensors a call holds at once", (b) => {
  const peak = b.peakBytes(() => b.relu(b.zeros([1000, 1000])));
  if (b.capabilities.memoryLimitBytes === null) return; // declared unmeasured (NaN allowed)
  // zeros and relu's result: two 4 MB buffers live together.
  assert.ok(peak >= 8e6 && peak < 9e6, `peak ${peak}`);
}, { only: ["tfjs-wasm"] });

testEachBackend("fitBatch keeps a batch that fits and splits one that does not", (b) => {
  // 4 kB per item (the zeros and the relu of a row of 500 floats).
  const probe = (m: number) => b.relu(b.zeros([m, 500]));
  assert.equal(fitBatch(withLimit(b, null), 64, probe).size, 64);
  assert.equal(fitBatch(withLimit(b, 1e6), 64, probe).size, 64);
  const fit = fitBatch(withLimit(b, 40_000), 64, probe);
  assert.equal(fit.size, 10);
  assert.ok(Math.abs(fit.needBytes - 64 * 4000) < 1, `need ${fit.needBytes}`);
}, { only: ["tfjs-wasm"] });

Deno.test("a wasm abort or out-of-bounds becomes a BackendError that says what to do", () => {
  assert.ok(isWasmFault(new WebAssembly.RuntimeError("memory access out of bounds")));
  assert.ok(isWasmFault(new Error("Aborted(). Build with -sASSERTIONS for more info.")));
  assert.ok(isWasmFault(new WasmHeapFullError(2 ** 30, 3 * 2 ** 30)));
  assert.ok(!isWasmFault(new Error("shapes do not match")));
  const shapes = Array.from({ length: 120 }, (_, i) => [i + 1, 3]);
  const e = new BackendError(
    "valueAndGrad",
    shapes,
    wasmFaultDetail(new Error("Aborted()"), undefined),
  );
  assert.match(
    e.message,
    /^valueAndGrad\(\[1,3\], \[2,3\], \[3,3\], \.\.\. 116 more \.\.\., \[120,3\]\)/,
  );
  assert.match(e.message, /lower the batch size .* or use torch-cpu/);
  assert.ok(e.message.length < 600, e.message);
});
