/**
 * The TensorFlow.js backend: `tfjs-wasm` (XNNPACK kernels, SIMD), the pure-JS `tfjs-cpu`, or
 * `tfjs-webgpu` (directly where synchronous reads exist, a browser; under Deno inside the GPU
 * worker of webgpu_backend.ts, see webgpu.ts for why).
 *
 * The interface is NCHW with PyTorch weight layouts; tfjs convolutions are NHWC. A conv's
 * output therefore stays channels-last (the handle records it and reports the NCHW shape), and
 * the ops that usually follow a conv (elementwise, broadcasting with per-channel tensors, group
 * and batch norm, pooling, resize, cat, reductions) work on it directly, so a chain of
 * conv -> norm -> activation -> conv runs without transposes. Any other op gets the NCHW order
 * by one transpose. Pooling and resizing of NCHW tensors run on `[N*C, H, W, 1]` views, also
 * without transposes.
 *
 * Gradients that wasm lacks, runs slowly or gets wrong (conv, matmul, gather, pooling,
 * resize, abs, BCE) are custom gradients built from fast forward kernels: see tfjs_kernels.ts
 * and tfjs_conv.ts.
 * wasm runs tfjs's threaded-SIMD build with one XNNPACK thread per core (tfjs_threads.ts makes
 * it load under Deno; `DENO_DIFFUSION_TFJS_THREADS=1` keeps the single-threaded build, whose
 * large convs are then split with the conv worker of tfjs_worker.ts).
 *
 * tfjs has a single global engine. Each op switches it to this instance's kernel backend
 * before running, so a wasm and a cpu instance can live in one process; a handle used with the
 * wrong instance, or after {@link Backend.dispose}, raises {@link BackendError}.
 *
 * The backend class is built up in layers, one file each: the engine plumbing, creation,
 * reading and memory (tfjs_engine.ts), tensor ops (tfjs_ops.ts), layers and losses
 * (tfjs_nn.ts), and here autograd and the optimizer steps, with the factory.
 *
 * @module
 */
import * as tf from "npm:@tensorflow/tfjs@4.22.0";
// Registers the "wasm" kernel backend; Deno drops an import that binds nothing unless it is
// a bare side-effect import like this one.
import "npm:@tensorflow/tfjs-backend-wasm@4.22.0";
import { acquireConvWorker, initWasm, wasmThreadsWanted } from "./tfjs_worker.ts";
import { gradientTargets } from "./tfjs_conv.ts";
import {
  type AdamOptions,
  type AdamState,
  type Backend,
  BackendError,
  BackendUnavailableError,
  type Tensor,
  type ValueAndGrad,
} from "./backend.ts";
import { errorText, nchw } from "./tfjs_tensor.ts";
import * as V from "./validate.ts";
import { probeWebGpu, type WebGpuAdapterInfo, webGpuSyncReadProblem } from "./webgpu.ts";
import { heapMeterOf } from "./tfjs_memory.ts";
import { gpuGuardOf } from "./webgpu_memory.ts";
import type { TfjsKind } from "./tfjs_engine.ts";
import { TfjsNn } from "./tfjs_nn.ts";

export type { TfjsKind } from "./tfjs_engine.ts";

// tfjs prints a "install tfjs-node" banner and debug warnings unless in production mode.
tf.enableProdMode();

/**
 * Creates a TensorFlow.js backend. Throws {@link BackendUnavailableError} when the kernel
 * backend cannot initialise (e.g. WebAssembly missing). Under Deno, tfjs-webgpu is made by
 * webgpu_backend.ts (this backend in a worker); `opts.readsAsync` is that worker's.
 * `opts.convWorker` overrides `DENO_DIFFUSION_TFJS_WORKERS` (tfjs_worker.ts) for this backend.
 *
 * @example
 * ```ts
 * import { createTfjsBackend } from "./tfjs.ts";
 * const b = await createTfjsBackend("wasm");
 * const x = b.tensor([1, 2, 3, 4], [1, 1, 2, 2]);
 * console.log(b.read(b.mean(x))); // Float32Array [2.5]
 * b.dispose();
 * ```
 */
