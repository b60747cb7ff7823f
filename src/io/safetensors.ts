/**
 * safetensors read/write (https://github.com/huggingface/safetensors, format spec in its
 * README): an 8-byte little-endian header length N, N bytes of JSON
 * `{ name: { dtype, shape, data_offsets: [begin, end] }, "__metadata__": { str: str } }`,
 * then the raw little-endian tensor bytes, offsets relative to the end of the header.
 *
 * F32, F64, I32 and I64 are read and written; F16 and BF16 are read (as Float32Array).
 *
 * @module
 */
import { writeFileAtomic } from "./atomic.ts";

/** Element types this module understands. */
export type SafeDtype = "F32" | "F64" | "I32" | "I64" | "F16" | "BF16";

/** One tensor of a safetensors file. F16/BF16 tensors are decoded into a Float32Array. */
export interface SafeTensor {
  /** Element type as stored. */
  dtype: SafeDtype;
  /** Dimensions. */
  shape: number[];
  /** The elements, row-major (F16/BF16 widened to float32). */
  data: Float32Array | Float64Array | Int32Array | BigInt64Array;
}

const BYTES_PER_ELEMENT: Record<SafeDtype, number> = {
  F32: 4,
  F64: 8,
  I32: 4,
  I64: 8,
  F16: 2,
  BF16: 2,
};

const WRITABLE_ARRAY: Record<string, string> = {
  F32: "Float32Array",
  F64: "Float64Array",
  I32: "Int32Array",
  I64: "BigInt64Array",
};

function elementCount(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/**
 * Serialises tensors (and optional string metadata) into safetensors bytes. Tensors are
 * stored in name order, each 8-byte aligned.
 *
 * @example
 * ```ts
 * import { decodeSafetensors, encodeSafetensors, type SafeTensor } from "./safetensors.ts";
 * const tensors = new Map<string, SafeTensor>([
 *   ["conv.weight", { dtype: "F32", shape: [2, 2], data: new Float32Array([1, 2, 3, 4]) }],
 * ]);
 * const bytes = encodeSafetensors(tensors, { step: "100" });
 * console.log(decodeSafetensors(bytes).metadata.step); // "100"
 * ```
 */
export function encodeSafetensors(
  tensors: Map<string, SafeTensor>,
  metadata?: Record<string, string>,
): Uint8Array {
  if (!HOST_IS_LITTLE_ENDIAN) throw new Error("encodeSafetensors needs a little-endian host");
  const names = [...tensors.keys()].sort();
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) {
    for (const [key, value] of Object.entries(metadata)) {
      if (typeof value !== "string") {
        throw new TypeError(`safetensors metadata "${key}" must be a string, got ${typeof value}`);
      }
    }
    header.__metadata__ = metadata;
  }
  let offset = 0;
  const chunks: Uint8Array[] = [];
  for (const name of names) {
    if (name === "__metadata__") throw new TypeError(`"__metadata__" is not a valid tensor name`);
    const tensor = tensors.get(name)!;
    const expectedArray = WRITABLE_ARRAY[tensor.dtype];
    if (!expectedArray) {
      throw new TypeError(
        `tensor "${name}": writing dtype ${tensor.dtype} is not supported (use F32, F64, I32 or I64)`,
      );
    }
    if (tensor.data.constructor.name !== expectedArray) {
      throw new TypeError(
        `tensor "${name}": dtype ${tensor.dtype} needs a ${expectedArray}, got ${tensor.data.constructor.name}`,
      );
    }
    if (tensor.shape.some((d) => !Number.isInteger(d) || d < 0)) {
      throw new TypeError(`tensor "${name}": bad shape [${tensor.shape}]`);
    }
    if (elementCount(tensor.shape) !== tensor.data.length) {
      throw new TypeError(
        `tensor "${name}": shape [${tensor.shape}] has ${elementCount(tensor.shape)} elements ` +
          `but data has ${tensor.data.length}`,
      );
    }
    const bytes = new Uint8Array(
      tensor.data.buffer,
      tensor.data.byteOffset,
      tensor.data.byteLength,
    );
    header[name] = {
      dtype: tensor.dtype,
      shape: tensor.shape,
      data_offsets: [offset, offset + bytes.length],
    };
    chunks.push(bytes);
    offset += bytes.length;
  }
  let json = new TextEncoder().encode(JSON.stringify(header));
  // Pad the header with spaces so the data section starts 8-byte aligned (as the reference
  // implementation does).
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded !== json.length) {
    const withSpaces = new Uint8Array(padded).fill(0x20);
    withSpaces.set(json);
    json = withSpaces;
  }
  const out = new Uint8Array(8 + json.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  let position = 8 + json.length;
  for (const chunk of chunks) {
    out.set(chunk, position);
    position += chunk.length;
  }
  return out;
}

