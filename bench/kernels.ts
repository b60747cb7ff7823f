/**
 * Kernel benchmarks: conv2d (forward, forward+backward), attention and matmul on each backend.
 *
 *   deno run -A bench/kernels.ts [--json] [--backends torch-cpu,tfjs-wasm] [--min-ms 1000]
 *
 * prints one line per case (`{"op","backend","ms","gflops"}` with --json). FLOPs: conv forward
 * 2*N*Cin*Cout*H*W*k*k, forward+backward 3x that (dX and dW each cost one forward); attention
 * 4*B*heads*L*L*d (two matmuls); matmul 2*n^3. bench/kernels_bench.ts runs the same cases under
 * `deno bench`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import type { Backend, Tensor } from "../src/backend/backend.ts";
import {
  BACKEND_ORDER,
  type BackendName,
  createBackend,
  isBackendName,
} from "../src/backend/select.ts";
import { probeWebGpu } from "../src/backend/webgpu.ts";

/** A prepared benchmark: `run` does one iteration (and waits for the device). */
export interface PreparedCase {
  run(): void;
  dispose(): void;
}

/** One kernel benchmark case. */
export interface KernelCase {
  /** Group name, e.g. "conv2d 32x32 128->128 fwd+bwd". */
  op: string;
  flops: number;
  prepare(b: Backend): PreparedCase;
}

/** Deterministic pseudo-random data in [-0.5, 0.5) (benchmarks only need non-trivial values). */
function fill(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 32 - 0.5;
  }
  return out;
}

function randomTensor(b: Backend, shape: number[], seed: number, scale = 1): Tensor {
  const data = fill(shape.reduce((x, y) => x * y, 1), seed);
  if (scale !== 1) { for (let i = 0; i < data.length; i++) data[i] *= scale; }
  return b.tensor(data, shape);
}

/** Reads one element so asynchronous devices finish the work before the clock stops. */
function sync(b: Backend, t: Tensor): void {
  b.read(b.slice(t, t.shape.map(() => 0), t.shape.map(() => 1)));
}

function convCase(size: number, channels: number, backward: boolean): KernelCase {
  const n = 64;
  const k = 3;
  const forwardFlops = 2 * n * channels * channels * size * size * k * k;
  return {
    op: `conv2d ${size}x${size} ${channels}->${channels}${backward ? " fwd+bwd" : " fwd"}`,
    flops: backward ? 3 * forwardFlops : forwardFlops,
    prepare(b) {
      const x = b.scope(() => b.variable(randomTensor(b, [n, channels, size, size], 1), backward));
      const w = b.scope(() =>
        b.variable(randomTensor(b, [channels, channels, k, k], 2, 0.05), backward)
      );
      return {
        run: () =>
          b.scope(() => {
            if (backward) {
              const { grads } = b.valueAndGrad(
                () => b.mean(b.conv2d(x, w, undefined, { padding: 1 })),
                [x, w],
              );
              sync(b, grads[0]);
              sync(b, grads[1]);
            } else {
              b.noGrad(() => sync(b, b.conv2d(x, w, undefined, { padding: 1 })));
            }
          }),
        dispose: () => {
          x.dispose();
          w.dispose();
        },
      };
    },
  };
}

function attentionCase(): KernelCase {
  const [batch, heads, tokens, channels] = [64, 4, 64, 256];
  const d = channels / heads;
  return {
    op: `attention ${tokens} tokens ${channels}ch ${heads} heads`,
    flops: 4 * batch * heads * tokens * tokens * d,
    prepare(b) {
      const shape = [batch, heads, tokens, d];
      const [q, k, v] = [1, 2, 3].map((s) => randomTensor(b, shape, s));
      return {
        run: () => b.scope(() => b.noGrad(() => sync(b, b.attention(q, k, v)))),
        dispose: () => [q, k, v].forEach((t) => t.dispose()),
      };
    },
  };
}

function matmulCase(size: number): KernelCase {
  return {
    op: `matmul ${size}x${size}`,
    flops: 2 * size ** 3,
    prepare(b) {
      const x = randomTensor(b, [size, size], 1);
      const y = randomTensor(b, [size, size], 2);
      return {
        run: () => b.scope(() => b.noGrad(() => sync(b, b.matmul(x, y)))),
        dispose: () => [x, y].forEach((t) => t.dispose()),
      };
    },
  };
}

