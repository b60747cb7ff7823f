/**
 * Image decoding (PNG via pngjs, JPEG via ./jpeg.ts: libjpeg-turbo like PIL, or jpeg-js) into
 * 8-bit RGB, and listing of image folders. Every reader checks the header's dimensions against a
 * pixel cap (./limits.ts) before it allocates anything. Grayscale and alpha are converted to plain RGB the way PIL's `convert("RGB")` does
 * (gray replicated, alpha dropped), which is what pytorch-fid feeds its network.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { inflateSync } from "node:zlib";
import { PNG } from "npm:pngjs@7.0.0";
import { decodeJpeg } from "./jpeg.ts";
import { checkPixels, maxPixels } from "./limits.ts";

/** An 8-bit RGB image, HWC row-major. */
export interface DecodedImage {
  /** Width in pixels. */
  width: number;
  /** Height in pixels. */
  height: number;
  /** Always 3 (RGB). */
  channels: 3;
  /** [H, W, 3] */
  data: Uint8Array;
}

const IMAGE_EXTENSION = /\.(png|jpe?g)$/i;

function isPng(bytes: Uint8Array): boolean {
  return bytes.length >= 8 && bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e &&
    bytes[3] === 0x47;
}

function isJpeg(bytes: Uint8Array): boolean {
  return bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff;
}

function rgbaToRgb(rgba: Uint8Array, width: number, height: number): Uint8Array {
  const rgb = new Uint8Array(width * height * 3);
  for (let i = 0, j = 0; j < rgb.length; i += 4, j += 3) {
    rgb[j] = rgba[i];
    rgb[j + 1] = rgba[i + 1];
    rgb[j + 2] = rgba[i + 2];
  }
  return rgb;
}

/**
 * PNG dimensions from the IHDR chunk, which the format requires first (bytes 16..23), or null
 * when the file is too short or IHDR is not there.
 */
function pngSize(bytes: Uint8Array): { width: number; height: number } | null {
  if (bytes.length < 24) return null;
  const ihdr = String.fromCharCode(bytes[12], bytes[13], bytes[14], bytes[15]);
  if (ihdr !== "IHDR") return null;
  const view = new DataView(bytes.buffer, bytes.byteOffset, 24);
  return { width: view.getUint32(16), height: view.getUint32(20) };
}

/** Adam7's seven passes: first column and row, column and row step. */
const ADAM7 = [
  [0, 0, 8, 8],
  [4, 0, 8, 8],
  [0, 4, 4, 8],
  [2, 0, 4, 4],
  [0, 2, 2, 4],
  [1, 0, 2, 2],
  [0, 1, 1, 2],
] as const;

/** Size of the filtered Adam7 data of an interlaced PNG: 7 sub-images, a filter byte per row. */
function adam7Bytes(width: number, height: number, bitsPerPixel: number): number {
  let total = 0;
  for (const [x0, y0, dx, dy] of ADAM7) {
    const columns = Math.max(0, Math.ceil((width - x0) / dx));
    const rows = Math.max(0, Math.ceil((height - y0) / dy));
    if (columns > 0) total += rows * (1 + Math.ceil((columns * bitsPerPixel) / 8));
  }
  return total;
}

/**
 * pngjs bounds the inflated size of plain PNGs by what the header allows, but inflates
 * interlaced ones without a bound: 50 KB of IDAT can then expand to gigabytes. For those we
 * inflate once with that bound first (the cost of a second inflate, for a rare format).
 */
function checkInterlacedPng(bytes: Uint8Array, width: number, height: number, source: string) {
  const [depth, colorType, interlace] = [bytes[24], bytes[25], bytes[28]];
  if (interlace !== 1) return;
  const channels = ({ 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 } as Record<number, number>)[colorType] ?? 4;
  const limit = adam7Bytes(width, height, channels * depth);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const parts: Uint8Array[] = [];
  for (let p = 8; p + 8 <= bytes.length;) {
    const length = view.getUint32(p);
    if (String.fromCharCode(...bytes.subarray(p + 4, p + 8)) === "IDAT") {
      parts.push(bytes.subarray(p + 8, Math.min(bytes.length, p + 8 + length)));
    }
    p += 12 + length;
  }
  try {
    inflateSync(Buffer.concat(parts), { maxOutputLength: limit });
  } catch (error) {
    if (error instanceof RangeError) {
      throw new Error(
        `${source}: corrupt PNG (its image data inflates to more than the ${limit} bytes its ` +
          `${width}x${height} header allows: a decompression bomb)`,
      );
    }
    // Other damage is left to pngjs, which names it.
  }
}

