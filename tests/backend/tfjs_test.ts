/**
 * TensorFlow.js-specific tests: the custom gradients (conv, transposed conv, matmul, gather,
 * pooling, resize, BCE) against plain float64 TypeScript references, the PyTorch semantics
 * tfjs does not give by itself, conv outputs kept channels-last giving the same values and
 * gradients as NCHW tensors, two backends sharing tfjs's single engine, and large convs split
 * between the main thread and the conv worker giving the single-thread numbers.
 *
 * The references compute the forward pass and, for the loss L = sum(y * r) with a fixed random
 * r, the gradients by the adjoint of the same loops: dL/dx and dL/dw accumulate r * (the other
 * factor) exactly where y accumulates x * w.
 *
 * @module
 */
import "./_single_threaded_wasm.ts"; // before anything that loads tfjs-wasm
import assert from "node:assert/strict";
import { type Backend, BackendError, type Tensor } from "../../src/backend/backend.ts";
import { createTfjsBackend, type TfjsKind } from "../../src/backend/tfjs.ts";
import { Rng } from "../../src/core/rng.ts";
import { batchMatMul, PER_SLICE_MACS } from "../../src/backend/tfjs_kernels.ts";
import { convSplitOptions, toCHWN, wasmHeapView } from "../../src/backend/tfjs_conv.ts";
import {
  CONV_OP,
  type ConvOp,
  ConvWorker,
  currentConvWorker,
} from "../../src/backend/tfjs_worker.ts";
import * as tf from "@tensorflow/tfjs";
import { testEachBackend } from "../_backends.ts";
import { evalWithEnv } from "../_env.ts";

/** How long a test waits for the conv worker to load tfjs: on a loaded machine that took over
 * the 30 s a backend waits before running without it; these tests are about results. */
const TEST_READY_MS = 180_000;

const KINDS: readonly TfjsKind[] = ["wasm", "cpu"];

/**
 * Registers the test on tfjs-wasm and tfjs-cpu, and on tfjs-webgpu (its ops run this file's
 * kernels in the GPU worker; a software adapter counts) unless `mainThreadTf`: the test looks
 * at this thread's tfjs engine, which the worker's backend does not use.
 */
function eachKind(
  name: string,
  fn: (b: Backend) => void | Promise<void>,
  opts: { mainThreadTf?: boolean } = {},
): void {
  if (!opts.mainThreadTf) testEachBackend(name, fn, { only: ["tfjs-webgpu"], softwareGpu: true });
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
  // A 1x1 kernel at stride 2: half the input gradient's output phases get no tap at all.
  { n: 2, ci: 2, co: 3, h: 5, w: 6, k: 1, s: 2, p: 0 },
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

eachKind("toCHWN() moves every element of [N, H, W, C] to [C, H, W, N]", () => {
  for (const [n, h, w, c] of [[3, 5, 7, 2], [1, 1, 1, 1], [4, 2, 3, 6], [2, 9, 1, 5]]) {
    const data = Float32Array.from({ length: n * h * w * c }, (_, i) => i);
    const got = tf.tidy(() => toCHWN(tf.tensor4d(data, [n, h, w, c])));
    assert.deepEqual(got.shape, [c, h, w, n]);
    const values = got.dataSync();
    got.dispose();
    for (let ni = 0; ni < n; ni++) {
      for (let hi = 0; hi < h; hi++) {
        for (let wi = 0; wi < w; wi++) {
          for (let ci = 0; ci < c; ci++) {
            const from = ((ni * h + hi) * w + wi) * c + ci;
            const to = ((ci * h + hi) * w + wi) * n + ni;
            assert.equal(values[to], data[from], `[${n},${h},${w},${c}] element ${from}`);
          }
        }
      }
    }
  }
}, { mainThreadTf: true });

// ---- the conv worker (tfjs_worker.ts): half of each large conv on a second core ----

/** Runs `fn` with every conv eligible for splitting (minFlops 0) or none (Infinity). */
function withSplit<T>(split: boolean, fn: () => T): T {
  const before = convSplitOptions.minFlops;
  convSplitOptions.minFlops = split ? 0 : Infinity;
  try {
    return fn();
  } finally {
    convSplitOptions.minFlops = before;
  }
}

/** Odd and even batches, strides 1 and 2, paddings 0, 1, 2 and unequal H/W paddings. */
const SPLIT_CASES = [
  { n: 5, ci: 3, co: 4, h: 7, w: 6, k: 3, s: 1, p: 1 as number | readonly [number, number] },
  { n: 4, ci: 2, co: 3, h: 9, w: 9, k: 3, s: 2, p: 0 },
  { n: 3, ci: 3, co: 2, h: 6, w: 5, k: 3, s: 1, p: 2 },
  { n: 2, ci: 4, co: 5, h: 8, w: 7, k: 4, s: 2, p: 1 },
  { n: 7, ci: 2, co: 2, h: 5, w: 6, k: 3, s: 1, p: [0, 2] as const },
];

eachKind("wasmHeapView() reads a tensor's elements in place on wasm only", (b) => {
  const t = tf.tensor(Float32Array.from({ length: 24 }, (_, i) => i * 0.5 - 3), [2, 3, 4]);
  try {
    const view = wasmHeapView(t, 5, 13);
    if (b.name === "tfjs-cpu") {
      assert.equal(view, undefined);
    } else {
      assert.ok(view);
      assert.deepEqual([...view], [...t.dataSync().slice(5, 18)]);
      assert.throws(() => wasmHeapView(t, 20, 5), RangeError);
    }
  } finally {
    t.dispose();
  }
}, { mainThreadTf: true });

Deno.test({
  name: "conv2d() split with the conv worker equals the unsplit result (dw to rounding)",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const b = await createTfjsBackend("wasm", { convWorker: true });
    try {
      const worker = currentConvWorker();
      assert.ok(worker, `a tfjs-wasm backend holds the conv worker: ${b.device}`);
      assert.match(b.device, /1 thread \+ 1 worker/);
      assert.ok(await worker.ready(TEST_READY_MS), `worker failed: ${worker.failure}`);
      const rng = new Rng(21);
      for (const c of SPLIT_CASES) {
        const xs = [c.n, c.ci, c.h, c.w];
        const ws = [c.co, c.ci, c.k, c.k];
        const x = randn(rng, c.n * c.ci * c.h * c.w);
        const w = randn(rng, c.co * c.ci * c.k * c.k);
        const opts = { stride: c.s, padding: c.p };
        const outShape = b.conv2d(b.tensor(Float32Array.from(x), xs), b.zeros(ws), undefined, opts)
          .shape;
        const r = randn(rng, outShape.reduce((a, d) => a * d));
        const run = (split: boolean): ReturnType<typeof forwardAndGrads> & { jobs: number } => {
          const jobsBefore = worker.jobsDone;
          const got = withSplit(split, () =>
            forwardAndGrads(
              b,
              [{ data: x, shape: xs }, { data: w, shape: ws }],
              (xt, wt) => b.conv2d(xt, wt, undefined, opts),
              r,
            ));
          return { ...got, jobs: worker.jobsDone - jobsBefore };
        };
        const split = run(true);
        const whole = run(false);
        const what = JSON.stringify(c);
        // Two forwards (y, then the loss), one dx and one dw conv, each half in the worker.
        assert.equal(split.jobs, 4, `worker jobs ${what}`);
        assert.equal(whole.jobs, 0, `worker jobs with splitting off ${what}`);
        assert.deepEqual(split.y, whole.y, `y ${what}`);
        assert.deepEqual(split.grads[0], whole.grads[0], `dx ${what}`);
        assertClose(split.grads[1], whole.grads[1], 1e-5, `dw ${what}`);
        assert.notDeepEqual(whole.grads[1], new Float32Array(whole.grads[1].length));
      }
      // A batch of one is never split.
      const jobsBefore = worker.jobsDone;
      withSplit(
        true,
        () => b.read(b.conv2d(b.full([1, 2, 5, 5], 1), b.full([3, 2, 3, 3], 1), undefined)),
      );
      assert.equal(worker.jobsDone, jobsBefore);
      assert.equal(worker.failure, undefined);
    } finally {
      b.dispose();
    }
  },
});