/** Every case, in report order. */
export const KERNEL_CASES: readonly KernelCase[] = [
  convCase(32, 128, false),
  convCase(32, 128, true),
  convCase(16, 256, false),
  convCase(16, 256, true),
  attentionCase(),
  matmulCase(2048),
];

/**
 * Backends benchmarked by default: every backend except pure-JS tfjs-cpu (~100x slower; a
 * single conv case takes minutes) and tfjs-webgpu on a software adapter (lavapipe: slower
 * still). `DENO_DIFFUSION_BENCH_BACKENDS` (comma list) overrides.
 *
 * @example
 * ```ts
 * import { defaultBenchBackends } from "./kernels.ts";
 * console.log(await defaultBenchBackends()); // ["torch-cuda", "tfjs-webgpu", "torch-cpu", "tfjs-wasm"]
 * ```
 */
export async function defaultBenchBackends(): Promise<BackendName[]> {
  const env = Deno.env.get("DENO_DIFFUSION_BENCH_BACKENDS");
  if (env) return env.split(",").map((s) => s.trim()).filter(isBackendName);
  const adapter = await probeWebGpu();
  return BACKEND_ORDER.filter((n) =>
    n !== "tfjs-cpu" && (n !== "tfjs-webgpu" || (adapter !== null && !adapter.software))
  );
}

/**
 * Times `prepared.run` (after one warm-up) until `minMs` has passed (at least 3 runs); returns
 * the median in ms.
 *
 * @example
 * ```ts
 * import { KERNEL_CASES, timeCase } from "./kernels.ts";
 * import { createBackend } from "../src/backend/select.ts";
 * const b = await createBackend("torch-cpu");
 * const prepared = KERNEL_CASES[0].prepare(b);
 * console.log(timeCase(prepared, 1000), "ms");
 * prepared.dispose();
 * ```
 */
export function timeCase(prepared: PreparedCase, minMs: number, maxRuns = 50): number {
  prepared.run();
  const times: number[] = [];
  const start = performance.now();
  while (times.length < maxRuns && (times.length < 3 || performance.now() - start < minMs)) {
    const t0 = performance.now();
    prepared.run();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

const USAGE = `usage: deno run -A bench/kernels.ts [--json] [--backends a,b] [--min-ms N]

  --json       one JSON line per case: {"op","backend","ms","gflops"}
  --backends   comma list of ${BACKEND_ORDER.join(", ")} (default: all but tfjs-cpu and
               tfjs-webgpu on a software adapter)
  --min-ms     time each case for at least this long (default 1000; at least 3 runs)`;

async function main(argv: string[]): Promise<number> {
  let values: { json?: boolean; backends?: string; "min-ms"?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        json: { type: "boolean" },
        backends: { type: "string" },
        "min-ms": { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
    }));
  } catch (e) {
    console.error(`${e instanceof Error ? e.message : String(e)}\n\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const names = values.backends ? values.backends.split(",").map((s) => s.trim()) : undefined;
  const bad = names?.filter((n) => !isBackendName(n)) ?? [];
  if (bad.length > 0) {
    console.error(`unknown backend(s) ${bad.join(", ")}\n\n${USAGE}`);
    return 2;
  }
  const minMs = Number(values["min-ms"] ?? 1000);
  if (!(minMs >= 0)) {
    console.error(`--min-ms must be a non-negative number, got ${values["min-ms"]}`);
    return 2;
  }
  for (const name of (names as BackendName[] | undefined) ?? await defaultBenchBackends()) {
    let backend: Backend;
    try {
      backend = await createBackend(name);
    } catch (e) {
      // An unavailable backend is reported, not fatal: the others still run.
      console.error(`skipping ${name}: ${e instanceof Error ? e.message : String(e)}`);
      continue;
    }
    for (const c of KERNEL_CASES) {
      const prepared = c.prepare(backend);
      const ms = timeCase(prepared, minMs);
      prepared.dispose();
      const gflops = c.flops / (ms * 1e6);
      if (values.json) {
        console.log(
          JSON.stringify({
            op: c.op,
            backend: name,
            ms: +ms.toFixed(3),
            gflops: +gflops.toFixed(2),
          }),
        );
      } else {
        console.log(
          `${name.padEnd(10)} ${c.op.padEnd(36)} ${ms.toFixed(2).padStart(10)} ms ${
            gflops.toFixed(1).padStart(8)
          } GFLOP/s`,
        );
      }
    }
    backend.dispose();
  }
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
