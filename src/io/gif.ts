/**
 * Animated GIFs (training progress: one frame per saved grid) with omggif. Each frame carries
 * its own palette (a local colour table) of up to 256 colours built from its own pixels
 * (./quantize.ts, which minimises the mean absolute error), so the GIF shows the colours of the
 * PNG grids: frames with at most 256 colours are exact, a grid of 16 gradient samples stays
 * within ~1.1 levels on average, one of 64 within ~2.3.
 *
 * 256 colours is GIF's limit per image, and it bounds what a grid of 64 unrelated photos (a
 * trained model's preview) can keep: ~3.4 levels of mean error here (PIL: 3.5-4.9); searches
 * thousands of times slower find 3.33-3.38, and 2 takes ~1,100 colours
 * (bench/reference/quantize_floor.py). GIF can split a frame into several images with their
 * own tables, but readers count each image as a frame of its own (PIL, ImageMagick, decodeGif
 * below), and Chromium and Firefox play a delay of 0 or 10 ms as 100 ms, so that is not used.
 *
 * @module
 */
import { GifReader, GifWriter } from "npm:omggif@1.0.10";
import { writeFileAtomic } from "./atomic.ts";
import type { DecodedImage } from "./image.ts";
import { checkPixels, maxPixels } from "./limits.ts";
import { quantize } from "./quantize.ts";

/** omggif throws strings as well as Errors. */
function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The palette as omggif takes it: 0xRRGGBB entries, padded with black to a power of two. */
function gifPalette(palette: Uint8Array): number[] {
  const entries: number[] = [];
  for (let i = 0; i < palette.length; i += 3) {
    entries.push((palette[i] << 16) | (palette[i + 1] << 8) | palette[i + 2]);
  }
  let size = 2;
  while (size < entries.length) size *= 2;
  while (entries.length < size) entries.push(0);
  return entries;
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
  const writer = new GifWriter(buffer, width, height, { loop: 0 });
  const delay = Math.max(0, Math.round(options.delayMs / 10)); // GIF delays are centiseconds
  frames.forEach((frame, k) => {
    if (frame.width !== width || frame.height !== height) {
      throw new TypeError(
        `encodeGif: frame ${k} is ${frame.width}x${frame.height}, expected ${width}x${height}`,
      );
    }
    const { palette, indices } = quantize(frame.data);
    writer.addFrame(0, 0, width, height, indices, { delay, palette: gifPalette(palette) });
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
 * const dir = await Deno.makeTempDir();
 * await writeGif(`${dir}/progress.gif`, [grid, grid], { delayMs: 500 });
 * await Deno.remove(dir, { recursive: true });
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
 * previous one, as a viewer shows them; transparency keeps the pixel below). The logical screen
 * and the frame count are checked against the pixel cap (./limits.ts; `options.maxPixels`) before
 * anything is allocated: the cap bounds the screen and all decoded frames together.
 *
 * @example
 * ```ts
 * import { decodeGif, encodeGif } from "./gif.ts";
 * const frame = { width: 2, height: 2, channels: 3 as const, data: new Uint8Array(12) };
 * const frames = decodeGif(encodeGif([frame, frame], { delayMs: 500 }));
 * console.log(frames.length); // 2
 * ```
 */
export function decodeGif(
  bytes: Uint8Array,
  source = "GIF data",
  options: { maxPixels?: number } = {},
): DecodedImage[] {
  const limit = maxPixels(options.maxPixels);
  const ascii = String.fromCharCode(...bytes.subarray(0, 6));
  if (bytes.length < 13 || (ascii !== "GIF89a" && ascii !== "GIF87a")) {
    throw new Error(`${source}: not a valid GIF (no GIF87a/GIF89a header and logical screen)`);
  }
  // The logical screen (little-endian, bytes 6..9) sizes every frame buffer we allocate.
  checkPixels(bytes[6] | (bytes[7] << 8), bytes[8] | (bytes[9] << 8), source, "GIF", limit);
  let reader: GifReader;
  try {
    reader = new GifReader(bytes);
  } catch (error) {
    throw new Error(`${source}: not a valid GIF (${messageOf(error)})`, { cause: error });
  }
  // omggif stops quietly at the end of the buffer, so check the structure it cannot.
  if (reader.numFrames() === 0) throw new Error(`${source}: GIF has no frames (truncated?)`);
  if (bytes[bytes.length - 1] !== 0x3b) {
    throw new Error(`${source}: GIF does not end with its trailer byte (truncated file?)`);
  }
  const total = reader.numFrames() * reader.width * reader.height;
  if (total > limit) {
    throw new Error(
      `${source}: GIF has ${reader.numFrames()} frames of ${reader.width}x${reader.height} = ` +
        `${total} pixels in all, above the cap of ${limit}; raise it with ` +
        `DENO_DIFFUSION_MAX_PIXELS or the maxPixels option if the file is genuine`,
    );
  }
  for (let k = 0; k < reader.numFrames(); k++) {
    // omggif allocates width x height for a frame's indices before decoding it.
    const { x, y, width, height } = reader.frameInfo(k);
    if (x + width > reader.width || y + height > reader.height) {
      throw new Error(
        `${source}: corrupt GIF (frame ${k} at ${x},${y} of ${width}x${height} lies outside ` +
          `the ${reader.width}x${reader.height} logical screen)`,
      );
    }
  }
  const { width, height } = reader;
  const canvas = new Uint8Array(width * height * 4);
  const frames: DecodedImage[] = [];
  for (let k = 0; k < reader.numFrames(); k++) {
    try {
      reader.decodeAndBlitFrameRGBA(k, canvas);
    } catch (error) {
      throw new Error(`${source}: corrupt GIF (frame ${k}: ${messageOf(error)})`, {
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
