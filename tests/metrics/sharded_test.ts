import assert from "node:assert/strict";
import { type FeatureGatherer, shardedActivations, shardRange } from "../../src/metrics/sharded.ts";

Deno.test("shardRange covers 0..n in rank order with blocks of whole batches", () => {
  for (const [n, batch, world] of [[250, 50, 2], [7, 2, 3], [3, 50, 4], [100, 10, 3]]) {
    let next = 0;
    for (let r = 0; r < world; r++) {
      const [s, e] = shardRange(n, batch, r, world);
      assert.equal(s, next, `n ${n} batch ${batch} world ${world} rank ${r}`);
      if (e < n) assert.equal((e - s) % batch, 0);
      next = e;
    }
    assert.equal(next, n);
  }
});

Deno.test("shardedActivations puts every rank's block at its images' places", async () => {
  // Two simulated ranks; feature of image i is [i, -i]. allGather is emulated in process.
  const n = 7;
  const dims = 2;
  const feature = (s: number, e: number) =>
    Promise.resolve({
      data: Float32Array.from({ length: (e - s) * dims }, (_, k) =>
        (k % 2 ? -1 : 1) * (s + (k >> 1))),
      n: e - s,
      dims,
    });
  const blocks: Float32Array[] = [];
  const ranks = [0, 1].map((rank): FeatureGatherer => ({
    rank,
    worldSize: 2,
    allGather: (data) => {
      blocks[rank] = data;
      const out = new Float32Array(data.length * 2);
      return out;
    },
  }));
  // Rank 0 computes first to learn the padded layout, then both gather the same blocks.
  await shardedActivations(n, 2, dims, ranks[0], feature);
  await shardedActivations(n, 2, dims, ranks[1], feature);
  const gather: FeatureGatherer = {
    rank: 1,
    worldSize: 2,
    allGather: () => {
      const out = new Float32Array(blocks[0].length * 2);
      out.set(blocks[0]);
      out.set(blocks[1], blocks[0].length);
      return out;
    },
  };
  const all = await shardedActivations(n, 2, dims, gather, feature);
  assert.equal(all.n, n);
  assert.deepEqual(Array.from(all.data), [0, -0, 1, -1, 2, -2, 3, -3, 4, -4, 5, -5, 6, -6]);
});