/**
 * The value of an IEEE 754 binary16 bit pattern.
 *
 * @example
 * ```ts
 * import { halfToFloat } from "./safetensors.ts";
 * halfToFloat(0x3c00); // 1
 * ```
 */
export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >> 10) & 0x1f;
  const fraction = h & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24; // subnormal
  if (exponent === 31) return fraction ? NaN : sign * Infinity;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}

const HOST_IS_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * Decodes little-endian raw bytes of `dtype` into a new typed array (half floats widened to
 * float32). Shared with readers of other formats.
 *
 * @example
 * ```ts
 * import { decodeRawLE } from "./safetensors.ts";
 * decodeRawLE(new Uint8Array([0, 0, 128, 63]), "F32"); // Float32Array [1]
 * ```
 */
export function decodeRawLE(
  bytes: Uint8Array,
  dtype: SafeDtype,
): Float32Array | Float64Array | Int32Array | BigInt64Array {
  const n = bytes.length / BYTES_PER_ELEMENT[dtype];
  if (HOST_IS_LITTLE_ENDIAN && BYTES_PER_ELEMENT[dtype] >= 4) {
    // slice() copies into a fresh, aligned buffer (the source offset may be unaligned).
    const buffer = bytes.slice().buffer;
    if (dtype === "F32") return new Float32Array(buffer);
    if (dtype === "F64") return new Float64Array(buffer);
    if (dtype === "I32") return new Int32Array(buffer);
    return new BigInt64Array(buffer);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  switch (dtype) {
    case "F32": {
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = view.getFloat32(i * 4, true);
      return out;
    }
    case "F64": {
      const out = new Float64Array(n);
      for (let i = 0; i < n; i++) out[i] = view.getFloat64(i * 8, true);
      return out;
    }
    case "I32": {
      const out = new Int32Array(n);
      for (let i = 0; i < n; i++) out[i] = view.getInt32(i * 4, true);
      return out;
    }
    case "I64": {
      const out = new BigInt64Array(n);
      for (let i = 0; i < n; i++) out[i] = view.getBigInt64(i * 8, true);
      return out;
    }
    case "F16": {
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = halfToFloat(view.getUint16(i * 2, true));
      return out;
    }
    case "BF16": {
      // bfloat16 is the top half of a float32.
      const out = new Float32Array(n);
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < n; i++) bits[i] = view.getUint16(i * 2, true) << 16;
      return out;
    }
  }
}

/**
 * Parses safetensors bytes. `source` (a file name) is used in error messages.
 *
 * @example
 * ```ts
 * import { decodeSafetensors, encodeSafetensors } from "./safetensors.ts";
 * const bytes = encodeSafetensors(new Map([
 *   ["fc.weight", { dtype: "F32", shape: [1, 2], data: new Float32Array([1, 2]) }],
 * ]));
 * const { tensors } = decodeSafetensors(bytes);
 * console.log([...tensors.keys()]); // ["fc.weight"]
 * ```
 */
