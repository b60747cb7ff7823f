/**
 * The trainer's data-parallel plumbing (see the notes in `trainer.ts`): joining a task to a
 * process group, leaving it, and the one per-step agreement over ranks.
 *
 * @module
 */
import type { ProcessGroup } from "../backend/distributed.ts";
import type { TrainTask } from "../task/task.ts";

/**
 * Makes every rank start from rank 0's state (weights, buffers, optimizer moments) and routes
 * gradient averaging and BatchNorm through the group.
 */
export function joinData(task: TrainTask, group: ProcessGroup): void {
  const tensors = [
    ...Object.values(task.stores).flatMap((store) => store.names().map((n) => store.get(n))),
    ...Object.values(task.optimizers).flatMap((opt) => [...opt.state.m, ...opt.state.v]),
  ];
  group.broadcast(tensors, 0);
  for (const opt of Object.values(task.optimizers)) {
    opt.gradientAverager = {
      valueAndGrad: (lossFn, params) => group.valueAndGradMean(lossFn, params),
      average: (grads) => group.allReduceMean(grads),
    };
  }
  group.syncBatchNorm(true);
}

/** Undoes {@link joinData}: gradients and BatchNorm go back to this process alone. */
export function leaveData(task: TrainTask, group: ProcessGroup): void {
  for (const opt of Object.values(task.optimizers)) opt.gradientAverager = null;
  group.syncBatchNorm(false);
}

/** Mean of each metric over ranks; stop / time-up when any rank asks. */
export function agree(
  group: ProcessGroup,
  metrics: Record<string, number>,
  stop: boolean,
  timeUp: boolean,
): { metrics: Record<string, number>; stop: boolean; timeUp: boolean } {
  const keys = Object.keys(metrics);
  const values = new Float64Array(keys.length + 2);
  keys.forEach((k, i) => values[i] = metrics[k]);
  values[keys.length] = stop ? 1 : 0;
  values[keys.length + 1] = timeUp ? 1 : 0;
  group.allReduceSum(values);
  return {
    metrics: Object.fromEntries(keys.map((k, i) => [k, values[i] / group.worldSize])),
    stop: values[keys.length] > 0,
    timeUp: values[keys.length + 1] > 0,
  };
}
