/**
 * Animated PNGs (training progress: one frame per saved grid), written from the APNG
 * specification (https://wiki.mozilla.org/APNG_Specification): the PNG signature, IHDR, acTL,
 * then per frame an fcTL and the frame's zlib stream (the first as IDAT, so viewers without
 * APNG support show it as a still image, the later ones as fdAT), IEND. Unlike progress.gif,
 * whose 256 colours per frame cost a grid of 64 photos ~3.4 levels of mean error (./gif.ts),
 * every frame keeps the PNG grids' pixels exactly: 8-bit RGB, lossless.
 *
 * Each row takes the filter (None, Sub, Up, Average or Paeth) whose output has the smallest sum
 * of absolute values read as signed bytes, the heuristic the PNG specification recommends
 * (section 12.8) and libpng uses; it keeps smooth grids well below an unfiltered stream.
 *
 * @module
 */
import { crc32, deflateSync } from "node:zlib";
import { writeFileAtomic } from "./atomic.ts";
import type { DecodedImage } from "./image.ts";
import { maxPixels } from "./limits.ts";

/** How an APNG plays. */
export interface ApngOptions {
  /** Time each frame shows, in milliseconds (0-65535; stored exactly as delayMs/1000 s). */
  delayMs: number;
  /** Play forever (default) or once, stopping on the last frame. */
  loop?: boolean;
  /** Cap on the pixels of all frames together (default: ./limits.ts, DENO_DIFFUSION_MAX_PIXELS). */
  maxPixels?: number;
}

const SIGNATURE = [137, 80, 78, 71, 13, 10, 26, 10];
/** PNG sizes are 31-bit (PNG specification, section 11.2.2). */
const MAX_SIDE = 2 ** 31 - 1;
const BYTES_PER_PIXEL = 3; // 8-bit RGB

/** One chunk: length, type, data, CRC-32 of type and data (PNG specification, section 5.3). */
function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)) >>> 0);
  return out;
}

/** Big-endian unsigned fields, each `[value, bytes]`. */
function fields(...pairs: [value: number, size: 1 | 2 | 4][]): Uint8Array {
  const out = new Uint8Array(pairs.reduce((n, [, size]) => n + size, 0));
  const view = new DataView(out.buffer);
  let at = 0;
  for (const [value, size] of pairs) {
    if (size === 1) view.setUint8(at, value);
    else if (size === 2) view.setUint16(at, value);
    else view.setUint32(at, value);
    at += size;
  }
  return out;
}

