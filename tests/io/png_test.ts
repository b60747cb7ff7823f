import assert from "node:assert/strict";
import { decodeImage, decodeImageFile } from "../../src/io/image.ts";
import {
  encodePng,
  makeGrid,
  toUint8Images,
  writeImageFolder,
  writeImageGrid,
} from "../../src/io/png.ts";

Deno.test("toUint8Images() maps [-1, 1] to round((x + 1) * 127.5), clamped, NCHW -> HWC", () => {
  const values = new Float32Array([-1, 0, 1, -2, 2, 0.5, NaN, -0.999]);
  // [1, 3, 1, 2]: R = (-1, 0), G = (1, -2), B = (2, 0.5); HWC: (R, G, B) of pixel 0, then 1
  const [img] = toUint8Images(values.subarray(0, 6), [1, 3, 1, 2]);
  assert.deepEqual([...img.data], [0, 255, 255, 128, 0, 191]);
  const [gray] = toUint8Images(values.subarray(6, 8), [1, 1, 1, 2]);
  assert.deepEqual([...gray.data], [0, 0, 0, 0, 0, 0]);
  assert.throws(() => toUint8Images(new Float32Array(5), [1, 3, 1, 2]), /needs 6 values/);
  assert.throws(() => toUint8Images(new Float32Array(8), [1, 4, 1, 2]), /1 or 3 channels/);
});

Deno.test("encodePng() round-trips through decodeImage()", () => {
  const data = new Uint8Array(5 * 3 * 3).map((_, i) => (i * 37) % 256);
  const img = { width: 5, height: 3, channels: 3 as const, data };
  const back = decodeImage(encodePng(img), "mem.png");
  assert.deepEqual(back, img);
  assert.throws(() => encodePng({ ...img, width: 6 }), /needs 54 bytes/);
});

Deno.test("makeGrid() lays tiles out like torchvision make_grid", () => {
  // 5 tiles of 2x1, nrow 3, padding 1 -> 3 columns x 2 rows: (3*(2+1)+1) x (2*(1+1)+1) = 10 x 5.
  const tiles = Array.from({ length: 5 }, (_, k) => ({
    width: 2,
    height: 1,
    channels: 3 as const,
    data: new Uint8Array(6).fill(10 * (k + 1)),
  }));
  const grid = makeGrid(tiles, { nrow: 3, padding: 1 });
  assert.equal(grid.width, 10);
  assert.equal(grid.height, 5);
  const at = (x: number, y: number) => grid.data[(y * grid.width + x) * 3];
  assert.equal(at(0, 0), 0);
  assert.equal(at(1, 1), 10);
  assert.equal(at(2, 1), 10);
  assert.equal(at(3, 1), 0);
  assert.equal(at(4, 1), 20);
  assert.equal(at(7, 1), 30);
  assert.equal(at(1, 3), 40);
  assert.equal(at(4, 3), 50);
  assert.equal(at(7, 3), 0); // no sixth tile
  assert.equal(makeGrid(tiles.slice(0, 2)).width, 2 * 4 + 2); // defaults nrow 8, padding 2
});

Deno.test("writeImageGrid() and writeImageFolder() write decodable PNGs atomically", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const n = 3;
    const images = new Float32Array(n * 3 * 4 * 4).map((_, i) => ((i % 7) / 3) - 1);
    await writeImageGrid(`${dir}/grid.png`, images, [n, 3, 4, 4], { nrow: 2, padding: 2 });
    const grid = await decodeImageFile(`${dir}/grid.png`);
    assert.deepEqual([grid.width, grid.height], [2 * 6 + 2, 2 * 6 + 2]);
    const tiles = toUint8Images(images, [n, 3, 4, 4]);
    assert.deepEqual(
      grid.data.subarray((2 * 14 + 2) * 3, (2 * 14 + 6) * 3),
      tiles[0].data.subarray(0, 12),
    );
    const paths = await writeImageFolder(`${dir}/samples`, images, [n, 3, 4, 4], {
      prefix: "s",
      startIndex: 7,
    });
    assert.deepEqual(paths, [7, 8, 9].map((i) => `${dir}/samples/s0000${i}.png`));
    for (let i = 0; i < n; i++) {
      assert.deepEqual((await decodeImageFile(paths[i])).data, tiles[i].data);
    }
    const names = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
    assert.deepEqual(names, ["grid.png", "samples"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
