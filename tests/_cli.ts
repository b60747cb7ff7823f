/**
 * Runs `cli.ts` as a child process for the tests: one thread, passive OpenMP waits and no
 * colours by default, a wall-clock bound (past it the child is killed, so a hang fails instead
 * of stalling the suite) and its peak resident memory (VmHWM from /proc, polled).
 *
 * @module
 */

/** cli.ts of this checkout. */
export const CLI: string = new URL("../cli.ts", import.meta.url).pathname;

/** What one CLI run did. */
export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
  /** Peak resident set size seen, MiB (0 when the child ended before the first reading). */
  peakRssMiB: number;
  /** True when it ran past the bound and was killed. */
  killed: boolean;
}

/** Options of {@link runCli} and {@link spawnCli}. */
export interface CliOptions {
  /** Added to (and overriding) the defaults above. */
  env?: Record<string, string>;
  cwd?: string;
  /** Default 3 minutes. */
  timeoutMs?: number;
}

/** Spawns `deno run -A cli.ts ...args` with piped output and no stdin. */
export function spawnCli(args: string[], options: CliOptions = {}): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, ...args],
    cwd: options.cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: {
      DENO_DIFFUSION_TORCH_THREADS: "1",
      OMP_WAIT_POLICY: "PASSIVE",
      NO_COLOR: "1",
      ...options.env,
    },
  }).spawn();
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

/** Runs `cli.ts ...args` to its end, or kills it after `timeoutMs`. */
export async function runCli(args: string[], options: CliOptions = {}): Promise<CliRun> {
  const child = spawnCli(args, options);
  let peak = 0;
  let killed = false;
  const poll = setInterval(() => (peak = Math.max(peak, peakRssKiB(child.pid))), 20);
  const timer = setTimeout(() => {
    killed = true;
    child.kill("SIGKILL");
  }, options.timeoutMs ?? 180_000);
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
