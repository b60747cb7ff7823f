/**
 * Creates the right {@link TrainTask} for a kind and config, and reopens checkpoints, so the
 * CLI, the study and library users never switch on the model family themselves.
 *
 * @module
 */
import type { Backend } from "../backend/backend.ts";
import { Rng } from "../core/rng.ts";
import { createDdpmTask, type DdpmConfig } from "../diffusion/task.ts";
import { createGanTask, type GanConfig } from "../gan/task.ts";
import {
  CheckpointError,
  loadCheckpoint,
  type LoadedCheckpoint,
  restoreTask,
} from "../train/checkpoint.ts";
import type { TrainTask } from "../task/task.ts";

/** Model families. */
export type TaskKind = TrainTask["kind"];

/** Builds a fresh task; weights are drawn from `seed`. */
export function createTask(
  backend: Backend,
  kind: TaskKind,
  config: Record<string, unknown>,
  seed: number,
): TrainTask {
  const rng = new Rng(seed);
  switch (kind) {
    case "ddpm":
      return createDdpmTask(backend, config as unknown as DdpmConfig, rng);
    case "gan":
      return createGanTask(backend, config as unknown as GanConfig, rng);
    default:
      throw new CheckpointError(`unknown model kind '${kind}': expected ddpm or gan`);
  }
}

/**
 * Opens a run folder or checkpoint file as a ready task with its trained weights.
 *
 * @example
 * ```ts ignore
 * const { task } = await openCheckpoint(backend, "runs/ddpm-cat");
 * const images = task.sample(new Int32Array(16), new Rng(0), { sampler: "ddim", steps: 50 });
 * ```
 */
export async function openCheckpoint(
  backend: Backend,
  runOrFile: string,
  expectKind?: TaskKind,
): Promise<{ task: TrainTask; checkpoint: LoadedCheckpoint }> {
  const checkpoint = await loadCheckpoint(runOrFile);
  const { kind, config } = checkpoint.state;
  if (expectKind && kind !== expectKind) {
    throw new CheckpointError(
      `${checkpoint.path} holds a ${kind === "gan" ? "GAN" : "diffusion"} model, ` +
        `but this needs a ${expectKind === "gan" ? "GAN" : "diffusion"} checkpoint`,
    );
  }
  const task = createTask(backend, kind, config, 0);
  try {
    restoreTask(task, checkpoint);
  } catch (e) {
    task.dispose();
    throw e;
  }
  return { task, checkpoint };
}
