/**
 * THE conformance suite: every op of the Backend interface, forward and gradient, on every
 * available backend, against values computed by PyTorch (tests/fixtures/backend_ops.json, made
 * by tests/fixtures/make_backend_fixtures.py).
 *
 * Tolerance: |actual - expected| <= ATOL + RTOL * |expected| elementwise, with
 * ATOL = 1e-4 and RTOL = 1e-4 for forward values and gradients (float32 kernels that sum in a
 * different order differ by a few ulps; these inputs are O(1)). int32 results must be exact.
 *
 * @module
 */
import assert from "node:assert/strict";
import { type Backend, BackendError, type Tensor } from "../../src/backend/backend.ts";
import { testEachBackend as eachBackend } from "../_backends.ts";

/** Every case runs on every available backend, a software WebGPU adapter (lavapipe) included. */
function testEachBackend(name: string, fn: (b: Backend) => void): void {
  eachBackend(name, fn, { softwareGpu: true });
}

const ATOL = 1e-4;
const RTOL = 1e-4;

interface Encoded {
  shape: number[];
  data: number[];
  dtype?: "int32";
  grad?: boolean;
}

interface OpCase {
  name: string;
  op: string;
  attrs: Record<string, unknown>;
  inputs: Record<string, Encoded>;
  expected: Encoded;
  upstream?: Encoded;
  grads?: Record<string, Encoded>;
  after?: Record<string, Encoded>;
}

interface AdamCase {
  name: string;
  op: "adamStep";
  attrs: { lr: number; beta1: number; beta2: number; eps: number; weightDecay: number };
  params: Encoded[];
  gradSteps: Encoded[][];
  expectedParams: Encoded[];
  expectedM: Encoded[];
  expectedV: Encoded[];
}

interface EmaCase {
  name: string;
  op: "emaUpdate";
  attrs: { decay: number };
  targets: Encoded[];
  sources: Encoded[];
  expected: Encoded[];
}

const fixture = JSON.parse(
  await Deno.readTextFile(new URL("../fixtures/backend_ops.json", import.meta.url)),
) as { torch: string; cases: (OpCase | AdamCase | EmaCase)[] };

/** Asserts `actual` is elementwise close to `expected` (exact for int32), naming what differs. */
function assertClose(
  backend: Backend,
  what: string,
  actual: Tensor,
  expected: Encoded,
): void {
  assert.deepEqual([...actual.shape], expected.shape, `${what}: shape`);
  const data = backend.read(actual);
  if (expected.dtype === "int32") {
    assert.equal(actual.dtype, "int32", `${what}: dtype`);
    assert.deepEqual([...data], expected.data, `${what}: values`);
    return;
  }
  assertArrayClose(what, data, expected.data);
}

function assertArrayClose(what: string, actual: ArrayLike<number>, expected: number[]): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  let worst = -1;
  let worstErr = 0;
  for (let i = 0; i < expected.length; i++) {
    const err = Math.abs(actual[i] - expected[i]) - RTOL * Math.abs(expected[i]);
    if (!(err <= ATOL) && (worst < 0 || err > worstErr || Number.isNaN(actual[i]))) {
      worst = i;
      worstErr = err;
    }
  }
  if (worst >= 0) {
    assert.fail(
      `${what}: element ${worst} is ${actual[worst]}, expected ${expected[worst]} ` +
        `(atol ${ATOL}, rtol ${RTOL})`,
    );
  }
}

function upload(backend: Backend, e: Encoded): Tensor {
  return backend.tensor(e.data, e.shape, e.dtype ?? "float32");
}

type Attrs = Record<string, unknown>;
type Inputs = Record<string, Tensor>;
const num = (a: Attrs, k: string) => a[k] as number;

