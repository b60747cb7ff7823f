/**
 * tfjs-webgpu under Deno: the main thread's backend whose ops run in the GPU worker. What the
 * request/reply layer must keep from the contract: errors arrive as the same BackendError
 * (op, shapes, detail) tfjs-cpu raises for the same call; freeing a handle frees the worker's
 * tensor; scopes and valueAndGrad nest and free what they made; reads work inside a scope and
 * inside a loss function; what cannot be done (nested valueAndGrad) says so and leaves the
 * backend usable; a program that never disposes the backend still exits.
 *
 * Needs a WebGPU adapter (lavapipe counts); without one these tests are skipped with the
 * reason (or fail, where DENO_DIFFUSION_REQUIRE names tfjs-webgpu).
 *
 * @module
 */
import assert from "node:assert/strict";
import { type Backend, BackendError } from "../../src/backend/backend.ts";
import { createBackend } from "../../src/backend/select.ts";
import { testEachBackend } from "../_backends.ts";

/** Only here: on tfjs-webgpu, a software adapter included. */
function webgpuTest(name: string, fn: (b: Backend) => void | Promise<void>): void {
  testEachBackend(name, fn, { only: ["tfjs-webgpu"], softwareGpu: true });
}

/** The error `fn` throws (asserting it throws). */
function caught(fn: () => unknown): Error {
  try {
    fn();
  } catch (e) {
    return e as Error;
  }
  assert.fail("expected an error");
}

webgpuTest("an op's error comes back as tfjs-cpu's BackendError: op, shapes, detail", async (b) => {
  const cpu = await createBackend("tfjs-cpu");
  try {
    const call = (k: Backend) => () => k.scope(() => k.matmul(k.zeros([2, 3]), k.zeros([4, 5])));
    const [gpuError, cpuError] = [caught(call(b)), caught(call(cpu))];
    assert.ok(gpuError instanceof BackendError, `${gpuError.name}: ${gpuError.message}`);
    assert.equal(gpuError.op, "matmul");
    assert.deepEqual(gpuError.shapes, [[2, 3], [4, 5]]);
    assert.equal(gpuError.message, cpuError.message);
    // A failure inside the worker's kernel code (not a shape check) also names the op.
    const bad = caught(() => b.scope(() => b.tensor([1, 2, 3], [2, 2])));
    assert.ok(bad instanceof BackendError);
    assert.match(bad.message, /^tensor\(\[2,2\]\)/);
  } finally {
    cpu.dispose();
  }
});

webgpuTest("disposing a handle frees the worker's tensor; a freed handle is refused", (b) => {
  const base = b.liveTensors();
  const t = b.tensor([1, 2, 3], [3]);
  const u = b.mul(t, 2);
  assert.equal(b.liveTensors(), base + 2);
  t.dispose();
  t.dispose(); // idempotent
  assert.ok(t.disposed);
  assert.equal(b.liveTensors(), base + 1);
  assert.deepEqual([...b.read(u)], [2, 4, 6]);
  const e = caught(() => b.add(t, 1));
  assert.ok(e instanceof BackendError);
  assert.match(e.message, /^add\(\[3\]\): a tensor was already disposed/);
  u.dispose();
  assert.equal(b.liveTensors(), base);
});

webgpuTest("read() gives the tensor's own array type after copy-free casts", (b) => {
  b.scope(() => {
    // tfjs-webgpu casts bool and int32 to float32 without copying the data.
    const mask = b.read(b.greater(b.tensor([1, 3], [2]), 2));
    assert.ok(mask instanceof Float32Array);
    assert.deepEqual([...mask], [0, 1]);
    const floats = b.read(b.cast(b.tensor(new Int32Array([-7, 5]), [2]), "float32"));
    assert.ok(floats instanceof Float32Array);
    assert.deepEqual([...floats], [-7, 5]);
    const ints = b.read(b.cast(b.tensor([2.7, -1.5], [2]), "int32"));
    assert.ok(ints instanceof Int32Array);
    assert.deepEqual([...ints], [2, -1]);
  });
});

