/**
 * `fid --ckpt --nproc 2` and `study --nproc 2` (2 processes x 1 thread on Gloo) against one
 * process. Inception weights are random ones in pytorch-fid's layout (the fixture script needs
 * Debian's python3-torch).
 *
 * @module
 */
import assert from "node:assert/strict";
import { createBackend, listBackends } from "../../src/backend/select.ts";
import { DEFAULT_GAN_CONFIG } from "../../src/gan/task.ts";
import { encodePng } from "../../src/io/png.ts";
import { loadCheckpoint } from "../../src/train/checkpoint.ts";
import { makeFreshRun, runCli } from "./_cli.ts";
import { makeInceptionFixture } from "../_inception_weights.ts";

const torch = (await listBackends()).find((b) => b.name === "torch-cpu");
const opts = { ignore: !torch?.available, sanitizeResources: false, sanitizeOps: false };

const cli = (args: string[], env: Record<string, string>) =>
  runCli(args, { env, timeoutMs: 300_000 });

/** ROOT/{train,test}/a/*.png: `count` noisy 32x32 images per split. */
async function tinyImageFolder(root: string, count: number): Promise<void> {
  let seed = 7;
  for (const split of ["train", "test"]) {
    await Deno.mkdir(`${root}/${split}/a`, { recursive: true });
    for (let i = 0; i < count; i++) {
      const data = Uint8Array.from(
        { length: 32 * 32 * 3 },
        () => (seed = (seed * 69069 + 1) >>> 0) >>> 24,
      );
      await Deno.writeFile(
        `${root}/${split}/a/${i}.png`,
        encodePng({ width: 32, height: 32, channels: 3, data }),
      );
    }
  }
}

let fixture: Promise<string> | undefined;
/** The random Inception weights, made once for this file. */
function inception(root: string): Promise<string> {
  fixture ??= makeInceptionFixture(`${root}/inception`);
  return fixture;
}
const shared = await Deno.makeTempDir({ prefix: "fid_study_parallel_" });
globalThis.addEventListener("unload", () => Deno.removeSync(shared, { recursive: true }));

Deno.test(
  "fid --ckpt --nproc 2 gives one process's FID and KID exactly, and shares the reference cache",
  opts,
  async () => {
    const root = await Deno.makeTempDir({ dir: shared });
    const weights = await inception(shared);
    await tinyImageFolder(`${root}/data`, 5);
    {
      using backend = await createBackend("torch-cpu");
      await makeFreshRun(backend, `${root}/run`, {
        kind: "gan",
        config: { ...DEFAULT_GAN_CONFIG, nz: 8, ngf: 4, ndf: 4 },
      }, 4);
    }
    // 5 samples and 5 reference images in Inception batches of 2, sampled 2 per call: rank 0
    // takes images [0, 4) and rank 1 image 4 of each side.
    const args = [
      "fid",
      "--ckpt",
      `${root}/run`,
      "--ref",
      `${root}/data:test`,
      "--n",
      "5",
      "--seed",
      "2",
      "--dims",
      "64",
      "--batch-size",
      "2",
      "--sample-chunk",
      "2",
      "--kid",
      "--json",
      "--backend",
      "torch-cpu",
      "--inception-weights",
      weights,
      "--skip-weights-check",
    ];
    const one = await cli(args, { XDG_CACHE_HOME: `${root}/cache-one` });
    assert.equal(one.code, 0, one.stderr);
    const two = await cli([...args, "--nproc", "2"], { XDG_CACHE_HOME: `${root}/cache-two` });
    assert.equal(two.code, 0, two.stderr);
    const a = JSON.parse(one.stdout.trim().split("\n").at(-1)!);
    const b = JSON.parse(two.stdout.trim().split("\n").at(-1)!);
    assert.equal(b.n_a, 5);
    assert.equal(b.n_b, 5);
    // Every image runs in the same Inception batch and the same sampling call on torch-cpu
    // with one thread per process: the features, and so the scores, are equal to the bit.
    assert.ok(Number.isFinite(a.fid) && a.fid > 0, `fid ${a.fid}`);
    assert.equal(b.fid, a.fid);
    assert.equal(b.kid, a.kid);
    // Rank 0 wrote the reference features; a second job reads them on every rank.
    const again = await cli([...args, "--nproc", "2"], { XDG_CACHE_HOME: `${root}/cache-two` });
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stderr, /reference features from the cache/);
    assert.equal(JSON.parse(again.stdout.trim().split("\n").at(-1)!).fid, a.fid);
  },
);

