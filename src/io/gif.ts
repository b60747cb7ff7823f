/**
 * Animated GIFs (training progress: one frame per saved grid) with omggif. Frames are mapped
 * to one fixed 6x7x6 RGB colour cube (252 colours; green gets the extra level because the eye
 * is most sensitive to it), so every frame shares the global palette and the output is
 * deterministic.
 *
 * @module
 */
import { GifReader, GifWriter } from "omggif";
import { writeFileAtomic } from "./atomic.ts";
import type { DecodedImage } from "./image.ts";

const LEVELS = [6, 7, 6] as const;

/** The 256-entry global palette as 0xRRGGBB (the 4 unused entries are black). */
const PALETTE: number[] = (() => {
  const palette: number[] = [];
  for (let r = 0; r < LEVELS[0]; r++) {
    for (let g = 0; g < LEVELS[1]; g++) {
      for (let b = 0; b < LEVELS[2]; b++) {
        const level = (v: number, n: number) => Math.round((v * 255) / (n - 1));
        palette.push((level(r, 6) << 16) | (level(g, 7) << 8) | level(b, 6));
      }
    }
  }
  while (palette.length < 256) palette.push(0);
  return palette;
})();

/** Index of the nearest palette colour, channel by channel (the cube is separable). */
function quantize(data: Uint8Array): Uint8Array {
  const indices = new Uint8Array(data.length / 3);
  for (let i = 0, p = 0; i < indices.length; i++, p += 3) {
    const r = Math.round((data[p] * (LEVELS[0] - 1)) / 255);
    const g = Math.round((data[p + 1] * (LEVELS[1] - 1)) / 255);
    const b = Math.round((data[p + 2] * (LEVELS[2] - 1)) / 255);
    indices[i] = (r * LEVELS[1] + g) * LEVELS[2] + b;
  }
  return indices;
}

/**
 * Encodes frames (all the same size) as a looping animated GIF.
 *
 * @example
 * ```ts
 * import { encodeGif } from "./gif.ts";
 * const frame = { width: 2, height: 1, channels: 3 as const, data: new Uint8Array(6) };
 * const bytes = encodeGif([frame, frame], { delayMs: 200 });
 * ```
 */
export function encodeGif(frames: DecodedImage[], options: { delayMs: number }): Uint8Array {
  if (frames.length === 0) throw new TypeError("encodeGif: no frames");
  const { width, height } = frames[0];
  if (width > 65535 || height > 65535) throw new TypeError("encodeGif: image too large for GIF");
  // LZW output of 8-bit indices stays below ~1.5 bytes per pixel even for noise.
  const buffer = new Uint8Array(2048 + frames.length * (width * height * 2 + 1024));
  const writer = new GifWriter(buffer, width, height, { loop: 0, palette: PALETTE });
  const delay = Math.max(0, Math.round(options.delayMs / 10)); // GIF delays are centiseconds
  frames.forEach((frame, k) => {
    if (frame.width !== width || frame.height !== height) {
      throw new TypeError(
        `encodeGif: frame ${k} is ${frame.width}x${frame.height}, expected ${width}x${height}`,
      );
    }
    writer.addFrame(0, 0, width, height, quantize(frame.data), { delay });
  });
  return buffer.slice(0, writer.end());
}

/**
 * Writes frames as a looping animated GIF (atomically).
 *
 * @example
 * ```ts
 * import { writeGif } from "./gif.ts";
 * import { makeGrid, toUint8Images } from "./png.ts";
 * const grid = makeGrid(toUint8Images(new Float32Array(4 * 3 * 8 * 8), [4, 3, 8, 8]));
 * await writeGif("/tmp/progress.gif", [grid, grid], { delayMs: 500 });
 * ```
 */
export async function writeGif(
  path: string,
  frames: DecodedImage[],
  options: { delayMs: number },
): Promise<void> {
  await writeFileAtomic(path, encodeGif(frames, options));
}

/**
 * Decodes every frame of a GIF into full-size RGB images (frames are composited onto the
 * previous one, as a viewer shows them; transparency keeps the pixel below).
 *
 * @example
 * ```ts
 * import { decodeGif } from "./gif.ts";
 * const frames = decodeGif(await Deno.readFile("/tmp/progress.gif"));
 * console.log(frames.length);
 * ```
 */
export function decodeGif(bytes: Uint8Array, source = "GIF data"): DecodedImage[] {
  let reader: GifReader;
  try {
    reader = new GifReader(bytes);
  } catch (error) {
    throw new Error(`${source}: not a valid GIF (${(error as Error).message})`, { cause: error });
  }
  // omggif stops quietly at the end of the buffer, so check the structure it cannot.
  if (reader.numFrames() === 0) throw new Error(`${source}: GIF has no frames (truncated?)`);
  if (bytes[bytes.length - 1] !== 0x3b) {
    throw new Error(`${source}: GIF does not end with its trailer byte (truncated file?)`);
  }
  const { width, height } = reader;
  const canvas = new Uint8Array(width * height * 4);
  const frames: DecodedImage[] = [];
  for (let k = 0; k < reader.numFrames(); k++) {
    try {
      reader.decodeAndBlitFrameRGBA(k, canvas);
    } catch (error) {
      throw new Error(`${source}: frame ${k} is corrupt (${(error as Error).message})`, {
        cause: error,
      });
    }
    const data = new Uint8Array(width * height * 3);
    for (let i = 0, j = 0; j < data.length; i += 4, j += 3) {
      data[j] = canvas[i];
      data[j + 1] = canvas[i + 1];
      data[j + 2] = canvas[i + 2];
    }
    frames.push({ width, height, channels: 3, data });
  }
  return frames;
}
