import assert from "node:assert/strict";
import { Rng } from "../../src/core/rng.ts";
import { Dataset, flipRng } from "../../src/data/dataset.ts";
import { clearDatasetCache, loadDataset } from "../../src/data/load.ts";
import { parseClassFilter, resolveDataSource } from "../../src/data/source.ts";
import { makeCifarRecords } from "./_tar.ts";

const shared = new URL("../../../shared/data/", import.meta.url).pathname;
const jpegFolder = `${shared}cifar10-jpg`;
const binarySample = `${shared}cifar10-bin-sample/test_batch_first1000.bin`;

function meanRgb(images: Uint8Array, count: number, plane: number): number[] {
  const sums = [0, 0, 0];
  for (let i = 0; i < count; i++) {
    for (let c = 0; c < 3; c++) {
      const base = (i * 3 + c) * plane;
      let s = 0;
      for (let k = 0; k < plane; k++) s += images[base + k];
      sums[c] += s;
    }
  }
  return sums.map((s) => s / (count * plane));
}

Deno.test("loadDataset() reads the CIFAR-10 JPEG folder: 5,000 train images per class, mean RGB", async () => {
  const train = await loadDataset({ source: jpegFolder, split: "train" });
  assert.equal(train.size, 50_000);
  assert.deepEqual(train.imageShape, [3, 32, 32]);
  assert.deepEqual(train.classNames, [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
  ]);
  const perClass = new Array(10).fill(0);
  for (const label of train.labels()) perClass[label]++;
  assert.deepEqual(perClass, new Array(10).fill(5000));
  const mean = meanRgb(train.images(), train.size, 1024);
  // shared/data/README.md: 125.27 / 122.93 / 113.86 (decoded with libjpeg). jpeg-js replicates
  // subsampled chroma instead of interpolating it, which moves channel means by up to ~0.2
  // (measured 125.40 / 122.94 / 114.02).
  [125.27, 122.93, 113.86].forEach((want, c) => {
    assert.ok(Math.abs(mean[c] - want) < 0.25, `channel ${c}: ${mean[c].toFixed(3)} vs ${want}`);
  });
  // Same options again: the in-memory cache returns the same object.
  assert.equal(await loadDataset({ source: jpegFolder, split: "train" }), train);
});

Deno.test("loadDataset() filters classes by name or id and remaps labels", async () => {
  const byName = await loadDataset({ source: jpegFolder, split: "test", classes: "frog, Cat" });
  assert.equal(byName.size, 2000);
  assert.deepEqual(byName.classNames, ["cat", "frog"]);
  assert.equal(byName.numClasses, 2);
  assert.deepEqual([...new Set(byName.labels())].sort(), [0, 1]);
  const byId = await loadDataset({ source: jpegFolder, split: "test", classes: "3,6" });
  assert.equal(byId, byName, "same selection, same cache entry");
  const kept = await loadDataset({
    source: jpegFolder,
    split: "test",
    classes: "cat,frog",
    remapLabels: false,
  });
  assert.deepEqual([...new Set(kept.labels())].sort(), [3, 6]);
  assert.equal(kept.classNames[6], "frog");
  const limited = await loadDataset({
    source: jpegFolder,
    split: "test",
    classes: "cat",
    limit: 7,
  });
  assert.equal(limited.size, 7);
  await assert.rejects(
    () => loadDataset({ source: jpegFolder, split: "test", classes: "cat,dragon" }),
    /--classes: unknown class "dragon"; known classes: airplane, automobile, bird, cat/,
  );
  await assert.rejects(
    () => loadDataset({ source: jpegFolder, split: "test", classes: "10" }),
    /class id 10 does not exist \(ids are 0..9\)/,
  );
});

Deno.test("parseClassFilter() accepts names, ids and mixes, sorted and deduplicated", () => {
  const names = ["a", "b", "c", "d"];
  assert.deepEqual(parseClassFilter(undefined, names), [0, 1, 2, 3]);
  assert.deepEqual(parseClassFilter("d,1,B, a", names), [0, 1, 3]);
});

