/**
 * Transposed convolutions split between the main thread and the conv worker (tfjs_conv.ts,
 * tfjs_worker.ts) give the unsplit numbers: the forward pass and the input gradient bit for
 * bit, the weight gradient (a sum over the batch, added in two halves) to float rounding.
 * The conv worker serves tfjs-wasm's single-threaded build, so this file asks for that build
 * (the first tfjs-wasm backend of a process decides which build it runs).
 *
 * @module
 */
import "./_single_threaded_wasm.ts"; // before anything that loads tfjs-wasm
import assert from "node:assert/strict";
import type { Backend, Tensor } from "../../src/backend/backend.ts";
import { createTfjsBackend } from "../../src/backend/tfjs.ts";
import { convSplitOptions } from "../../src/backend/tfjs_conv.ts";
import { type ConvWorker, currentConvWorker } from "../../src/backend/tfjs_worker.ts";
import { Rng } from "../../src/core/rng.ts";

/** How long a test waits for the conv worker to load tfjs: on a loaded machine that took over
 * the 30 s a backend waits before running without it; these tests are about results. */
const TEST_READY_MS = 180_000;

/**
 * Runs `fn` on a tfjs-wasm backend holding the conv worker, once the worker is ready; the
 * split threshold (`convSplitOptions.minFlops`) is restored and the backend disposed after.
 */
async function withConvWorker(fn: (b: Backend, worker: ConvWorker) => void): Promise<void> {
  const b = await createTfjsBackend("wasm", { convWorker: true });
  const before = convSplitOptions.minFlops;
  try {
    const worker = currentConvWorker();
    assert.ok(worker, `the single-threaded build holds the conv worker (${b.device})`);
    assert.ok(await worker.ready(TEST_READY_MS), `worker failed: ${worker.failure}`);
    fn(b, worker);
  } finally {
    convSplitOptions.minFlops = before;
    b.dispose();
  }
}

/** y = op(x, w) and the gradients of sum(y * r) w.r.t. x and w, read to the host. */
function forwardAndGrads(b: Backend, x: Tensor, w: Tensor, op: (x: Tensor, w: Tensor) => Tensor) {
  const y = b.scope(() => op(x, w));
  const r = b.tensor(new Rng(7).normal(y.shape.reduce((a, d) => a * d)), y.shape);
  const { grads } = b.valueAndGrad(() => b.sum(b.mul(op(x, w), r)), [x, w]);
  const read = (t: Tensor) => b.read(t) as Float32Array;
  const out = { y: read(y), dx: read(grads[0]), dw: read(grads[1]) };
  [y, r, ...grads].forEach((t) => t.dispose());
  return out;
}

type Result = ReturnType<typeof forwardAndGrads> & { jobs: number };

/** Largest |a - b| / (1 + |b|). */
function relError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    worst = Math.max(worst, Math.abs(a[i] - b[i]) / (1 + Math.abs(b[i])));
  }
  return worst;
}

/** Odd and even batches, strides 1 and 2, paddings 0 and 1, output padding. */
const CASES = [
  { n: 5, ci: 6, co: 4, h: 4, k: 4, s: 2, p: 1, op: 0 },
  { n: 4, ci: 3, co: 5, h: 1, k: 4, s: 1, p: 0, op: 0 },
  { n: 3, ci: 4, co: 3, h: 5, k: 3, s: 2, p: 1, op: 1 },
  { n: 2, ci: 2, co: 2, h: 6, k: 3, s: 1, p: 1, op: 0 },
];

Deno.test({
  name: "convTranspose2d() split with the conv worker equals the unsplit result (dw to rounding)",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    await withConvWorker((b, worker) => {
      const rng = new Rng(3);
      for (const c of CASES) {
        const what = JSON.stringify(c);
        const x = b.variable(
          b.tensor(rng.normal(c.n * c.ci * c.h * c.h), [c.n, c.ci, c.h, c.h]),
          true,
        );
        const w = b.variable(
          b.tensor(rng.normal(c.ci * c.co * c.k * c.k), [c.ci, c.co, c.k, c.k]),
          true,
        );
        const op = (xt: Tensor, wt: Tensor) =>
          b.convTranspose2d(xt, wt, undefined, { stride: c.s, padding: c.p, outputPadding: c.op });
        const run = (minFlops: number): Result => {
          convSplitOptions.minFlops = minFlops;
          const jobs = worker.jobsDone;
          const got = forwardAndGrads(b, x, w, op);
          return { ...got, jobs: worker.jobsDone - jobs };
        };
        const split = run(0);
        const whole = run(Infinity);
        // Two forwards (y, then the loss), one dx and one dw job, each half in the worker.
        assert.equal(split.jobs, 4, `worker jobs ${what}`);
        assert.equal(whole.jobs, 0, `worker jobs with splitting off ${what}`);
        assert.deepEqual(split.y, whole.y, `y ${what}`);
        assert.deepEqual(split.dx, whole.dx, `dx ${what}`);
        assert.ok(relError(split.dw, whole.dw) <= 1e-5, `dw ${what}`);
        assert.ok(whole.dw.some((v) => v !== 0), `dw ${what} is not all zero`);
        x.dispose();
        w.dispose();
      }
      assert.equal(worker.failure, undefined);
    });
  },
});

