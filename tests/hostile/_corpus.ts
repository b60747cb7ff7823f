/**
 * The hostile-input corpus, generated at test time (nothing here is checked in): a good tiny
 * run and data set, and bad variants of every input the commands read: checkpoints that break
 * the schema or hold NaN weights, damaged safetensors, npz and .pth files, image bombs.
 * Image bombs and damage come from the io tests' generators (tests/io/_hostile_images.ts).
 *
 * @module
 */
import { createBackend } from "../../src/backend/select.ts";
import { createTask } from "../../src/app/registry.ts";
import { train } from "../../src/train/trainer.ts";
import { Dataset } from "../../src/data/dataset.ts";
import { DEFAULT_GAN_CONFIG } from "../../src/gan/task.ts";
import { encodePng } from "../../src/io/png.ts";
import { decodeSafetensors, encodeSafetensors, type SafeTensor } from "../../src/io/safetensors.ts";
import { encodeNpz, type NdArray } from "../../src/io/npy.ts";

/** A 32x32 RGB PNG of one colour. */
export function solidPng(rgb: [number, number, number], size = 32): Uint8Array {
  const data = new Uint8Array(size * size * 3);
  for (let p = 0; p < size * size; p++) data.set(rgb, p * 3);
  return encodePng({ width: size, height: size, channels: 3, data });
}

/** DIR/train/a/0..3.png: four good 32x32 images. */
export async function goodImageFolder(dir: string): Promise<string> {
  await Deno.mkdir(`${dir}/train/a`, { recursive: true });
  for (let i = 0; i < 4; i++) {
    await Deno.writeFile(`${dir}/train/a/${i}.png`, solidPng([40 * i, 200, 10]));
  }
  return dir;
}

/**
 * A tiny trained GAN run (2 steps, torch-cpu or tfjs-cpu) in `runDir`, recording `dataDir` as
 * its data so `train --resume` can reload it.
 */
export async function goodRun(runDir: string, dataDir: string): Promise<void> {
  const backend = await createBackend("torch-cpu").catch(() => createBackend("tfjs-cpu"));
  const images = new Uint8Array(4 * 3 * 32 * 32).map((_, i) => (i * 7) % 256);
  const data = new Dataset({
    images,
    labels: new Int32Array(4),
    imageShape: [3, 32, 32],
    classNames: ["a"],
  });
  const task = createTask(backend, {
    kind: "gan",
    config: { ...DEFAULT_GAN_CONFIG, nz: 4, ngf: 2, ndf: 2 },
  }, 0);
  try {
    await train(task, data, {
      runDir,
      batchSize: 2,
      epochs: 1,
      maxSteps: 4,
      seed: 0,
      flip: false,
      previewEvery: 0,
      checkpointEvery: 0,
      backendName: backend.name,
      report: () => {},
      source: { data: dataDir, classes: "a" },
    });
  } finally {
    task.dispose();
    backend.dispose();
  }
}

// deno-lint-ignore no-explicit-any
type Meta = Record<string, any>;

/** A copy of checkpoint `bytes` with its metadata and tensors edited. */
export function editCheckpoint(
  bytes: Uint8Array,
  edit: { meta?: (m: Meta) => void; tensors?: (t: Map<string, SafeTensor>) => void },
): Uint8Array {
  const { tensors, metadata } = decodeSafetensors(bytes);
  const meta = JSON.parse(metadata.deno_diffusion);
  edit.meta?.(meta);
  edit.tensors?.(tensors);
  return encodeSafetensors(tensors, { ...metadata, deno_diffusion: JSON.stringify(meta) });
}

/** The first tensor whose name starts with `prefix`. */
function first(tensors: Map<string, SafeTensor>, prefix: string): [string, SafeTensor] {
  return [...tensors].find(([n]) => n.startsWith(prefix))!;
}

/**
 * Bad checkpoints made from a good one: [name, bytes, what the error must say]. Each breaks
 * one thing: a schema field, a tensor's values, shape or dtype, or the file itself.
 */
