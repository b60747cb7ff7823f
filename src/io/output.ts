/**
 * Output locations checked before the expensive part (a missing folder or a full disk found
 * after an hour of sampling loses the hour), and the one wording of a failed write:
 * "could not write PATH: reason" plus what to do, instead of a raw `os error 17`.
 *
 * @module
 */

/** Raised when an output location cannot be used; the message says why and what to do. */
export class OutputError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "OutputError";
  }
}

/** The reason of a file-system error without Deno's " (os error N)" suffix. */
function reasonOf(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  // "File exists (os error 17): writefile '/a/b'" -> "File exists"; the caller names the path.
  return message.replace(/\s*\(os error \d+\)/, "").replace(/:\s*\w+ '[^']*'( -> '[^']*')?$/, "") ||
    "unknown error";
}

/** What to do about a failed write, by the kind of failure. */
function hintFor(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  if (error instanceof Deno.errors.PermissionDenied || /os error 13\b/.test(message)) {
    return "check the folder's permissions, or choose another output location";
  }
  if (error instanceof Deno.errors.NotFound) return "create the folder first, or fix the path";
  if (error instanceof Deno.errors.AlreadyExists) {
    return "another process is writing the same file; remove it or choose another path";
  }
  if (error instanceof Deno.errors.IsADirectory) {
    return "a folder has that name; choose a file name";
  }
  if (error instanceof Deno.errors.NotADirectory || /os error 20\b/.test(message)) {
    return "a part of the path is a file, not a folder";
  }
  if (/os error 28\b|no space left/i.test(message)) return "free some disk space and rerun";
  if (/os error 30\b|read-only file system/i.test(message)) {
    return "the file system is read-only; choose another output location";
  }
  return "check the path and the disk, then rerun";
}

/**
 * The error to throw when writing `path` failed: "could not write PATH: reason (hint)", with
 * the original error as its cause.
 *
 * @example
 * ```ts
 * import { writeError } from "./output.ts";
 * const error = writeError("/ro/x.png", new Deno.errors.PermissionDenied("Permission denied (os error 13)"));
 * console.log(error.message); // could not write /ro/x.png: Permission denied (check the folder's permissions, ...)
 * ```
 */
export function writeError(path: string, error: unknown): OutputError {
  if (error instanceof OutputError) return error;
  return new OutputError(`could not write ${path}: ${reasonOf(error)} (${hintFor(error)})`, {
    cause: error,
  });
}

function statOrNull(path: string): Deno.FileInfo | null {
  try {
    return Deno.statSync(path);
  } catch (error) {
    // A file standing where a folder should be ("a/file/sub") is reported by the caller's walk.
    if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.NotADirectory) {
      return null;
    }
    throw writeError(path, error);
  }
}

function parentOf(path: string): string {
  const trimmed = path.replace(/\/+$/, "");
  const slash = trimmed.lastIndexOf("/");
  if (slash < 0) return ".";
  return slash === 0 ? "/" : trimmed.slice(0, slash);
}

/** Creates and removes a probe file: the only reliable test that a folder takes new files. */
function probeWritable(dir: string): void {
  const nonce = crypto.getRandomValues(new Uint32Array(1))[0].toString(36);
  const probe = `${dir.replace(/\/+$/, "")}/.write-probe.${nonce}.tmp`;
  try {
    Deno.writeFileSync(probe, new Uint8Array(0), { createNew: true });
  } catch (error) {
    throw new OutputError(
      `cannot write into ${dir}: ${reasonOf(error)} (${hintFor(error)})`,
      { cause: error },
    );
  }
  Deno.removeSync(probe);
}

/**
 * Free bytes on the file system holding `dir` (POSIX `df -Pk`), or null when it cannot be
 * told (no `df`, or no permission to run it): the space check is then skipped, not failed.
 *
 * @example
 * ```ts
 * import { freeBytes } from "./output.ts";
 * const free = await freeBytes("/tmp"); // e.g. 41234567168
 * ```
 */
