/**
 * `cli.ts train` and `eval` as a user runs them: flags checked before work, a resume that
 * keeps the run's settings and finds its data from any folder, and a moved or changed data set
 * told apart by its fingerprint.
 */
import assert from "node:assert/strict";
import { encodePng } from "../../src/io/png.ts";

import { runCli } from "./_cli.ts";

const cli = (cwd: string, ...args: string[]) =>
  runCli(args, { cwd, env: { DENO_DIFFUSION_BACKEND: "torch-cpu" }, timeoutMs: 1_800_000 });

/** ROOT/train/{a,b}/*.png: 8 noisy `size`-square images per class. */
async function imageFolder(root: string, size = 32, seed = 1): Promise<void> {
  let state = seed;
  for (const [name, base] of [["a", 200], ["b", 40]] as const) {
    await Deno.mkdir(`${root}/train/${name}`, { recursive: true });
    for (let i = 0; i < 8; i++) {
      const data = new Uint8Array(size * size * 3).map(() => {
        state = (state * 1103515245 + 12345) >>> 0;
        return base + (state >>> 26);
      });
      await Deno.writeFile(
        `${root}/train/${name}/${i}.png`,
        encodePng({ width: size, height: size, channels: 3, data }),
      );
    }
  }
}

const TINY_GAN = ["--model", "gan", "--ngf", "4", "--ndf", "4", "--nz", "8", "--batch-size", "4"];

function logOf(run: string): Promise<Record<string, number>[]> {
  return Deno.readTextFile(`${run}/log.jsonl`).then((t) =>
    t.trim().split("\n").map((l) => JSON.parse(l))
  );
}

