/**
 * The synchronous request/reply channel between the main thread's tfjs-webgpu backend
 * (webgpu_backend.ts) and the worker that owns the GPU (webgpu_worker.ts).
 *
 * Why a worker and shared memory: the backend contract is synchronous (`read` returns the data),
 * but a GPU buffer can only be read back with `mapAsync`, whose promise settles on the event
 * loop of the thread that owns the device. So the device lives in a worker, and the main thread
 * blocks in `Atomics.wait` while the worker, waiting with `Atomics.waitAsync` between requests,
 * keeps its event loop free to settle that promise. Same pattern as the conv worker
 * (tfjs_worker.ts), except that the worker waits asynchronously.
 *
 * Two buffers: `control` (an Int32Array; word 0 is the {@link STATE}) and `data`, a growable
 * SharedArrayBuffer holding one message at a time: int32 text length at byte 0, the message as
 * JSON text from byte 8, then its binary parts (typed arrays, 8-byte aligned). In the JSON a
 * typed array is `{"$bin": type, "at": offset, "n": length}`, a non-finite number
 * `{"$num": "Infinity"}`, undefined `{"$undef": 1}`; each side maps its own objects (tensor handles) with `replace` and
 * `revive`.
 *
 * @module
 */

import { mib } from "./tfjs_memory.ts";

/** Values of the state word (control[0]). */
export const STATE = {
  /** The worker is loading tfjs and the device. */
  starting: 0,
  /** Waiting for a request. */
  idle: 1,
  /** The main thread wrote a request. */
  request: 2,
  /** The worker wrote the reply. */
  reply: 3,
  /** The worker failed for good; the data buffer holds `{ error }`. */
  dead: 4,
  /** The main thread is shutting the worker down. */
  stop: 5,
  /** The worker freed its tensors and destroyed its device; terminating it is now safe. */
  stopped: 6,
} as const;

/** Most bytes one message may take (a tensor crossing threads, e.g. 256 M float32 values). */
export const CHANNEL_MAX_BYTES = 2 ** 30;

/** The two shared buffers: what the worker receives as workerData (with its role). */
export interface ChannelBuffers {
  role: "dd-webgpu";
  control: SharedArrayBuffer;
  data: SharedArrayBuffer;
}

/** New, empty channel buffers. */
export function createChannelBuffers(): ChannelBuffers {
  return {
    role: "dd-webgpu",
    control: new SharedArrayBuffer(64),
    data: new SharedArrayBuffer(1 << 16, { maxByteLength: CHANNEL_MAX_BYTES }),
  };
}

type Binary = Float32Array | Int32Array | Float64Array;
const ARRAYS = { float32: Float32Array, int32: Int32Array, float64: Float64Array } as const;
type BinaryType = keyof typeof ARRAYS;

function binaryType(v: unknown): BinaryType | undefined {
  if (v instanceof Float32Array) return "float32";
  if (v instanceof Int32Array) return "int32";
  if (v instanceof Float64Array) return "float64";
  return undefined;
}

const align8 = (n: number) => Math.ceil(n / 8) * 8;

/**
 * Writes `value` into `data` (growing it as needed). `replace` maps a side's own objects to
 * plain JSON first (return undefined to leave a value alone). Throws a RangeError when the
 * message would exceed the buffer's `maxByteLength` ({@link CHANNEL_MAX_BYTES} for a channel).
 *
 * @example
 * ```ts
 * import { createChannelBuffers, readMessage, writeMessage } from "./webgpu_channel.ts";
 * const { data } = createChannelBuffers();
 * writeMessage(data, { op: "tensor", args: [new Float32Array([1, 2]), [2]] });
 * console.log(readMessage(data)); // { op: "tensor", args: [Float32Array [1, 2], [2]] }
 * ```
 */
