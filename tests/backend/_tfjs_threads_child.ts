/**
 * Child process of tfjs_threads_test.ts: one DCGAN-sized training step's kernels (a strided
 * conv, a transposed conv, their gradients, a matmul) on tfjs-wasm with the build that
 * DENO_DIFFUSION_TFJS_THREADS selects; prints the device and every result's float32 bits as
 * JSON. It never disposes its backend: the process must still exit.
 *
 * @module
 */
import { createTfjsBackend } from "../../src/backend/tfjs.ts";
import { Rng } from "../../src/core/rng.ts";

const b = await createTfjsBackend("wasm");
const rng = new Rng(11);
const param = (shape: number[]) =>
  b.variable(b.tensor(rng.normal(shape.reduce((a, d) => a * d)), shape), true);
const x = param([16, 64, 16, 16]);
const w = param([128, 64, 4, 4]);
const wt = param([128, 64, 4, 4]);
const m = param([512, 256]);
const lossOf = () => {
  const y = b.conv2d(x, w, undefined, { stride: 2, padding: 1 }); // [16, 128, 8, 8]
  const up = b.convTranspose2d(y, wt, undefined, { stride: 2, padding: 1 }); // [16, 64, 16, 16]
  const flat = b.reshape(up, [256, 1024]);
  return b.mean(b.pow(b.matmul(b.slice(flat, [0, 0], [256, 512]), m), 2));
};
const { value, grads } = b.valueAndGrad(lossOf, [x, w, wt, m]);
const bits = (t: Float32Array) => Array.from(new Uint32Array(t.buffer, t.byteOffset, t.length));
console.log(JSON.stringify({
  device: b.device,
  value,
  grads: grads.map((g) => bits(b.read(g) as Float32Array)),
}));
