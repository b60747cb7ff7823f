/**
 * Runs the CLI as a subprocess under watch for the hostile-input suite: a wall-clock bound
 * (the process is killed past it: a hang fails instead of stalling the suite), its peak
 * resident memory (VmHWM from /proc, polled), and the files it leaves behind.
 *
 * @module
 */

const CLI = new URL("../../cli.ts", import.meta.url).pathname;

/** What a watched CLI run did. */
export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
  /** Peak resident set size seen, MiB. */
  peakRssMiB: number;
  /** True when it ran past the bound and was killed. */
  killed: boolean;
}

function peakRssKiB(pid: number): number {
  try {
    const status = Deno.readTextFileSync(`/proc/${pid}/status`);
    const m = status.match(/^VmHWM:\s+(\d+) kB/m);
    return m ? Number(m[1]) : 0;
  } catch {
    return 0; // exited between polls
  }
}

/**
 * Runs `cli.ts ARGS` in `cwd` with `timeoutMs` as the bound; the torch-cpu backend with one
 * thread unless `env` says otherwise.
 */
export async function runCli(
  args: string[],
  options: { cwd?: string; env?: Record<string, string>; timeoutMs?: number } = {},
): Promise<CliRun> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, ...args],
    cwd: options.cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: {
      DENO_DIFFUSION_BACKEND: "torch-cpu",
      DENO_DIFFUSION_TORCH_THREADS: "1",
      OMP_WAIT_POLICY: "PASSIVE",
      NO_COLOR: "1",
      ...options.env,
    },
  }).spawn();
  let peak = 0;
  let killed = false;
  const poll = setInterval(() => (peak = Math.max(peak, peakRssKiB(child.pid))), 50);
  const timer = setTimeout(() => {
    killed = true;
    child.kill("SIGKILL");
  }, options.timeoutMs ?? 60_000);
  try {
    const out = await child.output();
    const decode = (b: Uint8Array) => new TextDecoder().decode(b);
    return {
      code: out.code,
      stdout: decode(out.stdout),
      stderr: decode(out.stderr),
      peakRssMiB: peak / 1024,
      killed,
    };
  } finally {
    clearInterval(poll);
    clearTimeout(timer);
  }
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
