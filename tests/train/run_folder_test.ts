import assert from "node:assert/strict";
import { createBackend } from "../../src/backend/select.ts";
import { createTask } from "../../src/app/registry.ts";
import { train, type TrainOptions } from "../../src/train/trainer.ts";
import { Dataset } from "../../src/data/dataset.ts";
import { DEFAULT_GAN_CONFIG } from "../../src/gan/task.ts";
import { readSafetensors } from "../../src/io/safetensors.ts";
import { openRunFolder } from "../../src/train/run_folder.ts";
import type { TrainTask } from "../../src/task/task.ts";

// Issue 17, class 5: what a kill -9 leaves behind is repaired on the next start of the run.

const backend = await createBackend("torch-cpu").catch(() => createBackend("tfjs-cpu"));
const tinyGan = { kind: "gan" as const, config: { ...DEFAULT_GAN_CONFIG, nz: 4, ngf: 2, ndf: 2 } };

function data(): Dataset {
  const images = new Uint8Array(8 * 3 * 32 * 32).map((_, i) => (i * 13) % 256);
  return new Dataset({
    images,
    labels: new Int32Array(8),
    imageShape: [3, 32, 32],
    classNames: ["a"],
  });
}

function options(runDir: string, extra: Partial<TrainOptions> = {}): TrainOptions {
  return {
    runDir,
    batchSize: 4,
    epochs: 2,
    seed: 1,
    flip: false,
    checkpointEvery: 0,
    previewEvery: 0,
    backendName: backend.name,
    report: () => {},
    ...extra,
  };
}

async function names(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) out.push(e.name);
  return out.sort();
}

Deno.test("a resume removes stale temp files and rewrites derived files from the checkpoint", async () => {
  const root = await Deno.makeTempDir();
  try {
    const run = `${root}/run`;
    let task = createTask(backend, tinyGan, 0);
    await train(task, data(), options(run, { maxSteps: 2 }));
    task.dispose();
    // The state a kill between the checkpoint write and the derived writes leaves: derived
    // files of step 2 next to a checkpoint of step 4, plus half-written temp files.
    const oldModel = await Deno.readFile(`${run}/model.safetensors`);
    const oldJson = await Deno.readTextFile(`${run}/checkpoint.json`);
    task = createTask(backend, tinyGan, 0);
    await train(task, data(), options(run, { maxSteps: 4, resume: true }));
    task.dispose();
    await Deno.writeFile(`${run}/model.safetensors`, oldModel);
    await Deno.writeTextFile(`${run}/checkpoint.json`, oldJson);
    await Deno.writeTextFile(`${run}/.checkpoint.safetensors.3kq9zt1mx.tmp`, "half");
    await Deno.writeTextFile(`${run}/.model.safetensors.a0.tmp`, "half");
    await Deno.writeTextFile(`${run}/notes.tmp`, "not ours");

    const lines: string[] = [];
    task = createTask(backend, tinyGan, 0);
    const result = await train(
      task,
      data(),
      options(run, { maxSteps: 4, resume: true, report: (l) => lines.push(l) }),
    );
    task.dispose();
    assert.equal(result.step, 4);
    assert.ok(
      lines.some((l) => /removed temp files .*\.checkpoint\.safetensors\.3kq9zt1mx\.tmp/.test(l)),
    );
    assert.ok(
      lines.some((l) => /rewrote model.safetensors, checkpoint.json from the checkpoint/.test(l)),
    );
    assert.deepEqual(
      await names(run),
      [
        "checkpoint.json",
        "checkpoint.safetensors",
        "log.jsonl",
        "model.safetensors",
        "notes.tmp",
      ],
    );
    const json = JSON.parse(await Deno.readTextFile(`${run}/checkpoint.json`));
    assert.equal(json.step, 4);
    const exported = await readSafetensors(`${run}/model.safetensors`);
    const ckpt = await readSafetensors(`${run}/checkpoint.safetensors`);
    assert.equal(exported.metadata.deno_diffusion_step, "4");
    for (const [name, t] of exported.tensors) {
      assert.deepEqual(t.data, ckpt.tensors.get(`generator/${name}`)!.data, name);
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("a run that fails before any output removes the folder it created, and only that", async () => {
  const root = await Deno.makeTempDir();
  try {
    const task = createTask(backend, tinyGan, 0);
    const failing: TrainTask = {
      ...task,
      step: () => {
        throw new Error("disk on fire");
      },
    };
    await assert.rejects(() => train(failing, data(), options(`${root}/new`)), /disk on fire/);
    assert.deepEqual(await names(root), []);
    await Deno.mkdir(`${root}/mine`);
    await assert.rejects(() => train(failing, data(), options(`${root}/mine`)), /disk on fire/);
    assert.deepEqual(await names(root), ["mine"]);
    task.dispose();
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("openRunFolder() cleans temps in samples/ too and keeps a folder with previews", async () => {
  const root = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${root}/run/samples`, { recursive: true });
    await Deno.writeTextFile(`${root}/run/samples/.epoch-0001.png.zz.tmp`, "half");
    await Deno.writeTextFile(`${root}/run/samples/epoch-0001.png`, "png");
    const folder = await openRunFolder(`${root}/run`);
    assert.equal(folder.created, false);
    assert.deepEqual(folder.removedTemps, ["samples/.epoch-0001.png.zz.tmp"]);
    const fresh = await openRunFolder(`${root}/fresh`);
    await Deno.mkdir(`${root}/fresh/samples`);
    await Deno.writeTextFile(`${root}/fresh/samples/epoch-0001.png`, "png");
    await fresh.discardIfEmpty();
    assert.deepEqual(await names(`${root}/fresh/samples`), ["epoch-0001.png"]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

globalThis.addEventListener("unload", () => backend.dispose());
