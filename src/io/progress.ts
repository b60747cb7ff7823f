/**
 * The one progress output of the project: a status line on stderr, redrawn in place on a
 * terminal and printed as plain lines at a slower pace when stderr is a file or pipe (so logs
 * stay readable). The trainer, the study, downloads and the Inception feature pass all draw
 * through it.
 *
 * @module
 */

/** Draws one status line; `final` forces the draw and ends the line. */
export type StatusLine = (line: string, final: boolean) => void;

/** Options of {@link statusLine}. */
export interface StatusLineOptions {
  /** Least time between redraws on a terminal. Default 100 ms. */
  terminalIntervalMs?: number;
  /** Least time between printed lines when stderr is not a terminal. Default 10 s. */
  logIntervalMs?: number;
}

/**
 * A status-line writer for stderr. Lines that come faster than the interval are dropped
 * (final lines never are).
 *
 * @example
 * ```ts
 * import { statusLine } from "./progress.ts";
 * const status = statusLine({ logIntervalMs: 30_000 });
 * status("step 10/100", false);
 * status("done", true);
 * ```
 */
export function statusLine(options: StatusLineOptions = {}): StatusLine {
  const encoder = new TextEncoder();
  let last = -Infinity;
  return (line, final) => {
    const tty = Deno.stderr.isTerminal();
    const now = performance.now();
    const interval = tty ? options.terminalIntervalMs ?? 100 : options.logIntervalMs ?? 10_000;
    if (!final && now - last < interval) return;
    last = now;
    const text = tty ? `\r\x1b[2K${line}${final ? "\n" : ""}` : `${line}\n`;
    Deno.stderr.writeSync(encoder.encode(text));
  };
}

/**
 * A counter of items with a rate and the elapsed time, drawn on a {@link statusLine}; on a
 * terminal it also draws a bar, which in a log file would only be noise.
 */
export class ProgressBar {
  readonly #start = performance.now();
  readonly #status: StatusLine;
  readonly #terminal: boolean;

  /**
   * A bar titled `label` counting up to `total` (unknown when undefined) of `unit`.
   *
   * @example
   * ```ts
   * import { ProgressBar } from "./progress.ts";
   * const bar = new ProgressBar("features", 100);
   * bar.update(50);
   * bar.finish(100);
   * ```
   */
  constructor(
    readonly label: string,
    readonly total: number | undefined,
    readonly unit = "images",
    status: StatusLine = statusLine(),
    terminal: boolean = Deno.stderr.isTerminal(),
  ) {
    this.#status = status;
    this.#terminal = terminal;
  }

  /** Redraws with `done` items finished (rate-limited unless `force`). */
  update(done: number, force = false): void {
    this.#status(this.#line(done), force);
  }

  /** Final redraw, ending the line. */
  finish(done: number): void {
    this.#status(this.#line(done), true);
  }

  #line(done: number): string {
    const seconds = (performance.now() - this.#start) / 1000;
    const rate = done / Math.max(seconds, 1e-9);
    const width = 30;
    const fraction = this.total ? Math.min(done / this.total, 1) : 0;
    const filled = Math.round(fraction * width);
    const bar = this.total && this.#terminal
      ? `[${"#".repeat(filled)}${".".repeat(width - filled)}] `
      : "";
    const count = this.total ? `${done}/${this.total}` : `${done}`;
    return `${this.label} ${bar}${count} ${this.unit}, ${rate.toFixed(1)} ${
      this.unit === "images" ? "img" : this.unit
    }/s, ${seconds.toFixed(0)} s`;
  }
}

/** Called while downloading with the bytes so far and the total (null when unknown). */
export type ByteProgress = (received: number, total: number | null) => void;

/**
 * Download progress of `name` in MiB (and percent when the size is known) on a status line.
 *
 * @example
 * ```ts
 * import { byteProgress } from "./progress.ts";
 * const progress = byteProgress("cifar-10-binary.tar.gz");
 * progress(2 ** 20, 2 ** 21);
 * progress(2 ** 21, 2 ** 21); // ends the line
 * ```
 */
export function byteProgress(name: string, status: StatusLine = statusLine()): ByteProgress {
  return (received, total) => {
    const done = total !== null && received >= total;
    const mib = (n: number) => (n / 2 ** 20).toFixed(1);
    const text = total
      ? `${mib(received)} / ${mib(total)} MiB (${Math.floor((100 * received) / total)}%)`
      : `${mib(received)} MiB`;
    status(`downloading ${name}: ${text}`, done);
  };
}
