/**
 * The one FID/KID scorer: images or folders -> Inception features -> statistics -> FID (and
 * KID), with the eigen solver chosen once ({@link backendEigvalsh}), the network loaded on
 * first use (statistics files need none), and one optional on-disk feature cache. Every
 * command and the study go through it, so they give the same number for the same images.
 *
 * @module
 */
import type { Backend } from "../backend/backend.ts";
import { listImageFiles } from "../io/image.ts";
import { readNpy, writeNpy } from "../io/npy.ts";
import { computeActivations, decodeFiles, type FeatureMatrix, type ImageLike } from "./features.ts";
import {
  backendEigvalsh,
  checkStatistics,
  fidFromStatistics,
  type FidStatistics,
  statisticsOf,
} from "./fid.ts";
import type { InceptionNet } from "./inception.ts";
import type { InceptionDims } from "./inception_layers.ts";
import { kernelInceptionDistance, type KidOptions, type KidResult } from "./kid.ts";
import type { EigvalshFn } from "./linalg.ts";
import { type FeatureGatherer, shardedActivations } from "./sharded.ts";
import { readStatistics } from "./stats_io.ts";
import { loadInception, resolveInceptionWeights } from "./weights.ts";

/** Options of {@link FidScorer}. */
export interface FidScorerOptions {
  /** pytorch-fid's weights file (else `DENO_DIFFUSION_INCEPTION`, the cache, a download). */
  weights?: string;
  /** Allow downloading the released weights into the cache. Default true. */
  download?: boolean;
  /** Check size and sha256 against the released file. Default true. */
  verify?: boolean;
  /** Feature size: 64, 192, 768 or 2048. Default 2048. */
  dims?: InceptionDims;
  /** Images per forward pass. Default 50. */
  batchSize?: number;
  /** Progress bars on stderr (default: when stderr is a terminal). */
  progress?: boolean;
  /** Decisions and cache hits, e.g. `(m) => console.error(m)`. */
  log?: (message: string) => void;
  /** Folder of the feature cache ({@link FidScorer.features} with a `cacheKey`); off if unset. */
  cacheDir?: string;
  /**
   * Data-parallel ranks (a `ProcessGroup`): each computes the features of one block of a
   * folder's images and the blocks are gathered, equal to one process's features.
   */
  group?: FeatureGatherer;
}

/** Options of one {@link FidScorer.features} call. */
export interface FeatureOptions {
  /** Progress-bar title. */
  label?: string;
  /** Number of images, for the progress bar of an iterable. */
  total?: number;
  /**
   * Identifies the image set (data source, split, classes, count...); with the scorer's
   * `cacheDir` the features are read from / written to the cache under it and the weights.
   */
  cacheKey?: readonly unknown[];
}

/** One side of an FID: a statistics file, or a folder's image files (not yet read). */
export type FidSource =
  | { kind: "statistics"; path: string; stats: FidStatistics }
  | { kind: "folder"; path: string; files: string[] };

/** FID and KID of one image set against another. */
export interface Score {
  /** Fréchet Inception Distance. */
  fid: number;
  /** Kernel Inception Distance (mean over subsets). */
  kid: number;
  /** Its standard deviation over subsets. */
  kidStd: number;
}

/**
 * Scores images with pytorch-fid's FID Inception network.
 *
 * @example
 * ```ts ignore
 * import { createBackend } from "../backend/select.ts";
 * import { FidScorer } from "./scorer.ts";
 * using scorer = new FidScorer(await createBackend("torch-cpu"), { weights: "pt_inception.pth" });
 * const a = await scorer.folderFeatures("samples");
 * const b = await scorer.folderFeatures("reference");
 * console.log(scorer.fid(scorer.statistics(a), scorer.statistics(b)));
 * ```
 */
export class FidScorer implements Disposable {
  /** The backend the network runs on. */
  readonly backend: Backend;
  /** Feature size. */
  readonly dims: InceptionDims;
  /** The eigen solver of every Fréchet distance here (undefined: the TypeScript one). */
  readonly eigvalsh: EigvalshFn | undefined;
  readonly #options: FidScorerOptions;
  #weightsPath?: string;
  #net?: Promise<InceptionNet>;
  #loaded?: InceptionNet;

  /** A scorer on `backend`; nothing is loaded until features are asked for. */
  constructor(backend: Backend, options: FidScorerOptions = {}) {
    this.backend = backend;
    this.dims = options.dims ?? 2048;
    this.eigvalsh = backendEigvalsh(backend);
    this.#options = options;
  }

