/**
 * `cli.ts fid --ckpt`: the FID of a checkpoint's samples against a split equals the FID that
 * `sample --out-dir` + `fid DIR DIR` gives for the same seed, and the reference features are
 * cached. Inception weights are random ones in pytorch-fid's layout, made by
 * tests/fixtures/make_fid_fixtures.py with Debian's python3-torch (required).
 */
import assert from "node:assert/strict";
import { encodePng } from "../../src/io/png.ts";
import { createBackend } from "../../src/backend/select.ts";
import { createTask } from "../../src/app/registry.ts";
import { train } from "../../src/train/trainer.ts";
import { Dataset } from "../../src/data/dataset.ts";
import { DEFAULT_GAN_CONFIG } from "../../src/gan/task.ts";
import { makeInceptionFixture } from "../_inception_weights.ts";

const CLI = new URL("../../cli.ts", import.meta.url).pathname;

async function run(cmd: string, args: string[], env: Record<string, string> = {}) {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped", env }).output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}

Deno.test("fid --ckpt (reference: the run's own data) equals sample --out-dir + fid on folders, and caches", async () => {
  const root = await Deno.makeTempDir();
  try {
    const weights = await makeInceptionFixture(`${root}/weights`);
    assert.ok((await Deno.stat(weights)).size > 90_000_000, "weights file in pytorch-fid's layout");

    // Reference split: ROOT/test/x/*.png, 6 noisy images.
    await Deno.mkdir(`${root}/data/test/x`, { recursive: true });
    for (let i = 0; i < 6; i++) {
      const data = new Uint8Array(32 * 32 * 3).map((_, j) => (i * 37 + j * 11) % 256);
      await Deno.writeFile(
        `${root}/data/test/x/${i}.png`,
        encodePng({ width: 32, height: 32, channels: 3, data }),
      );
    }
    // A GAN checkpoint after two steps.
    const backend = await createBackend("torch-cpu");
    const task = createTask(backend, {
      kind: "gan",
      config: { ...DEFAULT_GAN_CONFIG, nz: 8, ngf: 4, ndf: 4 },
    }, 3);
    const images = new Uint8Array(4 * 3 * 32 * 32).fill(128);
    const data = new Dataset({
      images,
      labels: new Int32Array(4),
      imageShape: [3, 32, 32],
      classNames: ["x"],
    });
    await train(task, data, {
      runDir: `${root}/run`,
      batchSize: 2,
      epochs: 1,
      seed: 0,
      flip: false,
      previewEvery: 0,
      backendName: backend.name,
      report: () => {},
      // What `cli.ts train --data ROOT/data` records: fid --ckpt's default reference.
      source: { data: `${root}/data`, classes: "x" },
    });
    task.dispose();
    backend.dispose();

    const env = { XDG_CACHE_HOME: `${root}/cache`, DENO_DIFFUSION_BACKEND: "torch-cpu" };
    const common = ["--inception-weights", weights, "--skip-weights-check", "--json"];
    const ckptArgs = [
      "run",
      "-A",
      CLI,
      "fid",
      "--ckpt",
      `${root}/run`,
      "--n",
      "6",
      "--seed",
      "5",
      "--kid",
      ...common,
    ];
    const first = await run(Deno.execPath(), ckptArgs, env);
    assert.equal(first.code, 0, first.stderr);
    const a = JSON.parse(first.stdout);
    assert.deepEqual(Object.keys(a).sort(), [
      "backend",
      "dims",
      "fid",
      "kid",
      "kid_std",
      "n_a",
      "n_b",
      "seconds",
    ]);
    assert.equal(a.n_a, 6);
    assert.equal(a.n_b, 6);
    assert.equal(a.dims, 2048);
    assert.ok(a.fid > 0 && Number.isFinite(a.fid));

    const second = await run(Deno.execPath(), ckptArgs, env);
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stderr, /reference features from the cache/);
    assert.equal(JSON.parse(second.stdout).fid, a.fid);

    const sampled = await run(Deno.execPath(), [
      "run",
      "-A",
      CLI,
      "sample",
      "--ckpt",
      `${root}/run`,
      "--n",
      "6",
      "--seed",
      "5",
      "--out-dir",
      `${root}/samples`,
    ], env);
    assert.equal(sampled.code, 0, sampled.stderr);
    const folders = await run(Deno.execPath(), [
      "run",
      "-A",
      CLI,
      "fid",
      `${root}/samples`,
      `${root}/data/test/x`,
      ...common,
    ], env);
    assert.equal(folders.code, 0, folders.stderr);
    const b = JSON.parse(folders.stdout);
    assert.ok(
      Math.abs(a.fid - b.fid) <= 1e-6 * Math.max(1, b.fid),
      `ckpt path ${a.fid} vs folders ${b.fid}`,
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