Deno.test("dispose() of the last tfjs-wasm backend terminates the conv worker", async () => {
  const [a, b] = await Promise.all([
    createTfjsBackend("wasm", { convWorker: true }),
    createTfjsBackend("wasm", { convWorker: true }),
  ]);
  const worker = currentConvWorker();
  assert.ok(worker);
  try {
    assert.ok(await worker.ready(TEST_READY_MS), `worker failed: ${worker.failure}`);
    const y = withSplit(
      true,
      () => a.read(a.conv2d(a.full([4, 2, 6, 6], 1), a.full([3, 2, 3, 3], 1), undefined)),
    );
    assert.equal(worker.jobsDone, 1);
    assert.deepEqual([...y], Array(4 * 3 * 4 * 4).fill(18)); // 3x3 windows of 2 channels of 1
    a.dispose();
    assert.equal(currentConvWorker(), worker, "b still holds the worker");
    assert.equal(worker.failure, undefined);
  } finally {
    a.dispose();
    b.dispose();
  }
  assert.equal(currentConvWorker(), undefined);
  assert.equal(worker.failure, "terminated");
  assert.equal(worker.usable(), false);
  // The thread itself ends (its "exit" event), well before a generous deadline.
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise((resolve) => timer = setTimeout(() => resolve("running"), 10_000));
  const ended = await Promise.race([worker.exited.then(() => "exited"), deadline]);
  clearTimeout(timer);
  assert.equal(ended, "exited");
});

Deno.test("DENO_DIFFUSION_TFJS_WORKERS=0 keeps every conv on the main thread", async () => {
  // The variable is read in a child: setting it here would change it for the files beside.
  const wanted = (value: string) =>
    evalWithEnv(
      `import { convWorkerWanted } from "src/backend/tfjs_worker.ts";`,
      "convWorkerWanted()",
      {
        DENO_DIFFUSION_TFJS_WORKERS: value,
      },
    );
  assert.equal((await wanted("0")).value, false);
  assert.equal((await wanted("1")).value, (navigator.hardwareConcurrency ?? 1) >= 2);
  const b = await createTfjsBackend("wasm", { convWorker: false });
  try {
    assert.equal(currentConvWorker(), undefined);
    assert.match(b.device, /, 1 thread\)$/);
    const y = withSplit(
      true,
      () => b.read(b.conv2d(b.full([4, 1, 3, 3], 1), b.full([1, 1, 3, 3], 1), undefined)),
    );
    assert.deepEqual([...y], Array(4).fill(9));
  } finally {
    b.dispose();
  }
});

