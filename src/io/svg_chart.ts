/**
 * Line charts as standalone SVG text (no dependencies, no scripts), for reports that must
 * stand on their own: e.g. a study's loss curves next to its report.md.
 *
 * @module
 */

/** One line: y against x; non-finite points are left out (the line breaks there). */
export interface ChartSeries {
  name: string;
  x: ArrayLike<number>;
  y: ArrayLike<number>;
}

/** Options of {@link lineChartSvg}. */
export interface ChartOptions {
  title?: string;
  xLabel?: string;
  /** Pixels (default 480 x 260). */
  width?: number;
  height?: number;
  /** A log10 y axis (for losses spanning decades); non-positive values are left out. */
  logY?: boolean;
}

const COLORS = ["#2f6fdb", "#d9480f", "#2b8a3e", "#862e9c", "#c2255c", "#0b7285"];
const MARGIN = { left: 56, right: 14, top: 30, bottom: 40 };

const escapeXml = (s: string) =>
  s.replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;" })[c]!,
  );

/**
 * Up to about `count` round tick values covering [lo, hi] (steps of 1, 2 or 5 x 10^k).
 *
 * @example
 * ```ts
 * import { niceTicks } from "./svg_chart.ts";
 * console.log(niceTicks(0, 1, 5)); // [0, 0.2, 0.4, 0.6, 0.8, 1]
 * ```
 */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw)!;
  const ticks: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) {
    ticks.push(Number((Math.round(v / step) * step).toPrecision(12)));
  }
  return ticks;
}

function label(v: number): string {
  if (v === 0) return "0";
  const a = Math.abs(v);
  return a >= 1e4 || a < 1e-3 ? v.toExponential(1) : String(Number(v.toPrecision(4)));
}

/**
 * An SVG line chart of `series` (one colour each, a legend when there are several).
 *
 * @example
 * ```ts
 * import { lineChartSvg } from "./svg_chart.ts";
 * const svg = lineChartSvg([{ name: "loss", x: [1, 2, 3], y: [1, 0.5, 0.4] }], { title: "loss" });
 * await Deno.writeTextFile("/tmp/loss.svg", svg);
 * ```
 */
export function lineChartSvg(series: readonly ChartSeries[], options: ChartOptions = {}): string {
  const width = options.width ?? 480;
  const height = options.height ?? 260;
  const logY = options.logY ?? false;
  const ty = (y: number) => (logY ? Math.log10(y) : y);
  const points = series.map((s) => {
    const out: [number, number][] = [];
    for (let i = 0; i < Math.min(s.x.length, s.y.length); i++) {
      const [x, y] = [s.x[i], s.y[i]];
      if (Number.isFinite(x) && Number.isFinite(y) && (!logY || y > 0)) out.push([x, ty(y)]);
    }
    return out;
  });
  const all = points.flat();
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" ` +
    `viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="${width}" height="${height}" fill="#fff"/>`,
  ];
  if (options.title) {
    parts.push(
      `<text x="${MARGIN.left}" y="18" font-size="13" font-weight="bold">${
        escapeXml(options.title)
      }</text>`,
    );
  }
  if (all.length === 0) {
    parts.push(
      `<text x="${width / 2}" y="${height / 2}" text-anchor="middle" fill="#666">no data</text>`,
      "</svg>",
    );
    return parts.join("\n") + "\n";
  }
  let [x0, x1] = [Math.min(...all.map((p) => p[0])), Math.max(...all.map((p) => p[0]))];
  let [y0, y1] = [Math.min(...all.map((p) => p[1])), Math.max(...all.map((p) => p[1]))];
  if (x1 === x0) [x0, x1] = [x0 - 1, x1 + 1];
  if (y1 === y0) [y0, y1] = [y0 - 1, y1 + 1];
  const pad = (y1 - y0) * 0.05;
  [y0, y1] = [y0 - pad, y1 + pad];
  const plotW = width - MARGIN.left - MARGIN.right;
  const plotH = height - MARGIN.top - MARGIN.bottom;
  const px = (x: number) => MARGIN.left + ((x - x0) / (x1 - x0)) * plotW;
  const py = (y: number) => MARGIN.top + (1 - (y - y0) / (y1 - y0)) * plotH;
  const r = (v: number) => v.toFixed(1);
  parts.push(
    `<rect x="${MARGIN.left}" y="${MARGIN.top}" width="${plotW}" height="${plotH}" ` +
      `fill="none" stroke="#ccc"/>`,
  );
  for (const t of niceTicks(x0, x1)) {
    parts.push(
      `<line x1="${r(px(t))}" x2="${r(px(t))}" y1="${MARGIN.top}" y2="${
        MARGIN.top + plotH
      }" stroke="#eee"/>`,
      `<text x="${r(px(t))}" y="${MARGIN.top + plotH + 14}" text-anchor="middle">${
        label(t)
      }</text>`,
    );
  }
  for (const t of niceTicks(y0, y1)) {
    const text = logY ? label(10 ** t) : label(t);
    parts.push(
      `<line x1="${MARGIN.left}" x2="${MARGIN.left + plotW}" y1="${r(py(t))}" y2="${
        r(py(t))
      }" stroke="#eee"/>`,
      `<text x="${MARGIN.left - 4}" y="${r(py(t) + 4)}" text-anchor="end">${text}</text>`,
    );
  }
  if (options.xLabel) {
    parts.push(
      `<text x="${MARGIN.left + plotW / 2}" y="${height - 6}" text-anchor="middle" fill="#444">${
        escapeXml(options.xLabel)
      }</text>`,
    );
  }
  points.forEach((pts, i) => {
    if (pts.length === 0) return;
    const color = COLORS[i % COLORS.length];
    const path = pts.map(([x, y]) => `${r(px(x))},${r(py(y))}`).join(" ");
    parts.push(
      `<polyline fill="none" stroke="${color}" stroke-width="1.5" points="${path}"/>`,
    );
    if (series.length > 1) {
      // Legend in the title row, right-aligned, so it never covers the lines.
      const lx = width - MARGIN.right - (series.length - i) * 96;
      parts.push(
        `<line x1="${lx}" x2="${lx + 16}" y1="14" y2="14" stroke="${color}" stroke-width="2"/>`,
        `<text x="${lx + 20}" y="18">${escapeXml(series[i].name)}</text>`,
      );
    }
  });
  parts.push("</svg>");
  return parts.join("\n") + "\n";
}
