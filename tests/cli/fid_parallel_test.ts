import assert from "node:assert/strict";
import { encodePng } from "../../src/io/png.ts";
import { listBackends } from "../../src/backend/select.ts";
import { makeInceptionFixture } from "../_inception_weights.ts";

const CLI = new URL("../../cli.ts", import.meta.url).pathname;
const torch = (await listBackends()).find((b) => b.name === "torch-cpu");
const opts = { ignore: !torch?.available, sanitizeResources: false, sanitizeOps: false };

async function fid(args: string[]): Promise<Record<string, number>> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, "fid", ...args],
    stdout: "piped",
    stderr: "piped",
    env: { DENO_DIFFUSION_TORCH_THREADS: "1" },
  }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), 300_000);
  try {
    const out = await child.output();
    const decode = (b: Uint8Array) => new TextDecoder().decode(b);
    assert.equal(out.code, 0, decode(out.stderr));
    return JSON.parse(decode(out.stdout).trim().split("\n").at(-1)!);
  } finally {
    clearTimeout(timer);
  }
}

async function randomFolder(dir: string, count: number, seed: number): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  let s = seed;
  for (let i = 0; i < count; i++) {
    const data = Uint8Array.from({ length: 32 * 32 * 3 }, () => (s = (s * 69069 + 1) >>> 0) >>> 24);
    await Deno.writeFile(
      `${dir}/${i}.png`,
      encodePng({ width: 32, height: 32, channels: 3, data }),
    );
  }
}

Deno.test(
  "fid --nproc 2 shards the images and gives the one-process FID and KID",
  opts,
  async () => {
    const root = await Deno.makeTempDir();
    try {
      const weights = await makeInceptionFixture(`${root}/inception`);
      await randomFolder(`${root}/a`, 7, 1);
      await randomFolder(`${root}/b`, 5, 2);
      const common = [
        `${root}/a`,
        `${root}/b`,
        "--dims",
        "64",
        "--batch-size",
        "2",
        "--kid",
        "--json",
        "--backend",
        "torch-cpu",
        "--inception-weights",
        weights,
        "--skip-weights-check",
      ];
      const one = await fid(common);
      const two = await fid([...common, "--nproc", "2"]);
      assert.equal(two.n_a, 7);
      assert.equal(two.n_b, 5);
      // The same batches run on each image, so the features and the scores are the same.
      assert.equal(two.fid, one.fid);
      assert.equal(two.kid, one.kid);
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
);
