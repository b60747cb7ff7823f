import assert from "node:assert/strict";
import { decodeImageFile } from "../../src/io/image.ts";
import { quantize } from "../../src/io/quantize.ts";

const fixture = (name: string) => new URL(`../fixtures/io/${name}`, import.meta.url).pathname;

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

/** Mean absolute error (levels, over pixels and channels) of a quantization of `rgb`. */
function meanAbsoluteError(rgb: Uint8Array, q: { palette: Uint8Array; indices: Uint8Array }) {
  let sum = 0;
  for (let p = 0; p < q.indices.length; p++) {
    for (let c = 0; c < 3; c++) sum += Math.abs(q.palette[q.indices[p] * 3 + c] - rgb[p * 3 + c]);
  }
  return sum / rgb.length;
}

Deno.test("quantize() keeps images of at most 256 colours exactly", () => {
  const rgb = new Uint8Array(256 * 3).map((_, i) => (i % 3 === 0 ? Math.floor(i / 3) : 7));
  const { palette, indices } = quantize(rgb);
  assert.equal(palette.length, 256 * 3);
  for (let p = 0; p < 256; p++) {
    assert.deepEqual([...palette.subarray(indices[p] * 3, indices[p] * 3 + 3)], [p, 7, 7]);
  }
});

Deno.test("quantize() maps every pixel to an L1-nearest palette colour (exhaustive search)", () => {
  for (const size of [2, 32, 256]) {
    const rgb = field(6000, size);
    const { palette, indices } = quantize(rgb, size);
    assert.equal(palette.length, size * 3);
    const distance = (p: number, k: number) =>
      Math.abs(palette[k * 3] - rgb[p * 3]) + Math.abs(palette[k * 3 + 1] - rgb[p * 3 + 1]) +
      Math.abs(palette[k * 3 + 2] - rgb[p * 3 + 2]);
    for (let p = 0; p < indices.length; p++) {
      let best = Infinity;
      for (let k = 0; k < size; k++) best = Math.min(best, distance(p, k));
      assert.equal(distance(p, indices[p]), best, `palette of ${size}: pixel ${p}`);
    }
  }
});

Deno.test("quantize() k-medians rounds lower the L1 error of the variance cut", () => {
  const rgb = field(20000, 2);
  const cut = meanAbsoluteError(rgb, quantize(rgb, 64, 0));
  const refined = meanAbsoluteError(rgb, quantize(rgb, 64));
  assert.ok(refined < cut * 0.97, `variance cut ${cut}, refined ${refined}`);
});

Deno.test("quantize() keeps a colour that fills a sixth of the image exactly", () => {
  // A grid's padding: one colour on many pixels among thousands of others near it.
  const rgb = field(12000, 3);
  for (let p = 0; p < 12000; p += 6) rgb.set([3, 2, 250], p * 3);
  const { palette, indices } = quantize(rgb, 16);
  for (let p = 0; p < 12000; p += 6) {
    assert.deepEqual([...palette.subarray(indices[p] * 3, indices[p] * 3 + 3)], [3, 2, 250]);
  }
});

Deno.test("quantize() leaves no more error than PIL's quantizers on the same image", async () => {
  // quantize_field.png and PIL's errors on it come from make_quantize_fixtures.py.
  const { data: rgb } = await decodeImageFile(fixture("quantize_field.png")); // [96, 96, 3]
  const reference = JSON.parse(await Deno.readTextFile(fixture("quantize_pil.json"))).field;
  const ours = meanAbsoluteError(rgb, quantize(rgb, reference.colours));
  const pil = Object.entries(reference.pil as Record<string, number>);
  assert.ok(pil.length >= 4, "PIL reference values");
  for (const [method, error] of pil) {
    assert.ok(ours <= error, `ours ${ours.toFixed(3)} levels, PIL ${method} ${error.toFixed(3)}`);
  }
});

Deno.test("quantize() rejects data that is not RGB and bad palette sizes", () => {
  assert.throws(() => quantize(new Uint8Array(4)), /not RGB data/);
  assert.throws(() => quantize(new Uint8Array(3), 0), /palette size must be 1..256/);
  assert.throws(() => quantize(new Uint8Array(3), 257), /palette size must be 1..256/);
});