webgpuTest("scope and valueAndGrad nest, read inside each other and free all they made", (b) => {
  const w = b.scope(() => b.variable(b.tensor([1, -2, 3], [3]), true));
  const base = b.liveTensors();
  let inner = NaN;
  const { value, grads } = b.scope(() => {
    const x = b.tensor([0.5, 1, 2], [3]);
    const result = b.valueAndGrad(() => {
      // loss = sum((w * x)^2) + sum(w[idx]) with idx = [2, 2]; read mid-way.
      const wx = b.scope(() => b.mul(w, x));
      inner = b.read(b.sum(wx))[0];
      const picked = b.gather(w, b.tensor(new Int32Array([2, 2]), [2]), 0);
      return b.add(b.sum(b.mul(wx, wx)), b.sum(picked));
    }, [w]);
    return { value: result.value, grads: result.grads };
  });
  assert.equal(inner, 0.5 - 2 + 6);
  assert.equal(value, 0.25 + 4 + 36 + 6);
  // d/dw = 2 w x^2 + [0, 0, 2]
  assert.deepEqual([...b.read(grads[0])], [0.5, -4, 24 + 2]);
  assert.equal(b.liveTensors(), base + 1); // the gradient only
  grads[0].dispose();
  assert.equal(b.liveTensors(), base);
  // gather's index check runs in the worker too (it reads the indices there).
  const e = caught(() => b.scope(() => b.gather(w, b.tensor(new Int32Array([3]), [1]), 0)));
  assert.ok(e instanceof BackendError);
  assert.equal(e.op, "gather");
  w.dispose();
});

webgpuTest("noGrad inside valueAndGrad cuts the gradient; nesting valueAndGrad is refused", (b) => {
  const w = b.scope(() => b.variable(b.tensor([3], [1]), true));
  const base = b.liveTensors();
  const { grads } = b.valueAndGrad(() => {
    const frozen = b.noGrad(() => b.mul(w, w)); // a constant 9 to the tape
    return b.sum(b.add(b.mul(frozen, w), w));
  }, [w]);
  assert.deepEqual([...b.read(grads[0])], [10]);
  grads[0].dispose();

  const nested = caught(() =>
    b.valueAndGrad(() => b.valueAndGrad(() => b.sum(w), [w]).grads[0], [w])
  );
  assert.ok(nested instanceof BackendError);
  assert.match(nested.message, /cannot nest/);
  // A loss function that throws: its error passes through and the tape is closed.
  assert.throws(() =>
    b.valueAndGrad(() => {
      b.mul(w, 2);
      throw new Error("boom");
    }, [w]), /boom/);
  const again = b.valueAndGrad(() => b.sum(b.mul(w, w)), [w]);
  assert.equal(again.value, 9);
  assert.deepEqual([...b.read(again.grads[0])], [6]);
  again.grads[0].dispose();
  assert.equal(b.liveTensors(), base);
  w.dispose();
});

webgpuTest(
  "a foreign tensor is refused; a disposed backend frees its tensors and refuses calls",
  async (b) => {
    const cpu = await createBackend("tfjs-cpu");
    const foreign = cpu.tensor([1], [1]);
    const e = caught(() => b.neg(foreign));
    assert.ok(e instanceof BackendError);
    assert.match(e.message, /got a tensor of backend tfjs-cpu, not tfjs-webgpu/);
    cpu.dispose();
    // A second backend shares the worker; disposing it frees what it held there, variables too.
    const base = b.liveTensors();
    const other = await createBackend("tfjs-webgpu");
    other.scope(() => other.variable(other.tensor([1, 2], [2]), true));
    other.mul(other.full([3], 2), 3);
    assert.equal(b.liveTensors(), base + 3);
    other.dispose();
    assert.equal(b.liveTensors(), base);
    other.dispose(); // idempotent
    const gone = caught(() => other.zeros([1]));
    assert.ok(gone instanceof BackendError);
    assert.match(gone.message, /was disposed/);
  },
);

webgpuTest("a program that never disposes the backend still exits", async () => {
  const script = `
    import { createBackend } from ${
    JSON.stringify(new URL("../../src/backend/select.ts", import.meta.url).href)
  };
    const b = await createBackend("tfjs-webgpu");
    console.log(b.read(b.add(b.tensor([1, 2], [2]), 1)).join(","));`;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["eval", script],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => child.kill(), 60_000);
  const out = await child.output();
  clearTimeout(timer);
  const stderr = new TextDecoder().decode(out.stderr);
  assert.ok(out.success, `exit ${out.code} ${out.signal ?? ""}: ${stderr}`);
  assert.equal(new TextDecoder().decode(out.stdout).trim(), "2,3");
});
