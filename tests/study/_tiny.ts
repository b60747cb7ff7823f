/**
 * Shared pieces of the study tests: a tiny image-folder data set copied from the real
 * CIFAR-10 JPEGs in ../shared/data, a CI-sized plan over it, and the backend to run on.
 *
 * @module
 */
import type { Backend } from "../../src/backend/backend.ts";
import { type BackendName, createBackend, listBackends } from "../../src/backend/select.ts";
import { validatePlan } from "../../src/study/plans.ts";

const SHARED = new URL("../../../shared/data/cifar10-jpg", import.meta.url).pathname;

/**
 * Copies the first `perClass` train and test JPEGs of cats and frogs into
 * `dir/{train,test}/{cat,frog}/`.
 */
export async function makeTinyData(dir: string, perClass = 24): Promise<string> {
  for (const split of ["train", "test"]) {
    for (const name of ["cat", "frog"]) {
      const from = `${SHARED}/${split}/${name}`;
      const to = `${dir}/${split}/${name}`;
      await Deno.mkdir(to, { recursive: true });
      const files: string[] = [];
      for await (const e of Deno.readDir(from)) if (e.name.endsWith(".jpg")) files.push(e.name);
      for (const file of files.sort().slice(0, perClass)) {
        await Deno.copyFile(`${from}/${file}`, `${to}/${file}`);
      }
    }
  }
  return dir;
}

/** A plan with one row of every kind, small enough for CI (seconds per entry). */
export function tinyPlan() {
  return validatePlan({
    name: "tiny",
    title: "Tiny pipeline check",
    entries: [
      {
        id: "ddpm-tiny",
        label: "Tiny diffusion",
        table: "Diffusion",
        kind: "ddpm",
        classes: "cat",
        samples: 8,
        batchSize: 8,
        config: { preset: "convnet", baseWidth: 8, timesteps: 20, schedule: "linear" },
        budget: { epochs: 1 },
        published: 114.7,
      },
      {
        id: "gan-tiny",
        label: "Tiny DCGAN",
        table: "GAN",
        kind: "gan",
        classes: "cat",
        samples: 8,
        batchSize: 8,
        config: { ngf: 8, ndf: 8 },
        budget: { epochs: 2 },
        published: 109.1,
      },
      {
        id: "cond-gan-tiny",
        label: "Tiny conditional DCGAN",
        table: "Conditional",
        kind: "gan",
        classes: "cat,frog",
        conditional: true,
        samples: 8,
        batchSize: 8,
        config: { ngf: 8, ndf: 8 },
        budget: { epochs: 1 },
        published: { cat: 231.7, frog: 181.7 },
      },
      { id: "floor-cat-8", table: "Floor", kind: "floor", classes: "cat", samples: 8 },
    ],
  });
}

/** torch-cpu when it loads (the study's target here), else tfjs-wasm, else tfjs-cpu. */
export async function studyBackend(): Promise<Backend> {
  const infos = await listBackends();
  const order: BackendName[] = ["torch-cpu", "tfjs-wasm", "tfjs-cpu"];
  const name = order.find((n) => infos.find((i) => i.name === n)?.available);
  if (!name) throw new Error("no CPU backend available for the study test");
  return await createBackend(name);
}
