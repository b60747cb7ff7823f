import assert from "node:assert/strict";
import { decodeGif, encodeGif, writeGif } from "../../src/io/gif.ts";
import { readNpy } from "../../src/io/npy.ts";
import { makeGrid } from "../../src/io/png.ts";
import { type DecodedImage, decodeImageFile, listImageFiles } from "../../src/io/image.ts";
import { jpegDecoder } from "../../src/io/jpeg.ts";
import { md5Hex } from "../../src/io/md5.ts";

const fixture = (name: string) => new URL(`../fixtures/io/${name}`, import.meta.url).pathname;
// The shared data sits beside the repository (CI keeps a copy of shared/ next to the clone).
const cifarDir = new URL("../../../shared/data/cifar10-jpg/", import.meta.url).pathname;
const hasCifar = await Deno.stat(cifarDir).then((s) => s.isDirectory, () => false);
if (!hasCifar) console.error(`gif_test: the CIFAR-10 grid test is skipped: ${cifarDir} is absent`);

function frame(width: number, height: number, fill: (i: number) => number) {
  return {
    width,
    height,
    channels: 3 as const,
    data: new Uint8Array(width * height * 3).map((_, i) => fill(i)),
  };
}

Deno.test("encodeGif() round-trips frames of at most 256 colours exactly and loops", () => {
  const a = frame(3, 2, (i) => [0, 85, 255][i % 3]);
  const b = frame(3, 2, (i) => [51, 128, 103][i % 3]);
  const bytes = encodeGif([a, b, a], { delayMs: 250 });
  assert.equal(new TextDecoder().decode(bytes.subarray(0, 6)), "GIF89a");
  assert.ok(new TextDecoder().decode(bytes).includes("NETSCAPE2.0"), "looping extension");
  const back = decodeGif(bytes);
  assert.equal(back.length, 3);
  assert.deepEqual(back[0], a);
  assert.deepEqual(back[1], b);
  assert.deepEqual(back[2], a);
});

/**
 * A deterministic stand-in for a preview grid of generated samples: `n` 32x32 tiles, each a
 * gradient from a random colour to a nearby one (channels move by up to `spread` / 2) with a
 * soft blob of a third nearby colour and +-2 levels of noise.
 */
