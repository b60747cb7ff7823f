/**
 * Side-by-side speed against PyTorch eager on the same machine, in the same run:
 *
 *     deno task bench:compare [--json] [--workloads a,b] [--reps N] [--backends torch-cpu,tfjs-wasm]
 *
 * For each workload (bench/workloads.ts) it starts the PyTorch peer (bench/reference/peer.py,
 * driven over JSON lines on stdin/stdout), checks that both sides count the same parameters,
 * gives both the same thread count, warms both up, then alternates one peer run and one of ours
 * per repetition and reports medians: images/s of each side and ours/PyTorch. The table goes
 * to stdout (stderr with --json), one JSON line per workload and backend to stdout:
 * `{"workload","backend","ours_ips","peer_ips","ratio", ...}`.
 *
 * tfjs-wasm on the big workloads is slow, so it runs those `--slow-reps` times (default 1)
 * without warm-up; the table's "runs" column says warm-up + timed runs of each row. A workload
 * that fails on one of our backends is reported as failed and the others still run.
 *
 * @module
 */
import { parseArgs } from "node:util";
import type { Backend } from "../src/backend/backend.ts";
import { type BackendName, createBackend, isBackendName } from "../src/backend/select.ts";
import { createWorkload, parseWorkloads, type WorkloadName, WORKLOADS } from "./workloads.ts";

/** One row of the result. */
export interface CompareRow {
  workload: WorkloadName;
  backend: string;
  /** Null when our side failed (see `error`). */
  ours_ips: number | null;
  peer_ips: number | null;
  /** ours_ips / peer_ips: above 1 means we are faster. */
  ratio: number | null;
  reps: number;
  warmup: number;
  ours_seconds: number[];
  peer_seconds: number[];
  device: string;
  threads: number;
  autocast: string;
  torch: string;
  /** Why the row has no numbers. */
  error?: string;
}

interface PeerReply {
  ok: boolean;
  error?: string;
  [key: string]: unknown;
}

/** The PyTorch peer process: one JSON request per line, one JSON reply per line. */
class Peer {
  readonly #child: Deno.ChildProcess;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #lines: AsyncIterator<string>;

  constructor(python: string) {
    const script = new URL("./reference/peer.py", import.meta.url).pathname;
    this.#child = new Deno.Command(python, {
      args: [script, "serve"],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    this.#writer = this.#child.stdin.getWriter();
    this.#lines = this.#child.stdout
      .pipeThrough(new TextDecoderStream())
      .pipeThrough(splitLines())[Symbol.asyncIterator]();
  }

  async request(message: Record<string, unknown>): Promise<PeerReply> {
    await this.#writer.write(new TextEncoder().encode(JSON.stringify(message) + "\n"));
    const next = await this.#lines.next();
    if (next.done) {
      const status = await this.#child.status;
      throw new Error(`the PyTorch peer exited (code ${status.code}) during ${message.op}`);
    }
    const reply = JSON.parse(next.value) as PeerReply;
    if (!reply.ok) throw new Error(`PyTorch peer, ${message.op}: ${reply.error}`);
    return reply;
  }

  async close(): Promise<void> {
    try {
      await this.#writer.write(new TextEncoder().encode('{"op":"quit"}\n'));
      await this.#writer.close();
    } catch {
      // already gone
    }
    await this.#child.status;
  }
}

function splitLines(): TransformStream<string, string> {
  let buffer = "";
  return new TransformStream({
    transform(chunk, controller) {
      buffer += chunk;
      const parts = buffer.split("\n");
      buffer = parts.pop()!;
      for (const line of parts) if (line.trim()) controller.enqueue(line);
    },
    flush(controller) {
      if (buffer.trim()) controller.enqueue(buffer);
    },
  });
}

/** Median of a non-empty list. */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/** Threads a backend computes with: "cpu (2 threads)" -> 2; 0 when it does not say. */
function threadsOf(backend: Backend): number {
  const m = /\((\d+) threads?\)/.exec(backend.device);
  return m ? Number(m[1]) : 0;
}

/** The Python with torch: $PEER_PYTHON, else Debian's /usr/bin/python3, else python3. */
function defaultPython(): string {
  const env = Deno.env.get("PEER_PYTHON");
  if (env) return env;
  try {
    Deno.statSync("/usr/bin/python3");
    return "/usr/bin/python3";
  } catch {
    return "python3";
  }
}

