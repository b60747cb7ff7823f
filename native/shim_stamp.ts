/**
 * Whether a built native shim matches its sources: the stamp that `deno task build:native`
 * writes beside the library, and the check the loader (src/backend/torch_ffi.ts) runs before
 * opening it. Only reads files: nothing here compiles, spawns a process or sets the
 * environment.
 *
 * The stamp's hash covers each source's path relative to native/ and its contents, the compiler
 * flags and the libtorch it was built against (location, C++ ABI, CUDA), so a moved or copied
 * checkout with the same sources and the same libtorch stays fresh.
 *
 * @module
 */

/** Folders under native/ whose .h and .cpp files make up the shim. */
export const SOURCE_DIRS = ["abi", "ops", "kernels", "distributed"] as const;

/** Where a libtorch was found and how to compile against it. */
export interface LibtorchLocation {
  /** "$LIBTORCH", "python" or "system". */
  source: string;
  includeDirs: string[];
  libDir: string;
  /** Value for -D_GLIBCXX_USE_CXX11_ABI (must match the libtorch build). */
  cxx11Abi: 0 | 1;
  /** libtorch_cuda is present (link it so the CUDA hooks register). */
  cuda: boolean;
  /**
   * Collective backends whose headers were found (c10d's ProcessGroupGloo needs gloo's headers,
   * Debian's libgloo-dev; ProcessGroupNCCL needs nccl.h). Without them the shim still builds
   * and native/distributed/ says what to install.
   */
  collectives?: { gloo: boolean; nccl: boolean };
}

/** Compiler flags that do not depend on paths (build.ts adds sources, includes and libraries). */
export const COMPILE_FLAGS: readonly string[] = [
  "-O2",
  // at::parallel_for is a header template whose `#pragma omp parallel` compiles into our own
  // code: without -fopenmp every parallel_for in the shim runs on one thread.
  "-fopenmp",
  "-std=c++17",
  "-fPIC",
  "-shared",
];

/** What {@link shimStatus} found. */
export interface ShimStatus {
  /** Absolute path of the library inside `<native>/build/`. */
  path: string;
  /** True when the library exists and its stamp matches the sources and libtorch. */
  fresh: boolean;
  /** Why it is not fresh ("" when fresh). */
  reason: string;
}

/** This module's own native/ folder. */
export const NATIVE_DIR: string = decodeURIComponent(new URL(".", import.meta.url).pathname)
  .replace(/\/$/, "");

/**
 * File name of the shared library for this OS.
 *
 * @example
 * ```ts
 * import { nativeLibraryName } from "./shim_stamp.ts";
 * console.log(nativeLibraryName()); // "libdd_shim.so" on Linux
 * ```
 */
export function nativeLibraryName(): string {
  return Deno.build.os === "darwin" ? "libdd_shim.dylib" : "libdd_shim.so";
}

/**
 * Absolute path of the built shim in `<nativeDir>/build/`.
 *
 * @example
 * ```ts
 * import { nativeLibraryPath } from "./shim_stamp.ts";
 * console.log(nativeLibraryPath()); // .../native/build/libdd_shim.so
 * ```
 */
export function nativeLibraryPath(nativeDir: string = NATIVE_DIR): string {
  return `${nativeDir}/build/${nativeLibraryName()}`;
}

/** Path of the stamp file in `<nativeDir>/build/`. */
export function stampPath(nativeDir: string = NATIVE_DIR): string {
  return `${nativeDir}/build/stamp.json`;
}

/**
 * The shim's source files, relative to `nativeDir`, sorted (e.g. "abi/shim.h").
 *
 * @example
 * ```ts
 * import { listSources } from "./shim_stamp.ts";
 * console.log(listSources().filter((f) => f.endsWith(".cpp")).length > 0); // true
 * ```
 */
export function listSources(nativeDir: string = NATIVE_DIR): string[] {
  const files: string[] = [];
  for (const dir of SOURCE_DIRS) {
    for (const entry of Deno.readDirSync(`${nativeDir}/${dir}`)) {
      if (entry.isFile && /\.(h|cpp)$/.test(entry.name)) files.push(`${dir}/${entry.name}`);
    }
  }
  return files.sort();
}

/**
 * SHA-256 (hex) of the sources (relative path and contents), the flags and the libtorch
 * identity. Absolute paths of the checkout do not enter it.
 *
 * @example
 * ```ts
 * import { sourceHash } from "./shim_stamp.ts";
 * const where = { source: "system", includeDirs: [], libDir: "/usr/lib", cxx11Abi: 1, cuda: false } as const;
 * console.log((await sourceHash(where)).length); // 64
 * ```
 */
export async function sourceHash(
  where: LibtorchLocation,
  nativeDir: string = NATIVE_DIR,
): Promise<string> {
  const enc = new TextEncoder();
  const parts: Uint8Array[] = [];
  for (const rel of listSources(nativeDir)) {
    parts.push(
      enc.encode(`${rel}\0`),
      await Deno.readFile(`${nativeDir}/${rel}`),
      enc.encode("\0"),
    );
  }
  const identity = {
    flags: COMPILE_FLAGS,
    source: where.source,
    includeDirs: where.includeDirs,
    libDir: where.libDir,
    cxx11Abi: where.cxx11Abi,
    cuda: where.cuda,
    collectives: where.collectives ?? null,
  };
  parts.push(enc.encode(JSON.stringify(identity)));
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    all.set(p, at);
    at += p.length;
  }
  const digest = await crypto.subtle.digest("SHA-256", all);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * Whether `<nativeDir>/build/` holds a shim built from exactly these sources against a libtorch
 * that is still there (and is `$LIBTORCH`, when that is set). Reads files only.
 *
 * @example
 * ```ts
 * import { shimStatus } from "./shim_stamp.ts";
 * const s = await shimStatus();
 * console.log(s.fresh ? `ready: ${s.path}` : `stale: ${s.reason}`);
 * ```
 */
export async function shimStatus(nativeDir: string = NATIVE_DIR): Promise<ShimStatus> {
  const path = nativeLibraryPath(nativeDir);
  const stale = (reason: string): ShimStatus => ({ path, fresh: false, reason });
  if (!exists(path)) return stale(`${path} does not exist`);
  let stamp: { hash?: string; where?: LibtorchLocation };
  try {
    stamp = JSON.parse(await Deno.readTextFile(stampPath(nativeDir)));
  } catch {
    return stale(`${stampPath(nativeDir)} is missing or unreadable`);
  }
  const where = stamp.where;
  if (!where || typeof where.libDir !== "string") {
    return stale(`${stampPath(nativeDir)} does not name a libtorch`);
  }
  if (!exists(where.libDir)) {
    return stale(`the libtorch it was built against (${where.libDir}) is gone`);
  }
  const envRoot = Deno.env.get("LIBTORCH");
  if (envRoot && (where.source !== "$LIBTORCH" || where.libDir !== `${envRoot}/lib`)) {
    return stale(`it was built against ${where.libDir}, but $LIBTORCH=${envRoot}`);
  }
  let hash: string;
  try {
    hash = await sourceHash(where, nativeDir);
  } catch (e) {
    return stale(`could not read the sources: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (stamp.hash !== hash) {
    return stale("the sources, flags or libtorch changed since it was built");
  }
  return { path, fresh: true, reason: "" };
}
