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
  /**
   * Also run on tfjs-webgpu when its adapter is a software one (lavapipe, SwiftShader): slow,
   * so only the conformance suite and the backend's own tests ask for it. On a hardware
   * adapter tfjs-webgpu runs every test.
   */
  softwareGpu?: boolean;
}

/**
 * Why tfjs-webgpu sits out tests that did not ask for a software adapter, or null.
 * `DENO_DIFFUSION_TEST_SOFTWARE_GPU=1` runs every test there (a long run).
 */
const webgpu = infos.find((i) => i.name === "tfjs-webgpu");
const softwareGpuOnly = webgpu?.available && webgpu.adapter?.software &&
    Deno.env.get("DENO_DIFFUSION_TEST_SOFTWARE_GPU") !== "1"
  ? `software adapter ${webgpu.adapter.description} (slow): only tests that ask for it ` +
    "run there (DENO_DIFFUSION_TEST_SOFTWARE_GPU=1: all)"
  : null;

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
    const slowGpu = backendName === "tfjs-webgpu" && softwareGpuOnly !== null &&
      !options.softwareGpu;
    const skip = (!available && !required.has(backendName)) || slowGpu;
    if (skip && !reported.has(backendName)) {
      reported.add(backendName);
      const why = slowGpu ? softwareGpuOnly : info?.reason ?? "unknown backend";
      console.log(`skipping backend ${backendName}: ${why}`);
    }
    Deno.test({
      name: `${name} [${backendName}]`,
      ignore: skip,
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
