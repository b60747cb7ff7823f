/**
 * Images out: PNG encoding (pngjs), float NCHW batches to 8-bit images, image grids laid out
 * like torchvision's `make_grid`, and folders of individual PNGs (FID input).
 *
 * @module
 */
import type { Buffer } from "node:buffer";
import { PNG } from "npm:pngjs@7.0.0";
import { writeFileAtomic } from "./atomic.ts";
import { makeOutputFolder } from "./output.ts";
import type { DecodedImage } from "./image.ts";

/**
 * Encodes an RGB image as an 8-bit RGB PNG.
 *
 * @example
 * ```ts
 * import { encodePng } from "./png.ts";
 * const red = { width: 1, height: 1, channels: 3 as const, data: new Uint8Array([255, 0, 0]) };
 * const png = encodePng(red);
 * console.log(png.subarray(1, 4)); // "PNG" in ASCII: [80, 78, 71]
 * ```
 */
export function encodePng(img: DecodedImage): Uint8Array {
  const { width, height, data } = img;
  if (data.length !== width * height * 3) {
    throw new TypeError(
      `encodePng: ${width}x${height} RGB needs ${width * height * 3} bytes, got ${data.length}`,
    );
  }
  // A plain { width, height, data } is all the sync packer reads; a `new PNG()` would also
  // build a stream parser per image, whose native buffers V8 does not count, so writing
  // thousands of images grew the process by ~250 KB each until a late GC.
  const rgba = new Uint8Array(width * height * 4);
  for (let i = 0, j = 0; i < data.length; i += 3, j += 4) {
    rgba[j] = data[i];
    rgba[j + 1] = data[i + 1];
    rgba[j + 2] = data[i + 2];
    rgba[j + 3] = 255;
  }
  const out: Buffer = PNG.sync.write(
    { width, height, data: rgba } as unknown as PNG,
    { colorType: 2 },
  );
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

function checkShape(
  images: Float32Array,
  shape: readonly number[],
): [number, number, number, number] {
  if (shape.length !== 4) throw new TypeError(`expected an NCHW shape, got [${shape}]`);
  const [n, c, h, w] = shape;
  if (c !== 3 && c !== 1) throw new TypeError(`expected 1 or 3 channels, got shape [${shape}]`);
  if (images.length !== n * c * h * w) {
    throw new TypeError(`shape [${shape}] needs ${n * c * h * w} values, got ${images.length}`);
  }
  return [n, c, h, w];
}

/**
 * Converts float32 NCHW images in [-1, 1] to 8-bit RGB images: round((x + 1) * 127.5),
 * clamped to [0, 255]. One-channel images are replicated to gray RGB.
 *
 * @example
 * ```ts
 * import { toUint8Images } from "./png.ts";
 * const [img] = toUint8Images(new Float32Array([-1, 0, 1]), [1, 3, 1, 1]);
 * console.log(img.data); // Uint8Array [0, 128, 255]
 * ```
 */
export function toUint8Images(images: Float32Array, shape: readonly number[]): DecodedImage[] {
  const [n, c, h, w] = checkShape(images, shape);
  const plane = h * w;
  const out: DecodedImage[] = [];
  for (let b = 0; b < n; b++) {
    const data = new Uint8Array(plane * 3);
    for (let ch = 0; ch < 3; ch++) {
      const src = (b * c + (c === 1 ? 0 : ch)) * plane;
      for (let i = 0; i < plane; i++) {
        const v = Math.round((images[src + i] + 1) * 127.5);
        data[i * 3 + ch] = v < 0 ? 0 : v > 255 ? 255 : v; // NaN -> 0 via Uint8Array
      }
    }
    out.push({ width: w, height: h, channels: 3, data });
  }
  return out;
}

/** Layout options of {@link makeGrid}. */
export interface GridOptions {
  /** Images per row (torchvision default 8). */
  nrow?: number;
  /** Black pixels between and around images (torchvision default 2). */
  padding?: number;
}

/**
 * Tiles images (all the same size) into one grid image, like torchvision's `make_grid`:
 * min(nrow, n) columns, `padding` black pixels around every tile.
 *
 * @example
 * ```ts
 * import { makeGrid, toUint8Images } from "./png.ts";
 * const tiles = toUint8Images(new Float32Array(4 * 3 * 8 * 8), [4, 3, 8, 8]);
 * const grid = makeGrid(tiles, { nrow: 2 }); // 22 x 22
 * ```
 */
export function makeGrid(images: DecodedImage[], options: GridOptions = {}): DecodedImage {
  const nrow = options.nrow ?? 8;
  const padding = options.padding ?? 2;
  if (images.length === 0) throw new TypeError("makeGrid: no images");
  if (!(Number.isInteger(nrow) && nrow > 0) || !(Number.isInteger(padding) && padding >= 0)) {
    throw new TypeError(`makeGrid: bad nrow ${nrow} or padding ${padding}`);
  }
  const { width: w, height: h } = images[0];
  const columns = Math.min(nrow, images.length);
  const rows = Math.ceil(images.length / columns);
  const width = columns * (w + padding) + padding;
  const height = rows * (h + padding) + padding;
  const data = new Uint8Array(width * height * 3);
  images.forEach((img, k) => {
    if (img.width !== w || img.height !== h) {
      throw new TypeError(`makeGrid: image ${k} is ${img.width}x${img.height}, expected ${w}x${h}`);
    }
    const top = Math.floor(k / columns) * (h + padding) + padding;
    const left = (k % columns) * (w + padding) + padding;
    for (let y = 0; y < h; y++) {
      data.set(img.data.subarray(y * w * 3, (y + 1) * w * 3), ((top + y) * width + left) * 3);
    }
  });
  return { width, height, channels: 3, data };
}

/**
 * Writes float32 NCHW images in [-1, 1] as one PNG grid (atomically).
 *
 * @example
 * ```ts
 * import { writeImageGrid } from "./png.ts";
 * const dir = await Deno.makeTempDir();
 * await writeImageGrid(`${dir}/samples.png`, new Float32Array(16 * 3 * 8 * 8), [16, 3, 8, 8], {
 *   nrow: 4,
 * });
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeImageGrid(
  path: string,
  images: Float32Array,
  shape: readonly number[],
  options: GridOptions = {},
): Promise<void> {
  await writeFileAtomic(path, encodePng(makeGrid(toUint8Images(images, shape), options)));
}

/**
 * Writes each float32 NCHW image in [-1, 1] as its own PNG, `<prefix><index>.png` with the
 * index zero-padded to 5 digits, creating the folder. Returns the paths written.
 *
 * @example
 * ```ts
 * import { writeImageFolder } from "./png.ts";
 * const dir = await Deno.makeTempDir();
 * const paths = await writeImageFolder(`${dir}/samples`, new Float32Array(2 * 3 * 4 * 4),
 *   [2, 3, 4, 4], { startIndex: 100 }); // [".../00100.png", ".../00101.png"]
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeImageFolder(
  dir: string,
  images: Float32Array,
  shape: readonly number[],
  options: { prefix?: string; startIndex?: number } = {},
): Promise<string[]> {
  const prefix = options.prefix ?? "";
  const start = options.startIndex ?? 0;
  await makeOutputFolder(dir);
  const paths: string[] = [];
  const tiles = toUint8Images(images, shape);
  for (let i = 0; i < tiles.length; i++) {
    const path = `${dir.replace(/\/$/, "")}/${prefix}${String(start + i).padStart(5, "0")}.png`;
    await writeFileAtomic(path, encodePng(tiles[i]));
    paths.push(path);
  }
  return paths;
}
