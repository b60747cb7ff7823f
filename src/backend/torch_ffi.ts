/**
 * The C ABI of the native shim (native/shim.h) as a Deno FFI symbol table, and the loader that
 * finds (or builds) the shim: `$DENO_DIFFUSION_NATIVE` > native/build/ beside this module.
 * Used by torch.ts only.
 *
 * @module
 */

const H = "pointer"; // a tensor handle
const OUT = "buffer"; // dd_out: handle, dtype, rank, sizes[8]

/** The shim's C ABI (native/shim.h). */
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
} as const satisfies Deno.ForeignLibraryInterface;

export type Lib = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

// Op codes from native/shim.h.
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

async function locateLibrary(): Promise<string> {
  const { nativeLibraryName, nativeLibraryPath, ensureNativeLibrary } = await import(
    "../../native/build.ts"
  );
  const tried: string[] = [];
  const fromEnv = Deno.env.get("DENO_DIFFUSION_NATIVE");
  if (fromEnv) {
    const candidate = isFile(fromEnv) ? fromEnv : `${fromEnv}/${nativeLibraryName()}`;
    if (isFile(candidate)) return candidate;
    throw new Error(
      `$DENO_DIFFUSION_NATIVE=${fromEnv} does not name the shim library; tried ${fromEnv} and ` +
        `${candidate}. Unset it to use native/build/, or build with \`deno task build:native\`.`,
    );
  }
  tried.push("$DENO_DIFFUSION_NATIVE (unset)");
  if (!import.meta.url.startsWith("file:")) {
    throw new Error(
      `${tried.join("; ")}; this module is not on the local disk (${import.meta.url}), so there ` +
        "is no native/build/ beside it: set DENO_DIFFUSION_NATIVE to a built libdd_shim",
    );
  }
  const built = nativeLibraryPath();
  tried.push(built);
  try {
    // Builds when libtorch is present but the shim is missing or stale; says so on stderr.
    return await ensureNativeLibrary({ log: (msg: string) => console.error(`[torch] ${msg}`) });
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    throw new Error(`no usable shim library; tried ${tried.join("; ")}: ${why}`);
  }
}

/**
 * Loads (once per process) the shim library, building it first if needed.
 *
 * @example
 * ```ts
 * import { cString, loadLibrary } from "./torch_ffi.ts";
 * const lib = await loadLibrary();
 * console.log(cString(lib.dd_version())); // "1.13.0"
 * ```
 */
export function loadLibrary(): Promise<Lib> {
  loaded ??= (async () => {
    const path = await locateLibrary();
    // libgomp reads this when libtorch loads. Spinning OpenMP workers (the default) make small
    // ops 10-50x slower whenever the cores are shared with other processes (measured here: a
    // [4,3,8,8] conv took 58 ms spinning, 1.2 ms passive, same speed for large convs).
    if (Deno.env.get("OMP_WAIT_POLICY") === undefined) Deno.env.set("OMP_WAIT_POLICY", "PASSIVE");
    try {
      return Deno.dlopen(path, SYMBOLS).symbols;
    } catch (e) {
      throw new Error(`could not load ${path}: ${e instanceof Error ? e.message : String(e)}`);
    }
  })();
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
