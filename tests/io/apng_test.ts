import assert from "node:assert/strict";
import { encodeApng, writeApng } from "../../src/io/apng.ts";
import { type DecodedImage, decodeImageFile, listImageFiles } from "../../src/io/image.ts";
import { md5Hex } from "../../src/io/md5.ts";
import { makeGrid } from "../../src/io/png.ts";
import { assertSamePixels, readApng } from "./_apng_reader.ts";
import { FIXTURE_DELAY_MS, fixtureFrames } from "../fixtures/write_apng_fixture.ts";

const fixture = (name: string) => new URL(`../fixtures/io/${name}`, import.meta.url).pathname;
// The shared data sits beside the repository (CI keeps a copy of shared/ next to the clone).
const cifarDir = new URL("../../../shared/data/cifar10-jpg/", import.meta.url).pathname;
const hasCifar = await Deno.stat(cifarDir).then((s) => s.isDirectory, () => false);
if (!hasCifar) console.error(`apng_test: the CIFAR-10 grid test is skipped: ${cifarDir} is absent`);

function gradientGrid(seed: number, n: number): DecodedImage {
  const tiles = Array.from({ length: n }, (_, t) =>
    new Uint8Array(32 * 32 * 3).map((_, i) => {
      const [p, c] = [Math.floor(i / 3), i % 3];
      const [x, y] = [p % 32, Math.floor(p / 32)];
      return (x * (3 + c) + y * (seed + t) * 2 + c * 40 + ((i * 2654435761) >>> 29)) & 0xff;
    }));
  return makeGrid(tiles.map((data) => ({ width: 32, height: 32, channels: 3 as const, data })));
}

Deno.test("encodeApng() writes valid chunks: CRCs, acTL count, fcTL sizes and delays, sequence from 0", () => {
  const frames = [gradientGrid(1, 4), gradientGrid(2, 4), gradientGrid(3, 4)];
  const apng = readApng(encodeApng(frames, { delayMs: 400 }));
  assert.deepEqual([apng.width, apng.height], [frames[0].width, frames[0].height]);
  assert.equal(apng.plays, 0, "loops forever by default");
  assert.deepEqual(apng.frames.map((f) => f.delayMs), [400, 400, 400]);
  const once = readApng(encodeApng(frames.slice(0, 1), { delayMs: 33.4, loop: false }));
  assert.equal(once.plays, 1);
  assert.deepEqual(once.frames.map((f) => f.delayMs), [33]);
});

Deno.test("encodeApng() keeps every pixel of gradient grids (mean absolute error 0)", () => {
  const frames = [gradientGrid(1, 16), gradientGrid(5, 16)];
  const apng = readApng(encodeApng(frames, { delayMs: 400 }));
  apng.frames.forEach((f, k) => assertSamePixels(f.data, frames[k].data, `frame ${k}`));
  const big = gradientGrid(9, 64);
  const one = readApng(encodeApng([big], { delayMs: 1 }));
  assertSamePixels(one.frames[0].data, big.data, "64-tile grid");
  const fixed = readApng(encodeApng(fixtureFrames(), { delayMs: 1 }));
  fixed.frames.forEach((f, k) => assertSamePixels(f.data, fixtureFrames()[k].data, `fixture ${k}`));
  const filters = new Set([...apng.filters, ...one.filters, ...fixed.filters]);
  assert.deepEqual([...filters].sort(), [0, 1, 2, 3, 4], "all five filters are exercised");
});

