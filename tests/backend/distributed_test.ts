import assert from "node:assert/strict";
import { listBackends } from "../../src/backend/select.ts";
import { freePort, lastJson, rankEnv, runRanks } from "../_ranks.ts";

/**
 * The timeout of tests where both ranks must start before it passes: one timeout covers the
 * rendezvous too, and under a loaded test run two processes came up more than 2 s apart.
 */
const STARTUP_SKEW_MS = "10000";

const WORKER = new URL("./_distributed_worker.ts", import.meta.url);
const torch = (await listBackends()).find((b) => b.name === "torch-cpu");
const ignore = !torch?.available;
const opts = { ignore, sanitizeResources: false, sanitizeOps: false };

function envs(world: number, extra: Record<string, string>[] = []) {
  const port = freePort();
  return Array.from({ length: world }, (_, r) => ({ ...rankEnv(r, world, port), ...extra[r] }));
}

Deno.test(
  "all-reduce mean, broadcast, sum and gather agree with their definitions on 2 ranks",
  opts,
  async () => {
    const results = await runRanks(WORKER, ["collectives"], envs(2), 60_000);
    for (const r of results) assert.equal(r.code, 0, r.stderr);
    for (const r of results) {
      const out = lastJson<Record<string, number[][] | number[]>>(r.stdout);
      // mean over ranks of (r + 1 + i) is 1.5 + i; of -(r + 1) is -1.5
      assert.deepEqual(out.mean, [[1.5, 2.5, 3.5, 4.5, 5.5, 6.5], [-1.5, -1.5, -1.5, -1.5, -1.5]]);
      assert.deepEqual(out.shapes, [[2, 3], [5]]);
      assert.deepEqual(out.broadcast, [10, 10, 10, 10]); // rank 1's values
      assert.deepEqual(out.sums, [2, 2]);
      assert.deepEqual(out.gathered, [0, 0, 1, 2]);
    }
  },
);

/** What the worker's "overlap" scenario prints (ProcessGroup.gradientSyncStats in before/after). */
interface OverlapResult {
  overlappedVsFlat: number;
  overlappedVsHost: number;
  flatVsHost: number;
  value: number;
  localValue: number;
  unused: number[];
  shapes: number[][];
  before: Record<string, number>;
  after: Record<string, number>;
}

Deno.test(
  "gradients all-reduced during backward equal those all-reduced after it (1e-6), bucket by bucket",
  opts,
  async () => {
    const results = await runRanks(WORKER, ["overlap"], envs(2), 60_000);
    const out = results.map((r) => {
      assert.equal(r.code, 0, r.stderr);
      return lastJson<OverlapResult>(r.stdout);
    });
    for (const o of out) {
      assert.ok(o.overlappedVsFlat <= 1e-6, `overlapped vs after-backward: ${o.overlappedVsFlat}`);
      assert.ok(o.overlappedVsHost <= 1e-6, `overlapped vs host mean: ${o.overlappedVsHost}`);
      assert.ok(o.flatVsHost <= 1e-6, `after-backward vs host mean: ${o.flatVsHost}`);
      assert.deepEqual(o.unused, [0, 0, 0]);
      assert.deepEqual(o.shapes, [[3], [8, 6], [8], [8, 8], [8], [4, 8], [4]]);
      // The loss is this rank's own; only gradients are averaged.
      assert.equal(o.value, o.localValue);
      // First call not overlapped, second overlapped: 7 buckets, all but the unused
      // parameter's launched before backward returned.
      assert.deepEqual([o.before.steps, o.before.overlappedSteps, o.before.buckets], [1, 0, 0]);
      assert.deepEqual(
        [
          o.after.steps,
          o.after.overlappedSteps,
          o.after.buckets,
          o.after.bucketsLaunchedInBackward,
        ],
        [2, 1, 7, 6],
      );
      assert.ok(o.after.hiddenMs <= o.after.inFlightMs + 1e-9, JSON.stringify(o.after));
    }
    assert.notEqual(out[0].value, out[1].value); // the ranks really had different data
  },
);