function sampleGrid(seed: number, n: number, spread: number) {
  let state = seed >>> 0;
  const random = () => { // mulberry32
    state = (state + 0x6d2b79f5) >>> 0;
    let t = Math.imul(state ^ (state >>> 15), state | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
  const near = (v: number) => Math.max(0, Math.min(255, v + (random() - 0.5) * spread));
  const tiles = Array.from({ length: n }, () => {
    const from = [0, 1, 2].map(() => random() * 255);
    const to = from.map(near);
    const blob = from.map(near);
    const [angle, bx, by, radius] = [
      random() * 6.3,
      random() * 32,
      random() * 32,
      4 + random() * 8,
    ];
    return new Uint8Array(32 * 32 * 3).map((_, i) => {
      const [p, c] = [Math.floor(i / 3), i % 3];
      const [x, y] = [p % 32, Math.floor(p / 32)];
      const along = ((x - 16) * Math.cos(angle) + (y - 16) * Math.sin(angle)) / 32;
      const t = Math.min(1, Math.max(0, 0.5 + along));
      const g = Math.exp(-((x - bx) ** 2 + (y - by) ** 2) / (2 * radius * radius));
      const v = (from[c] * (1 - t) + to[c] * t) * (1 - g) + blob[c] * g + (random() - 0.5) * 4;
      return Math.max(0, Math.min(255, Math.round(v)));
    });
  });
  return makeGrid(tiles.map((data) => ({ width: 32, height: 32, channels: 3 as const, data })));
}

function meanAbsoluteError(a: Uint8Array, b: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += Math.abs(a[i] - b[i]);
  return sum / a.length;
}

function distinctColours(img: DecodedImage): number {
  const set = new Set<number>();
  for (let i = 0; i < img.data.length; i += 3) {
    set.add((img.data[i] << 16) | (img.data[i + 1] << 8) | img.data[i + 2]);
  }
  return set.size;
}

Deno.test("encodeGif() keeps gradient sample grids of 16 within 1.15 levels of each PNG frame", () => {
  // Three frames with unrelated colours: one palette for all of them could not do this.
  const frames = [sampleGrid(1, 16, 100), sampleGrid(2, 16, 100), sampleGrid(3, 16, 100)];
  for (const f of frames) assert.ok(distinctColours(f) > 5000, "quantization must do work");
  const back = decodeGif(encodeGif(frames, { delayMs: 400 }));
  assert.equal(back.length, 3);
  // Measured: 1.090, 1.126, 1.069 (median cut + 6 k-means rounds, before: 1.226, 1.229, 1.189).
  for (let k = 0; k < 3; k++) {
    const error = meanAbsoluteError(back[k].data, frames[k].data);
    assert.ok(error <= 1.15, `frame ${k}: mean absolute error ${error.toFixed(3)} levels`);
  }
});

Deno.test("encodeGif() keeps a gradient sample grid of 64 within 2.35 levels", () => {
  // 64 unrelated gradients need more than 256 colours: measured 2.294 (before: 2.495).
  const grid = sampleGrid(1, 64, 100);
  const [back] = decodeGif(encodeGif([grid], { delayMs: 400 }));
  const error = meanAbsoluteError(back.data, grid.data);
  assert.ok(error <= 2.35, `mean absolute error ${error.toFixed(3)} levels`);
});

Deno.test({
  name: "encodeGif() keeps a grid of 64 CIFAR-10 photos within 3.45 levels, below PIL's quantizers",
  ignore: !hasCifar,
  fn: async () => {
    const files: string[] = [];
    for (const label of ["cat", "ship", "frog", "truck"]) {
      files.push(...(await listImageFiles(`${cifarDir}test/${label}`)).slice(0, 16));
    }
    const grid = makeGrid(await Promise.all(files.map((f) => decodeImageFile(f))));
    const [back] = decodeGif(encodeGif([grid], { delayMs: 400 }));
    // 64 unrelated photos hold ~51,000 colours. Measured: 3.409 (before: 3.513). 256 colours
    // cannot reach 2: far slower searches find 3.33-3.38; 2 takes ~1,100 colours.
    const error = meanAbsoluteError(back.data, grid.data);
    assert.ok(error <= 3.45, `mean absolute error ${error.toFixed(3)} levels`);
    // PIL's errors on the same pixels (make_quantize_fixtures.py): the grid has PIL's bytes when
    // the JPEGs are decoded with libjpeg-turbo, as PIL decodes them; jpeg-js differs slightly.
    if (jpegDecoder().name !== "libjpeg-turbo") {
      console.error("gif_test: no libjpeg-turbo: the comparison with PIL's quantizers is skipped");
      return;
    }
    const reference = JSON.parse(await Deno.readTextFile(fixture("quantize_pil.json"))).cifar64;
    assert.equal(md5Hex(grid.data), reference.md5, "the grid PIL was measured on");
    for (const [method, pil] of Object.entries(reference.pil as Record<string, number>)) {
      assert.ok(error < pil, `ours ${error.toFixed(3)} levels, PIL ${method} ${pil.toFixed(3)}`);
    }
  },
});

Deno.test("decodeGif() reads an animated GIF written by PIL", async () => {
  const frames = decodeGif(await Deno.readFile(fixture("two_frames.gif")));
  const want = await readNpy(fixture("two_frames.npy")); // [2, 4, 6, 3]
  assert.equal(frames.length, 2);
  assert.deepEqual([...frames[0].data, ...frames[1].data], [...want.data]);
});

Deno.test("decodeGif() and encodeGif() reject bad input clearly", async () => {
  const good = encodeGif([frame(4, 4, () => 0)], { delayMs: 10 });
  assert.throws(() => decodeGif(new Uint8Array(10), "x.gif"), /x.gif: not a valid GIF/);
  assert.throws(() => decodeGif(good.subarray(0, 20), "cut.gif"), /cut.gif/);
  assert.throws(() => encodeGif([], { delayMs: 10 }), /no frames/);
  assert.throws(
    () => encodeGif([frame(2, 2, () => 0), frame(3, 2, () => 0)], { delayMs: 1 }),
    /frame 1 is 3x2/,
  );
  const dir = await Deno.makeTempDir();
  try {
    await writeGif(`${dir}/p.gif`, [frame(2, 2, () => 255)], { delayMs: 500 });
    assert.equal(decodeGif(await Deno.readFile(`${dir}/p.gif`)).length, 1);
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["p.gif"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
