/**
 * `cli.ts serve`: the live dashboard over a runs folder (server.ts). It lives in web/, not
 * cli/, because the CLI layer sits below web (ARCHITECTURE.md); it is as thin as a cli/ file.
 *
 * @module
 */
import { type CommandSpec, helpText, int, parseCommand, str, UsageError } from "../cli/args.ts";

const SPEC: CommandSpec = {
  name: "serve",
  summary: "Live dashboard of a runs folder: loss curves, previews, progress GIFs, studies.",
  usage: "deno run -A cli.ts serve [DIR] [--port 8000] [--host 127.0.0.1]",
  flags: {
    port: { type: "string", arg: "N", help: "port (default 8000; 0 = any free one)" },
    host: {
      type: "string",
      arg: "ADDR",
      help: "address to bind (default 127.0.0.1: this machine only)",
    },
  },
  positionals: { min: 0, max: 1 },
  details: "DIR defaults to runs/. The dashboard is read-only and serves only files inside DIR. " +
    "Binding another address than 127.0.0.1 shows your runs to the network.",
};

/** Entry point of `cli.ts serve`; runs until interrupted. */
export async function serveCommand(argv: string[]): Promise<number> {
  const parsed = parseCommand(argv, SPEC);
  if (parsed.help) {
    console.log(helpText(SPEC));
    return 0;
  }
  const root = parsed.positionals[0] ?? "runs";
  const host = str(parsed, "host") ?? "127.0.0.1";
  const port = int(parsed, "port", 0, 65535) ?? 8000;
  const { startDashboard } = await import("./server.ts");
  let dash;
  try {
    dash = await startDashboard({ root, host, port });
  } catch (e) {
    if (e instanceof Deno.errors.AddrInUse) {
      throw new UsageError(`port ${port} is in use: pass --port N (or --port 0 for any free one)`);
    }
    throw e;
  }
  if (host !== "127.0.0.1" && host !== "localhost" && host !== "::1") {
    console.error(`warning: listening on ${host}: anyone who can reach it can read ${root}`);
  }
  console.error(`serving ${dash.root} at ${dash.url} (Ctrl-C to stop)`);
  const stop = Promise.withResolvers<void>();
  Deno.addSignalListener("SIGINT", () => stop.resolve());
  await stop.promise;
  await dash.shutdown();
  return 0;
}