export async function createTfjsBackend(
  kind: TfjsKind,
  opts: { readsAsync?: boolean; convWorker?: boolean } = {},
): Promise<Backend> {
  let adapter: WebGpuAdapterInfo | null = null;
  if (kind === "webgpu") {
    adapter = await probeWebGpu();
    if (!adapter) {
      throw new BackendUnavailableError(
        "tfjs-webgpu",
        "no WebGPU adapter (navigator.gpu found none; on Linux a Vulkan driver is needed)",
      );
    }
    // `readsAsync`: the caller (the GPU worker of webgpu_worker.ts) reads tensors with tfjs's
    // async data(), never through this backend's synchronous read().
    const problem = opts.readsAsync ? null : webGpuSyncReadProblem();
    if (problem) {
      const soft = adapter.software ? ", software" : "";
      throw new BackendUnavailableError(
        "tfjs-webgpu",
        `adapter ${adapter.description}${soft} found, but ${problem}`,
      );
    }
    // Registers the "webgpu" kernel backend; only where it can run (see webgpu.ts).
    await import("npm:@tensorflow/tfjs-backend-webgpu@4.22.0");
  }
  let ok = false;
  let threads = 1;
  try {
    if (kind === "wasm") threads = await initWasm(wasmThreadsWanted());
    ok = kind === "wasm" || await tf.setBackend(kind);
  } catch (e) {
    throw new BackendUnavailableError(`tfjs-${kind}`, errorText(e));
  }
  if (!ok || tf.getBackend() !== kind) {
    throw new BackendUnavailableError(`tfjs-${kind}`, `tf.setBackend("${kind}") failed`);
  }
  if (kind === "webgpu") {
    const backend = new TfjsBackend(kind);
    backend.adapter = adapter;
    backend.gpuGuard = gpuGuardOf(tf.backend());
    return backend;
  }
  if (kind !== "wasm") return new TfjsBackend(kind);
  // With XNNPACK threads on every core, a conv worker would only compete for them.
  const convWorker = threads > 1 ? undefined : acquireConvWorker(opts.convWorker);
  return new TfjsBackend(kind, convWorker, heapMeterOf(tf.backend()), threads);
}

/** TensorFlow.js on one kernel backend. Create with {@link createTfjsBackend}. */
class TfjsBackend extends TfjsNn implements Backend {
  // ---- autograd and optimisation ----

  valueAndGrad(lossFn: () => Tensor, params: readonly Tensor[]): ValueAndGrad {
    const vars = params.map((p) => this.handle("valueAndGrad", p, params).tf);
    vars.forEach((v, i) => {
      const ok = v instanceof tf.Variable && v.trainable;
      this.check("valueAndGrad", [params[i]], ok, `parameter ${i} is not a trainable variable`);
    });
    this.activate("valueAndGrad");
    let forwardDone = false;
    let result: ReturnType<typeof tf.variableGrads>;
    const outerTargets = gradientTargets.variables;
    gradientTargets.variables = new Set(vars);
    try {
      result = tf.variableGrads(() => {
        const loss = lossFn();
        const t = this.handle("valueAndGrad", loss, [loss]).tf;
        if (t.size !== 1) {
          throw new BackendError("valueAndGrad", [loss.shape], "the loss must be a scalar");
        }
        forwardDone = true;
        return tf.reshape(t, []) as tf.Scalar;
      }, vars as tf.Variable[]);
    } catch (e) {
      // Errors of lossFn pass through as they are; a failure while back-propagating is ours.
      if (!forwardDone || e instanceof BackendError) throw e;
      throw new BackendError("valueAndGrad", params.map((p) => p.shape), this.failure(e));
    } finally {
      gradientTargets.variables = outerTargets;
    }
    const { value, grads } = result;
    const lossValue = value.dataSync()[0];
    value.dispose();
    // A parameter the loss does not reach gets a zero gradient (PyTorch would give None).
    const out = vars.map((v) => this.wrap(grads[(v as tf.Variable).name] ?? tf.zerosLike(v)));
    return { value: lossValue, grads: out };
  }

