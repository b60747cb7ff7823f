import assert from "node:assert/strict";
import { quantize } from "../../src/io/quantize.ts";

/** Seeded RGB data: smooth colour fields plus noise, `n` pixels. */
function field(n: number, seed: number): Uint8Array {
  let state = seed;
  const random = () => (state = (state * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  return new Uint8Array(n * 3).map((_, i) => {
    const p = Math.floor(i / 3);
    const base = [(p * 7) % 256, (p * 3) % 200, 255 - (p % 256)][i % 3];
    return Math.min(255, Math.max(0, Math.round(base + (random() - 0.5) * 40)));
  });
}

Deno.test("quantize() keeps images of at most 256 colours exactly", () => {
  const rgb = new Uint8Array(256 * 3).map((_, i) => (i % 3 === 0 ? Math.floor(i / 3) : 7));
  const { palette, indices } = quantize(rgb);
  assert.equal(palette.length, 256 * 3);
  for (let p = 0; p < 256; p++) {
    assert.deepEqual([...palette.subarray(indices[p] * 3, indices[p] * 3 + 3)], [p, 7, 7]);
  }
});

Deno.test("quantize() maps every pixel to its nearest palette colour", () => {
  const rgb = field(4000, 1);
  const { palette, indices } = quantize(rgb, 32);
  assert.equal(palette.length, 32 * 3);
  const distance = (p: number, k: number) =>
    (palette[k * 3] - rgb[p * 3]) ** 2 + (palette[k * 3 + 1] - rgb[p * 3 + 1]) ** 2 +
    (palette[k * 3 + 2] - rgb[p * 3 + 2]) ** 2;
  for (let p = 0; p < indices.length; p++) {
    let best = Infinity;
    for (let k = 0; k < 32; k++) best = Math.min(best, distance(p, k));
    assert.equal(distance(p, indices[p]), best, `pixel ${p}`);
  }
});

Deno.test("quantize() k-means rounds lower the error of the median cut", () => {
  const rgb = field(20000, 2);
  const error = (rounds: number) => {
    const { palette, indices } = quantize(rgb, 64, rounds);
    let sum = 0;
    for (let p = 0; p < indices.length; p++) {
      for (let c = 0; c < 3; c++) sum += (palette[indices[p] * 3 + c] - rgb[p * 3 + c]) ** 2;
    }
    return sum / rgb.length;
  };
  const cut = error(0);
  const refined = error(6);
  assert.ok(refined < cut * 0.99, `median cut ${cut}, refined ${refined}`);
});

Deno.test("quantize() rejects data that is not RGB and bad palette sizes", () => {
  assert.throws(() => quantize(new Uint8Array(4)), /not RGB data/);
  assert.throws(() => quantize(new Uint8Array(3), 0), /palette size must be 1..256/);
  assert.throws(() => quantize(new Uint8Array(3), 257), /palette size must be 1..256/);
});
