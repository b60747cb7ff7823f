/**
 * The libtorch backend: Deno FFI over the C shim in native/ (torch-cuda, torch-cpu).
 *
 * The shim is found at `$DENO_DIFFUSION_NATIVE` (the library file or its folder), else in
 * native/build/ next to this module; a missing or stale shim makes the backend unavailable with
 * a message saying to run `deno task build:native` (nothing is built here). Gradients are recorded only inside
 * {@link Backend.valueAndGrad}.
 *
 * The backend class is built up in layers, one file each: the handle table, creation, reading
 * and memory (torch_handles.ts), tensor ops (torch_ops.ts), layers and losses (torch_nn.ts),
 * and here autograd, the optimizer steps and float64 linear algebra, with the factory.
 *
 * @module
 */
import {
  type AdamOptions,
  type AdamState,
  type Backend,
  BackendError,
  BackendUnavailableError,
  sizeOf,
  type Tensor,
  type ValueAndGrad,
} from "./backend.ts";
import { cString, type Lib, loadLibrary } from "./torch_ffi.ts";
import { TorchNn, type TrainingBatchNorm } from "./torch_nn.ts";
import type { TorchTensor } from "./torch_tensor.ts";
import * as V from "./validate.ts";

export type { TrainingBatchNorm } from "./torch_nn.ts";

/**
 * A gradient step in place of the shim's dd_grad: d loss / d params into `gradsOut` (new
 * handles), throwing on failure. The data-parallel one averages over ranks during backward.
 */
export type GradientRun = (
  loss: Deno.PointerObject,
  params: BigInt64Array,
  n: number,
  gradsOut: BigInt64Array,
) => void;

/** What src/backend/distributed.ts reaches inside a torch backend. */
export interface TorchInternals {
  addresses(ts: readonly Tensor[], op: string): BigInt64Array;
  setTrainingBatchNorm(hook: TrainingBatchNorm | null): void;
  /** {@link Backend.valueAndGrad} with `grad` computing the gradients. */
  valueAndGradWith(
    lossFn: () => Tensor,
    params: readonly Tensor[],
    grad: GradientRun,
  ): ValueAndGrad;
}

/**
 * The torch-only hooks of `backend`, or null when it is not a torch backend (tfjs).
 *
 * @example
 * ```ts ignore
 * import { torchInternals } from "./torch.ts";
 * if (torchInternals(backend) === null) throw new Error("data parallelism needs torch-cpu or torch-cuda");
 * ```
 */
export function torchInternals(backend: Backend): TorchInternals | null {
  return backend instanceof TorchBackend ? backend : null;
}

/** libtorch through the shim. Create with {@link createTorchBackend}. */
class TorchBackend extends TorchNn implements Backend {
  // ---- autograd and optimisation ----

  valueAndGrad(lossFn: () => Tensor, params: readonly Tensor[]): ValueAndGrad {
    return this.valueAndGradWith(lossFn, params, null);
  }

  valueAndGradWith(
    lossFn: () => Tensor,
    params: readonly Tensor[],
    grad: GradientRun | null,
  ): ValueAndGrad {
    const op = "valueAndGrad";
    params.forEach((p, i) => {
      this.h(p, op);
      if (!(p as TorchTensor).trainable) {
        throw new BackendError(op, [p.shape], `parameter ${i} is not a trainable variable`);
      }
    });
    const paramAddrs = this.addrs(params, op);
    const gradAddrs = new BigInt64Array(params.length);
    let value = NaN;
    const previous = this.lib.dd_set_grad_enabled(1);
    try {
      this.scope(() => {
        const loss = lossFn();
        if (sizeOf(loss.shape) !== 1) {
          throw new BackendError(op, [loss.shape], "lossFn must return a scalar");
        }
        if (grad) {
          grad(this.h(loss, op), paramAddrs, params.length, gradAddrs);
        } else {
          const status = this.lib.dd_grad(this.h(loss, op), paramAddrs, params.length, gradAddrs);
          if (status !== 0) throw this.error(op, [loss]);
        }
        value = this.read(loss)[0];
      });
    } finally {
      this.lib.dd_set_grad_enabled(previous);
    }
    const grads = params.map((p, i) => this.adopt(gradAddrs[i], [...p.shape], "float32"));
    return { value, grads };
  }

  noGrad<T>(fn: () => T): T {
    const previous = this.lib.dd_set_grad_enabled(0);
    try {
      return fn();
    } finally {
      this.lib.dd_set_grad_enabled(previous);
    }
  }

