/**
 * `deno bench -A bench/kernels_bench.ts`: the kernel cases of bench/kernels.ts, grouped by op,
 * one entry per available backend (tfjs-cpu, and tfjs-webgpu on a software adapter, only when
 * DENO_DIFFUSION_BENCH_BACKENDS names it).
 *
 * @module
 */
import type { Backend } from "../src/backend/backend.ts";
import { createBackend } from "../src/backend/select.ts";
import { defaultBenchBackends, KERNEL_CASES, type PreparedCase } from "./kernels.ts";

const backends: Backend[] = [];
for (const name of await defaultBenchBackends()) {
  try {
    backends.push(await createBackend(name));
  } catch (e) {
    console.error(`skipping ${name}: ${e instanceof Error ? e.message : String(e)}`);
  }
}

for (const c of KERNEL_CASES) {
  for (const backend of backends) {
    let prepared: PreparedCase | undefined;
    Deno.bench({
      name: `${c.op} [${backend.name}]`,
      group: c.op,
      baseline: backend === backends[0],
      n: 5,
      warmup: 1,
      fn(b) {
        prepared ??= c.prepare(backend);
        b.start();
        prepared.run();
        b.end();
      },
    });
  }
}
