/**
 * The study's measurements: Inception features, FID and KID of generated images against a
 * data split (and the train-vs-test floor), and bits/dim of a diffusion model on a split.
 * When pytorch-fid's Inception weights are absent, {@link openFidScorer} says so instead of
 * scoring; weights that are not the released file give numbers labelled as not comparable.
 *
 * @module
 */
import type { Backend } from "../backend/backend.ts";
import { Rng } from "../backend/rng.ts";
import type { Dataset } from "../data/dataset.ts";
import type { BitsPerDim } from "../diffusion/loss.ts";
import type { DdpmTask } from "../diffusion/task.ts";
import { toUint8Images } from "../io/png.ts";
import { computeActivations, type ImageLike } from "../metrics/features.ts";
import { fidFromStatistics, statisticsOf } from "../metrics/fid.ts";
import type { InceptionNet } from "../metrics/inception.ts";
import { kernelInceptionDistance } from "../metrics/kid.ts";
import {
  loadInception,
  resolveInceptionWeights,
  verifyInceptionWeights,
} from "../metrics/weights.ts";
import type { Batch, TrainTask } from "../train/task.ts";

/** Whether FID numbers can be compared with pytorch-fid / the published ones. */
export type FidStatus = "ok" | "not-comparable" | "unavailable";

/** Inception features: [n, dims] row-major. */
export interface Features {
  data: Float32Array;
  n: number;
  dims: number;
}

/** FID and KID of one image set against another. */
export interface Score {
  fid: number;
  kid: number;
  kidStd: number;
}

/** Scores images with the FID Inception network, or explains why it cannot. */
export interface FidScorer {
  status: FidStatus;
  /** One sentence for the report: where the weights came from, or why there are none. */
  note: string;
  /** Features of 8-bit images (none when status is "unavailable"). */
  features(images: readonly ImageLike[], label: string): Promise<Features>;
  /** FID and KID between two feature sets. */
  score(a: Features, b: Features): Score;
  dispose(): void;
}

/** Options of {@link openFidScorer}. */
export interface FidScorerOptions {
  /** `--inception-weights`: a file in pytorch-fid's layout (else env, cache, download). */
  weightsPath?: string;
  /** Allow downloading the released weights into the cache. */
  download: boolean;
  /** Images per Inception forward pass. */
  batchSize?: number;
  /** Progress bars on stderr. */
  progress?: boolean;
  log?: (message: string) => void;
}

/**
 * Loads the FID Inception network for the study. The released file (size and sha256
 * checked) gives comparable FIDs; any other file in the same layout (e.g. random weights a
 * test made) is used but marked "not-comparable"; no file gives status "unavailable".
 *
 * @example
 * ```ts ignore
 * const scorer = await openFidScorer(backend, { download: false });
 * if (scorer.status === "unavailable") console.log(scorer.note);
 * ```
 */
export async function openFidScorer(
  backend: Backend,
  options: FidScorerOptions,
): Promise<FidScorer> {
  let net: InceptionNet;
  let status: FidStatus = "ok";
  let note: string;
  try {
    net = await loadInception(backend, {
      path: options.weightsPath,
      download: options.download,
      log: options.log,
      verify: false,
    });
  } catch (e) {
    return unavailableScorer(
      (e as Error).message.trim().replace(/\.$/, ""),
    );
  }
  const path = await resolveInceptionWeights({ path: options.weightsPath, download: false });
  try {
    await verifyInceptionWeights(path);
    note = `FID Inception weights: ${path} (pytorch-fid's released file, checked)`;
  } catch (e) {
    status = "not-comparable";
    note = `FID from NOT the released Inception weights (${path}: ${
      (e as Error).message.trim()
    }). These FID and KID values are NOT comparable with pytorch-fid or the published numbers`;
  }
  const batchSize = options.batchSize ?? 50;
  return {
    status,
    note,
    features: async (images, label) => {
      const a = await computeActivations(backend, net, images, {
        batchSize,
        progress: options.progress ?? false,
        label,
      });
      return { data: a.data, n: a.n, dims: a.dims };
    },
    score: (a, b) => scoreFeatures(a, b, backend),
    dispose: () => net.dispose(),
  };
}

function unavailableScorer(note: string): FidScorer {
  const refuse = (): never => {
    throw new Error(note);
  };
  return {
    status: "unavailable",
    note,
    features: () => Promise.reject(new Error(note)),
    score: refuse,
    dispose: () => {},
  };
}