Deno.test(
  "SyncBatchNorm on 2 ranks x 3 equals BatchNorm on 6: outputs, gradients, running stats",
  opts,
  async () => {
    const results = await runRanks(WORKER, ["sync-batch-norm"], envs(2), 60_000);
    for (const r of results) {
      assert.equal(r.code, 0, r.stderr);
      const out = lastJson<Record<string, number>>(r.stdout);
      for (const key of ["y", "dx", "dwdb", "running"]) {
        assert.ok(out[key] < 1e-5, `${key} differs by ${out[key]}`);
      }
    }
  },
);

Deno.test(
  "a rank killed with SIGKILL makes the other fail within the timeout, naming it",
  opts,
  async () => {
    const results = await runRanks(
      WORKER,
      ["dead-rank"],
      envs(2, [{ DD_TEST_TIMEOUT_MS: STARTUP_SKEW_MS }, { DD_TEST_TIMEOUT_MS: STARTUP_SKEW_MS }]),
      60_000,
    );
    assert.equal(results[1].signal, "SIGKILL");
    assert.notEqual(results[0].code, 0);
    assert.match(results[0].stderr, /all_reduce.*rank 1 stopped responding/s);
  },
);

Deno.test(
  "when rank 0 (the rendezvous host) is killed, the other rank says rank 0 is unreachable",
  opts,
  async () => {
    const extra = { DD_TEST_TIMEOUT_MS: STARTUP_SKEW_MS, DD_TEST_DEAD_RANK: "0" };
    const results = await runRanks(WORKER, ["dead-rank"], envs(2, [extra, extra]), 60_000);
    assert.equal(results[0].signal, "SIGKILL");
    assert.notEqual(results[1].code, 0);
    assert.match(results[1].stderr, /failed on rank 1 of 2: rank 0 is unreachable/);
  },
);

Deno.test(
  "a rank that hangs outside the collective is named once the timeout passes",
  opts,
  async () => {
    const results = await runRanks(
      WORKER,
      ["hang"],
      envs(2, [{ DD_TEST_TIMEOUT_MS: STARTUP_SKEW_MS }, { DD_TEST_TIMEOUT_MS: STARTUP_SKEW_MS }]),
      60_000,
    );
    assert.notEqual(results[0].code, 0);
    assert.match(results[0].stderr, /rank 1 is alive but has not reached this collective/);
  },
);

Deno.test("ranks started with different WORLD_SIZE refuse to start and say so", opts, async () => {
  const port = freePort();
  const results = await runRanks(WORKER, ["collectives"], [
    { ...rankEnv(0, 2, port), DD_TEST_TIMEOUT_MS: STARTUP_SKEW_MS },
    { ...rankEnv(1, 3, port), DD_TEST_TIMEOUT_MS: STARTUP_SKEW_MS },
  ], 60_000);
  for (const r of results) assert.notEqual(r.code, 0);
  assert.match(results[0].stderr, /rank 1 was started with WORLD_SIZE 3 but rank 0 with 2/);
  assert.match(results[1].stderr, /WORLD_SIZE/);
});

Deno.test("ranks with different configuration hashes refuse to start", opts, async () => {
  const results = await runRanks(
    WORKER,
    ["collectives"],
    envs(2, [
      { DD_TEST_CONFIG_HASH: "aaaa", DD_TEST_TIMEOUT_MS: STARTUP_SKEW_MS },
      { DD_TEST_CONFIG_HASH: "bbbb", DD_TEST_TIMEOUT_MS: STARTUP_SKEW_MS },
    ]),
    60_000,
  );
  for (const r of results) {
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /runs a different configuration/);
  }
});

Deno.test("rank 0 on a port in use fails at once and names the port", opts, async () => {
  const listener = Deno.listen({ hostname: "0.0.0.0", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  try {
    const [r] = await runRanks(WORKER, ["collectives"], [
      { ...rankEnv(0, 2, port), DD_TEST_TIMEOUT_MS: STARTUP_SKEW_MS },
    ], 60_000);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, new RegExp(`:${port}.*port in use`, "s"));
  } finally {
    listener.close();
  }
});

Deno.test("a rank whose master never answers gives up after its timeout", opts, async () => {
  const [r] = await runRanks(WORKER, ["collectives"], [
    { ...rankEnv(1, 2, freePort()), DD_TEST_TIMEOUT_MS: "1500" },
  ], 60_000);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /rank 1 could not reach the rendezvous store of rank 0 at 127\.0\.0\.1/);
});
