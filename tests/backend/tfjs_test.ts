/**
 * TensorFlow.js-specific tests: the custom gradients (conv, transposed conv, matmul, gather,
 * pooling, resize, BCE) against plain float64 TypeScript references, the PyTorch semantics
 * tfjs does not give by itself, and two backends sharing tfjs's single engine.
 *
 * The references compute the forward pass and, for the loss L = sum(y * r) with a fixed random
 * r, the gradients by the adjoint of the same loops: dL/dx and dL/dw accumulate r * (the other
 * factor) exactly where y accumulates x * w.
 *
 * @module
 */
import assert from "node:assert/strict";
import { type Backend, BackendError, type Tensor } from "../../src/backend/backend.ts";
import { createTfjsBackend, type TfjsKind } from "../../src/backend/tfjs.ts";
import { Rng } from "../../src/backend/rng.ts";

const KINDS: readonly TfjsKind[] = ["wasm", "cpu"];

function eachKind(name: string, fn: (b: Backend) => void | Promise<void>): void {
  for (const kind of KINDS) {
    Deno.test({
      name: `${name} [tfjs-${kind}]`,
      sanitizeOps: false,
      sanitizeResources: false,
      async fn() {
        const b = await createTfjsBackend(kind);
        try {
          await fn(b);
        } finally {
          b.dispose();
        }
      },
    });
  }
}

function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tol = 1e-4,
  what = "",
): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  let worst = 0;
  let at = -1;
  for (let i = 0; i < actual.length; i++) {
    const err = Math.abs(actual[i] - expected[i]) / (1 + Math.abs(expected[i]));
    if (!(err <= worst)) [worst, at] = [err, i];
  }
  assert.ok(
    worst <= tol,
    `${what}: element ${at} is ${actual[at]}, expected ${expected[at]} (rel err ${worst})`,
  );
}

function randn(rng: Rng, n: number): Float64Array {
  return Float64Array.from(rng.normal(n));
}

/** Runs L = sum(op(inputs) * r) on the backend; returns y and dL/d(each input). */
function forwardAndGrads(
  b: Backend,
  inputs: { data: ArrayLike<number>; shape: number[] }[],
  op: (...xs: Tensor[]) => Tensor,
  r: ArrayLike<number>,
): { y: Float32Array; grads: Float32Array[] } {
  const vars = inputs.map((x) => b.variable(b.tensor(Float32Array.from(x.data), x.shape), true));
  const y = b.scope(() => op(...vars));
  const rT = b.tensor(Float32Array.from(r), y.shape);
  const { grads } = b.valueAndGrad(() => b.sum(b.mul(op(...vars), rT)), vars);
  const out = { y: b.read(y) as Float32Array, grads: grads.map((g) => b.read(g) as Float32Array) };
  [...vars, ...grads, y, rT].forEach((t) => t.dispose());
  return out;
}

// ---- plain TypeScript references (float64) ----

/** conv2d, x [N, Ci, H, W], w [Co, Ci, k, k]: y and the adjoints for r. */
function refConv2d(
  x: Float64Array,
  xs: number[],
  w: Float64Array,
  co: number,
  k: number,
  s: number,
  p: number,
  r?: Float64Array,
) {
  const [n, ci, h, wd] = xs;
  const ho = Math.floor((h + 2 * p - k) / s) + 1;
  const wo = Math.floor((wd + 2 * p - k) / s) + 1;
  const y = new Float64Array(n * co * ho * wo);
  const dx = new Float64Array(x.length);
  const dw = new Float64Array(w.length);
  for (let b = 0; b < n; b++) {
    for (let o = 0; o < co; o++) {
      for (let i = 0; i < ho; i++) {
        for (let j = 0; j < wo; j++) {
          const yi = ((b * co + o) * ho + i) * wo + j;
          for (let c = 0; c < ci; c++) {
            for (let a = 0; a < k; a++) {
              for (let e = 0; e < k; e++) {
                const hh = i * s - p + a;
                const ww = j * s - p + e;
                if (hh < 0 || hh >= h || ww < 0 || ww >= wd) continue;
                const xi = ((b * ci + c) * h + hh) * wd + ww;
                const wi = ((o * ci + c) * k + a) * k + e;
                y[yi] += x[xi] * w[wi];
                if (r) {
                  dx[xi] += r[yi] * w[wi];
                  dw[wi] += r[yi] * x[xi];
                }
              }
            }
          }
        }
      }
    }
  }
  return { y, dx, dw, shape: [n, co, ho, wo] };
}

