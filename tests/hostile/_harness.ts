/**
 * Runs the CLI as a subprocess under watch for the hostile-input suite: a wall-clock bound
 * (the process is killed past it: a hang fails instead of stalling the suite), its peak
 * resident memory (VmHWM from /proc, polled), and the files it leaves behind.
 *
 * @module
 */

import { type CliOptions, type CliRun, runCli as runTestCli } from "../_cli.ts";

export type { CliRun };

/**
 * Runs `cli.ts ARGS` with `timeoutMs` as the bound (default 60 s); the torch-cpu backend unless
 * `env` says otherwise.
 */
export function runCli(args: string[], options: CliOptions = {}): Promise<CliRun> {
  return runTestCli(args, {
    ...options,
    timeoutMs: options.timeoutMs ?? 60_000,
    env: { DENO_DIFFUSION_BACKEND: "torch-cpu", ...options.env },
  });
}

/** Every path under `dir` (recursive, relative), with its size and mtime, for "nothing new". */
export async function snapshot(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  async function walk(sub: string) {
    for await (const e of Deno.readDir(`${dir}/${sub}`)) {
      const rel = sub ? `${sub}/${e.name}` : e.name;
      const info = await Deno.lstat(`${dir}/${rel}`);
      out.set(rel, `${info.size}:${info.mtime?.getTime()}`);
      if (e.isDirectory) await walk(rel);
    }
  }
  await walk("");
  return out;
}

/** Paths of `after` that are new or changed against `before`. */
export function changes(before: Map<string, string>, after: Map<string, string>): string[] {
  return [...after].filter(([p, v]) => before.get(p) !== v).map(([p]) => p).sort();
}

/** Runs `jobs` with at most `width` at a time; results in order. */
export async function inBatches<T>(jobs: (() => Promise<T>)[], width: number): Promise<T[]> {
  const results: T[] = new Array(jobs.length);
  let next = 0;
  const worker = async () => {
    while (next < jobs.length) {
      const i = next++;
      results[i] = await jobs[i]();
    }
  };
  await Promise.all(Array.from({ length: Math.min(width, jobs.length) }, worker));
  return results;
}
