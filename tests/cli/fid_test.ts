import assert from "node:assert/strict";
import { writeNpz } from "../../src/io/npy.ts";
import { encodePng } from "../../src/io/png.ts";
import { fidCommand } from "../../src/cli/fid.ts";
import { UsageError } from "../../src/cli/args.ts";
import { frechetDistance, statisticsOf } from "../../src/metrics/fid.ts";
import { writeStatistics } from "../../src/metrics/stats_io.ts";

// The network is never loaded here (npz inputs or inputs refused first); the image-folder path
// with weights is tested in tests/metrics/inception_test.ts.
const dir = await Deno.makeTempDir({ prefix: "fid_cli_test_" });
globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
const flags = ["--backend", "tfjs-cpu", "--inception-weights", `${dir}/absent.pth`];

async function statsFile(name: string, mu: number[], sigma: number[]) {
  const d = mu.length;
  await writeNpz(
    `${dir}/${name}`,
    new Map([
      ["mu", { dtype: "float64" as const, shape: [d], data: Float64Array.from(mu) }],
      ["sigma", { dtype: "float64" as const, shape: [d, d], data: Float64Array.from(sigma) }],
    ]),
  );
  return `${dir}/${name}`;
}

async function captureStdout(fn: () => Promise<unknown>): Promise<string[]> {
  const lines: string[] = [];
  const log = console.log;
  console.log = (line: string) => lines.push(line);
  try {
    await fn();
  } finally {
    console.log = log;
  }
  return lines;
}

Deno.test("`fid A.npz B.npz --json` prints the Fréchet distance of the stored stats", async () => {
  const a = await statsFile("a.npz", [0, 0], [1, 0.2, 0.2, 2]);
  const b = await statsFile("b.npz", [3, 4], [2, 0, 0, 1]);
  const [line] = await captureStdout(() => fidCommand([a, b, "--json", ...flags]));
  const out = JSON.parse(line);
  const expected = frechetDistance(
    new Float64Array([0, 0]),
    new Float64Array([1, 0.2, 0.2, 2]),
    new Float64Array([3, 4]),
    new Float64Array([2, 0, 0, 1]),
  );
  assert.equal(out.fid, expected);
  assert.equal(out.dims, 2);
  assert.equal(out.backend, "tfjs-cpu");
  assert.ok(out.seconds >= 0);
  assert.ok(expected > 25 && expected < 30);
});

Deno.test("`fid` refuses two .npz of different dims, naming the mismatch", async () => {
  const a = await statsFile("two.npz", [0, 0], [1, 0, 0, 1]);
  const b = await statsFile("three.npz", [0, 0, 0], [1, 0, 0, 0, 1, 0, 0, 0, 1]);
  await assert.rejects(fidCommand([a, b, ...flags]), /gives 2-dim statistics but .* gives 3-dim/);
});

Deno.test("`fid` refuses an empty folder and a folder with a single image", async () => {
  await Deno.mkdir(`${dir}/empty`);
  await Deno.mkdir(`${dir}/single`);
  const img = { width: 2, height: 2, channels: 3 as const, data: new Uint8Array(12) };
  await Deno.writeFile(`${dir}/single/0.png`, encodePng(img));
  const npz = await statsFile("any.npz", [0, 0], [1, 0, 0, 1]);
  await assert.rejects(fidCommand([`${dir}/empty`, npz, ...flags]), /holds no .png/);
  await assert.rejects(
    fidCommand([`${dir}/single`, npz, ...flags]),
    /holds 1 image; FID needs at least 2/,
  );
  await assert.rejects(
    fidCommand([`${dir}/single`, npz, "--num-samples", "5", ...flags]),
    /fewer than --num-samples 5/,
  );
});

Deno.test("`fid --save-stats` refuses to overwrite an existing output file", async () => {
  const existing = await statsFile("exists.npz", [0], [1]);
  await assert.rejects(
    fidCommand(["--save-stats", `${dir}/single`, existing, ...flags]),
    /already exists/,
  );
});