/** convTranspose2d, x [N, Ci, H, W], w [Ci, Co, k, k] (scatter form of the definition). */
function refConvTranspose2d(
  x: Float64Array,
  xs: number[],
  w: Float64Array,
  co: number,
  k: number,
  s: number,
  p: number,
  op: number,
  r: Float64Array | undefined,
) {
  const [n, ci, h, wd] = xs;
  const ho = (h - 1) * s - 2 * p + k + op;
  const wo = (wd - 1) * s - 2 * p + k + op;
  const y = new Float64Array(n * co * ho * wo);
  const dx = new Float64Array(x.length);
  const dw = new Float64Array(w.length);
  for (let b = 0; b < n; b++) {
    for (let c = 0; c < ci; c++) {
      for (let i = 0; i < h; i++) {
        for (let j = 0; j < wd; j++) {
          const xi = ((b * ci + c) * h + i) * wd + j;
          for (let o = 0; o < co; o++) {
            for (let a = 0; a < k; a++) {
              for (let e = 0; e < k; e++) {
                const oh = i * s - p + a;
                const ow = j * s - p + e;
                if (oh < 0 || oh >= ho || ow < 0 || ow >= wo) continue;
                const yi = ((b * co + o) * ho + oh) * wo + ow;
                const wi = ((c * co + o) * k + a) * k + e;
                y[yi] += x[xi] * w[wi];
                if (r) {
                  dx[xi] += r[yi] * w[wi];
                  dw[wi] += r[yi] * x[xi];
                }
              }
            }
          }
        }
      }
    }
  }
  return { y, dx, dw, shape: [n, co, ho, wo] };
}

/** Pooling of x [P, H, W] planes; max ignores padding, avg divides by `count`. */
function refPool(
  x: Float64Array,
  planes: number,
  h: number,
  w: number,
  k: number,
  s: number,
  p: number,
  mode: "max" | "avgIncl" | "avgExcl",
  r: Float64Array | undefined,
) {
  const ho = Math.floor((h + 2 * p - k) / s) + 1;
  const wo = Math.floor((w + 2 * p - k) / s) + 1;
  const y = new Float64Array(planes * ho * wo);
  const dx = new Float64Array(x.length);
  for (let q = 0; q < planes; q++) {
    for (let i = 0; i < ho; i++) {
      for (let j = 0; j < wo; j++) {
        const cells: number[] = [];
        for (let a = 0; a < k; a++) {
          for (let e = 0; e < k; e++) {
            const hh = i * s - p + a;
            const ww = j * s - p + e;
            if (hh >= 0 && hh < h && ww >= 0 && ww < w) cells.push((q * h + hh) * w + ww);
          }
        }
        const yi = (q * ho + i) * wo + j;
        if (mode === "max") {
          let best = cells[0];
          for (const c of cells) if (x[c] > x[best]) best = c;
          y[yi] = x[best];
          if (r) dx[best] += r[yi];
        } else {
          const count = mode === "avgIncl" ? k * k : cells.length;
          for (const c of cells) {
            y[yi] += x[c] / count;
            if (r) dx[c] += r[yi] / count;
          }
        }
      }
    }
  }
  return { y, dx, shape: [ho, wo] };
}

/** PyTorch's upsample_bilinear2d source index and weights along one axis. */
function bilinearTaps(
  inSize: number,
  outSize: number,
  alignCorners: boolean,
): { i0: number; i1: number; l1: number }[] {
  const taps = [];
  for (let o = 0; o < outSize; o++) {
    let src: number;
    if (alignCorners) src = outSize > 1 ? (o * (inSize - 1)) / (outSize - 1) : 0;
    else src = Math.max(0, ((o + 0.5) * inSize) / outSize - 0.5);
    const i0 = Math.min(Math.floor(src), inSize - 1);
    const i1 = Math.min(i0 + 1, inSize - 1);
    taps.push({ i0, i1, l1: src - i0 });
  }
  return taps;
}

function refBilinear(
  x: Float64Array,
  planes: number,
  h: number,
  w: number,
  oh: number,
  ow: number,
  alignCorners: boolean,
  r: Float64Array | undefined,
) {
  const th = bilinearTaps(h, oh, alignCorners);
  const tw = bilinearTaps(w, ow, alignCorners);
  const y = new Float64Array(planes * oh * ow);
  const dx = new Float64Array(x.length);
  for (let q = 0; q < planes; q++) {
    for (let i = 0; i < oh; i++) {
      for (let j = 0; j < ow; j++) {
        const yi = (q * oh + i) * ow + j;
        const { i0, i1, l1 } = th[i];
        const { i0: j0, i1: j1, l1: m1 } = tw[j];
        const taps: [number, number][] = [
          [(q * h + i0) * w + j0, (1 - l1) * (1 - m1)],
          [(q * h + i0) * w + j1, (1 - l1) * m1],
          [(q * h + i1) * w + j0, l1 * (1 - m1)],
          [(q * h + i1) * w + j1, l1 * m1],
        ];
        for (const [xi, wt] of taps) {
          y[yi] += wt * x[xi];
          if (r) dx[xi] += wt * r[yi];
        }
      }
    }
  }
  return y.length ? { y, dx } : { y, dx };
}

