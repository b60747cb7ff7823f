/**
 * The deterministic weights and inputs of tests/fixtures/make_unet_fixtures.py, recomputed in
 * TypeScript so a forward pass can be compared with PyTorch's without shipping the weights.
 *
 * @module
 */
import type { HostTensor, ParamStore } from "../../src/nn/params.ts";

/** The fixture written by make_unet_fixtures.py. */
export interface UNetFixture {
  presets: Record<
    string,
    { params: number; paramsWith10Classes: number; names: [string, number[]][] }
  >;
  forward: {
    preset: string;
    numClasses: number;
    t: number[];
    labels: number[] | null;
    output: number[];
  }[];
}

/** Loads tests/fixtures/unet_reference.json. */
export function loadUNetFixture(): UNetFixture {
  const url = new URL("../fixtures/unet_reference.json", import.meta.url);
  return JSON.parse(Deno.readTextFileSync(url));
}

/** Loads the fixture's formula weights into `store` (names in state_dict order). */
export function loadFormulaWeights(store: ParamStore): void {
  const weights = new Map<string, HostTensor>();
  const host = store.toHost();
  [...host].forEach(([name, { shape }], k) => {
    const n = shape.reduce((a, d) => a * d, 1);
    const data = new Float32Array(n);
    const fanIn = shape.length >= 2 ? shape.slice(1).reduce((a, d) => a * d, 1) : 1;
    for (let j = 0; j < n; j++) {
      const a = Math.sin(0.37 * j + 0.71 * k);
      data[j] = shape.length >= 2
        ? a / Math.sqrt(fanIn)
        : name.endsWith("weight")
        ? 1 + 0.1 * a
        : 0.1 * a;
    }
    weights.set(name, { shape, data });
  });
  store.load(weights);
}

/** The fixture's input x[i] = sin(0.13 i), [2, 3, 8, 8]. */
export function formulaInput(): Float32Array {
  return Float32Array.from({ length: 2 * 3 * 8 * 8 }, (_, i) => Math.sin(0.13 * i));
}
