/**
 * Resizing images to the model's size as torchvision's `Resize(size)` + `CenterCrop(size)` do
 * on PIL images, bit for bit: the shorter side is scaled to `size` (the longer one to
 * `int(size * long / short)`), with PIL's BILINEAR filter, then the centre is cropped.
 *
 * PIL's BILINEAR is a separable triangle filter whose support widens with the downscale factor
 * (so it antialiases), weights normalised per output pixel and rounded to 22-bit fixed point;
 * it runs the horizontal pass first into an 8-bit image, then the vertical pass
 * (Pillow `libImaging/Resample.c`: `precompute_coeffs`, `normalize_coeffs_8bpc`,
 * `ImagingResampleHorizontal_8bpc`). This file follows those steps and nothing else, so the
 * result equals `Image.resize((w, h), Image.BILINEAR)`; `tests/fixtures/make_resize_fixtures.py`
 * checks it against Pillow.
 *
 * @module
 */

/** Fixed-point precision of Pillow's 8-bit resampling (32 - 8 - 2 bits). */
const PRECISION_BITS = 22;

/** Per output pixel: the first input index, the tap count and the fixed-point weights. */
interface Coefficients {
  first: Int32Array;
  taps: Int32Array;
  /** [outSize, ksize] */
  weights: Int32Array;
  ksize: number;
}

function triangle(x: number): number {
  const a = Math.abs(x);
  return a < 1 ? 1 - a : 0;
}

/** Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc` for a bilinear filter. */
function coefficients(inSize: number, outSize: number): Coefficients {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = 1 * filterScale;
  const ksize = Math.ceil(support) * 2 + 1;
  const first = new Int32Array(outSize);
  const taps = new Int32Array(outSize);
  const weights = new Int32Array(outSize * ksize);
  const w = new Float64Array(ksize);
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    // C's (int) cast truncates toward zero.
    const xmin = Math.max(0, Math.trunc(center - support + 0.5));
    const xmax = Math.min(inSize, Math.trunc(center + support + 0.5)) - xmin;
    let sum = 0;
    for (let x = 0; x < xmax; x++) {
      w[x] = triangle((x + xmin - center + 0.5) / filterScale);
      sum += w[x];
    }
    for (let x = 0; x < xmax; x++) {
      const v = sum !== 0 ? w[x] / sum : w[x];
      weights[xx * ksize + x] = Math.trunc(
        v < 0 ? -0.5 + v * (1 << PRECISION_BITS) : 0.5 + v * (1 << PRECISION_BITS),
      );
    }
    first[xx] = xmin;
    taps[xx] = xmax;
  }
  return { first, taps, weights, ksize };
}

function clip8(accumulator: number): number {
  const v = accumulator >> PRECISION_BITS;
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/**
 * Resizes one 8-bit plane `[h, w]` to `[outH, outW]` with Pillow's BILINEAR filter.
 *
 * @example
 * ```ts
 * import { resizePlane } from "./resize.ts";
 * const half = resizePlane(new Uint8Array(16).fill(200), 4, 4, 2, 2); // [2, 2]
 * console.log([...half]); // [200, 200, 200, 200]
 * ```
 */
export function resizePlane(
  plane: Uint8Array,
  h: number,
  w: number,
  outH: number,
  outW: number,
): Uint8Array {
  let src = plane;
  let width = w;
  if (outW !== w) {
    const c = coefficients(w, outW);
    const tmp = new Uint8Array(h * outW); // [h, outW]
    for (let y = 0; y < h; y++) {
      for (let xx = 0; xx < outW; xx++) {
        let acc = 1 << (PRECISION_BITS - 1);
        const base = y * w + c.first[xx];
        const k = xx * c.ksize;
        for (let x = 0; x < c.taps[xx]; x++) acc += src[base + x] * c.weights[k + x];
        tmp[y * outW + xx] = clip8(acc);
      }
    }
    src = tmp;
    width = outW;
  }
  if (outH === h) return src === plane ? plane.slice() : src;
  const c = coefficients(h, outH);
  const out = new Uint8Array(outH * width); // [outH, width]
  for (let yy = 0; yy < outH; yy++) {
    const k = yy * c.ksize;
    for (let x = 0; x < width; x++) {
      let acc = 1 << (PRECISION_BITS - 1);
      for (let y = 0; y < c.taps[yy]; y++) {
        acc += src[(c.first[yy] + y) * width + x] * c.weights[k + y];
      }
      out[yy * width + x] = clip8(acc);
    }
  }
  return out;
}

/** Python's round(): halves go to the even neighbour. */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * The size torchvision's `Resize(size)` gives an `h` x `w` image: the shorter side becomes
 * `size`, the longer `floor(size * long / short)`.
 *
 * @example
 * ```ts
 * import { resizedShape } from "./resize.ts";
 * console.log(resizedShape(48, 64, 32)); // [32, 42]
 * ```
 */
export function resizedShape(h: number, w: number, size: number): [number, number] {
  if (h <= w) return [size, Math.floor((size * w) / h)];
  return [Math.floor((size * h) / w), size];
}

/**
 * `Resize(size)` then `CenterCrop(size)` of one CHW uint8 image `[c, h, w]`; returns
 * `[c, size, size]`. An image already `size` x `size` is returned as a copy.
 *
 * @example
 * ```ts
 * import { resizeCenterCrop } from "./resize.ts";
 * const small = resizeCenterCrop(new Uint8Array(3 * 64 * 48), 3, 64, 48, 32); // [3, 32, 32]
 * console.log(small.length); // 3072
 * ```
 */
export function resizeCenterCrop(
  chw: Uint8Array,
  c: number,
  h: number,
  w: number,
  size: number,
): Uint8Array {
  if (!(Number.isInteger(size) && size > 0)) {
    throw new RangeError(`image size must be a positive integer, got ${size}`);
  }
  const [rh, rw] = resizedShape(h, w, size);
  // torchvision's center_crop: top = int(round((h - size) / 2.0)).
  const top = roundHalfEven((rh - size) / 2);
  const left = roundHalfEven((rw - size) / 2);
  const out = new Uint8Array(c * size * size);
  for (let ch = 0; ch < c; ch++) {
    const plane = chw.subarray(ch * h * w, (ch + 1) * h * w);
    const resized = rh === h && rw === w ? plane : resizePlane(plane, h, w, rh, rw);
    for (let y = 0; y < size; y++) {
      const from = (y + top) * rw + left;
      out.set(resized.subarray(from, from + size), ch * size * size + y * size);
    }
  }
  return out;
}