/** erf by its Maclaurin series (float64-accurate for |x| < 4). */
function erf(x: number): number {
  let term = x;
  let sum = x;
  for (let n = 1; n < 200; n++) {
    term *= (-x * x) / n;
    sum += term / (2 * n + 1);
  }
  return (2 / Math.sqrt(Math.PI)) * sum;
}

// ---- loading ----

Deno.test("createTfjsBackend('wasm') loads the SIMD build of the wasm kernels", async () => {
  const b = await createTfjsBackend("wasm");
  try {
    assert.equal(b.name, "tfjs-wasm");
    assert.match(b.device, /SIMD/);
    assert.doesNotMatch(b.device, /no SIMD/);
    assert.equal(b.version, "4.22.0");
  } finally {
    b.dispose();
  }
});

// ---- convolutions ----

const CONV_CASES = [
  { n: 2, ci: 3, co: 4, h: 6, w: 5, k: 3, s: 1, p: 1 },
  { n: 2, ci: 2, co: 3, h: 7, w: 7, k: 3, s: 2, p: 1 },
  { n: 1, ci: 3, co: 2, h: 8, w: 6, k: 4, s: 2, p: 0 },
  { n: 1, ci: 2, co: 2, h: 5, w: 5, k: 1, s: 1, p: 0 },
  { n: 2, ci: 2, co: 3, h: 4, w: 4, k: 3, s: 1, p: 2 },
  { n: 1, ci: 2, co: 2, h: 9, w: 8, k: 3, s: 3, p: 1 },
];

eachKind("conv2d() forward and gradients equal the direct-loop definition", (b) => {
  const rng = new Rng(1);
  for (const c of CONV_CASES) {
    const xs = [c.n, c.ci, c.h, c.w];
    const x = randn(rng, c.n * c.ci * c.h * c.w);
    const w = randn(rng, c.co * c.ci * c.k * c.k);
    const shape = refConv2d(x, xs, w, c.co, c.k, c.s, c.p).shape;
    const r = randn(rng, shape.reduce((a, d) => a * d));
    const ref = refConv2d(x, xs, w, c.co, c.k, c.s, c.p, r);
    const got = forwardAndGrads(
      b,
      [{ data: x, shape: xs }, { data: w, shape: [c.co, c.ci, c.k, c.k] }],
      (xt, wt) => b.conv2d(xt, wt, undefined, { stride: c.s, padding: c.p }),
      r,
    );
    const what = JSON.stringify(c);
    assertClose(got.y, ref.y, 1e-4, `y ${what}`);
    assertClose(got.grads[0], ref.dx, 1e-4, `dx ${what}`);
    assertClose(got.grads[1], ref.dw, 1e-4, `dw ${what}`);
  }
});

eachKind("conv2d() adds the bias per output channel and its gradient sums r", (b) => {
  const x = b.zeros([2, 1, 3, 3]);
  const w = b.zeros([2, 1, 3, 3]);
  const bias = b.variable(b.tensor([1.5, -2], [2]), true);
  const y = b.read(b.conv2d(x, w, bias, { padding: 1 }));
  assert.deepEqual([...y.slice(0, 9)], Array(9).fill(1.5));
  assert.deepEqual([...y.slice(9, 18)], Array(9).fill(-2));
  const { grads } = b.valueAndGrad(() => b.sum(b.conv2d(x, w, bias, { padding: 1 })), [bias]);
  assert.deepEqual([...b.read(grads[0])], [18, 18]);
});

eachKind("convTranspose2d() matches its scatter definition with PyTorch weight layout", (b) => {
  const rng = new Rng(2);
  const cases = [
    { n: 2, ci: 3, co: 2, h: 4, w: 3, k: 4, s: 2, p: 1, op: 0 },
    { n: 1, ci: 2, co: 3, h: 3, w: 3, k: 3, s: 2, p: 1, op: 1 },
    { n: 2, ci: 2, co: 2, h: 1, w: 1, k: 4, s: 1, p: 0, op: 0 },
    { n: 1, ci: 2, co: 2, h: 3, w: 4, k: 3, s: 1, p: 1, op: 0 },
    { n: 1, ci: 1, co: 2, h: 3, w: 3, k: 3, s: 3, p: 2, op: 2 },
  ];
  for (const c of cases) {
    const xs = [c.n, c.ci, c.h, c.w];
    const x = randn(rng, c.n * c.ci * c.h * c.w);
    const w = randn(rng, c.ci * c.co * c.k * c.k);
    const shape = refConvTranspose2d(x, xs, w, c.co, c.k, c.s, c.p, c.op, undefined).shape;
    const r = randn(rng, shape.reduce((a, d) => a * d));
    const ref = refConvTranspose2d(x, xs, w, c.co, c.k, c.s, c.p, c.op, r);
    const got = forwardAndGrads(
      b,
      [{ data: x, shape: xs }, { data: w, shape: [c.ci, c.co, c.k, c.k] }],
      (xt, wt) =>
        b.convTranspose2d(xt, wt, undefined, { stride: c.s, padding: c.p, outputPadding: c.op }),
      r,
    );
    const what = JSON.stringify(c);
    assertClose(got.y, ref.y, 1e-4, `y ${what}`);
    assertClose(got.grads[0], ref.dx, 1e-4, `dx ${what}`);
    assertClose(got.grads[1], ref.dw, 1e-4, `dw ${what}`);
  }
});

