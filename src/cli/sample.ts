/**
 * `cli.ts sample`: generates images from a diffusion or GAN checkpoint into a grid PNG or a
 * folder of PNGs (FID input).
 *
 * @module
 */
import { Rng } from "../core/rng.ts";
import { selectBackend } from "../backend/select.ts";
import { writeImageFolder, writeImageGrid } from "../io/png.ts";
import { type AnyTask, openCheckpoint } from "../app/registry.ts";
import { sampleInChunks } from "../app/sampling.ts";
import { previewLabels } from "../task/preview.ts";
import type { DdpmSampleOptions } from "../diffusion/task.ts";
import type { TrainRecord } from "../train/checkpoint.ts";
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
  type Parsed,
  str,
  UsageError,
} from "./args.ts";

const SPEC: CommandSpec = {
  name: "sample",
  summary: "Generate images from a trained checkpoint.",
  usage:
    "deno run -A cli.ts sample --ckpt RUN_OR_FILE [--n 64] [--class NAME] (--out grid.png | --out-dir DIR)",
  flags: {
    ckpt: {
      type: "string",
      arg: "RUN_OR_FILE",
      help: "run folder or checkpoint.safetensors (required)",
    },
    n: { type: "string", arg: "N", help: "number of images", default: "64" },
    class: {
      type: "string",
      arg: "NAME|ID",
      help: "conditional models: the class to draw (default: all, in blocks)",
    },
    sampler: {
      type: "string",
      arg: "ddpm|ddim",
      help: "diffusion: ancestral DDPM (all T steps) or DDIM (default ddpm)",
    },
    steps: { type: "string", arg: "N", help: "diffusion DDIM: number of steps (default 50)" },
    eta: {
      type: "string",
      arg: "ETA",
      help: "diffusion DDIM: 0 deterministic .. 1 DDPM-like (default 0)",
    },
    guidance: {
      type: "string",
      arg: "W",
      help: "diffusion: classifier-free guidance scale (default 1 = none)",
    },
    "batch-size": { type: "string", arg: "N", help: "images per forward pass (default 64)" },
    "no-clip": {
      type: "boolean",
      help:
        "diffusion: do not clamp the predicted x0 to [-1, 1] at each step (Algorithm 2 verbatim)",
    },
    out: { type: "string", arg: "FILE.png", help: "write one grid image" },
    "out-dir": { type: "string", arg: "DIR", help: "write one PNG per image (FID input)" },
    seed: { type: "string", arg: "N", help: "random seed", default: "0" },
    backend: BACKEND_FLAG,
    quiet: { type: "boolean", help: "no progress output" },
  },
};

/** Entry point of `cli.ts sample`. */
export async function sampleCommand(argv: string[]): Promise<number> {
  const parsed = parseCommand(argv, SPEC);
  if (parsed.help) {
    console.log(helpText(SPEC));
    return 0;
  }
  const ckpt = str(parsed, "ckpt");
  if (!ckpt) throw new UsageError("--ckpt RUN_OR_FILE is required (a run folder from `train`)");
  const out = str(parsed, "out");
  const outDir = str(parsed, "out-dir");
  if (!out && !outDir) throw new UsageError("say where to write: --out grid.png or --out-dir DIR");
  const n = int(parsed, "n", 1, 1_000_000)!;
  const backend = await selectBackend({
    name: backendFlag(parsed),
    log: bool(parsed, "quiet") ? undefined : (m) => console.error(m),
  });
  try {
    const { task, checkpoint } = await openCheckpoint(backend, ckpt);
    try {
      const classNames = classNamesOf(checkpoint.state.train);
      const labels = labelsFor(parsed, task, n, classNames);
      const options = samplerOptions(parsed, task);
      const started = performance.now();
      const images = sampleInChunks(
        task,
        labels,
        new Rng(int(parsed, "seed", 0, 2 ** 32 - 1)!),
        options,
        !bool(parsed, "quiet"),
      );
      const shape = [n, ...task.imageShape] as [number, number, number, number];
      if (out) await writeImageGrid(out, images, shape, { nrow: Math.min(8, n) });
      if (outDir) await writeImageFolder(outDir, images, shape);
      const seconds = (performance.now() - started) / 1000;
      if (!bool(parsed, "quiet")) {
        console.error(
          `wrote ${n} images to ${[out, outDir].filter(Boolean).join(" and ")} in ${
            seconds.toFixed(1)
          } s`,
        );
      }
      return 0;
    } finally {
      task.dispose();
    }
  } finally {
    backend.dispose();
  }
}

/** Names of the classes a run was trained on (its train record's source), or []. */
export function classNamesOf(train: TrainRecord): string[] {
  const source = train.source;
  if (source?.classNames) return source.classNames;
  return source?.classes ? source.classes.split(",").map((s) => s.trim()) : [];
}

function labelsFor(parsed: Parsed, task: AnyTask, n: number, classNames: string[]): Int32Array {
  const wanted = str(parsed, "class");
  if (task.numClasses === 0) {
    if (wanted !== undefined) {
      throw new UsageError("--class needs a class-conditional checkpoint (trained with --cond)");
    }
    return new Int32Array(n);
  }
  if (wanted === undefined) return previewLabels(n, task.numClasses, Math.min(8, n));
  let id = classNames.indexOf(wanted);
  if (id < 0 && /^\d+$/.test(wanted)) id = Number(wanted);
  if (!(id >= 0 && id < task.numClasses)) {
    const known = classNames.length ? classNames.join(", ") : `0..${task.numClasses - 1}`;
    throw new UsageError(`--class ${wanted} is not one of this model's classes (${known})`);
  }
  return new Int32Array(n).fill(id);
}

function samplerOptions(parsed: Parsed, task: AnyTask): DdpmSampleOptions {
  const diffusionFlags = ["sampler", "steps", "eta", "guidance", "no-clip"].filter((f) =>
    parsed.values[f] !== undefined
  );
  if (task.kind === "gan") {
    if (diffusionFlags.length) {
      throw new UsageError(
        `${
          diffusionFlags.map((f) => `--${f}`).join(", ")
        } apply to diffusion checkpoints; this one is a GAN`,
      );
    }
    return {};
  }
  // Clamping the predicted x0 (Ho et al.'s released sampler does) keeps early or short-trained
  // models from saturating; --no-clip gives Algorithm 2 exactly as printed.
  const options: DdpmSampleOptions = { clipX0: !bool(parsed, "no-clip") };
  const sampler = choice(parsed, "sampler", ["ddpm", "ddim"] as const);
  if (sampler) options.sampler = sampler;
  const steps = int(parsed, "steps", 1);
  if (steps !== undefined) {
    if (sampler !== "ddim") throw new UsageError("--steps applies to --sampler ddim");
    options.steps = steps;
  }
  const eta = num(parsed, "eta", 0, 1);
  if (eta !== undefined) options.eta = eta;
  const guidance = num(parsed, "guidance", 0);
  if (guidance !== undefined) {
    if (task.numClasses === 0) {
      throw new UsageError("--guidance needs a class-conditional checkpoint");
    }
    options.guidance = guidance;
  }
  const batch = int(parsed, "batch-size", 1);
  if (batch !== undefined) options.batchSize = batch;
  return options;
}
