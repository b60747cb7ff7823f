/**
 * What the CLI tests share: running `cli.ts` as a child process with a bounded wait, and a run
 * folder holding a freshly initialised model, as `train` leaves one.
 *
 * @module
 */
import { createTask, type TaskConfig } from "../../src/app/registry.ts";
import type { Backend } from "../../src/backend/backend.ts";
import { Rng } from "../../src/core/rng.ts";
import { saveCheckpoint } from "../../src/train/checkpoint.ts";

/** cli.ts of this checkout. */
export const CLI: string = new URL("../../cli.ts", import.meta.url).pathname;

/** What one CLI run printed, and its exit status. */
export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Options of {@link runCli}. */
export interface CliOptions {
  /** Added to (and overriding) `DENO_DIFFUSION_TORCH_THREADS=1`. */
  env?: Record<string, string>;
  cwd?: string;
  /** The child is killed (and the test then fails on its status) after this long. */
  timeoutMs?: number;
  /** Called with the child's pid once it runs; what it returns is called when it exits. */
  onSpawn?: (pid: number) => () => void;
}

/** Spawns `deno run -A cli.ts ...args` with piped output. */
export function spawnCli(args: string[], options: CliOptions = {}): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, ...args],
    cwd: options.cwd,
    stdout: "piped",
    stderr: "piped",
    env: { DENO_DIFFUSION_TORCH_THREADS: "1", ...options.env },
  }).spawn();
}

/** Runs `cli.ts ...args` to its end (or to `timeoutMs`, default 3 minutes). */
export async function runCli(args: string[], options: CliOptions = {}): Promise<CliRun> {
  const child = spawnCli(args, options);
  const stop = options.onSpawn?.(child.pid);
  const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 180_000);
  try {
    const out = await child.output();
    const decode = (b: Uint8Array) => new TextDecoder().decode(b);
    return { code: out.code, stdout: decode(out.stdout), stderr: decode(out.stderr) };
  } finally {
    clearTimeout(timer);
    stop?.();
  }
}

/** Writes `dir` as a run folder of an untrained model of `spec` (seed 3, one step planned). */
export async function makeFreshRun(
  backend: Backend,
  dir: string,
  spec: TaskConfig,
  batchSize = 8,
): Promise<void> {
  using task = createTask(backend, spec, 3);
  await Deno.mkdir(dir, { recursive: true });
  await saveCheckpoint(dir, task, {
    step: 0,
    epoch: 0,
    rng: new Rng(1).state(),
    backend: backend.name,
    train: {
      batchSize,
      epochs: 1,
      maxSteps: null,
      seed: 3,
      flip: false,
      stepsPerEpoch: 1,
      totalSteps: 1,
    },
  });
}
