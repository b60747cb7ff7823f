/**
 * Writes a study run as `report.md` (the original study's tables with our columns next to the
 * published FID, the sample grids and GAN GIFs, and the command behind every row) and
 * `report.json` (the same numbers, machine-readable). Missing measurements read "n/a" with
 * the reason stated once at the top; nothing is filled in.
 *
 * @module
 */
import { writeFileAtomic } from "../io/atomic.ts";
import { type ReportFigures, writeReportFigures } from "./figures.ts";
import type { EntryResult, GroupScore, StudyRun } from "./entry.ts";

/** Options of {@link renderReport} / {@link writeReport}. */
export interface ReportOptions {
  /** The run folder (report.md's links are relative to it). */
  outDir: string;
  /**
   * The plan argument, for the commands: a built-in name, or the plan file's path (give it
   * absolute so the commands run from any folder).
   */
  planSource: string;
  /** `--inception-weights` as the run got it (absolute), so the commands find the same file. */
  inceptionWeights?: string;
  /** `--data` for the commands (absolute); default the run's `dataSource` as typed. */
  dataSource?: string;
}

/** A table row: one entry, or one class of a conditional entry. */
interface Row {
  result: EntryResult;
  score: GroupScore | null;
}

const NA = "n/a";

/**
 * The markdown report of `run`.
 *
 * @example
 * ```ts
 * import type { StudyRun } from "./entry.ts";
 * import { resolvePlan } from "./plans.ts";
 * import { renderReport } from "./report.ts";
 * // A run that has not finished any entry yet (runStudy returns the real ones).
 * const run: StudyRun = {
 *   plan: await resolvePlan("unconditional"), results: [], skipped: [], unfinished: [], failed: [],
 *   fid: { status: "unavailable", note: "no Inception weights" },
 *   backend: { name: "tfjs-cpu", device: "cpu", version: "4.22.0" },
 *   scale: 1, samples: null, dataSource: null, seconds: 0,
 * };
 * const markdown = renderReport(run, { outDir: "runs/study", planSource: "unconditional" });
 * console.log(markdown.startsWith("#")); // true
 * ```
 */
export function renderReport(
  run: StudyRun,
  options: ReportOptions,
  figures: ReportFigures = { curves: {} },
): string {
  const lines: string[] = [];
  const { plan } = run;
  lines.push(`# Study: ${plan.title}`, "");
  if (plan.description) lines.push(plan.description, "");
  lines.push(
    `Plan \`${plan.name}\`, scale ${run.scale}${
      run.samples !== null ? `, --n ${run.samples}` : ""
    }, backend ${run.backend.name} (${run.backend.device}, ${run.backend.version}), ` +
      `FID against the ${plan.referenceSplit} split. This invocation took ` +
      `${formatSeconds(run.seconds)}${
        run.skipped.length ? ` (skipped as already done: ${run.skipped.join(", ")})` : ""
      }.`,
    "",
  );
  lines.push(...notices(run));
  const tables = [...new Set(plan.entries.map((e) => e.table))];
  for (const table of tables) {
    const rows = rowsOf(run, table);
    lines.push(`## ${table}`, "");
    if (rows.length === 0) {
      lines.push("_No entry of this table has finished yet._", "");
      continue;
    }
    lines.push(...renderTable(rows), "");
  }
  for (const { id, error } of run.failed) {
    lines.push(`**Failed:** ${id}: ${error}`, "");
  }
  const missing = plan.entries.filter((e) =>
    !run.results.some((r) => r.id === e.id) && !run.failed.some((f) => f.id === e.id)
  );
  if (missing.length) {
    lines.push(
      `**Not finished:** ${missing.map((e) => e.id).join(", ")} — rerun the same command ` +
        "to continue (finished entries are skipped, a half-trained one resumes).",
      "",
    );
  }
  lines.push(...renderFigures(run, figures));
  lines.push(...renderSamples(run));
  lines.push(...renderCommands(run, options));
  return lines.join("\n");
}

function notices(run: StudyRun): string[] {
  const out: string[] = [];
  if (run.fid.status === "unavailable") {
    out.push(
      `> **FID and KID are unavailable in this run.** ${run.fid.note}.`,
      "> The FID, KID and floor columns read n/a; diffusion models are measured by bits/dim on " +
        'the test split instead. No number in this report is estimated; the "published" ' +
        "column is the original study's. Put pytorch-fid's weights in place and rerun the same " +
        "command: finished entries are then scored from their saved samples without retraining.",
      "",
    );
  } else if (run.fid.status === "not-comparable") {
    out.push(
      `> **FID NOT COMPARABLE.** ${run.fid.note.replace(/\.$/, "")}.`,
      "> They only show that the pipeline runs; compare nothing below with the published column.",
      "",
    );
  }
  if (run.scale < 1) {
    out.push(
      `> **Scaled run (--scale ${run.scale}).** Every training budget is ${run.scale} x the ` +
        "original's, fewer images are sampled and scored, diffusion models sample with DDIM in " +
        "fewer steps and bits/dim uses a subset of test images and KL terms (see each row). " +
        "These numbers show that the pipeline works, not how good the models can get.",
      "",
    );
  }
  return out;
}