Deno.test({
  name: "a failing conv worker is shut down and its half runs on the main thread",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    // A worker on its own: a job it cannot run reports the error instead of hanging.
    const lone = new ConvWorker();
    try {
      assert.ok(await lone.ready(TEST_READY_MS), `worker failed: ${lone.failure}`);
      const input = { data: new Float32Array(16), shape: [1, 4, 4, 1] };
      lone.submit(99 as ConvOp, input, input, 1, 0, [1, 1, 1, 1]);
      assert.throws(() => lone.collect(), /unknown conv job 99/);
      assert.match(lone.failure ?? "", /unknown conv job 99/);
      assert.equal(lone.usable(), false);
    } finally {
      lone.terminate();
    }
    // Through a backend: the failed worker's half is computed here and the device says so.
    const b = await createTfjsBackend("wasm", { convWorker: true });
    try {
      const worker = currentConvWorker()!;
      assert.ok(await worker.ready(TEST_READY_MS), `worker failed: ${worker.failure}`);
      const x = b.tensor(Float32Array.from(randn(new Rng(3), 6 * 2 * 5 * 5)), [6, 2, 5, 5]);
      const w = b.tensor(Float32Array.from(randn(new Rng(4), 3 * 2 * 3 * 3)), [3, 2, 3, 3]);
      const whole = withSplit(false, () => b.read(b.conv2d(x, w, undefined, { padding: 1 })));
      // A good job first (1x1 conv by 3): the worker works.
      const image = { data: Float32Array.from([1, 2, 3, 4]), shape: [1, 2, 2, 1] };
      const filter = { data: Float32Array.from([3]), shape: [1, 1, 1, 1] };
      worker.submit(CONV_OP.forward, image, filter, 1, 0, [1, 2, 2, 1]);
      assert.deepEqual([...worker.collect()], [3, 6, 9, 12]);
      worker.submit(0 as ConvOp, image, filter, 1, 0, [1, 2, 2, 1]);
      assert.throws(() => worker.collect());
      const after = withSplit(true, () => b.read(b.conv2d(x, w, undefined, { padding: 1 })));
      assert.deepEqual(after, whole);
      assert.match(b.device, /conv worker off: unknown conv job 0/);
    } finally {
      b.dispose();
    }
  },
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

eachKind("maxPool2d() gives a tied window's gradient to its first cell, as PyTorch", (b) => {
  // All zeros: every window ties; PyTorch routes each window's gradient to its first cell.
  const got = forwardAndGrads(
    b,
    [{ data: new Float64Array(16), shape: [1, 1, 4, 4] }],
    (x) => b.maxPool2d(x, 3, 1, 1),
    Float64Array.from({ length: 16 }, (_, i) => i + 1),
  );
  // Window (i, j) starts at (i - 1, j - 1); its first real cell is (max(i-1,0), max(j-1,0)).
  const expected = new Float64Array(16);
  for (let i = 0; i < 4; i++) {
    for (let j = 0; j < 4; j++) {
      expected[Math.max(i - 1, 0) * 4 + Math.max(j - 1, 0)] += i * 4 + j + 1;
    }
  }
  assertClose(got.grads[0], expected, 0, "dx");
});

// ---- matmul, linear, attention, gather ----

function refMatmul(
  a: Float64Array,
  b: Float64Array,
  batch: number,
  n: number,
  k: number,
  m: number,
) {
  const y = new Float64Array(batch * n * m);
  for (let t = 0; t < batch; t++) {
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < m; j++) {
        let acc = 0;
        for (let l = 0; l < k; l++) acc += a[(t * n + i) * k + l] * b[(t * k + l) * m + j];
        y[(t * n + i) * m + j] = acc;
      }
    }
  }
  return y;
}

eachKind("matmul() broadcasts batch dims and sums their gradients back", (b) => {
  const rng = new Rng(6);
  const [n, k, m] = [3, 4, 5];
  const a = randn(rng, 2 * 3 * n * k); // [2, 3, n, k]
  const w = randn(rng, 3 * k * m); // [1, 3, k, m] broadcast over the first dim
  const r = randn(rng, 2 * 3 * n * m);
  const got = forwardAndGrads(
    b,
    [{ data: a, shape: [2, 3, n, k] }, { data: w, shape: [1, 3, k, m] }],
    (x, y) => b.matmul(x, y),
    r,
  );
  const wTiled = new Float64Array([...w, ...w]);
  assertClose(got.y, refMatmul(a, wTiled, 6, n, k, m), 1e-5, "y");
  // dA = r Bᵀ, dB = sum over the broadcast dim of Aᵀ r: by the adjoint loops.
  const da = new Float64Array(a.length);
  const dw = new Float64Array(w.length);
  for (let t = 0; t < 6; t++) {
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < m; j++) {
        for (let l = 0; l < k; l++) {
          const rv = r[(t * n + i) * m + j];
          da[(t * n + i) * k + l] += rv * w[((t % 3) * k + l) * m + j];
          dw[((t % 3) * k + l) * m + j] += rv * a[(t * n + i) * k + l];
        }
      }
    }
  }
  assertClose(got.grads[0], da, 1e-5, "dA");
  assertClose(got.grads[1], dw, 1e-5, "dB");
});

eachKind("linear() is x wᵀ + b over leading dims", (b) => {
  const x = b.tensor([1, 2, 3, 4, 5, 6], [1, 2, 3]);
  const w = b.tensor([1, 0, -1, 2, 1, 0], [2, 3]);
  const bias = b.tensor([10, 20], [2]);
  const y = b.linear(x, w, bias);
  assert.deepEqual(y.shape, [1, 2, 2]);
  assert.deepEqual([...b.read(y)], [1 - 3 + 10, 2 + 2 + 20, 4 - 6 + 10, 8 + 5 + 20]);
});

eachKind("attention() is softmax(q kᵀ / sqrt(d)) v per batch and head", (b) => {
  const rng = new Rng(7);
  const [B, H, L, D] = [2, 2, 3, 4];
  const q = randn(rng, B * H * L * D);
  const k = randn(rng, B * H * L * D);
  const v = randn(rng, B * H * L * D);
  const y = b.read(
    b.attention(
      ...[q, k, v].map((t) => b.tensor(Float32Array.from(t), [B, H, L, D])) as [
        Tensor,
        Tensor,
        Tensor,
      ],
    ),
  );
  const expected = new Float64Array(B * H * L * D);
  for (let t = 0; t < B * H; t++) {
    for (let i = 0; i < L; i++) {
      const scores = [];
      for (let j = 0; j < L; j++) {
        let s = 0;
        for (let d = 0; d < D; d++) s += q[(t * L + i) * D + d] * k[(t * L + j) * D + d];
        scores.push(s / Math.sqrt(D));
      }
      const mx = Math.max(...scores);
      const e = scores.map((s) => Math.exp(s - mx));
      const z = e.reduce((p, c) => p + c);
      for (let j = 0; j < L; j++) {
        for (let d = 0; d < D; d++) {
          expected[(t * L + i) * D + d] += (e[j] / z) * v[(t * L + j) * D + d];
        }
      }
    }
  }
  assertClose(y, expected, 1e-5, "attention");
});

