/**
 * `deno task fid PATH_A PATH_B [flags]`: FID (and KID) between two folders of images or
 * pytorch-fid `.npz` statistics, with pytorch-fid's argument shape; `--save-stats DIR OUT.npz`
 * writes statistics pytorch-fid reads.
 *
 * @module
 */
import { selectBackend } from "../backend/select.ts";
import { fidBetweenFolders } from "../metrics/compare.ts";
import { isInceptionDims } from "../metrics/inception_layers.ts";
import { FidScorer, openFidSource } from "../metrics/scorer.ts";
import { writeStatistics } from "../metrics/stats_io.ts";
import type { ProcessGroup } from "../backend/distributed.ts";
import { joinJob, prepareRank } from "../app/parallel.ts";
import {
  BACKEND_FLAG,
  backendFlag,
  bool,
  type CommandSpec,
  helpText,
  int,
  parseCommand,
  str,
  UsageError,
} from "./args.ts";
import { distTimeout, launchIfAsked, parallelFlags } from "./parallel_flags.ts";

const SPEC: CommandSpec = {
  name: "fid",
  summary: "FID between two folders of .png/.jpg images or .npz statistics (mu, sigma), " +
    "computed as pytorch-fid does (FID Inception-v3, 299x299 bilinear resize, float64 " +
    "statistics).",
  usage: "deno task fid PATH_A PATH_B [flags]\n       deno task fid --save-stats IMAGE_DIR " +
    "OUT.npz [flags]",
  flags: {
    dims: {
      type: "string",
      arg: "N",
      help: "feature size: 64, 192, 768 or 2048",
      default: "2048",
    },
    "batch-size": { type: "string", arg: "N", help: "images per forward pass", default: "50" },
    "num-samples": {
      type: "string",
      arg: "N",
      help: "use only the first N images of each folder (sorted by name)",
    },
    kid: { type: "boolean", help: "also report KID (needs two image folders)" },
    json: {
      type: "boolean",
      help: 'print {"fid","kid"?,"kid_std"?,"n_a","n_b","dims","backend","seconds"}; n_a/n_b ' +
        "are null for .npz statistics that do not record a count",
    },
    "save-stats": {
      type: "boolean",
      help: "write the statistics of IMAGE_DIR to OUT.npz (must not exist)",
    },
    "inception-weights": {
      type: "string",
      arg: "PATH",
      help: "pt_inception-2015-12-05-6726825d.pth (else DENO_DIFFUSION_INCEPTION, the cache, " +
        "or a download from pytorch-fid's release)",
    },
    "skip-weights-check": {
      type: "boolean",
      help: "load weights without the size/sha256 check (test weights in the same layout; FID " +
        "values are then not comparable to papers)",
    },
    backend: BACKEND_FLAG,
    ...parallelFlags("the ranks share the images; the FID equals one process's"),
  },
  positionals: { min: 0, max: Infinity },
};

/**
 * Runs the `fid` command; returns the exit status (usage mistakes throw {@link UsageError}).
 *
 * @example
 * ```ts ignore needs-data
 * import { fidCommand } from "./fid.ts";
 * Deno.exit(await fidCommand(["samples/", "cifar10_test_stats.npz", "--json"]));
 * ```
 */
export async function fidCommand(argv: string[]): Promise<number> {
  const parsed = parseCommand(argv, SPEC);
  if (parsed.help) {
    console.log(helpText(SPEC));
    return 0;
  }
  const { positionals } = parsed;
  if (positionals.length !== 2) {
    throw new UsageError(
      `fid: expected 2 paths, got ${positionals.length}. Usage: ${SPEC.usage}`,
    );
  }
  const dims = int(parsed, "dims", 1)!;
  if (!isInceptionDims(dims)) {
    throw new UsageError(`--dims must be one of 64, 192, 768, 2048, got '${str(parsed, "dims")}'`);
  }
  const batchSize = int(parsed, "batch-size", 1)!;
  const numSamples = int(parsed, "num-samples", 1);
  const backendName = backendFlag(parsed);
  const [pathA, pathB] = positionals;
  const launched = await launchIfAsked("fid", argv, parsed);
  if (launched !== null) return launched;
  const job = prepareRank(backendName);
  const lead = (job?.rank ?? 0) === 0;
  const started = performance.now();
  const log = (m: string) => lead && console.error(m);
  const backend = await selectBackend({ name: backendName, log });
  let group: ProcessGroup | undefined;
  try {
    group = await joinJob(
      backend,
      job,
      { fid: positionals, dims, batchSize, numSamples },
      distTimeout(parsed),
    );
    const options = {
      backend,
      group,
      progress: lead ? undefined : false,
      weights: str(parsed, "inception-weights"),
      verify: !bool(parsed, "skip-weights-check"),
      dims,
      batchSize,
      numSamples,
      log,
    };
    if (bool(parsed, "save-stats")) {
      if (await Deno.stat(pathB).then(() => true, () => false)) {
        throw new Error(`${pathB} already exists; choose a new output file for --save-stats`);
      }
      using scorer = new FidScorer(backend, options);
      const source = await openFidSource(pathA, { numSamples });
      if (source.kind !== "folder") {
        throw new UsageError(`--save-stats reads a folder of images; ${pathA} is statistics`);
      }
      const stats = scorer.statistics(await scorer.folderFeatures(source));
      if (!lead) return 0;
      await writeStatistics(pathB, stats);
      log(`saved statistics of ${stats.count} images (${stats.dims} dims) to ${pathB}`);
      return 0;
    }
    for (const p of [pathA, pathB]) {
      if (bool(parsed, "kid") && p.toLowerCase().endsWith(".npz")) {
        throw new UsageError(`--kid needs the features of two image folders; ${p} is .npz`);
      }
    }
    const kid = bool(parsed, "kid");
    const r = await fidBetweenFolders(pathA, pathB, { ...options, kid });
    if (!lead) return 0;
    if (bool(parsed, "json")) {
      const result: Record<string, number | string | null> = { fid: r.fid };
      if (kid) Object.assign(result, { kid: r.kid!, kid_std: r.kidStd! });
      Object.assign(result, {
        n_a: r.nA,
        n_b: r.nB,
        dims: r.dims,
        backend: r.backend,
        seconds: (performance.now() - started) / 1000,
      });
      console.log(JSON.stringify(result));
    } else {
      console.log(`FID: ${r.fid}`);
      if (kid) console.log(`KID: ${r.kid} ± ${r.kidStd}`);
    }
    return 0;
  } finally {
    group?.dispose();
    backend.dispose();
  }
}
