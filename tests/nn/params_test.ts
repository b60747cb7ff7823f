import assert from "node:assert/strict";
import { createBackend } from "../../src/backend/select.ts";
import { ParamStore } from "../../src/nn/params.ts";

Deno.test("a shape-only ParamStore records names, shapes and trainability and never computes values", () => {
  const store = ParamStore.shapeOnly();
  let computed = 0;
  const init = (n: number) => () => {
    computed++;
    return new Float32Array(n);
  };
  store.add("conv.weight", [8, 3, 3, 3], init(216));
  store.add("conv.bias", [8], init(8));
  store.add("bn.running_mean", [8], init(8), false);
  assert.equal(computed, 0);
  assert.ok(store.isShapeOnly);
  assert.deepEqual(store.names(), ["conv.weight", "conv.bias", "bn.running_mean"]);
  assert.deepEqual(store.trainableNames(), ["conv.weight", "conv.bias"]);
  assert.deepEqual(store.shape("conv.weight"), [8, 3, 3, 3]);
  assert.equal(store.count(), 216 + 8);
  assert.equal(store.countAll(), 216 + 8 + 8);
  assert.throws(() => store.add("conv.bias", [8], init(8)), /conv.bias is defined twice/);
});

Deno.test("a shape-only ParamStore refuses what needs tensors, saying it has none", () => {
  const store = ParamStore.shapeOnly();
  store.add("w", [2], new Float32Array(2));
  assert.throws(() => store.get("w"), /w: a shape-only ParamStore holds no tensors/);
  assert.throws(() => store.backend, /shape-only ParamStore has no backend/);
  assert.throws(() => store.toHost(), /shape-only/);
  store.dispose(); // nothing to free, and no error
});

Deno.test("a backed ParamStore computes lazy initial values once and counts like a shape-only one", async () => {
  const backend = await createBackend("tfjs-cpu");
  const store = new ParamStore(backend);
  const shapes = ParamStore.shapeOnly();
  try {
    let computed = 0;
    const init = () => {
      computed++;
      return Float32Array.from([1, 2, 3, 4, 5, 6]);
    };
    store.add("fc.weight", [2, 3], init);
    shapes.add("fc.weight", [2, 3], init);
    store.add("fc.bias", [2], new Float32Array(2), false);
    shapes.add("fc.bias", [2], new Float32Array(2), false);
    assert.equal(computed, 1);
    assert.deepEqual([...backend.read(store.get("fc.weight"))], [1, 2, 3, 4, 5, 6]);
    assert.deepEqual([store.count(), store.countAll()], [shapes.count(), shapes.countAll()]);
    assert.throws(
      () => store.add("x", [3], () => new Float32Array(2)),
      /parameter x: 2 values for shape \[3\]/,
    );
  } finally {
    store.dispose();
    backend.dispose();
  }
});
