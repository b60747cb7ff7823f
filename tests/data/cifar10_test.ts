import assert from "node:assert/strict";
import { parseCifarBatch, readCifarSplit } from "../../src/data/cifar10.ts";
import { ensureCifar10 } from "../../src/data/cifar10_download.ts";
import { downloadFile } from "../../src/io/download.ts";
import { md5Hex } from "../../src/io/md5.ts";
import { gzip, makeCifarRecords, makeTar } from "./_tar.ts";

const shared = new URL("../../../shared/data/", import.meta.url).pathname;

Deno.test("parseCifarBatch() reads the official test batch sample: labels and mean RGB", async () => {
  const { images, labels, count } = parseCifarBatch(
    await Deno.readFile(`${shared}cifar10-bin-sample/test_batch_first1000.bin`),
  );
  assert.equal(count, 1000);
  assert.deepEqual([...labels.subarray(0, 10)], [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]);
  const sums = [0, 0, 0];
  for (let i = 0; i < count; i++) {
    for (let c = 0; c < 3; c++) {
      for (let k = 0; k < 1024; k++) sums[c] += images[i * 3072 + c * 1024 + k];
    }
  }
  const mean = sums.map((s) => s / (count * 1024));
  // Published in shared/data/README.md: 126.67 / 124.10 / 115.01 (plane order R, G, B).
  [126.67, 124.10, 115.01].forEach((want, c) =>
    assert.ok(Math.abs(mean[c] - want) < 0.006, `${c}: ${mean[c]}`)
  );
});

Deno.test("parseCifarBatch() rejects truncated files and bad labels, naming the file", () => {
  const records = makeCifarRecords(3);
  assert.throws(
    () => parseCifarBatch(records.subarray(0, 3073 * 2 + 5), "b.bin"),
    /b.bin: 6151 bytes is not a whole number/,
  );
  assert.throws(() => parseCifarBatch(new Uint8Array(0), "e.bin"), /e.bin/);
  const bad = records.slice();
  bad[3073] = 12;
  assert.throws(() => parseCifarBatch(bad, "c.bin"), /c.bin: record 1 has label 12/);
});

/** Serves `body` on 127.0.0.1 (a free port) for the duration of `fn`. */
async function withServer(body: Uint8Array | null, fn: (url: string) => Promise<void>) {
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    () => body ? new Response(body.slice()) : new Response("gone", { status: 404 }),
  );
  try {
    await fn(`http://127.0.0.1:${server.addr.port}/cifar-10-binary.tar.gz`);
  } finally {
    await server.shutdown();
  }
}

async function smallRelease(): Promise<Uint8Array> {
  const files = [1, 2, 3, 4, 5].map((i) => ({
    name: `cifar-10-batches-bin/data_batch_${i}.bin`,
    data: makeCifarRecords(4, 4 * (i - 1)),
  }));
  files.push({ name: "cifar-10-batches-bin/test_batch.bin", data: makeCifarRecords(2, 100) });
  files.push({
    name: "cifar-10-batches-bin/batches.meta.txt",
    data: new TextEncoder().encode("airplane\n"),
  });
  return await gzip(makeTar(files));
}

Deno.test("ensureCifar10() downloads, checks the MD5, extracts and then uses the cache", async () => {
  const cacheDir = await Deno.makeTempDir();
  try {
    const archive = await smallRelease();
    const progress: number[] = [];
    await withServer(archive, async (url) => {
      const dir = await ensureCifar10({
        cacheDir,
        url,
        md5: md5Hex(archive),
        onProgress: (n) => progress.push(n),
      });
      assert.equal(dir, `${cacheDir}/cifar-10-batches-bin`);
    });
    assert.equal(progress.at(-1), archive.length);
    assert.deepEqual([...Deno.readDirSync(cacheDir)].map((e) => e.name), ["cifar-10-batches-bin"]);
    const train = await readCifarSplit(`${cacheDir}/cifar-10-batches-bin`, "train");
    assert.equal(train.count, 20);
    assert.deepEqual([...train.labels], Array.from({ length: 20 }, (_, i) => i % 10));
    assert.equal(train.images[19 * 3072 + 2048], (19 * 7 + 2) % 256);
    const test = await readCifarSplit(`${cacheDir}/cifar-10-batches-bin`, "test");
    assert.equal(test.count, 2);
    // Cached now: no server needed (a closed port would fail).
    assert.equal(
      await ensureCifar10({ cacheDir, url: "http://127.0.0.1:9/none" }),
      `${cacheDir}/cifar-10-batches-bin`,
    );
  } finally {
    await Deno.remove(cacheDir, { recursive: true });
  }
});

Deno.test("ensureCifar10() with a wrong MD5 fails clearly and leaves nothing behind", async () => {
  const cacheDir = await Deno.makeTempDir();
  try {
    await withServer(await smallRelease(), async (url) => {
      await assert.rejects(
        () => ensureCifar10({ cacheDir, url, onProgress: () => {} }), // official MD5 expected
        /has MD5 [0-9a-f]{32}, expected c32a1d4ab5d03f1284b67883e8d87530/,
      );
    });
    assert.deepEqual([...Deno.readDirSync(cacheDir)], []);
  } finally {
    await Deno.remove(cacheDir, { recursive: true });
  }
});

Deno.test("ensureCifar10() reports HTTP errors, corrupt archives and unreachable servers", async () => {
  const cacheDir = await Deno.makeTempDir();
  try {
    await withServer(null, async (url) => {
      await assert.rejects(
        () => ensureCifar10({ cacheDir, url, onProgress: () => {} }),
        /HTTP 404/,
      );
    });
    const notGzip = new TextEncoder().encode("this is not gzip data at all");
    await withServer(notGzip, async (url) => {
      await assert.rejects(
        () => ensureCifar10({ cacheDir, url, md5: md5Hex(notGzip), onProgress: () => {} }),
        /corrupt gzip data/,
      );
    });
    const wrongContent = await gzip(makeTar([{ name: "other/file.bin", data: new Uint8Array(3) }]));
    await withServer(wrongContent, async (url) => {
      await assert.rejects(
        () => ensureCifar10({ cacheDir, url, md5: md5Hex(wrongContent), onProgress: () => {} }),
        /does not contain cifar-10-batches-bin/,
      );
    });
    await assert.rejects(
      () =>
        downloadFile("http://127.0.0.1:9/x.tar.gz", `${cacheDir}/x.tar.gz`, {
          onProgress: () => {},
        }),
      /cannot download http:\/\/127.0.0.1:9\/x.tar.gz/,
    );
    assert.deepEqual([...Deno.readDirSync(cacheDir)], []);
  } finally {
    await Deno.remove(cacheDir, { recursive: true });
  }
});
