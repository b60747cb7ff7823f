/**
 * NumPy `.npy` and `.npz` read/write for float32/float64 arrays in C order, so FID statistics
 * (`mu`, `sigma`) can be exchanged with pytorch-fid (`--save-stats` writes
 * `np.savez(path, mu=..., sigma=...)`).
 *
 * Format: numpy/lib/format.py (NEP 1): magic `\x93NUMPY`, version, header length (uint16 for
 * 1.0, uint32 for 2.0/3.0), a Python-literal dict `{'descr', 'fortran_order', 'shape'}` padded
 * to a 64-byte boundary, then the raw data. An `.npz` is a ZIP of `<name>.npy` entries.
 *
 * @module
 */
import { writeFileAtomic } from "./atomic.ts";
import { encodeZip, looksLikeZip, readZipDirectory, readZipEntry } from "./zip.ts";

/** A dense C-order array. */
export interface NdArray {
  /** Element type. */
  dtype: "float32" | "float64";
  /** Dimensions (C order). */
  shape: number[];
  /** The elements, row-major. */
  data: Float32Array | Float64Array;
}

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // "\x93NUMPY"

/**
 * Parses `.npy` bytes. `source` names the file in errors.
 *
 * @example
 * ```ts
 * import { encodeNpy, parseNpy } from "./npy.ts";
 * const bytes = encodeNpy({ dtype: "float64", shape: [2], data: new Float64Array([1, 2]) });
 * console.log(parseNpy(bytes).shape); // [2]
 * ```
 */
export function parseNpy(bytes: Uint8Array, source = "npy data"): NdArray {
  const fail = (why: string): never => {
    throw new Error(`${source}: not a readable .npy array: ${why}`);
  };
  if (bytes.length < 10 || MAGIC.some((b, i) => bytes[i] !== b)) fail("missing \\x93NUMPY magic");
  const major = bytes[6];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let headerStart: number;
  let headerLength: number;
  if (major === 1) {
    headerLength = view.getUint16(8, true);
    headerStart = 10;
  } else if (major === 2 || major === 3) {
    if (bytes.length < 12) fail("truncated header");
    headerLength = view.getUint32(8, true);
    headerStart = 12;
  } else {
    return fail(`format version ${major}.${bytes[7]} is not supported`);
  }
  const dataStart = headerStart + headerLength;
  if (dataStart > bytes.length) fail("header runs past the end of the file (truncated?)");
  const header = new TextDecoder().decode(bytes.subarray(headerStart, dataStart));
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(header)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined) {
    fail(`header is not a numpy array header: ${header.trim()}`);
  }
  if (fortran === "True") {
    fail("Fortran-order arrays are not supported; save with np.ascontiguousarray(x)");
  }
  const shape = shapeText!.split(",").map((s) => s.trim()).filter((s) => s.length > 0).map(
    Number,
  );
  if (shape.some((d) => !Number.isInteger(d) || d < 0)) fail(`bad shape (${shapeText})`);
  const match = /^([<>|=])f([48])$/.exec(descr!);
  if (!match) {
    return fail(`dtype '${descr}' is not supported (only float32 '<f4' and float64 '<f8')`);
  }
  const littleEndian = match[1] !== ">";
  const itemSize = Number(match[2]);
  const numel = shape.reduce((a, b) => a * b, 1);
  const expected = numel * itemSize;
  if (bytes.length - dataStart < expected) {
    fail(
      `shape (${shape}) needs ${expected} data bytes, found ${
        bytes.length - dataStart
      } (truncated?)`,
    );
  }
  if (itemSize === 4) {
    const data = new Float32Array(numel);
    for (let i = 0; i < numel; i++) data[i] = view.getFloat32(dataStart + 4 * i, littleEndian);
    return { dtype: "float32", shape, data };
  }
  const data = new Float64Array(numel);
  for (let i = 0; i < numel; i++) data[i] = view.getFloat64(dataStart + 8 * i, littleEndian);
  return { dtype: "float64", shape, data };
}

/**
 * Serialises an array as `.npy` (format 1.0, little-endian, C order).
 *
 * @example
 * ```ts
 * import { encodeNpy } from "./npy.ts";
 * const bytes = encodeNpy({ dtype: "float32", shape: [3], data: new Float32Array([1, 2, 3]) });
 * ```
 */
export function encodeNpy(array: NdArray): Uint8Array {
  const numel = array.shape.reduce((a, b) => a * b, 1);
  if (array.shape.some((d) => !Number.isInteger(d) || d < 0) || numel !== array.data.length) {
    throw new TypeError(
      `encodeNpy: shape [${array.shape}] does not match ${array.data.length} elements`,
    );
  }
  const isF32 = array.dtype === "float32";
  if (isF32 !== array.data instanceof Float32Array) {
    throw new TypeError(`encodeNpy: dtype ${array.dtype} does not match the data array type`);
  }
  const shapeText = array.shape.length === 1 ? `${array.shape[0]},` : array.shape.join(", ");
  let header = `{'descr': '<f${isF32 ? 4 : 8}', 'fortran_order': False, 'shape': (${shapeText}), }`;
  // Pad so that the data starts on a 64-byte boundary, header ending in '\n' (format.py).
  const total = Math.ceil((10 + header.length + 1) / 64) * 64;
  header = header.padEnd(total - 10 - 1, " ") + "\n";
  const itemSize = isF32 ? 4 : 8;
  const out = new Uint8Array(total + numel * itemSize);
  out.set(MAGIC, 0);
  out[6] = 1;
  out[7] = 0;
  const view = new DataView(out.buffer);
  view.setUint16(8, header.length, true);
  out.set(new TextEncoder().encode(header), 10);
  for (let i = 0; i < numel; i++) {
    if (isF32) view.setFloat32(total + 4 * i, array.data[i], true);
    else view.setFloat64(total + 8 * i, array.data[i], true);
  }
  return out;
}

