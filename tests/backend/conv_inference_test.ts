/**
 * Convolutions as FID's Inception and diffusion sampling run them, without gradients, checked
 * against a direct float64 convolution written out here, with and without the fused ReLU. On
 * torch-cpu each group has its own kernel in the shim: 1xk and kx1 (k = 3, 5, 7) the
 * one-dimensional Winograd F(4, k) or F(6, k) (native/kernels/winograd_line.cpp), 5x5 Winograd F(2x2, 5x5)
 * (native/kernels/winograd.cpp), 3x3 with 64 channels or more F(6x6, 3x3) (native/kernels/winograd_f6.cpp),
 * stride 2 and more the implicit matrix product of native/kernels/conv_direct.cpp.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { Backend, Tensor } from "../../src/backend/backend.ts";
import { Rng } from "../../src/core/rng.ts";
import { testEachBackend } from "../_backends.ts";

interface ConvCase {
  n: number;
  cin: number;
  cout: number;
  h: number;
  w: number;
  kh: number;
  kw: number;
  padding: [number, number];
  stride?: number;
  relu: boolean;
  /** Take x as channels 8..8+cin of a wider channels_last conv output (see channelSlice). */
  slice?: boolean;
}

/** relu?(conv(x, w) + b) by the definition, in float64: [N, Cout, Ho, Wo]. */
function directConv(c: ConvCase, x: Float32Array, w: Float32Array, b: Float32Array): Float64Array {
  const [ph, pw] = c.padding, s = c.stride ?? 1;
  const ho = Math.floor((c.h + 2 * ph - c.kh) / s) + 1;
  const wo = Math.floor((c.w + 2 * pw - c.kw) / s) + 1;
  const y = new Float64Array(c.n * c.cout * ho * wo);
  for (let n = 0; n < c.n; n++) {
    for (let co = 0; co < c.cout; co++) {
      for (let oy = 0; oy < ho; oy++) {
        for (let ox = 0; ox < wo; ox++) {
          let acc = b[co];
          for (let ci = 0; ci < c.cin; ci++) {
            for (let ky = 0; ky < c.kh; ky++) {
              const iy = oy * s + ky - ph;
              if (iy < 0 || iy >= c.h) continue;
              for (let kx = 0; kx < c.kw; kx++) {
                const ix = ox * s + kx - pw;
                if (ix < 0 || ix >= c.w) continue;
                acc += x[((n * c.cin + ci) * c.h + iy) * c.w + ix] *
                  w[((co * c.cin + ci) * c.kh + ky) * c.kw + kx];
              }
            }
          }
          y[((n * c.cout + co) * ho + oy) * wo + ox] = c.relu ? Math.max(acc, 0) : acc;
        }
      }
    }
  }
  return y;
}

/**
 * x [N, C, H, W] as channels 8..8+C of a [N, C + 16, H, W] tensor made by a 3x3 identity conv:
 * on torch-cpu that output is channels_last, so the slice is a view whose pixels lie C + 16
 * floats apart, the layout Inception's branches read from its stacked 1x1 heads.
 */
function channelSlice(backend: Backend, x: Float32Array, shape: number[]): Tensor {
  const [n, c, h, w] = shape, wide = c + 16;
  const padded = new Float32Array(n * wide * h * w);
  for (let i = 0; i < n; i++) {
    padded.set(x.subarray(i * c * h * w, (i + 1) * c * h * w), (i * wide + 8) * h * w);
  }
  const identity = new Float32Array(wide * wide * 9);
  for (let o = 0; o < wide; o++) identity[(o * wide + o) * 9 + 4] = 1;
  const y = backend.conv2d(
    backend.tensor(padded, [n, wide, h, w]),
    backend.tensor(identity, [wide, wide, 3, 3]),
    undefined,
    { padding: 1 },
  );
  return backend.slice(y, [0, 8, 0, 0], shape);
}