/** How each fixture op maps onto the Backend interface. */
const OPS: Record<string, (b: Backend, x: Inputs, a: Attrs) => Tensor> = {
  conv2d: (b, x, a) =>
    b.conv2d(x.x, x.w, x.b, {
      stride: a.stride as number | undefined,
      padding: a.padding as number | [number, number] | undefined,
      activation: a.activation as "relu" | undefined,
    }),
  convTranspose2d: (b, x, a) =>
    b.convTranspose2d(x.x, x.w, x.b, {
      stride: a.stride as number,
      padding: a.padding as number,
      outputPadding: a.outputPadding as number | undefined,
    }),
  groupNorm: (b, x, a) => b.groupNorm(x.x, num(a, "groups"), x.w, x.b, num(a, "eps")),
  layerNorm: (b, x, a) => b.layerNorm(x.x, x.w, x.b, num(a, "eps")),
  batchNorm: (b, x, a) =>
    b.batchNorm(x.x, x.w, x.b, x.runningMean, x.runningVar, {
      training: a.training as boolean,
      momentum: num(a, "momentum"),
      eps: num(a, "eps"),
    }),
  maxPool2d: (b, x, a) => b.maxPool2d(x.x, num(a, "kernel"), num(a, "stride"), num(a, "padding")),
  avgPool2d: (b, x, a) =>
    b.avgPool2d(
      x.x,
      num(a, "kernel"),
      num(a, "stride"),
      num(a, "padding"),
      a.countIncludePad as boolean,
    ),
  interpolateBilinear: (b, x, a) =>
    b.interpolateBilinear(x.x, a.size as [number, number], a.alignCorners as boolean),
  linear: (b, x) => b.linear(x.x, x.w, x.b),
  matmul: (b, x) => b.matmul(x.a, x.b),
  attention: (b, x) => b.attention(x.q, x.k, x.v),
  mseLoss: (b, x) => b.mseLoss(x.pred, x.target),
  bceWithLogits: (b, x) => b.bceWithLogits(x.logits, x.targets),
  gelu: (b, x) => b.gelu(x.x),
  silu: (b, x) => b.silu(x.x),
  relu: (b, x) => b.relu(x.x),
  leakyRelu: (b, x, a) => b.leakyRelu(x.x, num(a, "slope")),
  tanh: (b, x) => b.tanh(x.x),
  sigmoid: (b, x) => b.sigmoid(x.x),
  neg: (b, x) => b.neg(x.x),
  abs: (b, x) => b.abs(x.x),
  exp: (b, x) => b.exp(x.x),
  log: (b, x) => b.log(x.x),
  sqrt: (b, x) => b.sqrt(x.x),
  pow: (b, x, a) => b.pow(x.x, num(a, "p")),
  clamp: (b, x, a) => b.clamp(x.x, num(a, "min"), num(a, "max")),
  softmax: (b, x, a) => b.softmax(x.x, num(a, "axis")),
  add: (b, x, a) => b.add(x.a, (a.scalar as number | undefined) ?? x.b),
  sub: (b, x, a) => b.sub(x.a, (a.scalar as number | undefined) ?? x.b),
  mul: (b, x, a) => b.mul(x.a, (a.scalar as number | undefined) ?? x.b),
  div: (b, x, a) => b.div(x.a, (a.scalar as number | undefined) ?? x.b),
  where: (b, x) => b.where(x.cond, x.a, x.b),
  greater: (b, x, a) => b.greater(x.a, (a.scalar as number | undefined) ?? x.b),
  sum: (b, x, a) => b.sum(x.x, a.axes as number[] | undefined, a.keepDims as boolean | undefined),
  mean: (b, x, a) => b.mean(x.x, a.axes as number[] | undefined, a.keepDims as boolean | undefined),
  max: (b, x, a) => b.max(x.x, a.axes as number[] | undefined, a.keepDims as boolean | undefined),
  reshape: (b, x, a) => b.reshape(x.x, a.shape as number[]),
  permute: (b, x, a) => b.permute(x.x, a.dims as number[]),
  slice: (b, x, a) => b.slice(x.x, a.begin as number[], a.size as number[]),
  cat: (b, x, a) => b.cat(Object.values(x), num(a, "axis")),
  gather: (b, x, a) => b.gather(x.a, x.indices, num(a, "axis")),
  cast: (b, x, a) => b.cast(x.x, a.dtype as "float32" | "int32"),
};