Deno.test({
  name: "encodeApng() keeps every pixel of grids of 64 CIFAR-10 photos",
  ignore: !hasCifar,
  fn: async () => {
    const grids: DecodedImage[] = [];
    for (const labels of [["cat", "ship", "frog", "truck"], ["dog", "bird", "horse", "ship"]]) {
      const files: string[] = [];
      for (const label of labels) {
        files.push(...(await listImageFiles(`${cifarDir}test/${label}`)).slice(0, 16));
      }
      grids.push(makeGrid(await Promise.all(files.map((f) => decodeImageFile(f)))));
    }
    const bytes = encodeApng(grids, { delayMs: 400 });
    const apng = readApng(bytes);
    assert.equal(apng.frames.length, 2);
    apng.frames.forEach((f, k) => assertSamePixels(f.data, grids[k].data, `CIFAR grid ${k}`));
    // Filtering must pay: both frames well under their raw size (2 x 274 x 274 x 3 bytes).
    assert.ok(bytes.length < 0.8 * 2 * grids[0].data.length, `${bytes.length} bytes`);
  },
});

Deno.test("PIL reads our APNG as the input frames: count, loop, durations, pixel md5s", async () => {
  const pil = JSON.parse(await Deno.readTextFile(fixture("three_frames_apng.json")));
  const frames = fixtureFrames();
  assert.deepEqual([pil.format, pil.mode, pil.is_animated, pil.loop], ["PNG", "RGB", true, 0]);
  assert.deepEqual(pil.size, [frames[0].width, frames[0].height]);
  assert.equal(pil.n_frames, frames.length);
  assert.deepEqual(
    pil.frames.map((f: { md5: string }) => f.md5),
    frames.map((f) => md5Hex(f.data)),
  );
  assert.deepEqual(
    pil.frames.map((f: { duration: number }) => f.duration),
    frames.map(() => FIXTURE_DELAY_MS),
  );
  // The committed file PIL read is what the encoder writes today, chunk for chunk up to zlib's
  // choices inside the streams: the same structure and the same pixels.
  const committed = readApng(await Deno.readFile(fixture("three_frames_apng.png")));
  const today = readApng(encodeApng(frames, { delayMs: FIXTURE_DELAY_MS }));
  assert.deepEqual(today, committed);
});

Deno.test("encodeApng() and writeApng() refuse bad input clearly and leave no file", async () => {
  const frame = (w: number, h: number) => ({
    width: w,
    height: h,
    channels: 3 as const,
    data: new Uint8Array(w * h * 3),
  });
  assert.throws(() => encodeApng([], { delayMs: 400 }), /encodeApng: no frames/);
  assert.throws(
    () => encodeApng([frame(2, 2), frame(3, 2)], { delayMs: 400 }),
    /frame 1 is 3x2, expected 2x2/,
  );
  assert.throws(
    () => encodeApng([{ ...frame(2, 2), data: new Uint8Array(5) }], { delayMs: 400 }),
    /frame 0 \(2x2 RGB\) needs 12 bytes, got 5/,
  );
  assert.throws(
    () => encodeApng([{ ...frame(1, 1), width: 2 ** 31 }], { delayMs: 400 }),
    /too large for PNG/,
  );
  assert.throws(
    () => encodeApng([frame(8, 8), frame(8, 8)], { delayMs: 400, maxPixels: 100 }),
    /2 frames of 8x8 = 128 pixels in all, above the cap of 100/,
  );
  assert.throws(() => encodeApng([frame(0, 2)], { delayMs: 400 }), /not a positive image size/);
  assert.throws(() => encodeApng([frame(1, 1)], { delayMs: 70000 }), /delayMs must be 0 to 65535/);
  assert.throws(() => encodeApng([frame(1, 1)], { delayMs: NaN }), /delayMs/);
  const dir = await Deno.makeTempDir();
  try {
    await assert.rejects(
      () => writeApng(`${dir}/p.png`, [frame(2, 2), frame(2, 3)], { delayMs: 400 }),
      /frame 1 is 2x3/,
    );
    assert.deepEqual([...Deno.readDirSync(dir)], [], "nothing written");
    await writeApng(`${dir}/p.png`, [frame(2, 2)], { delayMs: 400 });
    assert.equal(readApng(await Deno.readFile(`${dir}/p.png`)).frames.length, 1);
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["p.png"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
