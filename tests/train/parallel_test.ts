import assert from "node:assert/strict";
import { listBackends } from "../../src/backend/select.ts";
import { loadCheckpoint } from "../../src/train/checkpoint.ts";
import { freePort, lastJson, rankEnv, runRanks } from "../_ranks.ts";

const WORKER = new URL("./_parallel_worker.ts", import.meta.url);
const torch = (await listBackends()).find((b) => b.name === "torch-cpu");
const opts = { ignore: !torch?.available, sanitizeResources: false, sanitizeOps: false };
const ALONE = { DENO_DIFFUSION_TORCH_THREADS: "1" };

type Weights = Record<string, number[]>;

/** What ProcessGroup.gradientSyncStats reports (the fields these tests read). */
interface Sync {
  steps: number;
  overlappedSteps: number;
  buckets: number;
  bucketsLaunchedInBackward: number;
}

async function job(
  world: number,
  spec: Record<string, unknown>,
  timeoutMs = 240_000,
  extraEnv: Record<string, string> = {},
): Promise<{ weights: Weights[]; sync: (Sync | null)[]; stderr: string[]; codes: number[] }> {
  const port = freePort();
  const envs = world === 1
    ? [ALONE]
    : Array.from({ length: world }, (_, r) => ({ ...rankEnv(r, world, port), ...extraEnv }));
  const results = await runRanks(WORKER, [JSON.stringify(spec)], envs, timeoutMs);
  const outs = results.map((r) =>
    r.code === 0 ? lastJson<{ weights: Weights; sync: Sync | null }>(r.stdout) : null
  );
  return {
    codes: results.map((r) => r.code),
    stderr: results.map((r) => r.stderr),
    weights: outs.map((o) => o?.weights ?? {}),
    sync: outs.map((o) => o?.sync ?? null),
  };
}

async function log(runDir: string): Promise<Record<string, number>[]> {
  const text = await Deno.readTextFile(`${runDir}/log.jsonl`);
  return text.trim().split("\n").map((l) => JSON.parse(l));
}

function assertClose(actual: Weights, expected: Weights, tol: number, what: string) {
  assert.deepEqual(Object.keys(actual).sort(), Object.keys(expected).sort());
  for (const [name, e] of Object.entries(expected)) {
    const a = actual[name];
    let worst = 0;
    for (let i = 0; i < e.length; i++) worst = Math.max(worst, Math.abs(a[i] - e[i]));
    assert.ok(worst <= tol, `${what}: ${name} differs by ${worst}`);
  }
}

function assertLossesClose(
  actual: Record<string, number>[],
  expected: Record<string, number>[],
  keys: string[],
) {
  assert.deepEqual(actual.map((l) => l.step), expected.map((l) => l.step));
  for (let i = 0; i < expected.length; i++) {
    for (const k of keys) {
      const diff = Math.abs(actual[i][k] - expected[i][k]);
      assert.ok(
        diff <= 1e-5 * Math.max(1, Math.abs(expected[i][k])),
        `step ${expected[i].step} ${k}: ${actual[i][k]} vs ${expected[i][k]}`,
      );
    }
  }
}

for (
  const [kind, steps, keys] of [["ddpm", 5, ["loss", "gradNorm"]], ["gan", 3, [
    "lossD",
    "lossG",
    "dReal",
    "dFake",
  ]]] as const
) {
  Deno.test(
    `${kind}: 2 ranks x batch 8 equal 1 process x batch 16 for ${steps} steps (losses and weights, 1e-5), overlapped or not (1e-6)`,
    opts,
    async () => {
      const root = await Deno.makeTempDir();
      try {
        const one = await job(1, { kind, runDir: `${root}/one`, batchSize: 16, maxSteps: steps });
        assert.deepEqual(one.codes, [0], one.stderr[0]);
        const two = await job(2, { kind, runDir: `${root}/two`, batchSize: 8, maxSteps: steps });
        assert.deepEqual(two.codes, [0, 0], two.stderr.join("\n"));
        assertLossesClose(await log(`${root}/two`), await log(`${root}/one`), [...keys]);
        assertClose(two.weights[0], one.weights[0], 1e-5, "rank 0 vs one process");
        // Every rank holds exactly rank 0's weights (BatchNorm running statistics included).
        assertClose(two.weights[1], two.weights[0], 0, "rank 1 vs rank 0");
        // The gradients were averaged by the overlapped path: every step's, in several buckets,
        // most of them launched while backward was still running.
        const sync = two.sync[0]!;
        assert.ok(sync.steps >= steps, JSON.stringify(sync));
        assert.equal(sync.overlappedSteps, sync.steps, JSON.stringify(sync));
        assert.ok(sync.buckets >= 3 * sync.steps, JSON.stringify(sync));
        assert.ok(sync.bucketsLaunchedInBackward >= sync.buckets / 2, JSON.stringify(sync));
        // The same job with the overlap off (all-reduce after backward) gives the same numbers.
        const flat = await job(
          2,
          {
            kind,
            runDir: `${root}/flat`,
            batchSize: 8,
            maxSteps: steps,
          },
          240_000,
          { DENO_DIFFUSION_DDP_OVERLAP: "0" },
        );
        assert.deepEqual(flat.codes, [0, 0], flat.stderr.join("\n"));
        assert.equal(flat.sync[0]!.overlappedSteps, 0);
        assert.equal(flat.sync[0]!.steps, sync.steps);
        assertClose(flat.weights[0], two.weights[0], 1e-6, "not overlapped vs overlapped");
      } finally {
        await Deno.remove(root, { recursive: true });
      }
    },
  );
}

