import assert from "node:assert/strict";
import { decodeImage } from "../../src/io/image.ts";
import { writeImageGrid } from "../../src/io/png.ts";
import { curvesSvg, writeReportFigures } from "../../src/study/figures.ts";
import type { StudyRun } from "../../src/study/entry.ts";

Deno.test("curvesSvg draws every loss of a log (GAN: lossD and lossG) and nothing without one", () => {
  const gan = curvesSvg("GAN", [
    { step: 1, lossD: 1.3, lossG: 0.7, dReal: 0.5 },
    { step: 2, lossD: 1.2, lossG: 0.8, dReal: 0.6 },
  ])!;
  assert.equal(gan.match(/<polyline/g)?.length, 2);
  assert.match(gan, />lossD<[\s\S]*>lossG</);
  assert.equal(curvesSvg("none", [{ step: 1, gradNorm: 2 }]), null);
  assert.equal(curvesSvg("empty", []), null);
});

Deno.test("writeReportFigures writes loss curves and a strip of each sample grid's first row", async () => {
  const out = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${out}/entries/a`, { recursive: true });
    await Deno.writeTextFile(
      `${out}/entries/a/log.jsonl`,
      [1, 2, 3].map((step) => JSON.stringify({ step, loss: 1 / step })).join("\n") + "\n",
    );
    const images = new Float32Array(16 * 3 * 32 * 32).map((_, i) => ((i % 7) - 3) / 3);
    await writeImageGrid(`${out}/entries/a/samples.png`, images, [16, 3, 32, 32], { nrow: 8 });
    const run = {
      plan: { name: "t", title: "T", entries: [{ id: "a", table: "Diffusion", config: {} }] },
      results: [{ id: "a", label: "Entry A", files: { grid: "entries/a/samples.png" } }],
    } as unknown as StudyRun;
    const figures = await writeReportFigures(run, out);
    assert.deepEqual(figures, {
      curves: { a: "entries/a/curves.svg" },
      strip: "samples-strip.svg",
    });
    const curves = await Deno.readTextFile(`${out}/entries/a/curves.svg`);
    assert.equal(curves.match(/points="([^"]*)"/)![1].split(" ").length, 3);
    const strip = await Deno.readTextFile(`${out}/samples-strip.svg`);
    assert.match(strip, />Entry A</);
    const b64 = /href="data:image\/png;base64,([^"]+)"/.exec(strip)![1];
    const row = decodeImage(Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)));
    // The grid is 8 x 2 tiles of 32 px with 2 px padding: its first row is 274 x 36.
    assert.deepEqual([row.width, row.height], [274, 36]);
    const grid = decodeImage(await Deno.readFile(`${out}/entries/a/samples.png`));
    assert.deepEqual(row.data, grid.data.subarray(0, 274 * 36 * 3));
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});
