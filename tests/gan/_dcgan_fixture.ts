/**
 * Reads the PyTorch fixtures written by tests/fixtures/make_dcgan_fixtures.py.
 *
 * @module
 */
import type { HostTensor } from "../../src/nn/params.ts";

/** A float32 array as the fixture script stores it. */
export interface EncodedArray {
  shape: number[];
  b64: string;
}

/** One PyTorch training step of a small conditional dcgan-wide pair (see the script). */
export interface DcganStepFixture {
  torch: string;
  config: {
    preset: "dcgan" | "dcgan-wide";
    nz: number;
    ngf: number;
    ndf: number;
    numClasses: number;
    embedDim: number;
    smooth: boolean;
    dNoise: number;
    channels: number;
    imageSize: number;
  };
  z: EncodedArray;
  labels: number[];
  real: EncodedArray;
  initial: Record<"generator" | "discriminator", Record<string, EncodedArray>>;
  generatorTrainOutput: EncodedArray;
  discriminatorTrainLogits: EncodedArray;
  metrics: { lossD: number; lossG: number; dReal: number; dFake: number };
  grads: Record<"generator" | "discriminator", Record<string, EncodedArray>>;
  after: Record<"generator" | "discriminator", Record<string, EncodedArray>>;
  generatorEvalOutputAfter: EncodedArray;
}

/** Names and shapes of state_dict() per "preset/uncond|cond10" and network. */
export interface DcganStateDictFixture {
  torch: string;
  models: Record<string, Record<"generator" | "discriminator", [string, number[]][]>>;
}

const dir = new URL("../fixtures/", import.meta.url);

/** Loads dcgan_step.json. */
export function loadStepFixture(): DcganStepFixture {
  return JSON.parse(Deno.readTextFileSync(new URL("dcgan_step.json", dir)));
}

/** Loads dcgan_state_dict.json. */
export function loadStateDictFixture(): DcganStateDictFixture {
  return JSON.parse(Deno.readTextFileSync(new URL("dcgan_state_dict.json", dir)));
}

/** Decodes base64 little-endian float32. */
export function decode(array: EncodedArray): Float32Array {
  const bytes = Uint8Array.from(atob(array.b64), (c) => c.charCodeAt(0));
  const view = new DataView(bytes.buffer);
  const out = new Float32Array(bytes.length / 4);
  for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(4 * i, true);
  return out;
}

/** A fixture state dict as the host tensors {@link ParamStore.load} takes. */
export function toHostTensors(dict: Record<string, EncodedArray>): Map<string, HostTensor> {
  return new Map(
    Object.entries(dict).map(([name, a]) => [name, { shape: a.shape, data: decode(a) }]),
  );
}

/** Largest |a_i - b_i|; throws when the lengths differ. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
}
