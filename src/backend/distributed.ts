/**
 * Data-parallel collectives on libtorch's c10d, through the shim's native/distributed/ C ABI:
 * TCPStore rendezvous, ProcessGroupGloo (CPU tensors) or ProcessGroupNCCL (CUDA builds).
 * A backend capability: the trainer, sampler and FID use it; models never see it.
 *
 * Every call blocks until all ranks took part or `timeoutMs` passed; a failure throws a
 * {@link DistributedError} whose message names the collective and, when it can be told, the
 * rank that died or hangs.
 *
 * @module
 */
import type { Backend, Tensor, ValueAndGrad } from "./backend.ts";
import { type TorchInternals, torchInternals } from "./torch.ts";
import { cString, locateLibrary } from "./torch_ffi.ts";

const P = "pointer";

/** The C ABI of native/distributed/distributed.h. */
export const DIST_SYMBOLS = {
  dd_dist_last_error: { parameters: [], result: P },
  dd_dist_available: { parameters: ["i32"], result: "i32" },
  dd_dist_init: {
    parameters: ["buffer", "i32", "i32", "i32", "i32", "i32", "i64", "buffer", "buffer"],
    result: "i32",
  },
  dd_dist_free: { parameters: [P], result: "void" },
  dd_dist_all_reduce_mean: { parameters: [P, "buffer", "i32", "i64"], result: "i32" },
  dd_dist_grad_mean: {
    parameters: [P, P, "buffer", "i32", "i64", "i64", "buffer", "buffer"],
    result: "i32",
  },
  dd_dist_broadcast: { parameters: [P, "buffer", "i32", "i32"], result: "i32" },
  dd_dist_all_reduce_sum_f64: { parameters: [P, "buffer", "i32"], result: "i32" },
  dd_dist_all_gather_f32: { parameters: [P, "buffer", "i64", "buffer"], result: "i32" },
  dd_dist_barrier: { parameters: [P], result: "i32" },
  dd_dist_sync_batch_norm: {
    parameters: [P, P, P, P, P, P, "f64", "f64", "buffer"],
    result: "i32",
  },
} as const satisfies Deno.ForeignLibraryInterface;

type DistLib = Deno.DynamicLibrary<typeof DIST_SYMBOLS>["symbols"];

/** A collective or rendezvous that failed; the message says which and why. */
export class DistributedError extends Error {
  /** `op`: the collective or step that failed; `message`: why. */
  constructor(readonly op: string, message: string) {
    super(`${op}: ${message}`);
    this.name = "DistributedError";
  }
}

/** Collective library: Gloo for CPU tensors, NCCL for CUDA tensors. */
export type CollectiveBackend = "gloo" | "nccl";

/** Where and how to join a job; the torchrun variables map onto it one to one. */
export interface ProcessGroupOptions {
  /** MASTER_ADDR: the host of rank 0 (loopback for one machine). */
  masterAddr: string;
  /** MASTER_PORT: a free TCP port on rank 0's host. */
  masterPort: number;
  /** RANK, 0..worldSize-1. */
  rank: number;
  /** WORLD_SIZE: processes in the whole job. */
  worldSize: number;
  /** Default "gloo" on CPU backends, "nccl" on torch-cuda. */
  collectives?: CollectiveBackend;
  /** Bound on every wait (rendezvous, each collective). Default 5 minutes. */
  timeoutMs?: number;
  /** A hash of the run's configuration: ranks whose hashes differ refuse to start. */
  configHash: string;
  /** Gradient bucket size for {@link ProcessGroup.allReduceMean}. Default 25 MiB (as DDP). */
  bucketBytes?: number;
  /**
   * Whether {@link ProcessGroup.valueAndGradMean} overlaps the all-reduce with the backward
   * pass. Default: on with Gloo, off with NCCL (not tried on a GPU yet); the environment
   * variable `DENO_DIFFUSION_DDP_OVERLAP=0` or `=1` overrides the default.
   */
  overlap?: boolean;
}

/**
 * What the gradient averaging of {@link ProcessGroup.valueAndGradMean} did, summed over its
 * calls: how much of the all-reduce ran while backward was still computing.
 */
