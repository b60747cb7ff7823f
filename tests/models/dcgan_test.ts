import { deepEqual, ok, throws } from "node:assert/strict";
import type { Backend } from "../../src/backend/backend.ts";
import { Rng } from "../../src/core/rng.ts";
import {
  DCGAN_PRESETS,
  type DcganModelConfig,
  dcganParamCounts,
  DEFAULT_DCGAN,
  defineDiscriminator,
  defineGenerator,
  discriminatorForward,
  generatorForward,
  generatorWidths,
} from "../../src/models/dcgan.ts";
import { ParamStore } from "../../src/nn/params.ts";
import { testEachBackend } from "../_backends.ts";
import {
  decode,
  loadStateDictFixture,
  loadStepFixture,
  maxAbsDiff,
  toHostTensors,
} from "../gan/_dcgan_fixture.ts";

const conditional = (config: DcganModelConfig, classes: number): DcganModelConfig => ({
  ...config,
  numClasses: classes,
  embedDim: classes,
});

function buildPair(backend: Backend, config: DcganModelConfig, seed = 0) {
  const rng = new Rng(seed);
  const generator = new ParamStore(backend);
  const discriminator = new ParamStore(backend);
  defineGenerator(generator, rng, config);
  defineDiscriminator(discriminator, rng, config);
  return {
    generator,
    discriminator,
    [Symbol.dispose]() {
      generator.dispose();
      discriminator.dispose();
    },
  };
}

// Hand count (weights are Cin*Cout*4*4, bias-free; each BatchNorm adds weight + bias = 2*C):
// dcgan G, nz 100, ngf 64: 100*256*16 + 2*256 + 256*128*16 + 2*128 + 128*64*16 + 2*64 + 64*3*16
//   = 409600 + 512 + 524288 + 256 + 131072 + 128 + 3072 = 1068928
// dcgan-wide G (main.3 outputs 256, main.6 takes 256):
//   409600 + 512 + 256*256*16 + 2*256 + 256*64*16 + 2*64 + 3072
//   = 409600 + 512 + 1048576 + 512 + 262144 + 128 + 3072 = 1724544
// D, ndf 64: 3*64*16 + 64*128*16 + 2*128 + 128*256*16 + 2*256 + 256*1*16
//   = 3072 + 131072 + 256 + 524288 + 512 + 4096 = 663296
// Conditional, 10 classes, embedDim 10: G's first layer takes 110 channels (+10*256*16 = 40960)
// and owns a 10x10 embedding (+100); D's first layer takes 13 channels (+10*64*16 = 10240) + 100.
const HAND_COUNTS: Record<string, { generator: number; discriminator: number }> = {
  "dcgan/uncond": { generator: 1068928, discriminator: 663296 },
  "dcgan-wide/uncond": { generator: 1724544, discriminator: 663296 },
  "dcgan/cond10": { generator: 1068928 + 40960 + 100, discriminator: 663296 + 10240 + 100 },
  "dcgan-wide/cond10": { generator: 1724544 + 40960 + 100, discriminator: 663296 + 10240 + 100 },
};

Deno.test("dcganParamCounts() equals the hand count of the tutorial's layers", () => {
  for (const preset of DCGAN_PRESETS) {
    for (const classes of [0, 10]) {
      const key = `${preset}/${classes ? "cond10" : "uncond"}`;
      const counts = dcganParamCounts(conditional({ ...DEFAULT_DCGAN, preset }, classes));
      console.log(`${key}: G ${counts.generator}, D ${counts.discriminator}`);
      deepEqual(
        { generator: counts.generator, discriminator: counts.discriminator },
        HAND_COUNTS[key],
      );
      deepEqual(counts.total, counts.generator + counts.discriminator);
    }
  }
});

testEachBackend(
  "dcganParamCounts() equals the trainable parameters of the allocated pair, every preset",
  (b) => {
    for (const preset of DCGAN_PRESETS) {
      for (const classes of [0, 10]) {
        const config = conditional({ ...DEFAULT_DCGAN, preset }, classes);
        const g = new ParamStore(b);
        const d = new ParamStore(b);
        defineGenerator(g, new Rng(0), config);
        defineDiscriminator(d, new Rng(0), config);
        const counts = dcganParamCounts(config);
        deepEqual(
          [counts.generator, counts.discriminator],
          [g.count(), d.count()],
          `${preset}/${classes}`,
        );
        g.dispose();
        d.dispose();
      }
    }
  },
  { only: ["tfjs-cpu"] },
);

Deno.test("generatorWidths() widens only the second block for dcgan-wide", () => {
  deepEqual(generatorWidths("dcgan", 64, 3), [256, 128, 64, 3]);
  deepEqual(generatorWidths("dcgan-wide", 64, 3), [256, 256, 64, 3]);
});

