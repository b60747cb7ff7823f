/**
 * `cli.ts train`: maps flags onto a DDPM or GAN config and runs the shared trainer.
 *
 * @module
 */
import { checkOutputFolder } from "../io/output.ts";
import { selectBackend } from "../backend/select.ts";
import type { Backend } from "../backend/backend.ts";
import {
  DEFAULT_CIFAR10_CLASSES,
  loadTrainingData,
  reloadTrainingData,
  TrainingDataError,
} from "../app/training_data.ts";
import type { Dataset } from "../data/dataset.ts";
import { type DdpmConfig, DEFAULT_DDPM_CONFIG } from "../diffusion/task.ts";
import { DEFAULT_GAN_CONFIG, type GanConfig } from "../gan/task.ts";
import { DENOISER_PRESETS } from "../models/denoiser.ts";
import { DCGAN_PRESETS } from "../models/dcgan.ts";
import { MODEL_FLAGS, TRAIN_SPEC } from "./train_flags.ts";
import { type DataSourceRecord, loadCheckpoint } from "../train/checkpoint.ts";
import { previewOptions, runDefaults } from "../app/defaults.ts";
import { type AnyTask, createTask, parseTaskConfig, type TaskConfig } from "../app/registry.ts";
import { train } from "../train/trainer.ts";
import type { TorchrunEnv } from "../app/launch.ts";
import { distTimeout, launchIfAsked } from "./parallel_flags.ts";
import {
  interruptSignals,
  joinJob,
  prepareRank,
  requireTorchForParallel,
} from "../app/parallel.ts";
import {
  backendFlag,
  bool,
  choice,
  helpText,
  int,
  num,
  parseCommand,
  type Parsed,
  str,
  UsageError,
} from "./args.ts";

/** Entry point of `cli.ts train`; returns the exit status. */
export async function trainCommand(argv: string[]): Promise<number> {
  const parsed = parseCommand(argv, TRAIN_SPEC);
  if (parsed.help) {
    console.log(helpText(TRAIN_SPEC));
    return 0;
  }
  const launched = await launchIfAsked("train", argv, parsed);
  if (launched !== null) return launched;
  const job = prepareRank(backendFlag(parsed));
  using backend = await selectBackend({ name: backendFlag(parsed), log: (m) => console.error(m) });
  requireTorchForParallel(backend.name, job?.worldSize ?? 1);
  return await (bool(parsed, "resume")
    ? resumeRun(parsed, backend, job)
    : newRun(parsed, backend, job));
}

