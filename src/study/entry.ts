/**
 * What the parts of the study runner share: the result records written per entry, the
 * options of a run, the context every entry sees, and the entry folders on disk.
 *
 * @module
 */
import type { Backend } from "../backend/backend.ts";
import type { ProcessGroup } from "../backend/distributed.ts";
import { loadDataset } from "../data/load.ts";
import type { FeatureMatrix } from "../metrics/features.ts";
import type { FidStatus, StudyScorer } from "./evaluate.ts";
import type { ScaledEntry, StudyEntry, StudyPlan } from "./plans.ts";

/** FID/KID of one class group (or all classes) of an entry. */
export interface GroupScore {
  /** Class name for per-class scores of conditional models; null for the whole entry. */
  className: string | null;
  /** Generated (or, for floor rows, training) images scored. */
  n: number;
  /** Reference images they were compared with. */
  referenceN: number;
  /** Fréchet Inception Distance, or null when not scored. */
  fid: number | null;
  /** Kernel Inception Distance (mean over subsets), or null. */
  kid: number | null;
  /** Standard deviation of KID over the subsets, or null. */
  kidStd: number | null;
  /** Train-vs-test FID at the same N and classes. */
  floor: number | null;
  /** The published FID this row is compared with, if any. */
  published: number | null;
}

/** Everything measured for one entry (its `result.json`). */
export interface EntryResult {
  /** The entry's id in the plan. */
  id: string;
  /** Its row label in the report. */
  label: string;
  /** The report table it belongs to. */
  table: string;
  /** Diffusion, GAN or floor. */
  kind: StudyEntry["kind"];
  /** The classes it was trained and scored on, as given in the plan. */
  classes: string;
  /** Whether the model was class-conditional. */
  conditional: boolean;
  /** The entry and scaling it was run with; a rerun with other settings refuses the folder. */
  fingerprint: string;
  /** The backend it ran on. */
  backend: string;
  /** Trainable parameters: `model` (diffusion) or `generator` + `discriminator` (GAN). */
  params: Record<string, number>;
  /** What training did (null for floor rows). */
  train: {
    steps: number;
    batchSize: number;
    images: number;
    epochs: number;
    seconds: number;
    imagesPerSecond: number;
  } | null;
  /** How many images were sampled, with which options, in how long (null for floor rows). */
  sampling: { n: number; options: Record<string, unknown>; seconds: number } | null;
  /** FID/KID for the whole entry and, when conditional, per class. */
  scores: GroupScore[];
  /** Whether the scores are comparable with pytorch-fid. */
  fidStatus: FidStatus;
  /** The diffusion model's bound in bits/dim, when evaluated. */
  bitsPerDim: { total: number; prior: number; images: number; timestepStride: number } | null;
  /** Paths relative to the run folder. */
  files: { grid?: string; gif?: string; samples?: string; checkpoint?: string };
  /** ISO time the entry finished. */
  finishedAt: string;
}

/** Options of {@link runStudy}. */
export interface StudyOptions {
  /** The backend every entry runs on. */
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
  /**
   * A data-parallel job (`study --nproc`): every rank runs the study; training, sampling and
   * FID features are split over the ranks and rank 0 alone writes the run folder. A plan's
   * batch size stays the global batch (it must divide by the ranks), so the numbers are one
   * process's.
   */
  group?: ProcessGroup;
}

/** Result of {@link runStudy}. */
export interface StudyRun {
  /** The plan that was run. */
  plan: StudyPlan;
  /** One result per finished entry, in plan order. */
  results: EntryResult[];
  /** Entry ids that were already finished and skipped. */
  skipped: string[];
  /** How FID was scored, with a sentence for the report. */
  fid: { status: FidStatus; note: string };
  /** The backend it ran on. */
  backend: { name: string; device: string; version: string };
  /** The scale factor applied to every entry's budget. */
  scale: number;
  /** Images sampled per entry when overridden, else null. */
  samples: number | null;
  /** Where the data came from, for the report. */
  dataSource: string | null;
  /** Entries still unfinished (interrupted). */
  unfinished: string[];
  /** Entries that threw, with the error; rerunning retries them. */
  failed: { id: string; error: string }[];
  /** Wall time of this call, in seconds. */
  seconds: number;
}

/** Folder of an entry inside the run folder. */
export function entryDir(outDir: string, id: string): string {
  return `${outDir}/entries/${id}`;
}

export interface EntryContext {
  options: StudyOptions;
  plan: StudyPlan;
  scorer: StudyScorer;
  log: (message: string) => void;
  /** Reference/floor features by split, classes and count, shared by the entries. */
  features: Map<string, Promise<FeatureMatrix>>;
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

/** Whether this process writes the run folder (rank 0 of a job, or the only process). */
export function isLead(options: StudyOptions): boolean {
  return (options.group?.rank ?? 0) === 0;
}
