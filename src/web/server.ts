/**
 * `cli.ts serve`: a read-only local web dashboard over a runs folder. It lists runs and studies,
 * draws loss curves with uPlot (served from Deno's npm cache, no CDN) that grow live through
 * Server-Sent Events as training appends to log.jsonl, and shows previews, the progress animation
 * (progress.png, else progress.gif), the config and a study's report.md.
 *
 * Safe by default: it binds 127.0.0.1, answers only GET and HEAD, serves only regular files
 * inside the folder (no `..`, no symlink out: see files.ts), refuses request bodies, long URLs,
 * several or impossible byte ranges and Host headers that are not this server's (DNS
 * rebinding), and sends headers that keep its pages from being framed or sniffed.
 *
 * @module
 */
import { join } from "node:path";
import { npmFile } from "./bundle.ts";
import { fileResponse, realRoot, RefusedError, resolveInside } from "./files.ts";
import { renderMarkdown } from "./markdown.ts";
import { readLogFrom, scanRoot, summarizeRun } from "./runs.ts";
import { dashboardHtml } from "./dashboard/html.ts";

/** Options of {@link startDashboard}. */
export interface DashboardOptions {
  /** The runs folder to serve. */
  root: string;
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 8000; 0 picks a free port. */
  port?: number;
  /** How often an event stream checks its log for new lines (ms, default 500). */
  pollMs?: number;
}

/** A running dashboard. */
export interface Dashboard {
  url: string;
  root: string;
  shutdown(): Promise<void>;
}

const MAX_URL = 4096;

const SECURITY_HEADERS = {
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "referrer-policy": "no-referrer",
  "content-security-policy":
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
};

function json(value: unknown, status = 200): Response {
  return new Response(JSON.stringify(value), {
    status,
    headers: { "content-type": "application/json; charset=utf-8", "cache-control": "no-cache" },
  });
}

function asset(body: Uint8Array<ArrayBuffer> | string, type: string): Response {
  return new Response(body, { headers: { "content-type": type, "cache-control": "max-age=3600" } });
}

/** Loads the page's static assets once: uPlot from the npm cache and our client script. */
async function loadAssets(): Promise<Record<string, () => Response>> {
  const [uplot, uplotCss, client] = await Promise.all([
    npmFile("uplot/dist/uPlot.iife.min.js"),
    npmFile("uplot/dist/uPlot.min.css"),
    Deno.readFile(new URL("./dashboard/client.js", import.meta.url)),
  ]);
  return {
    "/assets/uplot.js": () => asset(uplot, "text/javascript; charset=utf-8"),
    "/assets/uplot.css": () => asset(uplotCss, "text/css; charset=utf-8"),
    "/assets/dashboard.js": () => asset(client, "text/javascript; charset=utf-8"),
  };
}

/**
 * An SSE stream of a run's new log lines: event `log` with `{lines, reset}` whenever the file
 * grows (reset: it was truncated, e.g. a new run in the folder), and `summary` every few
 * seconds.
 */
