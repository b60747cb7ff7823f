/**
 * Read-only access to the files under the dashboard's root folder: request paths are mapped
 * to real paths that must stay inside the root (no `..`, no NUL or backslash, no symlink that
 * leads out), and files are answered with a content type and at most one sane byte range.
 *
 * @module
 */
import { extname, join, resolve, sep as SEPARATOR } from "node:path";

/** Raised for a request the server refuses; `status` is the HTTP status to answer. */
export class RefusedError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
    this.name = "RefusedError";
  }
}

const TYPES: Record<string, string> = {
  ".png": "image/png",
  ".gif": "image/gif",
  ".jpg": "image/jpeg",
  ".jpeg": "image/jpeg",
  ".svg": "image/svg+xml",
  ".json": "application/json; charset=utf-8",
  ".jsonl": "text/plain; charset=utf-8",
  ".md": "text/plain; charset=utf-8",
  ".txt": "text/plain; charset=utf-8",
  ".csv": "text/plain; charset=utf-8",
  ".html": "text/plain; charset=utf-8", // never rendered: a run folder's HTML is not ours
};

/**
 * Content type served for a file name (unknown types download as bytes).
 *
 * @example
 * ```ts
 * import { contentType } from "./files.ts";
 * console.log(contentType("samples/epoch-0001.png")); // "image/png"
 * ```
 */
export function contentType(name: string): string {
  return TYPES[extname(name).toLowerCase()] ?? "application/octet-stream";
}

/**
 * The real path of `relative` (a URL path below the root, already percent-decoded) inside
 * `root` (itself a real path), or a {@link RefusedError}: 400 for malformed paths, 403 for
 * paths that lead outside the root, 404 for missing ones.
 *
 * @example
 * ```ts ignore
 * await resolveInside("/srv/runs", "cats/log.jsonl"); // "/srv/runs/cats/log.jsonl"
 * await resolveInside("/srv/runs", "../etc/passwd"); // throws RefusedError 403
 * ```
 */
export async function resolveInside(root: string, relative: string): Promise<string> {
  if (relative.length > 1024) throw new RefusedError(414, "path too long");
  if (/[\0\\]/.test(relative)) throw new RefusedError(400, "bad character in path");
  const parts = relative.split("/").filter((p) => p !== "" && p !== ".");
  if (parts.some((p) => p === "..")) throw new RefusedError(403, "path leaves the root folder");
  const joined = join(root, ...parts);
  let real: string;
  try {
    real = await Deno.realPath(joined);
  } catch {
    throw new RefusedError(404, "not found");
  }
  if (real !== root && !real.startsWith(root + SEPARATOR)) {
    throw new RefusedError(403, "path leads outside the root folder (symlink?)");
  }
  return real;
}

/**
 * The root folder as a real path (so {@link resolveInside} can compare prefixes).
 *
 * @example
 * ```ts ignore
 * const root = await realRoot("runs");
 * ```
 */
export async function realRoot(dir: string): Promise<string> {
  const info = await Deno.stat(dir).catch(() => null);
  if (!info?.isDirectory) {
    throw new Error(`${dir} is not a folder: pass the runs folder to serve (default runs/)`);
  }
  return await Deno.realPath(resolve(dir));
}

/**
 * Parses a `Range` header against a file of `size` bytes: undefined for the whole file, the
 * inclusive [start, end] of one range, or a {@link RefusedError} 416 for several ranges,
 * malformed ones, or ranges outside the file.
 *
 * @example
 * ```ts
 * import { parseRange } from "./files.ts";
 * console.log(parseRange("bytes=-3", 10)); // [7, 9]
 * ```
 */
export function parseRange(header: string | null, size: number): [number, number] | undefined {
  if (header === null) return undefined;
  const m = /^bytes=(\d{0,15})-(\d{0,15})$/.exec(header.trim());
  if (!m || (m[1] === "" && m[2] === "")) {
    throw new RefusedError(416, "only one byte range of the form bytes=a-b is served");
  }
  let start: number, end: number;
  if (m[1] === "") {
    const suffix = Number(m[2]); // the last N bytes
    if (suffix === 0) throw new RefusedError(416, "empty suffix range");
    start = Math.max(0, size - suffix);
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1);
  }
  if (start >= size || start > end) {
    throw new RefusedError(416, `range ${header} is outside the file's ${size} bytes`);
  }
  return [start, end];
}

/**
 * Answers a GET or HEAD for the regular file at `path` (already checked to be inside the root).
 *
 * @example
 * ```ts ignore
 * return await fileResponse(await resolveInside(root, "cats/progress.gif"), request);
 * ```
 */
export async function fileResponse(path: string, req: Request): Promise<Response> {
  const info = await Deno.stat(path);
  if (!info.isFile) throw new RefusedError(404, "not a file");
  const size = info.size;
  const range = parseRange(req.headers.get("range"), size);
  const headers = new Headers({
    "content-type": contentType(path),
    "accept-ranges": "bytes",
    "cache-control": "no-cache",
  });
  const [start, end] = range ?? [0, size - 1];
  const length = size === 0 ? 0 : end - start + 1;
  headers.set("content-length", String(length));
  if (range) headers.set("content-range", `bytes ${start}-${end}/${size}`);
  const status = range ? 206 : 200;
  if (req.method === "HEAD" || length === 0) return new Response(null, { status, headers });
  const file = await Deno.open(path, { read: true });
  await file.seek(start, Deno.SeekMode.Start);
  let left = length;
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      const chunk = new Uint8Array(Math.min(65536, left));
      const n = await file.read(chunk);
      if (n === null || n === 0) {
        file.close();
        controller.close();
        return;
      }
      left -= n;
      controller.enqueue(chunk.subarray(0, n));
      if (left <= 0) {
        file.close();
        controller.close();
      }
    },
    cancel() {
      file.close();
    },
  });
  return new Response(body, { status, headers });
}
