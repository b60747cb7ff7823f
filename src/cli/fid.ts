/**
 * `deno task fid PATH_A PATH_B [flags]`: FID (and KID) between two folders of images or
 * pytorch-fid `.npz` statistics, with pytorch-fid's argument shape; `--save-stats DIR OUT.npz`
 * writes statistics pytorch-fid reads.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { type BackendName, isBackendName, selectBackend } from "../backend/select.ts";
import { listImageFiles } from "../io/image.ts";
import { computeActivations, decodeFiles } from "../metrics/features.ts";
import {
  backendEigvalsh,
  fidFromStatistics,
  type FidStatistics,
  statisticsOf,
} from "../metrics/fid.ts";
import { readStatistics, writeStatistics } from "../metrics/stats_io.ts";
import { type InceptionDims, type InceptionNet, isInceptionDims } from "../metrics/inception.ts";
import { kernelInceptionDistance } from "../metrics/kid.ts";
import { loadInception } from "../metrics/weights.ts";
import { shardedActivations } from "../metrics/sharded.ts";
import type { ProcessGroup } from "../backend/distributed.ts";
import { torchCudaDeviceCount } from "../backend/torch.ts";
import { readTorchrunEnv } from "../app/launch.ts";
import { joinJob, launchRanks, prepareRank } from "../app/parallel.ts";
import { UsageError } from "./args.ts";

const USAGE = `usage: deno task fid PATH_A PATH_B [flags]
       deno task fid --save-stats IMAGE_DIR OUT.npz [flags]

FID between two folders of .png/.jpg images or .npz statistics (mu, sigma), computed as
pytorch-fid does (FID Inception-v3, 299x299 bilinear resize, float64 statistics).

options:
  --dims N                   feature size: 64, 192, 768 or 2048 (default 2048)
  --batch-size N             images per forward pass (default 50)
  --num-samples N            use only the first N images of each folder (sorted by name)
  --kid                      also report KID (needs two image folders)
  --json                     print {"fid","kid"?,"kid_std"?,"n_a","n_b","dims","backend","seconds"}
  --save-stats               write the statistics of IMAGE_DIR to OUT.npz (must not exist)
  --inception-weights PATH   pt_inception-2015-12-05-6726825d.pth (else DENO_DIFFUSION_INCEPTION,
                             the cache, or a download from pytorch-fid's release)
  --skip-weights-check       load weights without the size/sha256 check (test weights in the
                             same layout; FID values are then not comparable to papers)
  --backend NAME             torch-cuda, torch-cpu, tfjs-wasm, tfjs-cpu or auto (default auto)
  --nproc N                  split the images over N processes (torch backends; also under torchrun)
  --master-port PORT         rendezvous port for --nproc (default: a free one)
  --help                     show this help`;

/** Statistics of one side plus its features when computed from images (for KID). */
export interface SourceStatistics {
  /** Mean and covariance. */
  stats: FidStatistics;
  /** [n, dims] when the source was a folder. */
  features?: Float32Array;
  /** Number of images (0 for .npz statistics, which do not record it). */
  n: number;
}

/** Options of {@link statisticsOfPath}. */
export interface PathStatisticsOptions {
  /** Feature size for folders. */
  dims: InceptionDims;
  /** Images per forward pass (default 50). */
  batchSize?: number;
  /** Use only the first N images (sorted by name). */
  numSamples?: number;
  /** Loads the network on first use (only folders need it). */
  network: () => Promise<InceptionNet>;
  /** Progress bar on stderr (default: when stderr is a terminal). */
  progress?: boolean;
  /** Data-parallel ranks split the images and gather the features (equal to one process's). */
  group?: ProcessGroup;
}

function positiveInt(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) {
    throw new UsageError(`--${flag} must be a positive integer, got '${value}'`);
  }
  return n;
}

/**
 * Statistics of a folder of images (through the network) or of an .npz file.
 *
 * @example
 * ```ts
 * import { statisticsOfPath } from "./fid.ts";
 * const { stats } = await statisticsOfPath("stats.npz", { dims: 2048, network: () => { throw 0; } });
 * ```
 */
