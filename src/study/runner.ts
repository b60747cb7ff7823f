/**
 * Runs a study plan: for every entry, train (or resume) -> sample N -> FID@N and KID against
 * the reference split, with the train-vs-test floor at the same N, bits/dim for diffusion
 * models, parameter counts, training time and throughput. Each entry lives in its own folder
 * of the run (`entries/<id>/`) and is finished when its `result.json` is written (atomically);
 * a rerun skips finished entries and resumes a half-trained one from its checkpoint.
 *
 * @module
 */
import type { Backend } from "../backend/backend.ts";
import { deriveSeed, Rng } from "../core/rng.ts";
import { type Dataset, loadDataset } from "../data/dataset.ts";
import { DEFAULT_DDPM_CONFIG } from "../diffusion/task.ts";
import { DEFAULT_GAN_CONFIG } from "../gan/task.ts";
import { writeFileAtomic } from "../io/atomic.ts";
import { writeGif } from "../io/gif.ts";
import { decodeImageFile, listImageFiles } from "../io/image.ts";
import { writeImageFolder, writeImageGrid } from "../io/png.ts";
import type { ImageLike } from "../metrics/features.ts";
import { CHECKPOINT_FILE, loadCheckpoint } from "../train/checkpoint.ts";
import { type AnyTask, createTask, type TaskConfig } from "../app/registry.ts";
import { datasetImages, diffusionBitsPerDim } from "../app/evaluate.ts";
import { sampleInChunks } from "../app/sampling.ts";
import { previewLabels } from "../task/preview.ts";
import { train } from "../train/trainer.ts";
import { type Features, type FidScorer, type FidStatus, openFidScorer } from "./evaluate.ts";
import { type ScaledEntry, scaleEntry, type StudyEntry, type StudyPlan } from "./plans.ts";

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

/**
 * Finished entries are re-scored from their saved samples when the FID network now available
 * is better than the one they were scored with (no weights < other weights < the real ones).
 */
const FID_RANK: Record<FidStatus, number> = { "unavailable": 0, "not-comparable": 1, "ok": 2 };

/** Images per grid in the report. */
const GRID_IMAGES = 64;
/** Frames of a GAN's progress GIF (at most; fewer when it trains fewer steps). */
const GIF_FRAMES = 16;

/**
 * Runs (or continues) `plan` in `options.outDir`.
 *
 * @example
 * ```ts ignore
 * const backend = await selectBackend();
 * const run = await runStudy(await resolvePlan("floor"), { backend, outDir: "runs/study", scale: 1, download: true });
 * await writeReport(run, { outDir: "runs/study", planSource: "floor" });
 * ```
 */
export async function runStudy(plan: StudyPlan, options: StudyOptions): Promise<StudyRun> {
  const log = options.log ?? (() => {});
  const started = performance.now();
  const backend = options.backend;
  const selected = options.only
    ? plan.entries.filter((e) => options.only!.includes(e.id))
    : plan.entries;
  const unknown = (options.only ?? []).filter((id) => !plan.entries.some((e) => e.id === id));
  if (unknown.length) {
    throw new Error(
      `--only: no entry ${unknown.join(", ")} in plan ${plan.name} (entries: ${
        plan.entries.map((e) => e.id).join(", ")
      })`,
    );
  }
  await Deno.mkdir(`${options.outDir}/entries`, { recursive: true });
  await writeFileAtomic(`${options.outDir}/plan.json`, JSON.stringify(plan, null, 2) + "\n");
  const scorer = await openFidScorer(backend, {
    weightsPath: options.inceptionWeights,
    download: options.download,
    log,
  });
  log(scorer.note);
  const context: EntryContext = {
    options,
    plan,
    scorer,
    log,
    features: new Map(),
  };
  const results: EntryResult[] = [];
  const skipped: string[] = [];
  const unfinished: string[] = [];
  const failed: { id: string; error: string }[] = [];
  try {
    for (const entry of plan.entries) {
      const dir = entryDir(options.outDir, entry.id);
      const scaled = scaleEntry(entry, options.scale, options.samples);
      const fingerprint = fingerprintOf(scaled, options);
      const previous = await readResult(dir);
      if (previous && previous.fingerprint !== fingerprint) {
        throw new Error(
          `${dir} holds a result of entry '${entry.id}' run with other settings ` +
            `(plan, --scale, --n or --data changed): use another --out, or delete that folder`,
        );
      }
      if (!selected.includes(entry)) {
        if (previous) results.push(previous);
        continue;
      }
      if (previous && FID_RANK[scorer.status] <= FID_RANK[previous.fidStatus]) {
        log(`${entry.id}: done earlier, skipped`);
        skipped.push(entry.id);
        results.push(previous);
        continue;
      }
      if (options.signal?.aborted) {
        unfinished.push(entry.id);
        continue;
      }
      let result: EntryResult | null;
      try {
        result = previous
          ? await rescore(previous, scaled, dir, context)
          : await runEntry(scaled, fingerprint, dir, context);
      } catch (e) {
        // One failing entry (out of memory, a bad config in a custom plan) should not cost
        // the others: record it, go on, and let the report say what failed.
        const message = (e as Error).message;
        log(`${entry.id}: FAILED: ${message}`);
        failed.push({ id: entry.id, error: message });
        continue;
      }
      if (result) {
        await writeFileAtomic(`${dir}/result.json`, JSON.stringify(result, null, 2) + "\n");
        results.push(result);
      } else {
        unfinished.push(entry.id);
      }
    }
  } finally {
    scorer.dispose();
  }
  return {
    plan,
    results,
    skipped,
    fid: { status: scorer.status, note: scorer.note },
    backend: { name: backend.name, device: backend.device, version: backend.version },
    scale: options.scale,
    samples: options.samples ?? null,
    dataSource: options.dataSource ?? null,
    unfinished,
    failed,
    seconds: (performance.now() - started) / 1000,
  };
}

