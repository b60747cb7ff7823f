/**
 * 3x3 stride-1 convolutions with channel counts that are multiples of 8: on torch-cpu these run
 * through the shim's Winograd F(4x4, 3x3) kernels (native/kernels/winograd.cpp) in forward, input-gradient
 * and weight-gradient. Every backend is checked against a direct float64 convolution written out
 * here (the definition, no tiling), on sizes whose outputs are not multiples of the 4x4 tile and
 * with padding 0, 1 and 2, so edge tiles and every padding branch are exercised.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { Backend } from "../../src/backend/backend.ts";
import { Rng } from "../../src/core/rng.ts";
import { testEachBackend } from "../_backends.ts";

interface ConvCase {
  n: number;
  cin: number;
  cout: number;
  h: number;
  w: number;
  padding: number;
  bias: boolean;
  /** x is a constant (as network inputs are): only dw and db are asked for. */
  constantInput?: boolean;
}

interface ConvResult {
  y: Float64Array; // [N, Cout, Ho, Wo]
  dx: Float64Array; // [N, Cin, H, W]
  dw: Float64Array; // [Cout, Cin, 3, 3]
  db: Float64Array; // [Cout]
}

/** Forward and gradients of sum(conv(x, w) + b) * r) by the definition, in float64. */
function directConv(
  c: ConvCase,
  x: Float32Array,
  w: Float32Array,
  b: Float32Array,
  r: Float32Array,
): ConvResult {
  const ho = c.h + 2 * c.padding - 2, wo = c.w + 2 * c.padding - 2;
  const y = new Float64Array(c.n * c.cout * ho * wo);
  const dx = new Float64Array(x.length), dw = new Float64Array(w.length);
  const db = new Float64Array(c.cout);
  for (let n = 0; n < c.n; n++) {
    for (let co = 0; co < c.cout; co++) {
      for (let oy = 0; oy < ho; oy++) {
        for (let ox = 0; ox < wo; ox++) {
          const out = ((n * c.cout + co) * ho + oy) * wo + ox;
          let acc = c.bias ? b[co] : 0;
          for (let ci = 0; ci < c.cin; ci++) {
            for (let ky = 0; ky < 3; ky++) {
              const iy = oy + ky - c.padding;
              if (iy < 0 || iy >= c.h) continue;
              for (let kx = 0; kx < 3; kx++) {
                const ix = ox + kx - c.padding;
                if (ix < 0 || ix >= c.w) continue;
                const xi = ((n * c.cin + ci) * c.h + iy) * c.w + ix;
                const wi = ((co * c.cin + ci) * 3 + ky) * 3 + kx;
                acc += x[xi] * w[wi];
                dx[xi] += r[out] * w[wi];
                dw[wi] += r[out] * x[xi];
              }
            }
          }
          y[out] = acc;
          db[co] += r[out];
        }
      }
    }
  }
  return { y, dx, dw, db };
}

function assertClose(actual: Float32Array, expected: Float64Array, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  let scale = 0, worst = 0;
  for (let i = 0; i < expected.length; i++) {
    scale = Math.max(scale, Math.abs(expected[i]));
    worst = Math.max(worst, Math.abs(actual[i] - expected[i]));
  }
  // F(4x4, 3x3) in float32 loses ~1e-5 of the output's magnitude (Lavin & Gray 2016, sec. 5).
  assert.ok(worst <= 5e-5 * scale, `${what}: max difference ${worst} at scale ${scale}`);
}

function check(backend: Backend, c: ConvCase, seed: number): void {
  const rng = new Rng(seed);
  const x = rng.normal(c.n * c.cin * c.h * c.w);
  const w = rng.normal(c.cout * c.cin * 9).map((v) => v * 0.2);
  const b = rng.normal(c.cout);
  const ho = c.h + 2 * c.padding - 2, wo = c.w + 2 * c.padding - 2;
  const r = rng.normal(c.n * c.cout * ho * wo);
  const expected = directConv(c, x, w, b, r);
  const label = JSON.stringify(c);
  backend.scope(() => {
    const xv = backend.variable(backend.tensor(x, [c.n, c.cin, c.h, c.w]), !c.constantInput);
    const wv = backend.variable(backend.tensor(w, [c.cout, c.cin, 3, 3]), true);
    const bv = backend.variable(backend.tensor(b, [c.cout]), true);
    const rt = backend.tensor(r, [c.n, c.cout, ho, wo]);
    const params = [...(c.constantInput ? [] : [xv]), wv, ...(c.bias ? [bv] : [])];
    let forward = new Float32Array(0);
    const { grads } = backend.valueAndGrad(() => {
      const y = backend.conv2d(xv, wv, c.bias ? bv : undefined, { padding: c.padding });
      forward = Float32Array.from(backend.read(y));
      return backend.sum(backend.mul(y, rt));
    }, params);
    const got = grads.map((g) => Float32Array.from(backend.read(g)));
    assertClose(forward, expected.y, `${label} forward`);
    if (!c.constantInput) assertClose(got.shift()!, expected.dx, `${label} dx`);
    assertClose(got.shift()!, expected.dw, `${label} dw`);
    if (c.bias) assertClose(got.shift()!, expected.db, `${label} db`);
    for (const t of [xv, wv, bv]) t.dispose();
  });
}

const CASES: ConvCase[] = [
  { n: 2, cin: 8, cout: 16, h: 9, w: 11, padding: 1, bias: true },
  { n: 1, cin: 16, cout: 8, h: 13, w: 7, padding: 0, bias: false },
  { n: 3, cin: 8, cout: 8, h: 6, w: 5, padding: 2, bias: true },
  { n: 1, cin: 24, cout: 32, h: 4, w: 4, padding: 1, bias: false },
  { n: 2, cin: 8, cout: 8, h: 7, w: 9, padding: 1, bias: true, constantInput: true },
];

testEachBackend("conv2d 3x3 stride 1 (Winograd on torch-cpu) equals the direct definition", (b) => {
  CASES.forEach((c, i) => check(b, c, 100 + i));
});

testEachBackend(
  "conv2d 3x3 stride 1 with a 1-row or 1-column output equals the direct definition",
  (b) => {
    check(b, { n: 2, cin: 8, cout: 8, h: 3, w: 10, padding: 0, bias: true }, 7);
    check(b, { n: 1, cin: 8, cout: 16, h: 9, w: 1, padding: 1, bias: true }, 8);
  },
);
