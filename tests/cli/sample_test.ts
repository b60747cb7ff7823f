import assert from "node:assert/strict";
import { createTask, type TaskConfig } from "../../src/app/registry.ts";
import { createBackend } from "../../src/backend/select.ts";
import { DEFAULT_DDPM_CONFIG } from "../../src/diffusion/task.ts";
import { DEFAULT_GAN_CONFIG } from "../../src/gan/task.ts";
import { encodeNpy } from "../../src/io/npy.ts";
import { testEachBackend } from "../_backends.ts";
import { type CliRun, makeFreshRun, runCli } from "./_cli.ts";

const PTH_SCRIPT = new URL("../fixtures/make_state_dict_pth.py", import.meta.url).pathname;

/** Runs the CLI on torch-cpu. */
const cli = (args: string[]): Promise<CliRun> =>
  runCli(args, { env: { DENO_DIFFUSION_BACKEND: "torch-cpu" }, timeoutMs: 1_800_000 });

const TINY_DDPM: TaskConfig = {
  kind: "ddpm",
  config: { ...DEFAULT_DDPM_CONFIG, preset: "convnet", baseWidth: 4, timesteps: 10, imageSize: 8 },
};
const TINY_GAN: TaskConfig = {
  kind: "gan",
  config: { ...DEFAULT_GAN_CONFIG, nz: 8, ngf: 4, ndf: 4 },
};

/** File name -> bytes of the PNGs in `dir`. */
async function pngs(dir: string): Promise<Map<string, Uint8Array>> {
  const files = new Map<string, Uint8Array>();
  for await (const e of Deno.readDir(dir)) {
    if (e.name.endsWith(".png")) files.set(e.name, await Deno.readFile(`${dir}/${e.name}`));
  }
  return files;
}

function assertSameFolders(a: Map<string, Uint8Array>, b: Map<string, Uint8Array>, what: string) {
  assert.deepEqual([...a.keys()].sort(), [...b.keys()].sort(), what);
  const differing = [...a].filter(([name, bytes]) => !bytes.every((v, i) => v === b.get(name)![i]))
    .map(([name]) => name);
  assert.deepEqual(differing, [], `${what}: files that differ`);
}