export async function freeBytes(dir: string): Promise<number | null> {
  try {
    const { success, stdout } = await new Deno.Command("df", {
      args: ["-Pk", dir],
      stdout: "piped",
      stderr: "null",
    }).output();
    if (!success) return null;
    const last = new TextDecoder().decode(stdout).trim().split("\n").at(-1) ?? "";
    const available = Number(last.split(/\s+/)[3]);
    return Number.isFinite(available) ? available * 1024 : null;
  } catch {
    return null;
  }
}

function megabytes(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(bytes < 2 ** 20 ? 2 : 0)} MB`;
}

/** Options of {@link checkOutputFolder} and {@link checkOutputFile}. */
export interface OutputCheckOptions {
  /** Bytes the output will take; refused when the file system has less free. */
  expectedBytes?: number;
  /** Names the location in messages, e.g. "--out-dir". */
  flag?: string;
}

async function checkSpace(dir: string, options: OutputCheckOptions): Promise<void> {
  if (!options.expectedBytes) return;
  const free = await freeBytes(dir);
  if (free !== null && free < options.expectedBytes) {
    throw new OutputError(
      `not enough space for ${options.flag ? `${options.flag} ` : ""}${dir}: the output needs ` +
        `about ${megabytes(options.expectedBytes)}, ${megabytes(free)} are free ` +
        `(free some space or choose another location)`,
    );
  }
}

/**
 * Checks, without creating anything, that `dir` can receive the output: it is a folder (or
 * does not exist yet and its nearest existing ancestor is a writable folder), new files can
 * be created in it, and its file system has `expectedBytes` free. The folder itself is
 * created only when the first file is written, so a failure before that leaves nothing behind.
 *
 * @example
 * ```ts
 * import { checkOutputFolder } from "./output.ts";
 * await checkOutputFolder("/tmp/samples", { expectedBytes: 50_000 * 2200, flag: "--out-dir" });
 * ```
 */
export async function checkOutputFolder(
  dir: string,
  options: OutputCheckOptions = {},
): Promise<void> {
  const name = options.flag ? `${options.flag} ${dir}` : dir;
  let existing = dir;
  let info = statOrNull(existing);
  while (info === null) {
    const parent = parentOf(existing);
    if (parent === existing) break;
    existing = parent;
    info = statOrNull(existing);
  }
  if (info && !info.isDirectory) {
    throw new OutputError(
      existing === dir
        ? `${name} is a file, not a folder (choose a folder, or remove the file)`
        : `${name}: ${existing} is a file, not a folder (fix the path)`,
    );
  }
  probeWritable(existing);
  await checkSpace(existing, options);
}

/**
 * Checks, before any work, that the file `path` can be written: its folder exists and takes
 * new files, `path` is not a folder, and there is `expectedBytes` of free space.
 *
 * @example
 * ```ts
 * import { checkOutputFile } from "./output.ts";
 * await checkOutputFile("/tmp/grid.png", { flag: "--out" });
 * ```
 */
export async function checkOutputFile(
  path: string,
  options: OutputCheckOptions = {},
): Promise<void> {
  const name = options.flag ? `${options.flag} ${path}` : path;
  const parent = parentOf(path);
  const parentInfo = statOrNull(parent);
  if (parentInfo === null) {
    throw new OutputError(
      `${name}: the folder ${parent} does not exist (create it first, or fix the path)`,
    );
  }
  if (!parentInfo.isDirectory) {
    throw new OutputError(`${name}: ${parent} is a file, not a folder (fix the path)`);
  }
  if (statOrNull(path)?.isDirectory) {
    throw new OutputError(`${name} is a folder; give a file name such as ${path}/grid.png`);
  }
  probeWritable(parent);
  await checkSpace(parent, options);
}

/**
 * Creates `dir` (and missing parents), with a failure worded like a failed write.
 *
 * @example
 * ```ts
 * import { makeOutputFolder } from "./output.ts";
 * await makeOutputFolder("/tmp/samples/a");
 * ```
 */
export async function makeOutputFolder(dir: string): Promise<void> {
  try {
    await Deno.mkdir(dir, { recursive: true });
  } catch (error) {
    throw writeError(dir, error);
  }
}