function runOpCase(b: Backend, c: OpCase): void {
  const op = OPS[c.op];
  assert.ok(op, `no mapping for op ${c.op}`);
  // Inputs we differentiate are trainable variables; batchNorm's running stats are buffers.
  const inputs: Inputs = {};
  const params: Tensor[] = [];
  const paramNames: string[] = [];
  const variables: Tensor[] = [];
  b.scope(() => {
    for (const [name, e] of Object.entries(c.inputs)) {
      if (e.grad) {
        inputs[name] = b.variable(upload(b, e), true);
        params.push(inputs[name]);
        paramNames.push(name);
        variables.push(inputs[name]);
      } else if (name === "runningMean" || name === "runningVar") {
        inputs[name] = b.variable(upload(b, e), false);
        variables.push(inputs[name]);
      }
    }
  });
  try {
    b.scope(() => {
      for (const [name, e] of Object.entries(c.inputs)) inputs[name] ??= upload(b, e);
      if (c.grads && c.upstream) {
        const upstream = upload(b, c.upstream);
        let checked = false;
        const { grads } = b.valueAndGrad(() => {
          const out = op(b, inputs, c.attrs);
          assertClose(b, `${c.op} forward`, out, c.expected);
          checked = true;
          return b.sum(b.mul(out, upstream));
        }, params);
        assert.ok(checked);
        grads.forEach((g, i) => {
          assertClose(b, `${c.op} d/d${paramNames[i]}`, g, c.grads![paramNames[i]]);
        });
      } else {
        assertClose(b, `${c.op} forward`, op(b, inputs, c.attrs), c.expected);
      }
      for (const [name, e] of Object.entries(c.after ?? {})) {
        assertClose(b, `${c.op} ${name} afterwards`, inputs[name], e);
      }
    });
  } finally {
    for (const v of variables) v.dispose();
  }
}

for (const c of fixture.cases) {
  if (c.op === "adamStep") {
    const ac = c as AdamCase;
    testEachBackend(`adamStep(): ${ac.name}`, (b) => {
      const params = ac.params.map((e) => b.scope(() => b.variable(upload(b, e), true)));
      const state = {
        step: 0,
        m: ac.params.map((e) => b.scope(() => b.variable(b.zeros(e.shape), false))),
        v: ac.params.map((e) => b.scope(() => b.variable(b.zeros(e.shape), false))),
      };
      for (const step of ac.gradSteps) {
        b.scope(() => b.adamStep(params, step.map((e) => upload(b, e)), state, ac.attrs));
      }
      assert.equal(state.step, ac.gradSteps.length);
      params.forEach((p, i) => assertClose(b, `adamStep param ${i}`, p, ac.expectedParams[i]));
      state.m.forEach((m, i) => assertClose(b, `adamStep exp_avg ${i}`, m, ac.expectedM[i]));
      state.v.forEach((v, i) => assertClose(b, `adamStep exp_avg_sq ${i}`, v, ac.expectedV[i]));
    });
  } else if (c.op === "emaUpdate") {
    const ec = c as EmaCase;
    testEachBackend(`emaUpdate(): ${ec.name}`, (b) => {
      const targets = ec.targets.map((e) => b.scope(() => b.variable(upload(b, e), false)));
      b.scope(() => b.emaUpdate(targets, ec.sources.map((e) => upload(b, e)), ec.attrs.decay));
      targets.forEach((t, i) => assertClose(b, `emaUpdate target ${i}`, t, ec.expected[i]));
    });
  } else {
    const oc = c as OpCase;
    testEachBackend(`${oc.op}(): ${oc.name}`, (b) => runOpCase(b, oc));
  }
}

