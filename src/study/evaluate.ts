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
import { type Activations, computeActivations, type ImageLike } from "../metrics/features.ts";
import { fidFromStatistics, statisticsOf } from "../metrics/fid.ts";
import type { InceptionNet } from "../metrics/inception.ts";
import { kernelInceptionDistance } from "../metrics/kid.ts";
import {
  loadInception,
  resolveInceptionWeights,
  verifyInceptionWeights,
} from "../metrics/weights.ts";

/** Whether FID numbers can be compared with pytorch-fid / the published ones. */
export type FidStatus = "ok" | "not-comparable" | "unavailable";

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
  features(images: readonly ImageLike[], label: string): Promise<Activations>;
  /** FID and KID between two feature sets. */
  score(a: Activations, b: Activations): Score;
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
 * ```ts
 * import { createBackend } from "../backend/select.ts";
 * import { openFidScorer } from "./evaluate.ts";
 * using backend = await createBackend("tfjs-cpu");
 * const scorer = await openFidScorer(backend, { download: false, weightsPath: "/nonexistent.pth" });
 * if (scorer.status === "unavailable") console.log(scorer.note); // "the Inception weights file ... does not exist"
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
export function scoreFeatures(a: Activations, b: Activations, backend?: Backend): Score {
  const fid = fidFromStatistics(
    statisticsOf(a.data, a.n, a.dims),
    statisticsOf(b.data, b.n, b.dims),
  );
  const kid = kernelInceptionDistance(a, b, { backend });
  return { fid, kid: kid.kid, kidStd: kid.std };
}
