/**
 * Generators of hostile images shared by the io tests and the hostile-input suite
 * (tests/hostile/): decompression bombs (tiny files whose headers claim billions of pixels),
 * truncations and bit flips.
 *
 * @module
 */
import { crc32, deflateSync } from "node:zlib";
import { encodeGif } from "../../src/io/gif.ts";

const fixture = (name: string) => new URL(`../fixtures/${name}`, import.meta.url).pathname;

export function chunk(type: string, data: Uint8Array): Uint8Array {
  const body = new Uint8Array(4 + data.length);
  body.set(new TextEncoder().encode(type));
  body.set(data, 4);
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  out.set(body, 4);
  view.setUint32(8 + data.length, crc32(body) >>> 0);
  return out;
}

/** A well-formed PNG (correct CRCs) whose IHDR claims `width` x `height` 8-bit RGB pixels. */
export function pngBomb(width: number, height: number): Uint8Array {
  const ihdr = new Uint8Array(13);
  new DataView(ihdr.buffer).setUint32(0, width);
  new DataView(ihdr.buffer).setUint32(4, height);
  ihdr.set([8, 2, 0, 0, 0], 8);
  // The first 100 bytes of zero-filtered black rows: 12 bytes of zlib, 69 bytes of PNG.
  const idat = new Uint8Array(deflateSync(new Uint8Array(100)));
  const parts = [
    new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", idat),
    chunk("IEND", new Uint8Array(0)),
  ];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  parts.reduce((at, p) => (out.set(p, at), at + p.length), 0);
  return out;
}

export function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  parts.reduce((at, p) => (out.set(p, at), at + p.length), 0);
  return out;
}

/** An Adam7-interlaced 8-bit RGB PNG of `rgb` [H, W, 3], or with `idat` as its image data. */
export function interlacedPng(width: number, height: number, rgb: Uint8Array, idat?: Uint8Array) {
  const rows: number[] = [];
  const passes = [[0, 0, 8, 8], [4, 0, 8, 8], [0, 4, 4, 8], [2, 0, 4, 4], [0, 2, 2, 4], [
    1,
    0,
    2,
    2,
  ], [0, 1, 1, 2]];
  for (const [x0, y0, dx, dy] of passes) {
    if (x0 >= width) continue;
    for (let y = y0; y < height; y += dy) {
      rows.push(0); // filter type None
      for (let x = x0; x < width; x += dx) {
        rows.push(...rgb.subarray((y * width + x) * 3, (y * width + x) * 3 + 3));
      }
    }
  }
  const ihdr = new Uint8Array(13);
  new DataView(ihdr.buffer).setUint32(0, width);
  new DataView(ihdr.buffer).setUint32(4, height);
  ihdr.set([8, 2, 0, 0, 1], 8); // 8-bit RGB, Adam7
  return concat([
    new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", idat ?? new Uint8Array(deflateSync(new Uint8Array(rows)))),
    chunk("IEND", new Uint8Array(0)),
  ]);
}

/** A real JPEG whose SOF marker is rewritten to claim `width` x `height`. */
export async function jpegBomb(width: number, height: number): Promise<Uint8Array> {
  const bytes = (await Deno.readFile(fixture("jpeg/photo_420_base_q75.jpg"))).slice();
  for (let p = 2; p < bytes.length;) {
    const marker = bytes[p + 1];
    if (marker === 0xc0) {
      bytes.set([height >> 8, height & 255, width >> 8, width & 255], p + 5);
      return bytes;
    }
    p += 2 + ((bytes[p + 2] << 8) | bytes[p + 3]);
  }
  throw new Error("fixture has no baseline SOF");
}

/** A real GIF whose logical screen is rewritten to `width` x `height`. */
export function gifBomb(width: number, height: number): Uint8Array {
  const frame = { width: 4, height: 4, channels: 3 as const, data: new Uint8Array(48) };
  const bytes = encodeGif([frame], { delayMs: 10 });
  bytes.set([width & 255, width >> 8, height & 255, height >> 8], 6);
  return bytes;
}

/** Seeded positions: every cut length below 64 bytes, then a spread over the rest. */
export function positions(length: number, count: number, seed: number): number[] {
  let state = seed;
  const out = Array.from({ length: Math.min(64, length) }, (_, i) => i);
  while (out.length < count) {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    out.push(state % length);
  }
  return out;
}

/**
 * Damaged copies of `good`: `cuts` truncations (every length below 64 bytes first) and `flips`
 * single-bit flips, at seeded positions, each with a label saying what was done.
 */
export function* damaged(
  good: Uint8Array,
  cuts: number,
  flips: number,
): Generator<{ what: string; bytes: Uint8Array }> {
  for (const cut of positions(good.length, cuts, 1)) {
    yield { what: `cut at ${cut}`, bytes: good.subarray(0, cut) };
  }
  for (const bit of positions(good.length * 8, flips, 2)) {
    const bytes = good.slice();
    bytes[bit >> 3] ^= 1 << (bit & 7);
    yield { what: `bit ${bit} flipped`, bytes };
  }
}
