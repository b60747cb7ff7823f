import assert from "node:assert/strict";
import { damaged, jpegBomb, pngBomb } from "../io/_hostile_images.ts";
import { encodeNpz } from "../../src/io/npy.ts";
import { changes, type CliRun, inBatches, runCli, snapshot } from "./_harness.ts";
import {
  badCheckpoints,
  badStats,
  goodImageFolder,
  goodRun,
  goodStats,
  solidPng,
} from "./_corpus.ts";

// Issue 17's hostile-input suite, command level: every bad input below runs the real CLI as a
// subprocess and must fail with the expected exit code and a message naming the file or flag,
// leave no new or changed file in its folder, finish inside the time bound (a hang is killed
// and fails) and stay under the memory bound (a decompression bomb would blow it).

const TIME_BOUND_MS = 90_000; // generous: up to 8 engineers share 2 cores; a hang never ends
const RSS_BOUND_MIB = 1024; // a healthy failing run peaks near 250 MiB
const WIDTH = 6;
const fixture = (name: string) => new URL(`../fixtures/${name}`, import.meta.url).pathname;

interface Case {
  id: string;
  /** Writes the case's inputs into its own folder `dir`. */
  setup?: (dir: string) => Promise<void>;
  /** The command line; it runs with `dir` as its working folder. */
  args: (dir: string) => string[];
  code: number;
  /** What stderr must say: the file or flag at fault, and what is wrong with it. */
  message: RegExp;
}

const root = await Deno.makeTempDir({ prefix: "hostile-cli-" });
const shared = `${root}/shared`;
await goodImageFolder(`${shared}/data`);
await goodRun(`${shared}/run`, `${shared}/data`);
const goodCheckpoint = await Deno.readFile(`${shared}/run/checkpoint.safetensors`);
const goodModelFile = await Deno.readFile(`${shared}/run/model.safetensors`);
await Deno.writeFile(`${shared}/good.npz`, encodeNpz(goodStats()));

/** Copies the good run into DIR/run with `checkpoint` as its checkpoint file. */
async function runWith(dir: string, checkpoint: Uint8Array): Promise<void> {
  await Deno.mkdir(`${dir}/run`);
  await Deno.writeFile(`${dir}/run/checkpoint.safetensors`, checkpoint);
  await Deno.writeFile(`${dir}/run/model.safetensors`, goodModelFile);
}

/** DIR/data/train/a: three good images and `bad` as `name`. */
async function dataWith(dir: string, name: string, bad: Uint8Array): Promise<void> {
  await goodImageFolder(`${dir}/data`);
  await Deno.remove(`${dir}/data/train/a/3.png`);
  await Deno.writeFile(`${dir}/data/train/a/${name}`, bad);
}

const trainArgs = (extra: string[]) => [
  "train",
  "--model",
  "gan",
  "--ngf",
  "2",
  "--ndf",
  "2",
  "--nz",
  "4",
  "--classes",
  "a",
  "--max-steps",
  "2",
  ...extra,
];

const cases: Case[] = [];

// Checkpoints: a sample of the bad ones through `sample` (the rest are read in-process by
// readers_test.ts) and the schema ones through a resume, which used to hang on a zero RNG state.
const CLI_CHECKPOINTS = new Set([
  "zero-rng",
  "no-train",
  "negative-size",
  "nan-weight",
  "wrong-shape",
  "truncated",
  "header-length-huge",
  "not-ours",
]);
for (const [name, bytes, message] of badCheckpoints(goodCheckpoint)) {
  if (!CLI_CHECKPOINTS.has(name)) continue;
  cases.push({
    id: `sample-ckpt-${name}`,
    setup: (dir) => runWith(dir, bytes),
    args: (dir) => ["sample", "--ckpt", `${dir}/run`, "--n", "2", "--out", `${dir}/grid.png`],
    code: 1,
    message: new RegExp(`run/checkpoint\\.safetensors[^]*${message.source}`),
  });
}
for (const [name, bytes, message] of badCheckpoints(goodCheckpoint).slice(0, 3)) {
  cases.push({
    id: `resume-ckpt-${name}`,
    setup: (dir) => runWith(dir, bytes),
    args: (dir) => ["train", "--resume", "--out", `${dir}/run`],
    code: 1,
    message: new RegExp(`run/checkpoint\\.safetensors[^]*${message.source}`),
  });
}
cases.push({
  id: "sample-ckpt-missing",
  args: (dir) => ["sample", "--ckpt", `${dir}/nothing`, "--out", `${dir}/grid.png`],
  code: 1,
  message: /no checkpoint at .*nothing/,
});

