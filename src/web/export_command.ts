/**
 * `cli.ts export --web`: a static page that samples a checkpoint in the browser (export.ts).
 * It lives in web/, not cli/, because the CLI layer sits below web (ARCHITECTURE.md).
 *
 * @module
 */
import { loadCheckpoint } from "../train/checkpoint.ts";
import { type CommandSpec, helpText, parseCommand, str, UsageError } from "../cli/args.ts";
import { classNamesOf } from "../app/open.ts";

const SPEC: CommandSpec = {
  name: "export",
  summary: "Export a trained model as a static web page that samples it in the browser.",
  usage: "deno run -A cli.ts export --ckpt RUN_OR_FILE --web OUT_DIR",
  flags: {
    ckpt: { type: "string", arg: "RUN_OR_FILE", help: "run folder or checkpoint (required)" },
    web: {
      type: "string",
      arg: "OUT_DIR",
      help: "folder to write index.html, app.js and model.safetensors into (required)",
    },
  },
  details: "Open OUT_DIR/index.html from any static server (or from the disk: it then asks for " +
    "model.safetensors). It samples with TensorFlow.js on WebGL, else wasm.",
};

/** Entry point of `cli.ts export`. */
export async function exportCommand(argv: string[]): Promise<number> {
  const parsed = parseCommand(argv, SPEC);
  if (parsed.help) {
    console.log(helpText(SPEC));
    return 0;
  }
  const ckpt = str(parsed, "ckpt");
  if (!ckpt) throw new UsageError("--ckpt RUN_OR_FILE is required (a run folder from `train`)");
  const outDir = str(parsed, "web");
  if (!outDir) throw new UsageError("--web OUT_DIR is required (where to write the page)");
  const { exportWeb } = await import("./export.ts");
  const checkpoint = await loadCheckpoint(ckpt);
  const result = await exportWeb(checkpoint, outDir, classNamesOf(checkpoint.state.train));
  const sizes = Object.entries(result.files).map(([name, bytes]) =>
    `${name} ${(bytes / 1e6).toFixed(2)} MB`
  );
  console.error(`exported the ${result.kind} model to ${outDir}: ${sizes.join(", ")}`);
  return 0;
}
