/**
 * Sampling a model into a folder of PNGs, the one implementation behind `sample --out-dir`,
 * `fid --ckpt` and the study's sample folders.
 *
 * Images are written as each chunk finishes (one atomic file each), so memory stays flat in the
 * number of images and a crash loses at most one chunk. Every image draws its noise from its own
 * index ({@link imageNoise}), so a rerun into the same folder samples exactly the missing files
 * and the finished folder is the one an uninterrupted run would have written, whatever the
 * batch size. A hidden manifest (`.samples.json`) records what the folder holds (weights
 * fingerprint, seed, labels, sampler options); a folder holding other images is refused unless
 * the caller asks to replace them, so FID never scores a mixed folder.
 *
 * @module
 */
import { type ImageNoise, imageNoise, type Rng, toImageNoise } from "../core/rng.ts";
import { writeFileAtomic } from "../io/atomic.ts";
import { decodeImageFile } from "../io/image.ts";
import { Md5 } from "../io/md5.ts";
import { makeOutputFolder, OutputError } from "../io/output.ts";
import { encodePng, toUint8Images } from "../io/png.ts";
import type { DecodedImage } from "../io/image.ts";
import type { SampleOptionsOf, TrainTask } from "../task/task.ts";
import {
  chunksOf,
  onRankZero,
  sampleChunks,
  type SampleGroup,
  shareIndexSet,
} from "./sample_ranks.ts";

/**
 * Samples `labels.length` images in chunks of at most 1,000, all in memory (for the few callers
 * that need the floats, such as a grid). Image i uses stream i of `noise`, so the result does
 * not depend on the chunking. With `group` (a data-parallel job) the ranks share the chunks
 * and every rank returns all the images, bit-identical to one process's (`sample_ranks.ts`).
 *
 * @example
 * ```ts
 * import { createBackend } from "../backend/select.ts";
 * import { Rng } from "../core/rng.ts";
 * import { DEFAULT_DDPM_CONFIG } from "../diffusion/task.ts";
 * import { createTask } from "./registry.ts";
 * import { sampleInChunks } from "./sampling.ts";
 * using backend = await createBackend("tfjs-cpu");
 * const config = { ...DEFAULT_DDPM_CONFIG, preset: "convnet" as const, baseWidth: 8, imageSize: 8, timesteps: 20, ema: 0 };
 * using task = createTask(backend, { kind: "ddpm", config }, 0);
 * // The CLI: 5,000 labels in five chunks, with a progress line per chunk (true).
 * const images = await sampleInChunks(task, new Int32Array(3), new Rng(0), { sampler: "ddim", steps: 2 }, false);
 * console.log(images.length); // 576: [3, 3, 8, 8]
 * ```
 */
export async function sampleInChunks<T extends TrainTask>(
  task: T,
  labels: Int32Array,
  noise: Rng | ImageNoise,
  options: SampleOptionsOf<T>,
  progress: boolean,
  group?: SampleGroup,
): Promise<Float32Array> {
  const per = task.imageShape[0] * task.imageShape[1] * task.imageShape[2];
  const images = new Float32Array(labels.length * per); // [n, C, H, W]
  const chunks = chunksOf([[0, labels.length]], 1000);
  const streams = toImageNoise(noise);
  await sampleChunks(task, labels, streams, options, chunks, group, (start, count, part) => {
    images.set(part, start * per);
    if (progress) console.error(`sampled ${start + count}/${labels.length}`);
  });
  return images;
}

/** The manifest file a sample folder carries (hidden: image readers skip it). */
export const SAMPLES_MANIFEST = ".samples.json";
const FORMAT = "deno-diffusion-samples/1";

