/**
 * Builds the native shim (native/abi, ops and kernels; see native/kernels/README.md) against
 * libtorch into native/build/. Only this script and the CLI (through {@link prepareNativeShim})
 * ever compile; the library's loader only checks the stamp (shim_stamp.ts).
 *
 * libtorch is looked for in this order: `$LIBTORCH` (an unpacked libtorch zip), the libtorch
 * inside a PyTorch install (`python3 -c "import torch"`), the system one (Debian `libtorch-dev`).
 * A stamp file (hash of the sources with their paths relative to native/, the flags and the
 * libtorch identity) tells whether the library is stale. Run `deno task build:native` (add `--force` to rebuild anyway).
 *
 * @module
 */

import {
  COMPILE_FLAGS,
  type LibtorchLocation,
  listSources,
  NATIVE_DIR,
  nativeLibraryPath,
  shimStatus,
  sourceHash,
  stampPath,
} from "./shim_stamp.ts";

export { type LibtorchLocation, nativeLibraryName, nativeLibraryPath } from "./shim_stamp.ts";

const BUILD_DIR = `${NATIVE_DIR}/build`;

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

async function run(cmd: string, args: string[]): Promise<{ ok: boolean; out: string }> {
  try {
    const r = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
    const dec = new TextDecoder();
    return { ok: r.success, out: dec.decode(r.stdout) + dec.decode(r.stderr) };
  } catch (e) {
    return { ok: false, out: e instanceof Error ? e.message : String(e) };
  }
}

/** Whether libc10 exports symbols in the C++11 string ABI (`__cxx11`). */
async function detectCxx11Abi(libDir: string): Promise<0 | 1> {
  const env = Deno.env.get("LIBTORCH_CXX11_ABI");
  if (env === "0" || env === "1") return env === "1" ? 1 : 0;
  const lib = `${libDir}/libc10.so`;
  const r = await run("nm", ["-D", "--defined-only", lib]);
  if (r.ok) return r.out.includes("__cxx11") ? 1 : 0;
  return 1;
}

/** Which c10d collective backends can be compiled: gloo/ and nccl.h beside libtorch's headers. */
function findCollectives(includeDirs: string[], cuda: boolean): { gloo: boolean; nccl: boolean } {
  const roots = [...includeDirs, "/usr/include", "/usr/local/include", "/usr/local/cuda/include"];
  const gloo = roots.some((d) => exists(`${d}/gloo/config.h`)) &&
    roots.some((d) => exists(`${d}/torch/csrc/distributed/c10d/ProcessGroupGloo.hpp`));
  const nccl = cuda && roots.some((d) => exists(`${d}/nccl.h`));
  return { gloo, nccl };
}

function locationFromRoot(
  source: string,
  includeRoot: string,
  libDir: string,
  cxx11Abi: 0 | 1,
): LibtorchLocation {
  const includeDirs = [includeRoot, `${includeRoot}/torch/csrc/api/include`];
  const cuda = exists(`${libDir}/libtorch_cuda.so`);
  return {
    source,
    includeDirs,
    libDir,
    cxx11Abi,
    cuda,
    collectives: findCollectives(includeDirs, cuda),
  };
}

/**
 * Finds a libtorch to compile against, or returns null with the places tried in `tried`.
 *
 * @example
 * ```ts
 * import { findLibtorch } from "./build.ts";
 * const tried: string[] = [];
 * const where = await findLibtorch(tried);
 * console.log(where?.libDir ?? `none (tried ${tried.join("; ")})`);
 * ```
 */