export interface GradientSyncStats {
  /** Calls of valueAndGradMean (world size > 1). */
  steps: number;
  /** Of those, the ones that overlapped the all-reduce with backward. */
  overlappedSteps: number;
  /** Buckets all-reduced by the overlapped steps. */
  buckets: number;
  /** Of those, the ones launched before backward ended. */
  bucketsLaunchedInBackward: number;
  /** Time in backward (overlapped steps; the shim's clock). */
  backwardMs: number;
  /** Time the step waited for communication after its gradients were computed. */
  exposedMs: number;
  /** Time during which an all-reduce was in flight. */
  inFlightMs: number;
  /** Of inFlightMs, the part before backward ended, hidden behind computation. */
  hiddenMs: number;
}

function noStats(): GradientSyncStats {
  return {
    steps: 0,
    overlappedSteps: 0,
    buckets: 0,
    bucketsLaunchedInBackward: 0,
    backwardMs: 0,
    exposedMs: 0,
    inFlightMs: 0,
    hiddenMs: 0,
  };
}

/** The first bucket of an overlapped step: small, so the first collective starts early (DDP). */
const FIRST_BUCKET_BYTES = 2 ** 20;

function overlapDefault(collectives: CollectiveBackend): boolean {
  const env = Deno.env.get("DENO_DIFFUSION_DDP_OVERLAP");
  if (env === "0" || env === "1") return env === "1";
  if (env !== undefined && env !== "") {
    throw new DistributedError(
      "init",
      `DENO_DIFFUSION_DDP_OVERLAP must be 0 or 1, got ${JSON.stringify(env)}`,
    );
  }
  return collectives === "gloo";
}

/** Default bound on every distributed wait: 5 minutes. */
export const DEFAULT_TIMEOUT_MS = 5 * 60 * 1000;

let loaded: DistLib | undefined;

async function loadDistLibrary(backendName = "torch-cpu"): Promise<DistLib> {
  if (loaded) return loaded;
  const path = await locateLibrary(backendName);
  try {
    loaded = Deno.dlopen(path, DIST_SYMBOLS).symbols;
  } catch (e) {
    throw new DistributedError(
      "init",
      `the shim at ${path} has no data-parallel functions (${
        e instanceof Error ? e.message : String(e)
      }); rebuild it with \`deno task build:native --force\``,
    );
  }
  return loaded;
}

function cBytes(s: string): Uint8Array {
  return new TextEncoder().encode(s + "\0");
}

/**
 * One process's membership of a data-parallel job, bound to one torch backend.
 *
 * @example
 * ```ts ignore
 * import { ProcessGroup } from "./distributed.ts";
 * const group = await ProcessGroup.init(backend, {
 *   masterAddr: "127.0.0.1", masterPort: 29500, rank: 0, worldSize: 2, configHash: "abc",
 * });
 * group.allReduceMean(grads); // every rank now holds the mean gradient
 * group.dispose();
 * ```
 */
export class ProcessGroup {
  /** This process's rank, 0..worldSize-1. */
  readonly rank: number;
  /** Processes in the job. */
  readonly worldSize: number;
  /** The collective library in use. */
  readonly collectives: CollectiveBackend;
  /**
   * Whether {@link ProcessGroup.valueAndGradMean} overlaps communication with backward. May be
   * switched between steps, on every rank alike.
   */
  overlap: boolean;
  readonly #backend: Backend;
  readonly #stats = noStats();
  readonly #lib: DistLib;
  readonly #torch: TorchInternals;
  readonly #bucketBytes: number;
  #handle: Deno.PointerValue;

  private constructor(
    backend: Backend,
    lib: DistLib,
    torch: TorchInternals,
    handle: Deno.PointerValue,
    options: ProcessGroupOptions,
    collectives: CollectiveBackend,
  ) {
    this.#lib = lib;
    this.#torch = torch;
    this.#handle = handle;
    this.rank = options.rank;
    this.worldSize = options.worldSize;
    this.collectives = collectives;
    this.#backend = backend;
    this.#bucketBytes = options.bucketBytes ?? 25 * 2 ** 20;
    this.overlap = options.overlap ?? overlapDefault(collectives);
  }

