/**
 * The worker thread of the tfjs-webgpu backend under Deno: it owns the WebGPU device, runs the
 * ordinary tfjs backend (tfjs.ts, kind "webgpu") and serves the main thread's requests
 * (webgpu_backend.ts) one at a time over the shared-memory channel (webgpu_channel.ts).
 *
 * Between requests it waits with `Atomics.waitAsync`, so its event loop stays free and a read
 * can `await` tfjs's `data()` (the GPU buffer's `mapAsync`) while the main thread is blocked in
 * its synchronous `read`. No closure crosses threads: the main thread keeps `scope`s itself
 * (it frees by id), and `valueAndGrad` opens the tfjs tape with one request, sends the loss
 * function's ops as usual, and asks for the gradients with another (tfjs_tape.ts). So every
 * request is answered at the top of the worker's loop, and reads work anywhere, inside a
 * `scope` or a loss function included.
 *
 * Imported anywhere but in the worker that webgpu_backend.ts starts, it does nothing.
 *
 * @module
 */
import { isMainThread, workerData } from "node:worker_threads";
import * as tf from "npm:@tensorflow/tfjs@4.22.0";
import { type Backend, BackendError } from "./backend.ts";
import { createTfjsBackend } from "./tfjs.ts";
import { nchw, TfjsTensor } from "./tfjs_tensor.ts";
import { OpenTape, pauseTape } from "./tfjs_tape.ts";
import { type GpuBufferGuard, gpuFailureDetail } from "./webgpu_memory.ts";
import {
  type ChannelBuffers,
  publish,
  readMessage,
  STATE,
  waitWhileAsync,
  type WireError,
  writeMessage,
} from "./webgpu_channel.ts";

/** Backend methods a request may name and the worker runs as they are. */
export const FORWARDED_OPS: ReadonlySet<string> = new Set([
  "tensor",
  "zeros",
  "full",
  "variable",
  "assign",
  "add",
  "sub",
  "mul",
  "div",
  "pow",
  "neg",
  "exp",
  "log",
  "sqrt",
  "abs",
  "clamp",
  "greater",
  "where",
  "detach",
  "cast",
  "relu",
  "leakyRelu",
  "gelu",
  "silu",
  "tanh",
  "sigmoid",
  "softmax",
  "sum",
  "mean",
  "max",
  "reshape",
  "permute",
  "slice",
  "cat",
  "gather",
  "matmul",
  "linear",
  "conv2d",
  "convTranspose2d",
  "groupNorm",
  "layerNorm",
  "batchNorm",
  "maxPool2d",
  "avgPool2d",
  "interpolateBilinear",
  "attention",
  "mseLoss",
  "bceWithLogits",
  "adamStep",
  "emaUpdate",
  "eighFloat64",
  "eigvalshFloat64",
  "setAutocast",
]);

/** One request: an op, its arguments (tensors as handles), and ids the main thread freed. */
interface Request {
  op: string;
  args: unknown[];
  free?: number[];
}

/** The worker's state: its backend and the tensors it handed out, by id. */
class Server {
  readonly #tensors = new Map<number, TfjsTensor>();
  #nextId = 1;
  #tape: OpenTape | undefined;
  readonly #paused: (() => void)[] = [];

  constructor(readonly backend: Backend) {}

  /** Maps a TfjsTensor in a reply to `{$t: id, shape, dtype}`, registering it. */
  readonly replace = (v: unknown): unknown => {
    if (!(v instanceof TfjsTensor)) return undefined;
    const id = this.#nextId++;
    this.#tensors.set(id, v);
    return { $t: id, shape: v.shape, dtype: v.dtype };
  };

  /** Maps `{$t: id}` in a request back to the live tensor. */
  readonly revive = (v: Record<string, unknown>): unknown => {
    if (typeof v.$t !== "number") return undefined;
    const t = this.#tensors.get(v.$t);
    // A plain Error: the main thread names the request's op and shapes.
    if (!t) throw new Error(`tensor #${v.$t} is not alive in the GPU worker`);
    return t;
  };