  /**
   * The weights file, found (or downloaded) once; call it early to fail before other work.
   */
  async weightsPath(): Promise<string> {
    this.#weightsPath ??= await resolveInceptionWeights({
      path: this.#options.weights,
      download: this.#options.download,
      log: this.#options.log,
    });
    return this.#weightsPath;
  }

  /** The Inception network, loaded on first use. */
  network(): Promise<InceptionNet> {
    this.#net ??= this.weightsPath().then((path) =>
      loadInception(this.backend, {
        path,
        dims: this.dims,
        log: this.#options.log,
        verify: this.#options.verify ?? true,
      })
    ).then((net) => this.#loaded = net);
    return this.#net;
  }

  /** Inception features of 8-bit images, in order (from the cache when keyed and present). */
  async features(
    images: Iterable<ImageLike> | AsyncIterable<ImageLike>,
    options: FeatureOptions = {},
  ): Promise<FeatureMatrix> {
    const path = await this.#cachePath(options.cacheKey);
    const cached = path ? await this.#readCache(path, options.label) : null;
    if (cached) return cached;
    const features = await this.#compute(images, options);
    if (path) await this.#writeCache(path, features);
    return features;
  }

  /**
   * Features of `count` images, image i being `imagesAt(start, end)`'s (i - start)-th. With the
   * scorer's `group` each rank computes contiguous blocks of whole multiples of `block` images
   * (default: the batch size; it must be a multiple of it) and every rank gets all the
   * features, equal to one process's: the same batches run on the same images. A keyed cache
   * is used only when every rank has the entry; rank 0 alone writes it.
   *
   * @example
   * ```ts ignore
   * const f = await scorer.shardedFeatures(refImages.length, (s, e) => refImages.slice(s, e));
   * ```
   */
  async shardedFeatures(
    count: number,
    imagesAt: (
      start: number,
      end: number,
    ) =>
      | Iterable<ImageLike>
      | AsyncIterable<ImageLike>
      | Promise<Iterable<ImageLike> | AsyncIterable<ImageLike>>,
    options: FeatureOptions & { block?: number } = {},
  ): Promise<FeatureMatrix> {
    const group = this.#options.group;
    const batch = this.#options.batchSize ?? 50;
    const block = options.block ?? batch;
    if (!Number.isInteger(block) || block < 1 || block % batch !== 0) {
      throw new RangeError(
        `feature block ${block} must be a positive multiple of the batch ${batch}`,
      );
    }
    const path = await this.#cachePath(options.cacheKey);
    let cached = path ? await this.#readCache(path, options.label) : null;
    if (group && group.worldSize > 1 && path) {
      // One rank without the entry (another machine's cache) makes every rank compute.
      const hits = group.allGather(Float32Array.of(cached ? 1 : 0));
      if (hits.some((h) => h === 0)) cached = null;
    }
    if (cached) return cached;
    const part = async (start: number, end: number) =>
      await this.#compute(await imagesAt(start, end), { ...options, total: end - start });
    const features = !group || group.worldSize <= 1
      ? await part(0, count)
      : await shardedActivations(count, block, this.dims, group, part);
    if (path && (group?.rank ?? 0) === 0) await this.#writeCache(path, features);
    return features;
  }

  async #compute(
    images: Iterable<ImageLike> | AsyncIterable<ImageLike>,
    options: FeatureOptions,
  ): Promise<FeatureMatrix> {
    return computeActivations(this.backend, await this.network(), images, {
      batchSize: this.#options.batchSize,
      total: options.total,
      progress: this.#options.progress,
      label: options.label,
    });
  }

  async #cachePath(key: readonly unknown[] | undefined): Promise<string | null> {
    if (!key || !this.#options.cacheDir) return null;
    return `${this.#options.cacheDir}/${await this.#cacheName(key)}.npy`;
  }

  async #readCache(path: string, label?: string): Promise<FeatureMatrix | null> {
    const cached = await readNpy(path).catch(() => null);
    if (cached?.dtype === "float32" && cached.shape.length === 2 && cached.shape[1] === this.dims) {
      this.#options.log?.(`${label ?? "image"} features from the cache: ${path}`);
      return { data: cached.data as Float32Array, n: cached.shape[0], dims: cached.shape[1] };
    }
    return null;
  }

  async #writeCache(path: string, features: FeatureMatrix): Promise<void> {
    await Deno.mkdir(this.#options.cacheDir!, { recursive: true });
    await writeNpy(path, {
      dtype: "float32",
      shape: [features.n, features.dims],
      data: features.data,
    });
  }

  async #cacheName(key: readonly unknown[]): Promise<string> {
    const weights = await this.weightsPath();
    const stat = await Deno.stat(weights);
    const text = JSON.stringify([
      ...key,
      this.dims,
      weights,
      stat.size,
      stat.mtime?.getTime() ?? 0,
    ]);
    const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
    return [...new Uint8Array(digest)].slice(0, 12)
      .map((b) => b.toString(16).padStart(2, "0")).join("");
  }

  /** Features of a folder's images (sorted by name), or of a {@link FidSource} folder. */
  async folderFeatures(folder: string | FidSource, numSamples?: number): Promise<FeatureMatrix> {
    const source = typeof folder === "string"
      ? await openFidSource(folder, { numSamples })
      : folder;
    if (source.kind !== "folder") throw new Error(`${source.path} is statistics, not images`);
    const files = source.files;
    // Each rank decodes only the files of its own block.
    return await this.shardedFeatures(
      files.length,
      (start, end) => decodeFiles(files.slice(start, end)),
      { label: source.path },
    );
  }

  /** Mean and covariance of features (float64, N - 1). */
  statistics(features: FeatureMatrix): FidStatistics {
    return statisticsOf(features.data, features.n, features.dims);
  }

  /** Statistics of a source: read (and checked) from its file, or from its images. */
  async statisticsOf(source: FidSource): Promise<FidStatistics> {
    if (source.kind === "statistics") return source.stats;
    return this.statistics(await this.folderFeatures(source));
  }

  /** FID between two sets of statistics with this scorer's eigen solver. */
  fid(a: FidStatistics, b: FidStatistics): number {
    return fidFromStatistics(a, b, { eigvalsh: this.eigvalsh });
  }

  /** KID between two feature sets (Gram matrices on the backend). */
  kid(a: FeatureMatrix, b: FeatureMatrix, options: KidOptions = {}): KidResult {
    return kernelInceptionDistance(a, b, { backend: this.backend, ...options });
  }

  /** FID and KID between two feature sets. */
  score(a: FeatureMatrix, b: FeatureMatrix): Score {
    const fid = this.fid(this.statistics(a), this.statistics(b));
    const kid = this.kid(a, b);
    return { fid, kid: kid.kid, kidStd: kid.std };
  }

  /** Frees the network (not the backend, which the caller owns). Idempotent. */
  dispose(): void {
    const pending = this.#net;
    this.#net = undefined;
    if (this.#loaded) this.#loaded.dispose();
    else pending?.then((net) => net.dispose(), () => {});
    this.#loaded = undefined;
  }

  /** Same as {@link FidScorer.dispose}, for `using`. */
  [Symbol.dispose](): void {
    this.dispose();
  }
}

