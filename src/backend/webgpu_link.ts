/**
 * The main thread's end of the GPU worker: starts it, sends one request at a time and blocks
 * until the reply (webgpu_channel.ts describes the buffers), and turns a failure in the worker
 * into the {@link BackendError} it was there.
 *
 * It is a `node:worker_threads` Worker because that one can be unref'd: a program that ends
 * without disposing its backend still exits (as with the conv worker, tfjs_worker.ts).
 *
 * @module
 */
import { Worker } from "node:worker_threads";
import { BackendError } from "./backend.ts";
import {
  type ChannelBuffers,
  createChannelBuffers,
  publish,
  readMessage,
  STATE,
  waitWhile,
  waitWhileAsync,
  type WireError,
  writeMessage,
} from "./webgpu_channel.ts";

/** How long the worker may take to load tfjs and create the device. */
const START_TIMEOUT_MS = 120_000;

/** How long closing waits for the worker to free its device before terminating it anyway. */
const STOP_TIMEOUT_MS = 10_000;

/**
 * How long one request may take before the worker is given up. Long: a read waits for all GPU
 * work queued before it (a whole training step), and on a software adapter a DCGAN step at
 * batch 128 took over 10 minutes on a busy 2-core VM. A heartbeat cannot replace it: Deno
 * blocks the worker's thread while it waits for the GPU (checked: no timer fires meanwhile).
 */
export const REQUEST_TIMEOUT_MS = 3_600_000;

/**
 * How long an unused GPU worker stays, so that the next backend reuses it (a test suite
 * creates one backend per test; `backends` then `train` create two): starting one loads tfjs
 * and the device, about a second. The timer is unref'd: it keeps no program alive.
 */
export const LINGER_MS = 5_000;

/** What a reply holds for a tensor: the worker's id, shape and dtype. */
export interface WireTensor {
  id: number;
  shape: number[];
  dtype: "float32" | "int32";
}

/** Options of {@link WebGpuLink.call}. */
export interface CallOptions {
  /** Tensor ids freed on this side since the last request (the worker frees them first). */
  free?: readonly number[];
  /** The inputs' shapes, for errors that do not carry their own. */
  shapes?: readonly (readonly number[])[];
  /** Maps the caller's handles in `args` to `{$t: id}` (undefined: leave the value alone). */
  toWire?: (v: unknown) => unknown;
  /** Turns each tensor in the reply into the caller's handle. */
  fromWire?: (t: WireTensor) => unknown;
}

/**
 * The main thread's end of the channel.
 *
 * @example
 * ```ts ignore
 * import { WebGpuLink } from "./webgpu_link.ts";
 * const link = await WebGpuLink.start(new URL("./webgpu_worker.ts", import.meta.url));
 * console.log(link.call("hello", [])); // { name: "tfjs-webgpu", device: "webgpu (...)", ... }
 * link.close();
 * ```
 */
export class WebGpuLink {
  readonly #control: Int32Array;
  readonly #data: SharedArrayBuffer;
  #worker: Worker | undefined;
  /** Why the worker is gone, once it is. */
  #failure: string | undefined;
  #removeExitHooks = () => {};
  /** The kernel's ids of the worker's thread (Linux), to see when it has really ended. */
  #threads = new Set<string>();

  private constructor(buffers: ChannelBuffers, worker: Worker) {
    this.#control = new Int32Array(buffers.control);
    this.#data = buffers.data;
    this.#worker = worker;
  }

