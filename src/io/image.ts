/**
 * Image decoding (PNG via pngjs, JPEG via jpeg-js) into 8-bit RGB, and listing of image
 * folders. Grayscale and alpha are converted to plain RGB the way PIL's `convert("RGB")` does
 * (gray replicated, alpha dropped), which is what pytorch-fid feeds its network.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { PNG } from "pngjs";
import jpeg from "jpeg-js";

/** An 8-bit RGB image, HWC row-major. */
export interface DecodedImage {
  width: number;
  height: number;
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

/** What decodeJpeg needs to know from the headers: component count and Adobe APP14 marker. */
function jpegLayout(bytes: Uint8Array): { components: number; adobe: boolean } {
  let components = 0;
  let adobe = false;
  let p = 2;
  while (p + 4 <= bytes.length && bytes[p] === 0xff) {
    const marker = bytes[p + 1];
    if (marker === 0xff) {
      p++; // fill byte
      continue;
    }
    if (marker === 0xda) break; // start of scan: all headers seen
    const length = (bytes[p + 2] << 8) | bytes[p + 3];
    const isStartOfFrame = marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 &&
      marker !== 0xc8 && marker !== 0xcc;
    if (isStartOfFrame && p + 9 < bytes.length) components = bytes[p + 9];
    if (marker === 0xee && String.fromCharCode(...bytes.subarray(p + 4, p + 9)) === "Adobe") {
      adobe = true;
    }
    p += 2 + length;
  }
  return { components, adobe };
}

/**
 * JPEG via jpeg-js. jpeg-js converts YCbCr to RGB by truncating into a Uint8Array, which
 * darkens every channel by 0.5 on average; for ordinary (JFIF, 3-component) files we take its
 * YCbCr output and convert with rounding as libjpeg does (JFIF 1.02 / ITU-T T.871 eq. 7).
 */
function decodeJpeg(bytes: Uint8Array, source: string): DecodedImage {
  const { components, adobe } = jpegLayout(bytes);
  const ownColorTransform = components === 3 && !adobe;
  let decoded: { width: number; height: number; data: Uint8Array };
  try {
    decoded = jpeg.decode(bytes, {
      useTArray: true,
      formatAsRGBA: true,
      colorTransform: ownColorTransform ? false : undefined,
    });
  } catch (error) {
    throw new Error(`${source}: corrupt JPEG (${(error as Error).message})`, { cause: error });
  }
  const { width, height, data } = decoded;
  if (data.length !== width * height * 4) {
    throw new Error(`${source}: corrupt JPEG (decoded size does not match its header)`);
  }
  if (!ownColorTransform) {
    return { width, height, channels: 3, data: rgbaToRgb(data, width, height) };
  }
  const rgb = new Uint8Array(width * height * 3);
  const clamp = (v: number) => (v < 0 ? 0 : v > 255 ? 255 : Math.round(v));
  for (let i = 0, j = 0; j < rgb.length; i += 4, j += 3) {
    const y = data[i];
    const cb = data[i + 1] - 128;
    const cr = data[i + 2] - 128;
    rgb[j] = clamp(y + 1.402 * cr);
    rgb[j + 1] = clamp(y - 0.344136 * cb - 0.714136 * cr);
    rgb[j + 2] = clamp(y + 1.772 * cb);
  }
  return { width, height, channels: 3, data: rgb };
}

/**
 * Decodes PNG or JPEG bytes (recognised by their signature) into RGB. `source` names the file
 * in errors.
 *
 * @example
 * ```ts
 * import { decodeImage } from "./image.ts";
 * const img = decodeImage(await Deno.readFile("cat.png"), "cat.png");
 * console.log(img.width, img.height); // 32 32
 * ```
 */
export function decodeImage(bytes: Uint8Array, source = "image"): DecodedImage {
  if (isPng(bytes)) {
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
  if (isJpeg(bytes)) return decodeJpeg(bytes, source);
  throw new Error(`${source}: not a PNG or JPEG file (unrecognised signature)`);
}

/**
 * Reads and decodes a PNG or JPEG file.
 *
 * @example
 * ```ts
 * import { decodeImageFile } from "./image.ts";
 * const img = await decodeImageFile("../shared/data/cifar10-jpg/test/cat/0000.jpg");
 * ```
 */
export async function decodeImageFile(path: string): Promise<DecodedImage> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (error) {
    throw new Error(`cannot read image ${path}: ${(error as Error).message}`, { cause: error });
  }
  return decodeImage(bytes, path);
}

/**
 * The .png/.jpg/.jpeg files directly inside `dir` (not recursive), as full paths sorted by
 * name. Throws when the folder is missing or holds no images.
 *
 * @example
 * ```ts
 * import { listImageFiles } from "./image.ts";
 * const files = await listImageFiles("samples/"); // ["samples/00000.png", ...]
 * ```
 */
export async function listImageFiles(dir: string): Promise<string[]> {
  const names: string[] = [];
  try {
    for await (const entry of Deno.readDir(dir)) {
      if (entry.isFile && IMAGE_EXTENSION.test(entry.name)) names.push(entry.name);
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
