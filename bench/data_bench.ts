/**
 * Data-loading benchmarks (issue 3): all 50,000 CIFAR-10 training JPEGs into memory, and the
 * official binary batches. Run: `deno bench -A bench/data_bench.ts`. Needs ../shared/data;
 * the binary case builds a full-size (5 x 10,000 records) batch folder in a temp dir from the
 * 1,000-record sample, so it measures parsing at the real size.
 */
import { parseCifarBatch, readCifarSplit } from "../src/data/cifar10.ts";
import { clearDatasetCache, loadDataset } from "../src/data/load.ts";

const shared = new URL("../../shared/data/", import.meta.url).pathname;

Deno.bench({
  name: "load 50,000 CIFAR-10 train JPEGs (image folder) into memory",
  n: 1,
  warmup: 0,
  async fn() {
    clearDatasetCache();
    const train = await loadDataset({ source: `${shared}cifar10-jpg`, split: "train" });
    if (train.size !== 50_000) throw new Error(`loaded ${train.size} images`);
  },
});

const sample = Deno.readFileSync(`${shared}cifar10-bin-sample/test_batch_first1000.bin`);
const batchDir = Deno.makeTempDirSync();
const fullBatch = new Uint8Array(sample.length * 10);
for (let i = 0; i < 10; i++) fullBatch.set(sample, i * sample.length);
for (let i = 1; i <= 5; i++) Deno.writeFileSync(`${batchDir}/data_batch_${i}.bin`, fullBatch);
Deno.writeFileSync(`${batchDir}/test_batch.bin`, fullBatch);
globalThis.addEventListener("unload", () => Deno.removeSync(batchDir, { recursive: true }));

Deno.bench({
  name: "read the 5 official binary train batches (50,000 records, 154 MB)",
  n: 3,
  warmup: 1,
  async fn() {
    const train = await readCifarSplit(batchDir, "train");
    if (train.count !== 50_000) throw new Error(`read ${train.count} records`);
  },
});

Deno.bench({
  name: "loadDataset() on the binary batches (train split, all classes, cache cleared)",
  n: 3,
  warmup: 1,
  async fn() {
    clearDatasetCache();
    const train = await loadDataset({ source: batchDir, split: "train" });
    if (train.size !== 50_000) throw new Error(`loaded ${train.size} images`);
  },
});

Deno.bench({
  name: "parse one 10,000-record batch already in memory (30.7 MB)",
  n: 5,
  warmup: 1,
  fn() {
    parseCifarBatch(fullBatch);
  },
});