function logEvents(
  root: string,
  rel: string,
  from: number,
  pollMs: number,
  open: Set<() => void>,
): Response {
  const encoder = new TextEncoder();
  let timer: ReturnType<typeof setTimeout> | undefined;
  let offset = from;
  let ticks = 0;
  let close = () => {};
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      close = () => {
        clearTimeout(timer);
        open.delete(close);
        try {
          controller.close();
        } catch {
          // already closed
        }
      };
      open.add(close);
      const send = (event: string, data: unknown) =>
        controller.enqueue(encoder.encode(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`));
      const tick = async () => {
        try {
          const read = await readLogFrom(join(root, rel, "log.jsonl"), offset);
          if (read.truncated) offset = 0;
          if (read.lines.length || read.truncated) {
            send("log", { lines: read.lines, reset: read.truncated });
          }
          offset = read.next;
          if (ticks++ % Math.max(1, Math.round(3000 / pollMs)) === 0) {
            send("summary", await summarizeRun(root, rel));
          }
        } catch {
          // the folder is being rewritten: try again next tick
        }
        timer = setTimeout(tick, pollMs);
      };
      send("hello", { from });
      timer = setTimeout(tick, 0);
    },
    cancel() {
      clearTimeout(timer);
      open.delete(close);
    },
  });
  return new Response(body, {
    headers: { "content-type": "text/event-stream", "cache-control": "no-cache" },
  });
}

/**
 * Starts the dashboard; resolves once it listens.
 *
 * @example
 * ```ts ignore
 * const dash = await startDashboard({ root: "runs" });
 * console.log(dash.url); // http://127.0.0.1:8000/
 * await dash.shutdown();
 * ```
 */
export async function startDashboard(options: DashboardOptions): Promise<Dashboard> {
  const root = await realRoot(options.root);
  const host = options.host ?? "127.0.0.1";
  const pollMs = options.pollMs ?? 500;
  const assets = await loadAssets();
  // Event streams never end by themselves; shutdown closes them so the server can stop.
  const streams = new Set<() => void>();
  let port = options.port ?? 8000;

  const allowedHosts = () => new Set([`${host}:${port}`, `localhost:${port}`, `127.0.0.1:${port}`]);

  const route = async (req: Request): Promise<Response> => {
    if (req.url.length > MAX_URL) throw new RefusedError(414, "URL too long");
    if (req.method !== "GET" && req.method !== "HEAD") {
      throw new RefusedError(405, "read-only: only GET and HEAD");
    }
    const length = req.headers.get("content-length");
    if ((length !== null && length !== "0") || req.headers.has("transfer-encoding")) {
      throw new RefusedError(413, "requests with a body are refused");
    }
    const hostHeader = req.headers.get("host") ?? "";
    if (!allowedHosts().has(hostHeader) && host !== "0.0.0.0" && host !== "::") {
      throw new RefusedError(403, `unexpected Host ${hostHeader}`);
    }
    const url = new URL(req.url);
    let pathname: string;
    try {
      pathname = decodeURIComponent(url.pathname);
    } catch {
      throw new RefusedError(400, "malformed percent-encoding");
    }
    const param = (name: string) => {
      const value = url.searchParams.get(name) ?? "";
      if (value.length > 1024) throw new RefusedError(414, `${name} too long`);
      return value;
    };
    if (pathname === "/") {
      return new Response(dashboardHtml(), {
        headers: { "content-type": "text/html; charset=utf-8", "cache-control": "no-cache" },
      });
    }
    const fixed = assets[pathname];
    if (fixed) return fixed();
    if (pathname.startsWith("/files/")) {
      return await fileResponse(await resolveInside(root, pathname.slice(7)), req);
    }
    if (pathname === "/api/runs") return json(await scanRoot(root));
    if (pathname === "/api/run") {
      const real = await resolveInside(root, param("path"));
      const rel = real.slice(root.length + 1);
      const summary = await summarizeRun(root, rel);
      if (!summary) throw new RefusedError(404, "not a run folder");
      const log = await readLogFrom(join(real, "log.jsonl"));
      return json({ summary, log: log.lines, next: log.next });
    }
    if (pathname === "/api/events") {
      const real = await resolveInside(root, param("path"));
      const from = Number(param("from") || "0");
      if (!Number.isSafeInteger(from) || from < 0) throw new RefusedError(400, "bad from");
      return logEvents(root, real.slice(root.length + 1), from, pollMs, streams);
    }
    if (pathname === "/api/report") {
      const real = await resolveInside(root, param("path"));
      const markdown = await Deno.readTextFile(join(real, "report.md")).catch(() => {
        throw new RefusedError(404, "no report.md in that folder");
      });
      const rel = real === root ? "" : real.slice(root.length + 1);
      return json({ path: rel, html: renderMarkdown(markdown, rel) });
    }
    throw new RefusedError(404, "not found");
  };

  const server = Deno.serve({
    hostname: host,
    port,
    onListen() {},
  }, async (req) => {
    let response: Response;
    try {
      response = await route(req);
    } catch (e) {
      const status = e instanceof RefusedError ? e.status : 500;
      const message = e instanceof Error ? e.message : String(e);
      response = new Response(`${status}: ${message}\n`, {
        status,
        headers: { "content-type": "text/plain; charset=utf-8" },
      });
    }
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) response.headers.set(k, v);
    return response;
  });
  port = server.addr.port;
  const shown = host.includes(":") ? `[${host}]` : host;
  return {
    url: `http://${shown}:${port}/`,
    root,
    async shutdown() {
      for (const close of [...streams]) close();
      await server.shutdown();
    },
  };
}
