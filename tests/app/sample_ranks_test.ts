import assert from "node:assert/strict";
import {
  chunksOf,
  onRankZero,
  sampleChunks,
  type SampleGroup,
  shareIndexSet,
} from "../../src/app/sample_ranks.ts";
import { sampleToFolder } from "../../src/app/sampling.ts";
import { imageNoise } from "../../src/core/rng.ts";
import { createBackend } from "../../src/backend/select.ts";
import { ParamStore } from "../../src/nn/params.ts";
import { noiseTaskOn } from "./_noise_task.ts";

/**
 * In-process stand-ins for the ranks of a job. Nothing a rank sends depends on what it
 * receives in the functions under test (except rank 0's folder state, which the others only
 * receive), so the other ranks run first and record what they send at each collective
 * ({@link recorder}); rank 0 then runs against a group that adds those records
 * ({@link replay}), as the real collectives would.
 */
type Sent = Float32Array | Float64Array;

function recorder(rank: number, worldSize: number, log: Sent[]): SampleGroup {
  return {
    rank,
    worldSize,
    allGather(data) {
      log.push(data.slice());
      const out = new Float32Array(data.length * worldSize);
      out.set(data, rank * data.length);
      return out;
    },
    allReduceSum(values) {
      log.push(values.slice());
      return values;
    },
  };
}

function replay(worldSize: number, logs: Sent[][]): SampleGroup & { calls: number } {
  const group = {
    rank: 0,
    worldSize,
    calls: 0,
    allGather(data: Float32Array) {
      const out = new Float32Array(data.length * worldSize);
      out.set(data);
      for (let r = 1; r < worldSize; r++) {
        out.set(logs[r][group.calls] as Float32Array, r * data.length);
      }
      group.calls++;
      return out;
    },
    allReduceSum(values: Float64Array) {
      for (let r = 1; r < worldSize; r++) {
        const sent = logs[r][group.calls] as Float64Array;
        for (let i = 0; i < values.length; i++) values[i] += sent[i];
      }
      group.calls++;
      return values;
    },
  };
  return group;
}

/** Rank 1 of 2 against rank 0's recorded sends. */
function replayRank1(rank0: Sent[]): SampleGroup & { calls: number } {
  const group = {
    rank: 1,
    worldSize: 2,
    calls: 0,
    allGather(data: Float32Array) {
      const out = new Float32Array(data.length * 2);
      out.set(rank0[group.calls++] as Float32Array);
      out.set(data, data.length);
      return out;
    },
    allReduceSum(values: Float64Array) {
      const sent = rank0[group.calls++] as Float64Array;
      for (let i = 0; i < values.length; i++) values[i] += sent[i];
      return values;
    },
  };
  return group;
}

const backend = await createBackend("tfjs-cpu");
const weights = new ParamStore(backend);
weights.add("w", [1], new Float32Array([0.5]), false);

/** The noise task; `calls` logs [call index, image count] of each sample call. */
function noiseTask(calls: [number, number][] = []) {
  return noiseTaskOn(weights, (count) => calls.push([calls.length, count]));
}

Deno.test("chunksOf() cuts each run of missing images from its start", () => {
  assert.deepEqual(chunksOf([[0, 5], [7, 9]], 2), [[0, 2], [2, 2], [4, 1], [7, 2]]);
  assert.deepEqual(chunksOf([], 3), []);
  assert.throws(() => chunksOf([[0, 1]], 0), /chunk size 0/);
});

Deno.test("sampleChunks() on 3 ranks hands rank 0 one process's chunks, images and order", async () => {
  const labels = Int32Array.from({ length: 23 }, (_, i) => i % 4);
  const chunks = chunksOf([[0, 9], [12, 23]], 4); // 3 + 3 chunks, the last two short
  const seen =
    (out: [number, number, number[]][]) => (start: number, count: number, images: Float32Array) => {
      out.push([start, count, Array.from(images)]);
    };
  const alone: [number, number, number[]][] = [];
  await sampleChunks(noiseTask(), labels, imageNoise(7), {}, chunks, undefined, seen(alone));
  const logs: Sent[][] = [[], [], []];
  const drawn: [number, number][][] = [[], [], []];
  for (const r of [1, 2]) {
    await sampleChunks(
      noiseTask(drawn[r]),
      labels,
      imageNoise(7),
      {},
      chunks,
      recorder(r, 3, logs[r]),
      () => {},
    );
  }
  const ranked: [number, number, number[]][] = [];
  const group = replay(3, logs);
  await sampleChunks(noiseTask(drawn[0]), labels, imageNoise(7), {}, chunks, group, seen(ranked));
  assert.deepEqual(ranked, alone);
  // Round k: rank r draws chunk 3k + r; every rank takes part in both rounds.
  assert.deepEqual(drawn.map((d) => d.map(([, count]) => count)), [[4, 4], [4, 4], [1, 3]]);
  assert.equal(group.calls, 3, "a gather per round and one agreement after the last");
});

