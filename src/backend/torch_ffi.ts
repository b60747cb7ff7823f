/**
 * The C ABI of the native shim (native/abi/shim.h) as a Deno FFI symbol table, and the loader
 * that finds and opens the shim: `$DENO_DIFFUSION_NATIVE` > native/build/ beside this module.
 * The loader never builds: `deno task build:native` (or the CLI, which offers it) does.
 * Used by the torch backend (torch*.ts) only.
 *
 * @module
 */

import { BackendUnavailableError } from "./backend.ts";

const H = "pointer"; // a tensor handle
const OUT = "buffer"; // dd_out: handle, dtype, rank, sizes[8]

/** The shim's C ABI (native/abi/shim.h). */
export const SYMBOLS = {
  dd_last_error: { parameters: [], result: "pointer" },
  dd_init: { parameters: ["i32", "i32"], result: "i32" },
  dd_cuda_device_count: { parameters: [], result: "i32" },
  dd_version: { parameters: [], result: "pointer" },
  dd_device_name: { parameters: ["i32"], result: "pointer" },
  dd_live_handles: { parameters: [], result: "i64" },
  dd_set_autocast: { parameters: ["i32"], result: "i32" },
  dd_set_grad_enabled: { parameters: ["i32"], result: "i32" },
  dd_from_data: { parameters: ["buffer", "i32", "buffer", "i32", "i32", OUT], result: "i32" },
  dd_full: { parameters: ["buffer", "i32", "f64", "i32", OUT], result: "i32" },
  dd_read: { parameters: [H, "buffer", "i64"], result: "i32" },
  dd_free: { parameters: [H], result: "void" },
  dd_variable: { parameters: [H, "i32", OUT], result: "i32" },
  dd_assign: { parameters: [H, H], result: "i32" },
  dd_unary: { parameters: ["i32", H, OUT], result: "i32" },
  dd_binary: { parameters: ["i32", H, H, OUT], result: "i32" },
  dd_binary_scalar: { parameters: ["i32", H, "f64", OUT], result: "i32" },
  dd_clamp: { parameters: [H, "f64", "f64", OUT], result: "i32" },
  dd_where: { parameters: [H, H, H, OUT], result: "i32" },
  dd_cast: { parameters: [H, "i32", OUT], result: "i32" },
  dd_softmax: { parameters: [H, "i32", OUT], result: "i32" },
  dd_reduce: { parameters: ["i32", H, "buffer", "i32", "i32", OUT], result: "i32" },
  dd_reshape: { parameters: [H, "buffer", "i32", OUT], result: "i32" },
  dd_permute: { parameters: [H, "buffer", "i32", OUT], result: "i32" },
  dd_slice: { parameters: [H, "buffer", "buffer", "i32", OUT], result: "i32" },
  dd_cat: { parameters: ["buffer", "i32", "i32", OUT], result: "i32" },
  dd_gather: { parameters: [H, H, "i32", OUT], result: "i32" },
  dd_matmul: { parameters: [H, H, OUT], result: "i32" },
  dd_linear: { parameters: [H, H, H, OUT], result: "i32" },
  dd_conv2d: { parameters: [H, H, H, "i32", "i32", "i32", "i32", OUT], result: "i32" },
  dd_conv_transpose2d: { parameters: [H, H, H, "i32", "i32", "i32", OUT], result: "i32" },
  dd_group_norm: { parameters: [H, "i32", H, H, "f64", OUT], result: "i32" },
  dd_layer_norm: { parameters: [H, H, H, "f64", OUT], result: "i32" },
  dd_batch_norm: { parameters: [H, H, H, H, H, "i32", "f64", "f64", OUT], result: "i32" },
  dd_max_pool2d: { parameters: [H, "i32", "i32", "i32", OUT], result: "i32" },
  dd_avg_pool2d: { parameters: [H, "i32", "i32", "i32", "i32", OUT], result: "i32" },
  dd_interpolate_bilinear: { parameters: [H, "i32", "i32", "i32", OUT], result: "i32" },
  dd_attention: { parameters: [H, H, H, OUT], result: "i32" },
  dd_mse_loss: { parameters: [H, H, OUT], result: "i32" },
  dd_bce_with_logits: { parameters: [H, H, OUT], result: "i32" },
  dd_grad: { parameters: [H, "buffer", "i32", "buffer"], result: "i32" },
  dd_adam_step: {
    parameters: [
      "buffer",
      "buffer",
      "buffer",
      "buffer",
      "i32",
      "i32",
      "f64",
      "f64",
      "f64",
      "f64",
      "f64",
    ],
    result: "i32",
  },
  dd_ema_update: { parameters: ["buffer", "buffer", "i32", "f64"], result: "i32" },
  dd_eigh_f64: { parameters: ["buffer", "i32", "buffer", "buffer"], result: "i32" },
  dd_eigvalsh_f64: { parameters: ["buffer", "i32", "buffer"], result: "i32" },
} as const satisfies Deno.ForeignLibraryInterface;

