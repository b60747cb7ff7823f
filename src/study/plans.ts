/**
 * Study plans: which models to train, on what, for how long, and what the original study
 * published for each row. Built-in plans reproduce the original experiments; a JSON file of
 * the same shape describes a custom grid. {@link scaleEntry} shrinks an entry's budgets for a
 * quick run (`--scale`).
 *
 * @module
 */

import {
  type DdpmConfig,
  type DdpmSampleOptions,
  parseDdpmSampleOptions,
} from "../diffusion/task.ts";
import type { GanConfig } from "../gan/task.ts";
import { DDPM_EPOCHS, DEFAULT_BATCH_SIZE } from "../app/defaults.ts";

/** Model families an entry can train; "floor" trains nothing (train-vs-test FID). */
export type EntryKind = StudyEntry["kind"];

/** What every row of the study has, whatever it trains. */
export interface EntryBase {
  /** Folder name and `--only` key: lowercase letters, digits and dashes. */
  id: string;
  /** Row label as in the original report, e.g. "UNet 2xUD, cosine". */
  label: string;
  /** Heading of the table the row belongs to. */
  table: string;
  /** Training (and reference) classes: names or ids, e.g. "cat" or "cat,frog"; "all" = 10. */
  classes: string;
  /** Class-conditional model: sampled and scored per class. */
  conditional?: boolean;
  /** Training budget: epochs, optionally capped by wall-clock seconds. */
  budget?: { epochs: number; seconds?: number };
  /** Batch size (default DEFAULT_BATCH_SIZE of app/defaults.ts: ddpm 64, gan 128). */
  batchSize?: number;
  /** Images sampled for FID (per class when conditional); floor: images per split. */
  samples: number;
  /** Published FID of the original study; per class name when conditional. */
  published?: number | Record<string, number>;
  /** Seed of weights, data order and noise (default 0). */
  seed?: number;
}

/** A diffusion row. */
export interface DdpmEntry extends EntryBase {
  /** Diffusion. */
  kind: "ddpm";
  /** Overrides of DEFAULT_DDPM_CONFIG (e.g. preset, schedule). */
  config?: Partial<DdpmConfig>;
  /** Sampling options at full scale (default: ancestral DDPM, all T steps). */
  sampler?: DdpmSampleOptions;
}

/** A DCGAN row. */
export interface GanEntry extends EntryBase {
  /** DCGAN. */
  kind: "gan";
  /** Overrides of DEFAULT_GAN_CONFIG (e.g. smooth, dNoise). */
  config?: Partial<GanConfig>;
}

/** A train-vs-test FID floor row: trains nothing. */
export interface FloorEntry extends EntryBase {
  /** Train-vs-test floor. */
  kind: "floor";
}

/** One row of the study. */
export type StudyEntry = DdpmEntry | GanEntry | FloorEntry;

/** A named list of entries and the split FID is measured against. */
export interface StudyPlan {
  /** The plan's name (a built-in name or the file's). */
  name: string;
  /** The report's title. */
  title: string;
  /** Markdown paragraph for the report. */
  description: string;
  /** The split the generated images (and the floor's train images) are compared with. */
  referenceSplit: "test" | "train";
  /** The rows, run in order. */
  entries: StudyEntry[];
}

/**
 * An entry's budgets after `--scale`: what the runner actually does. Recorded in results so a
 * rerun can tell whether a finished entry still matches.
 */
export type ScaledEntry = StudyEntry & {
  scale: number;
  /** Images to train on (epochs x data set size x scale), at least one batch. */
  trainImages: (datasetSize: number) => number;
  /** Samples after scaling (per class when conditional). */
  scaledSamples: number;
  /** Sampling options actually used (DDIM with fewer steps when scaled below 1). */
  scaledSampler: DdpmSampleOptions;
  /** Test images and KL timesteps for the bits/dim evaluation. */
  bitsPerDim: { images: number; timestepStride: number };
  /** Wall-clock cap after scaling, in seconds. */
  scaledSeconds?: number;
};

/** Fewest samples a scaled entry draws: FID and KID need a few images to be defined at all. */
export const MIN_SAMPLES = 8;
/** Fewest DDIM steps a scaled diffusion entry samples with. */
export const MIN_SAMPLING_STEPS = 4;
/** Test images the bits/dim evaluation uses at full scale (the whole cat test split). */
export const FULL_BPD_IMAGES = 1000;

/** Diffusion budget of every built-in diffusion row (the reference code's default epochs). */
const DIFFUSION_EPOCHS = DDPM_EPOCHS;

const DIFFUSION_NOTE = "Budgets: diffusion models train for " + DIFFUSION_EPOCHS +
  " epochs (the default of the reference implementation the original followed; the original " +
  "report does not state its own), DCGANs for the epochs in their row label.";