// ---- creation, reading, memory (closed-form expectations) ----

testEachBackend("tensor() and read() round-trip float32 and int32 data", (b) => {
  b.scope(() => {
    const f = b.tensor([1.5, -2, 3.25, 0], [2, 2]);
    assert.equal(f.dtype, "float32");
    assert.deepEqual([...b.read(f)], [1.5, -2, 3.25, 0]);
    const i = b.tensor(new Int32Array([7, -3, 0]), [3]);
    assert.equal(i.dtype, "int32");
    assert.ok(b.read(i) instanceof Int32Array);
    assert.deepEqual([...b.read(i)], [7, -3, 0]);
    assert.deepEqual([...b.read(b.full([2, 1], 4.5))], [4.5, 4.5]);
    assert.deepEqual([...b.read(b.zeros([3]))], [0, 0, 0]);
  });
});

testEachBackend("scope() frees every tensor made inside except what it returns", (b) => {
  const base = b.liveTensors();
  const kept = b.scope(() => {
    const a = b.tensor([1, 2, 3], [3]);
    const c = b.add(a, 1);
    b.mul(c, c); // dropped
    return { c, list: [b.mul(c, 2)] };
  });
  assert.equal(b.liveTensors(), base + 2);
  assert.deepEqual([...b.read(kept.list[0])], [4, 6, 8]);
  kept.c.dispose();
  kept.list[0].dispose();
  assert.equal(b.liveTensors(), base);
});

testEachBackend("scope() keeps variables made inside and frees everything on a throw", (b) => {
  const base = b.liveTensors();
  const v = b.scope(() => b.variable(b.tensor([1, 2], [2]), true));
  assert.equal(b.liveTensors(), base + 1);
  assert.throws(() =>
    b.scope(() => {
      b.add(v, 1);
      throw new Error("boom");
    }), /boom/);
  assert.equal(b.liveTensors(), base + 1);
  v.dispose();
  assert.equal(b.liveTensors(), base);
});

testEachBackend("nested scope() hands kept tensors to the enclosing scope", (b) => {
  const base = b.liveTensors();
  b.scope(() => {
    const inner = b.scope(() => b.full([2], 3));
    assert.equal(b.liveTensors(), base + 1);
    assert.deepEqual([...b.read(inner)], [3, 3]);
  });
  assert.equal(b.liveTensors(), base);
});

testEachBackend("valueAndGrad() frees what lossFn made and returns one gradient per param", (b) => {
  const w = b.scope(() => b.variable(b.tensor([1, -2, 3], [3]), true));
  const base = b.liveTensors();
  const { value, grads } = b.valueAndGrad(() => b.sum(b.mul(w, w)), [w]);
  assert.equal(value, 14); // 1 + 4 + 9
  assert.equal(b.liveTensors(), base + 1);
  assert.deepEqual([...b.read(grads[0])], [2, -4, 6]); // d/dw sum(w^2) = 2w
  grads[0].dispose();
  w.dispose();
});

testEachBackend("valueAndGrad() gives zeros for a parameter the loss does not use", (b) => {
  const used = b.scope(() => b.variable(b.tensor([2], [1]), true));
  const unused = b.scope(() => b.variable(b.tensor([5, 6], [2]), true));
  const { grads } = b.valueAndGrad(() => b.sum(b.mul(used, 3)), [used, unused]);
  assert.deepEqual([...b.read(grads[0])], [3]);
  assert.deepEqual([...b.read(grads[1])], [0, 0]);
  for (const t of [...grads, used, unused]) t.dispose();
});

testEachBackend("assign() replaces a variable's value in place", (b) => {
  const v = b.scope(() => b.variable(b.zeros([2]), false));
  b.scope(() => b.assign(v, b.tensor([7, 8], [2])));
  assert.deepEqual([...b.read(v)], [7, 8]);
  v.dispose();
});