function rowsOf(run: StudyRun, table: string): Row[] {
  const rows: Row[] = [];
  for (const entry of run.plan.entries) {
    if (entry.table !== table) continue;
    const result = run.results.find((r) => r.id === entry.id);
    if (!result) continue;
    if (result.scores.length === 0) rows.push({ result, score: null });
    for (const score of result.scores) rows.push({ result, score });
  }
  return rows;
}

function renderTable(rows: Row[]): string[] {
  const floorOnly = rows.every((r) => r.result.kind === "floor");
  const anyBpd = rows.some((r) => r.result.bitsPerDim !== null);
  const n = rows[0].score?.n;
  const header = floorOnly
    ? ["Comparison", "Published FID", "FID (ours)", "KID x 10^3", "Images per split"]
    : [
      "Model",
      "Published FID",
      `FID@N (ours)`,
      "Floor@N",
      "KID x 10^3",
      ...(anyBpd ? ["Bits/dim (test)"] : []),
      "Params",
      "Train time",
      "Images/s",
      "Trained",
      "Samples",
      "Backend",
    ];
  const lines = [`| ${header.join(" | ")} |`, `|${header.map(() => "---").join("|")}|`];
  for (const { result, score } of rows) {
    const label = score?.className ? `${result.label} — ${score.className}` : result.label;
    const kid = score?.kid != null
      ? `${(score.kid * 1e3).toFixed(2)} ± ${(score.kidStd! * 1e3).toFixed(2)}`
      : NA;
    if (floorOnly) {
      lines.push(
        `| ${label} | ${fmt(score?.published)} | ${fmt(score?.fid)} | ${kid} | ${
          score ? `${score.n} vs ${score.referenceN}` : NA
        } |`,
      );
      continue;
    }
    const bpd = result.bitsPerDim
      ? `${result.bitsPerDim.total.toFixed(3)} (${result.bitsPerDim.images} images${
        result.bitsPerDim.timestepStride > 1
          ? `, every ${result.bitsPerDim.timestepStride}th KL term`
          : ""
      })`
      : NA;
    const train = result.train;
    const sampler = result.sampling?.options ?? {};
    const samples = score
      ? `${score.n} vs ${score.referenceN}${
        sampler.sampler === "ddim" ? ` (DDIM ${sampler.steps} steps)` : ""
      }`
      : NA;
    lines.push(
      `| ${
        [
          label,
          fmt(score?.published),
          fmt(score?.fid),
          fmt(score?.floor),
          kid,
          ...(anyBpd ? [bpd] : []),
          formatParams(result.params),
          train ? formatSeconds(train.seconds) : NA,
          train ? train.imagesPerSecond.toFixed(1) : NA,
          train
            ? `${train.steps} step${train.steps === 1 ? "" : "s"} x ${train.batchSize} ` +
              `(${train.epochs.toFixed(3)} ep)`
            : NA,
          samples,
          result.backend,
        ].join(" | ")
      } |`,
    );
  }
  if (n !== undefined && !floorOnly) {
    lines.push(
      "",
      "FID@N and the floor use the same N and classes: generated images (floor: training " +
        "images) vs the reference split. KID is the unbiased polynomial-kernel MMD (mean ± std " +
        "over subsets).",
    );
  }
  return lines;
}

/** Training curves and the samples strip (figures.ts), when written. */
function renderFigures(run: StudyRun, figures: ReportFigures): string[] {
  const out: string[] = [];
  const curves = run.results.filter((r) => figures.curves[r.id]);
  if (curves.length) {
    out.push("## Training curves", "");
    for (const r of curves) out.push(`![${r.id} training loss](${figures.curves[r.id]})`, "");
  }
  if (figures.strip) {
    out.push(
      "## Samples at a glance",
      "",
      `![first row of every sample grid](${figures.strip})`,
      "",
    );
  }
  return out;
}

function renderSamples(run: StudyRun): string[] {
  const out = ["## Samples", ""];
  let any = false;
  for (const result of run.results) {
    if (!result.files.grid && !result.files.gif) continue;
    any = true;
    out.push(`### ${result.label}`, "");
    if (result.files.grid) out.push(`![${result.id} samples](${result.files.grid})`, "");
    if (result.files.gif) {
      out.push(
        `Training progress (fixed noise):`,
        "",
        `![${result.id} progress](${result.files.gif})`,
        "",
      );
    }
  }
  if (!any) {
    const trainsNothing = run.plan.entries.every((e) => e.kind === "floor");
    out.push(
      trainsNothing
        ? "_This plan trains no model (train-vs-test floor rows only), so there are no samples._"
        : "_No model has finished yet._",
      "",
    );
  }
  return out;
}

