/**
 * `cli.ts eval`: bits/dim of a diffusion checkpoint on a data split — the variational bound
 * of Ho et al. 2020 (eq. 5, Table 2), which needs no Inception weights.
 *
 * @module
 */
import { selectBackend } from "../backend/select.ts";
import { loadDataset } from "../data/load.ts";
import { diffusionBitsPerDim } from "../app/evaluate.ts";
import { openCheckpoint } from "../app/registry.ts";
import { recordedDataLocation } from "../app/training_data.ts";
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

const SPEC: CommandSpec = {
  name: "eval",
  summary: "Bits/dim (negative log-likelihood bound) of a diffusion checkpoint on a data split.",
  usage: "deno run -A cli.ts eval --ckpt RUN [--split test] [--images 1000] [--stride 1] [--json]",
  flags: {
    ckpt: { type: "string", arg: "RUN_OR_FILE", help: "run folder or checkpoint file (required)" },
    data: {
      type: "string",
      arg: "PATH",
      help: "data folder (default: the one the run trained on)",
    },
    split: { type: "string", arg: "train|test", help: "split to evaluate", default: "test" },
    classes: { type: "string", arg: "LIST", help: "class filter (default: the run's classes)" },
    images: { type: "string", arg: "N", help: "images to evaluate (the first N)", default: "1000" },
    stride: {
      type: "string",
      arg: "K",
      help: "evaluate every K-th timestep's term, scaled (1 = the exact bound, T passes per batch)",
      default: "1",
    },
    "batch-size": { type: "string", arg: "N", help: "images per forward pass", default: "100" },
    seed: { type: "string", arg: "N", help: "seed of the q(x_t|x_0) noise", default: "0" },
    json: { type: "boolean", help: 'print {"bits_per_dim","prior_bits_per_dim","images","split"}' },
    backend: BACKEND_FLAG,
  },
};

/** Entry point of `cli.ts eval`. */
export async function evalCommand(argv: string[]): Promise<number> {
  const parsed = parseCommand(argv, SPEC);
  if (parsed.help) {
    console.log(helpText(SPEC));
    return 0;
  }
  const ckpt = str(parsed, "ckpt");
  if (!ckpt) throw new UsageError("--ckpt RUN_OR_FILE is required");
  const split = str(parsed, "split");
  if (split !== "train" && split !== "test") {
    throw new UsageError(`--split must be train or test, got '${split}'`);
  }
  const images = int(parsed, "images", 1)!;
  const stride = int(parsed, "stride", 1)!;
  const batchSize = int(parsed, "batch-size", 1)!;
  const seed = int(parsed, "seed", 0, 2 ** 32 - 1)!;
  const backend = await selectBackend({ name: backendFlag(parsed), log: (m) => console.error(m) });
  try {
    const { task, checkpoint } = await openCheckpoint(backend, ckpt, "ddpm");
    try {
      const trained = checkpoint.state.train?.source;
      // The recorded absolute location, so eval works from any working folder.
      const location = recordedDataLocation(trained, str(parsed, "data"));
      if (location !== undefined && location !== "cifar10" && !(await exists(location))) {
        throw new UsageError(
          `${
            str(parsed, "data") !== undefined ? "--data" : "the run's data at"
          } ${location} does not exist: pass --data PATH (where the data is now)`,
        );
      }
      const data = await loadDataset({
        source: location,
        split,
        classes: str(parsed, "classes") ?? trained?.classes,
        imageSize: task.config.imageSize,
      });
      const started = performance.now();
      const result = diffusionBitsPerDim(task, data, {
        images,
        timestepStride: stride,
        batchSize,
        seed,
      });
      const seconds = (performance.now() - started) / 1000;
      if (bool(parsed, "json")) {
        console.log(JSON.stringify({
          bits_per_dim: result.total,
          prior_bits_per_dim: result.prior,
          images: result.images,
          split,
          stride,
          seconds: Math.round(seconds * 100) / 100,
        }));
      } else {
        console.log(
          `${result.total.toFixed(4)} bits/dim on ${result.images} ${split} images ` +
            `(prior term ${result.prior.toFixed(5)}${
              stride > 1 ? `, every ${stride}th timestep` : ", exact bound"
            })`,
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

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}
