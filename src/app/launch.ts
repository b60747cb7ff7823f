/**
 * Starting data-parallel jobs: the torchrun environment (`MASTER_ADDR`, `MASTER_PORT`, `RANK`,
 * `WORLD_SIZE`, `LOCAL_RANK`, `LOCAL_WORLD_SIZE`) read into a {@link TorchrunEnv}, and the
 * one-machine launcher behind `--nproc N`, which starts N copies of the same command with
 * those variables set, shows rank 0's output, and stops every rank when one fails or on Ctrl-C.
 *
 * @module
 */

/** One process's place in a job, as torchrun (or a SLURM script) describes it. */
export interface TorchrunEnv {
  /** MASTER_ADDR: the host of rank 0. */
  masterAddr: string;
  /** MASTER_PORT: the rendezvous port on rank 0's host. */
  masterPort: number;
  /** RANK: this process's rank in the whole job. */
  rank: number;
  /** WORLD_SIZE: processes in the whole job. */
  worldSize: number;
  /** LOCAL_RANK: this process's rank on its machine (its GPU index). */
  localRank: number;
  /** LOCAL_WORLD_SIZE: processes on this machine. */
  localWorldSize: number;
}

/** Default MASTER_PORT, as torchrun's. */
export const DEFAULT_MASTER_PORT = 29500;

function integer(env: Record<string, string | undefined>, name: string, min: number): number {
  const raw = env[name];
  const value = Number(raw);
  if (raw === undefined || raw.trim() === "" || !Number.isInteger(value) || value < min) {
    throw new Error(
      `$${name}=${raw ?? "(unset)"} must be an integer >= ${min}; a data-parallel process ` +
        "needs MASTER_ADDR, MASTER_PORT, RANK and WORLD_SIZE (torchrun sets them; see README, " +
        '"Many GPUs and many machines")',
    );
  }
  return value;
}

/**
 * The torchrun variables of `env`, or null when `WORLD_SIZE` is unset (a plain single process).
 * Throws with the variable named when one is missing or malformed.
 *
 * @example
 * ```ts
 * import { readTorchrunEnv } from "./launch.ts";
 * const env = readTorchrunEnv({ MASTER_ADDR: "10.0.0.1", MASTER_PORT: "29500", RANK: "3", WORLD_SIZE: "8", LOCAL_RANK: "3" });
 * console.log(env?.rank, env?.worldSize); // 3 8
 * ```
 */
export function readTorchrunEnv(
  env: Record<string, string | undefined> = Deno.env.toObject(),
): TorchrunEnv | null {
  if (env.WORLD_SIZE === undefined) return null;
  const worldSize = integer(env, "WORLD_SIZE", 1);
  const rank = integer(env, "RANK", 0);
  if (rank >= worldSize) {
    throw new Error(`$RANK=${rank} must be below $WORLD_SIZE=${worldSize}`);
  }
  const masterAddr = env.MASTER_ADDR?.trim() || (worldSize === 1 ? "127.0.0.1" : "");
  if (!masterAddr) {
    throw new Error("$MASTER_ADDR is unset: set it to the host name or address of rank 0");
  }
  const masterPort = env.MASTER_PORT === undefined
    ? DEFAULT_MASTER_PORT
    : integer(env, "MASTER_PORT", 1);
  if (masterPort > 65535) throw new Error(`$MASTER_PORT=${masterPort} is not a TCP port`);
  const localRank = env.LOCAL_RANK === undefined ? rank : integer(env, "LOCAL_RANK", 0);
  const localWorldSize = env.LOCAL_WORLD_SIZE === undefined
    ? worldSize
    : integer(env, "LOCAL_WORLD_SIZE", 1);
  if (localRank >= localWorldSize) {
    throw new Error(`$LOCAL_RANK=${localRank} must be below $LOCAL_WORLD_SIZE=${localWorldSize}`);
  }
  return { masterAddr, masterPort, rank, worldSize, localRank, localWorldSize };
}

/**
 * CPU threads per rank when N ranks share this machine: the cores split evenly (at least 1).
 *
 * @example
 * ```ts
 * import { threadsPerRank } from "./launch.ts";
 * console.log(threadsPerRank(16, 4)); // 4
 * ```
 */
export function threadsPerRank(cores: number, localWorldSize: number): number {
  return Math.max(1, Math.floor(cores / Math.max(1, localWorldSize)));
}

/**
 * On torch-cuda, makes this process see only GPU `LOCAL_RANK` (as device 0) by narrowing
 * `CUDA_VISIBLE_DEVICES` before libtorch loads; a list already narrowed to one GPU is kept.
 * Returns the value set, or null when nothing changed.
 *
 * @example
 * ```ts
 * import { pinLocalGpu } from "./launch.ts";
 * const env: Record<string, string | undefined> = { CUDA_VISIBLE_DEVICES: "4,5,6,7" };
 * console.log(pinLocalGpu(1, env), env.CUDA_VISIBLE_DEVICES); // "5" "5"
 * ```
 */
export function pinLocalGpu(
  localRank: number,
  env: Record<string, string | undefined>,
): string | null {
  const visible = env.CUDA_VISIBLE_DEVICES?.split(",").map((s) => s.trim()).filter(Boolean);
  if (visible && visible.length === 1) return null;
  const pick = visible ? visible[localRank] : String(localRank);
  if (pick === undefined) {
    throw new Error(
      `LOCAL_RANK ${localRank} has no GPU: CUDA_VISIBLE_DEVICES lists ${visible!.length}`,
    );
  }
  env.CUDA_VISIBLE_DEVICES = pick;
  return pick;
}

