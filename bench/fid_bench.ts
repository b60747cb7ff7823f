/**
 * FID Inception feature extraction speed (images/s) with random weights in pytorch-fid's
 * layout, per backend. Two ways to run it:
 *
 *   deno run -A bench/fid_bench.ts [--images 200] [--batch-size 50] [--backend torch-cpu]
 *     one JSON line per backend: {"backend","images","batch_size","seconds","images_per_s",
 *     "load_average"} (the 1/5/15-minute load averages when the timed run started: on a shared
 *     machine the number means little without them)
 *   deno bench -A bench/fid_bench.ts
 *     one batch of 10 CIFAR-sized images per iteration, per available backend
 *
 * The PyTorch peer: /usr/bin/python3 bench/reference/fid_inception.py --images 200
 *
 * @module
 */
import { parseArgs } from "node:util";
import type { Backend } from "../src/backend/backend.ts";
import { Rng } from "../src/core/rng.ts";
import { type BackendName, createBackend, listBackends } from "../src/backend/select.ts";
import { computeActivations, type ImageLike } from "../src/metrics/features.ts";
import { inceptionFromStateDict, type InceptionNet } from "../src/metrics/inception.ts";
import { inceptionStateDictShapes } from "../src/metrics/inception_layers.ts";

/** Random weights in the released state_dict's layout (He-normal convs, identity BatchNorm). */
function randomInception(backend: Backend): InceptionNet {
  const rng = new Rng(2015);
  const stateDict = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [name, shape] of inceptionStateDictShapes()) {
    const size = shape.reduce((a, b) => a * b, 1);
    let data: Float32Array;
    if (name.endsWith("conv.weight")) {
      const std = Math.sqrt(2 / (shape[1] * shape[2] * shape[3]));
      data = rng.normal(size).map((v) => v * std);
    } else {
      const one = name.endsWith("bn.weight") || name.endsWith("running_var");
      data = new Float32Array(size).fill(one ? 1 : 0);
    }
    stateDict.set(name, { shape, data });
  }
  return inceptionFromStateDict(backend, stateDict, 2048, "random weights");
}

/** `count` random 32x32 RGB images (CIFAR-sized, as the study scores). */
function randomImages(count: number): ImageLike[] {
  const rng = new Rng(7);
  return Array.from({ length: count }, () => ({
    width: 32,
    height: 32,
    channels: 3,
    data: Uint8Array.from(rng.intArray(32 * 32 * 3, 0, 256)),
  }));
}

async function measure(name: BackendName, images: number, batchSize: number) {
  const backend = await createBackend(name);
  const net = randomInception(backend);
  try {
    await computeActivations(backend, net, randomImages(2), { progress: false }); // warm-up
    const loadAverage = Deno.loadavg();
    const start = performance.now();
    await computeActivations(backend, net, randomImages(images), { batchSize, progress: false });
    const seconds = (performance.now() - start) / 1000;
    return {
      backend: name,
      images,
      batch_size: batchSize,
      seconds,
      images_per_s: images / seconds,
      load_average: loadAverage,
    };
  } finally {
    net.dispose();
    backend.dispose();
  }
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      images: { type: "string", default: "200" },
      "batch-size": { type: "string", default: "50" },
      backend: { type: "string", multiple: true },
    },
    strict: true,
  });
  const available = (await listBackends()).filter((b) => b.available).map((b) => b.name);
  const names = (values.backend as BackendName[] | undefined) ?? available;
  for (const name of names) {
    console.log(
      JSON.stringify(await measure(name, Number(values.images), Number(values["batch-size"]))),
    );
  }
} else {
  for (const info of await listBackends()) {
    if (!info.available || info.name === "tfjs-cpu") continue; // tfjs-cpu: minutes per batch
    let setup: Promise<{ backend: Backend; net: InceptionNet }> | undefined;
    const batch = randomImages(10);
    Deno.bench({
      name: `FID Inception features, 10 images 32x32 -> 299 [${info.name}]`,
      group: "fid-inception",
      n: 3,
      warmup: 1,
      async fn() {
        setup ??= createBackend(info.name).then((backend) => ({
          backend,
          net: randomInception(backend),
        }));
        const { backend, net } = await setup;
        await computeActivations(backend, net, batch, { batchSize: 10, progress: false });
      },
    });
  }
}
