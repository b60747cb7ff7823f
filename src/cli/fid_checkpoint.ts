/**
 * `cli.ts fid --ckpt RUN --n 1000 [--ref run:test]`: samples from a diffusion or GAN
 * checkpoint and scores the samples against a data-set split with pytorch-fid's FID (and KID),
 * through `fidOfCheckpoint` (app/evaluate.ts). By default the reference is the test split of
 * the data the run trained on, with its classes.
 *
 * @module
 */
import { selectBackend } from "../backend/select.ts";
import { isInceptionDims } from "../metrics/inception_layers.ts";
import { fidOfCheckpoint } from "../app/evaluate.ts";
import {
  BACKEND_FLAG,
  backendFlag,
  bool,
  choice,
  type CommandSpec,
  helpText,
  int,
  num,
  parseCommand,
  str,
  UsageError,
} from "./args.ts";
import { distTimeout, launchIfAsked, parallelFlags } from "./parallel_flags.ts";
import { joinJob, prepareRank, requireTorchForParallel } from "../app/parallel.ts";
import type { ReferenceSpec } from "../app/evaluate.ts";

const SPEC: CommandSpec = {
  name: "fid --ckpt",
  summary: "Sample from a checkpoint and score the samples against a data-set split (FID, KID).",
  usage: "deno run -A cli.ts fid --ckpt RUN [--ref run:test] [--n 1000] [--kid] [--json]",
  flags: {
    ckpt: { type: "string", arg: "RUN_OR_FILE", help: "run folder or checkpoint file (required)" },
    ref: {
      type: "string",
      arg: "SOURCE:SPLIT[:CLASSES]",
      help: "reference images: run (the data the run trained on), cifar10 or a data folder; " +
        "train|test; class filter (default run:test with the run's classes)",
    },
    data: {
      type: "string",
      arg: "PATH",
      help: "where 'run' or 'cifar10' in --ref is read from (as train --data)",
    },
    n: {
      type: "string",
      arg: "N",
      help: "images to sample (the study used 1000)",
      default: "1000",
    },
    "ref-n": {
      type: "string",
      arg: "N",
      help: "reference images to use (default: all of the split)",
    },
    sampler: { type: "string", arg: "ddpm|ddim", help: "diffusion sampler (default ddpm)" },
    steps: { type: "string", arg: "N", help: "DDIM steps (default 50)" },
    eta: { type: "string", arg: "ETA", help: "DDIM eta (default 0)" },
    guidance: { type: "string", arg: "W", help: "classifier-free guidance scale" },
    "no-clip": { type: "boolean", help: "do not clamp the predicted x0 (as sample --no-clip)" },
    kid: { type: "boolean", help: "also report KID" },
    json: {
      type: "boolean",
      help: 'print {"fid","kid"?,"kid_std"?,"n_a","n_b","dims","backend","seconds"}',
    },
    dims: {
      type: "string",
      arg: "N",
      help: "Inception feature size: 64, 192, 768, 2048",
      default: "2048",
    },
    "batch-size": { type: "string", arg: "N", help: "images per Inception pass", default: "50" },
    "sample-chunk": {
      type: "string",
      arg: "N",
      help: "images per sampling call, a multiple of --batch-size (default ~1000); the unit " +
        "--nproc ranks share",
    },
    "inception-weights": {
      type: "string",
      arg: "PATH",
      help: "pt_inception-2015-12-05-6726825d.pth",
    },
    "skip-weights-check": {
      type: "boolean",
      help: "accept weights that are not the released file (not comparable)",
    },
    seed: { type: "string", arg: "N", help: "sampling seed", default: "0" },
    backend: BACKEND_FLAG,
    ...parallelFlags("the ranks share the samples and the reference; the FID equals one process's"),
  },
  details:
    "Conditional models draw the --ref classes in equal shares; unconditional ones ignore them.",
};