function check(backend: Backend, c: ConvCase, seed: number): void {
  const rng = new Rng(seed);
  let x = rng.normal(c.n * c.cin * c.h * c.w);
  const w = rng.normal(c.cout * c.cin * c.kh * c.kw).map((v) => v * 0.2);
  const b = rng.normal(c.cout);
  let actual = new Float32Array(0);
  backend.noGrad(() =>
    backend.scope(() => {
      const shape = [c.n, c.cin, c.h, c.w];
      const input = c.slice ? channelSlice(backend, x, shape) : backend.tensor(x, shape);
      x = Float32Array.from(backend.read(input)); // the identity conv rounds (~1e-7)
      const y = backend.conv2d(
        input,
        backend.tensor(w, [c.cout, c.cin, c.kh, c.kw]),
        backend.tensor(b, [c.cout]),
        { padding: c.padding, stride: c.stride, activation: c.relu ? "relu" : undefined },
      );
      actual = Float32Array.from(backend.read(y));
    })
  );
  const expected = directConv(c, x, w, b);
  assert.equal(actual.length, expected.length, `${JSON.stringify(c)}: length`);
  let scale = 0, worst = 0;
  for (let i = 0; i < expected.length; i++) {
    scale = Math.max(scale, Math.abs(expected[i]));
    worst = Math.max(worst, Math.abs(actual[i] - expected[i]));
  }
  // F(6, 7) interpolates at points from 1/4 to 4: float32 rounding stays near 1e-5 of the
  // output's magnitude (measured ~4e-5 at 192 channels); F(2x2, 5x5) ~4e-6.
  assert.ok(worst <= 1e-4 * scale, `${JSON.stringify(c)}: max difference ${worst} at ${scale}`);
}

// The shim tiles each line by 4 or 6 outputs, whichever takes fewer products, and computes the
// last output of a line of 4t + 1 (6t + 1) outputs directly: lengths 4..17 below cover F(4, k)
// and F(6, k) for k = 3, 5, 7, partial last tiles and direct last outputs (with and without
// padding under them).
const LINE_CASES: ConvCase[] = [
  { n: 2, cin: 16, cout: 24, h: 17, w: 3, kh: 7, kw: 1, padding: [3, 0], relu: true },
  { n: 1, cin: 8, cout: 8, h: 2, w: 13, kh: 1, kw: 5, padding: [0, 0], relu: false },
  { n: 1, cin: 8, cout: 8, h: 2, w: 13, kh: 1, kw: 5, padding: [0, 2], relu: true },
  { n: 1, cin: 8, cout: 16, h: 3, w: 5, kh: 1, kw: 7, padding: [0, 3], relu: false },
  { n: 1, cin: 8, cout: 16, h: 2, w: 8, kh: 1, kw: 7, padding: [0, 3], relu: true },
  { n: 2, cin: 8, cout: 8, h: 13, w: 3, kh: 7, kw: 1, padding: [3, 0], relu: false },
  { n: 2, cin: 16, cout: 8, h: 5, w: 11, kh: 1, kw: 7, padding: [0, 3], relu: true },
  { n: 1, cin: 8, cout: 24, h: 10, w: 3, kh: 7, kw: 1, padding: [3, 0], relu: false },
  { n: 2, cin: 24, cout: 16, h: 6, w: 9, kh: 1, kw: 3, padding: [0, 1], relu: true },
  { n: 1, cin: 8, cout: 8, h: 13, w: 4, kh: 3, kw: 1, padding: [1, 0], relu: false },
  { n: 1, cin: 16, cout: 16, h: 3, w: 12, kh: 1, kw: 5, padding: [0, 0], relu: false },
  { n: 3, cin: 8, cout: 16, h: 7, w: 2, kh: 5, kw: 1, padding: [4, 0], relu: true },
  { n: 2, cin: 16, cout: 8, h: 5, w: 9, kh: 1, kw: 7, padding: [0, 3], relu: true, slice: true },
  { n: 2, cin: 8, cout: 16, h: 9, w: 4, kh: 7, kw: 1, padding: [3, 0], relu: false, slice: true },
];

// Odd and even output sizes (partial 2x2 tiles), every padding 0..4, a 1x1 output.
const FIVE_BY_FIVE_CASES: ConvCase[] = [
  { n: 2, cin: 16, cout: 24, h: 9, w: 7, kh: 5, kw: 5, padding: [2, 2], relu: true },
  { n: 1, cin: 8, cout: 8, h: 7, w: 9, kh: 5, kw: 5, padding: [0, 0], relu: false },
  { n: 1, cin: 8, cout: 16, h: 6, w: 5, kh: 5, kw: 5, padding: [4, 1], relu: false },
  { n: 2, cin: 24, cout: 8, h: 5, w: 5, kh: 5, kw: 5, padding: [0, 3], relu: true },
  { n: 1, cin: 8, cout: 8, h: 5, w: 5, kh: 5, kw: 5, padding: [0, 0], relu: false },
  { n: 2, cin: 16, cout: 8, h: 7, w: 6, kh: 5, kw: 5, padding: [2, 2], relu: true, slice: true },
];

