/**
 * What a data-parallel command does around its work, shared by `train` (and meant for `sample`
 * and `fid`): `--nproc N` outside a job starts the launcher; inside a job (the torchrun
 * variables set) the process picks its CPU threads and GPU before the backend loads, then joins
 * the process group with a hash of its configuration.
 *
 * @module
 */
import type { Backend } from "../backend/backend.ts";
import { DEFAULT_TIMEOUT_MS, ProcessGroup } from "../backend/distributed.ts";
import {
  launch,
  pinLocalGpu,
  readTorchrunEnv,
  threadsPerRank,
  type TorchrunEnv,
} from "./launch.ts";

/** The launcher's own flags: removed from the command the ranks run. */
const LAUNCHER_FLAGS = ["--nproc", "--master-port"];

/**
 * `argv` without the launcher's flags (`--nproc N`, `--nproc=N`, `--master-port P`).
 *
 * @example
 * ```ts
 * import { stripLauncherFlags } from "./parallel.ts";
 * console.log(stripLauncherFlags(["--nproc", "2", "--epochs=3", "--master-port=29501"])); // ["--epochs=3"]
 * ```
 */
export function stripLauncherFlags(argv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    if (LAUNCHER_FLAGS.includes(flag)) {
      i++; // its value
      continue;
    }
    if (LAUNCHER_FLAGS.some((f) => flag.startsWith(`${f}=`))) continue;
    out.push(flag);
  }
  return out;
}

/** Throws when `backendFlag` names a backend that cannot run data-parallel. */
export function requireTorchForParallel(backendFlag: string, nproc: number): void {
  if (nproc > 1 && backendFlag.startsWith("tfjs")) {
    throw new Error(
      `--backend ${backendFlag} cannot run ${nproc} processes: data parallelism runs on ` +
        "libtorch's process groups; use --backend torch-cpu (Gloo) or torch-cuda (NCCL)",
    );
  }
}

/** Options of {@link launchRanks}. */
export interface LaunchRanksOptions {
  nproc: number;
  masterPort?: number;
  /** The --backend flag's value ("auto", "torch-cpu", ...). */
  backendFlag: string;
  /** Pin one GPU per rank (torch-cuda). */
  gpus: boolean;
}

/**
 * Runs `cli.ts <command> <argv without launcher flags>` as `nproc` ranks on this machine and
 * returns the job's exit code. Ctrl-C on the launcher asks every rank to stop after its current
 * step and write its checkpoint (SIGTERM to the ranks, which ignore the terminal's own SIGINT so
 * they do not get it twice); a second Ctrl-C kills them.
 *
 * @example
 * ```ts ignore
 * import { launchRanks } from "./parallel.ts";
 * Deno.exit(await launchRanks("train", Deno.args, { nproc: 2, backendFlag: "torch-cpu", gpus: false }));
 * ```
 */
export async function launchRanks(
  command: string,
  argv: readonly string[],
  options: LaunchRanksOptions,
): Promise<number> {
  requireTorchForParallel(options.backendFlag, options.nproc);
  const cli = new URL("../../cli.ts", import.meta.url);
  const script = cli.protocol === "file:" ? decodeURIComponent(cli.pathname) : cli.href;
  const controller = new AbortController();
  let interrupts = 0;
  const onSigint = () => {
    interrupts++;
    if (interrupts === 1) {
      console.error("\ninterrupt: every rank finishes its step and rank 0 writes a checkpoint");
      controller.abort();
    } else {
      Deno.exit(130);
    }
  };
  Deno.addSignalListener("SIGINT", onSigint);
  Deno.env.set("DENO_DIFFUSION_LAUNCHED", "1");
  try {
    const { code } = await launch({
      nproc: options.nproc,
      command: [script, command, ...stripLauncherFlags(argv)],
      masterPort: options.masterPort,
      gpus: options.gpus,
      signal: controller.signal,
      stopSignal: "SIGTERM",
    });
    return code;
  } finally {
    Deno.env.delete("DENO_DIFFUSION_LAUNCHED");
    Deno.removeSignalListener("SIGINT", onSigint);
  }
}

/**
 * Called by a command before its backend loads: inside a job of several ranks, checks the
 * backend, gives this rank its share of the CPU cores (unless DENO_DIFFUSION_TORCH_THREADS is
 * set) and its own GPU (LOCAL_RANK). Returns the job, or null for a plain single process.
 */
export function prepareRank(backendFlag: string): TorchrunEnv | null {
  const env = readTorchrunEnv();
  if (env === null || env.worldSize === 1) return env;
  requireTorchForParallel(backendFlag, env.worldSize);
  if (Deno.env.get("DENO_DIFFUSION_TORCH_THREADS") === undefined) {
    const cores = navigator.hardwareConcurrency || 1;
    Deno.env.set("DENO_DIFFUSION_TORCH_THREADS", String(threadsPerRank(cores, env.localWorldSize)));
  }
  if (backendFlag !== "torch-cpu") {
    // NCCL collectives only honour the timeout (and so notice a dead rank) with asynchronous
    // error handling, which libtorch 1.x leaves off by default.
    if (
      Deno.env.get("NCCL_ASYNC_ERROR_HANDLING") === undefined &&
      Deno.env.get("TORCH_NCCL_ASYNC_ERROR_HANDLING") === undefined
    ) {
      Deno.env.set("NCCL_ASYNC_ERROR_HANDLING", "1");
    }
    const visible: Record<string, string | undefined> = {
      CUDA_VISIBLE_DEVICES: Deno.env.get("CUDA_VISIBLE_DEVICES"),
    };
    const pinned = pinLocalGpu(env.localRank, visible);
    if (pinned !== null) Deno.env.set("CUDA_VISIBLE_DEVICES", pinned);
  }
  return env;
}

/**
 * The signals that mean "stop after this step and checkpoint" for this process: SIGTERM and
 * (unless started by our launcher, which turns the terminal's Ctrl-C into SIGTERM) SIGINT.
 */
export function interruptSignals(): Deno.Signal[] {
  return Deno.env.get("DENO_DIFFUSION_LAUNCHED") === "1" ? ["SIGTERM"] : ["SIGINT", "SIGTERM"];
}

/**
 * Joins the job described by `env` on `backend`; every rank passes a hash of the same
 * configuration or all refuse to start. Returns undefined for a single process.
 */
export async function joinJob(
  backend: Backend,
  env: TorchrunEnv | null,
  config: unknown,
  timeoutSeconds?: number,
): Promise<ProcessGroup | undefined> {
  if (env === null || env.worldSize === 1) return undefined;
  return await ProcessGroup.init(backend, {
    masterAddr: env.masterAddr,
    masterPort: env.masterPort,
    rank: env.rank,
    worldSize: env.worldSize,
    timeoutMs: timeoutSeconds !== undefined ? timeoutSeconds * 1000 : DEFAULT_TIMEOUT_MS,
    configHash: await configHash(config),
  });
}

/**
 * First 16 hex digits of the SHA-256 of `value`'s JSON.
 *
 * @example
 * ```ts
 * import { configHash } from "./parallel.ts";
 * console.log((await configHash({ lr: 2e-4 })).length); // 16
 * ```
 */
export async function configHash(value: unknown): Promise<string> {
  const bytes = new TextEncoder().encode(JSON.stringify(value));
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(digest.subarray(0, 8), (b) => b.toString(16).padStart(2, "0")).join("");
}
