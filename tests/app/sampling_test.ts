import assert from "node:assert/strict";
import {
  readSamplesManifest,
  sampleInChunks,
  SAMPLES_MANIFEST,
  sampleToFolder,
} from "../../src/app/sampling.ts";
import { Rng } from "../../src/core/rng.ts";
import { createBackend } from "../../src/backend/select.ts";
import { ParamStore } from "../../src/nn/params.ts";
import type { TrainTask } from "../../src/task/task.ts";
import { noiseTaskOn } from "./_noise_task.ts";

/** A task whose samples are their own label, so chunk boundaries show in the output. */
function labelEcho(calls: number[]): TrainTask {
  return {
    kind: "gan",
    config: {},
    stores: {},
    exportStore: "generator",
    modelStores: [],
    optimizers: {},
    step: () => ({}),
    sample: (labels: Int32Array) => {
      calls.push(labels.length);
      const out = new Float32Array(labels.length * 3); // [n, 3, 1, 1]
      for (let i = 0; i < out.length; i++) out[i] = labels[Math.floor(i / 3)];
      return out;
    },
    imageShape: [3, 1, 1],
    numClasses: 0,
    dispose: () => {},
    [Symbol.dispose]: () => {},
  };
}

Deno.test("sampleInChunks() samples in chunks of at most 1,000 and keeps the label order", async () => {
  const calls: number[] = [];
  const labels = Int32Array.from({ length: 2500 }, (_, i) => i % 7);
  const images = await sampleInChunks(labelEcho(calls), labels, new Rng(0), {}, false);
  assert.deepEqual(calls, [1000, 1000, 500]);
  assert.equal(images.length, 2500 * 3);
  for (let i = 0; i < 2500; i++) assert.equal(images[i * 3 + 2], i % 7);
});

const backend = await createBackend("tfjs-cpu");
const weights = new ParamStore(backend);
weights.add("w", [1], new Float32Array([0.5]), false);

const noiseTask = (hook?: (count: number) => void) => noiseTaskOn(weights, hook);

async function folderBytes(dir: string): Promise<Map<string, Uint8Array>> {
  const files = new Map<string, Uint8Array>();
  for await (const e of Deno.readDir(dir)) {
    files.set(e.name, await Deno.readFile(`${dir}/${e.name}`));
  }
  return files;
}

Deno.test("sampleToFolder() writes each chunk before drawing the next and holds one chunk at a time", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const out = `${dir}/samples`;
    const seen: [number, number][] = [];
    const task = noiseTask((count) => {
      let files = 0;
      try {
        for (const e of Deno.readDirSync(out)) if (e.name.endsWith(".png")) files++;
      } catch {
        // not created yet
      }
      seen.push([files, count]);
    });
    const labels = new Int32Array(25);
    const result = await sampleToFolder(task, out, { labels, seed: 1, options: {}, chunk: 10 });
    // Before call k, the files of calls 0..k-1 are on disk; no call asks for more than a chunk.
    assert.deepEqual(seen, [[0, 10], [10, 10], [20, 5]]);
    assert.equal(result.written, 25);
    assert.equal(result.paths[24], `${out}/00024.png`);
    const manifest = await readSamplesManifest(out);
    assert.equal(manifest?.n, 25);
    assert.equal(manifest?.seed, 1);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("an interrupted sampleToFolder() run, rerun, leaves the files an uninterrupted run writes", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const labels = Int32Array.from({ length: 23 }, (_, i) => i % 3);
    const run = { labels, seed: 5, options: {}, chunk: 4 };
    await sampleToFolder(noiseTask(), `${dir}/whole`, run);
    let calls = 0;
    const crashing = noiseTask(() => {
      if (++calls === 3) throw new Error("killed");
    });
    await assert.rejects(() => sampleToFolder(crashing, `${dir}/split`, run), /killed/);
    const partial = await folderBytes(`${dir}/split`);
    assert.equal([...partial.keys()].filter((n) => n.endsWith(".png")).length, 8);
    const asked: number[] = [];
    const rerun = await sampleToFolder(noiseTask((n) => asked.push(n)), `${dir}/split`, {
      ...run,
      chunk: 7, // another chunk (batch) size: the images must not change
      keep: 10,
    });
    assert.deepEqual([rerun.skipped, rerun.written], [8, 15]);
    assert.deepEqual(asked, [7, 7, 1]);
    assert.equal(rerun.kept.length, 10);
    const whole = await folderBytes(`${dir}/whole`);
    const split = await folderBytes(`${dir}/split`);
    assert.deepEqual([...split.keys()].sort(), [...whole.keys()].sort());
    for (const [name, bytes] of whole) {
      if (name !== SAMPLES_MANIFEST) assert.deepEqual(split.get(name), bytes, name);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("sampleToFolder() refuses foreign images and other runs unless told to replace them", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const out = `${dir}/samples`;
    await Deno.mkdir(out);
    await Deno.writeFile(`${out}/cat.png`, new Uint8Array([1]));
    const run = { labels: new Int32Array(3), seed: 2, options: {} };
    await assert.rejects(
      () => sampleToFolder(noiseTask(), out, run),
      /already holds 1 image that this command did not write; .*pass --overwrite/,
    );
    assert.deepEqual([...Deno.readDirSync(out)].map((e) => e.name), ["cat.png"]);
    await sampleToFolder(noiseTask(), out, { ...run, existing: "overwrite" });
    const names = [...Deno.readDirSync(out)].map((e) => e.name).sort();
    assert.deepEqual(names, [SAMPLES_MANIFEST, "00000.png", "00001.png", "00002.png"]);
    // Same folder, other seed: another run.
    await assert.rejects(
      () => sampleToFolder(noiseTask(), out, { ...run, seed: 3 }),
      /holds samples of another run \(different seed\)/,
    );
    // Other weights: another run too.
    weights.load(new Map([["w", { shape: [1], data: new Float32Array([0.25]) }]]));
    await assert.rejects(
      () => sampleToFolder(noiseTask(), out, run),
      /different weights/,
    );
    const replaced = await sampleToFolder(noiseTask(), out, {
      ...run,
      existing: "replace-different",
    });
    assert.equal(replaced.written, 3);
    const again = await sampleToFolder(noiseTask(), out, run);
    assert.deepEqual([again.written, again.skipped], [0, 3]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
