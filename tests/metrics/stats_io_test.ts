import assert from "node:assert/strict";
import { writeNpz } from "../../src/io/npy.ts";
import { statisticsOf } from "../../src/metrics/fid.ts";
import { readStatistics, writeStatistics } from "../../src/metrics/stats_io.ts";

const dir = await Deno.makeTempDir();
globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));

Deno.test("writeStatistics() then readStatistics() gives back mu and sigma exactly", async () => {
  const stats = statisticsOf(new Float32Array([0, 1, 2, 4, 5, 3]), 3, 2); // 3 vectors of 2
  await writeStatistics(`${dir}/stats.npz`, stats);
  const back = await readStatistics(`${dir}/stats.npz`);
  assert.equal(back.dims, 2);
  assert.deepEqual([...back.mu], [...stats.mu]);
  assert.deepEqual([...back.sigma], [...stats.sigma]);
});

Deno.test("readStatistics() refuses an .npz without mu and sigma", async () => {
  await writeNpz(
    `${dir}/other.npz`,
    new Map([["x", { dtype: "float32" as const, shape: [1], data: new Float32Array(1) }]]),
  );
  await assert.rejects(
    readStatistics(`${dir}/other.npz`),
    /no 'mu' and 'sigma' arrays \(found x\)/,
  );
});

Deno.test("readStatistics() refuses mu and sigma whose shapes do not fit", async () => {
  await writeNpz(
    `${dir}/bad.npz`,
    new Map([
      ["mu", { dtype: "float64" as const, shape: [2], data: new Float64Array(2) }],
      ["sigma", { dtype: "float64" as const, shape: [3, 3], data: new Float64Array(9) }],
    ]),
  );
  await assert.rejects(
    readStatistics(`${dir}/bad.npz`),
    /do not fit \(expected \[d\] and \[d, d\]\)/,
  );
});

Deno.test("writeStatistics() stores the sample count and readStatistics() gives it back", async () => {
  const stats = statisticsOf(new Float32Array([0, 1, 2, 4, 5, 3]), 3, 2);
  await writeStatistics(`${dir}/counted.npz`, stats);
  assert.equal((await readStatistics(`${dir}/counted.npz`)).count, 3);
});

Deno.test("readStatistics() of pytorch-fid's npz (mu and sigma only) leaves the count unknown", async () => {
  await writeNpz(
    `${dir}/pytorch_fid.npz`,
    new Map([
      ["mu", { dtype: "float64" as const, shape: [1], data: new Float64Array([0]) }],
      ["sigma", { dtype: "float64" as const, shape: [1, 1], data: new Float64Array([1]) }],
    ]),
  );
  assert.equal((await readStatistics(`${dir}/pytorch_fid.npz`)).count, undefined);
});
