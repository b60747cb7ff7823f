/**
 * What the parts of the study runner share: the result records written per entry, the
 * options of a run, the context every entry sees, and the entry folders on disk.
 *
 * @module
 */
import type { Backend } from "../backend/backend.ts";
import { loadDataset } from "../data/load.ts";
import type { Activations } from "../metrics/features.ts";
import type { FidScorer, FidStatus } from "./evaluate.ts";
import type { ScaledEntry, StudyEntry, StudyPlan } from "./plans.ts";

/** FID/KID of one class group (or all classes) of an entry. */
export interface GroupScore {
  /** Class name for per-class scores of conditional models; null for the whole entry. */
  className: string | null;
  /** Generated (or, for floor rows, training) images scored. */
  n: number;
  /** Reference images they were compared with. */
  referenceN: number;
  fid: number | null;
  kid: number | null;
  kidStd: number | null;
  /** Train-vs-test FID at the same N and classes. */
  floor: number | null;
  published: number | null;
}

/** Everything measured for one entry (its `result.json`). */
export interface EntryResult {
  id: string;
  label: string;
  table: string;
  kind: StudyEntry["kind"];
  classes: string;
  conditional: boolean;
  /** The entry and scaling it was run with; a rerun with other settings refuses the folder. */
  fingerprint: string;
  backend: string;
  /** Trainable parameters: `model` (diffusion) or `generator` + `discriminator` (GAN). */
  params: Record<string, number>;
  train: {
    steps: number;
    batchSize: number;
    images: number;
    epochs: number;
    seconds: number;
    imagesPerSecond: number;
  } | null;
  sampling: { n: number; options: Record<string, unknown>; seconds: number } | null;
  scores: GroupScore[];
  fidStatus: FidStatus;
  bitsPerDim: { total: number; prior: number; images: number; timestepStride: number } | null;
  /** Paths relative to the run folder. */
  files: { grid?: string; gif?: string; samples?: string; checkpoint?: string };
  finishedAt: string;
}

/** Options of {@link runStudy}. */
export interface StudyOptions {
  backend: Backend;
  /** Run folder (created); holds entries/, report.md, report.json. */
  outDir: string;
  /** Budget multiplier in (0, 1]. */
  scale: number;
  /** Samples per entry (per class when conditional), replacing the scaled plan value. */
  samples?: number;
  /** `--data`: CIFAR-10 binary folder or image folder (else env / cache / download). */
  dataSource?: string;
  /** `--inception-weights`. */
  inceptionWeights?: string;
  /** Allow downloading the Inception weights. */
  download: boolean;
  /** Run only these entry ids. */
  only?: string[];
  /** Progress messages (stderr in the CLI). */
  log?: (message: string) => void;
  /** Per-step progress line of the trainer. */
  trainerReport?: (line: string, final: boolean) => void;
  /** Stops training (with a checkpoint) between steps; the entry stays unfinished. */
  signal?: AbortSignal;
}

/** Result of {@link runStudy}. */
export interface StudyRun {
  plan: StudyPlan;
  results: EntryResult[];
  /** Entry ids that were already finished and skipped. */
  skipped: string[];
  fid: { status: FidStatus; note: string };
  backend: { name: string; device: string; version: string };
  scale: number;
  samples: number | null;
  dataSource: string | null;
  /** Entries still unfinished (interrupted). */
  unfinished: string[];
  /** Entries that threw, with the error; rerunning retries them. */
  failed: { id: string; error: string }[];
  seconds: number;
}

/** Folder of an entry inside the run folder. */
export function entryDir(outDir: string, id: string): string {
  return `${outDir}/entries/${id}`;
}

export interface EntryContext {
  options: StudyOptions;
  plan: StudyPlan;
  scorer: FidScorer;
  log: (message: string) => void;
  /** Reference/floor features by split, classes and count, shared by the entries. */
  features: Map<string, Promise<Activations>>;
}

export function fingerprintOf(entry: ScaledEntry, options: StudyOptions): string {
  const { scale: _s, trainImages: _t, ...rest } = entry;
  return JSON.stringify({ entry: rest, scale: options.scale, data: options.dataSource ?? null });
}

export async function readResult(dir: string): Promise<EntryResult | null> {
  let text: string;
  try {
    text = await Deno.readTextFile(`${dir}/result.json`);
  } catch {
    return null;
  }
  try {
    return JSON.parse(text) as EntryResult;
  } catch (e) {
    throw new Error(
      `${dir}/result.json is corrupt (${(e as Error).message}): delete it to rerun the entry`,
    );
  }
}

export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/** `classes` as loadDataset's filter ("all" = every class). */
export function classFilter(classes: string): string | undefined {
  return classes === "all" ? undefined : classes;
}

export function loadSplit(context: EntryContext, split: "train" | "test", classes: string) {
  return loadDataset({
    source: context.options.dataSource,
    split,
    classes: classFilter(classes),
  });
}