  /**
   * Joins the job: rendezvous with every rank through rank 0's TCPStore, compare world sizes and
   * config hashes, connect the process group. Throws a {@link DistributedError} naming the
   * problem (port in use, master unreachable, a rank missing, a mismatch) within `timeoutMs`.
   */
  static async init(backend: Backend, options: ProcessGroupOptions): Promise<ProcessGroup> {
    const torch = torchInternals(backend);
    if (torch === null) {
      throw new DistributedError(
        "init",
        `backend ${backend.name} cannot train data-parallel: use --backend torch-cpu or torch-cuda`,
      );
    }
    const { rank, worldSize, masterPort } = options;
    if (!Number.isInteger(worldSize) || worldSize < 1) {
      throw new DistributedError("init", `WORLD_SIZE must be a positive integer, got ${worldSize}`);
    }
    if (!Number.isInteger(rank) || rank < 0 || rank >= worldSize) {
      throw new DistributedError("init", `RANK ${rank} is outside 0..${worldSize - 1}`);
    }
    if (!Number.isInteger(masterPort) || masterPort < 1 || masterPort > 65535) {
      throw new DistributedError("init", `MASTER_PORT ${masterPort} is not a TCP port (1..65535)`);
    }
    const collectives = options.collectives ?? (backend.name === "torch-cuda" ? "nccl" : "gloo");
    if (options.overlap === undefined) overlapDefault(collectives); // a bad value fails here
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    if (!(timeoutMs >= 1)) throw new DistributedError("init", `timeout must be >= 1 ms`);
    const lib = await loadDistLibrary(backend.name);
    const code = collectives === "nccl" ? 1 : 0;
    const out = new BigUint64Array(1);
    const status = await Promise.resolve(lib.dd_dist_init(
      cBytes(options.masterAddr),
      masterPort,
      rank,
      worldSize,
      code,
      0,
      BigInt(Math.round(timeoutMs)),
      cBytes(options.configHash),
      out,
    ));
    if (status !== 0) throw new DistributedError("init", cString(lib.dd_dist_last_error()));
    return new ProcessGroup(
      backend,
      lib,
      torch,
      Deno.UnsafePointer.create(out[0]),
      options,
      collectives,
    );
  }

  #live(op: string): Deno.PointerValue {
    if (this.#handle === null) throw new DistributedError(op, "the process group was disposed");
    return this.#handle;
  }

  #check(status: number, op: string): void {
    if (status !== 0) throw new DistributedError(op, cString(this.#lib.dd_dist_last_error()));
  }

  /** tensors[i] <- mean over ranks of tensors[i] (gradients), through flat buckets. */
  allReduceMean(tensors: readonly Tensor[]): void {
    if (this.worldSize === 1 || tensors.length === 0) return;
    const handles = this.#torch.addresses(tensors, "allReduceMean");
    this.#check(
      this.#lib.dd_dist_all_reduce_mean(
        this.#live("all_reduce"),
        handles,
        tensors.length,
        BigInt(this.#bucketBytes),
      ),
      "all_reduce",
    );
  }

  /**
   * Loss of `lossFn` and its gradients w.r.t. `params`, averaged over ranks: PyTorch DDP's
   * step. With {@link ProcessGroup.overlap} the shim all-reduces buckets of gradients while
   * backward is still producing the rest (native/distributed/overlap.cpp); without it the
   * gradients are all-reduced after backward ({@link ProcessGroup.allReduceMean}). The numbers
   * are the same either way; {@link ProcessGroup.gradientSyncStats} tells how much was hidden.
   *
   * @example
   * ```ts ignore
   * const { value, grads } = group.valueAndGradMean(() => lossOf(batch), store.trainable());
   * // value: this rank's loss; grads: the mean over ranks, on every rank
   * console.log(group.gradientSyncStats().bucketsLaunchedInBackward);
   * ```
   */
  valueAndGradMean(lossFn: () => Tensor, params: readonly Tensor[]): ValueAndGrad {
    if (this.worldSize === 1) return this.#backend.valueAndGrad(lossFn, params);
    const stats = this.#stats;
    stats.steps++;
    if (!this.overlap || params.length === 0) {
      const result = this.#backend.valueAndGrad(lossFn, params);
      const start = performance.now();
      this.allReduceMean(result.grads);
      const ms = performance.now() - start;
      stats.exposedMs += ms;
      stats.inFlightMs += ms;
      return result;
    }
    const lib = this.#lib;
    const handle = this.#live("all_reduce");
    const out = new Float64Array(6); // see DD_DIST_OVERLAP_STATS in distributed.h
    const result = this.#torch.valueAndGradWith(lossFn, params, (loss, addrs, n, grads) => {
      this.#check(
        lib.dd_dist_grad_mean(
          handle,
          loss,
          addrs,
          n,
          BigInt(this.#bucketBytes),
          BigInt(Math.min(FIRST_BUCKET_BYTES, this.#bucketBytes)),
          grads,
          out,
        ),
        "all_reduce",
      );
    });
    stats.overlappedSteps++;
    stats.buckets += out[0];
    stats.bucketsLaunchedInBackward += out[1];
    stats.backwardMs += out[2];
    stats.exposedMs += out[3];
    stats.inFlightMs += out[4];
    stats.hiddenMs += out[5];
    return result;
  }