export async function statisticsOfPath(
  path: string,
  options: PathStatisticsOptions,
): Promise<SourceStatistics> {
  if (path.toLowerCase().endsWith(".npz")) {
    const stats = await readStatistics(path);
    return { stats, n: stats.count ?? 0 };
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
  const net = await options.network();
  const features = (part: string[]) =>
    computeActivations(net.backend, net, decodeFiles(part), {
      batchSize: options.batchSize,
      total: part.length,
      progress: options.progress,
      label: path,
    });
  const group = options.group;
  const activations = group && group.worldSize > 1
    ? await shardedActivations(
      files.length,
      options.batchSize ?? 50,
      net.dims,
      group,
      (start, end) => features(files.slice(start, end)),
    )
    : await features(files);
  return {
    stats: statisticsOf(activations.data, activations.n, activations.dims),
    features: activations.data,
    n: activations.n,
  };
}

/**
 * Runs the `fid` command; returns the exit status (usage mistakes throw {@link UsageError}).
 *
 * @example
 * ```ts
 * import { fidCommand } from "./fid.ts";
 * Deno.exit(await fidCommand(["samples/", "cifar10_test_stats.npz", "--json"]));
 * ```
 */
export async function fidCommand(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: {
        dims: { type: "string", default: "2048" },
        "batch-size": { type: "string", default: "50" },
        "num-samples": { type: "string" },
        kid: { type: "boolean" },
        json: { type: "boolean" },
        "save-stats": { type: "boolean" },
        "inception-weights": { type: "string" },
        "skip-weights-check": { type: "boolean" },
        backend: { type: "string" },
        nproc: { type: "string" },
        "master-port": { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: true,
    });
  } catch (e) {
    throw new UsageError(`fid: ${(e as Error).message}\n\n${USAGE}`);
  }
  const { values, positionals } = parsed;
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (positionals.length !== 2) {
    throw new UsageError(`fid: expected 2 paths, got ${positionals.length}\n\n${USAGE}`);
  }
  const dims = Number(values.dims);
  if (!isInceptionDims(dims)) {
    throw new UsageError(`--dims must be one of 64, 192, 768, 2048, got '${values.dims}'`);
  }
  const batchSize = positiveInt(values["batch-size"], "batch-size");
  const numSamples = positiveInt(values["num-samples"], "num-samples");
  const backendName = values.backend ?? "auto";
  if (backendName !== "auto" && !isBackendName(backendName)) {
    throw new UsageError(
      `--backend must be torch-cuda, torch-cpu, tfjs-wasm, tfjs-cpu or auto, got '${backendName}'`,
    );
  }
  const [pathA, pathB] = positionals;
  const nproc = positiveInt(values.nproc, "nproc") ?? 1;
  if (nproc > 1) {
    if (readTorchrunEnv() !== null) {
      throw new UsageError(
        "--nproc starts the ranks itself; under torchrun (WORLD_SIZE set) drop it",
      );
    }
    return await launchRanks("fid", argv, {
      nproc,
      masterPort: positiveInt(values["master-port"], "master-port"),
      backendFlag: backendName,
      gpus: backendName === "torch-cuda" ||
        (backendName === "auto" && (await torchCudaDeviceCount()) > 0),
    });
  }
  const job = prepareRank(backendName);
  const lead = (job?.rank ?? 0) === 0;
  const started = performance.now();
  const log = (m: string) => lead && console.error(m);
  const backend = await selectBackend({ name: backendName as BackendName | "auto", log });
  let group: ProcessGroup | undefined;
  let net: InceptionNet | undefined;
  const network = async () =>
    net ??= await loadInception(backend, {
      path: values["inception-weights"],
      dims,
      log,
      verify: !values["skip-weights-check"],
    });
  try {
    group = await joinJob(backend, job, { fid: positionals, dims, batchSize, numSamples });
    const options = {
      dims,
      batchSize,
      numSamples,
      network,
      group,
      progress: lead ? undefined : false,
    };
    if (values["save-stats"]) {
      if (await Deno.stat(pathB).then(() => true, () => false)) {
        throw new Error(`${pathB} already exists; choose a new output file for --save-stats`);
      }
      const { stats, n } = await statisticsOfPath(pathA, options);
      if (!lead) return 0;
      await writeStatistics(pathB, stats);
      log(`saved statistics of ${n} images (${stats.dims} dims) to ${pathB}`);
      return 0;
    }
    for (const p of [pathA, pathB]) {
      if (values.kid && p.toLowerCase().endsWith(".npz")) {
        throw new UsageError(`--kid needs the features of two image folders; ${p} is .npz`);
      }
    }
    const a = await statisticsOfPath(pathA, options);
    const b = await statisticsOfPath(pathB, options);
    if (a.stats.dims !== b.stats.dims) {
      throw new Error(
        `${pathA} gives ${a.stats.dims}-dim statistics but ${pathB} gives ${b.stats.dims}-dim: ` +
          `compute both with the same --dims (folders use --dims, now ${dims})`,
      );
    }
    const fid = fidFromStatistics(a.stats, b.stats, { eigvalsh: backendEigvalsh(backend) });
    const result: Record<string, number | string> = { fid };
    if (values.kid) {
      const k = kernelInceptionDistance(
        { data: a.features!, n: a.n, dims: a.stats.dims },
        { data: b.features!, n: b.n, dims: b.stats.dims },
        { backend },
      );
      result.kid = k.kid;
      result.kid_std = k.std;
    }
    Object.assign(result, {
      n_a: a.n,
      n_b: b.n,
      dims: a.stats.dims,
      backend: backend.name,
      seconds: (performance.now() - started) / 1000,
    });
    if (!lead) return 0;
    if (values.json) {
      console.log(JSON.stringify(result));
    } else {
      console.log(`FID: ${fid}`);
      if (values.kid) console.log(`KID: ${result.kid} ± ${result.kid_std}`);
    }
    return 0;
  } finally {
    group?.dispose();
    net?.dispose();
    backend.dispose();
  }
}
