/**
 * The trainer's data-parallel plumbing (see the notes in `trainer.ts`): joining a task to a
 * process group, leaving it, and the one per-step agreement over ranks, which also carries
 * rank 0's write failures so that every rank stops at the next step rather than at the end.
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

/**
 * What rank 0 tells the others about its writes at each agreement: the write that failed
 * (null: none) and the step of its last checkpoint that was written whole (null: none yet).
 * The other ranks pass {@link NO_WRITES}; only rank 0's values count.
 */
export interface WriteState {
  failed: Rank0Write | null;
  checkpointStep: number | null;
}

/** What a non-zero rank contributes to the write part of an agreement. */
export const NO_WRITES: WriteState = { failed: null, checkpointStep: null };

/** The files rank 0 writes for the job; the index travels in the agreement. */
export const RANK0_WRITES = [
  "log.jsonl",
  "a preview grid",
  "the checkpoint",
  "progress.gif",
] as const;

/** One of {@link RANK0_WRITES}. */
export type Rank0Write = typeof RANK0_WRITES[number];

/** Mean of each metric over ranks; stop / time-up when any rank asks; rank 0's writes. */
export function agree(
  group: ProcessGroup,
  metrics: Record<string, number>,
  stop: boolean,
  timeUp: boolean,
  writes: WriteState = NO_WRITES,
): { metrics: Record<string, number>; stop: boolean; timeUp: boolean; writes: WriteState } {
  const keys = Object.keys(metrics);
  const values = new Float64Array(keys.length + 4);
  keys.forEach((k, i) => values[i] = metrics[k]);
  values[keys.length] = stop ? 1 : 0;
  values[keys.length + 1] = timeUp ? 1 : 0;
  values.set(encodeWrites(group, writes), keys.length + 2);
  group.allReduceSum(values);
  return {
    metrics: Object.fromEntries(keys.map((k, i) => [k, values[i] / group.worldSize])),
    stop: values[keys.length] > 0,
    timeUp: values[keys.length + 1] > 0,
    writes: decodeWrites(values.subarray(keys.length + 2)),
  };
}

/**
 * Rank 0's {@link WriteState}, known to every rank: one all-reduce, for the end of a run, where
 * no step's agreement follows the last writes.
 */
export function agreeWrites(group: ProcessGroup, writes: WriteState): WriteState {
  const values = encodeWrites(group, writes);
  group.allReduceSum(values);
  return decodeWrites(values);
}

/** [failed write + 1 (0: none), checkpoint step + 1 (0: none)], zeros off rank 0. */
function encodeWrites(group: ProcessGroup, writes: WriteState): Float64Array {
  if (group.rank !== 0) return new Float64Array(2);
  const failed = writes.failed === null ? 0 : RANK0_WRITES.indexOf(writes.failed) + 1;
  return Float64Array.of(failed, writes.checkpointStep === null ? 0 : writes.checkpointStep + 1);
}

function decodeWrites(values: Float64Array): WriteState {
  return {
    failed: values[0] > 0 ? RANK0_WRITES[values[0] - 1] : null,
    checkpointStep: values[1] > 0 ? values[1] - 1 : null,
  };
}

/**
 * Rank 0 could not write one of the job's files: every rank stops with this error at the next
 * agreement. Rank 0's names the path and the cause; the others' say where to look.
 */
export class RankWriteError extends Error {
  constructor(
    readonly write: Rank0Write,
    readonly step: number,
    readonly checkpointStep: number | null,
    runDir: string,
    cause?: { path: string; error: unknown },
  ) {
    const what = cause
      ? `${write} (${cause.path}): ${errorText(cause.error)}`
      : `${write} (its error is in rank 0's output)`;
    const kept = checkpointStep === null
      ? "no checkpoint had been written yet"
      : `the last good checkpoint (step ${checkpointStep}) in ${runDir} is intact`;
    super(
      `rank 0 could not write ${what}. Every rank stopped after step ${step}; ${kept}. ` +
        `Free space or make the run folder writable, then continue with --resume`,
    );
    this.name = "RankWriteError";
  }
}

/**
 * Rank 0's writes during a run. Alone, a failed write throws at once. In a job the other ranks
 * would only notice at the end (or wait in a collective until it times out), so rank 0 keeps
 * the failure and writes nothing more, and every rank throws a {@link RankWriteError} at the
 * next agreement ({@link LeadWrites.state} goes into it, {@link LeadWrites.stopIfFailed} reads
 * the result).
 *
 * @example
 * ```ts
 * import { LeadWrites } from "./data_parallel.ts";
 * const writes = new LeadWrites(true, 1, null);
 * console.log(await writes.run("log.jsonl", "log.jsonl", () => Promise.resolve())); // true
 * ```
 */
export class LeadWrites {
  #failed: { write: Rank0Write; path: string; error: unknown } | undefined;

  /** `checkpointStep`: the step of the last checkpoint written whole (null: none yet). */
  constructor(
    readonly lead: boolean,
    readonly world: number,
    public checkpointStep: number | null,
  ) {}

  /** Runs rank 0's write `fn` of `what` at `path`; false when skipped (not rank 0) or failed. */
  async run(what: Rank0Write, path: string, fn: () => Promise<unknown>): Promise<boolean> {
    if (!this.lead || this.#failed) return false;
    try {
      await fn();
      return true;
    } catch (error) {
      if (this.world === 1) throw error;
      this.#failed = { write: what, path, error };
      return false;
    }
  }

  /** What this rank contributes to an agreement. */
  state(): WriteState {
    return this.lead
      ? { failed: this.#failed?.write ?? null, checkpointStep: this.checkpointStep }
      : NO_WRITES;
  }

  /** Throws the {@link RankWriteError} when the agreed state says rank 0 failed a write. */
  stopIfFailed(agreed: WriteState, step: number, runDir: string): void {
    if (agreed.failed === null) return;
    const cause = this.#failed && { path: this.#failed.path, error: this.#failed.error };
    throw new RankWriteError(agreed.failed, step, agreed.checkpointStep, runDir, cause);
  }
}

function errorText(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split("\n")[0];
}
