/**
 * CIFAR-10, official binary release (Krizhevsky 2009,
 * https://www.cs.toronto.edu/~kriz/cifar.html): download with progress, MD5 check, gunzip and
 * tar extraction in TypeScript, a cache under `$XDG_CACHE_HOME` (or `~/.cache`)
 * `/deno-diffusion/`, and the batch-file parser.
 *
 * A batch file is a sequence of 3073-byte records: 1 label byte, then the 32x32 red plane,
 * green plane and blue plane (1024 bytes each, row-major), i.e. one CHW image.
 *
 * @module
 */
import { defaultCacheDir } from "../io/cache.ts";
import { writeFileAtomic } from "../io/atomic.ts";
import { Md5 } from "./md5.ts";

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
 * import { parseCifarBatch } from "./cifar10.ts";
 * const { images, labels } = parseCifarBatch(await Deno.readFile("test_batch.bin"));
 * console.log(labels[0]); // 3 (cat)
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
 * const test = await readCifarSplit("/data/cifar-10-batches-bin", "test"); // 10,000 images
 * ```
 */
export async function readCifarSplit(dir: string, split: "train" | "test"): Promise<CifarImages> {
  const files = split === "train" ? TRAIN_FILES : [TEST_FILE];
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
 * True when `dir` holds all six official batch files.
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

/** Called while downloading with the bytes so far and the total (null when unknown). */
export type ProgressCallback = (received: number, total: number | null) => void;

function stderrProgress(name: string): ProgressCallback {
  let last = 0;
  const encoder = new TextEncoder();
  return (received, total) => {
    const now = performance.now();
    const done = total !== null && received >= total;
    if (now - last < 500 && !done) return;
    last = now;
    const mib = (n: number) => (n / 2 ** 20).toFixed(1);
    const text = total
      ? `${mib(received)} / ${mib(total)} MiB (${Math.floor((100 * received) / total)}%)`
      : `${mib(received)} MiB`;
    Deno.stderr.writeSync(encoder.encode(`\rdownloading ${name}: ${text}${done ? "\n" : ""}`));
  };
}

/**
 * Downloads `url` to `dest` through a temp file in the same folder, checking the MD5 when
 * given; on any failure nothing is left at `dest` or in the temp file.
 *
 * @example
 * ```ts
 * import { CIFAR10_MD5, CIFAR10_URL, downloadFile } from "./cifar10.ts";
 * await downloadFile(CIFAR10_URL, "/tmp/cifar-10-binary.tar.gz", { md5: CIFAR10_MD5 });
 * ```
 */
export async function downloadFile(
  url: string,
  dest: string,
  options: { md5?: string; onProgress?: ProgressCallback; timeoutMs?: number } = {},
): Promise<void> {
  const temp = `${dest}.${crypto.randomUUID().slice(0, 8)}.part`;
  const onProgress = options.onProgress ?? stderrProgress(url.split("/").pop() ?? url);
  try {
    let response: Response;
    // The timeout covers connecting and the response headers only: the body of a large
    // download may take much longer on a slow link.
    const connect = new AbortController();
    const timer = setTimeout(() => connect.abort(), options.timeoutMs ?? 30_000);
    try {
      response = await fetch(url, { signal: connect.signal });
    } catch (error) {
      const why = connect.signal.aborted ? "no answer (timed out)" : (error as Error).message;
      throw new Error(`cannot download ${url}: ${why}`, { cause: error });
    } finally {
      clearTimeout(timer);
    }
    if (!response.ok || !response.body) {
      await response.body?.cancel();
      throw new Error(`cannot download ${url}: HTTP ${response.status} ${response.statusText}`);
    }
    const lengthHeader = response.headers.get("content-length");
    const total = lengthHeader ? Number(lengthHeader) : null;
    const hash = new Md5();
    let received = 0;
    const file = await Deno.open(temp, { write: true, createNew: true });
    try {
      for await (const chunk of response.body) {
        hash.update(chunk);
        received += chunk.length;
        for (let p = 0; p < chunk.length;) p += await file.write(chunk.subarray(p));
        onProgress(received, total);
      }
    } finally {
      file.close();
    }
    if (total !== null && received !== total) {
      throw new Error(`download of ${url} stopped at ${received} of ${total} bytes`);
    }
    const digest = hash.hex();
    if (options.md5 && digest !== options.md5.toLowerCase()) {
      throw new Error(
        `download of ${url} has MD5 ${digest}, expected ${options.md5}: the file is corrupt or ` +
          `not the official release; it was deleted, try again`,
      );
    }
    await Deno.rename(temp, dest);
  } catch (error) {
    await Deno.remove(temp).catch(() => {});
    throw error;
  }
}

function tarString(block: Uint8Array, start: number, length: number): string {
  const field = block.subarray(start, start + length);
  const end = field.indexOf(0);
  return new TextDecoder().decode(end < 0 ? field : field.subarray(0, end));
}

function tarOctal(block: Uint8Array, start: number, length: number, source: string): number {
  if (block[start] & 0x80) {
    // GNU base-256 for large values.
    let value = 0;
    for (let i = start + 1; i < start + length; i++) value = value * 256 + block[i];
    return value;
  }
  const text = tarString(block, start, length).trim();
  if (!/^[0-7]*$/.test(text)) {
    throw new Error(`${source}: corrupt tar header (bad number "${text}")`);
  }
  return text ? parseInt(text, 8) : 0;
}

/**
 * Lists the regular files of an (uncompressed) tar archive: ustar, GNU long names and pax
 * `path` records. Header checksums are verified.
 *
 * @example
 * ```ts
 * import { parseTar } from "./cifar10.ts";
 * for (const { name, data } of parseTar(tarBytes, "a.tar")) console.log(name, data.length);
 * ```
 */
export function parseTar(bytes: Uint8Array, source: string): { name: string; data: Uint8Array }[] {
  const files: { name: string; data: Uint8Array }[] = [];
  let p = 0;
  let longName: string | null = null;
  while (p + 512 <= bytes.length) {
    const header = bytes.subarray(p, p + 512);
    if (header.every((b) => b === 0)) return files; // end-of-archive blocks
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 0x20 : header[i];
    if (sum !== tarOctal(header, 148, 8, source)) {
      throw new Error(`${source}: corrupt tar header at byte ${p} (checksum mismatch)`);
    }
    const size = tarOctal(header, 124, 12, source);
    const type = String.fromCharCode(header[156] || 0x30);
    const dataStart = p + 512;
    if (dataStart + size > bytes.length) {
      throw new Error(`${source}: tar entry at byte ${p} runs past the end (truncated archive?)`);
    }
    const data = bytes.subarray(dataStart, dataStart + size);
    const prefix = tarString(header, 257, 6) === "ustar" ? tarString(header, 345, 155) : "";
    let name = longName ?? (prefix ? `${prefix}/` : "") + tarString(header, 0, 100);
    if (type === "L") {
      longName = tarString(data, 0, data.length);
    } else if (type === "x") {
      const path = /\d+ path=([^\n]*)\n/.exec(new TextDecoder().decode(data))?.[1];
      if (path) longName = path;
    } else {
      longName = null;
      if (type === "0" || type === "7") {
        name = name.replace(/^\.\//, "");
        files.push({ name, data });
      }
    }
    p = dataStart + Math.ceil(size / 512) * 512;
  }
  if (p < bytes.length || files.length === 0) {
    throw new Error(`${source}: truncated tar archive`);
  }
  return files;
}

async function gunzip(path: string): Promise<Uint8Array> {
  const file = await Deno.open(path);
  try {
    const stream = file.readable.pipeThrough(new DecompressionStream("gzip"));
    return new Uint8Array(await new Response(stream).arrayBuffer());
  } catch (error) {
    throw new Error(`${path}: corrupt gzip data (${(error as Error).message})`, { cause: error });
  }
}

/**
 * Makes sure the CIFAR-10 batch files are in the cache, downloading and extracting the
 * official archive if needed, and returns the folder that holds them.
 *
 * @example
 * ```ts
 * import { ensureCifar10, readCifarSplit } from "./cifar10.ts";
 * const dir = await ensureCifar10(); // ~/.cache/deno-diffusion/cifar-10-batches-bin
 * const train = await readCifarSplit(dir, "train");
 * ```
 */
export async function ensureCifar10(
  options: { cacheDir?: string; url?: string; md5?: string; onProgress?: ProgressCallback } = {},
): Promise<string> {
  const cache = options.cacheDir ?? defaultCacheDir();
  const target = `${cache}/${CIFAR10_BATCHES_DIR}`;
  if (await hasCifarBatches(target)) return target;
  await Deno.mkdir(cache, { recursive: true });
  const url = options.url ?? CIFAR10_URL;
  const archive = `${cache}/cifar-10-binary.tar.gz`;
  await downloadFile(url, archive, {
    md5: options.md5 ?? CIFAR10_MD5,
    onProgress: options.onProgress,
  });
  // Extract into a private folder, then move the finished batch folder into place, so a
  // crash never leaves a half-extracted cache that looks complete.
  const staging = await Deno.makeTempDir({ dir: cache, prefix: ".extract-" });
  try {
    const files = parseTar(await gunzip(archive), archive);
    for (const { name, data } of files) {
      if (!name.startsWith(`${CIFAR10_BATCHES_DIR}/`) || name.includes("..")) continue;
      await Deno.mkdir(`${staging}/${CIFAR10_BATCHES_DIR}`, { recursive: true });
      await writeFileAtomic(`${staging}/${name}`, data);
    }
    if (!(await hasCifarBatches(`${staging}/${CIFAR10_BATCHES_DIR}`))) {
      throw new Error(
        `${archive} does not contain ${CIFAR10_BATCHES_DIR}/data_batch_1..5.bin and test_batch.bin`,
      );
    }
    await Deno.remove(target, { recursive: true }).catch(() => {});
    await Deno.rename(`${staging}/${CIFAR10_BATCHES_DIR}`, target);
  } finally {
    await Deno.remove(staging, { recursive: true }).catch(() => {});
    await Deno.remove(archive).catch(() => {});
  }
  return target;
}
