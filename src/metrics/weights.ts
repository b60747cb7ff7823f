/**
 * Finding, checking and downloading pytorch-fid's FID Inception weights
 * (`pt_inception-2015-12-05-6726825d.pth`), and {@link loadInception}, which loads them.
 *
 * Lookup order: an explicit path (`--inception-weights`), `$DENO_DIFFUSION_INCEPTION`, the
 * cache (`$XDG_CACHE_HOME` or `~/.cache`, then `deno-diffusion/`), else a download from
 * pytorch-fid's GitHub release into the cache (temp file, checked, then renamed).
 *
 * @module
 */
import { defaultCacheDir } from "../io/cache.ts";
import { downloadFile } from "../io/download.ts";
import type { Backend } from "../backend/backend.ts";
import { readTorchStateDict } from "../io/torch_pickle.ts";
import { inceptionFromStateDict, type InceptionNet } from "./inception.ts";
import type { InceptionDims } from "./inception_layers.ts";

/** File name of the released weights. */
export const FID_WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth";
/** pytorch-fid's release address of {@link FID_WEIGHTS_FILE}. */
export const FID_WEIGHTS_URL =
  `https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/${FID_WEIGHTS_FILE}`;
/** Exact size in bytes of the released file. */
export const FID_WEIGHTS_SIZE = 95_628_359;
/** The released file's sha256 starts with this (the hash in its name). */
export const FID_WEIGHTS_SHA256_PREFIX = "6726825d";

/** Where the weights are cached. */
export function cachedWeightsPath(): string {
  return `${defaultCacheDir()}/${FID_WEIGHTS_FILE}`;
}

function howToGet(): string {
  return `Download ${FID_WEIGHTS_URL} (${FID_WEIGHTS_SIZE} bytes) and either put it at ` +
    `${cachedWeightsPath()}, pass --inception-weights PATH, or set DENO_DIFFUSION_INCEPTION=PATH.`;
}

async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return [...new Uint8Array(digest)].map((x) => x.toString(16).padStart(2, "0")).join("");
}

/**
 * Checks a weights file's size and sha256 prefix against the released file; throws a message
 * naming the file, what was wrong and where to get the right one.
 *
 * @example
 * ```ts ignore needs-weights
 * import { verifyInceptionWeights } from "./weights.ts";
 * await verifyInceptionWeights("pt_inception-2015-12-05-6726825d.pth");
 * ```
 */
export async function verifyInceptionWeights(path: string): Promise<void> {
  const info = await Deno.stat(path);
  if (info.size !== FID_WEIGHTS_SIZE) {
    throw new Error(
      `${path} is ${info.size} bytes, but ${FID_WEIGHTS_FILE} is ${FID_WEIGHTS_SIZE}: it is not ` +
        `(or not all of) pytorch-fid's FID Inception weights. ${howToGet()}`,
    );
  }
  const hash = await sha256Hex(await Deno.readFile(path));
  if (!hash.startsWith(FID_WEIGHTS_SHA256_PREFIX)) {
    throw new Error(
      `${path} has sha256 ${hash.slice(0, 16)}..., expected ${FID_WEIGHTS_SHA256_PREFIX}...: ` +
        `the file is corrupt or a different network. ${howToGet()}`,
    );
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/** Options of {@link resolveInceptionWeights}. */
export interface ResolveOptions {
  /** An explicit file (`--inception-weights`); must exist. */
  path?: string;
  /** Allow downloading into the cache when nothing is found. Default true. */
  download?: boolean;
  /** Download address (tests point it at a local server). Default {@link FID_WEIGHTS_URL}. */
  url?: string;
  /** Where a download goes. Default {@link cachedWeightsPath}. */
  cachePath?: string;
  /** Progress and decisions, e.g. `(m) => console.error(m)`. */
  log?: (message: string) => void;
}

/**
 * Finds the weights file (see the module doc for the order), downloading it when allowed.
 *
 * @example
 * ```ts ignore needs-network
 * import { resolveInceptionWeights } from "./weights.ts";
 * const path = await resolveInceptionWeights({ log: console.error });
 * ```
 */
export async function resolveInceptionWeights(options: ResolveOptions = {}): Promise<string> {
  const explicit = options.path ?? Deno.env.get("DENO_DIFFUSION_INCEPTION");
  if (explicit) {
    if (!(await exists(explicit))) {
      // Same help as when nothing is configured: a wrong path is the same problem.
      const from = options.path ? "--inception-weights" : "DENO_DIFFUSION_INCEPTION";
      const what = await Deno.stat(explicit).then(
        (info) => info.isDirectory ? "is a folder, not the weights file" : "is not a file",
        () => "does not exist",
      );
      throw new Error(
        `FID Inception weights not found: ${explicit} (from ${from}) ${what}. ${howToGet()}`,
      );
    }
    return explicit;
  }
  const cached = options.cachePath ?? cachedWeightsPath();
  if (await exists(cached)) return cached;
  if (options.download === false) {
    throw new Error(`FID Inception weights not found. ${howToGet()}`);
  }
  await downloadWeights(options.url ?? FID_WEIGHTS_URL, cached, options.log);
  return cached;
}

async function downloadWeights(
  url: string,
  target: string,
  log: (message: string) => void = () => {},
): Promise<void> {
  const dir = target.slice(0, Math.max(target.lastIndexOf("/"), 0)) || ".";
  await Deno.mkdir(dir, { recursive: true });
  log(`downloading FID Inception weights from ${url} to ${target}`);
  let lastReport = 0;
  try {
    await downloadFile(url, target, {
      verify: verifyInceptionWeights,
      onProgress: (received) => {
        if (received - lastReport <= 10_000_000) return;
        lastReport = received;
        log(`  ${(received / 1e6).toFixed(0)} / ${(FID_WEIGHTS_SIZE / 1e6).toFixed(0)} MB`);
      },
    });
  } catch (e) {
    throw new Error(`${(e as Error).message}. ${howToGet()}`, { cause: e });
  }
}

/** Options of {@link loadInception}. */
export interface LoadInceptionOptions extends ResolveOptions {
  /** Feature size (64, 192, 768 or 2048). Default 2048. */
  dims?: InceptionDims;
  /**
   * Check the file's size and sha256 against the released weights. Default true; tests turn
   * it off for their own random weights in the same layout.
   */
  verify?: boolean;
}

/**
 * Finds, checks and loads the FID Inception network onto `backend`.
 *
 * @example
 * ```ts ignore needs-weights
 * import { selectBackend } from "../backend/select.ts";
 * import { loadInception } from "./weights.ts";
 * using backend = await selectBackend();
 * using net = await loadInception(backend, { dims: 2048 });
 * console.log(net.dims); // 2048
 * ```
 */
export async function loadInception(
  backend: Backend,
  options: LoadInceptionOptions = {},
): Promise<InceptionNet> {
  const path = await resolveInceptionWeights(options);
  if (options.verify ?? true) await verifyInceptionWeights(path);
  const stateDict = await readTorchStateDict(path);
  return inceptionFromStateDict(backend, stateDict, options.dims ?? 2048, path);
}
