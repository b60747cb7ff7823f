/**
 * Figures that make a study's report.md stand on its own: each trained entry's training curves
 * (`entries/<id>/curves.svg`, from its log.jsonl) and one strip with the first row of every
 * entry's sample grid (`samples-strip.svg`, the images embedded), so the report shows what
 * the dashboard shows without a server.
 *
 * @module
 */
import { writeFileAtomic } from "../io/atomic.ts";
import { decodeImageFile } from "../io/image.ts";
import { encodePng } from "../io/png.ts";
import { lineChartSvg } from "../io/svg_chart.ts";
import type { StudyRun } from "./entry.ts";

/** Figures written for a report: paths relative to the run folder. */
export interface ReportFigures {
  /** Entry id -> its curves. */
  curves: Record<string, string>;
  /** The samples strip, when some entry has a sample grid. */
  strip?: string;
}

/** Padding and tile size of the grids the study writes (png.ts's makeGrid defaults). */
const GRID_PADDING = 2;
const STRIP_SCALE = 2;

async function readLog(path: string): Promise<Record<string, number>[]> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch {
    return [];
  }
  const lines: Record<string, number>[] = [];
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    try {
      lines.push(JSON.parse(line));
    } catch {
      // a line being written or corrupt: left out
    }
  }
  return lines;
}

/** The training-curves SVG of one log: losses in one chart's series (GAN: lossD, lossG). */
export function curvesSvg(title: string, log: Record<string, number>[]): string | null {
  const keys = [...new Set(log.flatMap((l) => Object.keys(l)))].filter((k) => /^loss/i.test(k));
  if (log.length === 0 || keys.length === 0) return null;
  const x = log.map((l) => l.step);
  return lineChartSvg(keys.map((k) => ({ name: k, x, y: log.map((l) => l[k] ?? NaN) })), {
    title,
    xLabel: "step",
  });
}

function base64(bytes: Uint8Array): string {
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(text);
}

const escapeXml = (s: string) =>
  s.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]!);

/**
 * Writes the figures of `run` into `outDir` and says which exist. Entries without a log or a
 * grid are skipped; nothing here can fail the report (unreadable files are left out).
 *
 * @example
 * ```ts ignore
 * const figures = await writeReportFigures(run, "runs/study");
 * ```
 */
export async function writeReportFigures(run: StudyRun, outDir: string): Promise<ReportFigures> {
  const figures: ReportFigures = { curves: {} };
  const rows: { label: string; width: number; height: number; png: Uint8Array }[] = [];
  for (const result of run.results) {
    const dir = `entries/${result.id}`;
    const svg = curvesSvg(result.label, await readLog(`${outDir}/${dir}/log.jsonl`));
    if (svg) {
      await writeFileAtomic(`${outDir}/${dir}/curves.svg`, svg);
      figures.curves[result.id] = `${dir}/curves.svg`;
    }
    if (!result.files.grid) continue;
    try {
      const grid = await decodeImageFile(`${outDir}/${result.files.grid}`);
      // The first row of tiles with its padding (the study's images are imageSize, 32 by default).
      const entry = run.plan.entries.find((e) => e.id === result.id);
      const config = entry && entry.kind !== "floor" ? entry.config : undefined;
      const tile = Number(config?.imageSize ?? 32);
      const height = Math.min(grid.height, tile + 2 * GRID_PADDING);
      const data = grid.data.subarray(0, grid.width * height * 3);
      const png = encodePng({ width: grid.width, height, channels: 3, data });
      rows.push({ label: result.label, width: grid.width, height, png });
    } catch {
      // no readable grid: this entry has no row
    }
  }
  if (rows.length) {
    const labelWidth = 180;
    const width = labelWidth + Math.max(...rows.map((r) => r.width)) * STRIP_SCALE + 10;
    let y = 8;
    const body: string[] = [];
    for (const row of rows) {
      const h = row.height * STRIP_SCALE;
      body.push(
        `<text x="8" y="${y + h / 2 + 4}">${escapeXml(row.label)}</text>`,
        `<image x="${labelWidth}" y="${y}" width="${row.width * STRIP_SCALE}" height="${h}" ` +
          `style="image-rendering:pixelated" href="data:image/png;base64,${base64(row.png)}"/>`,
      );
      y += h + 8;
    }
    const svg = [
      `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${y}" ` +
      `viewBox="0 0 ${width} ${y}" font-family="sans-serif" font-size="12">`,
      `<rect width="${width}" height="${y}" fill="#fff"/>`,
      ...body,
      "</svg>",
    ].join("\n") + "\n";
    await writeFileAtomic(`${outDir}/samples-strip.svg`, svg);
    figures.strip = "samples-strip.svg";
  }
  return figures;
}
