/**
 * What the dashboard knows about a runs folder, read from the files training writes (no
 * database): a run is a folder with `log.jsonl` or `checkpoint.json`, a study a folder with
 * `report.md`. Every reader tolerates files being written at that moment: a log line without
 * its newline yet is left for the next read, an unparsable JSON file reads as absent.
 *
 * @module
 */
import { basename, join, relative } from "node:path";
import { CHECKPOINT_JSON } from "../train/checkpoint.ts";

/** One log.jsonl line: step, epoch, the task's metrics, images_per_s, time. */
export type LogLine = Record<string, number>;

/** A run as the dashboard lists it. */
export interface RunSummary {
  /** Path below the root, "/"-separated. */
  path: string;
  name: string;
  /** "ddpm" | "gan", or "" before the first checkpoint. */
  kind: string;
  preset: string;
  backend: string;
  step: number;
  /** null until the first checkpoint says it. */
  totalSteps: number | null;
  imagesPerSecond: number | null;
  /** Seconds left at the last logged speed, null when unknown. */
  etaSeconds: number | null;
  state: "training" | "interrupted" | "finished";
  /** Newest first: paths below the root of samples/epoch-*.png. */
  previews: string[];
  /** progress.gif below the root, null when absent. */
  gif: string | null;
  /** progress.png (the lossless animated PNG beside the GIF) below the root, null when absent. */
  apng: string | null;
  /** The checkpoint's config, {} before the first checkpoint. */
  config: Record<string, unknown>;
  /** Seconds since log.jsonl or the checkpoint last changed. */
  idleSeconds: number;
}

/** A study folder. */
export interface StudySummary {
  path: string;
  name: string;
}

/** A log written to within this many seconds counts as training. */
export const ACTIVE_SECONDS = 60;
const MAX_DEPTH = 4;
const MAX_FOLDERS = 5000;

async function readJson(path: string): Promise<Record<string, unknown> | null> {
  try {
    return JSON.parse(await Deno.readTextFile(path));
  } catch {
    return null;
  }
}

async function mtime(path: string): Promise<number | null> {
  try {
    return (await Deno.stat(path)).mtime?.getTime() ?? null;
  } catch {
    return null;
  }
}

/**
 * Finds runs and studies under `root` (a real path), at most 4 folders deep, never following
 * symlinks.
 *
 * @example
 * ```ts ignore
 * const { runs, studies } = await scanRoot("/home/me/runs");
 * ```
 */
export async function scanRoot(
  root: string,
): Promise<{ runs: RunSummary[]; studies: StudySummary[] }> {
  const runs: RunSummary[] = [];
  const studies: StudySummary[] = [];
  let seen = 0;
  const walk = async (dir: string, depth: number): Promise<void> => {
    if (depth > MAX_DEPTH || ++seen > MAX_FOLDERS) return;
    const names: string[] = [];
    const folders: string[] = [];
    try {
      for await (const e of Deno.readDir(dir)) {
        names.push(e.name);
        if (e.isDirectory && !e.name.startsWith(".")) folders.push(e.name);
      }
    } catch {
      return; // removed or unreadable meanwhile
    }
    const rel = relative(root, dir).split("\\").join("/");
    if (names.includes("report.md")) studies.push({ path: rel, name: basename(dir) });
    if (names.includes("log.jsonl") || names.includes(CHECKPOINT_JSON)) {
      const summary = await summarizeRun(root, rel);
      if (summary) runs.push(summary);
    }
    for (const f of folders.sort()) {
      if (f === "samples" || f === "fid-samples" || f === "frames") continue;
      await walk(join(dir, f), depth + 1);
    }
  };
  await walk(root, 0);
  return { runs, studies };
}

/**
 * Reads the complete lines of a JSON-lines log from byte `from` on. Returns them and the byte
 * offset after the last complete line (where the next read starts); a line still being
 * written is left for later. `truncated` says the file is now shorter than `from` (a new run).
 *
 * @example
 * ```ts ignore
 * const first = await readLogFrom("runs/cats/log.jsonl");
 * const later = await readLogFrom("runs/cats/log.jsonl", first.next); // only the new lines
 * ```
 */
