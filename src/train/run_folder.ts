/**
 * A run folder's life around crashes. `checkpoint.safetensors` is the one source of truth: it
 * is written first and atomically, and `model.safetensors` and `checkpoint.json` are derived
 * from it. A kill -9 can leave (a) temp files of interrupted atomic writes, (b) derived files
 * from an older checkpoint (killed between the writes), or (c) a folder with nothing in it
 * (killed or failed before the first output). The next start of the same run repairs (a) and
 * (b); a run that fails before any output removes the folder it created, (c).
 *
 * @module
 */
import { removeStaleTemps } from "../io/atomic.ts";
import { readSafetensors } from "../io/safetensors.ts";
import {
  CHECKPOINT_FILE,
  CHECKPOINT_JSON,
  EXPORT_FILE,
  type LoadedCheckpoint,
  writeCompanionFiles,
} from "./checkpoint.ts";

/** A run folder opened by {@link openRunFolder}. */
export interface RunFolder {
  /** True when this call created the folder (it did not exist before). */
  readonly created: boolean;
  /** Temp files of interrupted writes that were removed, as paths relative to the folder. */
  readonly removedTemps: string[];
  /**
   * Removes the folder again if this call created it and it holds no output yet (no checkpoint,
   * no preview image): for a run that failed before producing anything.
   */
  discardIfEmpty(): Promise<void>;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/**
 * Creates `runDir` if needed and removes stale temp files left in it (and in its `samples/`)
 * by a killed run.
 *
 * @example
 * ```ts
 * import { openRunFolder } from "./run_folder.ts";
 * const dir = `${await Deno.makeTempDir()}/run`;
 * const folder = await openRunFolder(dir);
 * console.log(folder.created, folder.removedTemps); // true []
 * await folder.discardIfEmpty(); // nothing was written: the folder is gone again
 * ```
 */
export async function openRunFolder(runDir: string): Promise<RunFolder> {
  const created = !(await exists(runDir));
  try {
    await Deno.mkdir(runDir, { recursive: true });
  } catch (e) {
    throw new Error(
      `could not create the run folder ${runDir}: ${(e as Error).message}; pass --out a folder ` +
        `you can write to`,
      { cause: e },
    );
  }
  const removedTemps = await removeStaleTemps(runDir);
  if (await exists(`${runDir}/samples`)) {
    for (const name of await removeStaleTemps(`${runDir}/samples`)) {
      removedTemps.push(`samples/${name}`);
    }
  }
  return {
    created,
    removedTemps,
    async discardIfEmpty() {
      if (!created || await exists(`${runDir}/${CHECKPOINT_FILE}`)) return;
      try {
        for await (const _ of Deno.readDir(`${runDir}/samples`)) return;
      } catch (e) {
        if (!(e instanceof Deno.errors.NotFound)) throw e;
      }
      await Deno.remove(runDir, { recursive: true });
    },
  };
}

/**
 * Makes `model.safetensors` and `checkpoint.json` agree with the loaded checkpoint, rewriting
 * both when either is missing, unreadable or from another save. Returns the names that disagreed.
 *
 * @example
 * ```ts ignore
 * const ckpt = await loadCheckpoint(runDir);
 * const rewritten = await reconcileRunFolder(runDir, ckpt, task.exportStore); // e.g. ["model.safetensors"]
 * ```
 */
export async function reconcileRunFolder(
  runDir: string,
  ckpt: LoadedCheckpoint,
  exportGroup: string,
): Promise<string[]> {
  const { state } = ckpt;
  const expectedJson = JSON.stringify(state, null, 2) + "\n";
  let jsonOk = false;
  try {
    jsonOk = (await Deno.readTextFile(`${runDir}/${CHECKPOINT_JSON}`)) === expectedJson;
  } catch {
    // missing or unreadable: rewritten below
  }
  let exportOk = false;
  try {
    const { metadata } = await readSafetensors(`${runDir}/${EXPORT_FILE}`);
    exportOk = metadata.deno_diffusion_saved_at === state.savedAt &&
      metadata.deno_diffusion_step === String(state.step);
  } catch {
    // missing or corrupt: rewritten below
  }
  if (jsonOk && exportOk) return [];
  await writeCompanionFiles(runDir, exportGroup, state, ckpt.tensors);
  return [EXPORT_FILE, CHECKPOINT_JSON].filter((_, i) => !(i === 0 ? exportOk : jsonOk));
}
