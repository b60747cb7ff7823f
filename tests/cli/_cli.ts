/**
 * What the CLI tests share: the CLI runner of tests/_cli.ts, and a run folder holding a freshly
 * initialised model, as `train` leaves one.
 *
 * @module
 */
import { createTask, type TaskConfig } from "../../src/app/registry.ts";
import type { Backend } from "../../src/backend/backend.ts";
import { Rng } from "../../src/core/rng.ts";
import { saveCheckpoint } from "../../src/train/checkpoint.ts";

export { CLI, type CliRun, runCli, spawnCli } from "../_cli.ts";

/** Writes `dir` as a run folder of an untrained model of `spec` (seed 3, one step planned). */
export async function makeFreshRun(
  backend: Backend,
  dir: string,
  spec: TaskConfig,
  batchSize = 8,
): Promise<void> {
  using task = createTask(backend, spec, 3);
  await Deno.mkdir(dir, { recursive: true });
  await saveCheckpoint(dir, task, {
    step: 0,
    epoch: 0,
    rng: new Rng(1).state(),
    backend: backend.name,
    train: {
      batchSize,
      epochs: 1,
      maxSteps: null,
      seed: 3,
      flip: false,
      stepsPerEpoch: 1,
      totalSteps: 1,
    },
  });
}
