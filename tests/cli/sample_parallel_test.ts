/**
 * `sample --nproc 2` (2 processes x 1 thread on Gloo) writes byte-identical files to one
 * process: the ranks share one process's chunks and rank 0 writes every file.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { TaskConfig } from "../../src/app/registry.ts";
import { createBackend, listBackends } from "../../src/backend/select.ts";
import { DEFAULT_DDPM_CONFIG } from "../../src/diffusion/task.ts";
import { DEFAULT_GAN_CONFIG } from "../../src/gan/task.ts";
import { makeFreshRun, runCli } from "./_cli.ts";

const torch = (await listBackends()).find((b) => b.name === "torch-cpu");
const opts = { ignore: !torch?.available, sanitizeResources: false, sanitizeOps: false };

const cli = (args: string[]) => runCli(args);

const TINY: TaskConfig[] = [
  {
    kind: "ddpm",
    config: {
      ...DEFAULT_DDPM_CONFIG,
      preset: "convnet",
      baseWidth: 4,
      timesteps: 10,
      imageSize: 8,
    },
  },
  { kind: "gan", config: { ...DEFAULT_GAN_CONFIG, nz: 8, ngf: 4, ndf: 4 } },
];

/** Name -> bytes of every file in `dir` (the manifest included). */
async function files(dir: string): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  for await (const e of Deno.readDir(dir)) out.set(e.name, await Deno.readFile(`${dir}/${e.name}`));
  return out;
}

function assertSameFiles(a: Map<string, Uint8Array>, b: Map<string, Uint8Array>, what: string) {
  assert.deepEqual([...a.keys()].sort(), [...b.keys()].sort(), what);
  const differing = [...a].filter(([name, bytes]) =>
    bytes.length !== b.get(name)!.length || !bytes.every((v, i) => v === b.get(name)![i])
  ).map(([name]) => name);
  assert.deepEqual(differing, [], `${what}: files that differ`);
}

Deno.test(
  "sample --nproc 2 writes byte-identical files to one process (DDPM and GAN, folder and grid)",
  opts,
  async () => {
    const root = await Deno.makeTempDir();
    try {
      {
        using backend = await createBackend("torch-cpu");
        for (const spec of TINY) await makeFreshRun(backend, `${root}/${spec.kind}`, spec);
      }
      for (const spec of TINY) {
        const run = `${root}/${spec.kind}`;
        // Ancestral DDPM draws noise at every step. 5 images in chunks of 2: the second round
        // gives rank 0 a short chunk and rank 1 none (it still takes part in the gather).
        const extra = spec.kind === "ddpm" ? ["--sampler", "ddpm"] : [];
        const args = (tag: string) => [
          "sample",
          "--ckpt",
          run,
          "--n",
          "5",
          "--batch-size",
          "2",
          "--seed",
          "5",
          "--backend",
          "torch-cpu",
          ...extra,
          "--out-dir",
          `${run}/${tag}`,
          "--out",
          `${run}/${tag}.png`,
        ];
        const one = await cli(args("one"));
        assert.equal(one.code, 0, one.stderr);
        const two = await cli([...args("two"), "--nproc", "2"]);
        assert.equal(two.code, 0, two.stderr);
        assert.match(two.stderr, /wrote 5 images .* on 2 ranks/);
        assertSameFiles(await files(`${run}/two`), await files(`${run}/one`), spec.kind);
        assert.equal((await files(`${run}/one`)).size, 6); // 5 PNGs + .samples.json
        assert.deepEqual(
          await Deno.readFile(`${run}/two.png`),
          await Deno.readFile(`${run}/one.png`),
        );
      }
      // A grid alone (all images in memory on every rank): the same bytes too.
      const grid = (out: string) => [
        "sample",
        "--ckpt",
        `${root}/gan`,
        "--n",
        "5",
        "--backend",
        "torch-cpu",
        "--out",
        out,
      ];
      const a = await cli(grid(`${root}/a.png`));
      const b = await cli([...grid(`${root}/b.png`), "--nproc", "2"]);
      assert.equal(a.code, 0, a.stderr);
      assert.equal(b.code, 0, b.stderr);
      assert.deepEqual(await Deno.readFile(`${root}/b.png`), await Deno.readFile(`${root}/a.png`));
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
);

Deno.test("sample --nproc 2 refuses tfjs and bad flags before any work", async () => {
  const root = await Deno.makeTempDir();
  try {
    const base = ["sample", "--ckpt", `${root}/none`, "--out-dir", `${root}/out`, "--nproc", "2"];
    const tfjs = await cli([...base, "--backend", "tfjs-cpu"]);
    assert.notEqual(tfjs.code, 0);
    assert.match(tfjs.stderr, /cannot run 2 processes.*torch-cpu.*torch-cuda/);
    const timeout = await cli([...base, "--dist-timeout", "0"]);
    assert.notEqual(timeout.code, 0);
    assert.match(timeout.stderr, /--dist-timeout/);
    assert.equal(await Deno.stat(`${root}/out`).then(() => true, () => false), false);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
