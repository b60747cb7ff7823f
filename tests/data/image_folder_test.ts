import assert from "node:assert/strict";
import {
  listClassFolders,
  loadFlatImageFolder,
  loadImageFolder,
} from "../../src/data/image_folder.ts";
import { encodePng } from "../../src/io/png.ts";

/** A w x h PNG whose pixel (x, y) is (value, x, y). */
function png(value: number, w = 3, h = 2): Uint8Array {
  const data = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) data.set([value, x, y], (y * w + x) * 3);
  }
  return encodePng({ width: w, height: h, channels: 3, data });
}

async function makeFolder(): Promise<string> {
  const root = await Deno.makeTempDir();
  // Classes created out of order: label ids must follow sorted names.
  for (
    const [cls, values] of [["zebra", [30, 31]], ["ant", [10]], ["bee", [20, 21, 22]]] as const
  ) {
    await Deno.mkdir(`${root}/train/${cls}`, { recursive: true });
    for (const v of values) await Deno.writeFile(`${root}/train/${cls}/${v}.png`, png(v));
  }
  await Deno.writeTextFile(`${root}/train/README.txt`, "not a class");
  return root;
}

Deno.test("loadImageFolder() sorts classes by name, labels by folder and stores CHW planes", async () => {
  const root = await makeFolder();
  try {
    assert.deepEqual(await listClassFolders(root, "train"), ["ant", "bee", "zebra"]);
    const all = await loadImageFolder(root, "train");
    assert.equal(all.count, 6);
    assert.deepEqual(all.imageShape, [3, 2, 3]);
    assert.deepEqual([...all.labels], [0, 1, 1, 1, 2, 2]);
    // Image 1 is bee/20.png: R plane all 20, G plane = x, B plane = y.
    assert.deepEqual([...all.images.subarray(18, 36)], [
      ...[20, 20, 20, 20, 20, 20],
      ...[0, 1, 2, 0, 1, 2],
      ...[0, 0, 0, 1, 1, 1],
    ]);
    const some = await loadImageFolder(root, "train", { keep: [1, 2], limit: 3 });
    // 3 split over 2 classes: bee gets 2 (the remainder), zebra 1.
    assert.deepEqual([...some.labels], [1, 1, 2]);
    assert.deepEqual([some.images[0], some.images[18], some.images[36]], [20, 21, 30]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("loadImageFolder() names the problem: missing split, empty class, mixed sizes", async () => {
  const root = await makeFolder();
  try {
    await assert.rejects(
      () => loadImageFolder(root, "test"),
      /test does not exist: an image-folder data set needs/,
    );
    await Deno.mkdir(`${root}/train/empty`);
    await assert.rejects(
      () => loadImageFolder(root, "train"),
      /empty holds no .png, .jpg or .jpeg files/,
    );
    await Deno.remove(`${root}/train/empty`);
    await Deno.writeFile(`${root}/train/zebra/99.png`, png(99, 4, 4));
    await assert.rejects(
      () => loadImageFolder(root, "train"),
      /99.png is 4x4 but .*, the first image, is 3x2/,
    );
    await Deno.writeFile(
      `${root}/train/zebra/99.png`,
      new Uint8Array([0x89, 0x50, 0x4e, 0x47, 1, 2, 3, 4, 5]),
    );
    await assert.rejects(() => loadImageFolder(root, "train"), /99.png: corrupt PNG/);
    await Deno.mkdir(`${root}/test`);
    await assert.rejects(() => loadImageFolder(root, "test"), /has no class folders/);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("loadFlatImageFolder() loads a folder of samples in name order", async () => {
  const root = await makeFolder();
  try {
    const { images, count, imageShape } = await loadFlatImageFolder(`${root}/train/bee`, {
      limit: 2,
    });
    assert.equal(count, 2);
    assert.deepEqual(imageShape, [3, 2, 3]);
    assert.deepEqual([images[0], images[18]], [20, 21]);
    await assert.rejects(() => loadFlatImageFolder(`${root}/train`), /holds no .png/);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