function ddpm(
  id: string,
  label: string,
  config: Partial<DdpmConfig>,
  published: number | undefined,
  table = "Unconditional diffusion models (CIFAR-10 cats)",
): DdpmEntry {
  return {
    id,
    label,
    table,
    kind: "ddpm",
    classes: "cat",
    config: { schedule: "linear", timesteps: 1000, ...config },
    budget: { epochs: DIFFUSION_EPOCHS },
    batchSize: DEFAULT_BATCH_SIZE.ddpm,
    samples: 1000,
    ...(published === undefined ? {} : { published }),
  };
}

function gan(
  id: string,
  label: string,
  config: Partial<GanConfig>,
  epochs: number,
  published: number,
): GanEntry {
  return {
    id,
    label,
    table: "DCGANs (CIFAR-10 cats)",
    kind: "gan",
    classes: "cat",
    config,
    budget: { epochs },
    batchSize: DEFAULT_BATCH_SIZE.gan,
    samples: 1000,
    published,
  };
}

function floor(classes: string, samples: number, published?: number): FloorEntry {
  const what = classes === "all" ? "all classes" : classes;
  return {
    id: `floor-${classes}-${samples}`,
    label: `train vs test, ${what}, ${samples} images`,
    table: "Train-vs-test FID floor",
    kind: "floor",
    classes,
    samples,
    ...(published === undefined ? {} : { published }),
  };
}

/** The original study's experiments, by plan name. */
export const BUILT_IN_PLANS: Readonly<Record<string, StudyPlan>> = {
  unconditional: {
    name: "unconditional",
    title: "Unconditional diffusion models and DCGANs on CIFAR-10 cats",
    description: "Five U-Net diffusion variants (linear beta schedule unless noted, T = 1000) " +
      "and three DCGAN variants, each trained on the 5,000 CIFAR-10 training cats and scored " +
      "with FID@1000 against the 1,000 test cats. " + DIFFUSION_NOTE,
    referenceSplit: "test",
    entries: [
      ddpm("unet-2xud-half", "UNet 2xUD, half channels", { preset: "unet-2xud-half" }, 114.7),
      ddpm("unet-2xud", "UNet 2xUD", { preset: "unet-2xud" }, 100.1),
      ddpm("unet-3x", "UNet 3x (default)", { preset: "unet-3x" }, 118.5),
      ddpm("unet-3x-cosine", "UNet 3x, cosine", { preset: "unet-3x", schedule: "cosine" }, 115.9),
      ddpm(
        "unet-2xud-cosine",
        "UNet 2xUD, cosine",
        { preset: "unet-2xud", schedule: "cosine" },
        97.3,
      ),
      gan(
        "gan-smoothed-1024",
        "DCGAN, label smoothing, 1024 epochs",
        { smooth: true },
        1024,
        125.6,
      ),
      gan("gan-default-1024", "DCGAN, default, 1024 epochs", {}, 1024, 109.1),
      gan("gan-default-512", "DCGAN, default, 512 epochs", {}, 512, 113.3),
    ],
  },
  conditional: {
    name: "conditional",
    title: "Class-conditional diffusion vs conditional DCGAN on CIFAR-10 cats + frogs",
    description: "One class-conditional U-Net (2xUD, cosine, classifier-free label dropout 0.1, " +
      "sampled without guidance) and one conditional DCGAN, each trained on the 10,000 " +
      "training cats and frogs; FID@1000 per class against that class's 1,000 test images. " +
      "Budgets: " + DIFFUSION_EPOCHS + " epochs for the diffusion model and 512 for the DCGAN " +
      "(chosen here; the original report does not state them).",
    referenceSplit: "test",
    entries: [
      {
        id: "cond-diffusion",
        label: "Conditional diffusion (UNet 2xUD, cosine)",
        table: "Class-conditional models (CIFAR-10 cats + frogs)",
        kind: "ddpm",
        classes: "cat,frog",
        conditional: true,
        config: { preset: "unet-2xud", schedule: "cosine", timesteps: 1000, cfgDrop: 0.1 },
        budget: { epochs: DIFFUSION_EPOCHS },
        batchSize: DEFAULT_BATCH_SIZE.ddpm,
        samples: 1000,
        published: { cat: 102.9, frog: 70.5 },
      },
      {
        id: "cond-gan",
        label: "Conditional DCGAN",
        table: "Class-conditional models (CIFAR-10 cats + frogs)",
        kind: "gan",
        classes: "cat,frog",
        conditional: true,
        config: {},
        budget: { epochs: 512 },
        batchSize: DEFAULT_BATCH_SIZE.gan,
        samples: 1000,
        published: { cat: 231.7, frog: 181.7 },
      },
    ],
  },
  timesteps: {
    name: "timesteps",
    title: "Number of diffusion steps T on CIFAR-10 cats",
    description: "The study's best configuration (UNet 2xUD, cosine schedule) trained with " +
      "T = 500, 1000 and 1500 and sampled with all T ancestral steps. Published numbers: none. " +
      "The original (seed) study gives no FID for a sweep over T, so the published column " +
      "reads n/a; the nearest published figure is its UNet 2xUD, cosine row at T = 1000 " +
      "(FID 97.3, in the unconditional plan). " + DIFFUSION_NOTE,
    referenceSplit: "test",
    entries: [500, 1000, 1500].map((t) =>
      ddpm(
        `unet-2xud-cosine-t${t}`,
        `UNet 2xUD, cosine, T = ${t}`,
        { preset: "unet-2xud", schedule: "cosine", timesteps: t },
        undefined,
        "Timestep sweep (CIFAR-10 cats)",
      )
    ),
  },
  floor: {
    name: "floor",
    title: "The train-vs-test FID floor",
    description: "FID between N training images and N test images of the same classes: the " +
      "best score any model can expect at that sample size. The cat rows compare with the " +
      "original (cats have 1,000 test images, so larger N uses all ten classes).",
    referenceSplit: "test",
    entries: [
      floor("cat", 500, 87),
      floor("cat", 1000, 49.8),
      ...[500, 1000, 2000, 5000, 10000].map((n) => floor("all", n)),
    ],
  },
};

