/**
 * `cli.ts sample`: generates images from a diffusion or GAN checkpoint into a grid PNG or a
 * folder of PNGs (FID input).
 *
 * @module
 */
import { imageNoise } from "../core/rng.ts";
import { selectBackend } from "../backend/select.ts";
import { writeFileAtomic } from "../io/atomic.ts";
import type { DecodedImage } from "../io/image.ts";
import { checkOutputFile, checkOutputFolder } from "../io/output.ts";
import { encodePng, makeGrid, toUint8Images } from "../io/png.ts";
import { ProgressBar } from "../io/progress.ts";
import type { AnyTask } from "../app/registry.ts";
import { openForSampling } from "../app/open.ts";
import {
  pngBytesBound,
  readSamplesManifest,
  sampleInChunks,
  sampleToFolder,
} from "../app/sampling.ts";
import { previewLabels } from "../task/preview.ts";
import { joinJob, prepareRank, requireTorchForParallel } from "../app/parallel.ts";
import type { DdpmSampleOptions } from "../diffusion/task.ts";
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
import { distTimeout, launchIfAsked, parallelFlags } from "./parallel_flags.ts";

const SPEC: CommandSpec = {
  name: "sample",
  summary: "Generate images from a trained checkpoint.",
  usage:
    "deno run -A cli.ts sample --ckpt RUN_OR_FILE [--n 64] [--class NAME] (--out grid.png | --out-dir DIR)",
  flags: {
    ckpt: {
      type: "string",
      arg: "RUN_OR_FILE",
      help:
        "run folder, checkpoint.safetensors, the run's model.safetensors, or a PyTorch .pth with --preset (required)",
    },
    preset: {
      type: "string",
      arg: "NAME",
      help: "the network of a bare .pth state_dict (unet-2xud, convnet, dcgan, ...)",
    },
    n: { type: "string", arg: "N", help: "number of images (default 64)" },
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
    "batch-size": {
      type: "string",
      arg: "N",
      help: "images per forward pass (default 64; the images do not depend on it)",
    },
    "no-clip": {
      type: "boolean",
      help:
        "diffusion: do not clamp the predicted x0 to [-1, 1] at each step (Algorithm 2 verbatim)",
    },
    out: { type: "string", arg: "FILE.png", help: "write one grid image" },
    "out-dir": {
      type: "string",
      arg: "DIR",
      help:
        "write one PNG per image (FID input) as they finish; a rerun with the same settings continues",
    },
    resume: {
      type: "boolean",
      help: "continue the run in --out-dir with its recorded settings",
    },
    overwrite: {
      type: "boolean",
      help: "delete the images already in --out-dir first (it is refused otherwise)",
    },
    seed: { type: "string", arg: "N", help: "random seed (default 0)" },
    backend: BACKEND_FLAG,
    quiet: { type: "boolean", help: "no progress output" },
    ...parallelFlags("the ranks share the images; the files equal one process's"),
  },
};

/** Flags whose values decide the images; `--resume` takes them from the folder's manifest. */
const IMAGE_FLAGS = [
  "ckpt",
  "preset",
  "n",
  "class",
  "sampler",
  "steps",
  "eta",
  "guidance",
  "no-clip",
  "seed",
];

