/**
 * tfjs-wasm's Identity and Slice as replaced by src/backend/tfjs_wasm_kernels.ts: Slice
 * gives the element-by-element block of its input for every rank, offset and extent tried
 * (long runs, short runs, whole and empty axes); Identity shares its input's buffer and still
 * behaves as an independent immutable tensor (either can be disposed first, nothing leaks);
 * Transpose gives the element-by-element permutation whichever path it takes (wasm's own for
 * up to 4 axes, wasm's on merged axes, or the copy here); the added phase interleave puts every
 * value where its definition says.
 *
 * @module
 */
import assert from "node:assert/strict";
import * as tf from "npm:@tensorflow/tfjs@4.22.0";
import { createTfjsBackend } from "../../src/backend/tfjs.ts";
import {
  copyBlock,
  INTERLEAVE_PHASES,
  simplifyTranspose,
  transposeInto,
  transposeMatrices,
} from "../../src/backend/tfjs_wasm_kernels.ts";
import { Rng } from "../../src/core/rng.ts";

/** The block by the definition: out[i] = src[begin + index(i)], one element at a time. */
function referenceBlock(
  src: Float32Array,
  shape: number[],
  begin: number[],
  size: number[],
): Float32Array {
  const out = new Float32Array(size.reduce((a, d) => a * d, 1));
  for (let i = 0; i < out.length; i++) {
    let rest = i;
    let at = 0;
    let stride = 1;
    const offsets: number[] = [];
    for (let axis = size.length - 1; axis >= 0; axis--) {
      offsets[axis] = rest % size[axis];
      rest = Math.floor(rest / size[axis]);
    }
    for (let axis = shape.length - 1; axis >= 0; axis--) {
      at += (begin[axis] + offsets[axis]) * stride;
      stride *= shape[axis];
    }
    out[i] = src[at];
  }
  return out;
}

/**
 * Random slice cases of up to 100k elements: ranks `minRank`-6, with whole axes, single rows,
 * and short and long runs.
 */
function sliceCases(count: number, seed: number, minRank = 0) {
  const rng = new Rng(seed);
  const pick = (n: number) => Math.min(n - 1, Math.floor(rng.uniform() * n));
  const cases: { shape: number[]; begin: number[]; size: number[] }[] = [];
  while (cases.length < count) {
    const rank = minRank + pick(7 - minRank);
    const long = cases.length % 3 === 0; // some axes up to 70 long
    const shape = Array.from({ length: rank }, () => 1 + pick(long && pick(2) ? 70 : 6));
    if (shape.reduce((a, d) => a * d, 1) > 100_000) continue;
    const begin = shape.map((d) => pick(d));
    const size = shape.map((d, axis) => {
      const room = d - begin[axis];
      const mode = pick(3); // whole rest of the axis, one row, or anything that fits
      return mode === 0 ? room : mode === 1 ? 1 : 1 + pick(room);
    });
    cases.push({ shape, begin, size });
  }
  return cases;
}

Deno.test("copyBlock copies the same block as an element-by-element reference, ranks 0 to 6", () => {
  for (const { shape, begin, size } of sliceCases(400, 1)) {
    const src = Float32Array.from({ length: shape.reduce((a, d) => a * d, 1) }, (_, i) => i);
    const dst = new Float32Array(size.reduce((a, d) => a * d, 1)).fill(NaN);
    copyBlock(src, shape, begin, size, dst);
    assert.deepEqual(
      dst,
      referenceBlock(src, shape, begin, size),
      `shape [${shape}] begin [${begin}] size [${size}]`,
    );
  }
});

Deno.test("copyBlock of a whole tensor, of a leading-axis block and of an empty block", () => {
  const src = Float32Array.from({ length: 24 }, (_, i) => i); // [2, 3, 4]
  const whole = new Float32Array(24);
  copyBlock(src, [2, 3, 4], [0, 0, 0], [2, 3, 4], whole);
  assert.deepEqual(whole, src);
  const second = new Float32Array(12);
  copyBlock(src, [2, 3, 4], [1, 0, 0], [1, 3, 4], second);
  assert.deepEqual([...second], [...src.subarray(12)]);
  copyBlock(src, [2, 3, 4], [1, 0, 0], [0, 3, 4], new Float32Array(0)); // must not throw
});

Deno.test("on tfjs-wasm, Slice gives the reference block for float32 and int32 tensors", async () => {
  using _backend = await createTfjsBackend("wasm");
  assert.equal(tf.getBackend(), "wasm");
  for (const [k, { shape, begin, size }] of sliceCases(150, 2, 1).entries()) {
    const n = shape.reduce((a, d) => a * d, 1);
    const values = Float32Array.from({ length: n }, (_, i) => (i * 7919) % 1000 - 500);
    const dtype = k % 4 === 0 ? "int32" : "float32";
    const got = tf.tidy(() => tf.slice(tf.tensor(values, shape, dtype), begin, size).dataSync());
    assert.deepEqual(
      [...got],
      [...referenceBlock(values, shape, begin, size)],
      `${dtype} shape [${shape}] begin [${begin}] size [${size}]`,
    );
  }
});

