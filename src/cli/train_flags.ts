/**
 * The flags of `cli.ts train` (names, help text, defaults shown in `--help`) and which of them
 * define the model, so that `--resume` takes those from the checkpoint. train.ts reads them.
 *
 * @module
 */
import { DENOISER_PRESETS } from "../models/denoiser.ts";
import { DCGAN_PRESETS } from "../models/dcgan.ts";
import { BACKEND_FLAG, type CommandSpec } from "./args.ts";
import { parallelFlags } from "./parallel_flags.ts";

/** Flags, help and usage of `cli.ts train`. */
export const TRAIN_SPEC: CommandSpec = {
  name: "train",
  summary: "Train a DDPM diffusion model or a DCGAN on CIFAR-10 or a folder of images.",
  usage: "deno run -A cli.ts train [--model ddpm|gan] [--preset NAME] [--classes cat,frog] [flags]",
  flags: {
    model: { type: "string", arg: "ddpm|gan", help: "model family", default: "ddpm" },
    preset: {
      type: "string",
      arg: "NAME",
      help: `ddpm: ${DENOISER_PRESETS.join(", ")}; gan: ${DCGAN_PRESETS.join(", ")}`,
    },
    schedule: { type: "string", arg: "linear|cosine", help: "ddpm beta schedule (default cosine)" },
    timesteps: { type: "string", arg: "T", help: "ddpm diffusion steps (default 1000)" },
    loss: { type: "string", arg: "simple|vlb", help: "ddpm training loss (default simple)" },
    classes: {
      type: "string",
      arg: "LIST",
      help: "classes to train on: names or ids (default: cat on CIFAR-10, else every class)",
    },
    "image-size": {
      type: "string",
      arg: "N",
      help: "resize images to NxN (shorter side to N, centre crop, as torchvision); default: " +
        "images must be 32x32",
    },
    cond: { type: "boolean", help: "class-conditional model (labels as input)" },
    "cfg-drop": {
      type: "string",
      arg: "P",
      help: "ddpm: label drop probability for guidance (default 0.1)",
    },
    epochs: { type: "string", arg: "N", help: "training budget in epochs" },
    "max-steps": {
      type: "string",
      arg: "N",
      help: "training budget: the run's total step count (overrides --epochs); with --resume " +
        "a new total, which must exceed the steps done",
    },
    "max-seconds": {
      type: "string",
      arg: "S",
      help: "stop (with a checkpoint) after S seconds of this session (not kept by --resume)",
    },
    "batch-size": {
      type: "string",
      arg: "N",
      help: "batch size (ddpm 64 on GPU, 32 on CPU; gan 128)",
    },
    lr: { type: "string", arg: "LR", help: "learning rate (ddpm 3e-4, gan 2e-4)" },
    ema: {
      type: "string",
      arg: "DECAY",
      help: "ddpm: EMA decay of the weights, 0 = off (default 0.995)",
    },
    "ema-start": {
      type: "string",
      arg: "STEPS",
      help: "ddpm: steps before the EMA starts (default 2000)",
    },
    "grad-clip": {
      type: "string",
      arg: "NORM",
      help: "ddpm: max gradient norm, 0 = off (default 1)",
    },
    smooth: { type: "boolean", help: "gan: label smoothing (real 0.9, fake 0.1)" },
    "d-noise": {
      type: "string",
      arg: "SIGMA",
      help: "gan: discriminator input noise, annealed to 0",
    },
    nz: { type: "string", arg: "N", help: "gan: noise length (default 100)" },
    ngf: { type: "string", arg: "N", help: "gan: generator width (default 64)" },
    ndf: { type: "string", arg: "N", help: "gan: discriminator width (default 64)" },
    data: {
      type: "string",
      arg: "PATH",
      help: "image folder or CIFAR-10 binary folder (else $DENO_DIFFUSION_DATA, cache, download)",
    },
    out: {
      type: "string",
      arg: "DIR",
      help: "run folder (default runs/<model>-<preset>-<classes>)",
    },
    backend: BACKEND_FLAG,
    seed: { type: "string", arg: "N", help: "random seed", default: "0" },
    resume: { type: "boolean", help: "continue the run in --out from its checkpoint, exactly" },
    "checkpoint-every": { type: "string", arg: "STEPS", help: "checkpoint interval (default 500)" },
    "preview-every": {
      type: "string",
      arg: "EPOCHS",
      help: "sample grid interval, 0 = never (default 1)",
    },
    "log-every": { type: "string", arg: "STEPS", help: "JSON log interval (default 10)" },
    "no-flip": { type: "boolean", help: "no random horizontal flips" },
    ...parallelFlags("--batch-size is per process"),
    "on-nonfinite": {
      type: "string",
      arg: "stop|skip",
      help: "a NaN/Inf loss: stop with a checkpoint of the last finite step, or skip the batch",
      default: "stop",
    },
  },
  details: [
    "With no flags: DDPM on CIFAR-10 cats with the study's best configuration (unet-2xud, cosine",
    "schedule, T=1000). Without a GPU it trains a CPU-sized variant (unet-2xud-half, batch 32)",
    "and says so. Ctrl-C writes a checkpoint; --resume --out RUN continues exactly.",
    "--nproc N (or torchrun's MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE, LOCAL_RANK) trains",
    "data-parallel: the global batch is --batch-size x ranks; resume with any world size that",
    "divides the run's global batch.",
    "",
    "--resume keeps every setting of the run (model, data, seed, batch size, budget, --log-every,",
    "--checkpoint-every, --preview-every); give --epochs, --max-steps or an interval to change",
    "it. --max-steps is always the run's total: a run at step 29 continues 3 more steps with",
    "--max-steps 32. The run records its data's absolute location and fingerprint, so --resume",
    "works from any folder; --data NEW_PATH is accepted when the data moved (same fingerprint).",
  ].join("\n"),
};

/** Flags that define the model; they come from the checkpoint when resuming. */
export const MODEL_FLAGS = [
  "model",
  "preset",
  "schedule",
  "timesteps",
  "loss",
  "classes",
  "cond",
  "cfg-drop",
  "lr",
  "ema",
  "ema-start",
  "grad-clip",
  "smooth",
  "d-noise",
  "nz",
  "ngf",
  "ndf",
  "image-size",
  "seed",
  "batch-size",
  "no-flip",
];