Deno.test({
  name: "a conv skips the input gradient of an input not computed from the variables",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    await withConvWorker((b, worker) => {
      convSplitOptions.minFlops = 0; // every conv job goes half to the worker: jobs count them
      const rng = new Rng(6);
      const data = rng.normal(4 * 3 * 8 * 8);
      const xVar = b.variable(b.tensor(data, [4, 3, 8, 8]), true);
      const xConst = b.tensor(data, [4, 3, 8, 8]);
      const w = b.variable(b.tensor(rng.normal(5 * 3 * 4 * 4), [5, 3, 4, 4]), true);
      const wt = b.variable(b.tensor(rng.normal(5 * 2 * 4 * 4), [5, 2, 4, 4]), true);
      const opts = { stride: 2, padding: 1 };
      const gradsFor = (x: Tensor, params: Tensor[]) => {
        const jobs = worker.jobsDone;
        const { grads } = b.valueAndGrad(() => {
          // The input goes through an op on the tape first (a layout change, as real images do).
          const h = b.conv2d(b.mul(x, 1), w, undefined, opts); // [4, 5, 4, 4]
          return b.sum(b.pow(b.convTranspose2d(h, wt, undefined, opts), 2));
        }, params);
        return { grads: grads.map((g) => b.read(g)), jobs: worker.jobsDone - jobs };
      };
      const all = gradsFor(xVar, [xVar, w, wt]);
      // Two forwards, two weight gradients, and the conv's input gradient only when x is asked
      // for (the transposed conv's input comes from w, so its input gradient is always needed).
      assert.equal(all.jobs, 6);
      for (const [what, x] of [["a constant", xConst], ["another variable", xVar]] as const) {
        const weights = gradsFor(x, [w, wt]);
        assert.equal(weights.jobs, 5, what);
        assert.deepEqual(weights.grads, all.grads.slice(1), what);
      }
    });
  },
});

Deno.test({
  name: "a conv skips the weight gradient of a variable the gradient is not taken for",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    await withConvWorker((b, worker) => {
      convSplitOptions.minFlops = 0; // every conv job goes half to the worker: jobs count them
      const rng = new Rng(5);
      const x = b.variable(b.tensor(rng.normal(4 * 3 * 8 * 8), [4, 3, 8, 8]), true);
      const w = b.variable(b.tensor(rng.normal(5 * 3 * 4 * 4), [5, 3, 4, 4]), true);
      const wt = b.variable(b.tensor(rng.normal(5 * 2 * 4 * 4), [5, 2, 4, 4]), true);
      const opts = { stride: 2, padding: 1 };
      // conv [4,3,8,8] -> [4,5,4,4], then transposed conv back to [4,2,8,8].
      const loss = () =>
        b.sum(b.pow(b.convTranspose2d(b.conv2d(x, w, undefined, opts), wt, undefined, opts), 2));
      const gradsFor = (params: Tensor[]) => {
        const jobs = worker.jobsDone;
        const { grads } = b.valueAndGrad(loss, params);
        return { dx: b.read(grads[0]), jobs: worker.jobsDone - jobs };
      };
      const all = gradsFor([x, w, wt]);
      const onlyX = gradsFor([x]);
      // Two forwards, two input gradients, and the two weight gradients only when asked for.
      assert.equal(all.jobs, 6);
      assert.equal(onlyX.jobs, 4);
      assert.deepEqual(onlyX.dx, all.dx);
      // Outside valueAndGrad nothing is skipped: a later call with every weight gets them.
      assert.equal(gradsFor([x, w, wt]).jobs, 6);
    });
  },
});