eachKind("gather() picks rows by int32 index and scatter-adds repeated rows' gradients", (b) => {
  const rng = new Rng(8);
  const table = randn(rng, 2 * 5 * 3); // [2, 5, 3], gather along axis 1
  const idx = [4, 0, 4, 2];
  const r = randn(rng, 2 * 4 * 3);
  const vars = [b.variable(b.tensor(Float32Array.from(table), [2, 5, 3]), true)];
  const indices = b.tensor(Int32Array.from(idx), [4], "int32");
  const y = b.gather(vars[0], indices, 1);
  assert.deepEqual(y.shape, [2, 4, 3]);
  const expected = new Float64Array(24);
  const dTable = new Float64Array(30);
  for (let o = 0; o < 2; o++) {
    idx.forEach((row, j) => {
      for (let c = 0; c < 3; c++) {
        expected[(o * 4 + j) * 3 + c] = table[(o * 5 + row) * 3 + c];
        dTable[(o * 5 + row) * 3 + c] += r[(o * 4 + j) * 3 + c];
      }
    });
  }
  assertClose(b.read(y), expected, 0, "gather");
  const rT = b.tensor(Float32Array.from(r), [2, 4, 3]);
  const { grads } = b.valueAndGrad(() => b.sum(b.mul(b.gather(vars[0], indices, 1), rT)), vars);
  assertClose(b.read(grads[0]), dTable, 1e-6, "dTable");
  assert.throws(
    () => b.gather(vars[0], b.tensor(Int32Array.from([5]), [1], "int32"), 1),
    BackendError,
  );
});

eachKind("batchMatMul() equals the definition for every transpose flag and batch shape", () => {
  const rng = new Rng(7);
  // [batch dims of a, batch dims of b, M, K, N]; the fourth is large enough per slice for wasm's
  // slice-by-slice path (PER_SLICE_MACS), the last two broadcast or have one slice.
  const cases: [number[], number[], number, number, number][] = [
    [[5], [5], 3, 4, 2],
    [[2, 3], [2, 3], 4, 1, 5],
    [[6], [6], 7, 9, 1],
    [[2, 2], [2, 2], 128, 64, 130],
    [[1], [1], 3, 2, 4],
    [[4], [1], 2, 3, 3],
  ];
  assert.ok(128 * 64 * 130 >= PER_SLICE_MACS && 7 * 9 * 1 < PER_SLICE_MACS);
  for (const [batchA, batchB, m, k, n] of cases) {
    const [slicesA, slicesB] = [batchA, batchB].map((d) => d.reduce((x, y) => x * y, 1));
    const a = randn(rng, slicesA * m * k); // logical [S, M, K]
    const b = randn(rng, slicesB * k * n); // logical [S, K, N]
    const slices = Math.max(slicesA, slicesB);
    const want = new Float64Array(slices * m * n);
    for (let s = 0; s < slices; s++) {
      const [sa, sb] = [slicesA === 1 ? 0 : s, slicesB === 1 ? 0 : s];
      for (let i = 0; i < m; i++) {
        for (let j = 0; j < n; j++) {
          let acc = 0;
          for (let d = 0; d < k; d++) acc += a[(sa * m + i) * k + d] * b[(sb * k + d) * n + j];
          want[(s * m + i) * n + j] = acc;
        }
      }
    }
    for (const [ta, tb] of [[false, false], [true, false], [false, true], [true, true]]) {
      const got = tf.tidy(() => {
        let at = tf.tensor(Float32Array.from(a), [...batchA, m, k]);
        let bt = tf.tensor(Float32Array.from(b), [...batchB, k, n]);
        // Store the transposed operand so that op(stored) is the logical one.
        if (ta) at = tf.transpose(at, [...batchA.keys(), batchA.length + 1, batchA.length]);
        if (tb) bt = tf.transpose(bt, [...batchB.keys(), batchB.length + 1, batchB.length]);
        const y = batchMatMul(at, bt, ta, tb);
        const outBatch = batchA.length >= batchB.length && slicesA >= slicesB ? batchA : batchB;
        assert.deepEqual(y.shape, [...outBatch, m, n]);
        return y.dataSync();
      });
      assertClose(
        got,
        want,
        1e-5,
        `batchMatMul ${JSON.stringify([batchA, batchB, m, k, n])} ${ta} ${tb}`,
      );
    }
  }
}, { mainThreadTf: true });

// ---- elementwise semantics where tfjs and PyTorch differ ----

eachKind("gelu() is the exact erf form x * Phi(x)", (b) => {
  const xs = [-4, -2.5, -1, -0.3, 0, 0.2, 0.7, 1, 1.5, 3];
  const y = b.read(b.gelu(b.tensor(xs, [xs.length])));
  assertClose(y, xs.map((x) => 0.5 * x * (1 + erf(x / Math.SQRT2))), 1e-6, "gelu");
  // d/dx gelu = Phi(x) + x phi(x).
  const x = b.variable(b.tensor(xs, [xs.length]), true);
  const { grads } = b.valueAndGrad(() => b.sum(b.gelu(x)), [x]);
  const dGelu = xs.map((v) =>
    0.5 * (1 + erf(v / Math.SQRT2)) + (v * Math.exp(-v * v / 2)) / Math.sqrt(2 * Math.PI)
  );
  assertClose(b.read(grads[0]), dGelu, 1e-5, "dgelu");
});