async function makeBinaryFolder(): Promise<string> {
  const dir = await Deno.makeTempDir();
  for (let i = 1; i <= 5; i++) {
    await Deno.writeFile(`${dir}/data_batch_${i}.bin`, makeCifarRecords(20, 20 * (i - 1)));
  }
  await Deno.copyFile(binarySample, `${dir}/test_batch.bin`);
  return dir;
}

Deno.test("loadDataset() reads official binary batches, with class filter and limit", async () => {
  const dir = await makeBinaryFolder();
  try {
    const test = await loadDataset({ source: dir, split: "test" });
    assert.equal(test.size, 1000);
    assert.deepEqual([...test.labels().subarray(0, 10)], [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]);
    const mean = meanRgb(test.images(), test.size, 1024);
    [126.67, 124.10, 115.01].forEach((want, c) => assert.ok(Math.abs(mean[c] - want) < 0.006));
    const train = await loadDataset({ source: dir, split: "train", classes: "airplane,truck" });
    // makeCifarRecords: image n has label n % 10, so 100 images give 10 of each class.
    assert.equal(train.size, 20);
    assert.deepEqual(train.classNames, ["airplane", "truck"]);
    assert.deepEqual([...train.labels().subarray(0, 4)], [0, 1, 0, 1]);
    assert.equal(train.images()[3072], (9 * 7) % 256); // record 9 (a truck), red plane
    const limited = await loadDataset({ source: dir, split: "train", classes: "0,9", limit: 3 });
    assert.deepEqual([...limited.labels()], [0, 1, 0]);
  } finally {
    await Deno.remove(dir, { recursive: true });
    clearDatasetCache();
  }
});