  adamStep(
    params: readonly Tensor[],
    grads: readonly Tensor[],
    state: AdamState,
    opts: AdamOptions,
  ): void {
    const op = "adamStep";
    V.checkAdam(params, grads, state.m, state.v);
    const n = params.length;
    const step = state.step + 1;
    const status = this.lib.dd_adam_step(
      this.addrs(params, op),
      this.addrs(grads, op),
      this.addrs(state.m, op),
      this.addrs(state.v, op),
      n,
      step,
      opts.lr,
      opts.beta1,
      opts.beta2,
      opts.eps,
      opts.weightDecay,
    );
    if (status !== 0) throw this.error(op, []);
    state.step = step;
  }

  emaUpdate(targets: readonly Tensor[], sources: readonly Tensor[], decay: number): void {
    const op = "emaUpdate";
    V.checkPairs(op, targets, sources, ["targets", "sources"]);
    const status = this.lib.dd_ema_update(
      this.addrs(targets, op),
      this.addrs(sources, op),
      targets.length,
      decay,
    );
    if (status !== 0) throw this.error(op, []);
  }

  // ---- float64 linear algebra and autocast ----

  eighFloat64(a: Float64Array, n: number): { values: Float64Array; vectors: Float64Array } {
    V.checkEigh(this.capabilities, a.length, n);
    const values = new Float64Array(n);
    const vectors = new Float64Array(n * n);
    if (this.lib.dd_eigh_f64(a, n, values, vectors) !== 0) {
      throw this.error("eighFloat64", []);
    }
    return { values, vectors };
  }

  eigvalshFloat64(a: Float64Array, n: number): Float64Array {
    V.checkEigh(this.capabilities, a.length, n, "eigvalshFloat64");
    const values = new Float64Array(n);
    if (this.lib.dd_eigvalsh_f64(a, n, values) !== 0) throw this.error("eigvalshFloat64", []);
    return values;
  }

  setAutocast(dtype: "bfloat16" | "float32"): void {
    V.checkAutocast(this.capabilities, dtype);
    if (this.lib.dd_set_autocast(dtype === "bfloat16" ? 1 : 0) !== 0) {
      throw this.error("setAutocast", []);
    }
  }
}

/**
 * Loads the shim (never building it) and returns a libtorch backend on the given device. CPU
 * ops use every core unless `DENO_DIFFUSION_TORCH_THREADS` says otherwise (1 is faster for tiny
 * tensors on a busy machine). Throws {@link BackendUnavailableError} with the paths tried or the
 * reason the device cannot be used.
 *
 * @example
 * ```ts
 * import { createTorchBackend } from "./torch.ts";
 * const torch = await createTorchBackend("cpu");
 * const x = torch.tensor([1, 2, 3], [3]);
 * console.log(torch.read(torch.mul(x, 2))); // Float32Array [2, 4, 6]
 * torch.dispose();
 * ```
 */
export async function createTorchBackend(device: "cuda" | "cpu"): Promise<Backend> {
  const name = device === "cuda" ? "torch-cuda" : "torch-cpu";
  let lib: Lib;
  try {
    lib = await loadLibrary(name);
  } catch (e) {
    const why = e instanceof BackendUnavailableError
      ? e.reason
      : e instanceof Error
      ? e.message
      : String(e);
    throw new BackendUnavailableError(name, why);
  }
  const cuda = device === "cuda" ? 1 : 0;
  const threadsEnv = Deno.env.get("DENO_DIFFUSION_TORCH_THREADS");
  const threads = threadsEnv ? Number(threadsEnv) : navigator.hardwareConcurrency ?? 0;
  if (!Number.isInteger(threads) || threads < 0) {
    throw new BackendUnavailableError(
      name,
      `DENO_DIFFUSION_TORCH_THREADS must be a non-negative integer, got "${threadsEnv}"`,
    );
  }
  if (lib.dd_init(cuda, threads) !== 0) {
    throw new BackendUnavailableError(name, cString(lib.dd_last_error()));
  }
  return new TorchBackend(lib, cuda === 1);
}

/**
 * Number of CUDA GPUs libtorch sees (0 without CUDA); throws when the shim cannot load.
 *
 * @example
 * ```ts
 * import { torchCudaDeviceCount } from "./torch.ts";
 * console.log(await torchCudaDeviceCount()); // 0 on a CPU-only libtorch
 * ```
 */
export async function torchCudaDeviceCount(): Promise<number> {
  return (await loadLibrary()).dd_cuda_device_count();
}

/**
 * The libtorch version the shim was built against.
 *
 * @example
 * ```ts
 * import { torchVersion } from "./torch.ts";
 * console.log(await torchVersion()); // "1.13.0"
 * ```
 */
export async function torchVersion(): Promise<string> {
  return cString((await loadLibrary()).dd_version());
}