eachKind("abs() and bceWithLogits() have PyTorch's gradients at exactly 0", (b) => {
  const x = b.variable(b.tensor([0, -2, 3], [3]), true);
  const dAbs = b.valueAndGrad(() => b.sum(b.abs(x)), [x]).grads[0];
  assert.deepEqual([...b.read(dAbs)], [0, -1, 1]);
  const t = b.tensor([1, 0, 0.25], [3]);
  const { value, grads } = b.valueAndGrad(() => b.bceWithLogits(x, t), [x]);
  const sig = (v: number) => 1 / (1 + Math.exp(-v));
  const bce = [0, -2, 3].map((v, i) => {
    const tv = [1, 0, 0.25][i];
    return -(tv * Math.log(sig(v)) + (1 - tv) * Math.log(1 - sig(v)));
  });
  assertClose([value], [bce.reduce((p, c) => p + c) / 3], 1e-6, "bce");
  assertClose(b.read(grads[0]), [0, -2, 3].map((v, i) => (sig(v) - [1, 0, 0.25][i]) / 3), 1e-6);
});

eachKind("bceWithLogits() stays finite for logits of +-100", (b) => {
  const loss = b.read(b.bceWithLogits(b.tensor([100, -100], [2]), b.tensor([0, 1], [2])))[0];
  assertClose([loss], [100], 1e-6, "bce");
});

eachKind("softmax() normalises along any axis", (b) => {
  const x = b.tensor([1, 2, 3, 4, 5, 7], [2, 3]);
  const col = b.read(b.softmax(x, 0));
  const e = (a: number, c: number) => Math.exp(a) / (Math.exp(a) + Math.exp(c));
  assertClose(col, [e(1, 4), e(2, 5), e(3, 7), e(4, 1), e(5, 2), e(7, 3)], 1e-6, "axis 0");
  const row = b.read(b.softmax(x, -1));
  const z = Math.exp(1) + Math.exp(2) + Math.exp(3);
  assertClose(row.slice(0, 3), [Math.exp(1) / z, Math.exp(2) / z, Math.exp(3) / z], 1e-6);
});

eachKind("where(), clamp(), greater() and cast() follow PyTorch", (b) => {
  const a = b.tensor([-2, -0.5, 0.5, 2], [4]);
  assert.deepEqual([...b.read(b.clamp(a, -1, 1))], [-1, -0.5, 0.5, 1]);
  const mask = b.greater(a, 0);
  assert.deepEqual([...b.read(mask)], [0, 0, 1, 1]);
  assert.deepEqual([...b.read(b.where(mask, a, b.full([1], 9)))], [9, 9, 0.5, 2]);
  const asInt = b.cast(b.tensor([1.7, -1.7, 2.5], [3]), "int32");
  assert.equal(asInt.dtype, "int32");
  assert.deepEqual([...b.read(asInt)], [1, -1, 2]);
});

// ---- normalisation ----

function refNormalize(x: number[], eps: number): number[] {
  const mean = x.reduce((p, c) => p + c) / x.length;
  const variance = x.reduce((p, c) => p + (c - mean) ** 2, 0) / x.length;
  return x.map((v) => (v - mean) / Math.sqrt(variance + eps));
}

eachKind("groupNorm() and layerNorm() normalise with the biased variance", (b) => {
  const rng = new Rng(9);
  const [N, C, H, W, G] = [2, 4, 3, 2, 2];
  const x = [...randn(rng, N * C * H * W)];
  const w = [1, 2, 3, 4];
  const bias = [0.5, 0, -0.5, 1];
  const y = b.read(
    b.groupNorm(b.tensor(x, [N, C, H, W]), G, b.tensor(w, [C]), b.tensor(bias, [C]), 1e-5),
  );
  const per = (C / G) * H * W;
  const expected: number[] = [];
  for (let g = 0; g < N * G; g++) {
    refNormalize(x.slice(g * per, (g + 1) * per), 1e-5).forEach((v, i) => {
      const c = ((g % G) * per + i) / (H * W) | 0;
      expected.push(v * w[c] + bias[c]);
    });
  }
  assertClose(y, expected, 1e-5, "groupNorm");
  const ln = b.read(
    b.layerNorm(b.tensor(x, [N * C * H, W]), b.tensor([2, 3], [2]), b.tensor([1, 0], [2])),
  );
  const lnExpected = [];
  for (let i = 0; i < x.length; i += 2) {
    const [u, v] = refNormalize(x.slice(i, i + 2), 1e-5);
    lnExpected.push(2 * u + 1, 3 * v);
  }
  assertClose(ln, lnExpected, 1e-4, "layerNorm");
});

eachKind(
  "batchNorm() in training on a conv output (closed-form gradient) equals the NCHW route",
  (b) => {
    // A conv output stays channels-last and takes the fused path with PyTorch's closed-form
    // gradient; its NCHW copy takes the composed ops and tfjs's autodiff: an independent check
    // of the values, the running statistics and the gradients of x (through w), weight and bias.
    const rng = new Rng(21);
    const [N, C, H, W] = [3, 5, 4, 6];
    const x = b.tensor(rng.normal(N * 2 * H * W), [N, 2, H, W]);
    const w = b.variable(b.tensor(rng.normal(C * 2 * 9), [C, 2, 3, 3]), true);
    const weight = b.variable(b.tensor(rng.normal(C), [C]), true);
    const bias = b.variable(b.tensor(rng.normal(C), [C]), true);
    const r = b.tensor(rng.normal(N * C * H * W), [N, C, H, W]);
    const rm0 = rng.normal(C);
    const routes = [(y: Tensor) => y, (y: Tensor) => b.reshape(y, y.shape)].map((view) => {
      const rm = b.variable(b.tensor(rm0, [C]), false);
      const rv = b.variable(b.full([C], 2), false);
      const opts = { training: true, momentum: 0.3, eps: 1e-3 };
      const bn = () =>
        b.batchNorm(view(b.conv2d(x, w, undefined, { padding: 1 })), weight, bias, rm, rv, opts);
      const { value, grads } = b.valueAndGrad(() => b.sum(b.mul(bn(), r)), [w, weight, bias]);
      return { value, grads: grads.map((g) => b.read(g)), rm: b.read(rm), rv: b.read(rv) };
    });
    const [fused, composed] = routes;
    assertClose([fused.value], [composed.value], 1e-4, "loss");
    assertClose(fused.rm, composed.rm, 1e-5, "running mean");
    assertClose(fused.rv, composed.rv, 1e-5, "running var");
    ["dw (via dx)", "dweight", "dbias"].forEach((what, i) => {
      assertClose(fused.grads[i], composed.grads[i], 1e-4, what);
    });
  },
);