/**
 * Parses `.npz` bytes (np.savez or np.savez_compressed) into arrays by name (without `.npy`).
 *
 * @example
 * ```ts
 * import { encodeNpz, parseNpz } from "./npy.ts";
 * const bytes = encodeNpz(new Map([["mu", { dtype: "float64", shape: [2], data: new Float64Array([0, 1]) }]]));
 * const stats = parseNpz(bytes, "stats.npz");
 * console.log(stats.get("mu")!.shape); // [2]
 * ```
 */
export function parseNpz(bytes: Uint8Array, source = "npz data"): Map<string, NdArray> {
  if (!looksLikeZip(bytes)) throw new Error(`${source}: not an .npz file (not a ZIP archive)`);
  const arrays = new Map<string, NdArray>();
  for (const entry of readZipDirectory(bytes, source)) {
    if (!entry.name.endsWith(".npy")) continue;
    const data = readZipEntry(bytes, entry, source);
    arrays.set(entry.name.slice(0, -4), parseNpy(data, `${source}:${entry.name}`));
  }
  return arrays;
}

/**
 * Serialises arrays into `.npz` bytes (uncompressed, like np.savez).
 *
 * @example
 * ```ts
 * import { encodeNpz } from "./npy.ts";
 * const bytes = encodeNpz(new Map([["mu", { dtype: "float64", shape: [1], data: new Float64Array([0]) }]]));
 * ```
 */
export function encodeNpz(arrays: Map<string, NdArray>): Uint8Array {
  return encodeZip([...arrays].map(([name, array]) => ({
    name: `${name}.npy`,
    data: encodeNpy(array),
  })));
}

async function readBytes(path: string, what: string): Promise<Uint8Array> {
  try {
    return await Deno.readFile(path);
  } catch (error) {
    throw new Error(`cannot read ${what} ${path}: ${(error as Error).message}`, { cause: error });
  }
}

/**
 * Reads an `.npy` file.
 *
 * @example
 * ```ts
 * import { readNpy, writeNpy } from "./npy.ts";
 * const dir = await Deno.makeTempDir();
 * await writeNpy(`${dir}/features.npy`, { dtype: "float32", shape: [2, 1], data: new Float32Array([1, 2]) });
 * const array = await readNpy(`${dir}/features.npy`);
 * console.log(array.dtype, array.shape); // float32 [2, 1]
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function readNpy(path: string): Promise<NdArray> {
  return parseNpy(await readBytes(path, ".npy file"), path);
}

/**
 * Writes an `.npy` file atomically.
 *
 * @example
 * ```ts
 * import { writeNpy } from "./npy.ts";
 * const dir = await Deno.makeTempDir();
 * await writeNpy(`${dir}/x.npy`, { dtype: "float32", shape: [1], data: new Float32Array([1]) });
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeNpy(path: string, array: NdArray): Promise<void> {
  await writeFileAtomic(path, encodeNpy(array));
}

/**
 * Reads an `.npz` file (np.savez or np.savez_compressed).
 *
 * @example
 * ```ts
 * import { readNpz, writeNpz } from "./npy.ts";
 * const dir = await Deno.makeTempDir();
 * await writeNpz(`${dir}/stats.npz`, new Map([
 *   ["mu", { dtype: "float64", shape: [1], data: new Float64Array([0]) }],
 *   ["sigma", { dtype: "float64", shape: [1, 1], data: new Float64Array([1]) }],
 * ]));
 * const { mu, sigma } = Object.fromEntries(await readNpz(`${dir}/stats.npz`));
 * console.log(mu.shape, sigma.shape); // [1] [1, 1]
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function readNpz(path: string): Promise<Map<string, NdArray>> {
  return parseNpz(await readBytes(path, ".npz file"), path);
}

/**
 * Writes an `.npz` file atomically (readable by `np.load`, e.g. as pytorch-fid stats).
 *
 * @example
 * ```ts
 * import { writeNpz } from "./npy.ts";
 * const dir = await Deno.makeTempDir();
 * await writeNpz(`${dir}/stats.npz`, new Map([
 *   ["mu", { dtype: "float64", shape: [2], data: new Float64Array([0, 1]) }],
 * ]));
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeNpz(path: string, arrays: Map<string, NdArray>): Promise<void> {
  await writeFileAtomic(path, encodeNpz(arrays));
}