Deno.test(
  "study --nproc 2 runs every entry on both ranks: one process's scores, rank 0's files",
  opts,
  async () => {
    const root = await Deno.makeTempDir({ dir: shared });
    const weights = await inception(shared);
    await tinyImageFolder(`${root}/data`, 8);
    const plan = {
      name: "tiny-ranks",
      entries: [{
        id: "gan-a",
        label: "Tiny DCGAN",
        table: "GAN",
        kind: "gan",
        classes: "a",
        samples: 4,
        batchSize: 4,
        config: { nz: 8, ngf: 4, ndf: 4 },
        budget: { epochs: 1 },
      }],
    };
    await Deno.writeTextFile(`${root}/plan.json`, JSON.stringify(plan));
    const args = (out: string) => [
      "study",
      `${root}/plan.json`,
      "--data",
      `${root}/data`,
      "--out",
      out,
      "--backend",
      "torch-cpu",
      "--inception-weights",
      weights,
      "--no-download",
    ];
    const env = { XDG_CACHE_HOME: `${root}/cache` };
    const one = await cli(args(`${root}/one`), env);
    assert.equal(one.code, 0, one.stderr);
    const two = await cli([...args(`${root}/two`), "--nproc", "2"], env);
    assert.equal(two.code, 0, two.stderr);
    assert.match(two.stderr, /2 ranks\)/);
    const result = async (dir: string) =>
      JSON.parse(await Deno.readTextFile(`${dir}/entries/gan-a/result.json`));
    const [r1, r2] = [await result(`${root}/one`), await result(`${root}/two`)];
    // The plan's batch 4 is the global batch: 2 ranks x 2 train what one process x 4 does.
    const ckpt = await loadCheckpoint(`${root}/two/entries/gan-a`);
    assert.equal(ckpt.state.train.worldSize, 2);
    assert.equal(ckpt.state.train.globalBatch, 4);
    assert.equal(r2.train.steps, r1.train.steps);
    assert.equal(r2.fingerprint, r1.fingerprint);
    const [s1, s2] = [r1.scores[0], r2.scores[0]];
    // The floor (training vs test images) involves no training: equal to the bit.
    assert.equal(s2.floor, s1.floor);
    // The weights agree to ~1e-5 (the trainer's own 2 x 8 == 1 x 16 test); a rare sample pixel
    // may round the other way, so the FID is compared to 1e-3 relative.
    assert.ok(
      Math.abs(s2.fid - s1.fid) <= 1e-3 * Math.max(1, Math.abs(s1.fid)),
      `fid ${s2.fid} vs ${s1.fid}`,
    );
    for (const f of ["samples.png", "progress.gif", "fid-samples/00003.png"]) {
      await Deno.stat(`${root}/two/entries/gan-a/${f}`);
    }
    await Deno.stat(`${root}/two/report.md`);
    // Rank 1 wrote nothing of its own: its progress lines are not echoed either.
    assert.doesNotMatch(two.stderr, /\[rank 1\] .*(done|wrote)/);
  },
);

Deno.test("study --nproc 2 refuses a plan whose batch does not split over the ranks, before any work", async () => {
  const root = await Deno.makeTempDir({ dir: shared });
  const plan = {
    name: "odd",
    entries: [{
      id: "gan-odd",
      kind: "gan",
      classes: "a",
      samples: 4,
      batchSize: 3,
      budget: { epochs: 1 },
    }],
  };
  await Deno.writeTextFile(`${root}/plan.json`, JSON.stringify(plan));
  const r = await cli(
    [
      "study",
      `${root}/plan.json`,
      "--out",
      `${root}/out`,
      "--backend",
      "torch-cpu",
      "--nproc",
      "2",
    ],
    {},
  );
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /entry gan-odd: its batch of 3 images does not split over 2 ranks/);
  assert.equal(await Deno.stat(`${root}/out`).then(() => true, () => false), false);
});
