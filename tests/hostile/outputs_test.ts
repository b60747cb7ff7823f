import assert from "node:assert/strict";
import { testEachBackend } from "../_backends.ts";
import { createTask } from "../../src/app/registry.ts";
import { Rng } from "../../src/core/rng.ts";
import { DEFAULT_GAN_CONFIG } from "../../src/gan/task.ts";
import { DEFAULT_DDPM_CONFIG } from "../../src/diffusion/task.ts";
import type { AnyTask } from "../../src/app/registry.ts";

// Issue 17, class 3: weights that reach a model without the checkpoint loader's check (a
// library user's own training, or finite values that overflow) make its outputs NaN or
// infinite; sampling must then fail, not hand back black images.

function setWeights(task: AnyTask, group: string, value: number): void {
  const store = task.stores[group];
  const host = store.toHost();
  for (const t of host.values()) t.data.fill(value);
  store.load(host);
}

testEachBackend("a GAN with NaN weights refuses to return its NaN samples", (b) => {
  const task = createTask(b, {
    kind: "gan",
    config: { ...DEFAULT_GAN_CONFIG, nz: 4, ngf: 2, ndf: 2 },
  }, 0);
  try {
    task.sample(new Int32Array(2), new Rng(0)); // finite before
    setWeights(task, "generator", NaN);
    assert.throws(
      () => task.sample(new Int32Array(2), new Rng(0)),
      /sampled images hold \d+ non-finite value\(s\)/,
    );
  } finally {
    task.dispose();
  }
}, { only: ["torch-cpu", "tfjs-cpu"] });

testEachBackend("a DDPM whose weights overflow refuses to return its NaN samples", (b) => {
  const task = createTask(b, {
    kind: "ddpm",
    config: {
      ...DEFAULT_DDPM_CONFIG,
      preset: "convnet",
      baseWidth: 4,
      timesteps: 4,
      imageSize: 8,
      ema: 0,
    },
  }, 0);
  try {
    task.sample(new Int32Array(1), new Rng(0));
    setWeights(task, "model", 1e38); // finite, but overflows
    assert.throws(
      () => task.sample(new Int32Array(1), new Rng(0)),
      /sampled images hold \d+ non-finite value\(s\)/,
    );
  } finally {
    task.dispose();
  }
}, { only: ["torch-cpu", "tfjs-cpu"] });