// Inception's 3x3 branches reading a slice of the heads (other 3x3 cases: conv3x3_test.ts), and
// 3x3 convolutions that torch-cpu runs as F(6x6, 3x3) (64 input channels or more, output sizes
// where 6x6 tiles take fewer products: 5-6, 9-12, 14-18): partial tiles in both directions,
// padding 0 to 2.
const THREE_BY_THREE_CASES: ConvCase[] = [
  { n: 2, cin: 16, cout: 24, h: 9, w: 7, kh: 3, kw: 3, padding: [1, 1], relu: true, slice: true },
  { n: 1, cin: 8, cout: 8, h: 6, w: 5, kh: 3, kw: 3, padding: [0, 0], relu: false, slice: true },
  { n: 2, cin: 64, cout: 16, h: 11, w: 9, kh: 3, kw: 3, padding: [1, 1], relu: true },
  { n: 1, cin: 64, cout: 8, h: 12, w: 8, kh: 3, kw: 3, padding: [0, 0], relu: false },
  { n: 1, cin: 72, cout: 24, h: 17, w: 17, kh: 3, kw: 3, padding: [2, 1], relu: true },
  { n: 2, cin: 64, cout: 8, h: 6, w: 5, kh: 3, kw: 3, padding: [1, 1], relu: false, slice: true },
];

// Inception's valid 3x3 stride-2 reductions, padded ones, stride 3, a 1x1, a 5x5 and the DCGAN
// discriminator's 4x4 kernels, and
// 3 input channels (which torch-cpu leaves to oneDNN).
const STRIDED_CASES: ConvCase[] = [
  { n: 2, cin: 16, cout: 24, h: 9, w: 9, kh: 3, kw: 3, padding: [0, 0], stride: 2, relu: true },
  { n: 1, cin: 8, cout: 40, h: 8, w: 11, kh: 3, kw: 3, padding: [1, 1], stride: 2, relu: false },
  { n: 2, cin: 24, cout: 8, h: 10, w: 7, kh: 5, kw: 5, padding: [2, 1], stride: 3, relu: true },
  { n: 1, cin: 16, cout: 16, h: 6, w: 6, kh: 1, kw: 1, padding: [0, 0], stride: 2, relu: false },
  { n: 2, cin: 16, cout: 8, h: 8, w: 8, kh: 4, kw: 4, padding: [1, 1], stride: 2, relu: false },
  { n: 1, cin: 8, cout: 8, h: 3, w: 3, kh: 3, kw: 3, padding: [0, 0], stride: 2, relu: false },
  { n: 2, cin: 3, cout: 8, h: 9, w: 8, kh: 3, kw: 3, padding: [0, 0], stride: 2, relu: true },
  {
    n: 1,
    cin: 16,
    cout: 16,
    h: 9,
    w: 9,
    kh: 3,
    kw: 3,
    padding: [0, 0],
    stride: 2,
    relu: true,
    slice: true,
  },
];

// The Backend contract promises square kernels only; torch runs rectangular ones natively
// (inception.ts probes for that and falls back to shifted 1x1 convs elsewhere).
testEachBackend(
  "conv2d 1xk and kx1 without gradients equals the direct definition",
  (b) => LINE_CASES.forEach((c, i) => check(b, c, 300 + i)),
  { only: ["torch-cuda", "torch-cpu"] },
);

testEachBackend(
  "conv2d 5x5 without gradients equals the direct definition",
  (b) => FIVE_BY_FIVE_CASES.forEach((c, i) => check(b, c, 400 + i)),
);

testEachBackend(
  "conv2d 3x3 without gradients (6x6 tiles, channel slices) equals the direct definition",
  (b) => THREE_BY_THREE_CASES.forEach((c, i) => check(b, c, 450 + i)),
);

testEachBackend(
  "conv2d with stride 2 and 3 without gradients equals the direct definition",
  (b) => STRIDED_CASES.forEach((c, i) => check(b, c, 500 + i)),
);