// Training data: bombs, truncations, bit flips and impostors among good images.
const rgb = solidPng([9, 99, 199]);
const flips = [...damaged(rgb, 0, 400)].filter(({ bytes }) => {
  // Flips inside the IHDR chunk (bytes 8..33) break its CRC: always detected.
  return bytes.findIndex((b, i) => b !== rgb[i]) >= 8 &&
    bytes.findIndex((b, i) => b !== rgb[i]) < 33;
}).slice(0, 2);
const images: [string, string, Uint8Array, RegExp][] = [
  ["png-bomb", "bomb.png", pngBomb(50000, 50000), /bomb\.png: PNG header claims 50000x50000/],
  ["jpeg-bomb", "bomb.jpg", await jpegBomb(65000, 65000), /bomb\.jpg: JPEG header claims/],
  ["png-cut-40", "cut.png", rgb.subarray(0, 40), /cut\.png/],
  ["png-is-text", "notes.png", new TextEncoder().encode("hello"), /notes\.png/],
  [
    "png-wrong-size",
    "small.png",
    solidPng([1, 2, 3], 16),
    /small\.png is 16x16 but .*0\.png, the first image, is 32x32/,
  ],
  ...flips.slice(0, 1).map((f, i) =>
    [`png-flip-${i}`, "flip.png", f.bytes, /flip\.png/] as [string, string, Uint8Array, RegExp]
  ),
];
for (const [id, name, bytes, message] of images) {
  cases.push({
    id: `train-data-${id}`,
    setup: (dir) => dataWith(dir, name, bytes),
    args: (dir) => trainArgs(["--data", `${dir}/data`, "--out", `${dir}/run`]),
    code: 1,
    message,
  });
}
cases.push({
  id: "train-data-missing",
  args: (dir) => trainArgs(["--data", `${dir}/nope`, "--out", `${dir}/run`]),
  code: 1,
  message: /nope/,
});

// Outputs that cannot be written: a path below a regular file.
cases.push({
  id: "train-out-under-file",
  setup: (dir) => Deno.writeTextFile(`${dir}/file`, "x"),
  args: (dir) => trainArgs(["--data", `${shared}/data`, "--out", `${dir}/file/run`]),
  code: 1,
  message: /file\/run/,
});
cases.push({
  id: "sample-out-under-file",
  setup: async (dir) => {
    await Deno.writeTextFile(`${dir}/file`, "x");
  },
  args: (dir) => ["sample", "--ckpt", `${shared}/run`, "--n", "2", "--out", `${dir}/file/g.png`],
  code: 1,
  message: /file\/g\.png/,
});
cases.push({
  id: "fid-save-stats-exists",
  setup: (dir) => Deno.writeTextFile(`${dir}/out.npz`, "x"),
  args: (dir) => ["fid", "--save-stats", `${shared}/data/train/a`, `${dir}/out.npz`],
  code: 1,
  message: /out\.npz already exists/,
});

// FID statistics and Inception weights.
for (const [name, bytes, message] of badStats().slice(0, 4)) {
  cases.push({
    id: `fid-${name}`,
    setup: (dir) => Deno.writeFile(`${dir}/bad.npz`, bytes),
    args: (dir) => ["fid", `${shared}/good.npz`, `${dir}/bad.npz`],
    code: 1,
    message: new RegExp(`bad\\.npz[^]*${message.source}|${message.source}[^]*bad\\.npz`, "i"),
  });
}
cases.push({
  id: "fid-second-missing",
  args: (dir) => ["fid", `${shared}/good.npz`, `${dir}/gone.npz`],
  code: 1,
  message: /gone\.npz/,
});
const pth: [string, () => Promise<Uint8Array>, RegExp][] = [
  [
    "pth-refused-global",
    () => Deno.readFile(fixture("io/refused_object.pth")),
    /refused|not allowed|global/i,
  ],
  [
    "pth-truncated",
    async () => (await Deno.readFile(fixture("io/tricky_zip.pth"))).subarray(0, 300),
    /zip|truncated|corrupt|not/i,
  ],
];
for (const [name, make, message] of pth) {
  cases.push({
    id: `fid-${name}`,
    setup: async (dir) => await Deno.writeFile(`${dir}/w.pth`, await make()),
    args: (dir) => [
      "fid",
      "--save-stats",
      `${shared}/data/train/a`,
      `${dir}/out.npz`,
      "--inception-weights",
      `${dir}/w.pth`,
      "--skip-weights-check",
    ],
    code: 1,
    message: new RegExp(`w\\.pth[^]*${message.source}`, "i"),
  });
}
cases.push({
  id: "fid-weights-check",
  setup: (dir) => Deno.writeFile(`${dir}/w.pth`, new Uint8Array(100)),
  args: (dir) => [
    "fid",
    "--save-stats",
    `${shared}/data/train/a`,
    `${dir}/out.npz`,
    "--inception-weights",
    `${dir}/w.pth`,
  ],
  code: 1,
  message: /w\.pth/,
});

