/**
 * Minimal ZIP reader and (stored-only) writer, for the containers that PyTorch (`torch.save`)
 * and NumPy (`np.savez`, `np.savez_compressed`) produce. Reading supports stored and deflated
 * entries and ZIP64 records (APPNOTE.TXT 4.3.14-4.3.16, 4.5.3); CRC-32 is verified.
 *
 * @module
 */
import { crc32, inflateRawSync } from "node:zlib";

/** One file inside a ZIP archive, as listed by its central directory. */
export interface ZipEntry {
  name: string;
  /** 0 = stored, 8 = deflated. */
  method: number;
  compressedSize: number;
  uncompressedSize: number;
  crc32: number;
  localHeaderOffset: number;
}

const EOCD_SIGNATURE = 0x06054b50;
const ZIP64_LOCATOR_SIGNATURE = 0x07064b50;
const ZIP64_EOCD_SIGNATURE = 0x06064b50;
const CENTRAL_SIGNATURE = 0x02014b50;
const LOCAL_SIGNATURE = 0x04034b50;

/**
 * True when the bytes start like a ZIP archive (a local file header).
 *
 * @example
 * ```ts
 * import { looksLikeZip } from "./zip.ts";
 * looksLikeZip(new Uint8Array([0x50, 0x4b, 3, 4])); // true
 * ```
 */
export function looksLikeZip(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && bytes[0] === 0x50 && bytes[1] === 0x4b && bytes[2] === 3 &&
    bytes[3] === 4;
}

function u64(view: DataView, offset: number): number {
  const value = view.getBigUint64(offset, true);
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new RangeError("64-bit size too large");
  return Number(value);
}

/**
 * Lists the entries of a ZIP archive from its central directory.
 *
 * @example
 * ```ts
 * import { encodeZip, readZipDirectory } from "./zip.ts";
 * const bytes = encodeZip([{ name: "mu.npy", data: new Uint8Array(8) }, { name: "sigma.npy", data: new Uint8Array(8) }]);
 * const entries = readZipDirectory(bytes, "stats.npz");
 * console.log(entries.map((e) => e.name)); // ["mu.npy", "sigma.npy"]
 * ```
 */
export function readZipDirectory(bytes: Uint8Array, source: string): ZipEntry[] {
  const fail = (why: string): never => {
    throw new Error(`${source}: not a valid ZIP archive: ${why}`);
  };
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  // The end-of-central-directory record sits in the last 22 + 65535 (comment) bytes.
  let eocd = -1;
  for (let i = bytes.length - 22; i >= Math.max(0, bytes.length - 22 - 65535); i--) {
    if (view.getUint32(i, true) === EOCD_SIGNATURE) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) fail("no end-of-central-directory record (truncated file?)");
  let count = view.getUint16(eocd + 10, true);
  let directorySize = view.getUint32(eocd + 12, true);
  let directoryOffset = view.getUint32(eocd + 16, true);
  const locator = eocd - 20;
  if (locator >= 0 && view.getUint32(locator, true) === ZIP64_LOCATOR_SIGNATURE) {
    const zip64 = u64(view, locator + 8);
    if (zip64 + 56 > bytes.length || view.getUint32(zip64, true) !== ZIP64_EOCD_SIGNATURE) {
      fail("bad ZIP64 end-of-central-directory record");
    }
    count = u64(view, zip64 + 32);
    directorySize = u64(view, zip64 + 40);
    directoryOffset = u64(view, zip64 + 48);
  }
  if (directoryOffset + directorySize > bytes.length) fail("central directory out of bounds");
  const entries: ZipEntry[] = [];
  let p = directoryOffset;
  for (let i = 0; i < count; i++) {
    if (p + 46 > bytes.length || view.getUint32(p, true) !== CENTRAL_SIGNATURE) {
      fail(`central directory entry ${i} is damaged`);
    }
    const method = view.getUint16(p + 10, true);
    const crc = view.getUint32(p + 16, true);
    let compressedSize = view.getUint32(p + 20, true);
    let uncompressedSize = view.getUint32(p + 24, true);
    const nameLength = view.getUint16(p + 28, true);
    const extraLength = view.getUint16(p + 30, true);
    const commentLength = view.getUint16(p + 32, true);
    let localHeaderOffset = view.getUint32(p + 42, true);
    const name = new TextDecoder().decode(bytes.subarray(p + 46, p + 46 + nameLength));
    // ZIP64 extended information (header id 1): the 64-bit values of the fields set to
    // 0xFFFFFFFF, in this order.
    let e = p + 46 + nameLength;
    const extraEnd = e + extraLength;
    while (e + 4 <= extraEnd) {
      const id = view.getUint16(e, true);
      const size = view.getUint16(e + 2, true);
      if (id === 1) {
        let q = e + 4;
        if (uncompressedSize === 0xffffffff) (uncompressedSize = u64(view, q)), (q += 8);
        if (compressedSize === 0xffffffff) (compressedSize = u64(view, q)), (q += 8);
        if (localHeaderOffset === 0xffffffff) localHeaderOffset = u64(view, q);
      }
      e += 4 + size;
    }
    entries.push({ name, method, compressedSize, uncompressedSize, crc32: crc, localHeaderOffset });
    p = extraEnd + commentLength;
  }
  return entries;
}

