/**
 * An independent APNG reader for the tests, written from the PNG and APNG specifications
 * (not from src/io/apng.ts): it checks the structure on the way and undoes the row filters
 * plainly, so a test can compare an encoded animation with its input pixels.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { inflateSync } from "node:zlib";

/** CRC-32 (PNG specification, annex D), bit by bit: slow and obviously right. */
function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}

interface Chunk {
  type: string;
  data: Uint8Array;
}

/** Splits a PNG into chunks, checking the signature and every CRC. */
function readChunks(bytes: Uint8Array): Chunk[] {
  assert.deepEqual([...bytes.subarray(0, 8)], [137, 80, 78, 71, 13, 10, 26, 10], "signature");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const chunks: Chunk[] = [];
  for (let at = 8; at < bytes.length;) {
    const length = view.getUint32(at);
    const type = String.fromCharCode(...bytes.subarray(at + 4, at + 8));
    const data = bytes.subarray(at + 8, at + 8 + length);
    assert.equal(view.getUint32(at + 8 + length), crc32(bytes.subarray(at + 4, at + 8 + length)));
    chunks.push({ type, data });
    at += 12 + length;
  }
  return chunks;
}

const u32 = (d: Uint8Array, at: number) => new DataView(d.buffer, d.byteOffset).getUint32(at);
const u16 = (d: Uint8Array, at: number) => new DataView(d.buffer, d.byteOffset).getUint16(at);

/** Undoes the per-row filters of an 8-bit RGB image (PNG specification, section 9). */
function unfilter(raw: Uint8Array, width: number, height: number): Uint8Array {
  const stride = width * 3;
  assert.equal(raw.length, height * (stride + 1), "inflated size");
  const out = new Uint8Array(height * stride);
  for (let y = 0; y < height; y++) {
    const type = raw[y * (stride + 1)];
    for (let x = 0; x < stride; x++) {
      const v = raw[y * (stride + 1) + 1 + x];
      const a = x >= 3 ? out[y * stride + x - 3] : 0;
      const b = y > 0 ? out[(y - 1) * stride + x] : 0;
      const c = x >= 3 && y > 0 ? out[(y - 1) * stride + x - 3] : 0;
      let predictor: number;
      if (type === 0) predictor = 0;
      else if (type === 1) predictor = a;
      else if (type === 2) predictor = b;
      else if (type === 3) predictor = Math.floor((a + b) / 2);
      else if (type === 4) {
        const p = a + b - c;
        const [pa, pb, pc] = [Math.abs(p - a), Math.abs(p - b), Math.abs(p - c)];
        predictor = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      } else throw new Error(`row ${y}: filter type ${type}`);
      out[y * stride + x] = (v + predictor) % 256;
    }
  }
  return out;
}

/** What {@link readApng} returns. */
export interface Apng {
  width: number;
  height: number;
  plays: number;
  frames: { delayMs: number; data: Uint8Array }[];
  filters: Set<number>;
}

/** Reads an APNG, checking its structure against the specification on the way. */
export function readApng(bytes: Uint8Array): Apng {
  const chunks = readChunks(bytes);
  const types = chunks.map((c) => c.type);
  assert.equal(types[0], "IHDR");
  assert.equal(types[1], "acTL", "acTL comes before the image data");
  assert.equal(types.at(-1), "IEND");
  assert.equal(types.filter((t) => t === "IEND").length, 1);
  const ihdr = chunks[0].data;
  const [width, height] = [u32(ihdr, 0), u32(ihdr, 4)];
  assert.deepEqual([...ihdr.subarray(8)], [8, 2, 0, 0, 0], "8-bit RGB, deflate, no interlace");
  const [count, plays] = [u32(chunks[1].data, 0), u32(chunks[1].data, 4)];
  const frames: Apng["frames"] = [];
  const filters = new Set<number>();
  let sequence = 0;
  let current: { delayMs: number; parts: Uint8Array[] } | null = null;
  const finish = () => {
    if (!current) return;
    const raw = new Uint8Array(inflateSync(Buffer.concat(current.parts)));
    for (let y = 0; y < height; y++) filters.add(raw[y * (width * 3 + 1)]);
    frames.push({ delayMs: current.delayMs, data: unfilter(raw, width, height) });
  };
  for (const { type, data } of chunks.slice(2, -1)) {
    if (type === "fcTL") {
      finish();
      assert.equal(u32(data, 0), sequence++, "fcTL sequence number");
      assert.deepEqual([u32(data, 4), u32(data, 8), u32(data, 12), u32(data, 16)], [
        width,
        height,
        0,
        0,
      ]);
      assert.deepEqual([data[24], data[25]], [0, 0], "dispose NONE, blend SOURCE");
      current = { delayMs: (u16(data, 20) / (u16(data, 22) || 100)) * 1000, parts: [] };
    } else if (type === "IDAT") {
      assert.equal(frames.length, 0, "IDAT holds the first frame only");
      assert.ok(current, "an fcTL precedes the IDAT (the default image is frame 0)");
      current.parts.push(data);
    } else if (type === "fdAT") {
      assert.ok(current && frames.length > 0, "fdAT follows the IDAT frame's fcTL");
      assert.equal(u32(data, 0), sequence++, "fdAT sequence number");
      current.parts.push(data.subarray(4));
    } else {
      throw new Error(`unexpected chunk ${type}`);
    }
  }
  finish();
  assert.equal(frames.length, count, "acTL frame count");
  return { width, height, plays, frames, filters };
}

/**
 * Asserts two frames' pixels are identical, naming the number of differing bytes, the first
 * one and the mean absolute error (assert.deepEqual's diff of big arrays takes minutes).
 */
export function assertSamePixels(actual: Uint8Array, expected: Uint8Array, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: byte count`);
  let differing = 0;
  let first = -1;
  let sum = 0;
  for (let i = 0; i < actual.length; i++) {
    if (actual[i] === expected[i]) continue;
    if (first < 0) first = i;
    differing++;
    sum += Math.abs(actual[i] - expected[i]);
  }
  assert.ok(
    differing === 0,
    `${what}: ${differing} bytes differ (first at ${first}: ${actual[first]} vs ` +
      `${expected[first]}), mean absolute error ${(sum / actual.length).toFixed(4)} levels`,
  );
}
