/**
 * Runs a test once per backend. A backend that cannot load is skipped with its reason,
 * unless it is listed in DENO_DIFFUSION_REQUIRE (comma separated; CI sets it), in which case
 * the test fails: CI must exercise the real backends, never skip them silently.
 *
 * @module
 */
import type { Backend } from "../src/backend/backend.ts";
import { type BackendName, createBackend, listBackends } from "../src/backend/select.ts";

/** Backends the suite tries, in order. */
export const ALL_BACKENDS: readonly BackendName[] = [
  "torch-cuda",
  "tfjs-webgpu",
  "torch-cpu",
  "tfjs-wasm",
  "tfjs-cpu",
];

const required = new Set(
  (Deno.env.get("DENO_DIFFUSION_REQUIRE") ?? "").split(",").map((s) => s.trim()).filter(Boolean),
);
const infos = await listBackends();
const reported = new Set<string>();

/** Options of {@link testEachBackend}. */
export interface EachBackendOptions {
  /** Limit to these backends (e.g. skip tfjs-cpu for heavy tests). */
  only?: readonly BackendName[];
}

/**
 * Registers `Deno.test("<name> [<backend>]")` for every backend; `fn` gets a fresh backend,
 * disposed afterwards.
 */
export function testEachBackend(
  name: string,
  fn: (backend: Backend) => void | Promise<void>,
  options: EachBackendOptions = {},
): void {
  for (const backendName of options.only ?? ALL_BACKENDS) {
    const info = infos.find((i) => i.name === backendName);
    const available = info?.available ?? false;
    if (!available && !required.has(backendName)) {
      if (!reported.has(backendName)) {
        reported.add(backendName);
        console.log(`skipping backend ${backendName}: ${info?.reason ?? "unknown backend"}`);
      }
    }
    Deno.test({
      name: `${name} [${backendName}]`,
      ignore: !available && !required.has(backendName),
      sanitizeResources: false,
      sanitizeOps: false,
      async fn() {
        const backend = await createBackend(backendName);
        try {
          await fn(backend);
        } finally {
          backend.dispose();
        }
      },
    });
  }
}