async function newRun(parsed: Parsed, backend: Backend, job: TorchrunEnv | null): Promise<number> {
  const lead = (job?.rank ?? 0) === 0;
  const model = choice(parsed, "model", ["ddpm", "gan"] as const) ?? "ddpm";
  const defaults = runDefaults(model, backend.name);
  const classes = str(parsed, "classes");
  const conditional = bool(parsed, "cond");
  if (!conditional) rejectFlags(parsed, ["cfg-drop"], "--cond (class-conditional) models");
  // Every flag is read (and so checked) before the data set is loaded; the fields that depend
  // on the data (classes, image size, channels) keep their defaults until it is.
  let spec: TaskConfig;
  if (model === "ddpm") {
    rejectFlags(parsed, ["smooth", "d-noise", "nz", "ngf", "ndf"], "--model gan");
    const explicitPreset = str(parsed, "preset");
    if (
      explicitPreset !== undefined &&
      !(DENOISER_PRESETS as readonly string[]).includes(explicitPreset)
    ) {
      throw new UsageError(
        `--preset must be one of ${DENOISER_PRESETS.join(", ")} for ddpm, got '${explicitPreset}'`,
      );
    }
    const preset = (explicitPreset ?? defaults.ddpmPreset) as DdpmConfig["preset"];
    if (defaults.note && explicitPreset === undefined) console.error(defaults.note);
    if (argvHas(parsed, "ema-start") && num(parsed, "ema", 0, 1) === 0) {
      throw new UsageError("--ema-start has no effect with --ema 0 (no EMA): drop one of them");
    }
    const ddpm: DdpmConfig = {
      ...DEFAULT_DDPM_CONFIG,
      preset,
      schedule: choice(parsed, "schedule", ["linear", "cosine"] as const) ??
        DEFAULT_DDPM_CONFIG.schedule,
      timesteps: int(parsed, "timesteps", 2, 100_000) ?? DEFAULT_DDPM_CONFIG.timesteps,
      loss: choice(parsed, "loss", ["simple", "vlb"] as const) ?? DEFAULT_DDPM_CONFIG.loss,
      cfgDrop: num(parsed, "cfg-drop", 0, 1) ?? (conditional ? DEFAULT_DDPM_CONFIG.cfgDrop : 0),
      lr: num(parsed, "lr", 0, 1) ?? DEFAULT_DDPM_CONFIG.lr,
      ema: num(parsed, "ema", 0, 1) ?? DEFAULT_DDPM_CONFIG.ema,
      emaStart: int(parsed, "ema-start", 0) ?? DEFAULT_DDPM_CONFIG.emaStart,
      gradClip: num(parsed, "grad-clip", 0) ?? DEFAULT_DDPM_CONFIG.gradClip,
    };
    spec = { kind: "ddpm", config: ddpm };
  } else {
    rejectFlags(parsed, [
      "schedule",
      "timesteps",
      "loss",
      "cfg-drop",
      "ema",
      "ema-start",
      "grad-clip",
    ], "--model ddpm");
    const preset = str(parsed, "preset") ?? DEFAULT_GAN_CONFIG.preset;
    if (!(DCGAN_PRESETS as readonly string[]).includes(preset)) {
      throw new UsageError(
        `--preset must be one of ${DCGAN_PRESETS.join(", ")} for gan, got '${preset}'`,
      );
    }
    const gan: GanConfig = {
      ...DEFAULT_GAN_CONFIG,
      preset: preset as GanConfig["preset"],
      nz: int(parsed, "nz", 1) ?? DEFAULT_GAN_CONFIG.nz,
      ngf: int(parsed, "ngf", 1) ?? DEFAULT_GAN_CONFIG.ngf,
      ndf: int(parsed, "ndf", 1) ?? DEFAULT_GAN_CONFIG.ndf,
      smooth: bool(parsed, "smooth"),
      dNoise: num(parsed, "d-noise", 0) ?? 0,
      lr: num(parsed, "lr", 0, 1) ?? DEFAULT_GAN_CONFIG.lr,
    };
    spec = { kind: "gan", config: gan };
  }
  const seed = int(parsed, "seed", 0, 2 ** 32 - 1)!;
  const batchSize = int(parsed, "batch-size", 1) ?? defaults.batchSize;
  const epochs = int(parsed, "epochs", 1) ?? defaults.epochs;
  const imageSize = int(parsed, "image-size", 1, 4096);
  if (model === "gan" && imageSize !== undefined && imageSize !== DEFAULT_GAN_CONFIG.imageSize) {
    throw new UsageError(
      `the DCGAN is built for ${DEFAULT_GAN_CONFIG.imageSize}x${DEFAULT_GAN_CONFIG.imageSize} ` +
        `images: pass --image-size ${DEFAULT_GAN_CONFIG.imageSize}, got ${imageSize}`,
    );
  }
  trainingOptions(parsed);
  const explicitOut = str(parsed, "out");
  if (explicitOut !== undefined) await refuseToOverwrite(explicitOut);
  if (explicitOut !== undefined) await checkOutputFolder(explicitOut, { flag: "--out" });

  const { dataset: data, record } = await loadTrainingData({
    data: str(parsed, "data"),
    classes,
    imageSize,
  });
  const runDir = explicitOut ??
    `runs/${model}-${spec.config.preset}-${
      classes === undefined && record.classes.split(",").length > 3
        ? "all"
        : record.classes.replaceAll(",", "+")
    }${conditional ? "-cond" : ""}`;
  if (explicitOut === undefined) await refuseToOverwrite(runDir);
  if (conditional && data.numClasses < 2) {
    throw new UsageError(
      `--cond needs at least two classes, --classes ${record.classes} gives ${data.numClasses}`,
    );
  }
  const [dataChannels, dataHeight, dataWidth] = data.imageShape;
  if (imageSize === undefined && (dataHeight !== 32 || dataWidth !== 32)) {
    throw new UsageError(
      `the images are ${dataWidth}x${dataHeight}, not 32x32: pass --image-size 32 to resize ` +
        `them (shorter side to 32, then a centre crop, as torchvision's Resize + CenterCrop)` +
        (model === "ddpm"
          ? `, or --image-size ${Math.min(dataHeight, dataWidth)} to train at their own size`
          : ""),
    );
  }
  spec.config.numClasses = conditional ? data.numClasses : 0;
  spec.config.imageSize = dataHeight;
  spec.config.channels = dataChannels;
  const task = createTask(backend, spec, seed);
  try {
    if (lead) {
      console.error(
        `training ${model} ${spec.config.preset} on ${data.size} ${record.classes} images ` +
          `(${conditional ? `conditional, ${data.numClasses} classes` : "unconditional"}) ` +
          `on ${backend.name} (${backend.device})${
            job && job.worldSize > 1 ? ` x ${job.worldSize} ranks` : ""
          }; run folder ${runDir}`,
      );
    }
    const result = await runTraining(task, data, parsed, backend, job, {
      runDir,
      batchSize,
      epochs,
      seed,
      source: record,
    });
    return result;
  } finally {
    task.dispose();
  }
}