/** Entry point of `cli.ts fid --ckpt ...`. */
export async function fidCheckpointCommand(argv: string[]): Promise<number> {
  const parsed = parseCommand(argv, SPEC);
  if (parsed.help) {
    console.log(helpText(SPEC));
    return 0;
  }
  const ckpt = str(parsed, "ckpt");
  if (!ckpt) throw new UsageError("--ckpt RUN_OR_FILE is required");
  const refText = str(parsed, "ref");
  const [sourceField, split, classes] = (refText ?? "run:test").split(":");
  if (!sourceField || (split !== "train" && split !== "test")) {
    throw new UsageError(
      `--ref must look like run:test or cifar10:test:cat (SOURCE:SPLIT[:CLASSES]), got '${refText}'`,
    );
  }
  const n = int(parsed, "n", 2)!;
  const refLimit = int(parsed, "ref-n", 2);
  const dims = int(parsed, "dims", 1)!;
  if (!isInceptionDims(dims)) {
    throw new UsageError(`--dims must be one of 64, 192, 768, 2048, got ${dims}`);
  }
  const batchSize = int(parsed, "batch-size", 1)!;
  const sampleChunk = int(parsed, "sample-chunk", 1);
  const seed = int(parsed, "seed", 0, 2 ** 32 - 1)!;
  const sampler: Record<string, unknown> = {};
  if (bool(parsed, "no-clip")) sampler.clipX0 = false;
  const samplerName = choice(parsed, "sampler", ["ddpm", "ddim"] as const);
  if (samplerName) sampler.sampler = samplerName;
  for (
    const [flag, key] of [["steps", "steps"], ["eta", "eta"], ["guidance", "guidance"]] as const
  ) {
    const v = flag === "steps" ? int(parsed, flag, 1) : num(parsed, flag, 0);
    if (v !== undefined) sampler[key] = v;
  }

  const launched = await launchIfAsked("fid", argv, parsed);
  if (launched !== null) return launched;
  const job = prepareRank(backendFlag(parsed));
  const lead = (job?.rank ?? 0) === 0;
  const started = performance.now();
  const log = (m: string) => lead && console.error(m);
  const backend = await selectBackend({ name: backendFlag(parsed), log });
  let group: Awaited<ReturnType<typeof joinJob>>;
  try {
    requireTorchForParallel(backend.name, job?.worldSize ?? 1);
    const ref: ReferenceSpec = {
      source: sourceField,
      split,
      classes,
      data: str(parsed, "data"),
      limit: refLimit,
    };
    group = await joinJob(
      backend,
      job,
      {
        fidCkpt: ckpt,
        ref,
        n,
        seed,
        sampler,
        dims,
        batchSize,
        sampleChunk: sampleChunk ?? null,
        kid: bool(parsed, "kid"),
      },
      distTimeout(parsed),
    );
    const r = await fidOfCheckpoint(backend, ckpt, {
      ref,
      n,
      seed,
      sampler,
      kid: bool(parsed, "kid"),
      weights: str(parsed, "inception-weights"),
      verify: !bool(parsed, "skip-weights-check"),
      dims,
      batchSize,
      sampleChunk,
      progress: lead,
      log,
      group,
    });
    if (!lead) return 0;
    const result: Record<string, unknown> = { fid: r.fid, n_a: r.nA, n_b: r.nB, dims: r.dims };
    if (r.kid !== undefined) Object.assign(result, { kid: r.kid, kid_std: r.kidStd });
    result.backend = backend.name;
    result.seconds = Math.round((performance.now() - started) / 10) / 100;
    if (bool(parsed, "json")) console.log(JSON.stringify(result));
    else {
      const kidText = r.kid !== undefined
        ? `  KID: ${r.kid.toFixed(5)} ± ${r.kidStd!.toFixed(5)}`
        : "";
      console.log(
        `FID: ${r.fid.toFixed(4)}${kidText}  (${r.nA} samples vs ${r.nB} reference images)`,
      );
    }
    return 0;
  } finally {
    group?.dispose();
    backend.dispose();
  }
}
