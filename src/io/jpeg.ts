/**
 * JPEG to 8-bit RGB, as PIL's `Image.open(f).convert("RGB")` gives it (what pytorch-fid feeds
 * its network). Two decoders:
 *
 * - `libjpeg-turbo`: the system libturbojpeg over FFI (./turbojpeg.ts), the library PIL itself
 *   uses: identical pixels (islow IDCT, fancy upsampling).
 * - `jpeg-js`: the pure-JS fallback when the library is absent or FFI is not permitted. Its IDCT
 *   rounds differently and it replicates subsampled chroma instead of interpolating it: up to
 *   ~18 levels from PIL on 4:2:0 files (about 0.3% of an FID on a JPEG folder).
 *
 * `$DENO_DIFFUSION_JPEG` picks one: `auto` (default: libjpeg-turbo when it loads), `jpeg-js`,
 * `libjpeg-turbo` (an error when it cannot load), or a path to a libturbojpeg shared library.
 * The first JPEG decoded says on stderr which decoder runs; {@link jpegDecoder} reports it.
 * CMYK/YCCK files always go through jpeg-js (TurboJPEG cannot convert them to RGB).
 *
 * Dimensions are read from the frame header and checked against the pixel cap (./limits.ts)
 * before either decoder allocates anything.
 *
 * @module
 */
import jpeg from "npm:jpeg-js@0.4.4";
import { checkPixels, maxPixels } from "./limits.ts";
import { loadTurboJpeg, type TurboJpeg } from "./turbojpeg.ts";

/** Which JPEG decoder runs, and why. */
export interface JpegDecoderInfo {
  /** `libjpeg-turbo` (PIL-exact) or `jpeg-js` (approximate fallback). */
  name: "libjpeg-turbo" | "jpeg-js";
  /** The library path, or why the fallback runs. */
  detail: string;
}

interface Selected {
  info: JpegDecoderInfo;
  turbo: TurboJpeg | null;
}

let selected: Selected | undefined;
let announced = false;

function envChoice(): string {
  try {
    return Deno.env.get("DENO_DIFFUSION_JPEG")?.trim() || "auto";
  } catch {
    return "auto";
  }
}

function select(): Selected {
  if (selected) return selected;
  const choice = envChoice();
  if (choice === "jpeg-js") {
    selected = {
      info: { name: "jpeg-js", detail: "chosen by DENO_DIFFUSION_JPEG=jpeg-js" },
      turbo: null,
    };
    return selected;
  }
  const explicitPath = choice === "auto" || choice === "libjpeg-turbo" ? undefined : choice;
  const turbo = loadTurboJpeg(explicitPath);
  if (typeof turbo !== "string") {
    selected = { info: { name: "libjpeg-turbo", detail: turbo.path }, turbo };
  } else if (choice === "auto") {
    selected = {
      info: {
        name: "jpeg-js",
        detail: `${turbo}; install libjpeg-turbo's TurboJPEG library (Debian: libturbojpeg0) ` +
          `for PIL-exact pixels`,
      },
      turbo: null,
    };
  } else {
    throw new Error(
      `DENO_DIFFUSION_JPEG=${choice} but libjpeg-turbo cannot be used: ${turbo} ` +
        `(Debian: apt-get install libturbojpeg0; or unset DENO_DIFFUSION_JPEG for the jpeg-js ` +
        `fallback)`,
    );
  }
  return selected;
}

/**
 * The JPEG decoder this process uses (loading it on first call).
 *
 * @example
 * ```ts
 * import { jpegDecoder } from "./jpeg.ts";
 * const { name, detail } = jpegDecoder(); // "libjpeg-turbo", "libturbojpeg.so.0"
 * ```
 */
export function jpegDecoder(): JpegDecoderInfo {
  return { ...select().info };
}

/** What the frame header says; null fields when the header was not reached. */
export interface JpegHeader {
  width: number;
  height: number;
  components: number;
  /** An Adobe APP14 marker is present (its colour transform flag overrides JFIF's YCbCr). */
  adobe: boolean;
  progressive: boolean;
}

/**
 * Reads the markers up to the first start-of-frame. Returns null when the data ends or breaks
 * off before one (a truncated or non-JPEG file).
 *
 * @example
 * ```ts
 * import jpeg from "jpeg-js";
 * import { readJpegHeader } from "./jpeg.ts";
 * // A 32x32 grey JPEG, encoded here with jpeg-js (RGBA in).
 * const bytes = jpeg.encode({ width: 32, height: 32, data: new Uint8Array(32 * 32 * 4).fill(128) }, 90).data;
 * const header = readJpegHeader(bytes); // { width: 32, height: 32, ... }
 * console.log(header?.width, header?.height); // 32 32
 * ```
 */
