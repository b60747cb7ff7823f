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
 * await writeFileAtomic("/tmp/run/config.json", JSON.stringify({ lr: 2e-4 }));
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
 * writeFileAtomicSync("/tmp/log.txt", "done\n");
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