Deno.test("defineGenerator() rejects an unknown preset and a conditional model without channels", () => {
  throws(
    () => dcganParamCounts({ ...DEFAULT_DCGAN, preset: "dcgan-huge" as "dcgan" }),
    /unknown DCGAN preset "dcgan-huge"; choose one of dcgan, dcgan-wide/,
  );
  throws(
    () => dcganParamCounts({ ...DEFAULT_DCGAN, numClasses: 3, embedDim: 0 }),
    /needs embedDim >= 1/,
  );
  throws(() => dcganParamCounts({ ...DEFAULT_DCGAN, ngf: 0 }), /ngf must be a positive/);
});

testEachBackend(
  "defineGenerator()/defineDiscriminator() use PyTorch's state_dict names, shapes and counts",
  (backend) => {
    const fixture = loadStateDictFixture();
    for (const preset of DCGAN_PRESETS) {
      for (const classes of [0, 10]) {
        const key = `${preset}/${classes ? "cond10" : "uncond"}`;
        using pair = buildPair(backend, conditional({ ...DEFAULT_DCGAN, preset }, classes));
        for (const net of ["generator", "discriminator"] as const) {
          const ours = pair[net].names().map((n) => [n, [...pair[net].get(n).shape]]);
          deepEqual(ours, fixture.models[key][net], `${key} ${net}`);
          deepEqual(pair[net].count(), HAND_COUNTS[key][net], `${key} ${net} count`);
        }
      }
    }
  },
);

testEachBackend(
  "defineGenerator() draws conv weights from N(0, 0.02), BatchNorm scales from N(1, 0.02)",
  (backend) => {
    using pair = buildPair(backend, DEFAULT_DCGAN);
    const moments = (data: Float32Array) => {
      let sum = 0;
      for (const v of data) sum += v;
      const mean = sum / data.length;
      let sq = 0;
      for (const v of data) sq += (v - mean) ** 2;
      return { mean, std: Math.sqrt(sq / data.length) };
    };
    const g = pair.generator.toHost();
    const d = pair.discriminator.toHost();
    const conv = moments(g.get("main.3.weight")!.data); // 524288 draws
    ok(Math.abs(conv.mean) < 1e-3 && Math.abs(conv.std - 0.02) < 4e-4, JSON.stringify(conv));
    const dConv = moments(d.get("main.5.weight")!.data); // 524288 draws
    ok(Math.abs(dConv.mean) < 1e-3 && Math.abs(dConv.std - 0.02) < 4e-4, JSON.stringify(dConv));
    // 256 draws each (G main.1, D main.6): the std estimate's standard error is ~0.0009.
    for (
      const scale of [moments(g.get("main.1.weight")!.data), moments(d.get("main.6.weight")!.data)]
    ) {
      ok(
        Math.abs(scale.mean - 1) < 0.005 && Math.abs(scale.std - 0.02) < 0.005,
        JSON.stringify(scale),
      );
    }
    const host = g;
    ok(host.get("main.1.bias")!.data.every((v) => v === 0));
    ok(host.get("main.1.running_var")!.data.every((v) => v === 1));
  },
);

testEachBackend(
  "generatorForward() gives [B, 3, 32, 32] in (-1, 1) and discriminatorForward() [B] for every preset",
  (backend) => {
    const batch = 3;
    for (const preset of DCGAN_PRESETS) {
      for (const classes of [0, 4]) {
        const config = conditional({ ...DEFAULT_DCGAN, preset, nz: 16, ngf: 8, ndf: 8 }, classes);
        using pair = buildPair(backend, config);
        backend.scope(() => {
          const rng = new Rng(1);
          const z = backend.tensor(rng.normal(batch * 16), [batch, 16, 1, 1]);
          const labels = classes ? backend.tensor([0, 3, 1], [batch], "int32") : undefined;
          for (const training of [true, false]) {
            const images = generatorForward(backend, pair.generator, config, z, labels, {
              training,
            });
            deepEqual([...images.shape], [batch, 3, 32, 32]);
            ok((backend.read(images) as Float32Array).every((v) => v > -1 && v < 1));
            const logits = discriminatorForward(
              backend,
              pair.discriminator,
              config,
              images,
              labels,
              {
                training,
              },
            );
            deepEqual([...logits.shape], [batch]);
            ok((backend.read(logits) as Float32Array).every(Number.isFinite));
          }
        });
        // D's first conv sees the image channels plus one channel per embedding dimension.
        deepEqual([...pair.discriminator.get("main.0.weight").shape], [8, 3 + classes, 4, 4]);
        deepEqual([...pair.generator.get("main.0.weight").shape], [16 + classes, 32, 4, 4]);
      }
    }
  },
);

