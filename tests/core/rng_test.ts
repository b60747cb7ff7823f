import assert from "node:assert/strict";
import {
  deriveSeed,
  imageNoise,
  normalRows,
  offsetNoise,
  Rng,
  rngStateProblem,
  toImageNoise,
} from "../../src/core/rng.ts";

Deno.test("Rng gives the same stream for the same seed and resumes exactly from its state", () => {
  const a = new Rng(7);
  const b = new Rng(7);
  assert.deepEqual([...a.normal(5)], [...b.normal(5)]);
  const saved = a.state();
  const next = [...a.normal(3)];
  assert.deepEqual([...Rng.fromState(saved).normal(3)], next);
});

Deno.test("Rng.permutation() is a permutation of 0..n-1", () => {
  const p = [...new Rng(3).permutation(50)].sort((x, y) => x - y);
  assert.deepEqual(p, Array.from({ length: 50 }, (_, i) => i));
});

Deno.test("deriveSeed() is a pure 32-bit function that separates its parts and their order", () => {
  assert.equal(deriveSeed(42, 3), deriveSeed(42, 3));
  const seeds = new Set<number>();
  for (let e = 0; e < 100; e++) for (let i = 0; i < 10; i++) seeds.add(deriveSeed(42, e, i));
  assert.equal(seeds.size, 1000);
  assert.notEqual(deriveSeed(1, 2), deriveSeed(2, 1));
  for (const s of seeds) assert.ok(Number.isInteger(s) && s >= 0 && s < 2 ** 32);
});

Deno.test("Rng.fromState() rejects the all-zero state and words outside 32 bits", () => {
  assert.throws(
    () => Rng.fromState({ s: [0, 0, 0, 0], spareNormal: null }),
    /invalid RNG state: s is all zero/,
  );
  assert.throws(() => Rng.fromState({ s: [1, -1, 0, 0], spareNormal: null }), /s\[1\] must be/);
  assert.throws(() => Rng.fromState({ s: [1, 2 ** 32, 0, 0], spareNormal: null }), /s\[1\]/);
  assert.throws(
    () => Rng.fromState({ s: [1, 0, 0, 0], spareNormal: NaN }),
    /spareNormal must be null or a finite number/,
  );
  assert.equal(rngStateProblem({ s: [1, 0, 0, 0], spareNormal: 0.5 }), null);
});

Deno.test("Rng.gaussian() throws instead of spinning when its uniform draws are stuck at 0", () => {
  // A subclass whose generator is stuck at 0, as xoshiro is from the all-zero state.
  class Stuck extends Rng {
    override nextUint32(): number {
      return 0;
    }
  }
  assert.throws(() => new Stuck(1).gaussian(), /drew 0 32 times in a row/);
});

Deno.test("imageNoise() gives each image index its own stream, the same from any offset", () => {
  const noise = imageNoise(42);
  assert.deepEqual(noise.stream(7).normal(5), noise.stream(7).normal(5));
  assert.deepEqual(imageNoise(42, 5).stream(2).normal(5), noise.stream(7).normal(5));
  assert.deepEqual(offsetNoise(noise, 5).stream(2).normal(5), noise.stream(7).normal(5));
  assert.notDeepEqual(noise.stream(8).normal(5), noise.stream(7).normal(5));
  assert.notDeepEqual(imageNoise(43).stream(7).normal(5), noise.stream(7).normal(5));
  // 10^5 images: no two streams start alike (a 32-bit seed per image would repeat ~1 in 10^5).
  const firsts = new Set<string>();
  for (let i = 0; i < 100_000; i++) {
    const rng = noise.stream(i);
    firsts.add(`${rng.nextUint32()},${rng.nextUint32()}`);
  }
  assert.equal(firsts.size, 100_000);
  assert.throws(() => imageNoise(1, -1), /non-negative integer/);
});

Deno.test("toImageNoise() turns a generator into per-image noise keyed by one draw", () => {
  const a = toImageNoise(new Rng(3));
  const b = toImageNoise(new Rng(3));
  assert.deepEqual(a.stream(4).normal(3), b.stream(4).normal(3));
  const noise = imageNoise(9);
  assert.equal(toImageNoise(noise), noise);
  const rows = normalRows([noise.stream(0), noise.stream(1)], 3);
  assert.deepEqual(rows.subarray(3), imageNoise(9, 1).stream(0).normal(3));
});
