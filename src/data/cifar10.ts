/**
 * CIFAR-10, official binary release (Krizhevsky 2009,
 * https://www.cs.toronto.edu/~kriz/cifar.html): the batch-file parser and the release's
 * constants. Downloading and caching it is `cifar10_download.ts`'s job.
 *
 * A batch file is a sequence of 3073-byte records: 1 label byte, then the 32x32 red plane,
 * green plane and blue plane (1024 bytes each, row-major), i.e. one CHW image.
 *
 * @module
 */

/** Where the official binary release lives. */
export const CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz";
/** Its published MD5. */
export const CIFAR10_MD5 = "c32a1d4ab5d03f1284b67883e8d87530";
/** The official class names, index = label id. */
export const CIFAR10_CLASSES = [
  "airplane",
  "automobile",
  "bird",
  "cat",
  "deer",
  "dog",
  "frog",
  "horse",
  "ship",
  "truck",
] as const;
/** Folder inside the archive (and the cache) that holds the batch files. */
export const CIFAR10_BATCHES_DIR = "cifar-10-batches-bin";
const TRAIN_FILES = [1, 2, 3, 4, 5].map((i) => `data_batch_${i}.bin`);
const TEST_FILE = "test_batch.bin";

const SIDE = 32;
const IMAGE_BYTES = 3 * SIDE * SIDE;
const RECORD_BYTES = 1 + IMAGE_BYTES;

/** Images and labels decoded from CIFAR-10 batch files. */
export interface CifarImages {
  /** [N, 3, 32, 32] uint8 */
  images: Uint8Array;
  /** [N] labels 0..9 */
  labels: Int32Array;
  count: number;
}

/**
 * Parses one batch file (`data_batch_N.bin` / `test_batch.bin`) or any concatenation of
 * records.
 *
 * @example
 * ```ts
 * import { CIFAR10_CLASSES, parseCifarBatch } from "./cifar10.ts";
 * // Each record: one label byte, then 32x32 red, green and blue planes.
 * const record = new Uint8Array(1 + 3 * 32 * 32);
 * record[0] = 3;
 * const { images, labels } = parseCifarBatch(record);
 * console.log(labels[0], CIFAR10_CLASSES[labels[0]], images.length); // 3 cat 3072
 * ```
 */
export function parseCifarBatch(bytes: Uint8Array, source = "CIFAR-10 batch"): CifarImages {
  const count = recordCount(bytes, source);
  const images = new Uint8Array(count * IMAGE_BYTES);
  const labels = new Int32Array(count);
  decodeRecords(bytes, source, images, labels, 0);
  return { images, labels, count };
}

function recordCount(bytes: Uint8Array, source: string): number {
  if (bytes.length === 0 || bytes.length % RECORD_BYTES !== 0) {
    throw new Error(
      `${source}: ${bytes.length} bytes is not a whole number of ${RECORD_BYTES}-byte CIFAR-10 ` +
        `records (truncated or not a CIFAR-10 binary batch file)`,
    );
  }
  return bytes.length / RECORD_BYTES;
}

/** Decodes every record of `bytes` into `images`/`labels` starting at record `at`. */
function decodeRecords(
  bytes: Uint8Array,
  source: string,
  images: Uint8Array,
  labels: Int32Array,
  at: number,
): void {
  const count = bytes.length / RECORD_BYTES;
  for (let i = 0; i < count; i++) {
    const record = i * RECORD_BYTES;
    const label = bytes[record];
    if (label > 9) {
      throw new Error(`${source}: record ${i} has label ${label}; CIFAR-10 labels are 0..9`);
    }
    labels[at + i] = label;
    images.set(bytes.subarray(record + 1, record + RECORD_BYTES), (at + i) * IMAGE_BYTES);
  }
}

/**
 * Reads the train (data_batch_1..5) or test split from a `cifar-10-batches-bin` folder.
 *
 * @example
 * ```ts
 * import { readCifarSplit } from "./cifar10.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeFile(`${dir}/test_batch.bin`, new Uint8Array(2 * (1 + 3 * 32 * 32))); // two records
 * const test = await readCifarSplit(dir, "test"); // the real test_batch.bin holds 10,000
 * console.log(test.count); // 2
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function readCifarSplit(dir: string, split: "train" | "test"): Promise<CifarImages> {
  const wanted = split === "train" ? TRAIN_FILES : [TEST_FILE];
  // Any subset of the official files works (e.g. only data_batch_1.bin for a quick run).
  const present = await presentCifarBatches(dir);
  const files = wanted.filter((name) => present.includes(name));
  if (files.length === 0) {
    throw new Error(
      `${dir} has no CIFAR-10 ${split} batch (${wanted.join(", ")}); it holds ` +
        `${present.length ? present.join(", ") : "no batch files"}`,
    );
  }
  const batches: { path: string; bytes: Uint8Array; count: number }[] = [];
  for (const name of files) {
    const path = `${dir}/${name}`;
    let bytes: Uint8Array;
    try {
      bytes = await Deno.readFile(path);
    } catch (error) {
      throw new Error(`cannot read CIFAR-10 batch ${path}: ${(error as Error).message}`, {
        cause: error,
      });
    }
    batches.push({ path, bytes, count: recordCount(bytes, path) });
  }
  // Decode straight into one array: no per-file copies to concatenate.
  const count = batches.reduce((s, b) => s + b.count, 0);
  const images = new Uint8Array(count * IMAGE_BYTES);
  const labels = new Int32Array(count);
  let at = 0;
  for (const batch of batches) {
    decodeRecords(batch.bytes, batch.path, images, labels, at);
    at += batch.count;
  }
  return { images, labels, count };
}

/**
 * True when `dir` holds all six official batch files (a complete download or cache).
 *
 * @example
 * ```ts
 * import { hasCifarBatches } from "./cifar10.ts";
 * await hasCifarBatches("/data/cifar-10-batches-bin"); // true or false
 * ```
 */
export async function hasCifarBatches(dir: string): Promise<boolean> {
  for (const name of [...TRAIN_FILES, TEST_FILE]) {
    try {
      if (!(await Deno.stat(`${dir}/${name}`)).isFile) return false;
    } catch {
      return false;
    }
  }
  return true;
}

/**
 * The official batch files (`data_batch_1..5.bin`, `test_batch.bin`) that `dir` holds, in
 * release order; empty when none (or no such folder).
 *
 * @example
 * ```ts
 * import { presentCifarBatches } from "./cifar10.ts";
 * await presentCifarBatches("/data/cifar-10-batches-bin"); // ["data_batch_1.bin", ...]
 * ```
 */
export async function presentCifarBatches(dir: string): Promise<string[]> {
  const present: string[] = [];
  for (const name of [...TRAIN_FILES, TEST_FILE]) {
    try {
      if ((await Deno.stat(`${dir}/${name}`)).isFile) present.push(name);
    } catch {
      // absent
    }
  }
  return present;
}