Deno.test("on tfjs-wasm, a clone shares the buffer and outlives or predeceases its source", async () => {
  using _backend = await createTfjsBackend("wasm");
  const before = tf.memory().numBytes;
  const x = tf.tensor([1, 2, 3, 4], [2, 2]);
  const copy = tf.clone(x);
  assert.equal(copy.dataId, x.dataId, "the clone shares the buffer (no copy)");
  x.dispose();
  assert.deepEqual([...copy.dataSync()], [1, 2, 3, 4], "the clone survives its source");
  copy.dispose();
  assert.equal(tf.memory().numBytes, before, "both disposed: the buffer is freed");

  const y = tf.tensor([5, 6]);
  const early = tf.clone(y);
  early.dispose();
  assert.deepEqual([...y.dataSync()], [5, 6], "the source survives its clone");
  y.dispose();
  assert.equal(tf.memory().numBytes, before);
});

Deno.test("on tfjs-wasm, a clone of a variable keeps its values when the variable is assigned", async () => {
  using _backend = await createTfjsBackend("wasm");
  const v = tf.variable(tf.tensor([1, 2, 3]));
  const saved = tf.clone(v);
  v.assign(tf.tensor([7, 8, 9]));
  assert.deepEqual([...saved.dataSync()], [1, 2, 3]);
  assert.deepEqual([...v.dataSync()], [7, 8, 9]);
  saved.dispose();
  v.dispose();
});

Deno.test("on tfjs-wasm, string tensors still slice and clone (wasm's own kernels)", async () => {
  using _backend = await createTfjsBackend("wasm");
  const s = tf.tensor(["a", "b", "c", "d"], [2, 2]);
  const row = tf.slice(s, [1, 0], [1, 2]);
  const copy = tf.clone(s);
  assert.deepEqual(row.arraySync(), [["c", "d"]]);
  assert.deepEqual(copy.arraySync(), [["a", "b"], ["c", "d"]]);
  [s, row, copy].forEach((t) => t.dispose());
});

Deno.test("on tfjs-wasm, the phase interleave puts phase (a, b) at rows s*m + a, columns s*k + b", async () => {
  using _backend = await createTfjsBackend("wasm");
  for (
    const [s, n, mh, mw, c] of [[2, 2, 3, 4, 3], [2, 1, 2, 2, 64], [3, 2, 2, 3, 1], [
      2,
      3,
      1,
      5,
      33,
    ]]
  ) {
    const size = n * mh * mw * c;
    // Phase p holds p * 1e4 + its flat index: each output value names where it came from.
    const phases = Array.from(
      { length: s * s },
      (_, p) =>
        tf.tensor(Float32Array.from({ length: size }, (_, i) => p * 1e4 + i), [n, mh, mw, c]),
    );
    const out = tf.engine().runKernel(INTERLEAVE_PHASES, Object.fromEntries(phases.entries()), {
      s,
    }) as tf.Tensor;
    assert.deepEqual(out.shape, [n, mh * s, mw * s, c]);
    const got = out.dataSync();
    const want = new Float32Array(got.length);
    for (let i = 0; i < n; i++) {
      for (let y = 0; y < mh * s; y++) {
        for (let x = 0; x < mw * s; x++) {
          for (let ch = 0; ch < c; ch++) {
            const [m, a, k, b] = [Math.floor(y / s), y % s, Math.floor(x / s), x % s];
            want[((i * mh * s + y) * mw * s + x) * c + ch] = (a * s + b) * 1e4 +
              ((i * mh + m) * mw + k) * c + ch;
          }
        }
      }
    }
    assert.deepEqual(got, want, `s ${s}, phases [${n}, ${mh}, ${mw}, ${c}]`);
    [out, ...phases].forEach((t) => t.dispose());
  }
});

/** Element-wise equality that names the first difference (deepEqual is slow on 1M values). */
function assertSameValues(got: ArrayLike<number>, want: ArrayLike<number>, label: string): void {
  assert.equal(got.length, want.length, `${label}: length`);
  for (let i = 0; i < want.length; i++) {
    if (got[i] !== want[i]) assert.fail(`${label}: element ${i} is ${got[i]}, want ${want[i]}`);
  }
}

/** The transpose by the definition: out[index] = src[index permuted back], element by element. */
function referenceTranspose(src: ArrayLike<number>, shape: number[], perm: number[]): number[] {
  const outShape = perm.map((axis) => shape[axis]);
  const n = shape.reduce((a, d) => a * d, 1);
  const inStrides = shape.map((_, axis) => shape.slice(axis + 1).reduce((a, d) => a * d, 1));
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    let rest = i;
    let at = 0;
    for (let axis = outShape.length - 1; axis >= 0; axis--) {
      at += (rest % outShape[axis]) * inStrides[perm[axis]];
      rest = Math.floor(rest / outShape[axis]);
    }
    out[i] = src[at];
  }
  return out;
}

