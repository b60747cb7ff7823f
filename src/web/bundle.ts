/**
 * Bundles browser code (src/web/browser/*) into one classic script with `deno bundle`
 * (esbuild inside Deno, so npm packages resolve from Deno's own cache and no bundler needs
 * installing). The project's tfjs backend is bundled as it is, except its conv-worker module,
 * which needs Node threads and shared memory: an import map puts
 * src/web/browser/tfjs_worker_stub.ts in its place.
 *
 * @module
 */
import { createRequire } from "node:module";

const ROOT = new URL("../../", import.meta.url);

/** The import map of deno.json plus the browser's stand-in for the conv worker. */
async function browserImportMap(): Promise<{ imports: Record<string, string> }> {
  const config = JSON.parse(await Deno.readTextFile(new URL("deno.json", ROOT)));
  return {
    imports: {
      ...config.imports,
      [new URL("src/backend/tfjs_worker.ts", ROOT).href]:
        new URL("browser/tfjs_worker_stub.ts", import.meta.url).href,
    },
  };
}

/**
 * Bundles `entry` (a module URL) for browsers: one minified IIFE script, returned as text.
 *
 * @example
 * ```ts ignore
 * const js = await bundleForBrowser(new URL("./browser/page.ts", import.meta.url));
 * ```
 */
export async function bundleForBrowser(entry: URL): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "dd-bundle-" });
  try {
    const map = `${dir}/import_map.json`;
    const out = `${dir}/out.js`;
    await Deno.writeTextFile(map, JSON.stringify(await browserImportMap()));
    const result = await new Deno.Command(Deno.execPath(), {
      args: [
        "bundle",
        "--quiet",
        "--platform",
        "browser",
        "--format",
        "iife",
        "--minify",
        "--import-map",
        map,
        "-o",
        out,
        entry.pathname,
      ],
      cwd: ROOT.pathname,
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!result.success) {
      const why = new TextDecoder().decode(result.stderr).trim().split("\n").slice(-12).join("\n");
      throw new Error(`deno bundle of ${entry.pathname} failed:\n${why}`);
    }
    return await Deno.readTextFile(out);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * The bytes of a file inside an npm package this project depends on (deno.json), from Deno's
 * npm cache.
 *
 * @example
 * ```ts ignore
 * const css = await npmFile("uplot/dist/uPlot.min.css");
 * ```
 */
export async function npmFile(specifier: string): Promise<Uint8Array<ArrayBuffer>> {
  let path: string;
  try {
    path = createRequire(import.meta.url).resolve(specifier);
  } catch (e) {
    throw new Error(
      `cannot find ${specifier} in Deno's npm cache (${(e as Error).message.split("\n")[0]}); ` +
        "run `deno install` in the repository (or any command once online) to fetch it",
    );
  }
  return await Deno.readFile(path);
}
