/**
 * Runs a job of several `deno run` processes on this machine, one per rank, the way the
 * data-parallel tests need it: loopback only, a free port picked here, every wait bounded.
 *
 * @module
 */

export { freeLoopbackPort as freePort } from "../src/app/launch.ts";

/** What one rank's process did. */
export interface RankResult {
  code: number;
  signal: string | null;
  stdout: string;
  stderr: string;
  /** Wall seconds from the start of the job to this process's exit. */
  seconds: number;
}

/** The torchrun variables of rank `rank` of `worldSize` on this machine. */
export function rankEnv(rank: number, worldSize: number, port: number): Record<string, string> {
  return {
    MASTER_ADDR: "127.0.0.1",
    MASTER_PORT: String(port),
    RANK: String(rank),
    WORLD_SIZE: String(worldSize),
    LOCAL_RANK: String(rank),
    LOCAL_WORLD_SIZE: String(worldSize),
    DENO_DIFFUSION_TORCH_THREADS: "1",
  };
}

/**
 * Starts one `deno run -A <script> ...args` per entry of `envs` and waits for all, killing
 * whatever still runs after `timeoutMs` (then the test fails on its exit codes).
 */
export async function runRanks(
  script: string | URL,
  args: string[],
  envs: Record<string, string>[],
  timeoutMs: number,
): Promise<RankResult[]> {
  const started = performance.now();
  const path = script instanceof URL ? decodeURIComponent(script.pathname) : script;
  const children = envs.map((env) =>
    new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", path, ...args],
      env,
      stdout: "piped",
      stderr: "piped",
    }).spawn()
  );
  const timer = setTimeout(() => {
    for (const child of children) {
      try {
        child.kill("SIGKILL");
      } catch { /* already exited */ }
    }
  }, timeoutMs);
  try {
    return await Promise.all(children.map(async (child) => {
      const out = await child.output();
      const decoder = new TextDecoder();
      return {
        code: out.code,
        signal: out.signal,
        stdout: decoder.decode(out.stdout),
        stderr: decoder.decode(out.stderr),
        seconds: (performance.now() - started) / 1000,
      };
    }));
  } finally {
    clearTimeout(timer);
  }
}

/** The last line of `stdout` that parses as JSON (a worker's result). */
export function lastJson<T>(stdout: string): T {
  const lines = stdout.trim().split("\n").reverse();
  for (const line of lines) {
    try {
      return JSON.parse(line) as T;
    } catch { /* progress or log text */ }
  }
  throw new Error(`no JSON line in the output:\n${stdout}`);
}
