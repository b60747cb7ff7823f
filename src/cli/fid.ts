/**
 * `deno task fid PATH_A PATH_B [flags]`: FID (and KID) between two folders of images or
 * pytorch-fid `.npz` statistics, with pytorch-fid's argument shape; `--save-stats DIR OUT.npz`
 * writes statistics pytorch-fid reads.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { type BackendName, isBackendName, selectBackend } from "../backend/select.ts";
import { fidBetweenFolders } from "../metrics/compare.ts";
import { isInceptionDims } from "../metrics/inception_layers.ts";
import { FidScorer, openFidSource } from "../metrics/scorer.ts";
import { writeStatistics } from "../metrics/stats_io.ts";
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
  --json                     print {"fid","kid"?,"kid_std"?,"n_a","n_b","dims","backend","seconds"};
                             n_a/n_b are null for .npz statistics that do not record a count
  --save-stats               write the statistics of IMAGE_DIR to OUT.npz (must not exist)
  --inception-weights PATH   pt_inception-2015-12-05-6726825d.pth (else DENO_DIFFUSION_INCEPTION,
                             the cache, or a download from pytorch-fid's release)
  --skip-weights-check       load weights without the size/sha256 check (test weights in the
                             same layout; FID values are then not comparable to papers)
  --backend NAME             torch-cuda, torch-cpu, tfjs-wasm, tfjs-cpu or auto (default auto)
  --nproc N                  split the images over N processes (torch backends; also under torchrun)
  --master-port PORT         rendezvous port for --nproc (default: a free one)
  --help                     show this help`;

function positiveInt(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) {
    throw new UsageError(`--${flag} must be a positive integer, got '${value}'`);
  }
  return n;
}

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
  try {
    group = await joinJob(backend, job, { fid: positionals, dims, batchSize, numSamples });
    const options = {
      backend,
      group,
      progress: lead ? undefined : false,
      weights: values["inception-weights"],
      verify: !values["skip-weights-check"],
      dims,
      batchSize,
      numSamples,
      log,
    };
    if (values["save-stats"]) {
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
      if (values.kid && p.toLowerCase().endsWith(".npz")) {
        throw new UsageError(`--kid needs the features of two image folders; ${p} is .npz`);
      }
    }
    const r = await fidBetweenFolders(pathA, pathB, { ...options, kid: values.kid });
    if (!lead) return 0;
    if (values.json) {
      const result: Record<string, number | string | null> = { fid: r.fid };
      if (values.kid) Object.assign(result, { kid: r.kid!, kid_std: r.kidStd! });
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
      if (values.kid) console.log(`KID: ${r.kid} ± ${r.kidStd}`);
    }
    return 0;
  } finally {
    group?.dispose();
    backend.dispose();
  }
}
