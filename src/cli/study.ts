/**
 * `cli.ts study PLAN`: reruns the original study's experiments (or a JSON plan of one's own)
 * and writes report.md and report.json in the run folder.
 *
 * @module
 */
import { selectBackend } from "../backend/select.ts";
import { statusLine } from "../io/progress.ts";
import { BUILT_IN_PLANS, PLAN_NAMES, resolvePlan } from "../study/plans.ts";
import { writeReport } from "../study/report.ts";
import { checkBatches, runStudy } from "../study/runner.ts";
import {
  BACKEND_FLAG,
  backendFlag,
  bool,
  type CommandSpec,
  helpText,
  int,
  num,
  parseCommand,
  str,
  UsageError,
} from "./args.ts";
import { distTimeout, launchIfAsked, parallelFlags } from "./parallel_flags.ts";
import {
  interruptSignals,
  joinJob,
  prepareRank,
  requireTorchForParallel,
} from "../app/parallel.ts";

const SPEC: CommandSpec = {
  name: "study",
  summary: "Rerun the original study's experiments and write report.md in the run folder.",
  usage: `deno run -A cli.ts study PLAN [--scale 0.01] [--out DIR] [--data PATH] [flags]`,
  positionals: { min: 1, max: 1 },
  flags: {
    scale: {
      type: "string",
      arg: "S",
      help: "multiply every budget by S in (0, 1] for a quick run",
      default: "1",
    },
    out: { type: "string", arg: "DIR", help: "run folder (default runs/study-PLAN[-scale-S])" },
    data: {
      type: "string",
      arg: "PATH",
      help: "CIFAR-10 binary folder or image folder (else $DENO_DIFFUSION_DATA, cache, download)",
    },
    backend: BACKEND_FLAG,
    "inception-weights": {
      type: "string",
      arg: "PATH",
      help: "pytorch-fid's pt_inception-2015-12-05-6726825d.pth (else env, cache, download)",
    },
    "no-download": { type: "boolean", help: "never download the Inception weights" },
    n: { type: "string", arg: "N", help: "samples per entry (per class), instead of the plan's" },
    only: { type: "string", arg: "IDS", help: "run only these entries (comma separated)" },
    list: { type: "boolean", help: "list the plan's entries and exit" },
    ...parallelFlags("every entry's training, sampling and FID; the plan's batch is global"),
  },
  details: [
    `Built-in plans: ${PLAN_NAMES.join(", ")}; or a path to a .json plan file`,
    "({ name, title?, description?, referenceSplit?, entries: [{ id, kind: ddpm|gan|floor,",
    "classes, samples, budget: { epochs, seconds? }, config?, batchSize?, conditional?,",
    "sampler?, published?, seed?, label?, table? }] }).",
    "Each entry trains, samples N images, and is scored with FID@N and KID against the test",
    "split, next to the train-vs-test floor at the same N; diffusion models also get bits/dim",
    "on the test split. Without the FID Inception weights the report says so and gives the",
    "other measurements. Rerunning the same command skips finished entries and resumes a",
    "half-trained one; Ctrl-C stops with a checkpoint.",
  ].join("\n"),
};

/** Entry point of `cli.ts study`; returns the exit status. */
export async function studyCommand(argv: string[]): Promise<number> {
  const parsed = parseCommand(argv, SPEC);
  if (parsed.help) {
    console.log(helpText(SPEC));
    return 0;
  }
  const planSource = parsed.positionals[0];
  let plan;
  try {
    plan = await resolvePlan(planSource);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  if (bool(parsed, "list")) {
    for (const e of plan.entries) console.log(`${e.id.padEnd(28)}${e.kind.padEnd(7)}${e.label}`);
    return 0;
  }
  const scale = num(parsed, "scale", 0, 1)!;
  if (scale === 0) throw new UsageError("--scale must be greater than 0 (and at most 1)");
  const only = str(parsed, "only")?.split(",").map((s) => s.trim()).filter(Boolean);
  const outDir = str(parsed, "out") ??
    `runs/study-${plan.name}${scale === 1 ? "" : `-scale-${scale}`}`;
  const samples = int(parsed, "n", 2);
  const nproc = int(parsed, "nproc", 1) ?? 1;
  if (nproc > 1) {
    const selected = only ? plan.entries.filter((e) => only.includes(e.id)) : plan.entries;
    try {
      checkBatches(selected, nproc, { scale, samples });
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
  }
  const launched = await launchIfAsked("study", argv, parsed);
  if (launched !== null) return launched;
  const job = prepareRank(backendFlag(parsed));
  const lead = (job?.rank ?? 0) === 0;
  const log = (m: string) => lead && console.error(m);
  using backend = await selectBackend({ name: backendFlag(parsed), log });
  requireTorchForParallel(backend.name, job?.worldSize ?? 1);
  const controller = new AbortController();
  const onSigint = () => {
    if (controller.signal.aborted) Deno.exit(130);
    log("\ninterrupt: finishing this step and writing a checkpoint (Ctrl-C again to quit)");
    controller.abort();
  };
  const signals = interruptSignals();
  for (const s of signals) Deno.addSignalListener(s, onSigint);
  // Started by our launcher: it turns the terminal's Ctrl-C into one SIGTERM per rank.
  const ignore = () => {};
  if (!signals.includes("SIGINT")) Deno.addSignalListener("SIGINT", ignore);
  let group: Awaited<ReturnType<typeof joinJob>>;
  try {
    group = await joinJob(backend, job, {
      study: plan,
      scale,
      samples: samples ?? null,
      only: only ?? null,
      outDir,
      data: str(parsed, "data") ?? null,
    }, distTimeout(parsed));
    const run = await runStudy(plan, {
      backend,
      outDir,
      scale,
      samples,
      dataSource: str(parsed, "data"),
      inceptionWeights: str(parsed, "inception-weights"),
      download: !bool(parsed, "no-download"),
      only,
      log,
      // The trainer's progress line: in place on a terminal, every 30 s in a log file.
      trainerReport: lead ? statusLine({ logIntervalMs: 30_000 }) : undefined,
      signal: controller.signal,
      group,
    });
    if (!lead) return run.failed.length ? 1 : run.unfinished.length ? 130 : 0;
    // The report's commands must run from any folder: files by absolute path.
    const weights = str(parsed, "inception-weights");
    const data = str(parsed, "data");
    await writeReport(run, {
      outDir,
      planSource: planSource in BUILT_IN_PLANS ? planSource : await absolute(planSource),
      ...(weights !== undefined ? { inceptionWeights: await absolute(weights) } : {}),
      ...(data !== undefined && data !== "cifar10" ? { dataSource: await absolute(data) } : {}),
    });
    console.error(
      `wrote ${outDir}/report.md and report.json (${run.results.length}/${plan.entries.length} ` +
        `entries finished, ${run.seconds.toFixed(0)} s${
          group ? `, ${group.worldSize} ranks` : ""
        })`,
    );
    if (run.failed.length) {
      console.error(`failed: ${run.failed.map((f) => f.id).join(", ")} (see report.md)`);
      return 1;
    }
    return run.unfinished.length ? 130 : 0;
  } finally {
    group?.dispose();
    for (const s of signals) Deno.removeSignalListener(s, onSigint);
    if (!signals.includes("SIGINT")) Deno.removeSignalListener("SIGINT", ignore);
  }
}

async function absolute(path: string): Promise<string> {
  try {
    return await Deno.realPath(path);
  } catch {
    return path.startsWith("/") ? path : `${Deno.cwd()}/${path}`;
  }
}