export function badCheckpoints(good: Uint8Array): [string, Uint8Array, RegExp][] {
  const meta = (f: (m: Meta) => void) => editCheckpoint(good, { meta: f });
  const tensors = (f: (t: Map<string, SafeTensor>) => void) => editCheckpoint(good, { tensors: f });
  const header = good.slice();
  header[8] = 0x5b; // '{' -> '[': the header is no longer an object
  const huge = good.slice();
  new DataView(huge.buffer).setBigUint64(0, 2n ** 60n, true);
  return [
    ["zero-rng", meta((m) => (m.rng.s = [0, 0, 0, 0])), /field 'rng'.*all zero/],
    ["no-train", meta((m) => delete m.train), /field 'train' must be a JSON object, got missing/],
    ["negative-size", meta((m) => (m.config.imageSize = -32)), /field 'config.imageSize'.*-32/],
    ["step-string", meta((m) => (m.step = "4")), /field 'step' must be an integer/],
    ["epoch-contradicts", meta((m) => (m.epoch = 9)), /field 'epoch' is 9, but step 4/],
    ["seed-fraction", meta((m) => (m.train.seed = 0.5)), /field 'train.seed'/],
    ["unknown-kind", meta((m) => (m.kind = "vae")), /unknown model kind 'vae'/],
    ["bad-format", meta((m) => (m.format = "x/9")), /field 'format' is "x\/9"/],
    ["nan-spare", meta((m) => (m.rng.spareNormal = "nan")), /field 'rng'.*spareNormal/],
    [
      "no-moments",
      tensors((t) => {
        for (const n of [...t.keys()]) if (n.startsWith("optim.generator/")) t.delete(n);
      }),
      /optim.generator\/\.\.\.\) are missing/,
    ],
    [
      "nan-weight",
      tensors((t) => ((first(t, "generator/")[1].data as Float32Array)[3] = NaN)),
      /tensor generator\/.*\[3\] = NaN is not finite/,
    ],
    [
      "inf-weight",
      tensors((t) => ((first(t, "discriminator/")[1].data as Float32Array)[0] = -Infinity)),
      /tensor discriminator\/.*\[0\] = -Infinity is not finite/,
    ],
    [
      "wrong-shape",
      tensors((t) => {
        const [name, w] = first(t, "generator/");
        t.set(name, { ...w, shape: [w.data.length] });
      }),
      /does not fit this model/,
    ],
    [
      "missing-tensor",
      tensors((t) => t.delete(first(t, "generator/")[0])),
      /does not fit this model/,
    ],
    [
      "wrong-dtype",
      (() => {
        // Re-label an F32 tensor as I64: its byte length no longer fits the shape.
        const text = new TextDecoder().decode(good.subarray(8, 8 + headerLength(good)));
        const swapped = text.replace('"dtype":"F32"', '"dtype":"I64"');
        return replaceHeader(good, swapped);
      })(),
      /not a valid safetensors file/,
    ],
    ["truncated", good.subarray(0, Math.floor(good.length / 2)), /not a valid safetensors file/],
    ["header-not-object", header, /not a valid safetensors file: header/],
    ["header-length-huge", huge, /header length .* exceeds the file size/],
    ["empty-file", new Uint8Array(0), /only 0 bytes/],
    [
      "not-ours",
      encodeSafetensors(new Map([["w", { dtype: "F32", shape: [1], data: new Float32Array(1) }]])),
      /not a deno-diffusion checkpoint/,
    ],
    [
      "metadata-not-json",
      (() => {
        const { tensors, metadata } = decodeSafetensors(good);
        return encodeSafetensors(tensors, { ...metadata, deno_diffusion: "{step: 4" });
      })(),
      /metadata is not valid JSON/,
    ],
  ];
}

function headerLength(bytes: Uint8Array): number {
  return Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
}

/** `bytes` with its JSON header replaced by `text`, padded with spaces to the same length. */
function replaceHeader(bytes: Uint8Array, text: string): Uint8Array {
  const n = headerLength(bytes);
  const encoded = new TextEncoder().encode(text.padEnd(n, " "));
  if (encoded.length !== n) throw new Error("replacement header must keep its length");
  const out = bytes.slice();
  out.set(encoded, 8);
  return out;
}

/** FID statistics of dimension `d` (mu = 0, sigma = I). */
export function goodStats(d = 4): Map<string, NdArray> {
  const sigma = new Float64Array(d * d);
  for (let i = 0; i < d; i++) sigma[i * d + i] = 1;
  return new Map([
    ["mu", { dtype: "float64", shape: [d], data: new Float64Array(d) }],
    ["sigma", { dtype: "float64", shape: [d, d], data: sigma }],
  ]);
}

/** Bad FID statistics files: [name, bytes, what the error must say]. */
export function badStats(): [string, Uint8Array, RegExp][] {
  const good = encodeNpz(goodStats());
  const noMu = goodStats();
  noMu.delete("mu");
  const wrongShape = goodStats();
  wrongShape.set("sigma", { dtype: "float64", shape: [3, 3], data: new Float64Array(9) });
  const flat = goodStats();
  flat.set("sigma", { dtype: "float64", shape: [16], data: new Float64Array(16) });
  return [
    ["npz-truncated", good.subarray(0, good.length - 30), /npz|zip/i],
    ["npz-random", new Uint8Array(500).map((_, i) => (i * 97 + 13) % 256), /npz|zip/i],
    ["npz-empty", new Uint8Array(0), /npz|zip/i],
    ["npz-no-mu", encodeNpz(noMu), /has no 'mu' and 'sigma'/],
    ["npz-sigma-3x3", encodeNpz(wrongShape), /do not fit \(expected \[d\] and \[d, d\]\)/],
    ["npz-sigma-flat", encodeNpz(flat), /do not fit/],
  ];
}
