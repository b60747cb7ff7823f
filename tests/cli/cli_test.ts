import assert from "node:assert/strict";
import { encodePng } from "../../src/io/png.ts";
import { decodeImageFile } from "../../src/io/image.ts";

import { CLI, runCli } from "./_cli.ts";

const cli = (...args: string[]) =>
  runCli(args, { env: { DENO_DIFFUSION_BACKEND: "torch-cpu" }, timeoutMs: 1_800_000 });

/** ROOT/train/{a,b}/*.png: 8 solid-colour 32x32 images per class. */
async function tinyImageFolder(root: string): Promise<void> {
  for (const [name, rgb] of [["a", [250, 10, 10]], ["b", [10, 10, 250]]] as const) {
    await Deno.mkdir(`${root}/train/${name}`, { recursive: true });
    for (let i = 0; i < 8; i++) {
      const data = new Uint8Array(32 * 32 * 3);
      for (let p = 0; p < 32 * 32; p++) data.set(rgb, p * 3);
      await Deno.writeFile(
        `${root}/train/${name}/${i}.png`,
        encodePng({ width: 32, height: 32, channels: 3, data }),
      );
    }
  }
}

Deno.test("cli.ts lists the commands, and rejects an unknown command", async () => {
  const help = await cli("--help");
  assert.equal(help.code, 0);
  for (const c of ["train", "sample", "fid", "params", "study", "backends"]) {
    assert.match(help.stdout, new RegExp(`\\b${c}\\b`));
  }
  const bad = await cli("trian");
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /unknown command 'trian'/);
});

Deno.test("an unknown flag is an error that suggests the right one", async () => {
  const r = await cli("train", "--epoch", "3");
  assert.equal(r.code, 2);
  assert.match(r.stderr, /unknown flag --epoch .*did you mean --epochs\?/);
  const v = await cli("train", "--batch-size", "zero");
  assert.equal(v.code, 2);
  assert.match(v.stderr, /--batch-size must be an integer/);
});

Deno.test("params --json prints the unet-3x count of the original study's model", async () => {
  const r = await cli("params", "--model", "unet-3x", "--json");
  assert.equal(r.code, 0);
  assert.deepEqual(JSON.parse(r.stdout), { model: "unet-3x", params: 23_332_739 });
});

Deno.test("train, resume and sample run end to end from the CLI", async () => {
  const root = await Deno.makeTempDir();
  try {
    await tinyImageFolder(`${root}/data`);
    const run = `${root}/gan`;
    const common = ["--data", `${root}/data`, "--classes", "a,b", "--cond", "--out", run];
    const trained = await cli(
      "train",
      "--model",
      "gan",
      ...common,
      "--ngf",
      "4",
      "--ndf",
      "4",
      "--nz",
      "8",
      "--batch-size",
      "4",
      "--max-steps",
      "3",
    );
    assert.equal(trained.code, 0, trained.stderr);
    assert.match(trained.stderr, /training gan dcgan on 16 a,b images \(conditional, 2 classes\)/);

    const again = await cli("train", "--model", "gan", ...common);
    assert.equal(again.code, 2);
    assert.match(again.stderr, /already holds a run: pass --resume/);

    const resumed = await cli("train", "--resume", "--out", run, "--max-steps", "5");
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.match(resumed.stderr, /resumed .* at step 3/);
    const log = (await Deno.readTextFile(`${run}/log.jsonl`)).trim().split("\n").map((l) =>
      JSON.parse(l)
    );
    assert.equal(log.at(-1).step, 5);
    // Without --max-steps a resume keeps the budget the run was given last (5), not the epochs.
    const again5 = await cli("train", "--resume", "--out", run);
    assert.equal(again5.code, 0, again5.stderr);
    assert.match(again5.stderr, /done: step 5\/5/);

    const sampled = await cli(
      "sample",
      "--ckpt",
      run,
      "--n",
      "6",
      "--class",
      "b",
      "--out",
      `${root}/grid.png`,
    );
    assert.equal(sampled.code, 0, sampled.stderr);
    const grid = await decodeImageFile(`${root}/grid.png`);
    assert.ok(grid.width > 6 * 32 && grid.height > 32, `grid is ${grid.width}x${grid.height}`);

    const wrongSampler = await cli(
      "sample",
      "--ckpt",
      run,
      "--sampler",
      "ddim",
      "--out",
      `${root}/x.png`,
    );
    assert.equal(wrongSampler.code, 2);
    assert.match(wrongSampler.stderr, /apply to diffusion checkpoints; this one is a GAN/);

    const wrongClass = await cli(
      "sample",
      "--ckpt",
      run,
      "--class",
      "zebra",
      "--out",
      `${root}/x.png`,
    );
    assert.equal(wrongClass.code, 2);
    assert.match(wrongClass.stderr, /--class zebra is not one of this model's classes \(a, b\)/);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("Ctrl-C during train writes a checkpoint, exits 130, and --resume continues from it", async () => {
  const root = await Deno.makeTempDir();
  try {
    await tinyImageFolder(`${root}/data`);
    const run = `${root}/gan`;
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        CLI,
        "train",
        "--model",
        "gan",
        "--data",
        `${root}/data`,
        "--classes",
        "a,b",
      ]
        .concat([
          "--ngf",
          "4",
          "--ndf",
          "4",
          "--nz",
          "8",
          "--batch-size",
          "4",
          "--max-steps",
          "100000",
        ])
        .concat(["--log-every", "1", "--out", run]),
      stdout: "piped",
      stderr: "piped",
      env: { DENO_DIFFUSION_BACKEND: "torch-cpu" },
    }).spawn();
    // Wait for a few logged steps, then interrupt as a terminal would.
    const deadline = Date.now() + 120_000;
    let logged = 0;
    while (logged < 3 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 250));
      logged = await Deno.readTextFile(`${run}/log.jsonl`).then(
        (t) => t.trim().split("\n").filter(Boolean).length,
        () => 0,
      );
    }
    assert.ok(logged >= 3, "training logged steps before the interrupt");
    child.kill("SIGINT");
    const { code, stderr } = await child.output();
    const text = new TextDecoder().decode(stderr);
    assert.equal(code, 130, text);
    assert.match(text, /interrupted; checkpoint written: step (\d+)\/100000/);
    const step = Number(text.match(/checkpoint written: step (\d+)/)![1]);
    const saved = JSON.parse(await Deno.readTextFile(`${run}/checkpoint.json`));
    assert.equal(saved.step, step);

    const resumed = await cli("train", "--resume", "--out", run, "--max-steps", String(step + 2));
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.match(resumed.stderr, new RegExp(`resumed .* at step ${step}`));
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