/** Options of {@link launch}. */
export interface LaunchOptions {
  /** Processes to start on this machine. */
  nproc: number;
  /** The command after `deno run -A`: a script and its arguments (without --nproc). */
  command: string[];
  /** Default 127.0.0.1 (all ranks on this machine). */
  masterAddr?: string;
  /** Default: a free port picked here. */
  masterPort?: number;
  /** CPU threads per rank; default the machine's cores split evenly. */
  threads?: number;
  /** Pin GPU i to local rank i (torch-cuda). */
  gpus?: boolean;
  /** Seconds to wait for the other ranks after one failed before killing them. Default 10. */
  graceSeconds?: number;
  /** Aborting sends `stopSignal` to every rank; they checkpoint and exit. */
  signal?: AbortSignal;
  /** What an abort sends to the ranks. Default SIGINT. */
  stopSignal?: Deno.Signal;
  /** Where rank > 0 lines go (prefixed "[rank k] "); default stderr. */
  log?: (line: string) => void;
}

/** Exit of one rank. */
export interface RankExit {
  /** The rank that exited. */
  rank: number;
  /** Its exit status. */
  code: number;
  /** The signal that ended it, or null when it exited by itself. */
  signal: string | null;
}

/**
 * Runs `nproc` copies of `deno run -A <command>` as ranks 0..nproc-1 of one job on this machine
 * and waits for them. Rank 0 writes to this terminal; other ranks' output is prefixed with
 * their rank. When a rank exits non-zero, the others get SIGTERM after `graceSeconds` (they
 * usually fail on their own first, naming the dead rank) and SIGKILL 5 s later. Returns the
 * exit code for the whole job: 0 only when every rank exited 0.
 *
 * @example
 * ```ts ignore
 * import { launch } from "./launch.ts";
 * const code = await launch({ nproc: 2, command: ["cli.ts", "train", "--preset", "convnet"] });
 * Deno.exit(code);
 * ```
 */
export async function launch(options: LaunchOptions): Promise<{ code: number; ranks: RankExit[] }> {
  const { nproc } = options;
  if (!Number.isInteger(nproc) || nproc < 1) {
    throw new Error(`--nproc must be a positive integer, got ${nproc}`);
  }
  const port = options.masterPort ?? freeLoopbackPort();
  const threads = options.threads ??
    threadsPerRank(navigator.hardwareConcurrency || 1, nproc);
  const log = options.log ?? ((line: string) => console.error(line));
  const children = Array.from({ length: nproc }, (_, rank) => {
    const env: Record<string, string> = {
      MASTER_ADDR: options.masterAddr ?? "127.0.0.1",
      MASTER_PORT: String(port),
      RANK: String(rank),
      WORLD_SIZE: String(nproc),
      LOCAL_RANK: String(rank),
      LOCAL_WORLD_SIZE: String(nproc),
    };
    if (Deno.env.get("DENO_DIFFUSION_TORCH_THREADS") === undefined) {
      env.DENO_DIFFUSION_TORCH_THREADS = String(threads);
    }
    if (options.gpus) {
      const pinned: Record<string, string | undefined> = {
        CUDA_VISIBLE_DEVICES: Deno.env.get("CUDA_VISIBLE_DEVICES"),
      };
      pinLocalGpu(rank, pinned);
      if (pinned.CUDA_VISIBLE_DEVICES) env.CUDA_VISIBLE_DEVICES = pinned.CUDA_VISIBLE_DEVICES;
    }
    return new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", ...options.command],
      env,
      stdin: "null",
      stdout: rank === 0 ? "inherit" : "piped",
      stderr: rank === 0 ? "inherit" : "piped",
    }).spawn();
  });
  const relays = children.map((child, rank) =>
    rank === 0 ? Promise.resolve() : Promise.all([
      relay(child.stdout, (l) => log(`[rank ${rank}] ${l}`)),
      relay(child.stderr, (l) => log(`[rank ${rank}] ${l}`)),
    ]).then(() => {})
  );
  const send = (signo: Deno.Signal) => {
    for (const child of children) {
      try {
        child.kill(signo);
      } catch { /* exited */ }
    }
  };
  const onAbort = () => send(options.stopSignal ?? "SIGINT");
  options.signal?.addEventListener("abort", onAbort);
  const timers: ReturnType<typeof setTimeout>[] = [];
  let stopping = false;
  const exits = children.map((child, rank) =>
    child.status.then((status): RankExit => {
      if (!status.success && !stopping) {
        stopping = true;
        const grace = (options.graceSeconds ?? 10) * 1000;
        timers.push(setTimeout(() => send("SIGTERM"), grace));
        timers.push(setTimeout(() => send("SIGKILL"), grace + 5000));
      }
      return { rank, code: status.code, signal: status.signal };
    })
  );
  try {
    const ranks = await Promise.all(exits);
    await Promise.all(relays);
    const failed = ranks.filter((r) => r.code !== 0);
    for (const r of failed) {
      log(`rank ${r.rank} exited with ${r.signal ? `signal ${r.signal}` : `code ${r.code}`}`);
    }
    return { code: failed.length === 0 ? 0 : (failed[0].code || 1), ranks };
  } finally {
    for (const t of timers) clearTimeout(t);
    options.signal?.removeEventListener("abort", onAbort);
  }
}

/** A free TCP port on the loopback interface. */
export function freeLoopbackPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

async function relay(stream: ReadableStream<Uint8Array>, line: (text: string) => void) {
  let pending = "";
  const decoder = new TextDecoder();
  for await (const bytes of stream) {
    pending += decoder.decode(bytes, { stream: true });
    const parts = pending.split(/\r?\n|\r/);
    pending = parts.pop() ?? "";
    for (const part of parts) if (part.trim()) line(part);
  }
  pending += decoder.decode();
  if (pending.trim()) line(pending);
}