/**
 * FID (pytorch-fid's definition) and KID (100 subsets of up to 1,000) between feature sets.
 *
 * @example
 * ```ts
 * import { scoreFeatures } from "./evaluate.ts";
 * const a = { data: new Float32Array([0, 1, 2, 3, 4, 6, 1, 1]), n: 4, dims: 2 };
 * console.log(scoreFeatures(a, a).fid); // ~0
 * ```
 */
export function scoreFeatures(a: Features, b: Features, backend?: Backend): Score {
  const fid = fidFromStatistics(
    statisticsOf(a.data, a.n, a.dims),
    statisticsOf(b.data, b.n, b.dims),
  );
  const kid = kernelInceptionDistance(a, b, { backend });
  return { fid, kid: kid.kid, kidStd: kid.std };
}

/**
 * Generated float32 NCHW images in [-1, 1] as 8-bit images, quantised exactly as the PNGs
 * written for pytorch-fid.
 */
export function generatedImages(images: Float32Array, shape: readonly number[]): ImageLike[] {
  return toUint8Images(images, shape);
}

/**
 * The images of `data` whose label is in `labels` (all when omitted), first `limit` of them,
 * as 8-bit HWC images for the Inception network.
 *
 * @example
 * ```ts
 * import { Dataset } from "../data/dataset.ts";
 * import { datasetImages } from "./evaluate.ts";
 * const data = new Dataset({ images: new Uint8Array(2 * 3 * 2 * 2), labels: new Int32Array([0, 1]),
 *   imageShape: [3, 2, 2], classNames: ["a", "b"] });
 * console.log(datasetImages(data, 5, [1]).length); // 1
 * ```
 */
export function datasetImages(data: Dataset, limit: number, labels?: number[]): ImageLike[] {
  const [c, h, w] = data.imageShape;
  const plane = h * w;
  const all = data.images();
  const allLabels = data.labels();
  const out: ImageLike[] = [];
  for (let i = 0; i < data.size && out.length < limit; i++) {
    if (labels && !labels.includes(allLabels[i])) continue;
    const pixels = new Uint8Array(plane * c);
    for (let ch = 0; ch < c; ch++) {
      const from = (i * c + ch) * plane;
      for (let p = 0; p < plane; p++) pixels[p * c + ch] = all[from + p];
    }
    out.push({ width: w, height: h, channels: c, data: pixels });
  }
  return out;
}

/** Options of {@link diffusionBitsPerDim}. */
export interface BitsPerDimEvalOptions {
  /** Test images to evaluate, spread evenly over the split. */
  images: number;
  /** Evaluate every k-th KL term (1 = the exact bound). */
  timestepStride: number;
  /** Images per forward pass. */
  batchSize: number;
  seed: number;
}

/**
 * Bits/dim (Ho et al. 2020 eq. 5, Table 2) of a trained DDPM task on `options.images` images
 * of `data` spread evenly over it (all of them when it has no more), using its EMA weights
 * when it has them (the weights it samples with).
 *
 * @example
 * ```ts ignore
 * const { total } = diffusionBitsPerDim(task, testCats, { images: 1000, timestepStride: 1, batchSize: 100, seed: 0 });
 * ```
 */
export function diffusionBitsPerDim(
  task: TrainTask,
  data: Dataset,
  options: BitsPerDimEvalOptions,
): BitsPerDim {
  if (task.kind !== "ddpm") throw new Error("bits/dim is defined for diffusion models only");
  return (task as DdpmTask).bitsPerDim(
    testBatches(data, Math.min(options.images, data.size), options.batchSize),
    new Rng(options.seed),
    { timestepStride: options.timestepStride },
  );
}

/**
 * `count` images spread evenly over `data` (so every class of a multi-class split is in the
 * subset, not just the first), as float batches in [-1, 1] with their labels.
 */
function* testBatches(data: Dataset, count: number, batchSize: number): Generator<Batch> {
  const [c, h, w] = data.imageShape;
  const per = c * h * w;
  const images = data.images();
  const labels = data.labels();
  const pick = (k: number) => Math.floor((k * data.size) / count);
  for (let start = 0; start < count; start += batchSize) {
    const n = Math.min(batchSize, count - start);
    const x = new Float32Array(n * per); // [n, C, H, W]
    const y = new Int32Array(n);
    for (let b = 0; b < n; b++) {
      const from = pick(start + b) * per;
      for (let i = 0; i < per; i++) x[b * per + i] = images[from + i] / 127.5 - 1;
      y[b] = labels[pick(start + b)];
    }
    yield { images: x, labels: y, shape: [n, c, h, w] };
  }
}