function renderCommands(run: StudyRun, options: ReportOptions): string[] {
  const out = [
    "## Reproduce",
    "",
    "Each row is reproduced exactly (same seed, budget and scale) by:",
    "",
    "| Row | Command |",
    "|---|---|",
  ];
  for (const result of run.results) {
    out.push(`| ${result.label} | \`${commandFor(run, options, result.id)}\` |`);
  }
  out.push(
    "",
    "and the whole report by the same command without `--only`. Rerunning skips finished " +
      "entries and resumes an interrupted one from its checkpoint.",
    "",
  );
  return out;
}

/** The study command that reruns one entry of `run`. */
export function commandFor(run: StudyRun, options: ReportOptions, id: string): string {
  const parts = ["deno", "run", "-A", "cli.ts", "study", options.planSource, "--only", id];
  if (run.scale !== 1) parts.push("--scale", String(run.scale));
  if (run.samples !== null) parts.push("--n", String(run.samples));
  const data = options.dataSource ?? run.dataSource;
  if (data !== null) parts.push("--data", data);
  if (options.inceptionWeights !== undefined) {
    parts.push("--inception-weights", options.inceptionWeights);
  }
  parts.push("--out", options.outDir);
  return parts.map(shellWord).join(" ");
}

/** `word` quoted for a POSIX shell when it needs it (paths with spaces). */
function shellWord(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}

/**
 * report.json: the run's settings and every entry's result, with the same numbers as
 * report.md.
 */
export function reportJson(run: StudyRun, options: ReportOptions): Record<string, unknown> {
  return {
    plan: run.plan,
    planSource: options.planSource,
    scale: run.scale,
    samples: run.samples,
    dataSource: run.dataSource,
    backend: run.backend,
    fid: run.fid,
    seconds: run.seconds,
    skipped: run.skipped,
    failed: run.failed,
    unfinished: run.plan.entries.filter((e) => !run.results.some((r) => r.id === e.id)).map((e) =>
      e.id
    ),
    results: run.results.map((r) => ({ ...r, command: commandFor(run, options, r.id) })),
  };
}

/**
 * Writes report.md and report.json into the run folder (atomically).
 *
 * @example
 * ```ts
 * import type { StudyRun } from "./entry.ts";
 * import { resolvePlan } from "./plans.ts";
 * import { writeReport } from "./report.ts";
 * const run: StudyRun = {
 *   plan: await resolvePlan("unconditional"), results: [], skipped: [], unfinished: [], failed: [],
 *   fid: { status: "unavailable", note: "no Inception weights" },
 *   backend: { name: "tfjs-cpu", device: "cpu", version: "4.22.0" },
 *   scale: 1, samples: null, dataSource: null, seconds: 0,
 * };
 * const dir = await Deno.makeTempDir();
 * await writeReport(run, { outDir: dir, planSource: "unconditional" });
 * console.log([...Deno.readDirSync(dir)].map((e) => e.name).sort()); // ["report.json", "report.md"]
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeReport(run: StudyRun, options: ReportOptions): Promise<void> {
  const figures = await writeReportFigures(run, options.outDir);
  await writeFileAtomic(`${options.outDir}/report.md`, renderReport(run, options, figures));
  await writeFileAtomic(
    `${options.outDir}/report.json`,
    JSON.stringify(reportJson(run, options), null, 2) + "\n",
  );
}

function fmt(x: number | null | undefined): string {
  return x === null || x === undefined || !Number.isFinite(x) ? NA : x.toFixed(1);
}

function formatParams(params: Record<string, number>): string {
  const entries = Object.entries(params);
  if (entries.length === 0) return NA;
  const m = (n: number) => `${(n / 1e6).toFixed(2)} M`;
  if (entries.length === 1) return m(entries[0][1]);
  return entries.map(([name, n]) =>
    `${name === "generator" ? "G" : name === "discriminator" ? "D" : name} ${m(n)}`
  )
    .join(", ");
}

/** 3725 -> "1h02m", 75 -> "1m15s", 4.2 -> "4.2 s". */
export function formatSeconds(s: number): string {
  if (s < 60) return `${s.toFixed(1)} s`;
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = Math.floor(s % 60);
  return h > 0 ? `${h}h${String(m).padStart(2, "0")}m` : `${m}m${String(sec).padStart(2, "0")}s`;
}
