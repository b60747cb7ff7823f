/**
 * A seeded random-number generator that runs on the host, so that the same seed gives the
 * same noise, initial weights and data order on every backend, and its whole state fits in a
 * checkpoint's JSON.
 *
 * Generator: xoshiro128** (Blackman & Vigna 2018), seeded through splitmix32.
 * Normals: Box-Muller in float64, both outputs used.
 *
 * @module
 */

/** Serialisable state of an {@link Rng}. */
export interface RngState {
  /** The four 32-bit words of xoshiro128** state. */
  s: [number, number, number, number];
  /** The second Box-Muller output waiting to be used, or null. */
  spareNormal: number | null;
}

/**
 * Seeded generator of uniform, normal and integer samples.
 *
 * @example
 * ```ts
 * import { Rng } from "./rng.ts";
 * const rng = new Rng(42);
 * const noise = rng.normal(4); // Float32Array of 4 N(0, 1) samples
 * const state = rng.state();
 * const again = Rng.fromState(state).normal(4);
 * console.log(rng.normal(4).join() === again.join()); // true
 * ```
 */
export class Rng {
  #s: Uint32Array = new Uint32Array(4);
  #spare: number | null = null;

  /** A generator seeded from one number (expanded with splitmix32). */
  constructor(seed: number) {
    let x = (seed >>> 0) ^ 0x9e3779b9;
    for (let i = 0; i < 4; i++) {
      // splitmix32
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      this.#s[i] = (z ^ (z >>> 16)) >>> 0;
    }
    if ((this.#s[0] | this.#s[1] | this.#s[2] | this.#s[3]) === 0) this.#s[0] = 1;
  }

  /**
   * Restores a generator saved with {@link state}. Throws a RangeError for a state no
   * generator can be in: four words that are not 32-bit unsigned integers, the all-zero state
   * (xoshiro's fixed point: it would yield zeros forever), or a spare normal that is not a
   * finite number.
   */
  static fromState(state: RngState): Rng {
    const problem = rngStateProblem(state);
    if (problem) throw new RangeError(`invalid RNG state: ${problem}`);
    const rng = new Rng(0);
    rng.#s.set(state.s);
    rng.#spare = state.spareNormal;
    return rng;
  }

  /** A copy of the state, for checkpoints. */
  state(): RngState {
    const [a, b, c, d] = this.#s;
    return { s: [a, b, c, d], spareNormal: this.#spare };
  }

  /** A new generator seeded from this one (independent stream for a sub-task). */
  fork(): Rng {
    return new Rng(this.nextUint32());
  }

  /** Next 32 random bits. */
  nextUint32(): number {
    const s = this.#s;
    const result = Math.imul(rotl(Math.imul(s[1], 5) >>> 0, 7), 9) >>> 0;
    const t = (s[1] << 9) >>> 0;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  }

  /** Uniform in [0, 1) with 53 random bits. */
  uniform(): number {
    const hi = this.nextUint32() >>> 5; // 27 bits
    const lo = this.nextUint32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** One standard normal sample. */
  gaussian(): number {
    if (this.#spare !== null) {
      const v = this.#spare;
      this.#spare = null;
      return v;
    }
    // u = 0 has probability 2^-53 per draw from a valid state; the bound turns a broken
    // generator into an error instead of a hang.
    let u = this.uniform();
    for (let tries = 1; u <= 0; tries++) {
      if (tries >= MAX_ZERO_DRAWS) {
        throw new RangeError(`Rng drew 0 ${MAX_ZERO_DRAWS} times in a row: its state is broken`);
      }
      u = this.uniform();
    }
    const v = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u));
    this.#spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  /** `n` standard normal samples. */
  normal(n: number): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = this.gaussian();
    return out;
  }

  /** `n` samples uniform in [low, high). */
  uniformArray(n: number, low = 0, high = 1): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = low + (high - low) * this.uniform();
    return out;
  }

  /** An integer uniform in [low, high). */
  int(low: number, high: number): number {
    return low + Math.floor(this.uniform() * (high - low));
  }

  /** `n` integers uniform in [low, high). */
  intArray(n: number, low: number, high: number): Int32Array {
    const out = new Int32Array(n);
    for (let i = 0; i < n; i++) out[i] = this.int(low, high);
    return out;
  }

  /** A uniformly random permutation of 0..n-1 (Fisher-Yates). */
  permutation(n: number): Int32Array {
    const p = new Int32Array(n);
    for (let i = 0; i < n; i++) p[i] = i;
    for (let i = n - 1; i > 0; i--) {
      const j = this.int(0, i + 1);
      const tmp = p[i];
      p[i] = p[j];
      p[j] = tmp;
    }
    return p;
  }
}

/** Draws of exactly 0 in a row after which {@link Rng.gaussian} gives up (p = 2^-1696). */
const MAX_ZERO_DRAWS = 32;

/**
 * Why `state` cannot be an {@link Rng}'s state, or null when it can. For validating untrusted
 * JSON (checkpoints) before {@link Rng.fromState}.
 *
 * @example
 * ```ts
 * import { rngStateProblem } from "./rng.ts";
 * console.log(rngStateProblem({ s: [0, 0, 0, 0], spareNormal: null })); // s is all zero (...)
 * ```
 */
export function rngStateProblem(state: unknown): string | null {
  if (typeof state !== "object" || state === null) return "not an object";
  const { s, spareNormal } = state as Record<string, unknown>;
  if (!Array.isArray(s) || s.length !== 4) return "s must be an array of 4 integers";
  for (let i = 0; i < 4; i++) {
    const w = s[i];
    if (typeof w !== "number" || !Number.isInteger(w) || w < 0 || w > 0xffffffff) {
      return `s[${i}] must be an integer in 0..2^32-1, got ${JSON.stringify(w)}`;
    }
  }
  if (s.every((w) => w === 0)) {
    return "s is all zero (xoshiro's fixed point: the generator would yield zeros forever)";
  }
  if (spareNormal !== null && (typeof spareNormal !== "number" || !Number.isFinite(spareNormal))) {
    return `spareNormal must be null or a finite number, got ${JSON.stringify(spareNormal)}`;
  }
  return null;
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/**
 * Mixes integers into one 32-bit seed, so that each (seed, epoch, batch, purpose) gets its own
 * stream. The one seed-mixing hash of the project: data order, flips, training noise and
 * preview noise all derive their seeds here.
 *
 * @example
 * ```ts
 * import { deriveSeed, Rng } from "./rng.ts";
 * const epochRng = new Rng(deriveSeed(42, 3)); // same stream for (42, 3) on every run
 * console.log(deriveSeed(42, 3) === deriveSeed(42, 3), deriveSeed(42, 3) !== deriveSeed(42, 4)); // true true
 * ```
 */
export function deriveSeed(...parts: number[]): number {
  let h = 0x811c9dc5;
  for (const p of parts) {
    h = Math.imul(h ^ (p >>> 0), 0x01000193) >>> 0;
    h = Math.imul(h ^ (h >>> 15), 0x2c1b3c6d) >>> 0;
  }
  return h >>> 0;
}

/** The `deriveSeed` purpose word of per-image sampling noise ("imgs"). */
const IMAGE_NOISE = 0x696d6773;

/**
 * Where the images of one sampling run draw their noise: image `index` (counted from the run's
 * first image) has a generator of its own, so an image does not depend on the batch it was
 * drawn in, on how many images came before it in that call, or on whether the run was split
 * and resumed.
 */
export interface ImageNoise {
  /** A fresh generator for image `index`; every call with the same index gives the same stream. */
  stream(index: number): Rng;
}

/**
 * The per-image noise of a run with `seed`, starting at image `first` (a resumed or chunked run
 * passes the index of its first image). Each stream's whole 128-bit state is hashed from
 * (seed, index), so a million images never share a stream, as 32-bit seeds would (about 116
 * repeats in 10^6).
 *
 * @example
 * ```ts
 * import { imageNoise } from "./rng.ts";
 * const whole = imageNoise(7);
 * const tail = imageNoise(7, 100);
 * console.log(whole.stream(105).normal(3).join() === tail.stream(5).normal(3).join()); // true
 * ```
 */
export function imageNoise(seed: number, first = 0): ImageNoise & { seed: number; first: number } {
  if (!Number.isInteger(first) || first < 0) {
    throw new RangeError(`first image index must be a non-negative integer, got ${first}`);
  }
  return {
    seed,
    first,
    stream(index: number): Rng {
      const i = first + index;
      const s = [0, 1, 2, 3].map((k) => deriveSeed(seed, IMAGE_NOISE, i, k)) as [
        number,
        number,
        number,
        number,
      ];
      if ((s[0] | s[1] | s[2] | s[3]) === 0) s[0] = 1; // xoshiro's one forbidden state
      return Rng.fromState({ s, spareNormal: null });
    },
  };
}

/**
 * Per-image noise from a generator (one 32-bit key drawn from it) or the noise itself, so
 * samplers accept either.
 *
 * @example
 * ```ts
 * import { Rng, toImageNoise } from "./rng.ts";
 * const a = toImageNoise(new Rng(1)).stream(0).gaussian();
 * console.log(a === toImageNoise(new Rng(1)).stream(0).gaussian()); // true
 * ```
 */
export function toImageNoise(source: Rng | ImageNoise): ImageNoise {
  return source instanceof Rng ? imageNoise(source.nextUint32()) : source;
}

/**
 * `perImage` normal samples from each generator, image after image: [streams.length * perImage].
 *
 * @example
 * ```ts
 * import { imageNoise, normalRows } from "./rng.ts";
 * const noise = imageNoise(0);
 * const rows = normalRows([noise.stream(0), noise.stream(1)], 4); // Float32Array(8)
 * console.log(rows.length); // 8
 * ```
 */
export function normalRows(streams: readonly Rng[], perImage: number): Float32Array {
  const out = new Float32Array(streams.length * perImage);
  streams.forEach((rng, j) => out.set(rng.normal(perImage), j * perImage));
  return out;
}

/**
 * The noise of images `first`, `first + 1`, ... of `noise`, counted from 0 (a later chunk of
 * the same run).
 *
 * @example
 * ```ts
 * import { imageNoise, offsetNoise } from "./rng.ts";
 * const tail = offsetNoise(imageNoise(3), 10);
 * console.log(tail.stream(0).gaussian() === imageNoise(3).stream(10).gaussian()); // true
 * ```
 */
export function offsetNoise(noise: ImageNoise, first: number): ImageNoise {
  return { stream: (index: number) => noise.stream(first + index) };
}