/** Random transposes of up to 60k elements, ranks 1-6, with axes of size 1 and kept neighbours. */
function transposeCases(count: number, seed: number) {
  const rng = new Rng(seed);
  const pick = (n: number) => Math.min(n - 1, Math.floor(rng.uniform() * n));
  const cases: { shape: number[]; perm: number[] }[] = [];
  while (cases.length < count) {
    const rank = 1 + pick(6);
    const shape = Array.from({ length: rank }, () => (pick(4) === 0 ? 1 : 1 + pick(9)));
    if (shape.reduce((a, d) => a * d, 1) > 60_000) continue;
    const perm = Array.from({ length: rank }, (_, i) => i);
    for (let i = rank - 1; i > 0; i--) { // shuffle, but sometimes keep the last axis innermost
      const j = pick(cases.length % 2 === 0 ? i : i + 1);
      [perm[i], perm[j]] = [perm[j], perm[i]];
    }
    cases.push({ shape, perm });
  }
  return cases;
}

Deno.test("transposeInto and simplifyTranspose move every element as the definition says", () => {
  for (const { shape, perm } of transposeCases(400, 3)) {
    const n = shape.reduce((a, d) => a * d, 1);
    const src = Float32Array.from({ length: n }, (_, i) => i);
    const want = referenceTranspose(src, shape, perm);
    const dst = new Float32Array(n).fill(NaN);
    transposeInto(src, shape, perm, dst);
    assert.deepEqual([...dst], want, `shape [${shape}] perm [${perm}]`);
    const simple = simplifyTranspose(shape, perm);
    assert.deepEqual(
      referenceTranspose(src, simple.shape, simple.perm),
      want,
      `simplified: shape [${simple.shape}] perm [${simple.perm}]`,
    );
  }
  assert.deepEqual(simplifyTranspose([128, 16, 16, 64], [1, 2, 0, 3]), {
    shape: [128, 256, 64],
    perm: [1, 0, 2],
  });
  assert.deepEqual(simplifyTranspose([1, 5, 1], [2, 1, 0]), { shape: [5], perm: [0] });
});

Deno.test("on tfjs-wasm, Transpose gives the definition's permutation on every path", async () => {
  using _backend = await createTfjsBackend("wasm");
  const cases = [
    ...transposeCases(200, 4),
    { shape: [3, 4, 2, 3, 5], perm: [2, 0, 3, 1, 4] }, // 5 axes, last innermost: copied here
    { shape: [3, 4, 2, 3, 5], perm: [4, 0, 3, 1, 2] }, // 5 axes, last moves: copied here
    { shape: [2, 3, 4, 5, 6], perm: [0, 1, 4, 2, 3] }, // merges to 3 axes: wasm's kernel
    { shape: [2, 1, 3, 1, 4, 5], perm: [5, 4, 3, 2, 1, 0] }, // 4 axes for wasm
    { shape: [2, 730, 720], perm: [0, 2, 1] }, // large matrices: tiled here
    { shape: [1, 880, 600], perm: [0, 2, 1] },
    { shape: [600, 880], perm: [1, 0] },
  ];
  for (const [k, { shape, perm }] of cases.entries()) {
    const n = shape.reduce((a, d) => a * d, 1);
    const values = Float32Array.from({ length: n }, (_, i) => (i * 7919) % 1000 - 500);
    const dtype = k % 3 === 0 ? "int32" : "float32";
    const [got, gotShape] = tf.tidy(() => {
      const y = tf.transpose(tf.tensor(values, shape, dtype), perm);
      return [y.dataSync(), y.shape];
    });
    const label = `${dtype} shape [${shape}] perm [${perm}]`;
    assert.deepEqual(gotShape, perm.map((axis) => shape[axis]), label);
    assertSameValues(got, referenceTranspose(values, shape, perm), label);
  }
});

Deno.test("transposeMatrices transposes each matrix, sides not multiples of the tile included", () => {
  for (const [count, rows, cols] of [[1, 1, 1], [3, 5, 7], [2, 33, 65], [1, 64, 31], [2, 100, 1]]) {
    const n = count * rows * cols;
    const src = Float32Array.from({ length: n }, (_, i) => i);
    const dst = new Float32Array(n).fill(NaN);
    transposeMatrices(src, count, rows, cols, dst);
    assert.deepEqual(
      [...dst],
      referenceTranspose(src, [count, rows, cols], [0, 2, 1]),
      `[${count}, ${rows}, ${cols}]`,
    );
  }
});
