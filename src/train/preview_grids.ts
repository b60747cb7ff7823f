/**
 * A run's preview grids: sampling one (fixed noise per run), the file name of the grid of a
 * training step, removing the grids a resume will redo, and the progress animations built from
 * them.
 *
 * @module
 */
import { deriveSeed, Rng } from "../core/rng.ts";
import { decodeImageFile, listImageFiles } from "../io/image.ts";
import { writeApng } from "../io/apng.ts";
import { writeGif } from "../io/gif.ts";
import { writeImageGrid } from "../io/png.ts";
import { previewLabels } from "../task/preview.ts";
import type { SampleOptionsOf, TrainTask } from "../task/task.ts";

/**
 * Samples `n` images with `task` and writes them as a grid PNG at `path` (folder created). The
 * noise is fixed by `seed` alone, so every preview of a run shows the same samples evolving.
 *
 * @example
 * ```ts ignore
 * await writePreview(task, gridPath(runDir, step, stepsPerEpoch), 64, seed, previewOptions);
 * ```
 */
export async function writePreview<T extends TrainTask>(
  task: T,
  path: string,
  n: number,
  seed: number,
  sampleOptions?: SampleOptionsOf<T>,
): Promise<void> {
  const labels = previewLabels(n, task.numClasses);
  // Fixed noise for every preview, so the GIF shows the same samples evolving.
  const rng = new Rng(deriveSeed(seed, 0x9e71));
  const images = task.sample(labels, rng, sampleOptions); // [n, C, H, W]
  await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
  await writeImageGrid(path, images, [n, ...task.imageShape], { nrow: 8 });
}

/**
 * The preview grid of training step `step`: `epoch-EEEE.png` when an epoch just ended, else
 * `step-SSSSSSSS.png` (a run that stopped mid-epoch).
 *
 * @example
 * ```ts
 * import { gridPath } from "./preview_grids.ts";
 * console.log(gridPath("runs/a", 20, 10), gridPath("runs/a", 25, 10));
 * // runs/a/samples/epoch-0002.png runs/a/samples/step-00000025.png
 * ```
 */
export function gridPath(runDir: string, step: number, stepsPerEpoch: number): string {
  return step % stepsPerEpoch === 0
    ? `${runDir}/samples/epoch-${String(step / stepsPerEpoch).padStart(4, "0")}.png`
    : `${runDir}/samples/step-${String(step).padStart(8, "0")}.png`;
}

/** The training step a preview grid's file name stands for; null for other files. */
function gridStep(file: string, stepsPerEpoch: number): number | null {
  const m = file.match(/(epoch|step)-(\d+)\.png$/);
  if (!m) return null;
  return m[1] === "epoch" ? Number(m[2]) * stepsPerEpoch : Number(m[2]);
}

/**
 * Deletes the mid-epoch grids in `dir` from after `step`: they belong to a future this resume
 * will redo. A missing folder is fine.
 *
 * @example
 * ```ts ignore
 * await removeLaterGrids(`${runDir}/samples`, resumedStep);
 * ```
 */
export async function removeLaterGrids(dir: string, step: number): Promise<void> {
  let files: string[];
  try {
    files = await listImageFiles(dir);
  } catch {
    return;
  }
  for (const f of files) {
    const m = f.match(/step-(\d+)\.png$/);
    if (m && Number(m[1]) > step) await Deno.remove(f).catch(() => {});
  }
}

/** How long each preview grid shows in the progress animations. */
export const PROGRESS_DELAY_MS = 400;

/**
 * Builds the progress animations from the preview grids in runDir/samples, in training order
 * (epoch grids and mid-epoch `step-` grids interleaved by the step they show): progress.gif
 * (small, plays everywhere, ~256 colours a frame) and progress.png, an animated PNG with the
 * grids' exact pixels. Nothing is written when there are no grids.
 *
 * @example
 * ```ts ignore
 * await writeProgressAnimations("runs/cifar-ddpm", stepsPerEpoch); // progress.gif and progress.png
 * ```
 */
export async function writeProgressAnimations(runDir: string, stepsPerEpoch = 1): Promise<void> {
  let files: string[];
  try {
    files = await listImageFiles(`${runDir}/samples`);
  } catch {
    return;
  }
  const grids = files
    .map((f) => ({ f, step: gridStep(f, stepsPerEpoch) }))
    .filter((g): g is { f: string; step: number } => g.step !== null)
    .sort((a, b) => a.step - b.step || a.f.localeCompare(b.f))
    .map((g) => g.f);
  if (grids.length === 0) return;
  const frames = await Promise.all(grids.map((f) => decodeImageFile(f)));
  await writeGif(`${runDir}/progress.gif`, frames, { delayMs: PROGRESS_DELAY_MS });
  await writeApng(`${runDir}/progress.png`, frames, { delayMs: PROGRESS_DELAY_MS });
}
