/**
 * The one training loop, shared by DDPM and the DCGAN: seeded data order, checkpoints written
 * atomically every N steps and on Ctrl-C, exact resume, one JSON log line per logged step,
 * a progress line, preview grids every N epochs (and one where a run stops mid-epoch) and a GIF
 * of them at the end.
 *
 * Data parallelism (`options.group`, PyTorch DDP semantics): `batchSize` is per rank and the
 * global batch is batchSize x worldSize. Batch `i` of epoch `e` is positions
 * [i * global, (i + 1) * global) of the seeded epoch order, rank r taking its slice
 * [r * batchSize, (r + 1) * batchSize), and the tasks draw their per-image randomness for the
 * whole global batch (see {@link Batch.shard}); so the sample stream depends only on
 * (seed, epoch, global position), the world size can change on resume as long as the global
 * batch stays, and R ranks compute what one process with the global batch computes. Weights,
 * buffers and optimizer moments are broadcast from rank 0 at start; gradients are averaged
 * over ranks before clipping and the update; BatchNorm runs synchronised (SyncBatchNorm: the
 * batch statistics of the global batch), so every rank keeps identical weights and running
 * statistics. Metrics are averaged over ranks; stopping (Ctrl-C, time budget) is agreed on
 * every step, so all ranks stop after the same step. Rank 0 alone writes checkpoints,
 * log.jsonl, previews and the GIF.
 *
 * Exact resume rests on three facts: the data order of epoch e and the flips of batch i are
 * derived from (seed, e, i) alone (see {@link Dataset.epochOrder}); the task's RNG state is in the checkpoint; and all other
 * state (weights, EMA, optimizer moments and step counts) is in the checkpoint too.
 *
 * @module
 */
import { deriveSeed, Rng } from "../core/rng.ts";
import { writeFileAtomic } from "../io/atomic.ts";
import { statusLine } from "../io/progress.ts";
import type { SampleOptionsOf, TrainTask } from "../task/task.ts";
import type { Batch } from "../data/batch.ts";
import type { ProcessGroup } from "../backend/distributed.ts";
import { type Dataset, flipRng } from "../data/dataset.ts";
import {
  type DataSourceRecord,
  loadCheckpoint,
  restoreTask,
  saveCheckpoint,
  type TrainRecord,
} from "./checkpoint.ts";
import { openRunFolder, reconcileRunFolder } from "./run_folder.ts";
import {
  gridPath,
  removeLaterGrids,
  writePreview,
  writeProgressAnimations,
} from "./preview_grids.ts";
import { agree, agreeWrites, joinData, LeadWrites, leaveData } from "./data_parallel.ts";

/** Options of {@link train}; `SampleOptions` are those of the task being trained. */
export interface TrainOptions<SampleOptions = never> {
  /** Folder for checkpoints, logs and previews (created). */
  runDir: string;
  /** Images per optimisation step (per rank under data parallelism). */
  batchSize: number;
  /** Budget in epochs (ignored when maxSteps is set). */
  epochs: number;
  /** Budget in optimisation steps. */
  maxSteps?: number;
  /** Stop (with a checkpoint) once this many seconds of training have passed. */
  maxSeconds?: number;
  /** Seed of data order, flips, the training noise and the preview noise. */
  seed: number;
  /** Random horizontal flips. */
  flip: boolean;
  /** Log a JSON line every this many steps. Default 10. */
  logEvery?: number;
  /** Checkpoint every this many steps (0: only at the end and on interrupt). Default 500. */
  checkpointEvery?: number;
  /** Preview grid every this many epochs (0: never). Default 1. */
  previewEvery?: number;
  /** Images in a preview grid. Default 64. */
  previewCount?: number;
  /** Passed to task.sample() for previews (e.g. a fast DDIM sampler). */
  previewOptions?: SampleOptions;
  /** Write progress.gif from the preview grids at the end. */
  gif?: boolean;
  /** Continue from runDir's checkpoint. */
  resume?: boolean;
  /** Aborting finishes the current step, writes a checkpoint and returns. */
  signal?: AbortSignal;
  /** Progress output; default writes a status line to stderr. */
  report?: (line: string, final: boolean) => void;
  /** Name of the backend, recorded in checkpoints and logs. */
  backendName: string;
  /** Where the data came from, kept in the checkpoint's training record. */
  source?: DataSourceRecord;
  /**
   * What a step with a NaN or infinite loss does: "stop" (default) ends the run with a
   * checkpoint of the last finite step; "skip" leaves the batch out and goes on.
   */
  onNonfinite?: NonfinitePolicy;
  /** This process is one rank of a data-parallel job (see the module notes). */
  group?: ProcessGroup;
}

/** See {@link TrainOptions.onNonfinite}. */
export type NonfinitePolicy = "stop" | "skip";