eachKind("batchNorm() in training updates running stats with the unbiased variance", (b) => {
  const x = [1, 2, 3, 4, 10, 20, 30, 40]; // [2, 2, 1, 2]: channel 0 = 1,2,10,20; channel 1 = 3,4,30,40
  const ch = [[1, 2, 10, 20], [3, 4, 30, 40]];
  const rm = b.variable(b.tensor([0, 1], [2]), false);
  const rv = b.variable(b.tensor([1, 2], [2]), false);
  const weight = b.variable(b.tensor([1, 2], [2]), true);
  const bias = b.variable(b.tensor([0, 1], [2]), true);
  const xt = b.tensor(x, [2, 2, 1, 2]);
  const opts = { training: true, momentum: 0.1, eps: 1e-5 };
  const { grads } = b.valueAndGrad(
    () => b.sum(b.batchNorm(xt, weight, bias, rm, rv, opts)),
    [weight, bias],
  );
  const mean = ch.map((v) => v.reduce((p, c) => p + c) / 4);
  const unbiased = ch.map((v, i) => v.reduce((p, c) => p + (c - mean[i]) ** 2, 0) / 3);
  assertClose(b.read(rm), [0.9 * 0 + 0.1 * mean[0], 0.9 * 1 + 0.1 * mean[1]], 1e-6, "mean");
  assertClose(b.read(rv), [0.9 * 1 + 0.1 * unbiased[0], 0.9 * 2 + 0.1 * unbiased[1]], 1e-5, "var");
  // The normalised batch sums to 0 per channel, so d sum / d weight = 0 and d / d bias = 4.
  assertClose(b.read(grads[0]), [0, 0], 1e-5, "dweight");
  assertClose(b.read(grads[1]), [4, 4], 1e-6, "dbias");
  const y = b.read(b.batchNorm(xt, weight, bias, rm, rv, { training: true }));
  const expected = ch.map((v, c) => refNormalize(v, 1e-5).map((u) => u * [1, 2][c] + [0, 1][c]));
  // Back to [N, C, 1, W] order.
  assertClose(y, [0, 1, 4, 5, 2, 3, 6, 7].map((i) => expected[i >> 2][i & 3]), 1e-5, "y");
  // Eval mode uses the running statistics only.
  const rmNow = b.read(rm);
  const rvNow = b.read(rv);
  const evalY = b.read(b.batchNorm(xt, undefined, undefined, rm, rv, { training: false }));
  assertClose(
    evalY,
    x.map((v, i) => {
      const c = (i >> 1) & 1;
      return (v - rmNow[c]) / Math.sqrt(rvNow[c] + 1e-5);
    }),
    1e-5,
    "eval",
  );
});

// ---- optimisation ----

eachKind("adamStep() equals torch.optim.AdamW's update over three steps", (b) => {
  const opts = { lr: 0.1, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.05 };
  let p = [0.5, -1, 2];
  let m = [0, 0, 0];
  let v = [0, 0, 0];
  const param = b.variable(b.tensor(p, [3]), true);
  const state = {
    step: 0,
    m: [b.variable(b.zeros([3]), false)],
    v: [b.variable(b.zeros([3]), false)],
  };
  const gradSeq = [[0.1, -0.2, 0.3], [1, 0, -1], [0.5, 0.5, 0.5]];
  for (const [t, g] of gradSeq.entries()) {
    const gt = b.tensor(g, [3]);
    b.adamStep([param], [gt], state, opts);
    // Reference: the AdamW algorithm (decoupled decay first, then the bias-corrected step).
    const step = t + 1;
    p = p.map((x) => x * (1 - opts.lr * opts.weightDecay));
    m = m.map((x, i) => opts.beta1 * x + (1 - opts.beta1) * g[i]);
    v = v.map((x, i) => opts.beta2 * x + (1 - opts.beta2) * g[i] * g[i]);
    const bc1 = 1 - opts.beta1 ** step;
    const bc2 = 1 - opts.beta2 ** step;
    p = p.map((x, i) => x - (opts.lr / bc1) * m[i] / (Math.sqrt(v[i]) / Math.sqrt(bc2) + opts.eps));
  }
  assert.equal(state.step, 3);
  assertClose(b.read(param), p, 1e-6, "param");
  assertClose(b.read(state.m[0]), m, 1e-6, "m");
  assertClose(b.read(state.v[0]), v, 1e-6, "v");
});

eachKind("emaUpdate() moves targets towards sources by 1 - decay", (b) => {
  const target = b.variable(b.tensor([1, 2], [2]), false);
  b.emaUpdate([target], [b.tensor([3, 6], [2])], 0.75);
  assertClose(b.read(target), [1.5, 3], 1e-7, "ema");
});

// ---- autograd, memory, errors ----

eachKind("noGrad() and detach() stop gradients inside valueAndGrad()", (b) => {
  const x = b.variable(b.tensor([1, 2], [2]), true);
  const y = b.variable(b.tensor([3, 4], [2]), true);
  const { grads } = b.valueAndGrad(() => {
    const frozen = b.noGrad(() => b.mul(x, x));
    return b.sum(b.add(b.mul(b.add(frozen, b.detach(y)), y), x));
  }, [x, y]);
  // d/dx = 1 (frozen x² contributes nothing); d/dy = x² + y (detached copy is a constant).
  assert.deepEqual([...b.read(grads[0])], [1, 1]);
  assert.deepEqual([...b.read(grads[1])], [4, 8]);
});