Deno.test("resolveDataSource() recognises binary folders, their parent, image folders and the cache", async () => {
  const dir = await makeBinaryFolder();
  const parent = await Deno.makeTempDir();
  const emptyCache = await Deno.makeTempDir();
  try {
    assert.deepEqual(await resolveDataSource(dir), { kind: "cifar10-binary", path: dir });
    await Deno.rename(dir, `${parent}/cifar-10-batches-bin`);
    assert.deepEqual(await resolveDataSource(parent), {
      kind: "cifar10-binary",
      path: `${parent}/cifar-10-batches-bin`,
    });
    assert.deepEqual(await resolveDataSource(`${jpegFolder}/`), {
      kind: "image-folder",
      path: jpegFolder,
    });
    assert.deepEqual(await resolveDataSource("cifar10", { cacheDir: parent }), {
      kind: "cifar10-binary",
      path: `${parent}/cifar-10-batches-bin`,
    });
    assert.deepEqual(await resolveDataSource("cifar10", { cacheDir: emptyCache }), {
      kind: "download",
      cacheDir: emptyCache,
    });
    await assert.rejects(
      () => resolveDataSource(`${parent}/nope`),
      /--data .*nope: no such file or folder/,
    );
    await assert.rejects(
      () => resolveDataSource(emptyCache),
      /is neither a CIFAR-10 binary folder .* nor an image folder/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    await Deno.remove(parent, { recursive: true });
    await Deno.remove(emptyCache, { recursive: true });
  }
});

Deno.test("loadDataset() offline with nothing cached says what to pass, and leaves the cache empty", async () => {
  const cacheDir = await Deno.makeTempDir();
  const saved = Deno.env.get("DENO_DIFFUSION_DATA");
  Deno.env.delete("DENO_DIFFUSION_DATA");
  try {
    await assert.rejects(
      () =>
        loadDataset({ split: "train", cacheDir, downloadUrl: "http://127.0.0.1:9/cifar.tar.gz" }),
      /not in the cache .* could not be downloaded .*Pass --data PATH .*\.\.\/shared\/data\/cifar10-jpg/,
    );
    assert.deepEqual([...Deno.readDirSync(cacheDir)], []);
  } finally {
    if (saved !== undefined) Deno.env.set("DENO_DIFFUSION_DATA", saved);
    await Deno.remove(cacheDir, { recursive: true });
  }
});

/** 10 images of 3x2x2 whose pixels encode (image, channel, y, x). */
function tinyDataset(): Dataset {
  const images = new Uint8Array(10 * 12).map((_, i) => (i * 2) % 256);
  return new Dataset({
    images,
    labels: Int32Array.from({ length: 10 }, (_, i) => i % 3),
    imageShape: [3, 2, 2],
    classNames: ["a", "b", "c"],
  });
}

Deno.test("Dataset.batches() covers every image once per epoch, scaled to [-1, 1]", () => {
  const ds = tinyDataset();
  const batches = [...ds.batches(4, new Rng(5))];
  assert.deepEqual(batches.map((b) => b.shape[0]), [4, 4, 2]);
  assert.deepEqual(batches[0].shape, [4, 3, 2, 2]);
  const seen: number[] = [];
  for (const batch of batches) {
    for (let b = 0; b < batch.shape[0]; b++) {
      const first = batch.images[b * 12];
      const image = Math.round(((first + 1) * 127.5) / 2 / 12); // pixel 0 of image i is 24 i
      seen.push(image);
      assert.equal(batch.labels[b], image % 3);
      for (let k = 0; k < 12; k++) {
        assert.equal(batch.images[b * 12 + k], Math.fround(((image * 12 + k) * 2) / 127.5 - 1));
      }
    }
  }
  assert.deepEqual([...seen].sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.notDeepEqual(seen, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], "shuffled");
  const ordered = [...ds.batches(4, new Rng(5), { shuffle: false, dropLast: true })];
  assert.deepEqual(ordered.map((b) => [...b.labels]), [[0, 1, 2, 0], [1, 2, 0, 1]]);
});

Deno.test("Dataset.batches() flips about half the images horizontally, reproducibly", () => {
  const ds = tinyDataset();
  const order = ds.epochOrder(0, 1, false);
  const plain = ds.batchAt(order, 0, 10);
  const flipped = ds.batchAt(order, 0, 10, { flip: true, rng: new Rng(3) });
  const again = ds.batchAt(order, 0, 10, { flip: true, rng: new Rng(3) });
  assert.deepEqual(flipped, again);
  let flips = 0;
  for (let b = 0; b < 10; b++) {
    const p = plain.images.subarray(b * 12, (b + 1) * 12);
    const f = flipped.images.subarray(b * 12, (b + 1) * 12);
    const mirrored = Float32Array.from({ length: 12 }, (_, k) => p[k ^ 1]); // swap x in rows of 2
    if (f.every((v, k) => v === p[k])) continue;
    assert.deepEqual(f, mirrored, `image ${b} is either untouched or mirrored`);
    flips++;
  }
  assert.ok(flips >= 2 && flips <= 8, `${flips} of 10 flipped`);
});

Deno.test("Dataset.batchAt() with epochOrder() and flipRng() reproduces batches() exactly (resume)", () => {
  const ds = tinyDataset();
  const rng = new Rng(77);
  const seed = Rng.fromState(rng.state()).nextUint32(); // what batches() draws
  const run = [...ds.batches(3, rng, { flip: true, dropLast: true })];
  assert.equal(run.length, ds.batchesPerEpoch(3, true));
  // Resuming at batch 2 of epoch 0 needs only (seed, epoch, index).
  const order = ds.epochOrder(0, seed);
  for (let i = 2; i < run.length; i++) {
    assert.deepEqual(ds.batchAt(order, i, 3, { flip: true, rng: flipRng(seed, 0, i) }), run[i]);
  }
  assert.deepEqual(ds.epochOrder(4, 9), ds.epochOrder(4, 9));
  assert.notDeepEqual(ds.epochOrder(4, 9), ds.epochOrder(5, 9));
  assert.throws(() => ds.batchAt(order, 4, 3), /batch 4 of size 3 is past the end/);
  assert.throws(() => ds.batchesPerEpoch(0), /batch size must be a positive integer/);
});