/** Workloads too slow on tfjs-wasm for many repetitions. */
const SLOW_ON_WASM = new Set<WorkloadName>([
  "train-unet-3x",
  "sample-unet-2xud-half",
  "fid-features",
]);

/** Options of {@link compare}. */
export interface CompareOptions {
  workloads: WorkloadName[];
  backends: BackendName[];
  reps: number;
  slowReps: number;
  warmup: number;
  python: string;
  /** "float32" or "bfloat16" (CUDA autocast on both sides). */
  autocast: "float32" | "bfloat16";
  /** Threads for the peer when ours does not say (CUDA). */
  threads: number;
  log: (line: string) => void;
}

/** Runs every workload on every backend against the peer; returns one row per pair. */
export async function compare(options: CompareOptions): Promise<CompareRow[]> {
  const rows: CompareRow[] = [];
  const peer = new Peer(options.python);
  try {
    for (const backendName of options.backends) {
      const backend = await createBackend(backendName);
      try {
        if (options.autocast === "bfloat16") {
          if (!backend.capabilities.autocast) {
            throw new Error(`${backendName} has no bfloat16 autocast`);
          }
          backend.setAutocast("bfloat16");
        }
        for (const name of options.workloads) {
          try {
            rows.push(await compareOne(peer, backend, name, options));
          } catch (e) {
            // One backend failing one workload (e.g. out of memory) must not hide the others.
            const error = e instanceof Error ? e.message : String(e);
            if (error.startsWith("PyTorch peer")) throw e;
            options.log(`${name} on ${backend.name} FAILED: ${error}`);
            rows.push(failedRow(name, backend, options, error));
          }
        }
      } finally {
        backend.dispose();
      }
    }
  } finally {
    await peer.close();
  }
  return rows;
}

async function compareOne(
  peer: Peer,
  backend: Backend,
  name: WorkloadName,
  options: CompareOptions,
): Promise<CompareRow> {
  // The slow ones run once, without warm-up (their first of many steps warms up the kernels).
  const slow = backend.name.startsWith("tfjs") && SLOW_ON_WASM.has(name);
  const reps = slow ? options.slowReps : options.reps;
  const warmup = slow ? 0 : options.warmup;
  const ours = createWorkload(backend, name);
  try {
    const threads = threadsOf(backend) || options.threads;
    const setup = await peer.request({
      op: "setup",
      workload: name,
      threads,
      device: backend.name === "torch-cuda" ? "cuda" : "cpu",
      autocast: options.autocast,
      params: ours.params,
    });
    options.log(
      `${name} on ${backend.name}: ${JSON.stringify(ours.params)} parameters on both sides, ` +
        `${threads || "?"} threads, ${warmup} warm-up + ${reps} reps`,
    );
    const timeOurs = () => {
      const start = performance.now();
      ours.run();
      return (performance.now() - start) / 1000;
    };
    const timePeer = async () => (await peer.request({ op: "run" })).seconds as number;
    for (let i = 0; i < warmup; i++) {
      await timePeer();
      timeOurs();
    }
    const oursSeconds: number[] = [];
    const peerSeconds: number[] = [];
    for (let i = 0; i < reps; i++) {
      // Alternate, so load from other processes hits both sides alike.
      peerSeconds.push(await timePeer());
      oursSeconds.push(timeOurs());
      options.log(
        `  rep ${i + 1}/${reps}: ours ${oursSeconds[i].toFixed(3)} s, ` +
          `PyTorch ${peerSeconds[i].toFixed(3)} s`,
      );
    }
    const oursIps = ours.images / median(oursSeconds);
    const peerIps = ours.images / median(peerSeconds);
    return {
      workload: name,
      backend: backend.name,
      ours_ips: round(oursIps),
      peer_ips: round(peerIps),
      ratio: round(oursIps / peerIps),
      reps,
      warmup,
      ours_seconds: oursSeconds.map(round),
      peer_seconds: peerSeconds.map(round),
      device: backend.device,
      threads,
      autocast: options.autocast,
      torch: String(setup.torch),
    };
  } finally {
    ours.dispose();
  }
}

