import assert from "node:assert/strict";
import { damaged, gifBomb, jpegBomb, pngBomb } from "../io/_hostile_images.ts";
import { createBackend } from "../../src/backend/select.ts";
import { openCheckpoint } from "../../src/app/registry.ts";
import { CheckpointError, loadCheckpoint } from "../../src/train/checkpoint.ts";
import { readStatistics } from "../../src/metrics/stats_io.ts";
import { readTorchStateDict } from "../../src/io/torch_pickle.ts";
import { encodeNpy, parseNpy, readNpy } from "../../src/io/npy.ts";
import { readSafetensors } from "../../src/io/safetensors.ts";
import { decodeImage } from "../../src/io/image.ts";
import { decodeGif } from "../../src/io/gif.ts";
import { parseTar } from "../../src/io/tar.ts";
import { encodeZip } from "../../src/io/zip.ts";
import { parseCifarBatch } from "../../src/data/cifar10.ts";
import { badCheckpoints, badStats, goodImageFolder, goodRun } from "./_corpus.ts";

// Issue 17's hostile-input suite, reader level: the same corpus read in-process, where a CLI
// run would add nothing but start-up time. Each bad file must be refused with an Error whose
// message names the file and what is wrong, and reading it must not grow memory past a bound
// (a bomb that allocates what its header claims would).

const RSS_BOUND_MIB = 256;
const fixture = (name: string) => new URL(`../fixtures/${name}`, import.meta.url).pathname;
const root = await Deno.makeTempDir({ prefix: "hostile-readers-" });
await goodImageFolder(`${root}/data`);
await goodRun(`${root}/run`, `${root}/data`);
const goodCheckpoint = await Deno.readFile(`${root}/run/checkpoint.safetensors`);
const backend = await createBackend("torch-cpu").catch(() => createBackend("tfjs-cpu"));

/** Asserts that `read(path)` rejects naming `path` and matching `message`, within the RSS bound. */
async function refuses(
  name: string,
  bytes: Uint8Array,
  read: (path: string) => unknown,
  message: RegExp,
): Promise<void> {
  const path = `${root}/${name}`;
  await Deno.writeFile(path, bytes);
  const before = Deno.memoryUsage().rss;
  await assert.rejects(async () => await read(path), (e: Error) => {
    assert.ok(e instanceof Error, `threw a non-Error: ${String(e)}`);
    assert.ok(e.message.includes(path), `message does not name ${path}: ${e.message}`);
    assert.match(e.message, message);
    return true;
  });
  const grew = (Deno.memoryUsage().rss - before) / 2 ** 20;
  assert.ok(grew < RSS_BOUND_MIB, `RSS grew ${grew.toFixed(0)} MiB`);
  await Deno.remove(path);
}

for (const [name, bytes, message] of badCheckpoints(goodCheckpoint)) {
  Deno.test(`checkpoint '${name}' is refused when loaded and when opened as a model`, async () => {
    await refuses(`${name}.safetensors`, bytes, loadCheckpointThenOpen, message);
  });
}

async function loadCheckpointThenOpen(path: string): Promise<void> {
  // Schema and finiteness fail in loadCheckpoint; shapes fail when the model is restored.
  await loadCheckpoint(path).catch((e) => {
    assert.ok(e instanceof CheckpointError, `${e}`);
    throw e;
  });
  const { task } = await openCheckpoint(backend, path);
  task.dispose();
}

for (const [name, bytes, message] of badStats()) {
  Deno.test(`FID statistics '${name}' are refused naming the file`, async () => {
    await refuses(`${name}.npz`, bytes, readStatistics, message);
  });
}

const ramp = encodeNpy({ dtype: "float32", shape: [2, 3], data: new Float32Array(6) });
const npyHeaderEnd = ramp.indexOf(0x0a) + 1; // the header ends with "\n"
function npyWithHeader(edit: (header: string) => string): Uint8Array {
  const header = new TextDecoder().decode(ramp.subarray(10, npyHeaderEnd));
  const text = edit(header).padEnd(header.length - 1, " ").slice(0, header.length - 1) + "\n";
  const out = ramp.slice();
  out.set(new TextEncoder().encode(text), 10);
  return out;
}
const npyCases: [string, Uint8Array, RegExp][] = [
  ["npy-truncated-header", ramp.subarray(0, 20), /header runs past the end of the file/],
  ["npy-bad-magic", ramp.slice().fill(0x41, 0, 6), /missing \\x93NUMPY magic/],
  [
    "npy-string-dtype",
    npyWithHeader((h) => h.replace("<f4", "<U4")),
    /dtype '<U4' is not supported/,
  ],
  [
    "npy-shape-too-big",
    npyWithHeader((h) => h.replace("(2, 3)", "(9, 9)")),
    /shape \(9,9\) needs 324 data bytes, found 24/,
  ],
  [
    "npy-data-cut",
    ramp.subarray(0, ramp.length - 4),
    /shape \(2,3\) needs 24 data bytes, found 20/,
  ],
  [
    "npy-header-garbage",
    npyWithHeader((h) => h.replace("'descr'", "'dxscr'")),
    /header is not a numpy array header/,
  ],
];
for (const [name, bytes, message] of npyCases) {
  Deno.test(`npy '${name}' is refused naming the file`, async () => {
    await refuses(`${name}.npy`, bytes, readNpy, message);
  });
}
Deno.test("a Fortran-order npy is refused naming the file", async () => {
  await refuses("fortran.npy", await Deno.readFile(fixture("io/fortran.npy")), readNpy, /Fortran/);
});