/** Options of {@link openFidSource}. */
export interface FidSourceOptions {
  /** Use only the first N images of a folder (sorted by name). */
  numSamples?: number;
  /** Eigen solver of the PSD check of statistics files. */
  eigvalsh?: EigvalshFn;
}

/**
 * Opens one side of an FID before any features are computed: an `.npz` is read and checked
 * (shapes, finite, symmetric PSD; errors name the file), a folder is listed and must hold at
 * least 2 images (and `numSamples` of them when given).
 *
 * @example
 * ```ts ignore
 * import { openFidSource } from "./scorer.ts";
 * const source = await openFidSource("samples/", { numSamples: 1000 });
 * ```
 */
export async function openFidSource(
  path: string,
  options: FidSourceOptions = {},
): Promise<FidSource> {
  if (path.toLowerCase().endsWith(".npz")) {
    const stats = await readStatistics(path);
    checkStatistics(stats, path, options.eigvalsh);
    return { kind: "statistics", path, stats };
  }
  let files = await listImageFiles(path);
  if (options.numSamples !== undefined) {
    if (files.length < options.numSamples) {
      throw new Error(
        `${path} holds ${files.length} images, fewer than --num-samples ${options.numSamples}`,
      );
    }
    files = files.slice(0, options.numSamples);
  }
  if (files.length < 2) {
    throw new Error(`${path} holds ${files.length} image; FID needs at least 2 per side`);
  }
  return { kind: "folder", path, files };
}

/** Number of images behind a source; null for statistics files that do not record it. */
export function sourceCount(source: FidSource): number | null {
  return source.kind === "folder" ? source.files.length : source.stats.count ?? null;
}
