/**
 * A run's training data, found again from anywhere: a new run records the resolved, absolute
 * location of its data and a fingerprint of the images it loaded (`DataSourceRecord`), so
 * `--resume` and `eval` work from any working folder, a moved data set can be named with
 * `--data` (same fingerprint), and a changed one is refused before it silently breaks exact
 * resume.
 *
 * @module
 */
import { CIFAR10_CLASSES } from "../data/cifar10.ts";
import type { Dataset } from "../data/dataset.ts";
import { datasetFingerprint } from "../data/fingerprint.ts";
import { listClassFolders } from "../data/image_folder.ts";
import { loadDataset } from "../data/load.ts";
import { resolveDataSource } from "../data/source.ts";
import type { DataSourceRecord } from "../train/checkpoint.ts";

/** The class a CIFAR-10 run trains on when no `--classes` is given. */
export const DEFAULT_CIFAR10_CLASSES = "cat";

/** Raised when a run's data cannot be found again, or is not the data it trained on. */
export class TrainingDataError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "TrainingDataError";
  }
}

/**
 * True when `source` (`--data`, else `$DENO_DIFFUSION_DATA`, else the cache or a download)
 * is CIFAR-10: the binary release, or an image folder with exactly its ten classes.
 *
 * @example
 * ```ts ignore
 * await isCifar10Source("../shared/data/cifar10-jpg"); // true
 * ```
 */
export async function isCifar10Source(source?: string): Promise<boolean> {
  const resolved = await resolveDataSource(source);
  if (resolved.kind !== "image-folder") return true;
  const classes = await listClassFolders(resolved.path, "train");
  return classes.length === CIFAR10_CLASSES.length &&
    classes.every((name, i) => name === CIFAR10_CLASSES[i]);
}

/**
 * Loads the training split for a new run and the record that finds it again. Without
 * `classes`, CIFAR-10 trains on {@link DEFAULT_CIFAR10_CLASSES} and any other folder on all of
 * its classes.
 *
 * @example
 * ```ts ignore
 * const { dataset, record } = await loadTrainingData({ data: "data/pets", imageSize: 32 });
 * console.log(record.path, record.fingerprint);
 * ```
 */
export async function loadTrainingData(
  options: { data?: string; classes?: string; imageSize?: number },
): Promise<{ dataset: Dataset; record: DataSourceRecord }> {
  const classes = options.classes ??
    (await isCifar10Source(options.data) ? DEFAULT_CIFAR10_CLASSES : undefined);
  const dataset = await loadDataset({
    source: options.data,
    split: "train",
    classes,
    imageSize: options.imageSize,
  });
  return {
    dataset,
    record: {
      data: options.data ?? null,
      classes: classes ?? dataset.classNames.join(","),
      classNames: dataset.classNames,
      ...(dataset.location ? { path: dataset.location } : {}),
      fingerprint: datasetFingerprint(dataset),
    },
  };
}

/**
 * Where a recorded run's data is read from: `override` (`--data`) when given, else the
 * recorded absolute location, else (runs from before locations were recorded) the flag as it
 * was typed.
 *
 * @example
 * ```ts
 * import { recordedDataLocation } from "./training_data.ts";
 * recordedDataLocation({ data: "data", classes: "cat", path: "/home/me/data" }); // "/home/me/data"
 * ```
 */
export function recordedDataLocation(
  record: DataSourceRecord | undefined,
  override?: string,
): string | undefined {
  return override ?? record?.path ?? record?.data ?? undefined;
}

/**
 * Loads a recorded run's training split again (for `--resume`), from `override` (`--data`)
 * or the recorded location, and checks it is the data the run trained on.
 *
 * @example
 * ```ts ignore
 * const data = await reloadTrainingData(ckpt.state.train.source, { imageSize: 32 });
 * ```
 */
export async function reloadTrainingData(
  record: DataSourceRecord | undefined,
  options: { override?: string; imageSize?: number } = {},
): Promise<Dataset> {
  const location = recordedDataLocation(record, options.override);
  const flag = options.override !== undefined ? `--data ${options.override}` : undefined;
  if (location !== undefined && location !== "cifar10") {
    try {
      await Deno.stat(location);
    } catch {
      throw new TrainingDataError(
        flag ? `${flag}: no such file or folder` : `the run's data at ${location} is gone; ` +
          `if it moved, pass --data NEW_LOCATION (it is checked against the recorded fingerprint)`,
      );
    }
  }
  const where = flag ?? `the run's data at ${location ?? "the CIFAR-10 cache"}`;
  let dataset: Dataset;
  try {
    dataset = await loadDataset({
      source: location,
      split: "train",
      classes: record?.classes ?? DEFAULT_CIFAR10_CLASSES,
      imageSize: options.imageSize,
    });
  } catch (e) {
    // E.g. a class the run trained on is missing: this is not the run's data.
    throw new TrainingDataError(
      `${where} cannot be the data this run trained on: ${(e as Error).message}`,
    );
  }
  const want = record?.fingerprint;
  if (want !== undefined) {
    const got = datasetFingerprint(dataset);
    if (got !== want) {
      const [wantShape, gotShape] = [want, got].map((f) => f.split(":")[0]);
      const reason = wantShape !== gotShape
        ? `it has ${describe(gotShape)}, the run trained on ${describe(wantShape)}`
        : "the same number of images, but different pixels, labels or class names";
      throw new TrainingDataError(
        `${where} is not the data ` +
          `this run trained on: ${reason} (fingerprint ${got}, recorded ${want}). Exact resume ` +
          `needs the same images; point --data at them, or start a new run`,
      );
    }
  }
  return dataset;
}

function describe(shape: string): string {
  const [count, c, h, w] = shape.split("x");
  return `${count} images of ${c}x${h}x${w}`;
}