  #free(ids: readonly number[]): void {
    for (const id of ids) {
      this.#tensors.get(id)?.dispose();
      this.#tensors.delete(id);
    }
  }

  async handle(req: Request): Promise<unknown> {
    this.#free(req.free ?? []);
    const { op, args } = req;
    if (FORWARDED_OPS.has(op)) {
      if (op === "gather") {
        // gather checks its indices on the host with a synchronous read; fetching them first
        // leaves tfjs-webgpu a CPU copy for that read to return.
        await (args[1] as TfjsTensor).tf.data();
      }
      const method = (this.backend as unknown as Record<string, (...a: unknown[]) => unknown>)[op];
      const result = method.apply(this.backend, args);
      // adamStep counts its steps in the caller's state object: send the count back.
      return op === "adamStep" ? { step: (args[2] as { step: number }).step } : result;
    }
    switch (op) {
      case "hello":
        return {
          name: this.backend.name,
          device: this.backend.device,
          version: this.backend.version,
          capabilities: this.backend.capabilities,
        };
      case "read":
        return await this.#read(args[0] as TfjsTensor);
      case "free":
        return null; // the ids came with the request
      case "liveTensors":
        return { tensors: this.backend.liveTensors(), handles: this.#tensors.size };
      case "liveBytes":
        return this.backend.liveBytes();
      case "vg.begin":
        return this.#beginGrad(args[0] as TfjsTensor[]);
      case "vg.end":
        return await this.#endGrad(args[0] as TfjsTensor, args[1] as TfjsTensor[]);
      case "vg.abort":
        this.#tape?.close();
        this.#tape = undefined;
        return null;
      case "noGrad.begin":
        this.#paused.push(pauseTape());
        return null;
      case "noGrad.end":
        this.#paused.pop()?.();
        return null;
      case "reset": // a backend was disposed: its ids came with the request
        this.#tape?.close();
        this.#tape = undefined;
        while (this.#paused.length > 0) this.#paused.pop()!();
        return null;
      default:
        throw new BackendError(op, [], "unknown request to the GPU worker");
    }
  }

  async #read(h: TfjsTensor): Promise<Float32Array | Int32Array> {
    if (h.disposed) throw new BackendError("read", [h.shape], "a tensor was already disposed");
    // A channels-last tensor is transposed for the host; that transpose is no tape node.
    const resume = pauseTape();
    let x: tf.Tensor;
    try {
      x = h.channelsLast ? tf.tidy(() => nchw(h)) : h.tf;
    } finally {
      resume();
    }
    try {
      this.#refuseIfGpuFailed(h);
      const data = await x.data();
      // The out-of-memory scopes answer asynchronously: one may have failed while this waited.
      this.#refuseIfGpuFailed(h);
      // tfjs-webgpu casts without a copy where no precision is lost (bool or int32 to float32):
      // the data keep their old type, so give the host the tensor's own.
      const Want = h.dtype === "int32" ? Int32Array : Float32Array;
      return data instanceof Want ? data : Want.from(data as ArrayLike<number>);
    } finally {
      if (x !== h.tf) x.dispose();
    }
  }

  /** A read after a failed allocation could return zeros for lost work: refuse it instead. */
  #refuseIfGpuFailed(h: TfjsTensor): void {
    const broken = (this.backend as { gpuGuard?: GpuBufferGuard }).gpuGuard?.broken;
    if (broken) throw new BackendError("read", [h.shape], gpuFailureDetail(broken));
  }

  #beginGrad(params: readonly TfjsTensor[]): null {
    const shapes = params.map((p) => p.shape);
    params.forEach((p, i) => {
      const v = p.tf;
      if (!(v instanceof tf.Variable && v.trainable)) {
        throw new BackendError(
          "valueAndGrad",
          [shapes[i]],
          `parameter ${i} is not a trainable variable`,
        );
      }
    });
    if (this.#tape?.open) {
      throw new BackendError(
        "valueAndGrad",
        shapes,
        "valueAndGrad calls cannot nest on tfjs-webgpu",
      );
    }
    this.#tape = new OpenTape();
    return null;
  }

  async #endGrad(loss: TfjsTensor, params: readonly TfjsTensor[]) {
    const tape = this.#tape;
    this.#tape = undefined;
    const shapes = params.map((p) => p.shape);
    if (!tape?.open) throw new BackendError("valueAndGrad", shapes, "no gradient tape is open");
    if (loss.tf.size !== 1) {
      tape.close();
      throw new BackendError("valueAndGrad", [loss.shape], "the loss must be a scalar");
    }
    const vars = params.map((p) => p.tf as tf.Variable);
    let scalar: tf.Tensor | undefined;
    let grads: (tf.Tensor | null)[];
    try {
      scalar = tf.reshape(loss.tf, []);
      grads = tape.gradients(scalar, vars);
    } catch (e) {
      tape.close();
      scalar?.dispose();
      if (e instanceof BackendError) throw e;
      throw new BackendError("valueAndGrad", shapes, e instanceof Error ? e.message : String(e));
    }
    try {
      const value = (await scalar.data())[0];
      // A parameter the loss does not reach gets a zero gradient (PyTorch would give None).
      const out = vars.map((v, i) => new TfjsTensor(this.backend, grads[i] ?? tf.zerosLike(v)));
      return { value, grads: out };
    } finally {
      scalar.dispose();
    }
  }

  /** Frees everything (the worker is about to end). */
  close(): void {
    this.#tape?.close();
    this.#free([...this.#tensors.keys()]);
    this.backend.dispose();
    // Destroyed here, on the thread that owns it, while the process is whole.
    (tf.findBackend("webgpu") as { device?: { destroy(): void } } | null)?.device?.destroy();
  }
}