testEachBackend(
  "sample --n 64 --batch-size 8 and --batch-size 64 write identical files (diffusion and GAN)",
  async (backend) => {
    const root = await Deno.makeTempDir();
    try {
      for (const spec of [TINY_DDPM, TINY_GAN]) {
        const run = `${root}/${spec.kind}`;
        await makeFreshRun(backend, run, spec);
        // Ancestral DDPM draws noise at every step, so every draw is covered.
        const extra = spec.kind === "ddpm" ? ["--sampler", "ddpm"] : [];
        for (const batch of ["8", "64"]) {
          const r = await cli([
            "sample",
            "--ckpt",
            run,
            "--n",
            "64",
            "--batch-size",
            batch,
            "--seed",
            "5",
            "--backend",
            backend.name,
            "--out-dir",
            `${run}/b${batch}`,
            ...extra,
          ]);
          assert.equal(r.code, 0, r.stderr);
        }
        const small = await pngs(`${run}/b8`);
        assert.equal(small.size, 64);
        assertSameFolders(small, await pngs(`${run}/b64`), `${spec.kind} on ${backend.name}`);
      }
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
  { only: ["torch-cuda", "torch-cpu", "tfjs-wasm", "tfjs-cpu"] },
);

const backend = await createBackend("tfjs-cpu");

Deno.test("sample --out-dir continues an interrupted folder with the same images, by rerun or --resume", async () => {
  const root = await Deno.makeTempDir();
  try {
    const run = `${root}/gan`;
    await makeFreshRun(backend, run, TINY_GAN);
    const out = `${root}/samples`;
    const args = ["sample", "--ckpt", run, "--n", "40", "--batch-size", "8", "--seed", "9"];
    const first = await cli([...args, "--out-dir", out, "--out", `${root}/grid1.png`]);
    assert.equal(first.code, 0, first.stderr);
    const whole = await pngs(out);
    assert.equal(whole.size, 40);
    // What a kill leaves: a gap and a missing tail (files are written atomically, one by one).
    const lose = ["00005.png", ...Array.from({ length: 10 }, (_, i) => `000${30 + i}.png`)];
    for (const name of lose) await Deno.remove(`${out}/${name}`);
    const rerun = await cli([
      ...args,
      "--batch-size",
      "16",
      "--out-dir",
      out,
      "--out",
      `${root}/grid2.png`,
    ]);
    assert.equal(rerun.code, 0, rerun.stderr);
    assert.match(rerun.stderr, /wrote 40 images to .* \(29 were already there\)/);
    assertSameFolders(await pngs(out), whole, "rerun");
    // The grid of a resumed run shows the images read back from the folder.
    assert.deepEqual(
      await Deno.readFile(`${root}/grid2.png`),
      await Deno.readFile(`${root}/grid1.png`),
    );

    for (const name of lose) await Deno.remove(`${out}/${name}`);
    const resumed = await cli(["sample", "--resume", "--out-dir", out]);
    assert.equal(resumed.code, 0, resumed.stderr);
    assertSameFolders(await pngs(out), whole, "--resume");

    const otherSeed = await cli([...args, "--seed", "10", "--out-dir", out]);
    assert.equal(otherSeed.code, 1);
    assert.match(otherSeed.stderr, /holds samples of another run \(different seed\)/);
    const replaced = await cli([...args, "--seed", "10", "--out-dir", out, "--overwrite"]);
    assert.equal(replaced.code, 0, replaced.stderr);
    assert.notDeepEqual(await pngs(out), whole);

    const nothing = await cli(["sample", "--resume", "--out-dir", `${root}/empty`]);
    assert.equal(nothing.code, 2);
    assert.match(nothing.stderr, /nothing to resume in .*empty/);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("sample checks its output locations before loading or sampling anything", async () => {
  const root = await Deno.makeTempDir();
  try {
    const run = `${root}/gan`;
    await makeFreshRun(backend, run, TINY_GAN);
    const missing = await cli(["sample", "--ckpt", run, "--out", `${root}/no/grid.png`]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /--out .*\/no\/grid.png: the folder .*\/no does not exist/);
    assert.doesNotMatch(missing.stderr, /sampling|backend/);

    await Deno.writeTextFile(`${root}/file`, "x");
    const notFolder = await cli(["sample", "--ckpt", run, "--out-dir", `${root}/file`]);
    assert.equal(notFolder.code, 1);
    assert.match(notFolder.stderr, /--out-dir .*\/file is a file, not a folder/);

    // A folder with someone else's images: refused (a mixed folder corrupts an FID) ...
    const mixed = `${root}/mixed`;
    await Deno.mkdir(mixed);
    await Deno.copyFile(new URL("../fixtures/io/gray.png", import.meta.url), `${mixed}/x.png`);
    const refused = await cli(["sample", "--ckpt", run, "--n", "4", "--out-dir", mixed]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /already holds 1 image that this command did not write/);
    assert.deepEqual([...Deno.readDirSync(mixed)].map((e) => e.name), ["x.png"]);
    // ... unless --overwrite.
    const overwritten = await cli([
      "sample",
      "--ckpt",
      run,
      "--n",
      "4",
      "--out-dir",
      mixed,
      "--overwrite",
    ]);
    assert.equal(overwritten.code, 0, overwritten.stderr);
    assert.deepEqual(
      [...(await pngs(mixed)).keys()].sort(),
      ["00000.png", "00001.png", "00002.png", "00003.png"],
    );
    // Progress in a log is plain lines, without a bar or terminal redraws.
    assert.doesNotMatch(overwritten.stderr, /\[#|\r/);
    assert.match(overwritten.stderr, /sampling 4\/4 images/);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("sample --ckpt RUN/model.safetensors writes what sampling the run folder writes", async () => {
  const root = await Deno.makeTempDir();
  try {
    const run = `${root}/ddpm`;
    await makeFreshRun(backend, run, TINY_DDPM);
    const common = ["--n", "6", "--sampler", "ddim", "--steps", "4", "--seed", "2"];
    const fromRun = await cli(["sample", "--ckpt", run, ...common, "--out-dir", `${root}/a`]);
    assert.equal(fromRun.code, 0, fromRun.stderr);
    const fromWeights = await cli([
      "sample",
      "--ckpt",
      `${run}/model.safetensors`,
      ...common,
      "--out-dir",
      `${root}/b`,
    ]);
    assert.equal(fromWeights.code, 0, fromWeights.stderr);
    assertSameFolders(await pngs(`${root}/b`), await pngs(`${root}/a`), "model.safetensors");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

const torchAvailable = (await new Deno.Command("/usr/bin/python3", {
  args: ["-c", "import torch, numpy"],
  stdout: "null",
  stderr: "null",
}).output().catch(() => ({ success: false }))).success;

Deno.test({
  name: "sample --ckpt G.pth --preset dcgan samples a PyTorch state_dict like the run it came from",
  ignore: !torchAvailable,
  async fn() {
    const root = await Deno.makeTempDir();
    try {
      const run = `${root}/gan`;
      const spec: TaskConfig = { kind: "gan", config: { ...DEFAULT_GAN_CONFIG } }; // the preset
      await makeFreshRun(backend, run, spec);
      // The generator's state_dict, written by PyTorch itself.
      const task = createTask(backend, spec, 3);
      await Deno.mkdir(`${root}/npy`);
      for (const [name, t] of task.stores.generator.toHost()) {
        await Deno.writeFile(
          `${root}/npy/${name}.npy`,
          encodeNpy({ dtype: "float32", shape: t.shape, data: t.data }),
        );
      }
      task.dispose();
      const made = await new Deno.Command("/usr/bin/python3", {
        args: [PTH_SCRIPT, `${root}/npy`, `${root}/G.pth`],
      }).output();
      assert.ok(made.success, new TextDecoder().decode(made.stderr));

      const common = ["--n", "8", "--seed", "4"];
      const fromRun = await cli(["sample", "--ckpt", run, ...common, "--out-dir", `${root}/a`]);
      assert.equal(fromRun.code, 0, fromRun.stderr);
      const args = ["sample", "--ckpt", `${root}/G.pth`, ...common, "--out-dir", `${root}/b`];
      const noPreset = await cli(args);
      assert.equal(noPreset.code, 1);
      assert.match(
        noPreset.stderr,
        /bare weights without a model config: name the network with --preset/,
      );
      const fromPth = await cli([...args, "--preset", "dcgan"]);
      assert.equal(fromPth.code, 0, fromPth.stderr);
      assertSameFolders(await pngs(`${root}/b`), await pngs(`${root}/a`), ".pth");
      const wrong = await cli([...args, "--preset", "dcgan-wide", "--overwrite"]);
      assert.equal(wrong.code, 1);
      assert.match(wrong.stderr, /G.pth \(as --preset dcgan-wide\) does not fit this model/);
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});

Deno.test("sample --out-dir memory stays flat in --n (peak RSS of 4,000 vs 400 images)", async () => {
  const root = await Deno.makeTempDir();
  try {
    const run = `${root}/gan`;
    await makeFreshRun(backend, run, TINY_GAN);
    const peaks: number[] = [];
    for (const n of ["400", "4000"]) {
      const r = await cli(
        ["sample", "--ckpt", run, "--n", n, "--batch-size", "200", "--out-dir", `${root}/s${n}`],
      );
      assert.equal(r.code, 0, r.stderr);
      assert.ok(r.peakRssMiB > 0, "read the child's memory");
      peaks.push(r.peakRssMiB);
    }
    console.log(`peak RSS: ${peaks.map((p) => p.toFixed(0)).join(" MiB, ")} MiB`);
    // Holding every image (as floats and 8-bit tiles) would add ~55 MiB for 3,600 more images;
    // what remains is V8 heap headroom (measured +22 MiB on a shared, busy 2-core VM).
    assert.ok(peaks[1] - peaks[0] < 40, `peak RSS grew by ${(peaks[1] - peaks[0]).toFixed(0)} MiB`);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
