/**
 * Tiny trained runs for the web tests: a two-class folder of solid-colour 32x32 PNGs and a
 * DDPM (convnet of width 8, T = 20) or DCGAN (width 4) trained for a few steps on tfjs-wasm,
 * in seconds, with the log, previews and checkpoint a real run has.
 *
 * @module
 */
import { createBackend } from "../../src/backend/select.ts";
import { loadDataset } from "../../src/data/load.ts";
import { type DdpmConfig, resolveDdpmConfig } from "../../src/diffusion/task.ts";
import { type GanConfig, resolveGanConfig } from "../../src/gan/task.ts";
import { encodePng } from "../../src/io/png.ts";
import { createTask } from "../../src/app/registry.ts";
import { train } from "../../src/train/trainer.ts";

/** ROOT/train/{red,blue}/*.png: 4 solid-colour 32x32 images per class. */
export async function tinyImageFolder(root: string): Promise<string> {
  for (const [name, rgb] of [["red", [250, 10, 10]], ["blue", [10, 10, 250]]] as const) {
    await Deno.mkdir(`${root}/train/${name}`, { recursive: true });
    for (let i = 0; i < 4; i++) {
      const data = new Uint8Array(32 * 32 * 3);
      for (let p = 0; p < 32 * 32; p++) data.set(rgb.map((v) => v - 8 * i), p * 3);
      await Deno.writeFile(
        `${root}/train/${name}/${i}.png`,
        encodePng({ width: 32, height: 32, channels: 3, data }),
      );
    }
  }
  return root;
}

/** Trains a tiny class-conditional model of `kind` into `runDir` for `steps` steps. */
export async function tinyRun(
  runDir: string,
  kind: "ddpm" | "gan",
  dataDir: string,
  steps = 3,
): Promise<string> {
  const backend = await createBackend("tfjs-wasm");
  try {
    const data = await loadDataset({ source: dataDir, split: "train", classes: "red,blue" });
    const config = kind === "ddpm"
      ? resolveDdpmConfig({
        preset: "convnet",
        baseWidth: 8,
        timesteps: 20,
        schedule: "linear",
        numClasses: 2,
        emaStart: 1,
      })
      : resolveGanConfig({ ngf: 4, ndf: 4, nz: 8, numClasses: 2 });
    const task = kind === "ddpm"
      ? createTask(backend, { kind, config: config as DdpmConfig }, 0)
      : createTask(backend, { kind, config: config as GanConfig }, 0);
    try {
      await train(task, data, {
        runDir,
        batchSize: 4,
        epochs: 1,
        maxSteps: steps,
        seed: 0,
        flip: false,
        logEvery: 1,
        previewEvery: 1,
        previewCount: 8,
        previewOptions: kind === "ddpm" ? { sampler: "ddim", steps: 5 } : undefined,
        gif: kind === "gan",
        report: () => {},
        backendName: backend.name,
        source: { data: dataDir, classes: "red,blue" },
      });
    } finally {
      task.dispose();
    }
  } finally {
    backend.dispose();
  }
  return runDir;
}