function failedRow(
  name: WorkloadName,
  backend: Backend,
  options: CompareOptions,
  error: string,
): CompareRow {
  return {
    workload: name,
    backend: backend.name,
    ours_ips: null,
    peer_ips: null,
    ratio: null,
    reps: 0,
    warmup: 0,
    ours_seconds: [],
    peer_seconds: [],
    device: backend.device,
    threads: threadsOf(backend),
    autocast: options.autocast,
    torch: "",
    error,
  };
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}

/** The human-readable table. */
export function formatTable(rows: readonly CompareRow[]): string {
  const header = ["workload", "backend", "ours img/s", "PyTorch img/s", "ours/PyTorch", "runs"];
  const fixed = (x: number | null) => (x === null ? "failed" : x.toFixed(2));
  const body = rows.map((r) => [
    `${r.workload} (${WORKLOADS[r.workload]})`,
    r.backend + (r.autocast === "bfloat16" ? " bf16" : ""),
    fixed(r.ours_ips),
    fixed(r.peer_ips),
    fixed(r.ratio),
    r.error === undefined ? `${r.warmup}+${r.reps}` : "-",
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((row) => row[i].length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join("  ");
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...body.map(line)].join("\n");
}

const USAGE = `usage: deno task bench:compare [options]
  --workloads LIST   a,b,c,d or names: ${Object.keys(WORKLOADS).join(", ")} (default all)
  --backends LIST    ours to measure (default torch-cpu,tfjs-wasm)
  --reps N           timed repetitions per side, alternating (default 3)
  --slow-reps N      repetitions of the big workloads on tfjs (default 1)
  --warmup N         untimed runs per side first (default 1)
  --autocast DTYPE   float32 (default) or bfloat16 (CUDA autocast, both sides)
  --threads N        peer threads when our backend does not report them (default: all cores)
  --python PATH      Python with torch (default $PEER_PYTHON, /usr/bin/python3, python3)
  --json             only JSON lines on stdout (table and progress on stderr)`;

function positiveInt(flag: string, value: string | undefined, fallback: number, min = 1): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) {
    throw new Error(`--${flag} must be an integer >= ${min}, got "${value}"\n${USAGE}`);
  }
  return n;
}

async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      json: { type: "boolean", default: false },
      workloads: { type: "string", default: "a,b,c,d" },
      backends: { type: "string", default: "torch-cpu,tfjs-wasm" },
      reps: { type: "string" },
      "slow-reps": { type: "string" },
      warmup: { type: "string" },
      autocast: { type: "string", default: "float32" },
      threads: { type: "string" },
      python: { type: "string" },
      help: { type: "boolean", default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const backends = values.backends.split(",").map((s) => s.trim()).filter(Boolean);
  for (const b of backends) {
    if (!isBackendName(b)) throw new Error(`unknown backend "${b}"\n${USAGE}`);
  }
  if (values.autocast !== "float32" && values.autocast !== "bfloat16") {
    throw new Error(`--autocast must be float32 or bfloat16, got "${values.autocast}"`);
  }
  const out = values.json ? console.error : console.log;
  const rows = await compare({
    workloads: parseWorkloads(values.workloads),
    backends: backends as BackendName[],
    reps: positiveInt("reps", values.reps, 3),
    slowReps: positiveInt("slow-reps", values["slow-reps"], 1),
    warmup: positiveInt("warmup", values.warmup, 1, 0),
    autocast: values.autocast,
    threads: positiveInt("threads", values.threads, navigator.hardwareConcurrency ?? 1),
    python: values.python ?? defaultPython(),
    log: console.error,
  });
  out(formatTable(rows));
  const torch = rows.find((r) => r.torch)?.torch ?? "?";
  out(
    `(images/s, median of alternating runs; runs = warm-up + timed, each side; PyTorch ${torch} eager)`,
  );
  for (const r of rows) if (r.error) out(`${r.workload} on ${r.backend}: ${r.error}`);
  for (const r of rows) console.log(JSON.stringify(r));
}

if (import.meta.main) {
  try {
    await main(Deno.args);
  } catch (e) {
    console.error(`bench:compare: ${e instanceof Error ? e.message : String(e)}`);
    Deno.exit(1);
  }
}
