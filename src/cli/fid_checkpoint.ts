/**
 * `cli.ts fid --ckpt RUN --n 1000 --ref cifar10:test:cat`: samples from a diffusion or GAN
 * checkpoint and scores the samples against a data-set split with pytorch-fid's FID (and KID).
 * The reference features are cached per (data, split, classes, weights), so scoring many
 * checkpoints against the same split extracts them once.
 *
 * @module
 */
import { imageNoise } from "../core/rng.ts";
import { selectBackend } from "../backend/select.ts";
import { loadDataset } from "../data/load.ts";
import { parseClassFilter } from "../data/source.ts";
import { readNpy, writeNpy } from "../io/npy.ts";
import { computeActivations } from "../metrics/features.ts";
import { backendEigvalsh, fidFromStatistics, statisticsOf } from "../metrics/fid.ts";
import type { DdpmSampleOptions } from "../diffusion/task.ts";
import { isInceptionDims } from "../metrics/inception.ts";
import { kernelInceptionDistance } from "../metrics/kid.ts";
import { loadInception, resolveInceptionWeights } from "../metrics/weights.ts";
import { defaultCacheDir } from "../io/cache.ts";
import { datasetImages, generatedImages } from "../app/evaluate.ts";
import { openCheckpoint } from "../app/registry.ts";
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
import { sampleInChunks } from "../app/sampling.ts";