async function resumeRun(
  parsed: Parsed,
  backend: Backend,
  job: TorchrunEnv | null,
): Promise<number> {
  const runDir = str(parsed, "out");
  if (!runDir) throw new UsageError("--resume needs --out RUN_FOLDER (the run to continue)");
  const given = MODEL_FLAGS.filter((f) => argvHas(parsed, f));
  if (given.length) {
    throw new UsageError(
      `--resume takes the model, classes, seed and batch size from the checkpoint; drop ${
        given.map((f) => `--${f}`).join(", ")
      } (--data may name where the run's data moved to)`,
    );
  }
  const ckpt = await loadCheckpoint(runDir);
  const trainRecord = ckpt.state.train;
  const done = ckpt.state.step;
  // The budget is the run's total. A new one must lie ahead of the steps done: accepting a
  // smaller one would record a budget the run has already passed, and every later resume
  // would think the run finished.
  const newMaxSteps = int(parsed, "max-steps", 1);
  const newEpochs = int(parsed, "epochs", 1);
  if (newMaxSteps !== undefined && newMaxSteps <= done) {
    throw new UsageError(
      `--max-steps is the run's total step count and ${runDir} is already at step ${done}: ` +
        `pass more than ${done} (e.g. --max-steps ${done + 3} for 3 more steps)`,
    );
  }
  if (
    newMaxSteps === undefined && newEpochs !== undefined &&
    newEpochs * trainRecord.stepsPerEpoch <= done
  ) {
    throw new UsageError(
      `--epochs ${newEpochs} is ${newEpochs * trainRecord.stepsPerEpoch} steps and ${runDir} ` +
        `is already at step ${done} (epoch ${ckpt.state.epoch}): pass a larger budget`,
    );
  }
  const spec = parseTaskConfig(ckpt.state.kind, ckpt.state.config, ckpt.path);
  let data;
  try {
    data = await reloadTrainingData(trainRecord.source, {
      override: str(parsed, "data"),
      imageSize: spec.config.imageSize,
    });
  } catch (e) {
    if (e instanceof TrainingDataError) throw new UsageError(e.message);
    throw e;
  }
  const source: DataSourceRecord = {
    ...(trainRecord.source ?? { data: null, classes: DEFAULT_CIFAR10_CLASSES }),
    ...(data.location ? { path: data.location } : {}),
  };
  const task = createTask(backend, spec, trainRecord.seed);
  try {
    // The global batch stays, whatever the number of ranks now: the sample stream continues.
    const globalBatch = trainRecord.globalBatch ?? trainRecord.batchSize;
    const world = job?.worldSize ?? 1;
    if (globalBatch % world !== 0) {
      throw new UsageError(
        `${runDir} was trained with a global batch of ${globalBatch}, which ${world} ranks ` +
          `cannot split evenly: resume with a number of ranks that divides ${globalBatch}`,
      );
    }
    return await runTraining(task, data, parsed, backend, job, {
      runDir,
      batchSize: globalBatch / world,
      // The same budget as the interrupted run unless a new one is given, so schedules that
      // depend on progress (the GAN's input-noise annealing) continue unchanged. A new
      // --epochs replaces a recorded --max-steps.
      epochs: newEpochs ?? trainRecord.epochs,
      maxSteps: newEpochs !== undefined ? undefined : trainRecord.maxSteps ?? undefined,
      seed: trainRecord.seed,
      flip: trainRecord.flip,
      source,
      resume: true,
      intervals: {
        logEvery: trainRecord.logEvery,
        checkpointEvery: trainRecord.checkpointEvery,
        previewEvery: trainRecord.previewEvery,
      },
    });
  } finally {
    task.dispose();
  }
}