// ---- pooling and resizing ----

const POOL_CASES = [
  { h: 6, w: 5, k: 3, s: 2, p: 1 },
  { h: 7, w: 7, k: 3, s: 1, p: 1 },
  { h: 8, w: 8, k: 2, s: 2, p: 0 },
  { h: 5, w: 6, k: 5, s: 2, p: 2 },
  { h: 4, w: 4, k: 3, s: 3, p: 0 },
];

eachKind("maxPool2d() ignores padding and routes each gradient to its window's max", (b) => {
  const rng = new Rng(3);
  for (const c of POOL_CASES) {
    const planes = 2 * 3;
    const x = randn(rng, planes * c.h * c.w).map((v) => v - 3); // all negative: pads must lose
    const shape = refPool(x, planes, c.h, c.w, c.k, c.s, c.p, "max", undefined).shape;
    const r = randn(rng, planes * shape[0] * shape[1]);
    const ref = refPool(x, planes, c.h, c.w, c.k, c.s, c.p, "max", r);
    const got = forwardAndGrads(
      b,
      [{ data: x, shape: [2, 3, c.h, c.w] }],
      (xt) => b.maxPool2d(xt, c.k, c.s, c.p),
      r,
    );
    assertClose(got.y, ref.y, 1e-6, `y ${JSON.stringify(c)}`);
    assertClose(got.grads[0], ref.dx, 1e-5, `dx ${JSON.stringify(c)}`);
  }
});

for (const countIncludePad of [false, true]) {
  eachKind(
    `avgPool2d(countIncludePad=${countIncludePad}) divides by the ${
      countIncludePad ? "full window" : "unpadded cells"
    }`,
    (b) => {
      const rng = new Rng(4);
      for (const c of POOL_CASES) {
        const planes = 2 * 3;
        const mode = countIncludePad ? "avgIncl" : "avgExcl";
        const x = randn(rng, planes * c.h * c.w);
        const shape = refPool(x, planes, c.h, c.w, c.k, c.s, c.p, mode, undefined).shape;
        const r = randn(rng, planes * shape[0] * shape[1]);
        const ref = refPool(x, planes, c.h, c.w, c.k, c.s, c.p, mode, r);
        const got = forwardAndGrads(
          b,
          [{ data: x, shape: [2, 3, c.h, c.w] }],
          (xt) => b.avgPool2d(xt, c.k, c.s, c.p, countIncludePad),
          r,
        );
        assertClose(got.y, ref.y, 1e-5, `y ${JSON.stringify(c)}`);
        assertClose(got.grads[0], ref.dx, 1e-5, `dx ${JSON.stringify(c)}`);
      }
    },
  );
}

for (const alignCorners of [true, false]) {
  eachKind(`interpolateBilinear(alignCorners=${alignCorners}) follows PyTorch's indexing`, (b) => {
    const rng = new Rng(5);
    const sizes: [number, number, number, number][] = [
      [4, 4, 8, 8],
      [5, 7, 3, 11],
      [6, 6, 13, 2],
      [3, 2, 1, 1],
      [8, 8, 299, 5],
    ];
    for (const [h, w, oh, ow] of sizes) {
      const planes = 2 * 2;
      const x = randn(rng, planes * h * w);
      const r = randn(rng, planes * oh * ow);
      const ref = refBilinear(x, planes, h, w, oh, ow, alignCorners, r);
      const got = forwardAndGrads(
        b,
        [{ data: x, shape: [2, 2, h, w] }],
        (xt) => b.interpolateBilinear(xt, [oh, ow], alignCorners),
        r,
      );
      const what = `${h}x${w} -> ${oh}x${ow}`;
      assertClose(got.y, ref.y, 1e-5, `y ${what}`);
      assertClose(got.grads[0], ref.dx, 1e-4, `dx ${what}`);
    }
  });
}