Deno.test("bad budget and seed values are clear flag errors", async () => {
  const root = await Deno.makeTempDir();
  try {
    const negative = await cli(root, "train", "--max-steps", "-5");
    assert.equal(negative.code, 2);
    assert.match(negative.stderr, /--max-steps must be an integer >= 1, got '-5'/);
    assert.doesNotMatch(negative.stderr, /ambiguous/);
    const empty = await cli(root, "train", "--seed", "");
    assert.equal(empty.code, 2);
    assert.match(empty.stderr, /--seed must be an integer in 0\.\.4294967295, got ''/);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("flags that do not apply to the model or mode are errors", async () => {
  const root = await Deno.makeTempDir();
  try {
    const cfg = await cli(root, "train", "--cfg-drop", "0.2");
    assert.equal(cfg.code, 2);
    assert.match(cfg.stderr, /--cfg-drop only apply to --cond/);
    const ema = await cli(root, "train", "--ema", "0", "--ema-start", "10");
    assert.equal(ema.code, 2);
    assert.match(ema.stderr, /--ema-start has no effect with --ema 0/);
    const ganSize = await cli(root, "train", "--model", "gan", "--image-size", "64");
    assert.equal(ganSize.code, 2);
    assert.match(ganSize.stderr, /DCGAN is built for 32x32 images: pass --image-size 32/);
    const resumeClasses = await cli(root, "train", "--resume", "--out", "run", "--classes", "a");
    assert.equal(resumeClasses.code, 2);
    assert.match(resumeClasses.stderr, /from the checkpoint; drop --classes \(--data may name/);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("a non-CIFAR folder trains on all its classes; other sizes need --image-size", async () => {
  const root = await Deno.makeTempDir();
  try {
    await imageFolder(`${root}/big`, 40);
    const refused = await cli(root, "train", ...TINY_GAN, "--data", "big", "--out", "r1");
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /images are 40x40, not 32x32: pass --image-size 32/);
    await assert.rejects(() => Deno.stat(`${root}/r1`), Deno.errors.NotFound);
    const resized = await cli(
      root,
      "train",
      ...TINY_GAN,
      "--data",
      "big",
      "--image-size",
      "32",
      "--max-steps",
      "1",
      "--out",
      "r2",
    );
    assert.equal(resized.code, 0, resized.stderr);
    assert.match(resized.stderr, /on 16 a,b images/);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("resume keeps the run's settings, works from any folder and checks moved data", async () => {
  const root = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${root}/work`);
    await Deno.mkdir(`${root}/elsewhere`);
    await imageFolder(`${root}/work/data`);
    // Relative paths, as a user types them; 16 images / batch 4 = 4 steps per epoch.
    const first = await cli(
      `${root}/work`,
      "train",
      ...TINY_GAN,
      "--data",
      "data",
      "--d-noise",
      "0.1",
      "--max-steps",
      "3",
      "--log-every",
      "1",
      "--checkpoint-every",
      "2",
      "--out",
      "run",
    );
    assert.equal(first.code, 0, first.stderr);
    const run = `${root}/work/run`;
    const saved = JSON.parse(await Deno.readTextFile(`${run}/checkpoint.json`)).train;
    assert.equal(saved.source.path, await Deno.realPath(`${root}/work/data`));
    assert.match(saved.source.fingerprint, /^16x3x32x32:[0-9a-f]{16}$/);
    assert.equal(saved.logEvery, 1);
    assert.equal(saved.checkpointEvery, 2);
    // Stopped mid-epoch (step 3 of 4): a final grid, and the GIF has it.
    await Deno.stat(`${run}/samples/step-00000003.png`);
    await Deno.stat(`${run}/progress.gif`);
    const log = await logOf(run);
    assert.deepEqual(log.map((l) => l.step), [1, 2, 3]);
    assert.ok(log.every((l) => typeof l.dNoise === "number"), "the GAN log has dNoise");
    assert.ok(log[0].dNoise > log[2].dNoise && log[0].dNoise <= 0.1, "dNoise anneals");

    // From another folder; --log-every 1 is kept (the default 10 would log step 5 only).
    const resumed = await cli(
      `${root}/elsewhere`,
      "train",
      "--resume",
      "--out",
      run,
      "--max-steps",
      "5",
    );
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.deepEqual((await logOf(run)).map((l) => l.step), [1, 2, 3, 4, 5]);
    await Deno.stat(`${run}/samples/epoch-0001.png`);

    // A budget behind the run is refused and leaves the recorded budget alone.
    const behind = await cli(
      `${root}/elsewhere`,
      "train",
      "--resume",
      "--out",
      run,
      "--max-steps",
      "3",
    );
    assert.equal(behind.code, 2);
    assert.match(behind.stderr, /already at step 5: pass more than 5 \(e\.g\. --max-steps 8/);
    assert.equal(JSON.parse(await Deno.readTextFile(`${run}/checkpoint.json`)).train.maxSteps, 5);

    // The data moved: named with --data it is accepted (same fingerprint).
    await Deno.rename(`${root}/work/data`, `${root}/moved`);
    const gone = await cli(root, "train", "--resume", "--out", run, "--max-steps", "6");
    assert.equal(gone.code, 2);
    assert.match(gone.stderr, /data at .*work\/data is gone; if it moved, pass --data/);
    const moved = await cli(
      root,
      "train",
      "--resume",
      "--out",
      run,
      "--data",
      "moved",
      "--max-steps",
      "6",
    );
    assert.equal(moved.code, 0, moved.stderr);
    assert.match(moved.stderr, /resumed .* at step 5/);
    const after = JSON.parse(await Deno.readTextFile(`${run}/checkpoint.json`)).train;
    assert.equal(after.source.path, await Deno.realPath(`${root}/moved`));

    // Different images are refused with the reason.
    await imageFolder(`${root}/other`, 32, 2);
    const changed = await cli(
      root,
      "train",
      "--resume",
      "--out",
      run,
      "--data",
      "other",
      "--max-steps",
      "7",
    );
    assert.equal(changed.code, 2);
    assert.match(
      changed.stderr,
      /--data other is not the data this run trained on: the same number/,
    );
    await Deno.remove(`${root}/other/train/b`, { recursive: true });
    const fewer = await cli(root, "train", "--resume", "--out", run, "--data", "other");
    assert.equal(fewer.code, 2);
    assert.match(
      fewer.stderr,
      /--data other cannot be the data this run trained on: --classes: unknown class "b"/,
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("eval finds a run's data from any working folder", async () => {
  const root = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${root}/work`);
    await imageFolder(`${root}/work/data`);
    const trained = await cli(
      `${root}/work`,
      "train",
      "--preset",
      "convnet",
      "--timesteps",
      "10",
      "--batch-size",
      "2",
      "--max-steps",
      "1",
      "--preview-every",
      "0",
      "--data",
      "data",
      "--out",
      "run",
    );
    assert.equal(trained.code, 0, trained.stderr);
    const evaluated = await cli(
      root,
      "eval",
      "--ckpt",
      "work/run",
      "--split",
      "train",
      "--images",
      "2",
      "--batch-size",
      "2",
      "--json",
    );
    assert.equal(evaluated.code, 0, evaluated.stderr);
    const result = JSON.parse(evaluated.stdout);
    assert.equal(result.images, 2);
    assert.ok(Number.isFinite(result.bits_per_dim) && result.bits_per_dim > 0);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
