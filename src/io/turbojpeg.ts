/**
 * The system libjpeg-turbo through its TurboJPEG C API (Debian `libturbojpeg0`), over Deno FFI.
 * PIL, and so pytorch-fid, decodes JPEG with libjpeg-turbo's defaults: the accurate integer
 * ("islow") IDCT and "fancy" (interpolating) chroma upsampling. TurboJPEG's tjDecompress2 uses
 * the same defaults unless TJFLAG_FASTDCT / TJFLAG_FASTUPSAMPLE are passed, so the same library
 * gives PIL's pixels bit for bit (tests/io/jpeg_test.ts checks it against PIL's hashes).
 *
 * Only the 2.x API (tjInitDecompress ... tjDestroy) is used: libjpeg-turbo 3 still exports it.
 *
 * @module
 */

const SYMBOLS = {
  tjInitDecompress: { parameters: [], result: "pointer" },
  tjDestroy: { parameters: ["pointer"], result: "i32" },
  // (handle, jpegBuf, jpegSize, *width, *height, *jpegSubsamp, *jpegColorspace)
  tjDecompressHeader3: {
    parameters: ["pointer", "buffer", "u64", "buffer", "buffer", "buffer", "buffer"],
    result: "i32",
  },
  // (handle, jpegBuf, jpegSize, dstBuf, width, pitch, height, pixelFormat, flags)
  tjDecompress2: {
    parameters: ["pointer", "buffer", "u64", "buffer", "i32", "i32", "i32", "i32", "i32"],
    result: "i32",
  },
  tjGetErrorStr2: { parameters: ["pointer"], result: "pointer" },
  tjGetErrorCode: { parameters: ["pointer"], result: "i32" },
} as const satisfies Deno.ForeignLibraryInterface;

const TJPF_RGB = 0;
const TJCS_CMYK = 3;
const TJCS_YCCK = 4;
const TJERR_WARNING = 0;
/** Explicitly the islow IDCT (already the default; stated so no build default can change it). */
const TJFLAG_ACCURATEDCT = 4096;
/**
 * Refuses progressive files with more than 500 scans: a few-KB file of thousands of scans
 * otherwise costs minutes of CPU (libjpeg-turbo's own advice for untrusted input). PIL does not
 * set it; no encoder writes that many scans (PIL's progressive files have about 10).
 */
const TJFLAG_LIMITSCANS = 32768;

/**
 * libjpeg's warning messages (jerror.h, the JWRN_* codes) except JWRN_JPEG_EOF ("Premature end
 * of JPEG file"): the damage libjpeg recovers from, as PIL does.
 */
const RECOVERABLE =
  /^(Corrupt JPEG data|Warning: unknown JFIF revision|Unknown Adobe color transform code|Inconsistent progression sequence|Invalid SOS parameters for sequential JPEG)/;

/** Library names tried in order when no path is given. */
const CANDIDATES: Record<string, string[]> = {
  linux: ["libturbojpeg.so.0", "libturbojpeg.so"],
  darwin: [
    "libturbojpeg.0.dylib",
    "/opt/homebrew/opt/jpeg-turbo/lib/libturbojpeg.0.dylib",
    "/usr/local/opt/jpeg-turbo/lib/libturbojpeg.0.dylib",
  ],
  windows: ["turbojpeg.dll"],
};

/** A loaded libturbojpeg. */
export interface TurboJpeg {
  /** The library file that was opened. */
  path: string;
  /**
   * Decodes to RGB [H, W, 3]. `checkSize(width, height)` runs on the header's dimensions
   * before the output is allocated and may throw. Throws an Error with libjpeg's message on
   * corrupt data (a "Premature end" warning counts as corrupt, as PIL refuses truncated files);
   * returns null for CMYK/YCCK files, which the caller decodes another way.
   */
  decodeRgb(
    bytes: Uint8Array,
    checkSize: (width: number, height: number) => void,
  ): { width: number; height: number; data: Uint8Array } | null;
}

function open(path: string): TurboJpeg {
  const lib = Deno.dlopen(path, SYMBOLS);
  const probe = lib.symbols.tjInitDecompress();
  if (probe === null) {
    lib.close();
    throw new Error(`${path}: tjInitDecompress failed`);
  }
  lib.symbols.tjDestroy(probe);
  const header = new Int32Array(4); // width, height, subsampling, colorspace
  const field = (k: number) => new Uint8Array(header.buffer, k * 4, 4);
  return {
    path,
    decodeRgb(bytes, checkSize) {
      // A fresh decompressor per file, as PIL uses: libjpeg keeps Huffman and quantization
      // tables from one image to the next (for abbreviated streams), so a reused handle would
      // decode a file missing its tables with the previous file's, where PIL refuses it.
      const handle = lib.symbols.tjInitDecompress();
      if (handle === null) throw new Error("tjInitDecompress failed (out of memory?)");
      // libjpeg warns and carries on for recoverable damage (e.g. extraneous bytes before a
      // marker); PIL keeps those pixels too. A truncated file is an error in PIL, so here.
      // The error code alone cannot tell: TurboJPEG 2.1 reports TJERR_WARNING for a fatal
      // error that followed a warning. The message is the last one libjpeg emitted.
      const failUnlessRecoverable = () => {
        const pointer = lib.symbols.tjGetErrorStr2(handle);
        const text = pointer === null
          ? "unknown error"
          : Deno.UnsafePointerView.getCString(pointer);
        const warning = lib.symbols.tjGetErrorCode(handle) === TJERR_WARNING;
        if (!warning || !RECOVERABLE.test(text)) throw new Error(text);
      };
      try {
        const size = BigInt(bytes.byteLength);
        const status = lib.symbols.tjDecompressHeader3(
          handle,
          bytes,
          size,
          field(0),
          field(1),
          field(2),
          field(3),
        );
        if (status !== 0) failUnlessRecoverable();
        const [width, height, , colorspace] = header;
        checkSize(width, height);
        if (colorspace === TJCS_CMYK || colorspace === TJCS_YCCK) return null;
        const data = new Uint8Array(width * height * 3);
        const flags = TJFLAG_ACCURATEDCT | TJFLAG_LIMITSCANS;
        const result = lib.symbols.tjDecompress2(
          handle,
          bytes,
          size,
          data,
          width,
          width * 3,
          height,
          TJPF_RGB,
          flags,
        );
        if (result !== 0) failUnlessRecoverable();
        return { width, height, data };
      } finally {
        lib.symbols.tjDestroy(handle);
      }
    },
  };
}

/**
 * Opens libturbojpeg: `path` when given, else the platform's usual names. Returns the library,
 * or the reason it could not be opened (missing library, no --allow-ffi).
 *
 * @example
 * ```ts
 * import { loadTurboJpeg } from "./turbojpeg.ts";
 * const lib = loadTurboJpeg();
 * console.log(typeof lib === "string" ? `unavailable: ${lib}` : `using ${lib.path}`);
 * ```
 */
export function loadTurboJpeg(path?: string): TurboJpeg | string {
  const names = path ? [path] : CANDIDATES[Deno.build.os] ?? CANDIDATES.linux;
  const reasons: string[] = [];
  for (const name of names) {
    try {
      return open(name);
    } catch (error) {
      if (
        error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied
      ) {
        return "no FFI permission (run with --allow-ffi or -A)";
      }
      reasons.push(`${name}: ${(error as Error).message.split("\n")[0]}`);
    }
  }
  return `libturbojpeg not found (${reasons.join("; ")})`;
}