eachKind("valueAndGrad() gives zeros for a parameter the loss does not use", (b) => {
  const used = b.variable(b.tensor([2], [1]), true);
  const unused = b.variable(b.tensor([5, 6], [2]), true);
  const { value, grads } = b.valueAndGrad(() => b.sum(b.mul(used, used)), [used, unused]);
  assert.equal(value, 4);
  assert.deepEqual([...b.read(grads[0])], [4]);
  assert.deepEqual([...b.read(grads[1])], [0, 0]);
});

eachKind("tensor() and read() copy, so host arrays never alias device data", (b) => {
  const host = new Float32Array([1, 2, 3]);
  const t = b.tensor(host, [3]);
  host[0] = 99;
  const out = b.read(t);
  out[1] = 77;
  assert.deepEqual([...b.read(t)], [1, 2, 3]);
});

eachKind("scope() frees temporaries but keeps returned tensors and variables", (b) => {
  const before = b.liveTensors();
  const kept = b.scope(() => {
    const a = b.tensor([1, 2], [2]);
    const v = b.variable(b.mul(a, 2), true);
    return { sum: b.add(a, a), nested: [v] };
  });
  assert.equal(b.liveTensors(), before + 2);
  assert.deepEqual([...b.read(kept.sum)], [2, 4]);
  assert.deepEqual([...b.read(kept.nested[0])], [2, 4]);
  kept.sum.dispose();
  kept.sum.dispose(); // idempotent
  assert.ok(kept.sum.disposed);
  assert.throws(() => b.read(kept.sum), BackendError);
});

eachKind("a training step of a conv net keeps the live-tensor count flat", (b) => {
  const rng = new Rng(10);
  const w1 = b.variable(b.tensor(rng.normal(4 * 3 * 9), [4, 3, 3, 3]), true);
  const w2 = b.variable(b.tensor(rng.normal(3 * 4 * 16), [4, 3, 4, 4]), true);
  const params = [w1, w2];
  const state = {
    step: 0,
    m: params.map((p) => b.variable(b.zeros(p.shape), false)),
    v: params.map((p) => b.variable(b.zeros(p.shape), false)),
  };
  const x = b.tensor(rng.normal(2 * 3 * 8 * 8), [2, 3, 8, 8]);
  const opts = { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 };
  const step = () =>
    b.scope(() => {
      const { value, grads } = b.valueAndGrad(() => {
        const h = b.maxPool2d(b.silu(b.conv2d(x, w1, undefined, { padding: 1 })), 2, 2);
        const y = b.convTranspose2d(h, w2, undefined, { stride: 2, padding: 1 });
        return b.mseLoss(y, x);
      }, params);
      b.adamStep(params, grads, state, opts);
      return value;
    });
  const first = step();
  const live = b.liveTensors();
  let last = first;
  for (let i = 0; i < 20; i++) last = step();
  assert.equal(b.liveTensors(), live);
  assert.ok(last < first, `loss ${first} -> ${last} should fall`);
});

eachKind("bad shapes raise BackendError naming the op and the shapes", (b) => {
  const x = b.zeros([1, 3, 8, 8]);
  const w = b.zeros([4, 2, 3, 3]);
  assert.throws(
    () => b.conv2d(x, w, undefined),
    (e: unknown) =>
      e instanceof BackendError && e.op === "conv2d" && /\[1,3,8,8\], \[4,2,3,3\]/.test(e.message),
  );
  assert.throws(() => b.add(b.zeros([2, 3]), b.zeros([4])), /add\(\[2,3\], \[4\]\)/);
  assert.throws(() => b.reshape(x, [5, 7]), (e: unknown) => e instanceof BackendError);
  assert.throws(() => b.tensor([1, 2, 3], [2, 2]), (e: unknown) => e instanceof BackendError);
  assert.throws(() => b.matmul(b.zeros([2, 3]), b.zeros([2, 3])), BackendError);
  assert.throws(() => b.groupNorm(x, 2, b.zeros([3]), b.zeros([3])), BackendError);
  assert.throws(() => b.assign(x, b.zeros([1])), BackendError);
  assert.throws(() => b.valueAndGrad(() => b.sum(x), [x]), /not a trainable variable/);
});

Deno.test({
  name: "tfjs-wasm and tfjs-cpu instances share one process without mixing tensors",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const wasm = await createTfjsBackend("wasm");
    const cpu = await createTfjsBackend("cpu");
    try {
      const rng = new Rng(11);
      const xData = rng.normal(2 * 3 * 6 * 6);
      const wData = rng.normal(4 * 3 * 3 * 3);
      const run = (b: Backend) => {
        const w = b.variable(b.tensor(wData, [4, 3, 3, 3]), true);
        const x = b.tensor(xData, [2, 3, 6, 6]);
        return { w, x };
      };
      const a = run(wasm);
      const c = run(cpu);
      // Interleave ops of both instances: each must run on its own kernels.
      const loss = (b: Backend, t: { w: Tensor; x: Tensor }) =>
        b.valueAndGrad(() => b.mean(b.gelu(b.conv2d(t.x, t.w, undefined, { padding: 1 }))), [t.w]);
      const la = loss(wasm, a);
      const lc = loss(cpu, c);
      assertClose([la.value], [lc.value], 1e-5, "loss");
      assertClose(wasm.read(la.grads[0]), cpu.read(lc.grads[0]), 1e-4, "grad");
      // A handle of one instance is rejected by the other.
      assert.throws(() => cpu.add(a.x, 1), /tfjs-wasm/);
      // Disposing one instance leaves the other working, and stale handles fail clearly.
      wasm.dispose();
      assert.throws(() => wasm.read(a.x), BackendError);
      assert.throws(() => wasm.zeros([1]), /disposed/);
      assert.equal(cpu.read(cpu.sum(c.x)).length, 1);
      const again = await createTfjsBackend("wasm");
      assert.deepEqual([...again.read(again.add(again.tensor([1], [1]), 1))], [2]);
      again.dispose();
    } finally {
      wasm.dispose();
      cpu.dispose();
    }
  },
});