/** What a sample folder holds; two runs with equal manifests write identical files. */
export interface SamplesManifest {
  format: typeof FORMAT;
  kind: string;
  imageShape: readonly number[];
  /** Number of images the folder is meant to hold. */
  n: number;
  seed: number;
  /** Stream index of the folder's first image (a study class group starts after the last). */
  first: number;
  /** MD5 of the labels (int32, little-endian). */
  labels: string;
  /** MD5 of the sampling weights, so a retrained model never tops up an older folder. */
  weights: string;
  /** The sampler options that change images (the batch size does not, and is left out). */
  options: Record<string, unknown>;
  /** The caller's own record (e.g. the command's flags), kept for `--resume`; not compared. */
  settings?: Record<string, unknown>;
}

/** What to do when the folder already holds images. */
export type ExistingImages =
  /** Continue the same run (equal manifest); refuse anything else. The default. */
  | "resume"
  /** Delete the folder's images and manifest first. */
  | "overwrite"
  /** Continue the same run; replace a different one (a study owns its folders). */
  | "replace-different";

/** Options of {@link sampleToFolder}. */
export interface SampleToFolderOptions<T extends TrainTask> {
  /** Label of each image ([n]; zeros for unconditional models). */
  labels: Int32Array;
  /** Seed of the per-image noise streams. */
  seed: number;
  /** Stream index of image 0 (default 0). */
  first?: number;
  /** The task's sampler options. */
  options: SampleOptionsOf<T>;
  /** Images per `task.sample` call, i.e. per write round (default: the batch size, else 256). */
  chunk?: number;
  /** Default "resume". */
  existing?: ExistingImages;
  /** Stored in the manifest, not compared (e.g. the command's flags). */
  settings?: Record<string, unknown>;
  /** Return the first `keep` images as 8-bit tiles (for a grid); read back when skipped. */
  keep?: number;
  /** Called after each chunk with images written so far (skipped ones included) and `n`. */
  progress?: (done: number, total: number) => void;
  /**
   * Ranks of a data-parallel job: each samples its share of the chunks, rank 0 alone reads and
   * writes the folder (the same files as one process). Every rank passes the same run.
   */
  group?: SampleGroup;
}

/** What {@link sampleToFolder} did. */
export interface SampleToFolderResult {
  /** Images sampled now. */
  written: number;
  /** Images already there from an earlier run of the same settings. */
  skipped: number;
  /** The first `keep` images. */
  kept: DecodedImage[];
  /** The image paths, in index order. */
  paths: string[];
}

/** The file name of image `index`, as `writeImageFolder` names it. */
export function sampleFileName(index: number): string {
  return `${String(index).padStart(5, "0")}.png`;
}

const IMAGE_FILE = /\.(png|jpe?g)$/i;
const OWN_TEMP = /^\.\d{5,}\.png\.[0-9a-z]+\.tmp$/;

/**
 * MD5 of the weights a task samples with (its export group), in name order.
 *
 * @example
 * ```ts ignore
 * const before = weightsFingerprint(task); // "3f2a..."
 * ```
 */
