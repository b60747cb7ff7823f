/**
 * One rank of the process-group tests (distributed_test.ts). The scenario is the first
 * argument; the torchrun variables come from the environment. Prints one JSON line of results.
 *
 * @module
 */
import type { Backend, Tensor } from "../../src/backend/backend.ts";
import { ProcessGroup } from "../../src/backend/distributed.ts";
import { Rng } from "../../src/core/rng.ts";
import { createBackend } from "../../src/backend/select.ts";
import { readTorchrunEnv } from "../../src/app/launch.ts";

const scenario = Deno.args[0];
const env = readTorchrunEnv()!;
const backend = await createBackend("torch-cpu");
const timeoutMs = Number(Deno.env.get("DD_TEST_TIMEOUT_MS") ?? 20_000);

const group = await ProcessGroup.init(backend, {
  masterAddr: env.masterAddr,
  masterPort: env.masterPort,
  rank: env.rank,
  worldSize: env.worldSize,
  timeoutMs,
  configHash: Deno.env.get("DD_TEST_CONFIG_HASH") ?? "same hash, with spaces",
  bucketBytes: 16, // several buckets even for these tiny tensors
});
const { rank, worldSize } = group;
const read = (t: Tensor) => Array.from(backend.read(t));

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

function collectives(): Record<string, unknown> {
  // Rank r holds r + 1 + i in a [2, 3] tensor and -(r + 1) in a [5] tensor.
  const a = backend.tensor(Float32Array.from({ length: 6 }, (_, i) => rank + 1 + i), [2, 3]);
  const b = backend.tensor(new Float32Array(5).fill(-(rank + 1)), [5]);
  group.allReduceMean([a, b]);
  const c = backend.variable(backend.tensor(new Float32Array(4).fill(10 * rank), [2, 2]), true);
  group.broadcast([c], worldSize - 1);
  const sums = group.allReduceSum(new Float64Array([rank + 0.5, 1]));
  const gathered = group.allGather(new Float32Array([rank, 2 * rank]));
  group.barrier();
  return {
    mean: [read(a), read(b)],
    shapes: [a.shape, b.shape],
    broadcast: read(c),
    sums: Array.from(sums),
    gathered: Array.from(gathered),
  };
}

/** SyncBatchNorm on this rank's slice against plain BatchNorm on the whole batch. */
function syncBatchNorm(b: Backend): Record<string, number> {
  const [n, c, h, w] = [3, 4, 2, 2];
  const per = c * h * w;
  const rng = new Rng(11);
  const xAll = rng.normal(worldSize * n * per).map((v, i) => v * 2 + (i % 4)); // offset channels
  const cotAll = rng.normal(worldSize * n * per);
  const weight0 = rng.normal(c);
  const bias0 = rng.normal(c);
  const run = (x: Float32Array, cot: Float32Array, rows: number) => {
    const x0 = b.variable(b.tensor(x, [rows, c, h, w]), true);
    const weight = b.variable(b.tensor(weight0, [c]), true);
    const bias = b.variable(b.tensor(bias0, [c]), true);
    const mean = b.variable(b.zeros([c]), false);
    const variance = b.variable(b.tensor(new Float32Array(c).fill(1), [c]), false);
    let y: number[] = [];
    const { grads } = b.valueAndGrad(() => {
      const out = b.batchNorm(x0, weight, bias, mean, variance, { training: true });
      y = read(out);
      return b.sum(b.mul(out, b.tensor(cot, [rows, c, h, w])));
    }, [x0, weight, bias]);
    return {
      y,
      dx: read(grads[0]),
      dw: read(grads[1]),
      db: read(grads[2]),
      mean: read(mean),
      variance: read(variance),
    };
  };
  group.syncBatchNorm(false);
  const full = run(xAll, cotAll, worldSize * n);
  group.syncBatchNorm(true);
  const lo = rank * n * per;
  const hi = lo + n * per;
  const mine = run(xAll.slice(lo, hi), cotAll.slice(lo, hi), n);
  group.syncBatchNorm(false);
  const dw = group.allReduceSum(Float64Array.from([...mine.dw, ...mine.db]));
  return {
    y: maxDiff(mine.y, full.y.slice(lo, hi)),
    dx: maxDiff(mine.dx, full.dx.slice(lo, hi)),
    dwdb: maxDiff(dw, [...full.dw, ...full.db]),
    running: maxDiff([...mine.mean, ...mine.variance], [...full.mean, ...full.variance]),
  };
}

