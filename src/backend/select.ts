/**
 * Picks a backend: an explicit name (`--backend` flag or `DENO_DIFFUSION_BACKEND`) wins;
 * otherwise the first available of torch-cuda > tfjs-webgpu > torch-cpu > tfjs-wasm > tfjs-cpu,
 * where tfjs-webgpu counts only on a hardware adapter (a software one, e.g. lavapipe, is there
 * for tests and explicit choice, never picked automatically).
 *
 * @module
 */
import { type Backend, BackendUnavailableError } from "./backend.ts";
import { probeWebGpu, type WebGpuAdapterInfo, webGpuSyncReadProblem } from "./webgpu.ts";

/** Every backend this project can run on. */
export type BackendName = "torch-cuda" | "tfjs-webgpu" | "torch-cpu" | "tfjs-wasm" | "tfjs-cpu";

/** What {@link listBackends} reports for one backend. */
export interface BackendInfo {
  /** The backend's name. */
  name: BackendName;
  /** Whether it loaded on this machine. */
  available: boolean;
  /** Device description when available, else "". */
  device: string;
  /** Library version when available, else "". */
  version: string;
  /** Why it is unavailable, or what was found. */
  reason: string;
  /** tfjs-webgpu only: the WebGPU adapter found (null: none), whether or not the backend loads. */
  adapter?: WebGpuAdapterInfo | null;
}

/** Preference order of automatic selection. */
export const BACKEND_ORDER: readonly BackendName[] = [
  "torch-cuda",
  "tfjs-webgpu",
  "torch-cpu",
  "tfjs-wasm",
  "tfjs-cpu",
];

/** Whether `name` is a known backend name. */
export function isBackendName(name: string): name is BackendName {
  return (BACKEND_ORDER as readonly string[]).includes(name);
}

/** A one-paragraph reason: no terminal colour codes, whitespace collapsed. */
function message(e: unknown): string {
  const text = e instanceof BackendUnavailableError
    ? e.reason
    : e instanceof Error
    ? e.message
    : String(e);
  // deno-lint-ignore no-control-regex
  return text.replace(/\x1b\[[0-9;]*m/g, "").replace(/\s+/g, " ").trim();
}

/**
 * Creates the named backend. Throws {@link BackendUnavailableError} (with the reason) when it
 * cannot load on this machine.
 *
 * @example
 * ```ts
 * import { createBackend } from "./select.ts";
 * using backend = await createBackend("torch-cpu");
 * console.log(backend.device); // "cpu (2 threads)"
 * ```
 */
export async function createBackend(name: BackendName): Promise<Backend> {
  try {
    switch (name) {
      case "torch-cuda":
      case "torch-cpu": {
        const { createTorchBackend } = await import("./torch.ts");
        return await createTorchBackend(name === "torch-cuda" ? "cuda" : "cpu");
      }
      case "tfjs-webgpu": {
        // Where tfjs-webgpu cannot read synchronously (Deno), it runs in a worker thread.
        if (webGpuSyncReadProblem() !== null) {
          const adapter = await probeWebGpu();
          if (!adapter) {
            throw new BackendUnavailableError(
              name,
              "no WebGPU adapter (navigator.gpu found none; on Linux a Vulkan driver is needed)",
            );
          }
          const { createWebGpuBackend } = await import("./webgpu_backend.ts");
          return await createWebGpuBackend(adapter);
        }
        const { createTfjsBackend } = await import("./tfjs.ts");
        return await createTfjsBackend("webgpu");
      }
      case "tfjs-wasm":
      case "tfjs-cpu": {
        // Loaded lazily: tfjs costs start-up time that torch users should not pay.
        const { createTfjsBackend } = await import("./tfjs.ts");
        return await createTfjsBackend(name === "tfjs-wasm" ? "wasm" : "cpu");
      }
      default:
        throw new BackendUnavailableError(
          String(name),
          `unknown backend; choose one of ${BACKEND_ORDER.join(", ")}`,
        );
    }
  } catch (e) {
    throw new BackendUnavailableError(name, message(e));
  }
}

/**
 * Probes every backend (loading each once) and reports which are usable and why not.
 * Never throws.
 *
 * @example
 * ```ts
 * import { listBackends } from "./select.ts";
 * for (const b of await listBackends()) console.log(b.name, b.available, b.reason);
 * ```
 */
export async function listBackends(): Promise<BackendInfo[]> {
  const infos: BackendInfo[] = [];
  for (const name of BACKEND_ORDER) {
    const adapter = name === "tfjs-webgpu" ? { adapter: await probeWebGpu() } : {};
    try {
      const backend = await createBackend(name);
      infos.push({
        name,
        available: true,
        device: backend.device,
        version: backend.version,
        reason: `loaded (${backend.version} on ${backend.device})`,
        ...adapter,
      });
      backend.dispose();
    } catch (e) {
      infos.push({
        name,
        available: false,
        device: "",
        version: "",
        reason: message(e),
        ...adapter,
      });
    }
  }
  return infos;
}

/**
 * Chooses the backend to run on: `opts.name` (e.g. from `--backend`), else
 * `$DENO_DIFFUSION_BACKEND`, else the first available in {@link BACKEND_ORDER}. An explicit
 * choice that cannot load is an error (no silent fallback); "auto" means the preference order.
 *
 * @example
 * ```ts
 * import { selectBackend } from "./select.ts";
 * using backend = await selectBackend({ log: console.error });
 * // logs e.g. "backend torch-cpu (libtorch 1.13.0, cpu (2 threads)): first available; ..."
 * ```
 */
export async function selectBackend(
  opts: { name?: BackendName | "auto"; log?: (msg: string) => void } = {},
): Promise<Backend> {
  const log = opts.log ?? (() => {});
  const env = Deno.env.get("DENO_DIFFUSION_BACKEND");
  let requested: string | undefined;
  let why = "";
  if (opts.name !== undefined && opts.name !== "auto") {
    requested = opts.name;
    why = "requested by --backend";
  } else if (opts.name === undefined && env && env !== "auto") {
    requested = env;
    why = "requested by DENO_DIFFUSION_BACKEND";
  }
  if (requested !== undefined) {
    if (!isBackendName(requested)) {
      throw new BackendUnavailableError(
        requested,
        `unknown backend (${why}); choose one of ${BACKEND_ORDER.join(", ")} or auto`,
      );
    }
    const backend = await createBackend(requested);
    log(`backend ${backend.name} (${backend.version}, ${backend.device}): ${why}`);
    return backend;
  }
  const skipped: string[] = [];
  for (const name of BACKEND_ORDER) {
    if (name === "tfjs-webgpu") {
      const adapter = await probeWebGpu();
      if (!adapter || adapter.software) {
        const what = adapter ? `software adapter ${adapter.description}` : "no WebGPU adapter";
        skipped.push(`${name}: ${what} (not chosen automatically)`);
        continue;
      }
    }
    try {
      const backend = await createBackend(name);
      const because = skipped.length === 0
        ? "first in preference order"
        : `first available; skipped ${skipped.join("; ")}`;
      log(`backend ${backend.name} (${backend.version}, ${backend.device}): ${because}`);
      return backend;
    } catch (e) {
      skipped.push(`${name}: ${message(e)}`);
    }
  }
  throw new BackendUnavailableError("auto", `no backend could load: ${skipped.join("; ")}`);
}
