/**
 * Regression: libtorch 1.13's CPU gelu_backward is wrong when grad_output's memory layout
 * differs from the input's (e.g. a channels_last gradient from a oneDNN conv flowing into a
 * contiguous 1-channel conv's GELU). The shim re-lays the gradient out; this checks torch-cpu's
 * gradients against tfjs-cpu's, an independent implementation, on the same weights.
 */
import assert from "node:assert/strict";
import type { Backend } from "../../src/backend/backend.ts";
import { Rng } from "../../src/core/rng.ts";
import { createBackend, listBackends } from "../../src/backend/select.ts";

function gradients(b: Backend, inChannels: number, permuted: boolean): Float32Array[] {
  const rng = new Rng(1);
  const v = (shape: number[], scale: number) =>
    b.variable(
      b.tensor(rng.normal(shape.reduce((a, d) => a * d)).map((x) => x * scale), shape),
      true,
    );
  const w1 = v([8, inChannels, 3, 3], 0.3);
  const w2 = v([8, 8, 3, 3], 0.1);
  const gain = b.variable(b.full([8], 1), true);
  const shift = b.variable(b.full([8], 0), true);
  const x = b.tensor(rng.normal(4 * inChannels * 64), [4, inChannels, 8, 8]);
  const loss = () => {
    const h1 = b.gelu(b.groupNorm(b.conv2d(x, w1, undefined, { padding: 1 }), 1, gain, shift));
    const h = b.conv2d(
      permuted ? b.permute(b.gelu(b.permute(h1, [0, 1, 3, 2])), [0, 1, 3, 2]) : h1,
      w2,
      undefined,
      {
        padding: 1,
      },
    );
    return b.mean(b.mul(h, h));
  };
  const { grads } = b.valueAndGrad(loss, [w1, w2, gain, shift]);
  return grads.map((g) => Float32Array.from(b.read(g)));
}

const available = new Set((await listBackends()).filter((i) => i.available).map((i) => i.name));

for (const [inChannels, permuted] of [[1, false], [3, false], [3, true]] as const) {
  Deno.test({
    name: `gelu gradients on torch-cpu equal tfjs-cpu's (${inChannels} input channels${
      permuted ? ", transposed" : ""
    })`,
    ignore: !available.has("torch-cpu") &&
      !Deno.env.get("DENO_DIFFUSION_REQUIRE")?.includes("torch-cpu"),
    async fn() {
      const torch = await createBackend("torch-cpu");
      const reference = await createBackend("tfjs-cpu");
      try {
        const [a, b] = [
          gradients(torch, inChannels, permuted),
          gradients(reference, inChannels, permuted),
        ];
        a.forEach((g, i) => {
          const scale = Math.max(...b[i].map(Math.abs));
          const worst = Math.max(...g.map((value, j) => Math.abs(value - b[i][j])));
          assert.ok(
            worst <= 1e-4 * Math.max(scale, 1e-3),
            `gradient ${i}: max difference ${worst} (scale ${scale})`,
          );
        });
      } finally {
        torch.dispose();
        reference.dispose();
      }
    },
  });
}