export type Lib = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

// Op codes from native/abi/shim.h.
export const UNARY = {
  neg: 0,
  exp: 1,
  log: 2,
  sqrt: 3,
  abs: 4,
  relu: 5,
  gelu: 6,
  silu: 7,
  tanh: 8,
  sigmoid: 9,
  detach: 10,
} as const;
export const BINARY = { add: 0, sub: 1, mul: 2, div: 3, greater: 4, pow: 5, leakyRelu: 6 } as const;
export const REDUCE = { sum: 0, mean: 1, max: 2 } as const;
/** Activation codes fused into dd_conv2d (DD_ACT_*). */
export const CONV_ACTIVATION = { none: 0, relu: 1 } as const;
/** DD_MAX_RANK: dd_out holds at most this many sizes. */
export const MAX_RANK = 8;

// ---- loading ----

let loaded: Promise<Lib> | undefined;

function isFile(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

const BUILD_HINT = "run `deno task build:native` (needs libtorch and g++)";

/**
 * Finds the shim: `$DENO_DIFFUSION_NATIVE` (a library file or its folder, used as is) or
 * native/build/ beside this module, which must be fresh (native/shim_stamp.ts). Never builds:
 * a missing or stale shim is a {@link BackendUnavailableError} that says how to build it.
 * Other FFI tables over the same library (src/backend/distributed.ts) open this path with their
 * own symbols.
 *
 * @example
 * ```ts ignore
 * import { locateLibrary } from "./torch_ffi.ts";
 * console.log(await locateLibrary("torch-cpu")); // .../native/build/libdd_shim.so
 * ```
 */
export async function locateLibrary(backendName: string): Promise<string> {
  const { nativeLibraryName, shimStatus } = await import("../../native/shim_stamp.ts");
  const unavailable = (why: string, tried: string[]) =>
    new BackendUnavailableError(backendName, `${why}; ${BUILD_HINT}. Tried: ${tried.join("; ")}`);
  const fromEnv = Deno.env.get("DENO_DIFFUSION_NATIVE");
  if (fromEnv) {
    const candidate = isFile(fromEnv) ? fromEnv : `${fromEnv}/${nativeLibraryName()}`;
    if (isFile(candidate)) return candidate;
    throw new BackendUnavailableError(
      backendName,
      `$DENO_DIFFUSION_NATIVE=${fromEnv} does not name the shim library; tried ${fromEnv} and ` +
        `${candidate}. Unset it to use native/build/, or ${BUILD_HINT}`,
    );
  }
  const tried = ["$DENO_DIFFUSION_NATIVE (unset)"];
  if (!import.meta.url.startsWith("file:")) {
    throw unavailable(
      `this module is not on the local disk (${import.meta.url}), so there is no native/build/ ` +
        "beside it: set DENO_DIFFUSION_NATIVE to a built libdd_shim, or",
      tried,
    );
  }
  const status = await shimStatus();
  tried.push(status.path);
  if (!status.fresh) throw unavailable(`the native shim is not usable: ${status.reason}`, tried);
  return status.path;
}

/**
 * Loads (once per process) the shim library. Only locates and opens it: it never compiles and
 * never changes the environment. libgomp reads `OMP_WAIT_POLICY` once, when libtorch loads,
 * and offers no call to change it later, so the shim cannot set it itself: processes that share
 * their cores (the CLI, `deno task test`) set `OMP_WAIT_POLICY=PASSIVE` before loading, as
 * spinning OpenMP workers make small ops 10-50x slower on busy cores.
 *
 * @example
 * ```ts
 * import { cString, loadLibrary } from "./torch_ffi.ts";
 * const lib = await loadLibrary();
 * console.log(cString(lib.dd_version())); // "1.13.0"
 * ```
 */
export function loadLibrary(backendName = "torch-cpu"): Promise<Lib> {
  loaded ??= (async () => {
    const path = await locateLibrary(backendName);
    try {
      return Deno.dlopen(path, SYMBOLS).symbols;
    } catch (e) {
      throw new BackendUnavailableError(
        backendName,
        `could not load ${path}: ${e instanceof Error ? e.message : String(e)}; ${BUILD_HINT}`,
      );
    }
  })();
  // A failed load is not cached: the next call looks again (e.g. after a build).
  loaded.catch(() => {
    loaded = undefined;
  });
  return loaded;
}

/**
 * A C string returned by the shim, as a JS string ("" for NULL).
 *
 * @example
 * ```ts
 * import { cString, loadLibrary } from "./torch_ffi.ts";
 * console.log(cString((await loadLibrary()).dd_last_error()));
 * ```
 */
export function cString(p: Deno.PointerValue): string {
  return p === null ? "" : Deno.UnsafePointerView.getCString(p);
}
