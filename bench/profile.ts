/**
 * Where the time of a bench/compare.ts workload goes, per Backend method:
 *
 *     deno run -A bench/profile.ts dcgan-step [--backend torch-cpu] [--reps 2] [--by-shape]
 *     deno run -A bench/profile.ts dcgan-step --backend tfjs-wasm --kernels [--by-shape]
 *     deno run -A bench/profile.ts dcgan-step --backend tfjs-webgpu --batch 16
 *
 * `--batch N` replaces the workload's standard batch (bench/workloads.ts SIZES), for backends too
 * slow for it. The first run (warm-up, where tfjs-webgpu compiles its shaders) is timed apart.
 * `--by-shape` splits each method by the shapes of its tensor arguments (e.g. one row per conv
 * layer shape), to see which calls of a method are slow.
 * Wraps the backend in a Proxy that times every method call (self time: time spent in nested
 * backend calls, e.g. ops inside valueAndGrad's loss function, is not counted twice) and prints
 * the methods by total self time. On torch-cpu every op is synchronous, so the time of an op is
 * its kernel plus the FFI and bookkeeping around it; valueAndGrad's self time is the backward
 * pass. The PyTorch side has `peer.py profile WORKLOAD` for the same view of eager PyTorch.
 *
 * `--kernels` (tfjs-wasm, tfjs-cpu) times tfjs's kernels instead (Conv2D, Transpose, ...): the
 * level below the methods, where a tfjs backend's custom gradients and layout changes show.
 * tfjs-wasm runs each kernel synchronously, so a kernel's time is its wasm call.
 *
 * @module
 */
import { parseArgs } from "node:util";
import * as tf from "npm:@tensorflow/tfjs@4.22.0";
import type { Backend } from "../src/backend/backend.ts";
import { type BackendName, createBackend, isBackendName } from "../src/backend/select.ts";
import { createWorkload, parseWorkloads } from "./workloads.ts";

interface OpStat {
  calls: number;
  self: number;
}

/**
 * A backend whose method calls are timed into `stats` (self time, in ms).
 *
 * @example
 * ```ts
 * import { createBackend } from "../src/backend/select.ts";
 * import { profiled } from "./profile.ts";
 * const stats = new Map();
 * const b = profiled(await createBackend("tfjs-cpu"), stats);
 * b.read(b.add(b.zeros([2]), 1));
 * console.log([...stats.keys()]); // ["zeros", "add", "read"]
 * ```
 */
export function profiled(
  backend: Backend,
  stats: Map<string, OpStat>,
  byShape = false,
): Backend {
  let nested = 0; // ms spent in calls below the current one
  return new Proxy(backend, {
    get(target, key, receiver) {
      const value = Reflect.get(target, key, receiver);
      if (typeof value !== "function" || typeof key !== "string") return value;
      return (...args: unknown[]) => {
        const outerNested = nested;
        nested = 0;
        const start = performance.now();
        try {
          return value.apply(target, args);
        } finally {
          const total = performance.now() - start;
          const row = byShape ? `${key} ${shapesKey(args)}` : key;
          const stat = stats.get(row) ?? { calls: 0, self: 0 };
          stat.calls++;
          stat.self += total - nested;
          stats.set(row, stat);
          nested = outerNested + total;
        }
      };
    },
  });
}

/**
 * Times every kernel of tfjs's current kernel backend into `stats` (self time, in ms) until the
 * returned function is called. The kernels are wrapped where tfjs's registry keeps them, so
 * every call through the engine is counted, gradients included.
 *
 * @example
 * ```ts
 * import * as tf from "npm:@tensorflow/tfjs@4.22.0";
 * import { profiledKernels } from "./profile.ts";
 * await tf.setBackend("cpu");
 * const stats = new Map();
 * const stop = profiledKernels(stats);
 * tf.add(tf.ones([2]), 1).dataSync();
 * stop();
 * console.log(stats.has("Add")); // true
 * ```
 */