testEachBackend("eighFloat64() returns ascending eigenpairs with A v = lambda v", (b) => {
  if (!b.capabilities.eighFloat64) return; // declared unsupported: validate_test checks the error
  const n = 4;
  const a = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      a[i * n + j] = a[j * n + i] = Math.sin(i * 3 + j + 1) + (i === j ? 3 : 0);
    }
  }
  const { values, vectors } = b.eighFloat64(a, n);
  for (let k = 1; k < n; k++) assert.ok(values[k] >= values[k - 1]);
  for (let k = 0; k < n; k++) {
    for (let i = 0; i < n; i++) {
      let av = 0;
      for (let j = 0; j < n; j++) av += a[i * n + j] * vectors[j * n + k];
      assert.ok(Math.abs(av - values[k] * vectors[i * n + k]) < 1e-10, `eigenpair ${k}, row ${i}`);
    }
  }
});

testEachBackend(
  "eigvalshFloat64() keeps the small eigenvalues of a graded matrix to high relative accuracy",
  (b) => {
    if (!b.capabilities.eighFloat64) return; // declared unsupported: validate_test checks the error
    // M = D C D with C = [[2, 1, 0], [1, 2, 1], [0, 1, 2]] and D = diag(1, 1e-4, 1e-8): the
    // eigenvalues are, to relative 1e-8, the Schur-complement pivots 2, 1.5e-8, (4/3)·1e-16.
    const d = [1, 1e-4, 1e-8];
    const c = [[2, 1, 0], [1, 2, 1], [0, 1, 2]];
    const m = new Float64Array(9);
    for (let i = 0; i < 3; i++) for (let j = 0; j < 3; j++) m[i * 3 + j] = d[i] * c[i][j] * d[j];
    const values = b.eigvalshFloat64(m, 3);
    const expected = [(4 / 3) * 1e-16, 1.5e-8, 2];
    for (let k = 0; k < 3; k++) {
      const rel = Math.abs(values[k] - expected[k]) / expected[k];
      assert.ok(rel < 1e-6, `eigenvalue ${k}: ${values[k]} vs ${expected[k]}`);
    }
  },
);

testEachBackend("detach() stops gradients: d/dw sum(w * detach(w)) = w", (b) => {
  const w = b.scope(() => b.variable(b.tensor([1, -2, 3], [3]), true));
  const { grads } = b.valueAndGrad(() => b.sum(b.mul(w, b.detach(w))), [w]);
  assert.deepEqual([...b.read(grads[0])], [1, -2, 3]);
  grads[0].dispose();
  w.dispose();
});

testEachBackend("noGrad() returns fn's result and leaves gradients working afterwards", (b) => {
  const w = b.scope(() => b.variable(b.tensor([2, 3], [2]), true));
  const doubled = b.noGrad(() => b.scope(() => [...b.read(b.mul(w, 2))]));
  assert.deepEqual(doubled, [4, 6]);
  const { value, grads } = b.valueAndGrad(() => b.sum(b.mul(w, w)), [w]);
  assert.equal(value, 13);
  assert.deepEqual([...b.read(grads[0])], [4, 6]);
  grads[0].dispose();
  w.dispose();
});

testEachBackend("conv2d() refuses an unknown activation with a BackendError naming it", (b) => {
  b.scope(() => {
    const x = b.zeros([1, 2, 3, 3]);
    const w = b.zeros([1, 2, 1, 1]);
    const gelu = { activation: "gelu" } as unknown as { activation: "relu" };
    assert.throws(() => b.conv2d(x, w, undefined, gelu), (e: Error) => {
      assert.ok(e instanceof BackendError, `${e.name}: ${e.message}`);
      assert.match(e.message, /gelu/);
      return true;
    });
  });
});
