/**
 * torch-cpu keeps conv activations channels_last; gradients flowing back through other ops then
 * arrive in a different memory layout than those ops' inputs (the kind of mismatch that broke
 * libtorch 1.13's gelu_backward, see gelu_layout_test.ts). For every differentiable op that
 * sits between convolutions in the models, this compares torch-cpu's parameter gradients with
 * tfjs-cpu's (an independent implementation) on the same weights, with the op applied both
 * directly and on a transposed view.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { Backend, Tensor } from "../../src/backend/backend.ts";
import { Rng } from "../../src/core/rng.ts";
import { createBackend, listBackends } from "../../src/backend/select.ts";

type Op = (b: Backend, t: Tensor) => Tensor;

const OPS: Record<string, Op> = {
  silu: (b, t) => b.silu(t),
  relu: (b, t) => b.relu(t),
  leakyRelu: (b, t) => b.leakyRelu(t, 0.2),
  tanh: (b, t) => b.tanh(t),
  sigmoid: (b, t) => b.sigmoid(t),
  gelu: (b, t) => b.gelu(t),
  "mul (square)": (b, t) => b.mul(t, t),
  pow: (b, t) => b.pow(t, 2),
  abs: (b, t) => b.abs(t),
  clamp: (b, t) => b.clamp(t, -0.3, 0.3),
  "softmax over channels": (b, t) => b.softmax(t, 1),
  "maxPool2d + bilinear x2": (b, t) => b.interpolateBilinear(b.maxPool2d(t, 2, 2), [8, 8], true),
  "avgPool2d + bilinear": (b, t) =>
    b.interpolateBilinear(b.avgPool2d(t, 3, 1, 1, false), [8, 8], false),
  groupNorm: (b, t) => b.groupNorm(t, 2, b.full([8], 1.5), b.full([8], 0.1)),
  batchNorm: (b, t) =>
    b.batchNorm(
      t,
      undefined,
      undefined,
      b.variable(b.zeros([8]), false),
      b.variable(b.full([8], 1), false),
      {
        training: true,
      },
    ),
};

function gradients(b: Backend, inChannels: number, transposed: boolean, op: Op): Float32Array[] {
  let out: Float32Array[] = [];
  b.scope(() => {
    const rng = new Rng(7);
    const param = (shape: number[], scale: number) =>
      b.variable(
        b.tensor(rng.normal(shape.reduce((a, d) => a * d)).map((v) => v * scale), shape),
        true,
      );
    const w1 = param([8, inChannels, 3, 3], 0.3);
    const w2 = param([8, 8, 3, 3], 0.1);
    const x = b.tensor(rng.normal(4 * inChannels * 64), [4, inChannels, 8, 8]);
    const { grads } = b.valueAndGrad(() => {
      const h = b.conv2d(x, w1, undefined, { padding: 1 }); // [4, 8, 8, 8]
      const a = transposed ? b.permute(op(b, b.permute(h, [0, 1, 3, 2])), [0, 1, 3, 2]) : op(b, h);
      const y = b.conv2d(a, w2, undefined, { padding: 1 });
      return b.mean(b.mul(y, y));
    }, [w1, w2]);
    out = grads.map((g) => Float32Array.from(b.read(g)));
    for (const t of [w1, w2]) t.dispose();
  });
  return out;
}

const available = new Set((await listBackends()).filter((i) => i.available).map((i) => i.name));
const required = Deno.env.get("DENO_DIFFUSION_REQUIRE")?.includes("torch-cpu") ?? false;

for (const [name, op] of Object.entries(OPS)) {
  Deno.test({
    name: `${name} gradients on torch-cpu equal tfjs-cpu's under mixed memory layouts`,
    ignore: !(available.has("torch-cpu") && available.has("tfjs-cpu")) && !required,
    sanitizeResources: false,
    sanitizeOps: false,
    async fn() {
      const torch = await createBackend("torch-cpu");
      const reference = await createBackend("tfjs-cpu");
      try {
        for (const [inChannels, transposed] of [[1, false], [3, false], [3, true]] as const) {
          const actual = gradients(torch, inChannels, transposed, op);
          const expected = gradients(reference, inChannels, transposed, op);
          actual.forEach((g, i) => {
            const scale = Math.max(...expected[i].map(Math.abs));
            const worst = Math.max(...g.map((v, j) => Math.abs(v - expected[i][j])));
            assert.ok(
              worst <= 1e-4 * Math.max(scale, 1e-3),
              `${inChannels} channels${transposed ? ", transposed" : ""}, gradient ${i}: ` +
                `max difference ${worst} (scale ${scale})`,
            );
          });
        }
      } finally {
        torch.dispose();
        reference.dispose();
      }
    },
  });
}