testEachBackend(
  "the label channels carry the label: same z or image, other label, other output",
  (backend) => {
    const config = conditional({ ...DEFAULT_DCGAN, nz: 16, ngf: 8, ndf: 8 }, 3);
    using pair = buildPair(backend, config);
    backend.scope(() => {
      const z = backend.tensor(new Rng(2).normal(2 * 16), [2, 16, 1, 1]);
      const run = (labels: number[]) => {
        const y = backend.tensor(labels, [2], "int32");
        const images = generatorForward(backend, pair.generator, config, z, y, { training: false });
        const logits = discriminatorForward(backend, pair.discriminator, config, images, y, {
          training: false,
        });
        return { images: backend.read(images), logits: backend.read(logits), imagesT: images };
      };
      const a = run([0, 0]);
      const b = run([2, 0]);
      const perImage = 3 * 32 * 32;
      // Only image 0's label changed: image 0 differs clearly, image 1 is untouched (eval mode).
      // A fresh DCGAN's outputs are tiny in eval mode (N(0, 0.02) weights, running var 1), so
      // the change is measured against the image's own scale.
      const image0 = a.images.subarray(0, perImage);
      const scale = maxAbsDiff(image0, new Float32Array(perImage));
      const change = maxAbsDiff(image0, b.images.subarray(0, perImage));
      ok(change > 0.1 * scale, `label changed image 0 by ${change} (scale ${scale})`);
      deepEqual(maxAbsDiff(a.images.subarray(perImage), b.images.subarray(perImage)), 0);
      // D on the same image with another label gives another logit.
      const y1 = backend.tensor([1, 1], [2], "int32");
      const y2 = backend.tensor([2, 2], [2], "int32");
      const mode = { training: false };
      const l1 = backend.read(
        discriminatorForward(backend, pair.discriminator, config, a.imagesT, y1, mode),
      );
      const l2 = backend.read(
        discriminatorForward(backend, pair.discriminator, config, a.imagesT, y2, mode),
      );
      ok(maxAbsDiff(l1, l2) > 1e-4, `logits ${l1} vs ${l2}`);
    });
  },
);

testEachBackend(
  "generatorForward() and discriminatorForward() match PyTorch's modules on the same weights",
  (backend) => {
    const fixture = loadStepFixture();
    const config: DcganModelConfig = { ...fixture.config };
    using pair = buildPair(backend, config);
    pair.generator.load(toHostTensors(fixture.initial.generator));
    pair.discriminator.load(toHostTensors(fixture.initial.discriminator));
    backend.scope(() => {
      const labels = backend.tensor(fixture.labels, [fixture.labels.length], "int32");
      const z = backend.tensor(decode(fixture.z), fixture.z.shape);
      const images = generatorForward(backend, pair.generator, config, z, labels, {
        training: true,
      });
      const gDiff = maxAbsDiff(backend.read(images), decode(fixture.generatorTrainOutput));
      const real = backend.tensor(decode(fixture.real), fixture.real.shape);
      const logits = discriminatorForward(backend, pair.discriminator, config, real, labels, {
        training: true,
      });
      const dDiff = maxAbsDiff(backend.read(logits), decode(fixture.discriminatorTrainLogits));
      console.log(`max |ours - torch|: G ${gDiff.toExponential(2)}, D ${dDiff.toExponential(2)}`);
      ok(gDiff < 1e-4, `generator differs by ${gDiff}`);
      ok(dDiff < 1e-4, `discriminator differs by ${dDiff}`);
    });
  },
);

testEachBackend(
  "generatorForward() names the expected shape when given bad noise or no labels",
  (backend) => {
    const config = conditional({ ...DEFAULT_DCGAN, nz: 16, ngf: 8, ndf: 8 }, 2);
    using pair = buildPair(backend, config);
    backend.scope(() => {
      const flat = backend.zeros([2, 16]);
      throws(
        () =>
          generatorForward(backend, pair.generator, config, flat, undefined, { training: false }),
        /generator noise must be \[B, 16, 1, 1\], got \[2,16\]/,
      );
      const z = backend.zeros([2, 16, 1, 1]);
      throws(
        () => generatorForward(backend, pair.generator, config, z, undefined, { training: false }),
        /needs labels/,
      );
      const small = backend.zeros([2, 3, 16, 16]);
      const labels = backend.tensor([0, 1], [2], "int32");
      throws(
        () =>
          discriminatorForward(backend, pair.discriminator, config, small, labels, {
            training: false,
          }),
        /discriminator input must be \[B, 3, 32, 32\]/,
      );
    });
  },
);
