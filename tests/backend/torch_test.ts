/**
 * The libtorch binding's failure behaviour: bad input gives a BackendError naming the op and
 * shapes (and the process keeps running), a missing library gives BackendUnavailableError with
 * the paths tried, handles are disposed exactly once.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  type Backend,
  BackendError,
  BackendUnavailableError,
  type DType,
} from "../../src/backend/backend.ts";
import { testEachBackend } from "../_backends.ts";

const TORCH = { only: ["torch-cuda", "torch-cpu"] } as const;

testEachBackend(
  "conv2d() with mismatched channels throws BackendError naming op and shapes",
  (b) => {
    b.scope(() => {
      const x = b.zeros([1, 3, 8, 8]);
      const w = b.zeros([4, 2, 3, 3]);
      assert.throws(
        () => b.conv2d(x, w, undefined),
        (e: unknown) => {
          assert.ok(e instanceof BackendError);
          assert.equal(e.op, "conv2d");
          assert.match(e.message, /^conv2d\(\[1,3,8,8\], \[4,2,3,3\]\): .+/);
          return true;
        },
      );
      // The process and the backend survive: the next op works.
      assert.deepEqual(b.conv2d(x, b.zeros([4, 3, 3, 3]), undefined).shape, [1, 4, 6, 6]);
    });
  },
  TORCH,
);

testEachBackend("a libtorch failure past the shared checks reports libtorch's message", (b) => {
  b.scope(() => {
    // 2^50 float32 values: a valid shape no allocator can serve.
    assert.throws(
      () => b.full([1 << 20, 1 << 20, 1 << 10], 0),
      /full\(.*\): .*(allocat|memory)/i,
    );
  });
}, TORCH);

testEachBackend("tensor() rejects data of the wrong length and unsupported dtypes", (b) => {
  assert.throws(() => b.tensor([1, 2, 3], [2, 2]), /tensor\(\[2,2\]\): data has 3 elements/);
  assert.throws(
    () => b.tensor([1, 2], [2], "float64" as DType),
    (e: unknown) => e instanceof BackendError && /unsupported dtype "float64"/.test(e.message),
  );
  b.scope(() => {
    assert.throws(() => b.cast(b.zeros([1]), "bool" as DType), /cast\(\[1\]\): unsupported dtype/);
  });
}, TORCH);

testEachBackend("ops on int32 where float32 is needed fail with a BackendError", (b) => {
  b.scope(() => {
    const labels = b.tensor(new Int32Array([1, 2]), [2]);
    assert.throws(() => b.gather(b.zeros([3]), b.zeros([2]), 0), /gather.*indices must be int32/);
    assert.throws(
      () =>
        b.conv2d(
          b.reshape(b.cat([labels, labels], 0), [1, 1, 2, 2]),
          b.zeros([1, 1, 1, 1]),
          undefined,
        ),
      BackendError,
    );
  });
}, TORCH);

testEachBackend("dispose() is idempotent and a disposed tensor cannot be used", (b) => {
  const base = b.liveTensors();
  const t = b.tensor([1, 2], [2]);
  assert.equal(b.liveTensors(), base + 1);
  assert.equal(t.disposed, false);
  t.dispose();
  t.dispose();
  t[Symbol.dispose]();
  assert.equal(t.disposed, true);
  assert.equal(b.liveTensors(), base);
  assert.throws(() => b.read(t), /read\(\[2\]\): tensor was disposed/);
  assert.throws(() => b.add(t, 1), /add\(\[2\]\): tensor was disposed/);
}, TORCH);

testEachBackend("valueAndGrad() refuses parameters that are not trainable variables", (b) => {
  b.scope(() => {
    const plain = b.tensor([1], [1]);
    assert.throws(
      () => b.valueAndGrad(() => b.sum(plain), [plain]),
      /valueAndGrad\(\[1\]\): parameter 0 is not a trainable variable/,
    );
  });
}, TORCH);

testEachBackend("liveBytes() follows the float32 bytes of live tensors", (b) => {
  const base = b.liveBytes();
  const t = b.zeros([10, 10]);
  assert.equal(b.liveBytes(), base + 400);
  t.dispose();
  assert.equal(b.liveBytes(), base);
}, TORCH);

testEachBackend("backend.dispose() frees every handle it still holds", async (b: Backend) => {
  const { createBackend } = await import("../../src/backend/select.ts");
  const other = await createBackend(b.name as "torch-cpu");
  other.tensor([1, 2, 3], [3]);
  other.scope(() => other.variable(other.zeros([2]), true));
  assert.equal(other.liveTensors(), 2);
  other.dispose();
  assert.equal(other.liveTensors(), 0);
  other.dispose(); // idempotent
}, TORCH);

testEachBackend(
  "setAutocast() switches on and off where declared, and is refused elsewhere",
  (b) => {
    if (b.capabilities.autocast) {
      b.setAutocast("bfloat16");
    } else {
      assert.throws(() => b.setAutocast("bfloat16"), /capabilities\.autocast is false/);
    }
    b.setAutocast("float32");
    b.scope(() => assert.deepEqual([...b.read(b.add(b.full([2], 1), 1))], [2, 2]));
  },
);

Deno.test("a missing shim library gives BackendUnavailableError listing the paths tried", async () => {
  const missing = "/nonexistent/deno-diffusion-native";
  const script = `
    import { createTorchBackend } from ${
    JSON.stringify(new URL("../../src/backend/torch.ts", import.meta.url).href)
  };
    try { await createTorchBackend("cpu"); console.log("LOADED"); }
    catch (e) { console.log(e.name + ": " + e.message); }`;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", script],
    env: { DENO_DIFFUSION_NATIVE: missing },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  assert.match(text, /^BackendUnavailableError: backend torch-cpu is not available: /);
  assert.ok(text.includes(missing), text);
  assert.ok(text.includes(`${missing}/libdd_shim.so`), text);
});

Deno.test("BackendUnavailableError is what createBackend throws for an unknown name", async () => {
  const { createBackend } = await import("../../src/backend/select.ts");
  await assert.rejects(
    () => createBackend("torch-tpu" as "torch-cpu"),
    (e: unknown) => e instanceof BackendUnavailableError && /unknown backend/.test(e.message),
  );
});

testEachBackend("batchNorm() requires its running statistics to be variables", (b) => {
  b.scope(() => {
    assert.throws(
      () =>
        b.batchNorm(b.zeros([2, 3, 2, 2]), undefined, undefined, b.zeros([3]), b.full([3], 1), {
          training: true,
        }),
      /batchNorm\(\[2,3,2,2\], \[3\], \[3\]\): running statistics must be variables/,
    );
  });
}, TORCH);