export async function findLibtorch(tried: string[] = []): Promise<LibtorchLocation | null> {
  const envRoot = Deno.env.get("LIBTORCH");
  if (envRoot) {
    if (exists(`${envRoot}/include/ATen/ATen.h`) && exists(`${envRoot}/lib/libc10.so`)) {
      const libDir = `${envRoot}/lib`;
      return locationFromRoot(
        "$LIBTORCH",
        `${envRoot}/include`,
        libDir,
        await detectCxx11Abi(libDir),
      );
    }
    tried.push(`$LIBTORCH=${envRoot} (no include/ATen/ATen.h or lib/libc10.so)`);
  } else {
    tried.push("$LIBTORCH (unset)");
  }

  const py = await run("python3", [
    "-c",
    "import os, torch; print(os.path.dirname(torch.__file__)); " +
    "print(int(torch._C._GLIBCXX_USE_CXX11_ABI))",
  ]);
  if (py.ok) {
    const [root, abi] = py.out.trim().split("\n");
    if (exists(`${root}/include/ATen/ATen.h`) && exists(`${root}/lib/libc10.so`)) {
      return locationFromRoot("python", `${root}/include`, `${root}/lib`, abi === "1" ? 1 : 0);
    }
    tried.push(`python3's torch at ${root} (no headers or libs)`);
  } else {
    tried.push("python3 -c 'import torch' (failed)");
  }

  const arch = Deno.build.arch === "aarch64" ? "aarch64" : "x86_64";
  const sysLib = `/usr/lib/${arch}-linux-gnu`;
  if (exists("/usr/include/ATen/ATen.h") && exists(`${sysLib}/libtorch.so`)) {
    const includeDirs = ["/usr/include/torch/csrc/api/include"];
    const cuda = exists(`${sysLib}/libtorch_cuda.so`);
    return {
      source: "system",
      includeDirs,
      libDir: sysLib,
      cxx11Abi: await detectCxx11Abi(sysLib),
      cuda,
      collectives: findCollectives(includeDirs, cuda),
    };
  }
  tried.push(`system libtorch (/usr/include/ATen/ATen.h and ${sysLib}/libtorch.so)`);
  return null;
}

/**
 * The g++ arguments that build `output` from the .cpp files of native/.
 *
 * @example
 * ```ts
 * import { compileArgs, findLibtorch } from "./build.ts";
 * const where = await findLibtorch();
 * if (where) console.log(`g++ ${compileArgs(where, "/tmp/libdd_shim.so").join(" ")}`);
 * ```
 */
export function compileArgs(where: LibtorchLocation, output: string): string[] {
  const sources = listSources().filter((f) => f.endsWith(".cpp")).map((f) => `${NATIVE_DIR}/${f}`);
  const cudaLibs = where.cuda ? ["-ltorch_cuda", "-lc10_cuda"] : [];
  const collectives = [
    ...(where.collectives?.gloo ? ["-DUSE_C10D_GLOO"] : []),
    ...(where.collectives?.nccl ? ["-DUSE_C10D_NCCL"] : []),
  ];
  return [
    ...COMPILE_FLAGS,
    `-D_GLIBCXX_USE_CXX11_ABI=${where.cxx11Abi}`,
    ...collectives,
    ...where.includeDirs.map((d) => `-I${d}`),
    ...sources,
    "-o",
    output,
    `-L${where.libDir}`,
    `-Wl,-rpath,${where.libDir}`,
    // Keep libtorch_cuda linked although no symbol of it is used: it registers the CUDA hooks.
    "-Wl,--no-as-needed",
    "-ltorch",
    "-ltorch_cpu",
    ...cudaLibs,
    "-lc10",
    "-Wl,--as-needed",
  ];
}

/**
 * Why the built library cannot be used as is, or null when it is up to date.
 *
 * @example
 * ```ts
 * import { findLibtorch, staleReason } from "./build.ts";
 * const where = await findLibtorch();
 * if (where) console.log((await staleReason(where)) ?? "up to date");
 * ```
 */
export async function staleReason(where: LibtorchLocation): Promise<string | null> {
  if (!exists(nativeLibraryPath())) return `${nativeLibraryPath()} does not exist`;
  let stamp: { hash?: string };
  try {
    stamp = JSON.parse(await Deno.readTextFile(stampPath()));
  } catch {
    return `${stampPath()} is missing or unreadable`;
  }
  if (stamp.hash !== await sourceHash(where)) {
    return "sources, flags or libtorch location changed since the last build";
  }
  return null;
}

async function writeStamp(where: LibtorchLocation): Promise<void> {
  const stamp = { hash: await sourceHash(where), where };
  const stampTemp = `${stampPath()}.${Deno.pid}.tmp`;
  await Deno.writeTextFile(stampTemp, JSON.stringify(stamp, null, 2) + "\n");
  await Deno.rename(stampTemp, stampPath());
}

/**
 * Compiles the shim into native/build/ (atomically: temp file, then rename) and writes the stamp.
 * Throws with the compiler's output on failure.
 *
 * @example
 * ```ts
 * import { buildNativeLibrary, findLibtorch } from "./build.ts";
 * const where = await findLibtorch();
 * if (where) await buildNativeLibrary(where, console.log);
 * ```
 */
