/**
 * `deno run -A cli.ts backends [--json]`: lists every backend, available or not, with the reason.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { listBackends } from "../backend/select.ts";

const USAGE = `usage: deno run -A cli.ts backends [--json]

Lists the tensor backends (torch-cuda, tfjs-webgpu, torch-cpu, tfjs-wasm, tfjs-cpu), whether
each can load on this machine, and why not; tfjs-webgpu also names the WebGPU adapter found.
Automatic selection takes the first available in that order (tfjs-webgpu only on a hardware
adapter: a software one, e.g. lavapipe, is slower than tfjs-wasm); override it with
--backend <name> or DENO_DIFFUSION_BACKEND.

options:
  --json   print [{"name","available","device","version","reason"}] instead of a table
           (tfjs-webgpu adds "adapter": {description, vendor, software, maxBufferSize, ...})
  --help   show this help`;

/**
 * Runs the `backends` command; returns the process exit code.
 *
 * @example
 * ```ts
 * import { backendsCommand } from "./backends.ts";
 * const status = await backendsCommand(["--json"]); // prints [{"name":"torch-cpu","available":...}, ...]
 * console.log(status); // 0
 * ```
 */
export async function backendsCommand(argv: string[]): Promise<number> {
  let values: { json?: boolean; help?: boolean };
  try {
    ({ values } = parseArgs({
      args: argv,
      options: { json: { type: "boolean" }, help: { type: "boolean", short: "h" } },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    console.error(`backends: ${e instanceof Error ? e.message : String(e)}\n\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const infos = await listBackends();
  if (values.json) {
    console.log(JSON.stringify(infos));
    return 0;
  }
  const width = Math.max(...infos.map((i) => i.name.length));
  for (const info of infos) {
    const mark = info.available ? "available  " : "unavailable";
    const detail = info.available ? `${info.version}, ${info.device}` : info.reason;
    console.log(`${info.name.padEnd(width)}  ${mark}  ${detail}`);
  }
  return 0;
}