  /** Totals of every {@link ProcessGroup.valueAndGradMean} call so far. */
  gradientSyncStats(): GradientSyncStats {
    return { ...this.#stats };
  }

  /** tensors[i] <- rank `root`'s tensors[i], in place (weights, buffers, optimizer moments). */
  broadcast(tensors: readonly Tensor[], root = 0): void {
    if (this.worldSize === 1 || tensors.length === 0) return;
    const handles = this.#torch.addresses(tensors, "broadcast");
    this.#check(
      this.#lib.dd_dist_broadcast(this.#live("broadcast"), handles, tensors.length, root),
      "broadcast",
    );
  }

  /** values[i] <- sum over ranks of values[i], in place; returns `values`. */
  allReduceSum(values: Float64Array): Float64Array {
    if (this.worldSize > 1 && values.length > 0) {
      this.#check(
        this.#lib.dd_dist_all_reduce_sum_f64(this.#live("all_reduce"), values, values.length),
        "all_reduce",
      );
    }
    return values;
  }

  /**
   * Every rank's `data` (same length on every rank), concatenated in rank order:
   * [worldSize * data.length].
   */
  allGather(data: Float32Array): Float32Array {
    const out = new Float32Array(data.length * this.worldSize);
    if (this.worldSize === 1) {
      out.set(data);
      return out;
    }
    this.#check(
      this.#lib.dd_dist_all_gather_f32(this.#live("all_gather"), data, BigInt(data.length), out),
      "all_gather",
    );
    return out;
  }

  /** Returns once every rank called it. */
  barrier(): void {
    if (this.worldSize > 1) {
      this.#check(this.#lib.dd_dist_barrier(this.#live("barrier")), "barrier");
    }
  }

  /**
   * While on, the bound backend's training-mode BatchNorm uses the statistics of every rank's
   * batch together (SyncBatchNorm), so R ranks x B images normalise as one process with R*B.
   */
  syncBatchNorm(on: boolean): void {
    if (!on || this.worldSize === 1) {
      this.#torch.setTrainingBatchNorm(null);
      return;
    }
    const lib = this.#lib;
    const group = this.#live("syncBatchNorm");
    this.#torch.setTrainingBatchNorm({
      run: (x, weight, bias, mean, variance, momentum, eps, out) =>
        lib.dd_dist_sync_batch_norm(group, x, weight, bias, mean, variance, momentum, eps, out),
      lastError: () => cString(lib.dd_dist_last_error()),
    });
  }

  /** Leaves the job (idempotent); the backend's BatchNorm is its own again. */
  dispose(): void {
    if (this.#handle === null) return;
    this.#torch.setTrainingBatchNorm(null);
    this.#lib.dd_dist_free(this.#handle);
    this.#handle = null;
  }

  /** Same as {@link ProcessGroup.dispose}, for `using`. */
  [Symbol.dispose](): void {
    this.dispose();
  }
}

/**
 * Whether the loaded shim was built with `collectives` (Gloo needs libgloo-dev at build time;
 * NCCL a CUDA libtorch with nccl.h).
 *
 * @example
 * ```ts ignore
 * import { collectivesAvailable } from "./distributed.ts";
 * console.log(await collectivesAvailable("gloo")); // true on a shim built with libgloo-dev
 * ```
 */
export async function collectivesAvailable(collectives: CollectiveBackend): Promise<boolean> {
  const lib = await loadDistLibrary();
  return lib.dd_dist_available(collectives === "nccl" ? 1 : 0) === 1;
}
