/**
 * Atomic file writes: data goes to a temporary file in the same folder, which is then renamed
 * over the target. A reader never sees a half-written file, and a failed write leaves nothing
 * behind (the temporary file is removed).
 *
 * @module
 */
import { writeError } from "./output.ts";

function tempPathFor(path: string): string {
  const slash = path.lastIndexOf("/");
  const dir = slash >= 0 ? path.slice(0, slash + 1) : "";
  const base = slash >= 0 ? path.slice(slash + 1) : path;
  const nonce = crypto.getRandomValues(new Uint32Array(2));
  // Same folder as the target, so the rename never crosses file systems.
  return `${dir}.${base}.${nonce[0].toString(36)}${nonce[1].toString(36)}.tmp`;
}

/** Matches the names {@link tempPathFor} gives: `.BASE.NONCE.tmp`, NONCE in base 36. */
const TEMP_NAME = /^\.(.+)\.[0-9a-z]{2,14}\.tmp$/;

/**
 * Removes the temporary files an interrupted atomic write (kill -9, power loss) left in `dir`:
 * only names this module makes (`.BASE.NONCE.tmp`), never other files. Returns the names
 * removed. Call it when a process that owns `dir` starts, not while another may be writing.
 *
 * @example
 * ```ts
 * import { removeStaleTemps } from "./atomic.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/.model.safetensors.k3j9x.tmp`, "half a file");
 * console.log(await removeStaleTemps(dir)); // [".model.safetensors.k3j9x.tmp"]
 * ```
 */
export async function removeStaleTemps(dir: string): Promise<string[]> {
  const removed: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (entry.isFile && TEMP_NAME.test(entry.name)) {
      await Deno.remove(`${dir}/${entry.name}`);
      removed.push(entry.name);
    }
  }
  return removed.sort();
}

function toBytes(data: Uint8Array | string): Uint8Array {
  return typeof data === "string" ? new TextEncoder().encode(data) : data;
}

/**
 * Writes `data` to `path` atomically (temp file in the same folder + rename).
 * The parent folder must exist.
 *
 * @example
 * ```ts
 * import { writeFileAtomic } from "./atomic.ts";
 * const dir = await Deno.makeTempDir();
 * await writeFileAtomic(`${dir}/config.json`, JSON.stringify({ lr: 2e-4 })); // the folder must exist
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeFileAtomic(path: string, data: Uint8Array | string): Promise<void> {
  const temp = tempPathFor(path);
  try {
    await Deno.writeFile(temp, toBytes(data), { createNew: true });
    await Deno.rename(temp, path);
  } catch (error) {
    await Deno.remove(temp).catch(() => {});
    throw writeError(path, error);
  }
}

/**
 * Synchronous variant of {@link writeFileAtomic}.
 *
 * @example
 * ```ts
 * import { writeFileAtomicSync } from "./atomic.ts";
 * const dir = Deno.makeTempDirSync();
 * writeFileAtomicSync(`${dir}/log.txt`, "done\n");
 * Deno.removeSync(dir, { recursive: true });
 * ```
 */
export function writeFileAtomicSync(path: string, data: Uint8Array | string): void {
  const temp = tempPathFor(path);
  try {
    Deno.writeFileSync(temp, toBytes(data), { createNew: true });
    Deno.renameSync(temp, path);
  } catch (error) {
    try {
      Deno.removeSync(temp);
    } catch {
      // the temp file was never created
    }
    throw writeError(path, error);
  }
}