interface EntryContext {
  options: StudyOptions;
  plan: StudyPlan;
  scorer: FidScorer;
  log: (message: string) => void;
  /** Reference/floor features by split, classes and count, shared by the entries. */
  features: Map<string, Promise<Features>>;
}

function fingerprintOf(entry: ScaledEntry, options: StudyOptions): string {
  const { scale: _s, trainImages: _t, ...rest } = entry;
  return JSON.stringify({ entry: rest, scale: options.scale, data: options.dataSource ?? null });
}

async function readResult(dir: string): Promise<EntryResult | null> {
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

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/** `classes` as loadDataset's filter ("all" = every class). */
function classFilter(classes: string): string | undefined {
  return classes === "all" ? undefined : classes;
}

function loadSplit(context: EntryContext, split: "train" | "test", classes: string) {
  return loadDataset({
    source: context.options.dataSource,
    split,
    classes: classFilter(classes),
  });
}

/** Trains, samples and scores one entry; null when interrupted before it finished. */
async function runEntry(
  entry: ScaledEntry,
  fingerprint: string,
  dir: string,
  context: EntryContext,
): Promise<EntryResult | null> {
  const { options, log } = context;
  const base = {
    id: entry.id,
    label: entry.label,
    table: entry.table,
    kind: entry.kind,
    classes: entry.classes,
    conditional: entry.conditional ?? false,
    fingerprint,
    backend: options.backend.name,
  };
  await Deno.mkdir(dir, { recursive: true });
  if (entry.kind === "floor") {
    log(`${entry.id}: train-vs-test FID floor at ${entry.scaledSamples} images`);
    const scores = await scoreGroups(entry, null, context);
    return {
      ...base,
      params: {},
      train: null,
      sampling: null,
      scores,
      fidStatus: context.scorer.status,
      bitsPerDim: null,
      files: {},
      finishedAt: new Date().toISOString(),
    };
  }
  const data = await loadSplit(context, "train", entry.classes);
  const conditional = entry.conditional ?? false;
  if (conditional && data.numClasses < 2) {
    throw new Error(`entry ${entry.id}: a conditional model needs two or more classes`);
  }
  const [channels, height] = data.imageShape;
  const seed = entry.seed ?? 0;
  const fromData = { numClasses: conditional ? data.numClasses : 0, imageSize: height, channels };
  const spec: TaskConfig = entry.kind === "ddpm"
    ? {
      kind: "ddpm",
      config: {
        ...DEFAULT_DDPM_CONFIG,
        cfgDrop: conditional ? DEFAULT_DDPM_CONFIG.cfgDrop : 0,
        ...entry.config,
        ...fromData,
      },
    }
    : { kind: "gan", config: { ...DEFAULT_GAN_CONFIG, ...entry.config, ...fromData } };
  const task = createTask(options.backend, spec, seed);
  try {
    const trained = await trainEntry(task, data, entry, dir, context);
    if (!trained) return null;
    log(`${entry.id}: sampling ${entry.scaledSamples} images${conditional ? " per class" : ""}`);
    const sampling = await sampleEntry(task, data, entry, dir, seed);
    let bpd: EntryResult["bitsPerDim"] = null;
    if (entry.kind === "ddpm") {
      const test = await loadSplit(context, "test", entry.classes);
      const { images, timestepStride } = entry.bitsPerDim;
      log(`${entry.id}: bits/dim on ${Math.min(images, test.size)} test images`);
      const value = diffusionBitsPerDim(task, test, {
        images,
        timestepStride,
        batchSize: Math.min(64, images),
        seed: deriveSeed(seed, 0xb9d),
      });
      bpd = { total: value.total, prior: value.prior, images: value.images, timestepStride };
    }
    const scores = await scoreGroups(entry, `${dir}/fid-samples`, context, data.classNames);
    const params = Object.fromEntries(
      task.modelStores.map((name) => [name, task.stores[name].count()]),
    );
    return {
      ...base,
      params,
      train: trained,
      sampling,
      scores,
      fidStatus: context.scorer.status,
      bitsPerDim: bpd,
      files: {
        grid: `entries/${entry.id}/samples.png`,
        samples: `entries/${entry.id}/fid-samples`,
        checkpoint: `entries/${entry.id}/${CHECKPOINT_FILE}`,
        ...(trained.gif ? { gif: `entries/${entry.id}/progress.gif` } : {}),
      },
      finishedAt: new Date().toISOString(),
    };
  } finally {
    task.dispose();
  }
}

interface TrainProgress {
  /** Training seconds summed over every (resumed) attempt. */
  seconds: number;
  /** Images/s of each attempt, weighted by its images. */
  timedImages: number;
  timedSeconds: number;
  frames: number;
}

/**
 * Trains to the entry's scaled budget, resuming a checkpoint left by an earlier attempt.
 * GANs train in up to {@link GIF_FRAMES} segments with a fixed-noise grid before training and
 * after each segment (the frames of progress.gif), so even a run shorter than an epoch shows
 * its progress; each segment continues exactly from the previous one's checkpoint.
 */
async function trainEntry(
  task: AnyTask,
  data: Dataset,
  entry: ScaledEntry,
  dir: string,
  context: EntryContext,
): Promise<(NonNullable<EntryResult["train"]> & { gif: boolean }) | null> {
  const { options, log } = context;
  const images = entry.trainImages(data.size);
  const batchSize = Math.min(
    entry.batchSize ?? (entry.kind === "gan" ? 128 : 64),
    images,
    data.size,
  );
  const totalSteps = Math.max(1, Math.round(images / batchSize));
  const stepsPerEpoch = Math.max(1, Math.floor(data.size / batchSize));
  const progressPath = `${dir}/progress.json`;
  const progress: TrainProgress = (await exists(progressPath))
    ? JSON.parse(await Deno.readTextFile(progressPath))
    : { seconds: 0, timedImages: 0, timedSeconds: 0, frames: 0 };
  // Input-noise annealing follows step / (the call's total steps): segments would restart
  // it, so a GAN with dNoise trains in one call and its GIF has the epoch previews only.
  const annealed = entry.kind === "gan" && (entry.config?.dNoise ?? 0) > 0;
  const framed = entry.kind === "gan" && !annealed;
  const segments = framed ? Math.min(GIF_FRAMES, totalSteps) : 1;
  const seed = entry.seed ?? 0;
  log(
    `${entry.id}: training ${entry.kind} ${task.config.preset} on ${data.size} ` +
      `${entry.classes} images, ${totalSteps} step${totalSteps === 1 ? "" : "s"} of ${batchSize} ` +
      `(${(totalSteps * batchSize / data.size).toFixed(3)} epochs)`,
  );
  let resume = await exists(`${dir}/${CHECKPOINT_FILE}`);
  let stepBefore = resume ? await checkpointStep(dir) : 0;
  if (framed && !resume) {
    await Deno.mkdir(`${dir}/frames`, { recursive: true });
    await writeFixedNoiseGrid(task, `${dir}/frames/step-${pad(0, 7)}.png`, seed);
  }
  const startSegment = progress.frames;
  for (let segment = startSegment; segment < segments; segment++) {
    const maxSteps = Math.round(((segment + 1) * totalSteps) / segments);
    const remaining = entry.scaledSeconds === undefined
      ? undefined
      : Math.max(0, entry.scaledSeconds - progress.seconds);
    const result = await train(task, data, {
      runDir: dir,
      batchSize,
      epochs: Math.ceil(totalSteps / stepsPerEpoch),
      maxSteps,
      maxSeconds: remaining,
      seed,
      flip: true,
      checkpointEvery: 500,
      previewEvery: framed ? 0 : Math.max(1, Math.round(totalSteps / stepsPerEpoch / 16)),
      previewOptions: task.kind === "ddpm"
        ? { sampler: "ddim", steps: Math.min(50, task.config.timesteps) }
        : undefined,
      gif: !framed && task.kind === "gan",
      resume,
      signal: options.signal,
      report: segmentReport(options.trainerReport, segment > startSegment, segment < segments - 1),
      backendName: options.backend.name,
      source: { data: options.dataSource ?? null, classes: entry.classes },
    });
    resume = true;
    progress.seconds += result.seconds;
    const imagesRun = (result.step - stepBefore) * batchSize;
    if (result.imagesPerSecond > 0 && imagesRun > 0) {
      progress.timedImages += imagesRun;
      progress.timedSeconds += imagesRun / result.imagesPerSecond;
    }
    stepBefore = result.step;
    if (result.interrupted) {
      await writeFileAtomic(progressPath, JSON.stringify(progress));
      log(`${entry.id}: interrupted at step ${result.step}; rerun the study to continue`);
      return null;
    }
    if (framed) {
      await writeFixedNoiseGrid(task, `${dir}/frames/step-${pad(result.step, 7)}.png`, seed);
    }
    progress.frames = segment + 1;
    await writeFileAtomic(progressPath, JSON.stringify(progress));
    if (remaining !== undefined && progress.seconds >= entry.scaledSeconds!) break;
  }
  let gif = false;
  if (framed) {
    const frames = (await listImageFiles(`${dir}/frames`)).sort();
    await writeGif(`${dir}/progress.gif`, await Promise.all(frames.map(decodeImageFile)), {
      delayMs: 400,
    });
    gif = true;
  } else {
    gif = await exists(`${dir}/progress.gif`);
  }
  const steps = await checkpointStep(dir);
  return {
    steps,
    batchSize,
    images: steps * batchSize,
    epochs: (steps * batchSize) / data.size,
    seconds: progress.seconds,
    imagesPerSecond: progress.timedSeconds > 0 ? progress.timedImages / progress.timedSeconds : 0,
    gif,
  };
}

/**
 * The trainer's progress lines for one segment, without the "resumed" line of a segment that
 * continues the previous one and the "done" line of all but the last (the segments are only
 * there to draw GIF frames).
 */
function segmentReport(
  report: StudyOptions["trainerReport"],
  continuesPrevious: boolean,
  moreToCome: boolean,
): (line: string, final: boolean) => void {
  if (!report) return () => {};
  return (line, final) => {
    const hidden = (/^resumed /.test(line) && continuesPrevious) ||
      (/^done: /.test(line) && moreToCome);
    if (!(final && hidden)) report(line, final);
  };
}

/** Optimisation steps recorded in an entry's checkpoint. */
async function checkpointStep(dir: string): Promise<number> {
  const checkpoint = await loadCheckpoint(dir);
  return checkpoint.state.step;
}

function pad(n: number, width: number): string {
  return String(n).padStart(width, "0");
}

/** Grid of the same 64 noise vectors (and class blocks) after every GAN training segment. */
async function writeFixedNoiseGrid(task: AnyTask, path: string, seed: number): Promise<void> {
  const labels = previewLabels(GRID_IMAGES, task.numClasses, 8);
  const images = task.sample(labels, new Rng(deriveSeed(seed, 0x9e71)), {});
  await writeImageGrid(path, images, [GRID_IMAGES, ...task.imageShape], { nrow: 8 });
}

/**
 * Draws the FID samples (per class for conditional models, class after class) into
 * fid-samples/ (one PNG each, what pytorch-fid would read; fid-samples/<class>/ when
 * conditional) and a 64-image grid (class blocks) into samples.png.
 */
async function sampleEntry(
  task: AnyTask,
  data: Dataset,
  entry: ScaledEntry,
  dir: string,
  seed: number,
): Promise<NonNullable<EntryResult["sampling"]>> {
  const n = entry.scaledSamples;
  const groups = task.numClasses > 0 ? task.numClasses : 1;
  const labels = new Int32Array(n * groups);
  for (let g = 0; g < groups; g++) labels.fill(g, g * n, (g + 1) * n);
  const started = performance.now();
  const images = sampleInChunks(
    task,
    labels,
    new Rng(deriveSeed(seed, 0x5a3b)),
    entry.scaledSampler,
    false,
  ); // [groups * n, C, H, W]
  const seconds = (performance.now() - started) / 1000;
  const per = task.imageShape[0] * task.imageShape[1] * task.imageShape[2];
  const gridPerGroup = Math.min(n, Math.floor(GRID_IMAGES / groups));
  const grid = new Float32Array(gridPerGroup * groups * per);
  await Deno.remove(`${dir}/fid-samples`, { recursive: true }).catch(() => {});
  for (let g = 0; g < groups; g++) {
    const part = images.subarray(g * n * per, (g + 1) * n * per);
    const folder = groups > 1 ? `${dir}/fid-samples/${data.classNames[g]}` : `${dir}/fid-samples`;
    await writeImageFolder(folder, part, [n, ...task.imageShape]);
    grid.set(part.subarray(0, gridPerGroup * per), g * gridPerGroup * per);
  }
  await writeImageGrid(`${dir}/samples.png`, grid, [gridPerGroup * groups, ...task.imageShape], {
    nrow: 8,
  });
  return { n, options: entry.scaledSampler, seconds };
}

/**
 * Scores an entry's saved samples (or, for a floor row, training images) per class group
 * against the reference split, with the floor at the same N. Without Inception weights every
 * number is null.
 */
async function scoreGroups(
  entry: ScaledEntry,
  samplesDir: string | null,
  context: EntryContext,
  classNames?: string[],
): Promise<GroupScore[]> {
  const conditional = (entry.conditional ?? false) && classNames !== undefined;
  const groups: (string | null)[] = conditional ? classNames! : [null];
  const scores: GroupScore[] = [];
  for (const className of groups) {
    const classes = className ?? entry.classes;
    const published = typeof entry.published === "number"
      ? entry.published
      : className !== null
      ? entry.published?.[className] ?? null
      : null;
    const n = entry.scaledSamples;
    if (context.scorer.status === "unavailable") {
      scores.push({
        className,
        n,
        referenceN: n,
        fid: null,
        kid: null,
        kidStd: null,
        floor: null,
        published,
      });
      continue;
    }
    const reference = await cachedFeatures(context, context.plan.referenceSplit, classes, n);
    const trainSplit = context.plan.referenceSplit === "test" ? "train" : "test";
    const floorFeatures = await cachedFeatures(context, trainSplit, classes, n);
    const floor = context.scorer.score(floorFeatures, reference);
    let own = floor;
    let ownN = floorFeatures.n;
    if (samplesDir !== null) {
      const folder = className !== null ? `${samplesDir}/${className}` : samplesDir;
      const generated = await context.scorer.features(await readImages(folder), `${entry.id}`);
      own = context.scorer.score(generated, reference);
      ownN = generated.n;
    }
    scores.push({
      className,
      n: ownN,
      referenceN: reference.n,
      fid: own.fid,
      kid: own.kid,
      kidStd: own.kidStd,
      floor: floor.fid,
      published,
    });
  }
  return scores;
}

async function readImages(folder: string): Promise<ImageLike[]> {
  const files = (await listImageFiles(folder)).sort();
  return await Promise.all(files.map(decodeImageFile));
}

function cachedFeatures(
  context: EntryContext,
  split: "train" | "test",
  classes: string,
  n: number,
): Promise<Features> {
  const key = `${split}:${classes}:${n}`;
  let pending = context.features.get(key);
  if (!pending) {
    pending = (async () => {
      const data = await loadSplit(context, split, classes);
      return await context.scorer.features(datasetImages(data, n), `${split} ${classes}`);
    })();
    context.features.set(key, pending);
  }
  return pending;
}

/** Re-scores a finished entry from its saved samples with a better FID network. */
async function rescore(
  previous: EntryResult,
  entry: ScaledEntry,
  dir: string,
  context: EntryContext,
): Promise<EntryResult> {
  context.log(`${entry.id}: scoring the saved samples (FID was ${previous.fidStatus} when it ran)`);
  let classNames: string[] | undefined;
  if (entry.conditional) {
    classNames = (await loadSplit(context, "train", entry.classes)).classNames;
  }
  const scores = await scoreGroups(
    entry,
    entry.kind === "floor" ? null : `${dir}/fid-samples`,
    context,
    classNames,
  );
  return { ...previous, scores, fidStatus: context.scorer.status };
}