export function writeMessage(
  data: SharedArrayBuffer,
  value: unknown,
  replace?: (v: unknown) => unknown,
): void {
  const parts: Binary[] = [];
  let binBytes = 0;
  const text = JSON.stringify(value, function (this: unknown, _key, v) {
    const mapped = replace?.(v);
    if (mapped !== undefined) v = mapped;
    const type = binaryType(v);
    if (type) {
      const part = v as Binary;
      parts.push(part);
      const at = binBytes;
      binBytes += align8(part.byteLength);
      return { $bin: type, at, n: part.length };
    }
    if (typeof v === "number" && !Number.isFinite(v)) return { $num: String(v) };
    // An omitted optional argument (`linear(x, w, undefined)`) must stay undefined, not null.
    if (v === undefined) return { $undef: 1 };
    return v;
  });
  const encoded = new TextEncoder().encode(text);
  const binStart = align8(8 + encoded.length);
  const total = binStart + binBytes;
  const max = data.growable ? data.maxByteLength : data.byteLength;
  if (total > max) {
    throw new RangeError(
      `a message of ${mib(total)} exceeds the ${mib(max)} channel to the GPU worker`,
    );
  }
  if (total > data.byteLength) data.grow(Math.min(max, align8(Math.ceil(total * 1.25))));
  new Int32Array(data, 0, 1)[0] = encoded.length;
  new Uint8Array(data).set(encoded, 8);
  let at = binStart;
  for (const part of parts) {
    new Uint8Array(data, at, part.byteLength).set(
      new Uint8Array(part.buffer, part.byteOffset, part.byteLength),
    );
    at += align8(part.byteLength);
  }
}

/**
 * Reads the message in `data` (typed arrays are copied out of the shared buffer). `revive`
 * maps plain objects back to a side's own objects (return undefined to leave one alone).
 */
export function readMessage(
  data: SharedArrayBuffer,
  revive?: (v: Record<string, unknown>) => unknown,
): unknown {
  const length = new Int32Array(data, 0, 1)[0];
  const text = new TextDecoder().decode(new Uint8Array(data, 8, length).slice());
  const binStart = align8(8 + length);
  return JSON.parse(text, (_key, v) => {
    if (v === null || typeof v !== "object" || Array.isArray(v)) return v;
    if (typeof v.$bin === "string") {
      const type = v.$bin as BinaryType;
      const bytes = new Uint8Array(data, binStart + v.at, v.n * ARRAYS[type].BYTES_PER_ELEMENT);
      return new ARRAYS[type](bytes.slice().buffer);
    }
    if (typeof v.$num === "string") return Number(v.$num);
    if (v.$undef === 1) return undefined; // deletes the key, or leaves an array hole

    return revive?.(v) ?? v;
  });
}

/** A failure as it crosses the channel: enough to rebuild a BackendError. */
export interface WireError {
  name: string;
  message: string;
  op?: string;
  shapes?: number[][];
  detail?: string;
}

/**
 * Blocks until the worker leaves state `from` (or `deadline`, a performance.now() time, passes);
 * returns the state found. For the main thread (Atomics.wait blocks the calling thread).
 */
export function waitWhile(control: Int32Array, from: number, deadline: number): number {
  let state = Atomics.load(control, 0);
  while (state === from) {
    const left = deadline - performance.now();
    if (left <= 0) break;
    Atomics.wait(control, 0, from, Math.min(left, 1000));
    state = Atomics.load(control, 0);
  }
  return state;
}

/** Sets the state word and wakes whoever waits on it. */
export function publish(control: Int32Array, state: number): void {
  Atomics.store(control, 0, state);
  Atomics.notify(control, 0);
}

/**
 * Waits without blocking the thread's event loop until the state word is no longer `from`
 * (the worker's wait between requests, and the main thread's wait while the worker starts).
 */
export async function waitWhileAsync(control: Int32Array, from: number): Promise<number> {
  for (;;) {
    const state = Atomics.load(control, 0);
    if (state !== from) return state;
    const waited = Atomics.waitAsync(control, 0, from);
    if (waited.async) await waited.value;
  }
}