Deno.test({
  name: "dispose() frees every tensor the instance created",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const b = await createTfjsBackend("wasm");
    const before = b.liveTensors();
    const v = b.variable(b.tensor([1, 2], [2]), true);
    b.add(v, 1);
    b.valueAndGrad(() => b.sum(b.mul(v, v)), [v]);
    assert.ok(b.liveTensors() > before);
    b.dispose();
    assert.equal(b.liveTensors(), before);
  },
});

// ---- channels-last conv outputs ----

eachKind("ops on a conv output (kept channels-last) equal the same ops on its NCHW copy", (b) => {
  const rng = new Rng(12);
  const [N, C, H, W] = [2, 4, 6, 5];
  const x = b.tensor(rng.normal(N * 3 * H * W), [N, 3, H, W]);
  const w = b.variable(b.tensor(rng.normal(C * 3 * 9), [C, 3, 3, 3]), true);
  const rm = b.variable(b.zeros([C]), false);
  const rv = b.variable(b.full([C], 1), false);
  const perChannel = b.tensor(rng.normal(C), [1, C, 1, 1]);
  const chw = b.tensor(rng.normal(C), [C, 1, 1]);
  const row = b.tensor(rng.normal(W), [W]);
  const full = b.tensor(rng.normal(N * C * H * W), [N, C, H, W]);
  const gnW = b.tensor(rng.normal(C), [C]);
  const gnB = b.tensor(rng.normal(C), [C]);
  const w2 = b.tensor(rng.normal(2 * C * 9), [2, C, 3, 3]);
  const wt = b.tensor(rng.normal(C * 2 * 16), [C, 2, 4, 4]);
  const ops: [string, (y: Tensor) => Tensor][] = [
    ["add [1,C,1,1]", (y) => b.add(y, perChannel)],
    ["sub [C,1,1] first", (y) => b.sub(chw, y)],
    ["mul [W]", (y) => b.mul(y, row)],
    ["div full NCHW", (y) => b.div(y, b.add(b.abs(full), 1))],
    ["greater", (y) => b.mul(b.greater(y, full), y)],
    ["gelu", (y) => b.gelu(y)],
    ["silu * 3", (y) => b.mul(b.silu(y), 3)],
    ["groupNorm", (y) => b.groupNorm(y, 2, gnW, gnB)],
    ["batchNorm", (y) => b.batchNorm(y, gnW, gnB, rm, rv, { training: true })],
    ["batchNorm eval", (y) => b.batchNorm(y, gnW, gnB, rm, rv, { training: false })],
    ["maxPool2d", (y) => b.maxPool2d(y, 3, 2, 1)],
    ["avgPool2d", (y) => b.avgPool2d(y, 3, 2, 1, false)],
    ["interpolate ac", (y) => b.interpolateBilinear(y, [9, 4], true)],
    ["interpolate", (y) => b.interpolateBilinear(y, [12, 10], false)],
    ["cat 1", (y) => b.cat([y, full, y], 1)],
    ["cat 3", (y) => b.cat([full, y], 3)],
    ["sum HW", (y) => b.sum(y, [2, 3])],
    ["mean C", (y) => b.mean(y, [1])],
    ["sum H", (y) => b.sum(y, [-2])],
    ["mean keep", (y) => b.mean(y, [0, 2], true)],
    ["mse", (y) => b.mseLoss(y, full)],
    ["bce", (y) => b.bceWithLogits(y, b.sigmoid(full))],
    ["conv", (y) => b.conv2d(y, w2, undefined, { stride: 2, padding: 1 })],
    ["convT", (y) => b.convTranspose2d(y, wt, undefined, { stride: 2, padding: 1 })],
    ["slice", (y) => b.slice(y, [0, 1, 2, 0], [-1, 2, 3, -1])],
    ["reshape", (y) => b.reshape(y, [N, C, H * W])],
    ["permute", (y) => b.permute(y, [0, 2, 3, 1])],
    ["softmax", (y) => b.softmax(y, 1)],
  ];
  for (const [what, op] of ops) {
    // Via the conv output as it comes, and via an NCHW copy (reshape always yields NCHW).
    const routes = [(y: Tensor) => y, (y: Tensor) => b.reshape(y, y.shape)].map((view) => {
      const y = b.scope(() => op(view(b.conv2d(x, w, undefined, { padding: 1 }))));
      const r = b.tensor(new Rng(13).normal(y.shape.reduce((p, d) => p * d, 1)), y.shape);
      const { grads } = b.valueAndGrad(
        () => b.sum(b.mul(op(view(b.conv2d(x, w, undefined, { padding: 1 }))), r)),
        [w],
      );
      return { shape: y.shape, y: b.read(y), dw: b.read(grads[0]) };
    });
    assert.deepEqual(routes[0].shape, routes[1].shape, what);
    assertClose(routes[0].y, routes[1].y, 1e-5, `${what}: y`);
    assertClose(routes[0].dw, routes[1].dw, 1e-4, `${what}: dw`);
  }
});

eachKind(
  "conv -> groupNorm -> silu -> conv transposes only the input and the filters",
  async (b) => {
    const rng = new Rng(14);
    const x = b.tensor(rng.normal(2 * 3 * 8 * 8), [2, 3, 8, 8]);
    const w1 = b.tensor(rng.normal(8 * 3 * 9), [8, 3, 3, 3]);
    const w2 = b.tensor(rng.normal(8 * 8 * 9), [8, 8, 3, 3]);
    const gamma = b.full([8], 1);
    const beta = b.zeros([8]);
    const profile = await tf.profile(() => {
      const h = b.silu(b.groupNorm(b.conv2d(x, w1, undefined, { padding: 1 }), 4, gamma, beta));
      b.conv2d(h, w2, undefined, { padding: 1 }).dispose();
    });
    const transposes = profile.kernels.filter((k) => k.name === "Transpose").length;
    // x to NHWC, and each filter [Cout, Cin, k, k] to [k, k, Cin, Cout]; nothing in between.
    assert.equal(transposes, 3);
  },
  { mainThreadTf: true },
);