Deno.test("`fid` flags are checked: unknown flag, bad --dims, path count, --kid with .npz", async () => {
  const npz = await statsFile("k.npz", [0], [1]);
  await assert.rejects(fidCommand([npz, npz, "--frobnicate"]), UsageError);
  await assert.rejects(
    fidCommand([npz, npz, "--dims", "100"]),
    /--dims must be one of 64, 192, 768, 2048/,
  );
  await assert.rejects(fidCommand([npz]), /expected 2 paths, got 1/);
  await assert.rejects(
    fidCommand([npz, npz, "--batch-size", "0"]),
    /--batch-size must be an integer >= 1, got '0'/,
  );
  await assert.rejects(fidCommand([npz, npz, "--backend", "gpu9"]), /--backend must be/);
  await assert.rejects(fidCommand([npz, npz, "--kid", "--dims", "64", ...flags]), /--kid needs/);
  const [help] = await captureStdout(() => fidCommand(["--help"]));
  assert.match(help, /--save-stats/);
  assert.match(help, /--nproc N .*--master-port PORT .*--dist-timeout S/s);
});

Deno.test("`fid` launches through the shared --nproc flags: their checks apply before any rank starts", async () => {
  const npz = await statsFile("p.npz", [0], [1]);
  await assert.rejects(
    fidCommand([npz, npz, "--nproc", "2", "--backend", "tfjs-cpu"]),
    /cannot run 2 processes.*torch-cpu.*torch-cuda/,
  );
  await assert.rejects(fidCommand([npz, npz, "--nproc", "0"]), /--nproc must be an integer >= 1/);
  await assert.rejects(
    fidCommand([npz, npz, "--nproc", "2", "--dist-timeout", "0"]),
    /--dist-timeout must be a number/,
  );
});

Deno.test("`fid --json` reports the stored sample counts of .npz inputs, null when absent", async () => {
  const counted = `${dir}/counted.npz`;
  await writeStatistics(counted, statisticsOf(new Float32Array([0, 1, 2, 4, 5, 3, 1, 1]), 4, 2));
  const bare = await statsFile("bare.npz", [0, 0], [1, 0.2, 0.2, 2]); // pytorch-fid's layout
  const [line] = await captureStdout(() => fidCommand([counted, bare, "--json", ...flags]));
  const out = JSON.parse(line);
  assert.equal(out.n_a, 4);
  assert.equal(out.n_b, null);
});

Deno.test("`fid` checks the second folder before computing any features or loading weights", async () => {
  await Deno.mkdir(`${dir}/two`);
  const img = { width: 2, height: 2, channels: 3 as const, data: new Uint8Array(12) };
  for (const i of [0, 1]) await Deno.writeFile(`${dir}/two/${i}.png`, encodePng(img));
  // The weights are absent too: the folder's problem must be the one reported.
  await assert.rejects(
    fidCommand([`${dir}/two`, `${dir}/missing-folder`, ...flags]),
    /image folder .*missing-folder does not exist/,
  );
  const bad = await statsFile("not_psd.npz", [0, 0], [1, 2, 2, 1]);
  await assert.rejects(
    fidCommand([`${dir}/two`, bad, ...flags]),
    /not_psd\.npz: sigma is not positive semi-definite/,
  );
});

Deno.test("`fid` refuses statistics whose covariance is not PSD, naming the file", async () => {
  const good = await statsFile("good.npz", [0, 0], [1, 0, 0, 1]);
  const bad = await statsFile("indefinite.npz", [0, 0], [1, 2, 2, 1]);
  await assert.rejects(fidCommand([good, bad, ...flags]), /indefinite\.npz: sigma is not positive/);
  await assert.rejects(fidCommand([bad, good, ...flags]), /indefinite\.npz: sigma is not positive/);
});

Deno.test("examples/score_fid.ts takes the weights by --inception-weights, as its error says", async () => {
  const example = new URL("../../examples/score_fid.ts", import.meta.url).pathname;
  await Deno.mkdir(`${dir}/ex`, { recursive: true });
  const img = { width: 2, height: 2, channels: 3 as const, data: new Uint8Array(12) };
  for (const i of [0, 1]) await Deno.writeFile(`${dir}/ex/${i}.png`, encodePng(img));
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      example,
      "--inception-weights",
      `${dir}/absent.pth`,
      `${dir}/ex`,
      `${dir}/ex`,
    ],
    env: { DENO_DIFFUSION_BACKEND: "tfjs-cpu" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 1, stderr);
  assert.match(stderr, /absent\.pth \(from --inception-weights\) does not exist/);
  assert.match(stderr, /pt_inception-2015-12-05-6726825d\.pth/);
});
