/**
 * The study's measurements: Inception features, FID and KID of generated images against a
 * data split (and the train-vs-test floor). The general helpers (images of a split, bits/dim)
 * live in `app/evaluate.ts`.
 * When pytorch-fid's Inception weights are absent, {@link openFidScorer} says so instead of
 * scoring; weights that are not the released file give numbers labelled as not comparable.
 *
 * @module
 */
import type { Backend } from "../backend/backend.ts";
import type { FeatureMatrix, ImageLike } from "../metrics/features.ts";
import { FidScorer, type Score } from "../metrics/scorer.ts";
import type { FeatureGatherer } from "../metrics/sharded.ts";
import { verifyInceptionWeights } from "../metrics/weights.ts";

export type { Score };

/** Whether FID numbers can be compared with pytorch-fid / the published ones. */
export type FidStatus = "ok" | "not-comparable" | "unavailable";

/** The study's view of the metrics scorer: its status, one note for the report, and scoring. */
export interface StudyScorer {
  status: FidStatus;
  /** One sentence for the report: where the weights came from, or why there are none. */
  note: string;
  /** Features of 8-bit images (none when status is "unavailable"). */
  features(images: readonly ImageLike[], label: string): Promise<FeatureMatrix>;
  /** FID and KID between two feature sets. */
  score(a: FeatureMatrix, b: FeatureMatrix): Score;
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
  /** Data-parallel ranks: each computes the features of its share of the images. */
  group?: FeatureGatherer;
}

/**
 * Opens the metrics {@link FidScorer} for the study. The released file (size and sha256
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
): Promise<StudyScorer> {
  const scorer = new FidScorer(backend, {
    weights: options.weightsPath,
    download: options.download,
    verify: false,
    batchSize: options.batchSize,
    progress: options.progress ?? false,
    log: options.log,
    group: options.group,
  });
  let path: string;
  try {
    path = await scorer.weightsPath();
    await scorer.network();
  } catch (e) {
    scorer.dispose();
    return unavailableScorer((e as Error).message.trim().replace(/\.$/, ""));
  }
  let status: FidStatus = "ok";
  let note: string;
  try {
    await verifyInceptionWeights(path);
    note = `FID Inception weights: ${path} (pytorch-fid's released file, checked)`;
  } catch (e) {
    status = "not-comparable";
    note = `FID from NOT the released Inception weights (${path}: ${
      (e as Error).message.trim()
    }). These FID and KID values are NOT comparable with pytorch-fid or the published numbers`;
  }
  return {
    status,
    note,
    features: (images, label) =>
      scorer.shardedFeatures(images.length, (start, end) => images.slice(start, end), { label }),
    score: (a, b) => scorer.score(a, b),
    dispose: () => scorer.dispose(),
  };
}

function unavailableScorer(note: string): StudyScorer {
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
 * FID (pytorch-fid's definition) and KID (100 subsets of up to 1,000) between feature sets,
 * through the metrics scorer (so with the backend's eigen solver where it has one).
 *
 * @example
 * ```ts
 * import { createBackend } from "../backend/select.ts";
 * import { scoreFeatures } from "./evaluate.ts";
 * const a = { data: new Float32Array([0, 1, 2, 3, 4, 6, 1, 1]), n: 4, dims: 2 };
 * console.log(scoreFeatures(a, a, await createBackend("tfjs-cpu")).fid); // ~0
 * ```
 */
export function scoreFeatures(a: FeatureMatrix, b: FeatureMatrix, backend: Backend): Score {
  using scorer = new FidScorer(backend);
  return scorer.score(a, b);
}
