/**
 * The common job in one call: FID (and KID) between two folders of images or pytorch-fid
 * `.npz` statistics files, as `cli.ts fid A B` computes it.
 *
 * @module
 */
import type { Backend } from "../backend/backend.ts";
import { selectBackend } from "../backend/select.ts";
import { FidScorer, type FidScorerOptions, openFidSource, sourceCount } from "./scorer.ts";

/** Options of {@link fidBetweenFolders}. */
export interface CompareOptions extends FidScorerOptions {
  /** Backend to run the network on (default: the best available; disposed afterwards). */
  backend?: Backend;
  /** Use only the first N images of each folder (sorted by name). */
  numSamples?: number;
  /** Also compute KID (needs two image folders). */
  kid?: boolean;
}

/** Result of {@link fidBetweenFolders}. */
export interface CompareResult {
  /** Fréchet Inception Distance. */
  fid: number;
  /** KID, when asked for. */
  kid?: number;
  /** KID's standard deviation over subsets, when asked for. */
  kidStd?: number;
  /** Images on side A; null for a statistics file that does not record its count. */
  nA: number | null;
  /** Images on side B; null likewise. */
  nB: number | null;
  /** Feature size. */
  dims: number;
  /** Backend that ran the network. */
  backend: string;
}

/**
 * FID (and optionally KID) between two folders of images or `.npz` statistics files. Both
 * sides (and the weights, when a folder needs them) are checked before any features are
 * computed.
 *
 * @example
 * ```ts ignore
 * import { fidBetweenFolders } from "../../mod.ts";
 * const { fid, nA, nB } = await fidBetweenFolders("samples/", "cifar10_test_stats.npz", {
 *   weights: "pt_inception-2015-12-05-6726825d.pth",
 * });
 * console.log(`FID ${fid} (${nA} vs ${nB ?? "?"} images)`);
 * ```
 */
export async function fidBetweenFolders(
  a: string,
  b: string,
  options: CompareOptions = {},
): Promise<CompareResult> {
  const backend = options.backend ?? await selectBackend({ log: options.log });
  try {
    using scorer = new FidScorer(backend, options);
    const check = { numSamples: options.numSamples, eigvalsh: scorer.eigvalsh };
    const sourceA = await openFidSource(a, check);
    const sourceB = await openFidSource(b, check);
    if (options.kid) {
      for (const s of [sourceA, sourceB]) {
        if (s.kind !== "folder") {
          throw new Error(`KID needs the features of two image folders; ${s.path} is .npz`);
        }
      }
    }
    if (sourceA.kind === "folder" || sourceB.kind === "folder") await scorer.weightsPath();
    const folderDims = scorer.dims;
    const dimsOf = (s: typeof sourceA) => s.kind === "statistics" ? s.stats.dims : folderDims;
    if (dimsOf(sourceA) !== dimsOf(sourceB)) {
      throw new Error(
        `${a} gives ${dimsOf(sourceA)}-dim statistics but ${b} gives ${dimsOf(sourceB)}-dim: ` +
          `compute both with the same --dims (folders use --dims, now ${folderDims})`,
      );
    }
    const result: CompareResult = {
      fid: NaN,
      nA: sourceCount(sourceA),
      nB: sourceCount(sourceB),
      dims: dimsOf(sourceA),
      backend: backend.name,
    };
    if (options.kid && sourceA.kind === "folder" && sourceB.kind === "folder") {
      const fa = await scorer.folderFeatures(sourceA);
      const fb = await scorer.folderFeatures(sourceB);
      const score = scorer.score(fa, fb);
      return { ...result, fid: score.fid, kid: score.kid, kidStd: score.kidStd };
    }
    const statsA = await scorer.statisticsOf(sourceA);
    const statsB = await scorer.statisticsOf(sourceB);
    return { ...result, fid: scorer.fid(statsA, statsB) };
  } finally {
    if (!options.backend) backend.dispose();
  }
}