export function weightsFingerprint(task: TrainTask): string {
  const store = task.stores[task.exportStore];
  const hash = new Md5();
  const host = store.toHost();
  for (const name of [...host.keys()].sort()) {
    const t = host.get(name)!;
    hash.update(new TextEncoder().encode(`${name}[${t.shape.join(",")}]`));
    hash.update(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  }
  return hash.hex();
}

/** The manifest of a run, without the caller's settings. */
export function samplesManifest<T extends TrainTask>(
  task: T,
  run: Pick<SampleToFolderOptions<T>, "labels" | "seed" | "first" | "options" | "settings">,
): SamplesManifest {
  const { batchSize: _ignored, ...options } = (run.options ?? {}) as Record<string, unknown>;
  const labels = run.labels;
  return {
    format: FORMAT,
    kind: task.kind,
    imageShape: [...task.imageShape],
    n: labels.length,
    seed: run.seed >>> 0,
    first: run.first ?? 0,
    labels: new Md5().update(new Uint8Array(labels.buffer, labels.byteOffset, labels.byteLength))
      .hex(),
    weights: weightsFingerprint(task),
    options: JSON.parse(JSON.stringify(options)),
    ...(run.settings ? { settings: run.settings } : {}),
  };
}

/**
 * Reads a folder's manifest; null when it has none.
 *
 * @example
 * ```ts ignore
 * const manifest = await readSamplesManifest("samples/"); // { n: 50000, seed: 0, ... }
 * ```
 */
export async function readSamplesManifest(dir: string): Promise<SamplesManifest | null> {
  let text: string;
  try {
    text = await Deno.readTextFile(`${dir}/${SAMPLES_MANIFEST}`);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
  try {
    const manifest = JSON.parse(text);
    if (manifest?.format === FORMAT) return manifest;
  } catch {
    // a damaged manifest is not ours to trust
  }
  throw new OutputError(
    `${dir}/${SAMPLES_MANIFEST} is not a valid samples manifest; pass --overwrite to start the folder over`,
  );
}

/** Fields of two manifests that differ (settings excluded). */
function differences(a: SamplesManifest, b: SamplesManifest): string[] {
  const keys = [
    "kind",
    "imageShape",
    "n",
    "seed",
    "first",
    "labels",
    "weights",
    "options",
  ] as const;
  return keys.filter((k) => JSON.stringify(a[k]) !== JSON.stringify(b[k]));
}

/** Names of the image files directly in `dir` ([] when it does not exist). */
async function imageNames(dir: string): Promise<string[]> {
  const names: string[] = [];
  try {
    for await (const entry of Deno.readDir(dir)) {
      if (entry.isFile && IMAGE_FILE.test(entry.name)) names.push(entry.name);
      // Temp files of our own writes cut short by a kill: never read, safe to drop.
      if (entry.isFile && OWN_TEMP.test(entry.name)) {
        await Deno.remove(`${dir}/${entry.name}`).catch(() => {});
      }
    }
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return [];
    throw error;
  }
  return names;
}

/**
 * Decides, before any sampling, which images of the run `manifest` still have to be drawn
 * into `dir`, applying `existing` to what is there. Returns the set of indices already done.
 */
async function prepareFolder(
  dir: string,
  manifest: SamplesManifest,
  existing: ExistingImages,
): Promise<Set<number>> {
  const names = await imageNames(dir);
  const found = await readSamplesManifest(dir).catch((e) => {
    if (existing === "resume") throw e;
    return null;
  });
  const different = found ? differences(found, manifest) : [];
  const replace = existing === "overwrite" ||
    (existing === "replace-different" && (different.length > 0 || (!found && names.length > 0)));
  if (replace) {
    for (const name of names) await Deno.remove(`${dir}/${name}`);
    await Deno.remove(`${dir}/${SAMPLES_MANIFEST}`).catch(() => {});
    return new Set();
  }
  if (!found) {
    if (names.length === 0) return new Set();
    throw new OutputError(
      `${dir} already holds ${names.length} image${names.length === 1 ? "" : "s"} that this ` +
        `command did not write; an FID over a mixed folder is wrong. Choose an empty folder, ` +
        `or pass --overwrite to delete them`,
    );
  }
  if (different.length > 0) {
    throw new OutputError(
      `${dir} holds samples of another run (different ${different.join(", ")}); ` +
        `rerun with the same settings to continue it, choose another folder, ` +
        `or pass --overwrite to replace it`,
    );
  }
  const done = new Set<number>();
  for (const name of names) {
    const match = /^(\d{5,})\.png$/.exec(name);
    const index = match ? Number(match[1]) : -1;
    if (index >= 0 && index < manifest.n && name === sampleFileName(index)) done.add(index);
    else {
      throw new OutputError(
        `${dir} holds ${name}, which is not one of this run's ${manifest.n} images; ` +
          `remove it, or pass --overwrite to start the folder over`,
      );
    }
  }
  return done;
}

/** Contiguous runs [start, end) of the indices below `n` that are not in `done`. */
function missingRuns(n: number, done: Set<number>): [number, number][] {
  const runs: [number, number][] = [];
  for (let i = 0; i < n;) {
    if (done.has(i)) {
      i++;
      continue;
    }
    let j = i + 1;
    while (j < n && !done.has(j)) j++;
    runs.push([i, j]);
    i = j;
  }
  return runs;
}

/**
 * Samples `labels.length` images into `dir` as `00000.png`, `00001.png`, ..., writing each
 * chunk as it finishes and skipping images an earlier run of the same settings already wrote.
 * Memory holds one chunk (plus the `keep` tiles), whatever the number of images.
 *
 * @example
 * ```ts ignore
 * const { written, skipped } = await sampleToFolder(task, "samples/", {
 *   labels: new Int32Array(50_000), seed: 0, options: { sampler: "ddim", steps: 50 },
 * });
 * ```
 */
export async function sampleToFolder<T extends TrainTask>(
  task: T,
  dir: string,
  run: SampleToFolderOptions<T>,
): Promise<SampleToFolderResult> {
  const n = run.labels.length;
  if (n < 1) throw new RangeError("need at least one image to sample");
  const group = run.group;
  const lead = (group?.rank ?? 0) === 0;
  const manifest = samplesManifest(task, run);
  const batch = (run.options as { batchSize?: number } | undefined)?.batchSize ?? 0;
  // One chunk per forward batch when the batch is given: files land as each batch finishes.
  const chunk = run.chunk ?? (batch > 0 ? batch : 256);
  const keep = Math.min(run.keep ?? 0, n);
  const kept: DecodedImage[] = new Array(lead ? keep : 0);
  const paths = Array.from({ length: n }, (_, i) => `${dir}/${sampleFileName(i)}`);
  // Rank 0 alone looks at the folder; the others learn which images are left.
  let done = await onRankZero(group, `prepare ${dir}`, async () => {
    const found = await prepareFolder(dir, manifest, run.existing ?? "resume");
    for (const index of found) {
      if (index < keep) kept[index] = await decodeImageFile(paths[index]);
    }
    if (found.size < n) {
      await makeOutputFolder(dir);
      // The manifest goes first: a folder with images and no manifest is never ours.
      await writeFileAtomic(
        `${dir}/${SAMPLES_MANIFEST}`,
        JSON.stringify(manifest, null, 2) + "\n",
      );
    }
    return found;
  });
  if (group && group.worldSize > 1) done = shareIndexSet(group, n, done);
  const skipped = done!.size;
  let finished = skipped;
  if (lead) run.progress?.(finished, n);
  const chunks = chunksOf(missingRuns(n, done!), chunk);
  const noise = imageNoise(manifest.seed, manifest.first);
  let writeError: unknown = null;
  await sampleChunks(
    task,
    run.labels,
    noise,
    run.options,
    chunks,
    group,
    async (start, count, images) => {
      if (!lead || writeError !== null) return;
      try {
        const tiles = toUint8Images(images, [count, ...task.imageShape]); // [count] 8-bit RGB
        for (let j = 0; j < count; j++) {
          await writeFileAtomic(paths[start + j], encodePng(tiles[j]));
          if (start + j < keep) kept[start + j] = tiles[j];
        }
        finished += count;
        run.progress?.(finished, n);
      } catch (e) {
        // Alone: stop now. In a job: finish the gathers the other ranks are in, then fail.
        if (!group || group.worldSize === 1) throw e;
        writeError = e;
      }
    },
  );
  // Every rank returns only once rank 0 wrote the last file (and learns if it could not).
  await onRankZero(group, `write the samples into ${dir}`, () => {
    if (writeError !== null) throw writeError;
    return Promise.resolve();
  });
  return { written: n - skipped, skipped, kept, paths };
}

/** Bytes a PNG sample of `imageShape` takes at most (uncompressed RGB plus headers), for free-space checks. */
export function pngBytesBound(imageShape: readonly number[]): number {
  const [, h, w] = imageShape;
  return h * (w * 3 + 1) + 1024;
}