export function profiledKernels(stats: Map<string, OpStat>, byShape = false): () => void {
  let nested = 0;
  const undo: (() => void)[] = [];
  for (const config of tf.getKernelsForBackend(tf.getBackend())) {
    const kernel = config.kernelFunc;
    const mutable = config as { kernelFunc: tf.KernelFunc };
    mutable.kernelFunc = (args) => {
      const outerNested = nested;
      nested = 0;
      const start = performance.now();
      try {
        return kernel(args);
      } finally {
        const total = performance.now() - start;
        const row = byShape
          ? `${config.kernelName} ${shapesKey(Object.values(args.inputs))}`
          : config.kernelName;
        const stat = stats.get(row) ?? { calls: 0, self: 0 };
        stat.calls++;
        stat.self += total - nested;
        stats.set(row, stat);
        nested = outerNested + total;
      }
    };
    undo.push(() => mutable.kernelFunc = kernel);
  }
  return () => undo.forEach((f) => f());
}

/** "[2,3,8,8] [4,3,3,3]": the shapes of the tensor arguments of a call (arrays of tensors too). */
function shapesKey(args: unknown[]): string {
  const shapes: string[] = [];
  const visit = (a: unknown) => {
    if (Array.isArray(a)) a.forEach(visit);
    else if (typeof a === "object" && a !== null && "shape" in a && "dtype" in a) {
      shapes.push(`[${(a as { shape: number[] }).shape}]`);
    }
  };
  args.forEach(visit);
  return shapes.join(" ");
}

const USAGE = "usage: deno run -A bench/profile.ts WORKLOAD [--backend B] [--reps N] " +
  "[--batch N] [--by-shape] [--kernels]";

function parseOptions() {
  try {
    return parseArgs({
      args: Deno.args,
      options: {
        backend: { type: "string", default: "torch-cpu" },
        reps: { type: "string", default: "2" },
        batch: { type: "string" },
        "by-shape": { type: "boolean", default: false },
        kernels: { type: "boolean", default: false },
      },
      allowPositionals: true,
    });
  } catch (e) {
    throw new Error(`${e instanceof Error ? e.message : e}\n${USAGE}`);
  }
}

async function main(): Promise<void> {
  const { values, positionals } = parseOptions();
  const [name] = parseWorkloads(positionals[0] ?? "");
  if (!name || !isBackendName(values.backend)) throw new Error(USAGE);
  const backend = await createBackend(values.backend as BackendName);
  const stats = new Map<string, OpStat>();
  const byShape = values["by-shape"];
  if (values.kernels && !["tfjs-wasm", "tfjs-cpu"].includes(values.backend)) {
    throw new Error("--kernels times tfjs's kernels: use it with --backend tfjs-wasm or tfjs-cpu");
  }
  const workload = createWorkload(
    values.kernels ? backend : profiled(backend, stats, byShape),
    name,
    { batch: values.batch === undefined ? undefined : Number(values.batch) },
  );
  const warmStart = performance.now();
  workload.run(); // warm-up, not counted
  const firstRun = performance.now() - warmStart;
  stats.clear();
  const stop = values.kernels ? profiledKernels(stats, byShape) : () => {};
  const reps = Number(values.reps);
  const start = performance.now();
  for (let i = 0; i < reps; i++) workload.run();
  const wall = (performance.now() - start) / reps;
  stop();
  workload.dispose();
  backend.dispose();
  const rows = [...stats].sort((a, b) => b[1].self - a[1].self);
  const counted = rows.reduce((s, [, r]) => s + r.self, 0) / reps;
  console.log(
    `${name} (batch ${workload.images}) on ${values.backend}: ${wall.toFixed(1)} ms per run, ` +
      `${counted.toFixed(1)} ms inside ${values.kernels ? "tfjs kernels" : "backend calls"}; ` +
      `first run ${firstRun.toFixed(1)} ms`,
  );
  const width = Math.max(22, ...rows.map(([op]) => op.length + 1));
  console.log(
    (values.kernels ? "kernel" : "method").padEnd(width) + "calls/run".padStart(10) +
      "ms/run".padStart(10) + "%".padStart(7),
  );
  for (const [op, s] of rows) {
    const ms = s.self / reps;
    console.log(
      op.padEnd(width) + String(s.calls / reps).padStart(10) + ms.toFixed(1).padStart(10) +
        (100 * ms / wall).toFixed(1).padStart(7),
    );
  }
}

if (import.meta.main) {
  try {
    await main();
  } catch (e) {
    console.error(`bench/profile.ts: ${e instanceof Error ? e.message : String(e)}`);
    Deno.exit(1);
  }
}
