/**
 * Training one study entry to its scaled budget, in segments for GANs (the frames of their
 * progress GIF), resuming exactly from a checkpoint left by an earlier attempt.
 *
 * @module
 */
import { deriveSeed, Rng } from "../core/rng.ts";
import type { Dataset } from "../data/dataset.ts";
import { writeFileAtomic } from "../io/atomic.ts";
import { writeApng } from "../io/apng.ts";
import { writeGif } from "../io/gif.ts";
import { decodeImageFile, listImageFiles } from "../io/image.ts";
import { writeImageGrid } from "../io/png.ts";
import { CHECKPOINT_FILE, loadCheckpoint } from "../train/checkpoint.ts";
import { DEFAULT_BATCH_SIZE, previewOptions } from "../app/defaults.ts";
import type { AnyTask } from "../app/registry.ts";
import { previewLabels } from "../task/preview.ts";
import { PROGRESS_DELAY_MS } from "../train/preview_grids.ts";
import { train } from "../train/trainer.ts";
import type { ScaledEntry } from "./plans.ts";
import { type EntryContext, type EntryResult, exists, isLead, type StudyOptions } from "./entry.ts";

/** Images per grid in the report. */
export const GRID_IMAGES = 64;
/** Frames of a GAN's progress GIF (at most; fewer when it trains fewer steps). */
export const GIF_FRAMES = 16;

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
 * after each segment (the frames of progress.gif and progress.png), so even a run shorter than an epoch shows
 * its progress; each segment continues exactly from the previous one's checkpoint.
 */
export async function trainEntry(
  task: AnyTask,
  data: Dataset,
  entry: ScaledEntry,
  dir: string,
  context: EntryContext,
): Promise<(NonNullable<EntryResult["train"]> & { gif: boolean }) | null> {
  const { options, log } = context;
  const images = entry.trainImages(data.size);
  const batchSize = Math.min(
    entry.batchSize ?? DEFAULT_BATCH_SIZE[task.kind],
    images,
    data.size,
  );
  const group = options.group;
  const world = group?.worldSize ?? 1;
  const lead = isLead(options);
  if (batchSize % world !== 0) {
    throw new Error(
      `entry ${entry.id}: its batch of ${batchSize} images does not split over ${world} ranks`,
    );
  }
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
  if (framed && !resume && lead) {
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
      batchSize: batchSize / world, // per rank: the plan's batch is the global one
      group,
      epochs: Math.ceil(totalSteps / stepsPerEpoch),
      maxSteps,
      maxSeconds: remaining,
      seed,
      flip: true,
      checkpointEvery: 500,
      previewEvery: framed ? 0 : Math.max(1, Math.round(totalSteps / stepsPerEpoch / 16)),
      previewOptions: previewOptions(task),
      gif: !framed && task.kind === "gan",
      resume,
      signal: options.signal,
      report: segmentReport(options.trainerReport, segment > startSegment, segment < segments - 1),
      backendName: options.backend.name,
      source: { data: options.dataSource ?? null, classes: entry.classes },
    });
    // Rank 0 wrote the checkpoint the next segment (and checkpointStep) reads on every rank.
    group?.barrier();
    resume = true;
    progress.seconds += result.seconds;
    const imagesRun = (result.step - stepBefore) * batchSize;
    if (result.imagesPerSecond > 0 && imagesRun > 0) {
      progress.timedImages += imagesRun;
      progress.timedSeconds += imagesRun / result.imagesPerSecond;
    }
    stepBefore = result.step;
    if (result.interrupted) {
      if (lead) await writeFileAtomic(progressPath, JSON.stringify(progress));
      log(`${entry.id}: interrupted at step ${result.step}; rerun the study to continue`);
      return null;
    }
    if (framed && lead) {
      await writeFixedNoiseGrid(task, `${dir}/frames/step-${pad(result.step, 7)}.png`, seed);
    }
    progress.frames = segment + 1;
    if (lead) await writeFileAtomic(progressPath, JSON.stringify(progress));
    if (remaining !== undefined && progress.seconds >= entry.scaledSeconds!) break;
  }
  let gif = false;
  if (framed && lead) {
    const frames = (await listImageFiles(`${dir}/frames`)).sort();
    const images = await Promise.all(frames.map(decodeImageFile));
    // The same pair the trainer writes (../train/preview_grids.ts): small GIF, exact APNG.
    await writeGif(`${dir}/progress.gif`, images, { delayMs: PROGRESS_DELAY_MS });
    await writeApng(`${dir}/progress.png`, images, { delayMs: PROGRESS_DELAY_MS });
    gif = true;
  } else {
    gif = framed || await exists(`${dir}/progress.gif`);
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
export async function checkpointStep(dir: string): Promise<number> {
  const checkpoint = await loadCheckpoint(dir);
  return checkpoint.state.step;
}

function pad(n: number, width: number): string {
  return String(n).padStart(width, "0");
}

/** Grid of the same 64 noise vectors (and class blocks) after every GAN training segment. */
export async function writeFixedNoiseGrid(
  task: AnyTask,
  path: string,
  seed: number,
): Promise<void> {
  const labels = previewLabels(GRID_IMAGES, task.numClasses, 8);
  const images = task.sample(labels, new Rng(deriveSeed(seed, 0x9e71)), {});
  await writeImageGrid(path, images, [GRID_IMAGES, ...task.imageShape], { nrow: 8 });
}
