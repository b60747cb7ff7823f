/**
 * `cli.ts fid --ckpt` checks the checkpoint, then the reference, before it loads the Inception
 * weights or computes any features (the weights are absent here: had they been looked at first,
 * their error would be the one reported).
 */
import assert from "node:assert/strict";
import { fidCheckpointCommand } from "../../src/cli/fid_checkpoint.ts";
import { createBackend } from "../../src/backend/select.ts";
import { createTask } from "../../src/app/registry.ts";
import { train } from "../../src/train/trainer.ts";
import { Dataset } from "../../src/data/dataset.ts";
import { DEFAULT_GAN_CONFIG } from "../../src/gan/task.ts";

const root = await Deno.makeTempDir({ prefix: "fid_ckpt_validation_" });
globalThis.addEventListener("unload", () => Deno.removeSync(root, { recursive: true }));
const absentWeights = ["--inception-weights", `${root}/absent.pth`, "--backend", "tfjs-cpu"];

async function tinyRun(): Promise<string> {
  const backend = await createBackend("tfjs-cpu");
  const task = createTask(backend, {
    kind: "gan",
    config: { ...DEFAULT_GAN_CONFIG, nz: 8, ngf: 4, ndf: 4 },
  }, 3);
  const data = new Dataset({
    images: new Uint8Array(2 * 3 * 32 * 32).fill(128),
    labels: new Int32Array(2),
    imageShape: [3, 32, 32],
    classNames: ["x"],
  });
  try {
    await train(task, data, {
      runDir: `${root}/run`,
      batchSize: 2,
      epochs: 1,
      seed: 0,
      flip: false,
      previewEvery: 0,
      backendName: backend.name,
      report: () => {},
      source: { data: `${root}/moved-away`, classes: "x" },
    });
  } finally {
    task.dispose();
    backend.dispose();
  }
  return `${root}/run`;
}

Deno.test("fid --ckpt refuses a missing checkpoint before looking at the weights", async () => {
  await assert.rejects(
    fidCheckpointCommand(["--ckpt", `${root}/no-such-run`, ...absentWeights]),
    (e: Error) => e.message.includes("no-such-run") && !e.message.includes("absent.pth"),
  );
});

Deno.test("fid --ckpt checks --ref, and defaults to the run's own data, before the weights", async () => {
  const run = await tinyRun();
  await assert.rejects(
    fidCheckpointCommand(["--ckpt", run, "--ref", `${root}/no-data:test`, ...absentWeights]),
    (e: Error) => e.message.includes("no-data") && !e.message.includes("absent.pth"),
  );
  // Without --ref the reference is the data the run trained on (recorded in the run).
  await assert.rejects(
    fidCheckpointCommand(["--ckpt", run, ...absentWeights]),
    (e: Error) => e.message.includes("moved-away") && !e.message.includes("absent.pth"),
  );
  await assert.rejects(fidCheckpointCommand(["--ckpt", run, "--ref", "cifar10:val"]), /--ref must/);
});