/**
 * valueAndGradMean with the all-reduce overlapped with backward against the same without
 * overlap, on a 3-layer tanh MLP whose input differs per rank. Parameter 0 is not used by the
 * loss: its gradient is zero and its bucket (the last, buckets being in reverse order) can only
 * go out after backward. With 16-byte buckets every parameter has a bucket of its own.
 */
function overlap(b: Backend): Record<string, unknown> {
  const rng = new Rng(5);
  const shapes = [[3], [8, 6], [8], [8, 8], [8], [4, 8], [4]];
  const params = shapes.map((s) =>
    b.variable(b.tensor(rng.normal(s.reduce((x, y) => x * y)), s), true)
  );
  const x = b.tensor(new Rng(100 + rank).normal(5 * 6), [5, 6]); // [B, 6], this rank's own
  const lossFn = () => {
    let h = x;
    for (let layer = 0; layer < 3; layer++) {
      h = b.tanh(b.linear(h, params[1 + 2 * layer], params[2 + 2 * layer])); // [B, out]
    }
    return b.mean(b.mul(h, h));
  };
  group.overlap = false;
  const flat = group.valueAndGradMean(lossFn, params);
  const before = group.gradientSyncStats();
  group.overlap = true;
  const overlapped = group.valueAndGradMean(lossFn, params);
  const after = group.gradientSyncStats();
  // An independent mean: every rank's own gradients, gathered and averaged on the host.
  const local = b.valueAndGrad(lossFn, params);
  const mean = local.grads.map((g) => {
    const all = group.allGather(Float32Array.from(b.read(g)));
    return Array.from({ length: all.length / worldSize }, (_, i) => {
      let sum = 0;
      for (let r = 0; r < worldSize; r++) sum += all[r * (all.length / worldSize) + i];
      return sum / worldSize;
    });
  });
  const worst = (xs: Tensor[], ys: ArrayLike<number>[]) =>
    Math.max(...xs.map((t, i) => maxDiff(read(t), ys[i])));
  return {
    overlappedVsFlat: worst(overlapped.grads, flat.grads.map(read)),
    overlappedVsHost: worst(overlapped.grads, mean),
    flatVsHost: worst(flat.grads, mean),
    value: overlapped.value,
    localValue: local.value,
    unused: read(overlapped.grads[0]),
    shapes: overlapped.grads.map((g) => g.shape),
    before,
    after,
  };
}

let result: Record<string, unknown> = {};
switch (scenario) {
  case "collectives":
    result = collectives();
    break;
  case "overlap":
    backend.scope(() => {
      result = overlap(backend);
    });
    break;
  case "sync-batch-norm":
    result = backend.scope(() => syncBatchNorm(backend));
    break;
  case "dead-rank":
    // Rank DD_TEST_DEAD_RANK (default 1) dies as with `kill -9` once the group is up; the
    // other then enters a collective.
    if (rank === Number(Deno.env.get("DD_TEST_DEAD_RANK") ?? 1)) Deno.kill(Deno.pid, "SIGKILL");
    await new Promise((r) => setTimeout(r, 300));
    group.allReduceSum(new Float64Array([1]));
    break;
  case "hang":
    // Rank 1 stays alive but never joins the collective that rank 0 waits in.
    if (rank === 1) {
      await new Promise((r) => setTimeout(r, timeoutMs * 2));
    } else {
      group.allReduceSum(new Float64Array([1]));
    }
    break;
  default:
    throw new Error(`unknown scenario ${scenario}`);
}
console.log(JSON.stringify(result));
group.dispose();
backend.dispose();
