import assert from "node:assert/strict";
import { createBackend } from "../../src/backend/select.ts";
import { encodePng } from "../../src/io/png.ts";
import { fidBetweenFolders } from "../../src/metrics/compare.ts";
import { fidFromStatistics, statisticsOf } from "../../src/metrics/fid.ts";
import { writeStatistics } from "../../src/metrics/stats_io.ts";
import { FidScorer } from "../../src/metrics/scorer.ts";

const dir = await Deno.makeTempDir({ prefix: "compare_test_" });
globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
const backend = await createBackend("tfjs-cpu");
globalThis.addEventListener("unload", () => backend.dispose());

Deno.test("fidBetweenFolders() of two .npz files is their Fréchet distance, with their counts", async () => {
  const a = statisticsOf(new Float32Array([0, 1, 2, 4, 5, 3]), 3, 2);
  const b = statisticsOf(new Float32Array([1, 1, 2, 7, 5, 3, 0, 2]), 4, 2);
  await writeStatistics(`${dir}/a.npz`, a);
  await writeStatistics(`${dir}/b.npz`, b);
  const r = await fidBetweenFolders(`${dir}/a.npz`, `${dir}/b.npz`, { backend });
  assert.equal(r.fid, fidFromStatistics(a, b));
  assert.deepEqual([r.nA, r.nB, r.dims], [3, 4, 2]);
});

Deno.test("fidBetweenFolders() checks both folders and the weights before any features", async () => {
  await Deno.mkdir(`${dir}/two`);
  const img = { width: 2, height: 2, channels: 3 as const, data: new Uint8Array(12) };
  for (const i of [0, 1]) await Deno.writeFile(`${dir}/two/${i}.png`, encodePng(img));
  const weights = `${dir}/no-weights.pth`;
  await assert.rejects(
    fidBetweenFolders(`${dir}/two`, `${dir}/nothing`, { backend, weights }),
    /image folder .*nothing does not exist/,
  );
  await assert.rejects(
    fidBetweenFolders(`${dir}/two`, `${dir}/two`, { backend, weights }),
    /no-weights\.pth \(from --inception-weights\) does not exist/,
  );
});

Deno.test("FidScorer chooses its eigen solver once, from the backend", async () => {
  using scorer = new FidScorer(backend);
  assert.equal(scorer.eigvalsh, undefined); // tfjs: the TypeScript routine
  const torch = await createBackend("torch-cpu").catch(() => null);
  if (torch) {
    using onTorch = new FidScorer(torch);
    assert.equal(typeof onTorch.eigvalsh, "function");
    torch.dispose();
  }
});