/** Summary of a {@link train} call. */
export interface TrainResult {
  /** Optimisation steps done (in total, across resumes). */
  step: number;
  /** Epoch the next step belongs to. */
  epoch: number;
  /** Steps the whole budget takes. */
  totalSteps: number;
  /** Wall time of this call, in seconds. */
  seconds: number;
  /** Training throughput of this call. */
  imagesPerSecond: number;
  /** Whether `signal` aborted it before the budget was spent. */
  interrupted: boolean;
  /** The last step's metrics (e.g. loss). */
  metrics: Record<string, number>;
  /** Set when a non-finite loss stopped the run: the step it happened at (1-based) and why. */
  nonfinite?: { step: number; metric: string; value: number };
  /** Batches skipped for a non-finite loss (with onNonfinite "skip"). */
  skippedSteps: number;
}

/**
 * Trains `task` on `data` until the budget is spent or `signal` aborts, checkpointing into
 * `options.runDir`. With `resume`, continues from the checkpoint there exactly.
 *
 * @example
 * ```ts
 * import { createBackend } from "../backend/select.ts";
 * import { Dataset } from "../data/dataset.ts";
 * import { Rng } from "../core/rng.ts";
 * import { createDdpmTask, resolveDdpmConfig } from "../diffusion/task.ts";
 * import { train } from "./trainer.ts";
 * using backend = await createBackend("tfjs-cpu");
 * const config = resolveDdpmConfig({ preset: "convnet", baseWidth: 8, imageSize: 8, timesteps: 20, ema: 0 });
 * using task = createDdpmTask(backend, config, new Rng(0));
 * const data = new Dataset({
 *   images: new Uint8Array(4 * 3 * 8 * 8), labels: new Int32Array(4), imageShape: [3, 8, 8], classNames: ["a"],
 * });
 * const dir = await Deno.makeTempDir();
 * const result = await train(task, data, {
 *   runDir: dir, batchSize: 2, epochs: 1, seed: 0, flip: true, previewEvery: 0, backendName: backend.name,
 *   report: () => {}, // progress lines go to stderr by default
 * });
 * console.log(result.step); // 2: one epoch of 4 images in batches of 2
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function train<T extends TrainTask>(
  task: T,
  data: Dataset,
  options: TrainOptions<SampleOptionsOf<T>>,
): Promise<TrainResult> {
  const world = options.group?.worldSize ?? 1;
  const lead = (options.group?.rank ?? 0) === 0;
  const report = lead ? options.report ?? statusLine() : () => {};
  if (data.size === 0) throw new Error("the training data set is empty");
  if (world > 1 && options.batchSize * world > data.size) {
    throw new Error(
      `the global batch ${options.batchSize} x ${world} ranks = ${options.batchSize * world} ` +
        `exceeds the ${data.size} training images: lower --batch-size (it is per rank)`,
    );
  }
  const batchSize = world > 1 ? options.batchSize : Math.min(options.batchSize, data.size);
  const globalBatch = batchSize * world;
  const stepsPerEpoch = Math.max(1, Math.floor(data.size / globalBatch));
  const totalSteps = options.maxSteps ?? options.epochs * stepsPerEpoch;
  const logEvery = options.logEvery ?? 10;
  const checkpointEvery = options.checkpointEvery ?? 500;
  const previewEvery = options.previewEvery ?? 1;
  const trainRecord: TrainRecord = {
    batchSize,
    worldSize: world,
    globalBatch,
    epochs: options.epochs,
    maxSteps: options.maxSteps ?? null,
    seed: options.seed,
    flip: options.flip,
    stepsPerEpoch,
    totalSteps,
    ...(options.source ? { source: options.source } : {}),
    logEvery,
    checkpointEvery,
    previewEvery,
  };
  // Rank 0 alone owns the run folder: the other ranks only read the checkpoint on resume.
  const folder = lead ? await openRunFolder(options.runDir) : null;
  if (folder?.removedTemps.length) {
    report(`removed temp files of an interrupted write: ${folder.removedTemps.join(", ")}`, true);
  }
  try {
    return await trainIn(task, data, options, trainRecord, report);
  } catch (e) {
    await folder?.discardIfEmpty();
    throw e;
  }
}

async function trainIn<T extends TrainTask>(
  task: T,
  data: Dataset,
  options: TrainOptions<SampleOptionsOf<T>>,
  trainRecord: TrainRecord,
  report: (line: string, final: boolean) => void,
): Promise<TrainResult> {
  const { batchSize, stepsPerEpoch, totalSteps } = trainRecord;
  const { logEvery = 10, checkpointEvery = 500, previewEvery = 1 } = trainRecord;
  const previewCount = options.previewCount ?? 64;
  const group = options.group;
  const world = group?.worldSize ?? 1;
  const rank = group?.rank ?? 0;
  const lead = rank === 0;
  const globalBatch = batchSize * world;
  const logPath = `${options.runDir}/log.jsonl`;

  let step = 0;
  // Rank 0's writes; in a job, a failed one stops every rank at the next agreement.
  const writes = new LeadWrites(lead, world, null);
  const write = writes.run.bind(writes);
  let rng = new Rng(deriveSeed(options.seed, 0x7a5c));
  if (options.resume) {
    const ckpt = await loadCheckpoint(options.runDir);
    const savedGlobal = ckpt.state.train.globalBatch ?? ckpt.state.train.batchSize;
    if (savedGlobal !== globalBatch) {
      throw new Error(
        `${options.runDir} was trained with a global batch of ${savedGlobal}; ${batchSize} x ` +
          `${world} rank(s) = ${globalBatch} would change the data stream. Resume with a world ` +
          `size that divides ${savedGlobal} (batch per rank = ${savedGlobal} / ranks)`,
      );
    }
    restoreTask(task, ckpt);
    step = ckpt.state.step;
    writes.checkpointStep = step;
    rng = Rng.fromState(ckpt.state.rng);
    if (lead) {
      const rewritten = await reconcileRunFolder(options.runDir, ckpt, task.exportStore);
      if (rewritten.length) {
        report(
          `rewrote ${rewritten.join(", ")} from the checkpoint (an earlier run was killed)`,
          true,
        );
      }
      await truncateLog(logPath, step);
      await removeLaterGrids(`${options.runDir}/samples`, step);
    }
    report(`resumed ${options.runDir} at step ${step} (epoch ${ckpt.state.epoch})`, true);
  } else if (lead) {
    await writeFileAtomic(logPath, "");
  }
  if (group && world > 1) joinData(task, group);

  const save = async (epoch: number) => {
    const saved = await write(
      "the checkpoint",
      options.runDir,
      () =>
        saveCheckpoint(options.runDir, task, {
          step,
          epoch,
          rng: rng.state(),
          train: trainRecord,
          backend: options.backendName,
        }),
    );
    if (saved) writes.checkpointStep = step;
  };

  const preview = () => {
    const path = gridPath(options.runDir, step, stepsPerEpoch);
    const { seed, previewOptions } = options;
    return write(
      "a preview grid",
      path,
      () => writePreview(task, path, previewCount, seed, previewOptions),
    );
  };

  const started = performance.now();
  let stepsTimed = 0;
  let timedMs = 0;
  let metrics: Record<string, number> = {};
  let order: Int32Array | null = null;
  let orderEpoch = -1;
  let interrupted = false;
  let lastYield = performance.now();
  let nonfinite: TrainResult["nonfinite"];
  let skippedSteps = 0;
  let lastPreviewStep = -1;

  let timeUp = false;

  try {
    while (step < totalSteps) {
      const epoch = Math.floor(step / stepsPerEpoch);
      const index = step % stepsPerEpoch;
      if (orderEpoch !== epoch) {
        order = data.epochOrder(epoch, options.seed);
        orderEpoch = epoch;
      }
      const batch: Batch = data.batchAt(order!, index, globalBatch, {
        flip: options.flip,
        rng: flipRng(options.seed, epoch, index),
        ...(world > 1 ? { part: { offset: rank * batchSize, count: batchSize } } : {}),
      });
      const t0 = performance.now();
      const rngBefore = rng.state();
      let stepMetrics = task.step(batch, rng, step / totalSteps);
      timedMs += performance.now() - t0;
      stepsTimed++;
      // Let signal handlers run: they only fire between macrotasks.
      if (performance.now() - lastYield > 200) {
        await new Promise((resolve) => setTimeout(resolve, 0));
        lastYield = performance.now();
      }
      let stop = options.signal?.aborted ?? false;
      timeUp = options.maxSeconds !== undefined && elapsed(started) >= options.maxSeconds;
      if (group && world > 1) {
        // One all-reduce per step: the metrics' mean over ranks (non-finite when any rank's is,
        // so every rank stops or skips together), and whether any rank must stop.
        const agreed = agree(group, stepMetrics, stop, timeUp, writes.state());
        writes.stopIfFailed(agreed.writes, step, options.runDir);
        stepMetrics = agreed.metrics;
        stop = agreed.stop;
        timeUp = agreed.timeUp;
      }
      // The task already read its metrics to the host; checking them costs no device sync.
      const bad = Object.entries(stepMetrics).find(([, v]) => !Number.isFinite(v));
      if (bad && options.onNonfinite !== "skip") {
        // The task applied no update; with the RNG rewound the checkpoint is the last finite step.
        rng = Rng.fromState(rngBefore);
        nonfinite = { step: step + 1, metric: bad[0], value: bad[1] };
        break;
      }
      step++;
      if (bad) {
        skippedSteps++;
        report(`step ${step}: ${bad[0]} is ${bad[1]}; batch skipped (--on-nonfinite skip)`, true);
      } else {
        metrics = stepMetrics;
      }
      const imagesPerSecond = (stepsTimed * globalBatch) / (timedMs / 1000);

      if (lead && (step % logEvery === 0 || step === totalSteps)) {
        const line = {
          step,
          epoch,
          ...metrics,
          ...(skippedSteps ? { skipped_steps: skippedSteps } : {}),
          images_per_s: round(imagesPerSecond),
          time: round(elapsed(started)),
        };
        await write(
          "log.jsonl",
          logPath,
          () => Deno.writeTextFile(logPath, JSON.stringify(line) + "\n", { append: true }),
        );
      }
      const etaSeconds = ((totalSteps - step) * globalBatch) / imagesPerSecond;
      report(progressText(step, totalSteps, epoch, metrics, imagesPerSecond, etaSeconds), false);

      const epochDone = step % stepsPerEpoch === 0;
      if (lead && epochDone && previewEvery > 0 && (epoch + 1) % previewEvery === 0) {
        await preview();
        lastPreviewStep = step;
      }
      if (checkpointEvery > 0 && step % checkpointEvery === 0 && step < totalSteps) {
        await save(Math.floor(step / stepsPerEpoch));
      }
      // Alone, an abort raised during this step's report or writes stops here too; in a job the
      // ranks stop only on the flag they agreed on (an abort now is agreed next step).
      if (stop || (world === 1 && options.signal?.aborted)) {
        interrupted = true;
        break;
      }
      if (timeUp) break;
    }
  } finally {
    if (group && world > 1) leaveData(task, group);
  }
  const epoch = Math.floor(step / stepsPerEpoch);
  await save(epoch);
  // A run that stops between previews (--max-steps, --max-seconds, Ctrl-C) still shows where
  // it got to: one more grid, after the checkpoint so an impatient second Ctrl-C loses nothing.
  if (lead && !nonfinite && previewEvery > 0 && stepsTimed > 0 && lastPreviewStep !== step) {
    await preview();
  }
  if (lead && options.gif && !nonfinite) {
    const path = `${options.runDir}/progress.gif`;
    await write("progress.gif", path, () => writeProgressAnimations(options.runDir, stepsPerEpoch));
  }
  // No step's agreement follows the last writes: one more, so no rank ends "done" alone.
  if (group && world > 1) {
    writes.stopIfFailed(agreeWrites(group, writes.state()), step, options.runDir);
  }
  const seconds = elapsed(started);
  const imagesPerSecond = stepsTimed > 0 ? (stepsTimed * globalBatch) / (timedMs / 1000) : 0;
  if (nonfinite) {
    report(
      `stopped: ${nonfinite.metric} is ${nonfinite.value} at step ${nonfinite.step}; ` +
        `checkpoint of step ${step} (the last finite one) written to ${options.runDir}. ` +
        `Lower the learning rate, or resume with --on-nonfinite skip to leave such batches out`,
      true,
    );
  } else {
    report(
      `${interrupted ? "interrupted; checkpoint written" : "done"}: step ${step}/${totalSteps}, ` +
        `${round(imagesPerSecond)} images/s, ${round(seconds)} s, run folder ${options.runDir}`,
      true,
    );
  }
  return {
    step,
    epoch,
    totalSteps,
    seconds,
    imagesPerSecond,
    interrupted,
    metrics,
    skippedSteps,
    ...(nonfinite ? { nonfinite } : {}),
  };
}

async function truncateLog(path: string, step: number): Promise<void> {
  let text = "";
  try {
    text = await Deno.readTextFile(path);
  } catch {
    return;
  }
  const kept = text.split("\n").filter((line) => {
    if (!line.trim()) return false;
    try {
      return JSON.parse(line).step <= step;
    } catch {
      return false;
    }
  });
  await writeFileAtomic(path, kept.map((l) => l + "\n").join(""));
}

function progressText(
  step: number,
  total: number,
  epoch: number,
  metrics: Record<string, number>,
  ips: number,
  eta: number,
): string {
  const width = 24;
  const filled = Math.round((step / total) * width);
  const bar = "#".repeat(filled) + "-".repeat(width - filled);
  const shown = Object.entries(metrics).slice(0, 4).map(([k, v]) => `${k} ${v.toFixed(4)}`).join(
    " ",
  );
  return `[${bar}] ${step}/${total} ep ${epoch} ${shown} ${ips.toFixed(1)} img/s ETA ${
    formatSeconds(eta)
  }`;
}

function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return "?";
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = Math.floor(s % 60);
  return h > 0 ? `${h}h${String(m).padStart(2, "0")}m` : `${m}m${String(sec).padStart(2, "0")}s`;
}

function elapsed(startMs: number): number {
  return (performance.now() - startMs) / 1000;
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}