function decodePng(bytes: Uint8Array, source: string, limit: number): DecodedImage {
  const size = pngSize(bytes);
  if (size === null) {
    throw new Error(`${source}: corrupt PNG (no IHDR header: truncated or damaged file)`);
  }
  checkPixels(size.width, size.height, source, "PNG", limit);
  checkInterlacedPng(bytes, size.width, size.height, source);
  let png: { width: number; height: number; data: Uint8Array };
  try {
    // pngjs expands palette/gray/16-bit to 8-bit RGBA.
    png = PNG.sync.read(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  } catch (error) {
    throw new Error(`${source}: corrupt PNG (${(error as Error).message})`, { cause: error });
  }
  return {
    width: png.width,
    height: png.height,
    channels: 3,
    data: rgbaToRgb(png.data, png.width, png.height),
  };
}

/** Options of {@link decodeImage} and {@link readImageFile}. */
export interface DecodeOptions {
  /**
   * Largest width x height accepted, checked on the header before decoding (default:
   * `$DENO_DIFFUSION_MAX_PIXELS`, else 8192 x 8192; see ./limits.ts).
   */
  maxPixels?: number;
}

/**
 * Decodes PNG or JPEG bytes (recognised by their signature) into RGB. `source` names the file
 * in errors.
 *
 * @example
 * ```ts
 * import { decodeImage } from "./image.ts";
 * import { encodePng } from "./png.ts";
 * const png = encodePng({ width: 32, height: 32, channels: 3, data: new Uint8Array(32 * 32 * 3) });
 * const img = decodeImage(png, "cat.png");
 * console.log(img.width, img.height); // 32 32
 * ```
 */
export function decodeImage(
  bytes: Uint8Array,
  source = "image",
  options: DecodeOptions = {},
): DecodedImage {
  const limit = maxPixels(options.maxPixels);
  if (isPng(bytes)) return decodePng(bytes, source, limit);
  if (isJpeg(bytes)) {
    return { ...decodeJpeg(bytes, source, { maxPixels: limit }), channels: 3 };
  }
  throw new Error(`${source}: not a PNG or JPEG file (unrecognised signature)`);
}

/**
 * Reads and decodes a PNG or JPEG file with the default pixel cap. Takes only the path, so it
 * can be passed to `Array.map` directly; {@link readImageFile} takes options.
 *
 * @example
 * ```ts
 * import { decodeImageFile } from "./image.ts";
 * const img = await decodeImageFile("../shared/data/cifar10-jpg/test/cat/0000.jpg");
 * ```
 */
export function decodeImageFile(path: string): Promise<DecodedImage> {
  return readImageFile(path);
}

/**
 * Reads and decodes a PNG or JPEG file; `options.maxPixels` overrides the pixel cap.
 *
 * @example
 * ```ts
 * import { readImageFile } from "./image.ts";
 * import { encodePng } from "./png.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeFile(`${dir}/scan.png`, encodePng({ width: 2, height: 1, channels: 3, data: new Uint8Array(6) }));
 * const img = await readImageFile(`${dir}/scan.png`, { maxPixels: 20000 * 20000 }); // a raised cap
 * console.log(img.width, img.height); // 2 1
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function readImageFile(
  path: string,
  options: DecodeOptions = {},
): Promise<DecodedImage> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (error) {
    throw new Error(`cannot read image ${path}: ${(error as Error).message}`, { cause: error });
  }
  return decodeImage(bytes, path, options);
}

/** Whether `path` is a file once symlinks are followed (false for a dangling link). */
async function isFileFollowingLinks(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch {
    return false; // a dangling link
  }
}

/**
 * The .png/.jpg/.jpeg files directly inside `dir` (not recursive; symlinked files followed, as
 * pytorch-fid does), as full paths sorted by name. Throws when the folder is missing or holds no images.
 *
 * @example
 * ```ts
 * import { listImageFiles } from "./image.ts";
 * import { writeImageFolder } from "./png.ts";
 * const dir = await Deno.makeTempDir();
 * await writeImageFolder(dir, new Float32Array(2 * 3 * 4 * 4), [2, 3, 4, 4]);
 * const files = await listImageFiles(dir); // [".../00000.png", ".../00001.png"]
 * console.log(files.length); // 2
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function listImageFiles(dir: string): Promise<string[]> {
  const names: string[] = [];
  try {
    for await (const entry of Deno.readDir(dir)) {
      if (!IMAGE_EXTENSION.test(entry.name)) continue;
      // Symlinked images count, as they do for pytorch-fid's glob (stat follows the link).
      if (entry.isFile || (entry.isSymlink && await isFileFollowingLinks(`${dir}/${entry.name}`))) {
        names.push(entry.name);
      }
    }
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new Error(`image folder ${dir} does not exist`, { cause: error });
    }
    if (error instanceof Error && /Not a directory/i.test(error.message)) {
      throw new Error(`${dir} is not a folder (expected a folder of .png/.jpg images)`);
    }
    throw new Error(`cannot list image folder ${dir}: ${(error as Error).message}`, {
      cause: error,
    });
  }
  if (names.length === 0) {
    throw new Error(`image folder ${dir} holds no .png, .jpg or .jpeg files`);
  }
  names.sort();
  const prefix = dir.endsWith("/") ? dir : `${dir}/`;
  return names.map((name) => prefix + name);
}