/** Entry point of `cli.ts sample`. */
export async function sampleCommand(argv: string[]): Promise<number> {
  const parsed = parseCommand(argv, SPEC);
  if (parsed.help) {
    console.log(helpText(SPEC));
    return 0;
  }
  const out = str(parsed, "out");
  const outDir = str(parsed, "out-dir");
  const resume = bool(parsed, "resume");
  const overwrite = bool(parsed, "overwrite");
  if (resume && overwrite) throw new UsageError("--resume and --overwrite contradict each other");
  if (resume) {
    if (!outDir) throw new UsageError("--resume continues an --out-dir DIR: name the folder");
    await resumeFlags(parsed, outDir);
  }
  const ckpt = str(parsed, "ckpt");
  if (!ckpt) throw new UsageError("--ckpt RUN_OR_FILE is required (a run folder from `train`)");
  if (!out && !outDir) throw new UsageError("say where to write: --out grid.png or --out-dir DIR");
  const n = int(parsed, "n", 1, 1_000_000) ?? 64;
  const seed = int(parsed, "seed", 0, 2 ** 32 - 1) ?? 0;
  // Output locations first: a bad path must not cost a model load or a sampling run.
  if (out) await checkOutputFile(out, { flag: "--out" });
  if (outDir) await checkOutputFolder(outDir, { flag: "--out-dir" });
  const launched = await launchIfAsked("sample", argv, parsed);
  if (launched !== null) return launched;
  const job = prepareRank(backendFlag(parsed));
  const lead = (job?.rank ?? 0) === 0;
  const quiet = bool(parsed, "quiet") || !lead;
  const backend = await selectBackend({
    name: backendFlag(parsed),
    log: quiet ? undefined : (m) => console.error(m),
  });
  let group: Awaited<ReturnType<typeof joinJob>>;
  try {
    requireTorchForParallel(backend.name, job?.worldSize ?? 1);
    const { task, classNames } = await openForSampling(backend, ckpt, {
      preset: str(parsed, "preset"),
    });
    try {
      const labels = labelsFor(parsed, task, n, classNames);
      const options = samplerOptions(parsed, task);
      const shape = [n, ...task.imageShape] as [number, number, number, number];
      const bytes = n * pngBytesBound(task.imageShape);
      if (outDir) await checkOutputFolder(outDir, { flag: "--out-dir", expectedBytes: bytes });
      if (out) await checkOutputFile(out, { flag: "--out", expectedBytes: bytes });
      group = await joinJob(backend, job, {
        sample: imageSettings(parsed, ckpt),
        out: out ?? null,
        outDir: outDir ?? null,
        overwrite,
        batchSize: options.batchSize ?? null,
      }, distTimeout(parsed));
      const started = performance.now();
      let grid: DecodedImage[];
      let summary = "";
      if (outDir) {
        const bar = quiet ? undefined : new ProgressBar("sampling", n);
        const result = await sampleToFolder(task, outDir, {
          labels,
          seed,
          options,
          existing: overwrite ? "overwrite" : "resume",
          settings: imageSettings(parsed, ckpt),
          keep: out ? n : 0,
          progress: (done) => bar?.update(done),
          group,
        });
        bar?.finish(n);
        grid = result.kept;
        if (result.skipped > 0) summary = ` (${result.skipped} were already there)`;
      } else {
        const images = await sampleInChunks(task, labels, imageNoise(seed), options, false, group);
        grid = lead ? toUint8Images(images, shape) : [];
      }
      if (out && lead) {
        await writeFileAtomic(out, encodePng(makeGrid(grid, { nrow: Math.min(8, n) })));
      }
      const seconds = (performance.now() - started) / 1000;
      if (!quiet) {
        const ranks = group ? ` on ${group.worldSize} ranks` : "";
        console.error(
          `wrote ${n} images to ${[out, outDir].filter(Boolean).join(" and ")} in ${
            seconds.toFixed(1)
          } s${ranks}${summary}`,
        );
      }
      return 0;
    } finally {
      task.dispose();
    }
  } finally {
    group?.dispose();
    backend.dispose();
  }
}

/** The image-deciding flags as given, stored in the folder's manifest for `--resume`. */
function imageSettings(parsed: Parsed, ckpt: string): Record<string, unknown> {
  const settings: Record<string, unknown> = {};
  for (const flag of IMAGE_FLAGS) {
    if (parsed.values[flag] !== undefined) settings[flag] = parsed.values[flag];
  }
  // Absolute, so `--resume` works from any working directory.
  settings.ckpt = ckpt.startsWith("/") ? ckpt : `${Deno.cwd()}/${ckpt}`;
  return settings;
}

/** Fills the image-deciding flags not given on the command line from DIR's manifest. */
async function resumeFlags(parsed: Parsed, dir: string): Promise<void> {
  const manifest = await readSamplesManifest(dir).catch((e) => {
    if (e instanceof Deno.errors.NotADirectory) return null;
    throw e;
  });
  if (!manifest?.settings) {
    throw new UsageError(
      `nothing to resume in ${dir}: it holds no samples written by \`sample --out-dir\` ` +
        `(start a run without --resume)`,
    );
  }
  for (const flag of IMAGE_FLAGS) {
    const recorded = manifest.settings[flag];
    if (parsed.values[flag] === undefined && recorded !== undefined) {
      parsed.values[flag] = recorded as string | boolean;
    }
  }
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
    const batch = int(parsed, "batch-size", 1);
    return batch === undefined ? {} : { batchSize: batch };
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