const zipPth = await Deno.readFile(fixture("io/tricky_zip.pth"));
const pthCases: [string, Uint8Array, RegExp][] = [
  [
    "pth-refused-global",
    await Deno.readFile(fixture("io/refused_object.pth")),
    /refusing pickle global argparse\.Namespace/,
  ],
  [
    "pth-cut-300",
    zipPth.subarray(0, 300),
    /not a valid ZIP archive: no end-of-central-directory record/,
  ],
  [
    "pth-cut-half",
    zipPth.subarray(0, zipPth.length >> 1),
    /not a valid ZIP archive: no end-of-central-directory record/,
  ],
  [
    "pth-random",
    new Uint8Array(4096).map((_, i) => (i * 31) % 251),
    /neither a zip archive nor a pickle/,
  ],
  ["pth-empty-zip", encodeZip([]), /neither a zip archive nor a pickle/],
  ["pth-zero-bytes", new Uint8Array(0), /neither a zip archive nor a pickle/],
  [
    "pth-legacy-cut",
    (await Deno.readFile(fixture("io/tricky_legacy.pth"))).subarray(0, 200),
    /pickle data ends early \(truncated file\?\)/,
  ],
];
for (const [name, bytes, message] of pthCases) {
  Deno.test(`.pth '${name}' is refused naming the file`, async () => {
    await refuses(`${name}.pth`, bytes, readTorchStateDict, message);
  });
}

Deno.test("safetensors with overlapping or out-of-range offsets are refused naming the file", async () => {
  const make = (header: object, dataBytes: number) => {
    const json = new TextEncoder().encode(JSON.stringify(header));
    const out = new Uint8Array(8 + json.length + dataBytes);
    new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
    out.set(json, 8);
    return out;
  };
  const cases: [string, Uint8Array][] = [
    [
      "overlap",
      make({
        a: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
        b: { dtype: "F32", shape: [2], data_offsets: [4, 12] },
      }, 12),
    ],
    ["past-end", make({ a: { dtype: "F32", shape: [4], data_offsets: [0, 16] } }, 8)],
    ["negative-shape", make({ a: { dtype: "F32", shape: [-2], data_offsets: [0, 8] } }, 8)],
    ["unknown-dtype", make({ a: { dtype: "F8", shape: [2], data_offsets: [0, 2] } }, 2)],
  ];
  for (const [name, bytes] of cases) {
    await refuses(`${name}.safetensors`, bytes, readSafetensors, /not a valid safetensors file/);
  }
});

const decodeFile = async (path: string) => decodeImage(await Deno.readFile(path), path);
const imageCases: [string, Uint8Array, (path: string) => unknown, RegExp][] = [
  ["bomb.png", pngBomb(50000, 50000), decodeFile, /PNG header claims 50000x50000/],
  ["bomb.jpg", await jpegBomb(65000, 65000), decodeFile, /JPEG header claims/],
  [
    "bomb.gif",
    gifBomb(65535, 65535),
    async (path) => decodeGif(await Deno.readFile(path), path),
    /GIF/,
  ],
  ["empty.png", new Uint8Array(0), decodeFile, /not a PNG or JPEG|empty|0 bytes/i],
  ["cut.png", pngBomb(8, 8).subarray(0, 30), decodeFile, /PNG/],
];
for (const [name, bytes, read, message] of imageCases) {
  Deno.test(`image '${name}' is refused from its header naming the file`, async () => {
    await refuses(name, bytes, read, message);
  });
}

Deno.test("every truncation and bit flip of a checkpoint loads or is refused naming the file", async () => {
  // A flip in tensor data can leave a valid file (a different weight); every other outcome
  // must be a CheckpointError naming the file, never a crash or a hang.
  let refused = 0;
  let loaded = 0;
  for (const { what, bytes } of damaged(goodCheckpoint, 80, 80)) {
    const path = `${root}/damaged.safetensors`;
    await Deno.writeFile(path, bytes);
    try {
      await loadCheckpoint(path);
      loaded++;
    } catch (e) {
      assert.ok(e instanceof CheckpointError, `${what}: ${e}`);
      assert.ok(e.message.includes(path), `${what}: ${e.message}`);
      refused++;
    }
  }
  assert.ok(refused >= 80, `only ${refused} of 160 damaged files refused (${loaded} loaded)`);
});

Deno.test("a tar cut mid-entry and a CIFAR batch of the wrong length are refused naming the source", () => {
  assert.throws(() => parseTar(new Uint8Array(700).fill(0x41), "cifar.tar"), /cifar\.tar/);
  assert.throws(
    () => parseCifarBatch(new Uint8Array(3073 * 2 + 5), "data_batch_1.bin"),
    /data_batch_1\.bin/,
  );
  assert.throws(() => parseNpy(new Uint8Array(3), "three.npy"), /three\.npy/);
});

globalThis.addEventListener("unload", () => {
  backend.dispose();
  Deno.removeSync(root, { recursive: true });
});