Deno.test("sampleToFolder() on 2 emulated ranks writes one process's files, rank 0 alone", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const labels = new Int32Array(11);
    const run = { labels, seed: 3, options: {}, chunk: 3, keep: 4 };
    const alone = await sampleToFolder(noiseTask(), `${dir}/one`, run);
    const log: Sent[] = [];
    const other = await sampleToFolder(noiseTask(), `${dir}/two`, {
      ...run,
      group: recorder(1, 2, log),
    });
    // Rank 1 sampled its share but wrote nothing.
    assert.equal(await Deno.stat(`${dir}/two`).then(() => true, () => false), false);
    assert.deepEqual(other.kept, []);
    const lead = await sampleToFolder(noiseTask(), `${dir}/two`, {
      ...run,
      group: replay(2, [[], log]),
    });
    assert.equal(lead.written, 11);
    assert.deepEqual(lead.kept, alone.kept);
    const names = (d: string) => Array.from(Deno.readDirSync(d), (e) => e.name).sort();
    assert.deepEqual(names(`${dir}/two`), names(`${dir}/one`));
    for (const name of names(`${dir}/one`)) {
      assert.deepEqual(
        await Deno.readFile(`${dir}/two/${name}`),
        await Deno.readFile(`${dir}/one/${name}`),
        name,
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("onRankZero() fails every rank when rank 0's work fails, with rank 0's own error there", async () => {
  const log: Sent[] = [];
  // Rank 0 fails (what it sends: 1); rank 1 learns it and says where to look.
  await assert.rejects(
    () => onRankZero(recorder(0, 2, log), "prepare out/", () => Promise.reject(new Error("full"))),
    /full/,
  );
  const rank1: SampleGroup = {
    ...recorder(1, 2, []),
    allReduceSum: (v) => {
      v[0] += (log[0] as Float64Array)[0];
      return v;
    },
  };
  await assert.rejects(
    () => onRankZero(rank1, "prepare out/", () => Promise.resolve(1)),
    /rank 0 could not prepare out\//,
  );
  assert.equal(await onRankZero(undefined, "x", () => Promise.resolve(5)), 5);
});

Deno.test("shareIndexSet() gives every rank rank 0's set", () => {
  const log: Sent[] = [];
  shareIndexSet(recorder(1, 2, log), 6, undefined);
  assert.deepEqual([...shareIndexSet(replay(2, [[], log]), 6, new Set([1, 4]))].sort(), [1, 4]);
});

Deno.test("sampleChunks(): rank 0 failing to write stops every rank at the next gather, the others naming rank 0", async () => {
  const labels = new Int32Array(16);
  const chunks = chunksOf([[0, 16]], 2); // 8 chunks: 4 rounds on 2 ranks
  const full = new Error("No space left on device (os error 28)");
  const rank0: Sent[] = [];
  const written: number[] = [];
  const failing = (start: number) => {
    if (start >= 2) throw full; // the second image file of round 1
    written.push(start);
  };
  await assert.rejects(
    () =>
      sampleChunks(noiseTask(), labels, imageNoise(1), {}, chunks, recorder(0, 2, rank0), failing),
    (e) => e === full,
  );
  assert.deepEqual(written, [0]);
  assert.equal(rank0.length, 2, "rank 0 stops at the second round's gather");
  const group = replayRank1(rank0);
  await assert.rejects(
    () => sampleChunks(noiseTask(), labels, imageNoise(1), {}, chunks, group, () => {}),
    /^Error: rank 0 could not write the sampled images \(its own message above says why\); rank 1 stopped with it$/,
  );
  assert.equal(group.calls, 2, "rank 1 stops at the same gather");
});

Deno.test("sampleChunks(): a failure on the last round's images is agreed after it", async () => {
  const labels = new Int32Array(4);
  const chunks = chunksOf([[0, 4]], 2); // 1 round on 2 ranks
  const rank0: Sent[] = [];
  await assert.rejects(
    () =>
      sampleChunks(noiseTask(), labels, imageNoise(1), {}, chunks, recorder(0, 2, rank0), () => {
        throw new Error("read-only file system");
      }),
    /read-only/,
  );
  const group = replayRank1(rank0);
  await assert.rejects(
    () => sampleChunks(noiseTask(), labels, imageNoise(1), {}, chunks, group, () => {}),
    /rank 0 could not write the sampled images/,
  );
  assert.equal(group.calls, 2);
});