/** A non-loopback IPv4 interface of this machine, as two machines would talk over, if any. */
const nic = Deno.networkInterfaces().find((i) =>
  i.family === "IPv4" && !i.address.startsWith("127.") && i.name !== "lo"
);

Deno.test(
  "ddpm: two 'machines' of one rank each (master on a network address, Gloo on that interface) equal 1 process",
  { ...opts, ignore: opts.ignore || nic === undefined },
  async () => {
    // The multi-machine path: LOCAL_WORLD_SIZE 1 on each, MASTER_ADDR not loopback, so the
    // shim binds Gloo to GLOO_SOCKET_IFNAME (or the hostname's address) instead of 127.0.0.1.
    const root = await Deno.makeTempDir();
    try {
      const spec = { kind: "ddpm", batchSize: 8, maxSteps: 3 };
      const one = await job(1, { ...spec, runDir: `${root}/one`, batchSize: 16 });
      assert.deepEqual(one.codes, [0], one.stderr[0]);
      const port = freePort();
      const envs = [0, 1].map((rank) => ({
        ...rankEnv(rank, 2, port),
        MASTER_ADDR: nic!.address,
        LOCAL_RANK: "0",
        LOCAL_WORLD_SIZE: "1",
        GLOO_SOCKET_IFNAME: nic!.name,
      }));
      const two = await runRanks(
        WORKER,
        [JSON.stringify({ ...spec, runDir: `${root}/two` })],
        envs,
        240_000,
      );
      assert.deepEqual(two.map((r) => r.code), [0, 0], two.map((r) => r.stderr).join("\n"));
      assertLossesClose(await log(`${root}/two`), await log(`${root}/one`), ["loss", "gradNorm"]);
      const weights = two.map((r) => lastJson<{ weights: Weights }>(r.stdout).weights);
      assertClose(weights[0], one.weights[0], 1e-5, "rank 0 vs one process");
      assertClose(weights[1], weights[0], 0, "rank 1 vs rank 0");
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
);

Deno.test(
  "ddpm: a rank killed mid-run stops the other (naming it); resuming on 1 process continues the 2-rank run",
  opts,
  async () => {
    const root = await Deno.makeTempDir();
    try {
      const spec = { kind: "ddpm", batchSize: 8, maxSteps: 5, checkpointEvery: 2 };
      const straight = await job(2, { ...spec, runDir: `${root}/straight` });
      assert.deepEqual(straight.codes, [0, 0], straight.stderr.join("\n"));

      const port = freePort();
      const broken = await runRanks(WORKER, [
        JSON.stringify({ ...spec, runDir: `${root}/resumed` }),
      ], [
        rankEnv(0, 2, port),
        { ...rankEnv(1, 2, port), DD_DIE_AT_STEP: "4" },
      ], 240_000);
      assert.equal(broken[1].signal, "SIGKILL");
      assert.notEqual(broken[0].code, 0);
      assert.match(broken[0].stderr, /rank 1 stopped responding/);
      assert.equal((await loadCheckpoint(`${root}/resumed`)).state.step, 2);

      const resumed = await job(1, {
        ...spec,
        batchSize: 16,
        runDir: `${root}/resumed`,
        resume: true,
      });
      assert.deepEqual(resumed.codes, [0], resumed.stderr[0]);
      assertLossesClose(await log(`${root}/resumed`), await log(`${root}/straight`), [
        "loss",
        "gradNorm",
      ]);
      assertClose(resumed.weights[0], straight.weights[0], 1e-5, "resumed on 1 process vs 2 ranks");
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
);

Deno.test(
  "ddpm: a 1-process run at batch 16 resumed on 2 ranks x 8 continues it exactly",
  opts,
  async () => {
    const root = await Deno.makeTempDir();
    try {
      const straight = await job(1, {
        kind: "ddpm",
        runDir: `${root}/straight`,
        batchSize: 16,
        maxSteps: 4,
      });
      assert.deepEqual(straight.codes, [0], straight.stderr[0]);
      const first = await job(1, {
        kind: "ddpm",
        runDir: `${root}/resumed`,
        batchSize: 16,
        maxSteps: 2,
      });
      assert.deepEqual(first.codes, [0], first.stderr[0]);
      const rest = await job(2, {
        kind: "ddpm",
        runDir: `${root}/resumed`,
        batchSize: 8,
        maxSteps: 4,
        resume: true,
      });
      assert.deepEqual(rest.codes, [0, 0], rest.stderr.join("\n"));
      assertLossesClose(await log(`${root}/resumed`), await log(`${root}/straight`), [
        "loss",
        "gradNorm",
      ]);
      assertClose(rest.weights[0], straight.weights[0], 1e-5, "resumed on 2 ranks vs 1 process");
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
);

Deno.test(
  "resuming with a global batch other than the run's is refused with the batch to use",
  opts,
  async () => {
    const root = await Deno.makeTempDir();
    try {
      const first = await job(1, {
        kind: "ddpm",
        runDir: `${root}/run`,
        batchSize: 16,
        maxSteps: 1,
      });
      assert.deepEqual(first.codes, [0], first.stderr[0]);
      const wrong = await job(2, {
        kind: "ddpm",
        runDir: `${root}/run`,
        batchSize: 4,
        maxSteps: 2,
        resume: true,
      });
      for (const code of wrong.codes) assert.notEqual(code, 0);
      assert.match(
        wrong.stderr[0],
        /global batch of 16; 4 x 2 rank\(s\) = 8 would change the data stream/,
      );
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
);