/** What an error becomes on the wire. */
function wireError(e: unknown): WireError {
  if (e instanceof BackendError) {
    return {
      name: e.name,
      message: e.message,
      op: e.op,
      shapes: e.shapes.map((s) => [...s]),
      detail: e.detail,
    };
  }
  if (e instanceof Error) return { name: e.name, message: e.message };
  return { name: "Error", message: String(e) };
}

/** Loads the backend, then answers requests until told to stop. */
async function serve(buffers: ChannelBuffers): Promise<void> {
  const control = new Int32Array(buffers.control);
  const { data } = buffers;
  let server: Server;
  try {
    server = new Server(await createTfjsBackend("webgpu", { readsAsync: true }));
  } catch (e) {
    writeMessage(data, { error: wireError(e) });
    return publish(control, STATE.dead);
  }
  publish(control, STATE.idle);
  for (;;) {
    const state = await waitWhileAsync(control, STATE.idle);
    if (state === STATE.stop) break;
    if (state !== STATE.request) continue;
    let reply: unknown;
    try {
      const req = readMessage(data, server.revive) as Request;
      reply = { result: await server.handle(req) };
    } catch (e) {
      reply = { error: wireError(e) };
    }
    try {
      writeMessage(data, reply, server.replace);
    } catch (e) {
      // Too large a reply: say so instead (tensors registered by the failed write stay known
      // to the worker only until the backend is disposed).
      writeMessage(data, { error: wireError(e) });
    }
    publish(control, STATE.reply);
  }
  try {
    server.close();
  } finally {
    publish(control, STATE.stopped);
  }
}

/** Reports a failure that escaped `serve` so the main thread stops waiting. */
function die(control: Int32Array, data: SharedArrayBuffer, e: unknown): void {
  try {
    writeMessage(data, { error: wireError(e) });
  } finally {
    publish(control, STATE.dead);
  }
}

if (!isMainThread && (workerData as ChannelBuffers | undefined)?.role === "dd-webgpu") {
  const buffers = workerData as ChannelBuffers;
  const control = new Int32Array(buffers.control);
  globalThis.addEventListener("unhandledrejection", (e) => die(control, buffers.data, e.reason));
  globalThis.addEventListener("error", (e) => die(control, buffers.data, e.error ?? e.message));
  // A pending Atomics.waitAsync alone does not keep a Deno worker's event loop alive (checked
  // with Deno 2.9.6: the worker then never wakes); a timer does. The main thread unrefs the
  // worker, so this keeps no program from exiting.
  // It is not cleared when serving ends: a stopped worker waits to be terminated, since a
  // thread ending on its own while the process exits is what webgpu_link.ts guards against.
  setInterval(() => {}, 2 ** 30);
  serve(buffers).catch((e) => die(control, buffers.data, e));
}
