/**
 * Sampling and scoring one study entry: FID samples per class, the report's grid, FID/KID per
 * class group against the reference split with the train-vs-test floor, and re-scoring of
 * finished entries when a better FID network appears.
 *
 * @module
 */
import { deriveSeed } from "../core/rng.ts";
import type { Dataset } from "../data/dataset.ts";
import { decodeImageFile, listImageFiles } from "../io/image.ts";
import { writeFileAtomic } from "../io/atomic.ts";
import type { DecodedImage } from "../io/image.ts";
import { encodePng, makeGrid } from "../io/png.ts";
import type { FeatureMatrix, ImageLike } from "../metrics/features.ts";
import type { AnyTask } from "../app/registry.ts";
import { datasetImages } from "../app/evaluate.ts";
import { sampleToFolder } from "../app/sampling.ts";
import type { SampleGroup } from "../app/sample_ranks.ts";
import type { ScaledEntry } from "./plans.ts";
import { type EntryContext, type EntryResult, type GroupScore, loadSplit } from "./entry.ts";
import { GRID_IMAGES } from "./train_entry.ts";

/**
 * Draws the FID samples (per class for conditional models, class after class) into
 * fid-samples/ (one PNG each, what pytorch-fid would read; fid-samples/<class>/ when
 * conditional) and a 64-image grid (class blocks) into samples.png.
 */
export async function sampleEntry(
  task: AnyTask,
  data: Dataset,
  entry: ScaledEntry,
  dir: string,
  seed: number,
  group?: SampleGroup,
): Promise<NonNullable<EntryResult["sampling"]>> {
  const n = entry.scaledSamples;
  const groups = task.numClasses > 0 ? task.numClasses : 1;
  const labels = new Int32Array(n * groups);
  for (let g = 0; g < groups; g++) labels.fill(g, g * n, (g + 1) * n);
  const started = performance.now();
  const gridPerGroup = Math.min(n, Math.floor(GRID_IMAGES / groups));
  const grid: DecodedImage[] = [];
  for (let g = 0; g < groups; g++) {
    const folder = groups > 1 ? `${dir}/fid-samples/${data.classNames[g]}` : `${dir}/fid-samples`;
    // Streamed and resumable: a rerun after a crash tops the folder up with the same images;
    // samples of an older model or plan are replaced.
    const { kept } = await sampleToFolder(task, folder, {
      labels: labels.subarray(g * n, (g + 1) * n),
      seed: deriveSeed(seed, 0x5a3b),
      first: g * n,
      options: entry.scaledSampler,
      existing: "replace-different",
      keep: gridPerGroup,
      group,
    });
    grid.push(...kept);
  }
  const seconds = (performance.now() - started) / 1000;
  // Rank 0 holds the grid tiles (and writes every file of a job).
  if ((group?.rank ?? 0) === 0) {
    await writeFileAtomic(`${dir}/samples.png`, encodePng(makeGrid(grid, { nrow: 8 })));
  }
  return { n, options: entry.scaledSampler, seconds };
}

/**
 * Scores an entry's saved samples (or, for a floor row, training images) per class group
 * against the reference split, with the floor at the same N. Without Inception weights every
 * number is null.
 */
export async function scoreGroups(
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

export function cachedFeatures(
  context: EntryContext,
  split: "train" | "test",
  classes: string,
  n: number,
): Promise<FeatureMatrix> {
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
export async function rescore(
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