/** Names of the built-in plans. */
export const PLAN_NAMES = Object.keys(BUILT_IN_PLANS);

/**
 * A built-in plan by name, or a plan read from a JSON file (anything ending in .json).
 *
 * @example
 * ```ts
 * import { resolvePlan } from "./plans.ts";
 * const plan = await resolvePlan("unconditional");
 * console.log(plan.entries.length); // 8
 * ```
 */
export async function resolvePlan(nameOrPath: string): Promise<StudyPlan> {
  if (nameOrPath in BUILT_IN_PLANS) return structuredClone(BUILT_IN_PLANS[nameOrPath]);
  if (!nameOrPath.endsWith(".json")) {
    throw new Error(
      `unknown plan '${nameOrPath}': use one of ${PLAN_NAMES.join(", ")} or a .json plan file`,
    );
  }
  let text: string;
  try {
    text = await Deno.readTextFile(nameOrPath);
  } catch (e) {
    throw new Error(`cannot read plan file ${nameOrPath}: ${(e as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new Error(`plan file ${nameOrPath} is not valid JSON: ${(e as Error).message}`);
  }
  return validatePlan(json, nameOrPath);
}

/**
 * Checks a parsed JSON plan and fills defaults; throws naming the bad field.
 *
 * @example
 * ```ts
 * import { validatePlan } from "./plans.ts";
 * const plan = validatePlan({
 *   name: "mine",
 *   entries: [{ id: "a", kind: "gan", classes: "cat", samples: 100, budget: { epochs: 5 } }],
 * });
 * console.log(plan.entries[0].table); // "mine"
 * ```
 */
export function validatePlan(json: unknown, source = "plan"): StudyPlan {
  const fail = (msg: string): never => {
    throw new Error(`${source}: ${msg}`);
  };
  if (!isRecord(json)) return fail("expected a JSON object with 'name' and 'entries'");
  const name = json.name;
  if (typeof name !== "string" || !name) fail("'name' must be a non-empty string");
  if (!Array.isArray(json.entries) || json.entries.length === 0) {
    fail("'entries' must be a non-empty array");
  }
  const split = json.referenceSplit ?? "test";
  if (split !== "test" && split !== "train") fail(`'referenceSplit' must be "test" or "train"`);
  const ids = new Set<string>();
  const entries = (json.entries as unknown[]).map((raw, i): StudyEntry => {
    const at = `entries[${i}]`;
    if (!isRecord(raw)) return fail(`${at} must be an object`);
    const id = raw.id;
    if (typeof id !== "string" || !/^[a-z0-9][a-z0-9-]*$/.test(id)) {
      fail(`${at}.id must be lowercase letters, digits and dashes, got ${JSON.stringify(id)}`);
    }
    if (ids.has(id as string)) fail(`${at}.id '${id}' is used twice`);
    ids.add(id as string);
    const kind = raw.kind;
    if (kind !== "ddpm" && kind !== "gan" && kind !== "floor") {
      fail(`${at}.kind must be "ddpm", "gan" or "floor", got ${JSON.stringify(kind)}`);
    }
    if (typeof raw.classes !== "string" || !raw.classes) {
      fail(`${at}.classes must be a string such as "cat" or "cat,frog"`);
    }
    if (!isPositiveInteger(raw.samples) || (raw.samples as number) < 2) {
      fail(`${at}.samples must be an integer >= 2`);
    }
    if (kind !== "floor") {
      const budget = raw.budget;
      if (!isRecord(budget) || !(typeof budget.epochs === "number" && budget.epochs > 0)) {
        fail(`${at}.budget must be { "epochs": N } with N > 0 (and optionally "seconds")`);
      }
      const b = budget as Record<string, unknown>;
      if (b.seconds !== undefined && !(typeof b.seconds === "number" && b.seconds > 0)) {
        fail(`${at}.budget.seconds must be a number > 0`);
      }
    }
    if (raw.batchSize !== undefined && !isPositiveInteger(raw.batchSize)) {
      fail(`${at}.batchSize must be a positive integer`);
    }
    if (raw.config !== undefined && !isRecord(raw.config)) fail(`${at}.config must be an object`);
    if (raw.sampler !== undefined) {
      if (!isRecord(raw.sampler)) fail(`${at}.sampler must be an object`);
      try {
        parseDdpmSampleOptions(raw.sampler as Record<string, unknown>);
      } catch (e) {
        fail(`${at}.sampler: ${(e as Error).message}`);
      }
    }
    const published = raw.published;
    if (
      published !== undefined && typeof published !== "number" &&
      !(isRecord(published) && Object.values(published).every((v) => typeof v === "number"))
    ) {
      fail(`${at}.published must be a number or an object of numbers by class name`);
    }
    return {
      ...(raw as unknown as StudyEntry),
      label: typeof raw.label === "string" ? raw.label : (id as string),
      table: typeof raw.table === "string" ? raw.table : (name as string),
    };
  });
  return {
    name: name as string,
    title: typeof json.title === "string" ? json.title : (name as string),
    description: typeof json.description === "string" ? json.description : "",
    referenceSplit: split as "test" | "train",
    entries,
  };
}

/**
 * An entry with its budgets multiplied by `scale` (1 = the full study): training images,
 * wall-clock cap, samples (at least {@link MIN_SAMPLES}), and, below scale 1, DDIM sampling
 * with max(T x scale, {@link MIN_SAMPLING_STEPS}) steps instead of T ancestral steps; the
 * bits/dim evaluation uses 1,000 x scale test images and about T x scale KL terms.
 * `samplesOverride` (`--n`) replaces the scaled sample count.
 *
 * @example
 * ```ts
 * import { BUILT_IN_PLANS, scaleEntry } from "./plans.ts";
 * const e = scaleEntry(BUILT_IN_PLANS.unconditional.entries[0], 0.01);
 * console.log(e.trainImages(5000), e.scaledSamples, e.scaledSampler); // 25000 10 { sampler: "ddim", steps: 10 }
 * ```
 */
export function scaleEntry(
  entry: StudyEntry,
  scale: number,
  samplesOverride?: number,
): ScaledEntry {
  if (!(scale > 0 && scale <= 1)) throw new RangeError(`scale must be in (0, 1], got ${scale}`);
  const timesteps = entry.kind === "ddpm" ? entry.config?.timesteps ?? 1000 : 1000;
  const scaledSamples = samplesOverride ??
    Math.max(MIN_SAMPLES, Math.round(entry.samples * scale));
  let scaledSampler: DdpmSampleOptions = entry.kind === "ddpm" ? { ...(entry.sampler ?? {}) } : {};
  if (entry.kind === "ddpm" && scale < 1) {
    const fullSteps = scaledSampler.sampler === "ddim" ? scaledSampler.steps ?? 50 : timesteps;
    const steps = Math.min(fullSteps, Math.max(MIN_SAMPLING_STEPS, Math.round(fullSteps * scale)));
    scaledSampler = { ...scaledSampler, sampler: "ddim", steps };
  }
  if (entry.kind !== "ddpm") scaledSampler = {};
  const klTerms = Math.max(MIN_SAMPLING_STEPS, Math.round((timesteps - 1) * scale));
  const epochs = entry.budget?.epochs ?? 0;
  const seconds = entry.budget?.seconds;
  return {
    ...entry,
    scale,
    trainImages: (datasetSize) => Math.max(1, Math.round(epochs * datasetSize * scale)),
    scaledSamples,
    scaledSampler,
    bitsPerDim: {
      images: Math.max(MIN_SAMPLES, Math.round(FULL_BPD_IMAGES * scale)),
      timestepStride: Math.max(1, Math.floor((timesteps - 1) / klTerms)),
    },
    ...(seconds === undefined ? {} : { scaledSeconds: seconds * scale }),
  };
}

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

function isPositiveInteger(x: unknown): boolean {
  return typeof x === "number" && Number.isInteger(x) && x > 0;
}