const SPEC: CommandSpec = {
  name: "fid --ckpt",
  summary: "Sample from a checkpoint and score the samples against a data-set split (FID, KID).",
  usage: "deno run -A cli.ts fid --ckpt RUN --ref cifar10:test:cat [--n 1000] [--kid] [--json]",
  flags: {
    ckpt: { type: "string", arg: "RUN_OR_FILE", help: "run folder or checkpoint file (required)" },
    ref: {
      type: "string",
      arg: "SOURCE:SPLIT[:CLASSES]",
      help: "reference images: cifar10 (or a data folder), train|test, class filter",
      default: "cifar10:test",
    },
    data: {
      type: "string",
      arg: "PATH",
      help: "where 'cifar10' in --ref is read from (as train --data)",
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
  const [sourceField, split, classes] = str(parsed, "ref")!.split(":");
  if (split !== "train" && split !== "test") {
    throw new UsageError(
      `--ref must look like cifar10:test:cat (SOURCE:SPLIT[:CLASSES]), got '${str(parsed, "ref")}'`,
    );
  }
  const source = sourceField === "cifar10" ? str(parsed, "data") : sourceField;
  const n = int(parsed, "n", 2)!;
  const refLimit = int(parsed, "ref-n", 2);
  const dims = int(parsed, "dims", 1)!;
  if (!isInceptionDims(dims)) {
    throw new UsageError(`--dims must be one of 64, 192, 768, 2048, got ${dims}`);
  }
  const batchSize = int(parsed, "batch-size", 1)!;
  const seed = int(parsed, "seed", 0, 2 ** 32 - 1)!;
  const samplerOptions: DdpmSampleOptions = {};
  if (bool(parsed, "no-clip")) samplerOptions.clipX0 = false;
  const sampler = choice(parsed, "sampler", ["ddpm", "ddim"] as const);
  if (sampler) samplerOptions.sampler = sampler;
  for (
    const [flag, key] of [["steps", "steps"], ["eta", "eta"], ["guidance", "guidance"]] as const
  ) {
    const v = flag === "steps" ? int(parsed, flag, 1) : num(parsed, flag, 0);
    if (v !== undefined) samplerOptions[key] = v;
  }

  const started = performance.now();
  const log = (m: string) => console.error(m);
  const backend = await selectBackend({ name: backendFlag(parsed), log });
  try {
    const weightsPath = await resolveInceptionWeights({ path: str(parsed, "inception-weights") });
    const net = await loadInception(backend, {
      path: weightsPath,
      dims,
      log,
      verify: !bool(parsed, "skip-weights-check"),
    });
    try {
      const reference = await loadDataset({ source, split, classes });
      const refImages = datasetImages(reference, refLimit ?? reference.size);
      if (refImages.length < 2) {
        throw new Error(`--ref ${str(parsed, "ref")} has fewer than 2 images`);
      }
      const refKey = await cacheKey([
        reference.description,
        split,
        classes ?? "all",
        refImages.length,
        dims,
        weightsPath,
      ]);
      const refFeatures = await cachedFeatures(
        refKey,
        () =>
          computeActivations(backend, net, refImages, {
            batchSize,
            progress: true,
            label: "reference",
          }),
      );

      const { task, checkpoint } = await openCheckpoint(backend, ckpt);
      let generated;
      try {
        if (task.kind === "gan" && Object.keys(samplerOptions).length) {
          throw new UsageError(
            "--sampler, --steps, --eta and --guidance apply to diffusion checkpoints; this one is a GAN",
          );
        }
        const labels = new Int32Array(n);
        if (task.numClasses > 0) {
          const trainedOn = checkpoint.state.train.source?.classes ?? "";
          const names = trainedOn.split(",").map((s) => s.trim());
          const wanted = classes
            ? parseClassFilter(classes, reference.classNames).map((id) => reference.classNames[id])
            : names;
          const ids = wanted.map((name) => names.indexOf(name));
          if (ids.some((id) => id < 0)) {
            throw new UsageError(
              `--ref classes ${wanted.join(",")} are not all among the model's classes (${
                names.join(", ")
              })`,
            );
          }
          for (let i = 0; i < n; i++) labels[i] = ids[Math.floor((i * ids.length) / n)];
        }
        const options = task.kind === "ddpm" ? { clipX0: true, ...samplerOptions } : samplerOptions;
        const images = sampleInChunks(task, labels, imageNoise(seed), options, true);
        // pytorch-fid scores saved PNGs: quantise to 8 bits exactly as `sample --out-dir` does.
        generated = await computeActivations(
          backend,
          net,
          generatedImages(images, [n, ...task.imageShape]),
          {
            batchSize,
            progress: true,
            label: "samples",
          },
        );
      } finally {
        task.dispose();
      }
      const fid = fidFromStatistics(
        statisticsOf(generated.data, generated.n, dims),
        statisticsOf(refFeatures.data, refFeatures.n, dims),
        { eigvalsh: backendEigvalsh(backend) },
      );
      const result: Record<string, unknown> = { fid, n_a: generated.n, n_b: refFeatures.n, dims };
      if (bool(parsed, "kid")) {
        const kid = kernelInceptionDistance(generated, refFeatures, { backend });
        result.kid = kid.kid;
        result.kid_std = kid.std;
      }
      result.backend = backend.name;
      result.seconds = Math.round((performance.now() - started) / 10) / 100;
      if (bool(parsed, "json")) console.log(JSON.stringify(result));
      else {
        const kidText = result.kid !== undefined
          ? `  KID: ${(result.kid as number).toFixed(5)} ± ${(result.kid_std as number).toFixed(5)}`
          : "";
        console.log(
          `FID: ${
            fid.toFixed(4)
          }${kidText}  (${generated.n} samples vs ${refFeatures.n} reference images)`,
        );
      }
      return 0;
    } finally {
      net.dispose();
    }
  } finally {
    backend.dispose();
  }
}

async function cacheKey(parts: unknown[]): Promise<string> {
  const weights = String(parts.at(-1));
  const stat = await Deno.stat(weights);
  const text = JSON.stringify([...parts, stat.size, stat.mtime?.getTime() ?? 0]);
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].slice(0, 12).map((b) => b.toString(16).padStart(2, "0")).join(
    "",
  );
}

/** Reference features from the cache, or computed and cached (as .npy, written atomically). */
async function cachedFeatures(
  key: string,
  compute: () => Promise<{ data: Float32Array; n: number; dims: number }>,
): Promise<{ data: Float32Array; n: number; dims: number }> {
  const path = `${defaultCacheDir()}/fid-reference/${key}.npy`;
  try {
    const cached = await readNpy(path);
    if (cached.dtype === "float32" && cached.shape.length === 2) {
      console.error(`reference features from the cache: ${path}`);
      return { data: cached.data as Float32Array, n: cached.shape[0], dims: cached.shape[1] };
    }
  } catch {
    // Not cached yet (or unreadable): compute below and overwrite.
  }
  const features = await compute();
  await Deno.mkdir(`${defaultCacheDir()}/fid-reference`, { recursive: true });
  await writeNpy(path, {
    dtype: "float32",
    shape: [features.n, features.dims],
    data: features.data,
  });
  return features;
}
