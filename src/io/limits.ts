/**
 * The pixel cap every image reader checks against the dimensions in a file's header before it
 * decodes anything: a 69-byte PNG may claim 50000 x 50000 pixels, and decoding it would
 * allocate 10 GB. The cap is a parameter of each reader; its default comes from
 * `DENO_DIFFUSION_MAX_PIXELS`, else {@link DEFAULT_MAX_PIXELS}.
 *
 * @module
 */

/** 64 Mi pixels (8192 x 8192, 192 MiB as RGB): far above any image this project trains on. */
export const DEFAULT_MAX_PIXELS = 8192 * 8192;

const ENV = "DENO_DIFFUSION_MAX_PIXELS";

/**
 * The pixel cap to use: `override` when given, else `$DENO_DIFFUSION_MAX_PIXELS`, else
 * {@link DEFAULT_MAX_PIXELS}. Throws when either is not a positive integer.
 *
 * @example
 * ```ts
 * import { maxPixels } from "./limits.ts";
 * console.log(maxPixels()); // 67108864 unless DENO_DIFFUSION_MAX_PIXELS is set
 * console.log(maxPixels(1000)); // 1000
 * ```
 */
export function maxPixels(override?: number): number {
  if (override !== undefined) {
    if (!(Number.isSafeInteger(override) && override > 0)) {
      throw new RangeError(`maxPixels must be a positive integer, got ${override}`);
    }
    return override;
  }
  let text: string | undefined;
  try {
    text = Deno.env.get(ENV);
  } catch {
    return DEFAULT_MAX_PIXELS; // no --allow-env: the default applies
  }
  if (text === undefined || text.trim() === "") return DEFAULT_MAX_PIXELS;
  const value = Number(text.trim());
  if (!(Number.isSafeInteger(value) && value > 0)) {
    throw new RangeError(`${ENV} must be a positive integer number of pixels, got "${text}"`);
  }
  return value;
}

/**
 * Throws when a header's `width` x `height` is empty or above `limit` pixels; the message
 * names the file, the format and the setting that raises the cap.
 *
 * @example
 * ```ts
 * import { checkPixels } from "./limits.ts";
 * checkPixels(32, 32, "cat.png", "PNG", 1 << 20); // fine
 * try {
 *   checkPixels(50000, 50000, "bomb.png", "PNG", 1 << 20);
 * } catch (error) {
 *   console.log((error as Error).message); // "bomb.png: PNG header claims 50000x50000 = ..."
 * }
 * ```
 */
export function checkPixels(
  width: number,
  height: number,
  source: string,
  format: string,
  limit: number,
): void {
  if (width <= 0 || height <= 0) {
    throw new Error(`${source}: corrupt ${format} (its header gives a ${width}x${height} image)`);
  }
  if (width * height > limit) {
    throw new Error(
      `${source}: ${format} header claims ${width}x${height} = ${width * height} pixels, ` +
        `above the cap of ${limit} (a decompression bomb, or an image too large to use here); ` +
        `raise the cap with ${ENV} or the maxPixels option if the file is genuine`,
    );
  }
}