function paeth(a: number, b: number, c: number): number {
  const p = a + b - c;
  const pa = Math.abs(p - a);
  const pb = Math.abs(p - b);
  const pc = Math.abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/**
 * The filtered scanlines of one image ([H, 1 + W * 3]: a filter-type byte, then the row), each
 * row with the filter whose output has the smallest sum of |signed byte|.
 */
function filterRows(data: Uint8Array, width: number, height: number): Uint8Array {
  const stride = width * BYTES_PER_PIXEL;
  const out = new Uint8Array(height * (stride + 1));
  const zero = new Uint8Array(stride);
  const candidate = new Uint8Array(stride);
  for (let y = 0; y < height; y++) {
    const row = data.subarray(y * stride, (y + 1) * stride);
    const up = y > 0 ? data.subarray((y - 1) * stride, y * stride) : zero;
    let bestCost = Infinity;
    for (let type = 0; type <= 4; type++) {
      let cost = 0;
      for (let i = 0; i < stride; i++) {
        const a = i >= BYTES_PER_PIXEL ? row[i - BYTES_PER_PIXEL] : 0;
        const c = i >= BYTES_PER_PIXEL ? up[i - BYTES_PER_PIXEL] : 0;
        const predictor = type === 0
          ? 0
          : type === 1
          ? a
          : type === 2
          ? up[i]
          : type === 3
          ? (a + up[i]) >> 1
          : paeth(a, up[i], c);
        const v = (row[i] - predictor) & 0xff;
        candidate[i] = v;
        cost += v < 128 ? v : 256 - v;
      }
      if (cost < bestCost) {
        bestCost = cost;
        out[y * (stride + 1)] = type;
        out.set(candidate, y * (stride + 1) + 1);
      }
    }
  }
  return out;
}

function checkFrames(frames: DecodedImage[], options: ApngOptions): void {
  if (frames.length === 0) throw new TypeError("encodeApng: no frames");
  const { delayMs } = options;
  if (!(Number.isFinite(delayMs) && delayMs >= 0 && Math.round(delayMs) <= 65535)) {
    throw new RangeError(`encodeApng: delayMs must be 0 to 65535 milliseconds, got ${delayMs}`);
  }
  const { width, height } = frames[0];
  if (!(Number.isInteger(width) && Number.isInteger(height) && width > 0 && height > 0)) {
    throw new TypeError(`encodeApng: frame 0 is ${width}x${height}, not a positive image size`);
  }
  if (width > MAX_SIDE || height > MAX_SIDE) {
    throw new TypeError(`encodeApng: ${width}x${height} is too large for PNG (sides < 2^31)`);
  }
  const limit = maxPixels(options.maxPixels);
  const total = frames.length * width * height;
  if (total > limit) {
    throw new RangeError(
      `encodeApng: ${frames.length} frames of ${width}x${height} = ${total} pixels in all, ` +
        `above the cap of ${limit}; use fewer or smaller frames, or raise the cap with ` +
        `DENO_DIFFUSION_MAX_PIXELS or the maxPixels option`,
    );
  }
  frames.forEach((frame, k) => {
    if (frame.width !== width || frame.height !== height) {
      throw new TypeError(
        `encodeApng: frame ${k} is ${frame.width}x${frame.height}, expected ${width}x${height}`,
      );
    }
    if (frame.data.length !== width * height * BYTES_PER_PIXEL) {
      throw new TypeError(
        `encodeApng: frame ${k} (${width}x${height} RGB) needs ` +
          `${width * height * BYTES_PER_PIXEL} bytes, got ${frame.data.length}`,
      );
    }
  });
}

/**
 * Encodes frames (all the same size, 8-bit RGB) as an animated PNG that keeps every pixel.
 *
 * @example
 * ```ts
 * import { encodeApng } from "./apng.ts";
 * const frame = { width: 2, height: 1, channels: 3 as const, data: new Uint8Array(6) };
 * const bytes = encodeApng([frame, frame], { delayMs: 400 });
 * console.log(bytes.subarray(1, 4)); // "PNG" in ASCII: [80, 78, 71]
 * ```
 */
export function encodeApng(frames: DecodedImage[], options: ApngOptions): Uint8Array {
  checkFrames(frames, options);
  const { width, height } = frames[0];
  const parts: Uint8Array[] = [new Uint8Array(SIGNATURE)];
  // IHDR: 8-bit truecolour (type 2), deflate, adaptive filtering, no interlace.
  parts.push(
    chunk("IHDR", fields([width, 4], [height, 4], [8, 1], [2, 1], [0, 1], [0, 1], [0, 1])),
  );
  // acTL: frame count and plays (0 = forever).
  parts.push(chunk("acTL", fields([frames.length, 4], [options.loop === false ? 1 : 0, 4])));
  const delay = Math.round(options.delayMs);
  let sequence = 0; // shared by fcTL and fdAT, from 0 without gaps
  frames.forEach((frame, k) => {
    // fcTL: sequence, size, offset 0,0, delay delay/1000 s, dispose NONE, blend SOURCE.
    parts.push(chunk(
      "fcTL",
      fields(
        [sequence++, 4],
        [width, 4],
        [height, 4],
        [0, 4],
        [0, 4],
        [delay, 2],
        [1000, 2],
        [0, 1],
        [0, 1],
      ),
    ));
    const zlib = deflateSync(filterRows(frame.data, width, height), { level: 9 });
    const stream = new Uint8Array(zlib.buffer, zlib.byteOffset, zlib.byteLength);
    if (k === 0) {
      parts.push(chunk("IDAT", stream));
    } else {
      const data = new Uint8Array(4 + stream.length);
      new DataView(data.buffer).setUint32(0, sequence++);
      data.set(stream, 4);
      parts.push(chunk("fdAT", data));
    }
  });
  parts.push(chunk("IEND", new Uint8Array(0)));
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * Writes frames as an animated PNG (atomically: a bad frame or a failed write leaves nothing).
 *
 * @example
 * ```ts
 * import { writeApng } from "./apng.ts";
 * import { makeGrid, toUint8Images } from "./png.ts";
 * const grid = makeGrid(toUint8Images(new Float32Array(4 * 3 * 8 * 8), [4, 3, 8, 8]));
 * const dir = await Deno.makeTempDir();
 * await writeApng(`${dir}/progress.png`, [grid, grid], { delayMs: 400 });
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeApng(
  path: string,
  frames: DecodedImage[],
  options: ApngOptions,
): Promise<void> {
  await writeFileAtomic(path, encodeApng(frames, options));
}