export function decodeSafetensors(
  bytes: Uint8Array,
  source = "safetensors data",
): { tensors: Map<string, SafeTensor>; metadata: Record<string, string> } {
  const fail = (why: string): never => {
    throw new Error(`${source}: not a valid safetensors file: ${why}`);
  };
  if (bytes.length < 8) fail(`only ${bytes.length} bytes, expected at least an 8-byte header`);
  const headerLength = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  if (headerLength > BigInt(bytes.length - 8)) {
    fail(`header length ${headerLength} exceeds the file size ${bytes.length} (truncated?)`);
  }
  const dataStart = 8 + Number(headerLength);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(
      new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, dataStart)),
    );
  } catch (error) {
    return fail(`header is not valid JSON (${(error as Error).message})`);
  }
  if (header === null || typeof header !== "object" || Array.isArray(header)) {
    fail("header is not a JSON object");
  }
  const dataLength = bytes.length - dataStart;
  const metadata: Record<string, string> = {};
  const tensors = new Map<string, SafeTensor>();
  const ranges: [number, number, string][] = [];
  for (const [name, entry] of Object.entries(header)) {
    if (name === "__metadata__") {
      if (entry === null || typeof entry !== "object") fail("__metadata__ is not an object");
      for (const [key, value] of Object.entries(entry as Record<string, unknown>)) {
        if (typeof value !== "string") fail(`__metadata__.${key} is not a string`);
        metadata[key] = value as string;
      }
      continue;
    }
    const info = entry as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    const dtype = info?.dtype as SafeDtype;
    if (!(typeof dtype === "string" && dtype in BYTES_PER_ELEMENT)) {
      fail(
        `tensor "${name}" has dtype ${
          JSON.stringify(info?.dtype)
        }; supported: F32, F64, I32, I64, F16, BF16`,
      );
    }
    const shape = info.shape;
    if (!Array.isArray(shape) || shape.some((d) => !Number.isInteger(d) || d < 0)) {
      fail(`tensor "${name}" has a bad shape ${JSON.stringify(shape)}`);
    }
    const offsets = info.data_offsets;
    if (
      !Array.isArray(offsets) || offsets.length !== 2 ||
      !offsets.every((o) => Number.isInteger(o) && o >= 0) || offsets[0] > offsets[1]
    ) {
      fail(`tensor "${name}" has bad data_offsets ${JSON.stringify(offsets)}`);
    }
    const [begin, end] = offsets as [number, number];
    if (end > dataLength) {
      fail(
        `tensor "${name}" ends at byte ${end} but the data section has ${dataLength} (truncated?)`,
      );
    }
    const expectedBytes = elementCount(shape as number[]) * BYTES_PER_ELEMENT[dtype];
    if (end - begin !== expectedBytes) {
      fail(
        `tensor "${name}" of shape [${shape}] ${dtype} needs ${expectedBytes} bytes, has ${
          end - begin
        }`,
      );
    }
    ranges.push([begin, end, name]);
    tensors.set(name, {
      dtype,
      shape: shape as number[],
      data: decodeRawLE(bytes.subarray(dataStart + begin, dataStart + end), dtype),
    });
  }
  // The spec forbids holes and overlaps between tensors.
  ranges.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let cursor = 0;
  for (const [begin, end, name] of ranges) {
    if (begin !== cursor) {
      fail(`tensor "${name}" starts at ${begin}, expected ${cursor} (overlap or gap)`);
    }
    cursor = end;
  }
  if (cursor !== dataLength) fail(`${dataLength - cursor} trailing bytes after the last tensor`);
  return { tensors, metadata };
}

/**
 * Writes tensors to a safetensors file atomically.
 *
 * @example
 * ```ts
 * import { writeSafetensors } from "./safetensors.ts";
 * const dir = await Deno.makeTempDir();
 * await writeSafetensors(`${dir}/w.safetensors`, new Map([
 *   ["bias", { dtype: "F32", shape: [2], data: new Float32Array([0.5, -1]) }],
 * ]), { format: "pt" });
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeSafetensors(
  path: string,
  tensors: Map<string, SafeTensor>,
  metadata?: Record<string, string>,
): Promise<void> {
  await writeFileAtomic(path, encodeSafetensors(tensors, metadata));
}

/**
 * Reads a safetensors file.
 *
 * @example
 * ```ts
 * import { readSafetensors, writeSafetensors } from "./safetensors.ts";
 * const dir = await Deno.makeTempDir();
 * await writeSafetensors(`${dir}/w.safetensors`, new Map([
 *   ["bias", { dtype: "F32", shape: [2], data: new Float32Array([0.5, -1]) }],
 * ]), { format: "pt" });
 * const { tensors, metadata } = await readSafetensors(`${dir}/w.safetensors`);
 * console.log(tensors.get("bias")!.shape, metadata.format); // [2] pt
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function readSafetensors(
  path: string,
): Promise<{ tensors: Map<string, SafeTensor>; metadata: Record<string, string> }> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (error) {
    throw new Error(`cannot read safetensors file ${path}: ${(error as Error).message}`, {
      cause: error,
    });
  }
  return decodeSafetensors(bytes, path);
}

/**
 * The tensor's values as a Float32Array (a view when it already is one; a converted copy
 * otherwise).
 *
 * @example
 * ```ts
 * import { toFloat32 } from "./safetensors.ts";
 * toFloat32({ dtype: "I64", shape: [1], data: new BigInt64Array([3n]) }); // Float32Array [3]
 * ```
 */
export function toFloat32(t: SafeTensor): Float32Array {
  if (t.data instanceof Float32Array) return t.data;
  if (t.data instanceof BigInt64Array) {
    const out = new Float32Array(t.data.length);
    for (let i = 0; i < out.length; i++) out[i] = Number(t.data[i]);
    return out;
  }
  return Float32Array.from(t.data);
}
