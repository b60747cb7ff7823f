import assert from "node:assert/strict";
import { imageNoise } from "../../../src/core/rng.ts";
import { createBackend } from "../../../src/backend/select.ts";
import { openCheckpoint } from "../../../src/app/registry.ts";
import { loadExportedModel } from "../../../src/web/browser/model.ts";
import { tinyImageFolder, tinyRun } from "../_runs.ts";

Deno.test({
  name: "an exported model samples exactly what the run's task samples, DDPM and DCGAN",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const root = await Deno.makeTempDir({ prefix: "dd-web-model-" });
    const backend = await createBackend("tfjs-wasm");
    try {
      const data = await tinyImageFolder(`${root}/data`);
      for (const kind of ["ddpm", "gan"] as const) {
        const run = await tinyRun(`${root}/${kind}`, kind, data);
        const { task } = await openCheckpoint(backend, run);
        const model = loadExportedModel(backend, await Deno.readFile(`${run}/model.safetensors`));
        try {
          assert.equal(model.info.kind, kind);
          assert.deepEqual(model.info.imageShape, [3, 32, 32]);
          assert.equal(model.info.numClasses, 2);
          const labels = new Int32Array(3).fill(1);
          const expected = task.kind === "ddpm"
            ? task.sample(labels, imageNoise(11), { sampler: "ddim", steps: 5, clipX0: true })
            : task.sample(labels, imageNoise(11), {});
          const progress: number[] = [];
          const got = model.sample(
            { count: 3, seed: 11, steps: 5, classId: 1 },
            (done, total) => progress.push(done / total),
          );
          assert.deepEqual(got, expected);
          assert.deepEqual(progress, kind === "ddpm" ? [0.2, 0.4, 0.6, 0.8, 1] : [1]);
          assert.throws(
            () => model.sample({ count: 1, seed: 0, steps: 5, classId: 2 }),
            /class 2 is outside 0\.\.1/,
          );
        } finally {
          model.dispose();
          task.dispose();
        }
      }
    } finally {
      backend.dispose();
      await Deno.remove(root, { recursive: true });
    }
  },
});

Deno.test("loadExportedModel names what is missing from a file that is not an export", async () => {
  const backend = await createBackend("tfjs-cpu");
  try {
    const { encodeSafetensors } = await import("../../../src/io/safetensors.ts");
    const bytes = encodeSafetensors(new Map(), { format: "pt" });
    assert.throws(
      () => loadExportedModel(backend, bytes),
      /no deno_diffusion_kind .*cli\.ts export/,
    );
  } finally {
    backend.dispose();
  }
});