export function readJpegHeader(bytes: Uint8Array): JpegHeader | null {
  let adobe = false;
  let p = 2;
  while (p + 4 <= bytes.length) {
    if (bytes[p] !== 0xff) {
      p++; // stray bytes before a marker: libjpeg skips them with a warning, and so does PIL
      continue;
    }
    const marker = bytes[p + 1];
    if (marker === 0xff) {
      p++; // fill byte
      continue;
    }
    const length = (bytes[p + 2] << 8) | bytes[p + 3];
    if (length < 2) return null;
    const isStartOfFrame = marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 &&
      marker !== 0xc8 && marker !== 0xcc;
    if (isStartOfFrame) {
      if (p + 10 > bytes.length) return null;
      return {
        height: (bytes[p + 5] << 8) | bytes[p + 6],
        width: (bytes[p + 7] << 8) | bytes[p + 8],
        components: bytes[p + 9],
        adobe,
        progressive: marker === 0xc2 || marker === 0xc6 || marker === 0xca || marker === 0xce,
      };
    }
    if (marker === 0xda) return null; // a scan before any frame header
    if (marker === 0xee && String.fromCharCode(...bytes.subarray(p + 4, p + 9)) === "Adobe") {
      adobe = true;
    }
    p += 2 + length;
  }
  return null;
}

/**
 * jpeg-js converts YCbCr to RGB by truncating into a Uint8Array, which darkens every channel by
 * 0.5 on average; for ordinary (JFIF, 3-component) files we take its YCbCr output and convert
 * with rounding as libjpeg does (JFIF 1.02 / ITU-T T.871 eq. 7).
 */
function decodeWithJpegJs(
  bytes: Uint8Array,
  header: JpegHeader,
  limit: number,
): { width: number; height: number; data: Uint8Array } {
  const ownColorTransform = header.components === 3 && !header.adobe;
  const { width, height, data } = jpeg.decode(bytes, {
    useTArray: true,
    formatAsRGBA: true,
    colorTransform: ownColorTransform ? false : undefined,
    maxResolutionInMP: limit / 1e6,
    // Each component plane plus the RGBA output; jpeg-js counts in MiB.
    maxMemoryUsageInMB: Math.ceil((limit * 8) / 2 ** 20) + 64,
  });
  if (data.length !== width * height * 4) {
    throw new Error("decoded size does not match its header");
  }
  const rgb = new Uint8Array(width * height * 3);
  if (!ownColorTransform) {
    for (let i = 0, j = 0; j < rgb.length; i += 4, j += 3) {
      rgb[j] = data[i];
      rgb[j + 1] = data[i + 1];
      rgb[j + 2] = data[i + 2];
    }
    return { width, height, data: rgb };
  }
  const clamp = (v: number) => (v < 0 ? 0 : v > 255 ? 255 : Math.round(v));
  for (let i = 0, j = 0; j < rgb.length; i += 4, j += 3) {
    const y = data[i];
    const cb = data[i + 1] - 128;
    const cr = data[i + 2] - 128;
    rgb[j] = clamp(y + 1.402 * cr);
    rgb[j + 1] = clamp(y - 0.344136 * cb - 0.714136 * cr);
    rgb[j + 2] = clamp(y + 1.772 * cb);
  }
  return { width, height, data: rgb };
}

/** Options of {@link decodeJpeg}. */
export interface JpegOptions {
  /** Pixel cap checked on the header (default: ./limits.ts's maxPixels()). */
  maxPixels?: number;
  /** Force a decoder instead of the process-wide choice (tests and benchmarks). */
  decoder?: "libjpeg-turbo" | "jpeg-js";
}

/**
 * Decodes JPEG bytes to RGB [H, W, 3]. `source` names the file in errors.
 *
 * @example
 * ```ts
 * import jpeg from "jpeg-js";
 * import { decodeJpeg } from "./jpeg.ts";
 * // A 32x32 grey JPEG, encoded here with jpeg-js (RGBA in).
 * const bytes = jpeg.encode({ width: 32, height: 32, data: new Uint8Array(32 * 32 * 4).fill(128) }, 90).data;
 * const img = decodeJpeg(bytes, "grey.jpg");
 * console.log(img.width, img.height, img.data.length); // 32 32 3072
 * ```
 */
export function decodeJpeg(
  bytes: Uint8Array,
  source = "JPEG data",
  options: JpegOptions = {},
): { width: number; height: number; data: Uint8Array } {
  const limit = maxPixels(options.maxPixels);
  const header = readJpegHeader(bytes);
  if (header === null) {
    throw new Error(`${source}: corrupt JPEG (no frame header: truncated or not a JPEG file)`);
  }
  checkPixels(header.width, header.height, source, "JPEG", limit);
  let turbo: TurboJpeg | null = null;
  if (options.decoder !== "jpeg-js") {
    const chosen = select();
    if (!announced && options.decoder === undefined) {
      announced = true;
      console.error(`jpeg: decoding with ${chosen.info.name} (${chosen.info.detail})`);
    }
    turbo = chosen.turbo;
    if (options.decoder === "libjpeg-turbo" && turbo === null) {
      throw new Error(`libjpeg-turbo is not available: ${chosen.info.detail}`);
    }
  }
  try {
    const out = turbo?.decodeRgb(bytes, (w, h) => checkPixels(w, h, source, "JPEG", limit));
    return out ?? decodeWithJpegJs(bytes, header, limit);
  } catch (error) {
    const message = (error as Error).message;
    if (message.startsWith(`${source}: `)) throw error; // already ours (the pixel cap)
    throw new Error(`${source}: corrupt JPEG (${message})`, { cause: error });
  }
}