/**
 * The uncompressed bytes of one entry (stored or deflated), CRC-checked.
 *
 * @example
 * ```ts
 * import { encodeZip, readZipDirectory, readZipEntry } from "./zip.ts";
 * const bytes = encodeZip([{ name: "a.txt", data: new TextEncoder().encode("hi") }]);
 * const [first] = readZipDirectory(bytes, "a.zip");
 * console.log(new TextDecoder().decode(readZipEntry(bytes, first, "a.zip"))); // hi
 * ```
 */
export function readZipEntry(bytes: Uint8Array, entry: ZipEntry, source: string): Uint8Array {
  const fail = (why: string): never => {
    throw new Error(`${source}: ZIP entry ${entry.name}: ${why}`);
  };
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const h = entry.localHeaderOffset;
  if (h + 30 > bytes.length || view.getUint32(h, true) !== LOCAL_SIGNATURE) {
    fail("local header is damaged");
  }
  const start = h + 30 + view.getUint16(h + 26, true) + view.getUint16(h + 28, true);
  const end = start + entry.compressedSize;
  if (end > bytes.length) fail("data runs past the end of the file (truncated?)");
  const raw = bytes.subarray(start, end);
  let data: Uint8Array;
  if (entry.method === 0) {
    data = raw;
  } else if (entry.method === 8) {
    try {
      const inflated = inflateRawSync(raw);
      data = new Uint8Array(inflated.buffer, inflated.byteOffset, inflated.byteLength);
    } catch (error) {
      return fail(`corrupt deflate data (${(error as Error).message})`);
    }
  } else {
    return fail(`compression method ${entry.method} is not supported (only stored and deflate)`);
  }
  if (data.length !== entry.uncompressedSize) {
    fail(`expected ${entry.uncompressedSize} bytes, got ${data.length}`);
  }
  if ((crc32(data) >>> 0) !== entry.crc32) fail("CRC-32 mismatch (corrupted file)");
  return data;
}

/**
 * Builds a ZIP archive of stored (uncompressed) entries, as `np.savez` writes them.
 *
 * @example
 * ```ts
 * import { encodeZip } from "./zip.ts";
 * const zip = encodeZip([{ name: "a.txt", data: new TextEncoder().encode("hi") }]);
 * ```
 */
export function encodeZip(files: { name: string; data: Uint8Array }[]): Uint8Array {
  const encoder = new TextEncoder();
  const names = files.map((f) => encoder.encode(f.name));
  const localSize = files.reduce((s, f, i) => s + 30 + names[i].length + f.data.length, 0);
  const centralSize = names.reduce((s, n) => s + 46 + n.length, 0);
  if (localSize + centralSize > 0xffffffff) throw new RangeError("archive too large (> 4 GiB)");
  const out = new Uint8Array(localSize + centralSize + 22);
  const view = new DataView(out.buffer);
  const offsets: number[] = [];
  const crcs: number[] = [];
  let p = 0;
  files.forEach((file, i) => {
    offsets.push(p);
    const crc = crc32(file.data) >>> 0;
    crcs.push(crc);
    view.setUint32(p, LOCAL_SIGNATURE, true);
    view.setUint16(p + 4, 20, true); // version needed: 2.0
    view.setUint16(p + 8, 0, true); // stored
    view.setUint16(p + 12, 0x21, true); // DOS date 1980-01-01 (fixed: reproducible output)
    view.setUint32(p + 14, crc, true);
    view.setUint32(p + 18, file.data.length, true);
    view.setUint32(p + 22, file.data.length, true);
    view.setUint16(p + 26, names[i].length, true);
    out.set(names[i], p + 30);
    out.set(file.data, p + 30 + names[i].length);
    p += 30 + names[i].length + file.data.length;
  });
  const directoryOffset = p;
  files.forEach((file, i) => {
    view.setUint32(p, CENTRAL_SIGNATURE, true);
    view.setUint16(p + 4, 20, true);
    view.setUint16(p + 6, 20, true);
    view.setUint16(p + 14, 0x21, true);
    view.setUint32(p + 16, crcs[i], true);
    view.setUint32(p + 20, file.data.length, true);
    view.setUint32(p + 24, file.data.length, true);
    view.setUint16(p + 28, names[i].length, true);
    view.setUint32(p + 42, offsets[i], true);
    out.set(names[i], p + 46);
    p += 46 + names[i].length;
  });
  view.setUint32(p, EOCD_SIGNATURE, true);
  view.setUint16(p + 8, files.length, true);
  view.setUint16(p + 10, files.length, true);
  view.setUint32(p + 12, p - directoryOffset, true);
  view.setUint32(p + 16, directoryOffset, true);
  return out;
}
