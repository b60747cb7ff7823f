import assert from "node:assert/strict";
import { encodePng } from "../../src/io/png.ts";
import { loadCheckpoint } from "../../src/train/checkpoint.ts";
import { listBackends } from "../../src/backend/select.ts";
import { runCli, spawnCli } from "./_cli.ts";

const torch = (await listBackends()).find((b) => b.name === "torch-cpu");
const opts = { ignore: !torch?.available, sanitizeResources: false, sanitizeOps: false };

const cli = (args: string[]) => runCli(args);

/** ROOT/train/{a,b}/*.png: 8 noisy 32x32 images per class. */
async function tinyImageFolder(root: string): Promise<void> {
  let seed = 1;
  for (const name of ["a", "b"]) {
    await Deno.mkdir(`${root}/train/${name}`, { recursive: true });
    for (let i = 0; i < 8; i++) {
      const data = Uint8Array.from(
        { length: 32 * 32 * 3 },
        () => (seed = (seed * 69069 + 1) >>> 0) >>> 24,
      );
      await Deno.writeFile(
        `${root}/train/${name}/${i}.png`,
        encodePng({ width: 32, height: 32, channels: 3, data }),
      );
    }
  }
}

const GAN = [
  "--model",
  "gan",
  "--ngf",
  "4",
  "--ndf",
  "4",
  "--nz",
  "8",
  "--classes",
  "a,b",
  "--preview-every",
  "0",
];

/** `train` of a 2-rank GAN job on ROOT/data into ROOT/run, 2 x batch 4, for `maxSteps`. */
const ganJob = (root: string, maxSteps: number, extra: string[] = []) => [
  "train",
  "--backend",
  "torch-cpu",
  "--nproc",
  "2",
  ...GAN,
  "--data",
  `${root}/data`,
  "--out",
  `${root}/run`,
  "--batch-size",
  "4",
  "--max-steps",
  String(maxSteps),
  ...extra,
];

/** The GAN job, logging every step, running until it is stopped. */
const spawnLongGanJob = (root: string, extra: string[] = []) =>
  spawnCli(ganJob(root, 100000, ["--log-every", "1", ...extra]));

Deno.test("train --nproc 2 on a tfjs backend is an error naming the torch backends", async () => {
  const r = await cli(["train", "--backend", "tfjs-cpu", "--nproc", "2", "--max-steps", "1"]);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /cannot run 2 processes.*torch-cpu.*torch-cuda/);
});

Deno.test(
  "train --nproc 2 trains one job: global batch 8 of 2 x 4, one progress line, rank 0's checkpoint",
  opts,
  async () => {
    const root = await Deno.makeTempDir();
    try {
      await tinyImageFolder(`${root}/data`);
      const r = await cli(ganJob(root, 2));
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stderr.match(/done: step 2\/2/g)?.length, 1, r.stderr);
      assert.doesNotMatch(r.stderr, /\[rank 1\] .*done/);
      const ckpt = await loadCheckpoint(`${root}/run`);
      assert.equal(ckpt.state.step, 2);
      assert.equal(ckpt.state.train.globalBatch, 8);
      assert.equal(ckpt.state.train.worldSize, 2);
      // One process takes the run over with the whole global batch.
      const resumed = await cli([
        "train",
        "--backend",
        "torch-cpu",
        "--resume",
        "--out",
        `${root}/run`,
        "--max-steps",
        "3",
      ]);
      assert.equal(resumed.code, 0, resumed.stderr);
      const after = await loadCheckpoint(`${root}/run`);
      assert.equal(after.state.step, 3);
      assert.equal(after.state.train.batchSize, 8);
      assert.equal(after.state.train.worldSize, 1);
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
);

Deno.test(
  "Ctrl-C on the launcher stops every rank after the same step with one checkpoint",
  opts,
  async () => {
    const root = await Deno.makeTempDir();
    try {
      await tinyImageFolder(`${root}/data`);
      const child = spawnLongGanJob(root);
      const killer = setTimeout(() => child.kill("SIGKILL"), 180_000);
      try {
        // Wait (bounded by the killer) for training to be under way, then press Ctrl-C once.
        for (;;) {
          await new Promise((r) => setTimeout(r, 500));
          const log = await Deno.readTextFile(`${root}/run/log.jsonl`).catch(() => "");
          if (log.split("\n").filter(Boolean).length >= 2) break;
        }
        child.kill("SIGINT");
        const out = await child.output();
        assert.equal(out.code, 130, new TextDecoder().decode(out.stderr));
      } finally {
        clearTimeout(killer);
      }
      const ckpt = await loadCheckpoint(`${root}/run`);
      assert.ok(
        ckpt.state.step >= 2 && ckpt.state.step < 100000,
        `checkpoint at step ${ckpt.state.step}`,
      );
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
);

Deno.test(
  "rank 0 failing to write its log stops every rank at the next step, naming rank 0 and the write; the checkpoint stays",
  opts,
  async () => {
    const root = await Deno.makeTempDir();
    try {
      await tinyImageFolder(`${root}/data`);
      const log = `${root}/run/log.jsonl`;
      const child = spawnLongGanJob(root, ["--checkpoint-every", "2"]);
      // A job that only noticed at the end, or when a collective timed out (5 min), is killed
      // here and fails the exit-code check below.
      const killer = setTimeout(() => child.kill("SIGKILL"), 180_000);
      let out: Deno.CommandOutput;
      try {
        // Wait (bounded by the killer) for a checkpoint, then put a folder where the log is:
        // rank 0's next append fails (root ignores a read-only mode, not a folder).
        for (;;) {
          await new Promise((r) => setTimeout(r, 500));
          const text = await Deno.readTextFile(log).catch(() => "");
          if (text.split("\n").filter(Boolean).length >= 3) break;
        }
        for (;;) {
          await Deno.remove(log).catch(() => {});
          try {
            await Deno.mkdir(log);
            break;
          } catch (e) {
            if (!(e instanceof Deno.errors.AlreadyExists)) throw e; // rank 0 appended again
          }
        }
        out = await child.output();
      } finally {
        clearTimeout(killer);
      }
      const stderr = new TextDecoder().decode(out.stderr);
      assert.equal(out.code, 1, stderr);
      const own = stderr.match(
        /^(?!\[rank)[^\n]*rank 0 could not write log\.jsonl \([^)]*log\.jsonl\): [^\n]*Every rank stopped after step (\d+); the last good checkpoint \(step (\d+)\)/m,
      );
      assert.ok(own, `rank 0's error names the write and its cause:\n${stderr}`);
      const other = stderr.match(
        /\[rank 1\] [^\n]*rank 0 could not write log\.jsonl \(its error is in rank 0's output\)\. Every rank stopped after step (\d+); the last good checkpoint \(step (\d+)\)/,
      );
      assert.ok(other, `rank 1 stops on its own with rank 0 named:\n${stderr}`);
      assert.equal(other[1], own[1], "both ranks stopped after the same step");
      assert.equal(other[2], own[2]);
      const ckpt = await loadCheckpoint(`${root}/run`);
      assert.equal(ckpt.state.step, Number(own[2]));
      assert.ok(ckpt.state.step >= 2 && ckpt.state.step <= Number(own[1]), stderr);
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
);