// Flags: each refused before any work, naming the flag.
const flagCases: [string, string[], RegExp][] = [
  ["train-batch-zero", trainArgs(["--batch-size", "0"]), /--batch-size/],
  ["train-model-unknown", ["train", "--model", "vae"], /--model must be one of ddpm, gan/],
  ["train-preset-unknown", ["train", "--preset", "huge"], /--preset must be one of/],
  [
    "train-on-nonfinite",
    trainArgs(["--on-nonfinite", "ignore"]),
    /--on-nonfinite must be one of stop, skip/,
  ],
  ["train-epochs-zero", ["train", "--epochs", "0"], /--epochs/],
  ["train-gan-flag-on-ddpm", ["train", "--ngf", "4"], /--ngf .*only apply to --model gan/],
  ["train-unknown-flag", ["train", "--epoch", "3"], /unknown flag --epoch/],
  ["train-resume-no-out", ["train", "--resume"], /--resume needs --out/],
  ["sample-no-ckpt", ["sample", "--n", "4"], /--ckpt/],
  ["sample-n-word", ["sample", "--ckpt", `${shared}/run`, "--n", "many", "--out", "g.png"], /--n/],
  ["fid-dims", ["fid", `${shared}/good.npz`, `${shared}/good.npz`, "--dims", "100"], /--dims/],
  ["params-unknown-model", ["params", "--model", "nope"], /unknown model 'nope'/],
  ["eval-no-ckpt", ["eval"], /--ckpt/],
];
for (const [id, args, message] of flagCases) {
  cases.push({ id: `flag-${id}`, args: () => args, code: 2, message });
}
cases.push({
  id: "eval-gan-checkpoint",
  args: () => ["eval", "--ckpt", `${shared}/run`],
  code: 1,
  message: /checkpoint\.safetensors holds a GAN model/,
});
cases.push({
  id: "study-plan-not-json",
  setup: (dir) => Deno.writeTextFile(`${dir}/plan.json`, "{ entries: "),
  args: (dir) => ["study", `${dir}/plan.json`, "--list"],
  code: 2,
  message: /plan\.json/,
});

Deno.test(`${cases.length} hostile command lines fail cleanly, bounded in time and memory`, async (t) => {
  // With readers_test.ts's in-process cases the corpus is well over 60 bad inputs.
  assert.ok(cases.length >= 35, `only ${cases.length} cases`);
  const before = await snapshot(shared);
  const runs = await inBatches(
    cases.map((c) => async () => {
      const dir = `${root}/cases/${c.id}`;
      await Deno.mkdir(dir, { recursive: true });
      await c.setup?.(dir);
      const start = await snapshot(dir);
      const run = await runCli(c.args(dir), { cwd: dir, timeoutMs: TIME_BOUND_MS });
      return { run, added: changes(start, await snapshot(dir)) };
    }),
    WIDTH,
  );
  const failures: string[] = [];
  for (const [i, c] of cases.entries()) {
    const { run, added } = runs[i] as { run: CliRun; added: string[] };
    const ok = await t.step(c.id, () => {
      const said = run.stderr.trim().split("\n").slice(-3).join(" | ");
      assert.ok(!run.killed, `still running after ${TIME_BOUND_MS} ms (a hang)`);
      assert.equal(run.code, c.code, `exit code ${run.code}; stderr: ${said}`);
      assert.match(run.stderr, c.message, `stderr: ${said}`);
      assert.doesNotMatch(run.stderr, /^\s+at /m, "a stack trace was printed");
      assert.deepEqual(added, [], "files were written or changed");
      assert.ok(run.peakRssMiB < RSS_BOUND_MIB, `peak RSS ${run.peakRssMiB.toFixed(0)} MiB`);
    });
    if (!ok) failures.push(c.id);
  }
  assert.deepEqual(changes(before, await snapshot(shared)), [], "the shared inputs changed");
  await Deno.remove(root, { recursive: true });
  assert.deepEqual(failures, []);
});