  noGrad<T>(fn: () => T): T {
    // tfjs records only inside gradient calls; suspend that recording for `fn`. The engine
    // has no public switch, so park the tape state and restore it afterwards.
    const state = tf.engine().state;
    const [depth, tape] = [state.gradientDepth, state.activeTape];
    state.gradientDepth = 0;
    try {
      return fn();
    } finally {
      state.gradientDepth = depth;
      state.activeTape = tape;
    }
  }

  adamStep(
    params: readonly Tensor[],
    grads: readonly Tensor[],
    state: AdamState,
    opts: AdamOptions,
  ): void {
    const all = [...params, ...grads, ...state.m, ...state.v];
    V.checkAdam(params, grads, state.m, state.v);
    const n = params.length;
    const hs = all.map((t) => this.handle("adamStep", t, all));
    this.activate("adamStep");
    const { lr, beta1, beta2, eps, weightDecay } = opts;
    const step = state.step + 1;
    // Bias corrections (Kingma & Ba 2015, Algorithm 1); decoupled decay (Loshchilov & Hutter
    // 2019, Algorithm 2), in the order of torch.optim.AdamW.
    const bc1 = 1 - beta1 ** step;
    const bc2 = 1 - beta2 ** step;
    tf.tidy(() => {
      for (let i = 0; i < n; i++) {
        const [p, m, v] = [hs[i].tf, hs[2 * n + i].tf, hs[3 * n + i].tf] as tf.Variable[];
        const g = nchw(hs[n + i]);
        const m1 = tf.add(tf.mul(m, beta1), tf.mul(g, 1 - beta1));
        const v1 = tf.add(tf.mul(v, beta2), tf.mul(tf.square(g), 1 - beta2));
        const decayed = weightDecay ? tf.mul(p, 1 - lr * weightDecay) : p;
        const denom = tf.add(tf.div(tf.sqrt(v1), Math.sqrt(bc2)), eps);
        p.assign(tf.sub(decayed, tf.mul(tf.div(m1, denom), lr / bc1)));
        m.assign(m1);
        v.assign(v1);
      }
    });
    state.step = step;
  }

  emaUpdate(targets: readonly Tensor[], sources: readonly Tensor[], decay: number): void {
    const all = [...targets, ...sources];
    V.checkPairs("emaUpdate", targets, sources, ["targets", "sources"]);
    const hs = all.map((t) => this.handle("emaUpdate", t, all));
    this.activate("emaUpdate");
    tf.tidy(() => {
      targets.forEach((_, i) => {
        const target = hs[i].tf as tf.Variable;
        const source = nchw(hs[targets.length + i]);
        target.assign(tf.add(tf.mul(target, decay), tf.mul(source, 1 - decay)));
      });
    });
  }

  // ---- float64 linear algebra and autocast ----

  eighFloat64(a: Float64Array, n: number): { values: Float64Array; vectors: Float64Array } {
    V.checkEigh(this.capabilities, a.length, n);
    throw new BackendError("eighFloat64", [[a.length]], "unreachable: declared unsupported");
  }

  eigvalshFloat64(a: Float64Array, n: number): Float64Array {
    V.checkEigh(this.capabilities, a.length, n, "eigvalshFloat64");
    throw new BackendError("eigvalshFloat64", [[a.length]], "unreachable: declared unsupported");
  }

  setAutocast(dtype: "bfloat16" | "float32"): void {
    V.checkAutocast(this.capabilities, dtype); // "float32" is the only mode and stays on
  }
}
