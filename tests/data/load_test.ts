import assert from "node:assert/strict";
import { clearDatasetCache, loadDataset } from "../../src/data/load.ts";
import { listClassFolders, loadFlatImageFolder } from "../../src/data/image_folder.ts";
import { datasetFingerprint } from "../../src/data/fingerprint.ts";
import { resizeCenterCrop } from "../../src/data/resize.ts";
import { Dataset } from "../../src/data/dataset.ts";
import { encodePng } from "../../src/io/png.ts";

/** A w x h PNG whose pixel (x, y) is (value, 4x, 4y). */
function png(value: number, w: number, h: number): Uint8Array {
  const data = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) data.set([value, (4 * x) & 255, (4 * y) & 255], (y * w + x) * 3);
  }
  return encodePng({ width: w, height: h, channels: 3, data });
}

/** One CIFAR-10 record batch: `n` images with label i % 10 and bytes (i * 7 + k) % 256. */
function cifarBatch(n: number, offset: number): Uint8Array {
  const bytes = new Uint8Array(n * 3073);
  for (let i = 0; i < n; i++) {
    bytes[i * 3073] = i % 10;
    for (let k = 0; k < 3072; k++) bytes[i * 3073 + 1 + k] = ((i + offset) * 7 + k) % 256;
  }
  return bytes;
}

Deno.test("symlinked class folders and image files are followed, as pytorch-fid's glob does", async () => {
  const root = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${root}/elsewhere/owls`, { recursive: true });
    await Deno.mkdir(`${root}/data/train/cats`, { recursive: true });
    await Deno.writeFile(`${root}/elsewhere/owls/1.png`, png(1, 32, 32));
    await Deno.writeFile(`${root}/elsewhere/cat-a.png`, png(2, 32, 32));
    await Deno.writeFile(`${root}/data/train/cats/b.png`, png(3, 32, 32));
    await Deno.symlink(`${root}/elsewhere/owls`, `${root}/data/train/owls`);
    await Deno.symlink(`${root}/elsewhere/cat-a.png`, `${root}/data/train/cats/a.png`);
    await Deno.symlink(`${root}/nowhere.png`, `${root}/data/train/cats/dangling.png`);
    assert.deepEqual(await listClassFolders(`${root}/data`, "train"), ["cats", "owls"]);
    const flat = await loadFlatImageFolder(`${root}/data/train/cats`);
    assert.equal(flat.count, 2);
    assert.equal(flat.images[0], 2); // a.png (the link) sorts first; R plane = value
    clearDatasetCache();
    const data = await loadDataset({ source: `${root}/data`, split: "train" });
    assert.equal(data.size, 3);
    assert.deepEqual(data.classNames, ["cats", "owls"]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("images of another size are refused with the --image-size hint, or resized to it", async () => {
  const root = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${root}/train/x`, { recursive: true });
    await Deno.writeFile(`${root}/train/x/a.png`, png(10, 32, 32));
    await Deno.writeFile(`${root}/train/x/b.png`, png(20, 48, 40));
    clearDatasetCache();
    await assert.rejects(
      () => loadDataset({ source: root, split: "train" }),
      // The first file by name sets the size, whichever decodes first.
      /b\.png is 48x40 but .*a\.png, the first image, is 32x32.*--image-size N/,
    );
    const data = await loadDataset({ source: root, split: "train", imageSize: 16 });
    assert.deepEqual(data.imageShape, [3, 16, 16]);
    // b.png went through Resize(16) + CenterCrop(16) exactly as resize.ts does it alone.
    const b = new Uint8Array(3 * 40 * 48);
    for (let y = 0; y < 40; y++) {
      for (let x = 0; x < 48; x++) {
        b[y * 48 + x] = 20;
        b[40 * 48 + y * 48 + x] = (4 * x) & 255;
        b[2 * 40 * 48 + y * 48 + x] = (4 * y) & 255;
      }
    }
    const want = resizeCenterCrop(b, 3, 40, 48, 16);
    assert.deepEqual([...data.images().subarray(768, 1536)], [...want]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("a CIFAR-10 binary folder with only some batch files loads what it has", async () => {
  const root = await Deno.makeTempDir();
  try {
    await Deno.writeFile(`${root}/data_batch_2.bin`, cifarBatch(20, 0));
    clearDatasetCache();
    const train = await loadDataset({ source: root, split: "train" });
    assert.equal(train.size, 20);
    assert.equal(train.numClasses, 10);
    await assert.rejects(
      () => loadDataset({ source: root, split: "test" }),
      /no CIFAR-10 test batch \(test_batch\.bin\); it holds data_batch_2\.bin/,
    );
    await Deno.writeFile(`${root}/test_batch.bin`, cifarBatch(10, 5));
    assert.equal((await loadDataset({ source: root, split: "test" })).size, 10);
    const big = await loadDataset({ source: root, split: "train", classes: "cat", imageSize: 40 });
    assert.deepEqual(big.imageShape, [3, 40, 40]);
    assert.equal(big.size, 2);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("a loaded data set knows its absolute location; the fingerprint ignores the location", async () => {
  const root = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${root}/a`);
    await Deno.writeFile(`${root}/a/data_batch_1.bin`, cifarBatch(20, 0));
    clearDatasetCache();
    const here = Deno.cwd();
    Deno.chdir(root);
    let first;
    try {
      first = await loadDataset({ source: "a", split: "train" });
    } finally {
      Deno.chdir(here);
    }
    assert.equal(first.location, await Deno.realPath(`${root}/a`));
    await Deno.rename(`${root}/a`, `${root}/b`);
    const moved = await loadDataset({ source: `${root}/b`, split: "train" });
    assert.equal(datasetFingerprint(moved), datasetFingerprint(first));
    await Deno.writeFile(`${root}/b/data_batch_1.bin`, cifarBatch(20, 1));
    clearDatasetCache();
    const changed = await loadDataset({ source: `${root}/b`, split: "train" });
    assert.notEqual(datasetFingerprint(changed), datasetFingerprint(first));
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("the fingerprint changes with any image byte, label or class name", () => {
  const make = (patch: (images: Uint8Array, labels: Int32Array) => void, names = ["a", "b"]) => {
    const images = new Uint8Array(2 * 48).map((_, i) => i);
    const labels = new Int32Array([0, 1]);
    patch(images, labels);
    return datasetFingerprint(
      new Dataset({ images, labels, imageShape: [3, 4, 4], classNames: names }),
    );
  };
  const base = make(() => {});
  assert.match(base, /^2x3x4x4:[0-9a-f]{16}$/);
  assert.equal(make(() => {}), base);
  assert.notEqual(make((im) => im[95]++), base);
  assert.notEqual(make((_, l) => l.reverse()), base);
  assert.notEqual(make(() => {}, ["a", "c"]), base);
});
