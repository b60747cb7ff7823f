import { deepEqual, equal } from "node:assert/strict";
import { decodeGif } from "../../src/io/gif.ts";
import { readApng } from "../io/_apng_reader.ts";
import { encodePng } from "../../src/io/png.ts";
import { decodeImage, listImageFiles } from "../../src/io/image.ts";
import {
  gridPath,
  PROGRESS_DELAY_MS,
  removeLaterGrids,
  writeProgressAnimations,
} from "../../src/train/preview_grids.ts";

/** A 2x2 PNG of one grey level, with one pixel a colour a GIF palette need not keep. */
function solid(level: number): Uint8Array {
  const data = new Uint8Array(12).fill(level);
  data.set([level ^ 1, 255 - level, 7], 9);
  return encodePng({ width: 2, height: 2, channels: 3, data });
}

Deno.test("gridPath() names an epoch's grid by epoch and a mid-epoch grid by step", () => {
  equal(gridPath("r", 30, 10), "r/samples/epoch-0003.png");
  equal(gridPath("r", 35, 10), "r/samples/step-00000035.png");
  equal(gridPath("r", 7, 1), "r/samples/epoch-0007.png");
});

Deno.test("writeProgressAnimations() orders epoch and mid-epoch grids by the step they show", async () => {
  const run = await Deno.makeTempDir({ prefix: "dd-preview-" });
  try {
    await Deno.mkdir(`${run}/samples`);
    // Steps 10, 15, 20 at 10 steps per epoch; the names alone would sort step-* last.
    await Deno.writeFile(`${run}/samples/epoch-0002.png`, solid(200));
    await Deno.writeFile(`${run}/samples/step-00000015.png`, solid(100));
    await Deno.writeFile(`${run}/samples/epoch-0001.png`, solid(50));
    await Deno.writeFile(`${run}/samples/other.png`, solid(0)); // not a grid: left out
    await writeProgressAnimations(run, 10);
    const frames = decodeGif(await Deno.readFile(`${run}/progress.gif`));
    deepEqual(frames.map((f) => f.data[0]), [50, 100, 200]);
    // progress.png: the same frames in the same order, each the grid's pixels exactly.
    const apng = readApng(await Deno.readFile(`${run}/progress.png`));
    const grids = ["epoch-0001", "step-00000015", "epoch-0002"].map((n) =>
      decodeImage(Deno.readFileSync(`${run}/samples/${n}.png`)).data
    );
    deepEqual(apng.frames.map((f) => f.data), grids);
    deepEqual(apng.frames.map((f) => f.delayMs), [1, 2, 3].map(() => PROGRESS_DELAY_MS));
  } finally {
    await Deno.remove(run, { recursive: true });
  }
});

Deno.test("writeProgressAnimations() writes nothing without grids or without a samples folder", async () => {
  const run = await Deno.makeTempDir({ prefix: "dd-preview-" });
  try {
    await writeProgressAnimations(run, 10);
    await Deno.mkdir(`${run}/samples`);
    await writeProgressAnimations(run, 10);
    deepEqual([...Deno.readDirSync(run)].map((e) => e.name), ["samples"]);
  } finally {
    await Deno.remove(run, { recursive: true });
  }
});

Deno.test("removeLaterGrids() deletes only mid-epoch grids after the step", async () => {
  const dir = await Deno.makeTempDir({ prefix: "dd-preview-" });
  try {
    for (const name of ["epoch-0003.png", "step-00000015.png", "step-00000025.png"]) {
      await Deno.writeFile(`${dir}/${name}`, solid(1));
    }
    await removeLaterGrids(dir, 20);
    const left = (await listImageFiles(dir)).map((f) => f.slice(f.lastIndexOf("/") + 1)).sort();
    deepEqual(left, ["epoch-0003.png", "step-00000015.png"]);
    await removeLaterGrids(`${dir}/missing`, 0); // no folder: nothing to do
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