  /**
   * Starts the worker at `url` and resolves once it has its device, or rejects with the
   * worker's reason (no adapter, tfjs-webgpu failed to initialise, timeout).
   */
  static async start(url: URL): Promise<WebGpuLink> {
    const buffers = createChannelBuffers();
    const before = workerThreads();
    const worker = new Worker(url, { workerData: buffers });
    const link = new WebGpuLink(buffers, worker);
    // Until the device exists the main thread waits asynchronously, so worker events arrive.
    let exited: (why: string) => void = () => {};
    const gone = new Promise<string>((resolve) => (exited = resolve));
    worker.on("error", (e: unknown) => {
      link.#failure ??= `worker error: ${e instanceof Error ? e.message : String(e)}`;
      exited(link.#failure);
    });
    worker.once("exit", () => exited(link.#failure ?? "the worker exited"));
    worker.unref();
    link.#threads = difference(workerThreads(), before);
    // At the end of a program, Deno tears its workers down while the main thread already runs
    // the C exit handlers: the GPU worker's thread then unloads the Vulkan/EGL drivers while
    // those run, which crashed Mesa now and then (exit 139, about 1 run in 50). So a link still
    // open when the event loop empties is closed first, and the loop kept alive until the
    // worker's thread is gone (see close()).
    const closeBeforeExit = (e: { preventDefault(): void }) => {
      link.close();
      e.preventDefault();
    };
    // Deno.exit() skips beforeunload and exits without tearing workers down: only free the
    // device, on the worker's own thread, and leave the thread be.
    const stopAtExit = () => link.#stop();
    globalThis.addEventListener("beforeunload", closeBeforeExit);
    globalThis.addEventListener("unload", stopAtExit);
    link.#removeExitHooks = () => {
      globalThis.removeEventListener("beforeunload", closeBeforeExit);
      globalThis.removeEventListener("unload", stopAtExit);
    };
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<string>((resolve) => {
      timer = setTimeout(() => resolve("timed out loading"), START_TIMEOUT_MS);
    });
    const state = await Promise.race([
      waitWhileAsync(link.#control, STATE.starting),
      gone,
      timeout,
    ]).finally(() => clearTimeout(timer));
    if (state === STATE.idle) return link;
    const why = typeof state === "string" ? state : link.#workerError().message;
    link.close();
    throw new Error(why);
  }

  /**
   * Sends `op` with `args` and blocks for the result. A failure raises a BackendError (the
   * worker's own, or one naming `op` and `opts.shapes`, the inputs' shapes).
   */
  call(op: string, args: unknown[], opts: CallOptions = {}): unknown {
    const { free = [], shapes = [], toWire, fromWire = (t: WireTensor) => t } = opts;
    if (this.#failure !== undefined || !this.#worker) {
      throw new BackendError(op, shapes, `the GPU worker is gone: ${this.#failure ?? "closed"}`);
    }
    try {
      writeMessage(this.#data, { op, args, free }, toWire);
    } catch (e) {
      throw new BackendError(op, shapes, e instanceof Error ? e.message : String(e));
    }
    publish(this.#control, STATE.request);
    const state = waitWhile(this.#control, STATE.request, performance.now() + REQUEST_TIMEOUT_MS);
    if (state !== STATE.reply) {
      const why = state === STATE.dead
        ? `the GPU worker failed: ${this.#workerError().message}`
        : `the GPU worker did not answer within ${REQUEST_TIMEOUT_MS / 1000} s`;
      this.#failure = why;
      this.close();
      throw new BackendError(op, shapes, why);
    }
    const reply = readMessage(this.#data, (v) => {
      if (typeof v.$t !== "number") return undefined;
      return fromWire({ id: v.$t, shape: v.shape as number[], dtype: v.dtype as "float32" });
    }) as { result?: unknown; error?: WireError };
    Atomics.store(this.#control, 0, STATE.idle);
    if (reply.error) throw toBackendError(op, shapes, reply.error);
    return reply.result;
  }

  /** Whether requests can still be sent (the worker neither failed nor was closed). */
  get usable(): boolean {
    return this.#failure === undefined && this.#worker !== undefined;
  }

  /** Stops the worker (idempotent); later calls throw. */
  close(): void {
    const worker = this.#worker;
    if (!worker) return;
    this.#worker = undefined;
    this.#failure ??= "closed";
    this.#removeExitHooks();
    this.#stop();
    // The worker's 'exit' comes before its thread has unloaded the GPU drivers, so the loop is
    // kept alive (ref'd worker, then timers) until the thread itself is gone.
    worker.ref();
    const threads = this.#threads;
    void worker.terminate().then(() => threadsGone(threads));
  }

  /** Asks an idle worker to free its tensors and destroy its device, and waits for that. */
  #stop(): void {
    const state = Atomics.load(this.#control, 0);
    if (state !== STATE.idle) return; // busy or dead: it is terminated as it is
    publish(this.#control, STATE.stop);
    waitWhile(this.#control, STATE.stop, performance.now() + STOP_TIMEOUT_MS);
  }

  #workerError(): WireError {
    try {
      return (readMessage(this.#data) as { error: WireError }).error;
    } catch {
      return { name: "Error", message: "unknown failure (no message from the worker)" };
    }
  }
}

/** The worker's error as thrown here: its own BackendError, or one for the request's op. */
function toBackendError(
  op: string,
  shapes: readonly (readonly number[])[],
  e: WireError,
): BackendError {
  if (e.op !== undefined && e.shapes && e.detail !== undefined && e.name === "BackendError") {
    return new BackendError(e.op, e.shapes, e.detail);
  }
  return new BackendError(op, shapes, e.name === "Error" ? e.message : `${e.name}: ${e.message}`);
}

/** The process's GPU worker, shared by every tfjs-webgpu backend, and who holds it. */
let shared: {
  link: Promise<WebGpuLink>;
  holders: number;
  linger?: ReturnType<typeof setTimeout>;
} | undefined;

/**
 * Takes a reference to the process's GPU worker (the worker at `url`), starting it unless a
 * usable one exists. Pair every successful call with one {@link releaseLink}.
 *
 * @example
 * ```ts ignore
 * import { acquireLink, releaseLink } from "./webgpu_link.ts";
 * const link = await acquireLink(new URL("./webgpu_worker.ts", import.meta.url));
 * releaseLink(link); // the worker lingers LINGER_MS for the next backend
 * ```
 */
export async function acquireLink(url: URL): Promise<WebGpuLink> {
  if (shared && shared.holders === 0) {
    clearTimeout(shared.linger);
    const link = await shared.link.catch(() => undefined);
    if (!link?.usable) shared = undefined;
  }
  const entry = shared ??= { link: WebGpuLink.start(url), holders: 0 };
  entry.holders++;
  try {
    return await entry.link;
  } catch (e) {
    entry.holders--;
    if (shared === entry) shared = undefined;
    throw e;
  }
}

/** Drops one reference; the last lets the worker linger {@link LINGER_MS}, then stops it. */
export function releaseLink(link: WebGpuLink): void {
  const entry = shared;
  if (!entry) return link.close();
  entry.holders = Math.max(0, entry.holders - 1);
  if (entry.holders > 0) return;
  if (!link.usable) {
    shared = undefined;
    return link.close();
  }
  entry.linger = setTimeout(() => {
    if (shared === entry && entry.holders === 0) shared = undefined;
    link.close();
  }, LINGER_MS);
  Deno.unrefTimer(entry.linger as unknown as number);
}

/** The ids of this process's Deno worker threads ("worker-N"); empty where /proc is not. */
function workerThreads(): Set<string> {
  const ids = new Set<string>();
  try {
    for (const task of Deno.readDirSync("/proc/self/task")) {
      try {
        const name = Deno.readTextFileSync(`/proc/self/task/${task.name}/comm`);
        if (name.startsWith("worker-")) ids.add(task.name);
      } catch {
        // the thread ended while listing
      }
    }
  } catch {
    // no /proc (macOS, Windows) or no read permission: threadsGone() waits a fixed time
  }
  return ids;
}

function difference(a: Set<string>, b: Set<string>): Set<string> {
  return new Set([...a].filter((x) => !b.has(x)));
}

/** Resolves once none of `threads` exists (at most 10 s), or after 250 ms if none is known. */
async function threadsGone(threads: Set<string>): Promise<void> {
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
  if (threads.size === 0) return void await sleep(250);
  const deadline = performance.now() + 10_000;
  const alive = (id: string) => {
    try {
      Deno.statSync(`/proc/self/task/${id}`);
      return true;
    } catch {
      return false;
    }
  };
  while ([...threads].some(alive) && performance.now() < deadline) await sleep(10);
}