async function runTraining(
  task: AnyTask,
  data: Dataset,
  parsed: Parsed,
  backend: Backend,
  job: TorchrunEnv | null,
  run: {
    runDir: string;
    batchSize: number;
    epochs: number;
    maxSteps?: number;
    seed: number;
    flip?: boolean;
    source: DataSourceRecord;
    resume?: boolean;
    /** The resumed run's recorded intervals: flags override them one by one. */
    intervals?: { logEvery?: number; checkpointEvery?: number; previewEvery?: number };
  },
): Promise<number> {
  const controller = new AbortController();
  const onSigint = () => {
    if (controller.signal.aborted) Deno.exit(130);
    console.error(
      "\ninterrupt: finishing this step and writing a checkpoint (Ctrl-C again to quit now)",
    );
    controller.abort();
  };
  const signals = interruptSignals();
  for (const s of signals) Deno.addSignalListener(s, onSigint);
  // Started by our launcher: the terminal's Ctrl-C reaches this rank too, but the launcher
  // turns it into one SIGTERM, so the SIGINT itself is ignored here.
  const ignore = () => {};
  if (!signals.includes("SIGINT")) Deno.addSignalListener("SIGINT", ignore);
  const flags = trainingOptions(parsed);
  let group: Awaited<ReturnType<typeof joinJob>>;
  try {
    group = await joinJob(backend, job, {
      kind: task.kind,
      config: task.config,
      batchSize: run.batchSize,
      epochs: run.epochs,
      maxSteps: flags.maxSteps ?? run.maxSteps ?? null,
      seed: run.seed,
      flip: run.flip ?? !bool(parsed, "no-flip"),
      data: data.size,
      resume: run.resume ?? false,
    }, distTimeout(parsed));
    const result = await train(task, data, {
      ...flags,
      logEvery: flags.logEvery ?? run.intervals?.logEvery,
      checkpointEvery: flags.checkpointEvery ?? run.intervals?.checkpointEvery,
      previewEvery: flags.previewEvery ?? run.intervals?.previewEvery,
      maxSteps: flags.maxSteps ?? run.maxSteps,
      runDir: run.runDir,
      batchSize: run.batchSize,
      epochs: run.epochs,
      seed: run.seed,
      flip: run.flip ?? !bool(parsed, "no-flip"),
      previewOptions: previewOptions(task),
      gif: task.kind === "gan",
      resume: run.resume,
      signal: controller.signal,
      backendName: backend.name,
      source: run.source,
      group,
    });
    if (result.nonfinite) return 1;
    return result.interrupted ? 130 : 0;
  } finally {
    group?.dispose();
    for (const s of signals) Deno.removeSignalListener(s, onSigint);
    if (!signals.includes("SIGINT")) Deno.removeSignalListener("SIGINT", ignore);
  }
}

/** The trainer's budget and interval flags. */
function trainingOptions(parsed: Parsed) {
  return {
    maxSteps: int(parsed, "max-steps", 1),
    maxSeconds: num(parsed, "max-seconds", 0),
    logEvery: int(parsed, "log-every", 1),
    checkpointEvery: int(parsed, "checkpoint-every", 0),
    previewEvery: int(parsed, "preview-every", 0),
    onNonfinite: choice(parsed, "on-nonfinite", ["stop", "skip"] as const),
  };
}

function rejectFlags(parsed: Parsed, flags: string[], belongsTo: string): void {
  const given = flags.filter((f) => argvHas(parsed, f));
  if (given.length) {
    throw new UsageError(`${given.map((f) => `--${f}`).join(", ")} only apply to ${belongsTo}`);
  }
}

function argvHas(parsed: Parsed, flag: string): boolean {
  const spec = TRAIN_SPEC.flags[flag];
  const v = parsed.values[flag];
  return v !== undefined && v !== spec?.default;
}

async function refuseToOverwrite(runDir: string): Promise<void> {
  try {
    await Deno.stat(`${runDir}/checkpoint.safetensors`);
  } catch {
    return;
  }
  throw new UsageError(
    `${runDir} already holds a run: pass --resume --out ${runDir} to continue it, or --out NEW_FOLDER`,
  );
}