export async function buildNativeLibrary(
  where: LibtorchLocation,
  log: (msg: string) => void = console.error,
): Promise<string> {
  await Deno.mkdir(BUILD_DIR, { recursive: true });
  const output = nativeLibraryPath();
  const temp = `${output}.${Deno.pid}.tmp`;
  const cxx = Deno.env.get("CXX") ?? "g++";
  const args = compileArgs(where, temp);
  log(`building native shim against ${where.source} libtorch in ${where.libDir}`);
  log(`${cxx} ${args.join(" ")}`);
  const started = performance.now();
  const r = await run(cxx, args);
  if (!r.ok) {
    try {
      Deno.removeSync(temp);
    } catch { /* nothing was written */ }
    throw new Error(`compiling the native shim failed:\n${r.out.slice(-4000)}`);
  }
  await Deno.rename(temp, output);
  await writeStamp(where);
  log(`built ${output} in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  return output;
}

/**
 * Returns the path of an up-to-date shim, building it first when it is missing or stale.
 * Concurrent callers (parallel test files) wait on a lock file, so only one compiles.
 * Throws when no libtorch can be found (the message lists the places tried).
 *
 * @example
 * ```ts
 * import { ensureNativeLibrary } from "./build.ts";
 * const path = await ensureNativeLibrary();
 * console.log(path); // .../native/build/libdd_shim.so
 * ```
 */
export async function ensureNativeLibrary(
  opts: { force?: boolean; log?: (msg: string) => void } = {},
): Promise<string> {
  const log = opts.log ?? console.error;
  if (!opts.force && (await shimStatus()).fresh) return nativeLibraryPath();
  const tried: string[] = [];
  const where = await findLibtorch(tried);
  if (!where) throw new Error(`libtorch not found; tried: ${tried.join("; ")}`);
  await Deno.mkdir(BUILD_DIR, { recursive: true });
  const lockPath = `${BUILD_DIR}/.build.lock`;
  using lock = await Deno.open(lockPath, { create: true, write: true });
  await lock.lock(true);
  try {
    const reason = opts.force ? "--force" : await staleReason(where);
    if (reason === null) {
      await writeStamp(where); // refreshes an older stamp so the next load takes the cheap path
      return nativeLibraryPath();
    }
    log(`native shim needs a build: ${reason}`);
    return await buildNativeLibrary(where, log);
  } finally {
    await lock.unlock();
  }
}

/**
 * For the CLI (never the library): when the shim in native/build/ is missing or stale and a
 * libtorch is installed, builds it, saying so through `log` first. Does nothing when
 * `$DENO_DIFFUSION_NATIVE` names a prebuilt shim, when the shim is fresh, or when no libtorch is
 * found (the torch backends then report themselves unavailable). A failed build is logged, not
 * thrown: the backend selection that follows explains what is missing.
 *
 * @example
 * ```ts
 * import { prepareNativeShim } from "./build.ts";
 * await prepareNativeShim({ log: (m) => console.error(m) });
 * ```
 */
export async function prepareNativeShim(
  opts: { log?: (msg: string) => void } = {},
): Promise<void> {
  const log = opts.log ?? console.error;
  if (Deno.env.get("DENO_DIFFUSION_NATIVE")) return;
  const status = await shimStatus();
  if (status.fresh) return;
  const where = await findLibtorch();
  if (!where) return;
  log(`native shim: ${status.reason}; building it now (what \`deno task build:native\` does)`);
  try {
    await ensureNativeLibrary({ log });
  } catch (e) {
    log(`native shim build failed: ${e instanceof Error ? e.message : String(e)}`);
  }
}

if (import.meta.main) {
  const force = Deno.args.includes("--force");
  const unknown = Deno.args.filter((a) => a !== "--force");
  if (unknown.length > 0) {
    console.error(
      `unknown argument(s): ${unknown.join(" ")}; usage: deno task build:native [--force]`,
    );
    Deno.exit(2);
  }
  try {
    const path = await ensureNativeLibrary({ force, log: console.log });
    console.log(`native shim ready: ${path}`);
  } catch (e) {
    console.error(e instanceof Error ? e.message : String(e));
    Deno.exit(1);
  }
}