export async function readLogFrom(
  path: string,
  from = 0,
): Promise<{ lines: LogLine[]; next: number; truncated: boolean }> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch {
    return { lines: [], next: 0, truncated: from > 0 };
  }
  try {
    const size = (await file.stat()).size;
    if (size < from) return { lines: [], next: 0, truncated: true };
    // The logs are small (one line per logged step), but bound a read anyway.
    const want = Math.min(size - from, 16 * 2 ** 20);
    const bytes = new Uint8Array(want);
    await file.seek(from, Deno.SeekMode.Start);
    let got = 0;
    while (got < want) {
      const n = await file.read(bytes.subarray(got));
      if (n === null) break;
      got += n;
    }
    const end = bytes.subarray(0, got).lastIndexOf(10); // last "\n"
    if (end < 0) return { lines: [], next: from, truncated: false };
    const text = new TextDecoder().decode(bytes.subarray(0, end));
    const lines: LogLine[] = [];
    for (const line of text.split("\n")) {
      if (!line.trim()) continue;
      try {
        lines.push(JSON.parse(line));
      } catch {
        // a corrupt line is skipped, not fatal
      }
    }
    return { lines, next: from + end + 1, truncated: false };
  } finally {
    file.close();
  }
}

/**
 * The summary of the run folder `rel` below `root`, or null when it vanished.
 *
 * @example
 * ```ts ignore
 * const run = await summarizeRun("/home/me/runs", "cats");
 * console.log(run?.state, run?.step, run?.totalSteps);
 * ```
 */
export async function summarizeRun(root: string, rel: string): Promise<RunSummary | null> {
  const dir = join(root, rel);
  const state = await readJson(join(dir, CHECKPOINT_JSON));
  const { lines } = await readLogFrom(join(dir, "log.jsonl"));
  const last = lines.at(-1);
  const train = (state?.train ?? {}) as Record<string, unknown>;
  const config = (state?.config ?? {}) as Record<string, unknown>;
  const totalSteps = typeof train.totalSteps === "number" ? train.totalSteps : null;
  const step = Math.max(last?.step ?? 0, typeof state?.step === "number" ? state.step : 0);
  const ips = typeof last?.images_per_s === "number" ? last.images_per_s : null;
  const batch = typeof train.batchSize === "number" ? train.batchSize : null;
  const eta = totalSteps !== null && ips && batch ? ((totalSteps - step) * batch) / ips : null;
  const changed = Math.max(
    (await mtime(join(dir, "log.jsonl"))) ?? 0,
    (await mtime(join(dir, CHECKPOINT_JSON))) ?? 0,
  );
  if (changed === 0) return null;
  const idleSeconds = (Date.now() - changed) / 1000;
  const finished = totalSteps !== null && typeof state?.step === "number" &&
    state.step >= totalSteps;
  const previews: string[] = [];
  try {
    for await (const e of Deno.readDir(join(dir, "samples"))) {
      if (e.isFile && /^epoch-\d+\.png$/.test(e.name)) previews.push(`${rel}/samples/${e.name}`);
    }
  } catch {
    // no previews yet
  }
  previews.sort().reverse();
  const gif = (await mtime(join(dir, "progress.gif"))) !== null ? `${rel}/progress.gif` : null;
  const apng = (await mtime(join(dir, "progress.png"))) !== null ? `${rel}/progress.png` : null;
  return {
    path: rel,
    name: rel === "" ? basename(root) : rel,
    kind: String(state?.kind ?? ""),
    preset: String(config.preset ?? ""),
    backend: String(state?.backend ?? ""),
    step,
    totalSteps,
    imagesPerSecond: ips,
    etaSeconds: finished ? 0 : eta,
    state: finished ? "finished" : idleSeconds < ACTIVE_SECONDS ? "training" : "interrupted",
    previews,
    gif,
    apng,
    config,
    idleSeconds,
  };
}
