/**
 * `cli.ts params`: parameter count of a preset, computed from its configuration.
 *
 * @module
 */
import { countParams, DENOISER_PRESETS, type DenoiserPreset } from "../models/denoiser.ts";
import {
  DCGAN_PRESETS,
  dcganParamCounts,
  type DcganPreset,
  DEFAULT_DCGAN,
} from "../models/dcgan.ts";
import { bool, type CommandSpec, helpText, int, parseCommand, str, UsageError } from "./args.ts";

const SPEC: CommandSpec = {
  name: "params",
  summary: "Print the number of trainable parameters of a model preset.",
  usage: "deno run -A cli.ts params --model PRESET [--classes N] [--json]",
  flags: {
    model: {
      type: "string",
      arg: "PRESET",
      help: `one of ${[...DENOISER_PRESETS, ...DCGAN_PRESETS].join(", ")}`,
    },
    classes: {
      type: "string",
      arg: "N",
      help: "number of classes of a conditional model",
      default: "0",
    },
    nz: { type: "string", arg: "N", help: "dcgan: noise length (default 100)" },
    ngf: { type: "string", arg: "N", help: "dcgan: generator width (default 64)" },
    ndf: { type: "string", arg: "N", help: "dcgan: discriminator width (default 64)" },
    json: { type: "boolean", help: 'print {"model", "params"} as JSON' },
  },
};

/** Entry point of `cli.ts params`. */
export function paramsCommand(argv: string[]): Promise<number> {
  const parsed = parseCommand(argv, SPEC);
  if (parsed.help) {
    console.log(helpText(SPEC));
    return Promise.resolve(0);
  }
  const model = str(parsed, "model");
  if (!model) {
    throw new UsageError(
      `--model is required: one of ${[...DENOISER_PRESETS, ...DCGAN_PRESETS].join(", ")}`,
    );
  }
  const classes = int(parsed, "classes", 0, 100_000)!;
  let result: Record<string, unknown>;
  if ((DENOISER_PRESETS as readonly string[]).includes(model)) {
    result = { model, params: countParams(model as DenoiserPreset, classes) };
  } else if ((DCGAN_PRESETS as readonly string[]).includes(model)) {
    const counts = dcganParamCounts({
      ...DEFAULT_DCGAN,
      preset: model as DcganPreset,
      nz: int(parsed, "nz", 1) ?? DEFAULT_DCGAN.nz,
      ngf: int(parsed, "ngf", 1) ?? DEFAULT_DCGAN.ngf,
      ndf: int(parsed, "ndf", 1) ?? DEFAULT_DCGAN.ndf,
      numClasses: classes,
      embedDim: classes,
    });
    result = {
      model,
      params: counts.total,
      generator: counts.generator,
      discriminator: counts.discriminator,
    };
  } else {
    throw new UsageError(
      `unknown model '${model}': one of ${[...DENOISER_PRESETS, ...DCGAN_PRESETS].join(", ")}`,
    );
  }
  if (bool(parsed, "json")) console.log(JSON.stringify(result));
  else {
    const parts = Object.entries(result).filter(([k]) => k !== "model").map(([k, v]) =>
      `${k} ${(v as number).toLocaleString("en-US")}`
    );
    console.log(`${model}: ${parts.join(", ")}`);
  }
  return Promise.resolve(0);
}
