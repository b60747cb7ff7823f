/**
 * Runs a study plan: for every entry, train (or resume) -> sample N -> FID@N and KID against
 * the reference split, with the train-vs-test floor at the same N, bits/dim for diffusion
 * models, parameter counts, training time and throughput. Each entry lives in its own folder
 * of the run (`entries/<id>/`) and is finished when its `result.json` is written (atomically);
 * a rerun skips finished entries and resumes a half-trained one from its checkpoint.
 *
 * @module
 */
import { deriveSeed } from "../core/rng.ts";
import { DistributedError } from "../backend/distributed.ts";
import { DEFAULT_DDPM_CONFIG } from "../diffusion/task.ts";
import { DEFAULT_GAN_CONFIG } from "../gan/task.ts";
import { writeFileAtomic } from "../io/atomic.ts";
import { CHECKPOINT_FILE } from "../train/checkpoint.ts";
import { DEFAULT_BATCH_SIZE } from "../app/defaults.ts";
import { createTask, type TaskConfig } from "../app/registry.ts";
import { diffusionBitsPerDim } from "../app/evaluate.ts";
import { type FidStatus, openFidScorer } from "./evaluate.ts";
import { type ScaledEntry, scaleEntry, type StudyPlan } from "./plans.ts";
import {
  type EntryContext,
  entryDir,
  type EntryResult,
  fingerprintOf,
  isLead,
  loadSplit,
  readResult,
  type StudyOptions,
  type StudyRun,
} from "./entry.ts";
import { rescore, sampleEntry, scoreGroups } from "./score_entry.ts";
import { trainEntry } from "./train_entry.ts";

/**
 * Finished entries are re-scored from their saved samples when the FID network now available
 * is better than the one they were scored with (no weights < other weights < the real ones).
 */
const FID_RANK: Record<FidStatus, number> = { "unavailable": 0, "not-comparable": 1, "ok": 2 };

/**
 * Runs (or continues) `plan` in `options.outDir`.
 *
 * @example
 * ```ts ignore needs-data
 * using backend = await selectBackend();
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
  const lead = isLead(options);
  const world = options.group?.worldSize ?? 1;
  if (world > 1) checkBatches(selected, world, options);
  if (lead) {
    await Deno.mkdir(`${options.outDir}/entries`, { recursive: true });
    await writeFileAtomic(`${options.outDir}/plan.json`, JSON.stringify(plan, null, 2) + "\n");
  }
  const scorer = await openFidScorer(backend, {
    weightsPath: options.inceptionWeights,
    download: options.download,
    log,
    group: options.group,
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
        // The ranks of a job can no longer agree on what comes next: the job stops.
        if (e instanceof DistributedError) throw e;
        // One failing entry (out of memory, a bad config in a custom plan) should not cost
        // the others: record it, go on, and let the report say what failed.
        const message = (e as Error).message;
        log(`${entry.id}: FAILED: ${message}`);
        failed.push({ id: entry.id, error: message });
        continue;
      }
      if (result) {
        if (lead) {
          await writeFileAtomic(`${dir}/result.json`, JSON.stringify(result, null, 2) + "\n");
        }
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
  if (isLead(options)) await Deno.mkdir(dir, { recursive: true });
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
    const sampling = await sampleEntry(task, data, entry, dir, seed, options.group);
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

/**
 * Before any work (the CLI calls it before starting the ranks): every selected entry's batch (the global batch) must split evenly over the
 * ranks, or the job would train another model than one process does.
 */
export function checkBatches(
  entries: readonly StudyPlan["entries"][number][],
  world: number,
  options: Pick<StudyOptions, "scale" | "samples">,
): void {
  for (const entry of entries) {
    if (entry.kind === "floor") continue;
    const batch = scaleEntry(entry, options.scale, options.samples).batchSize ??
      DEFAULT_BATCH_SIZE[entry.kind];
    if (batch % world !== 0) {
      throw new Error(
        `entry ${entry.id}: its batch of ${batch} images does not split over ${world} ranks; ` +
          `use a number of processes that divides it (the plan's batch is the global batch)`,
      );
    }
  }
}
