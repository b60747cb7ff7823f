/**
 * The shared argument checks (src/backend/validate.ts): one bad call per class of mistake, run
 * on every backend, must fail with exactly the same BackendError message everywhere (each
 * backend is held to the one expected string below). Valid edge cases must pass the checks.
 *
 * @module
 */
import assert from "node:assert/strict";
import { type Backend, BackendError } from "../../src/backend/backend.ts";
import * as V from "../../src/backend/validate.ts";
import { testEachBackend } from "../_backends.ts";

interface BadCall {
  what: string;
  call: (b: Backend) => unknown;
  message: string;
}

const f32 = (b: Backend, shape: number[]) => b.zeros(shape);
const i32 = (b: Backend, data: number[]) => b.tensor(Int32Array.from(data), [data.length], "int32");

const BAD_CALLS: BadCall[] = [
  {
    what: "data that does not fill the shape",
    call: (b) => b.tensor([1, 2, 3, 4, 5], [2, 3]),
    message: "tensor([2,3]): data has 5 elements but the shape needs 6",
  },
  {
    what: "a negative size",
    call: (b) => b.zeros([2, -1]),
    message: "zeros([2,-1]): sizes must be non-negative integers",
  },
  {
    what: "a rank above 8",
    call: (b) => b.full([1, 1, 1, 1, 1, 1, 1, 1, 1], 0),
    message: "full([1,1,1,1,1,1,1,1,1]): rank 9 exceeds 8",
  },
  {
    what: "operands of different dtypes",
    call: (b) => b.add(f32(b, [2]), i32(b, [1, 2])),
    message: "add([2], [2]): dtypes differ: float32 and int32",
  },
  {
    what: "shapes that do not broadcast",
    call: (b) => b.mul(f32(b, [2, 3]), f32(b, [4])),
    message: "mul([2,3], [4]): shapes do not broadcast: size 3 against 4 at axis 1",
  },
  {
    what: "an axis out of range",
    call: (b) => b.softmax(f32(b, [2, 3]), 2),
    message: "softmax([2,3]): axis 2 is out of range for rank 2 (use -2..1)",
  },
  {
    what: "a reduction axis listed twice",
    call: (b) => b.sum(f32(b, [2, 3]), [1, -1]),
    message: "sum([2,3]): axis -1 is listed twice in [1,-1]",
  },
  {
    what: "a reshape that changes the element count",
    call: (b) => b.reshape(f32(b, [2, 3]), [4]),
    message: "reshape([2,3]): cannot view 6 elements as [4]",
  },
  {
    what: "dims that are not a permutation",
    call: (b) => b.permute(f32(b, [2, 3]), [0, 0]),
    message: "permute([2,3]): dims [0,0] are not a permutation of the 2 axes",
  },
  {
    what: "a slice running past the end (tfjs-wasm used to read beyond the tensor)",
    call: (b) => b.slice(f32(b, [4, 3]), [2, 0], [3, -1]),
    message: "slice([4,3]): axis 0: begin 2 + size 3 runs past the end (size 4)",
  },
  {
    what: "a slice starting past the end",
    call: (b) => b.slice(f32(b, [4]), [5], [-1]),
    message: "slice([4]): axis 0: begin 5 is past the end (size 4)",
  },
  {
    what: "cat of shapes that differ off the axis",
    call: (b) => b.cat([f32(b, [2, 3]), f32(b, [2, 4])], 0),
    message: "cat([2,3], [2,4]): shapes must agree except along axis 0",
  },
  {
    what: "a gather index out of range",
    call: (b) => b.gather(f32(b, [3, 2]), i32(b, [1, 3]), 0),
    message: "gather([3,2], [2]): index 3 out of range 0..2",
  },
  {
    what: "float gather indices",
    call: (b) => b.gather(f32(b, [3, 2]), f32(b, [2]), 0),
    message: "gather([3,2], [2]): indices must be int32",
  },
  {
    what: "matmul inner sizes that differ",
    call: (b) => b.matmul(f32(b, [2, 3]), f32(b, [4, 5])),
    message: "matmul([2,3], [4,5]): expects [..., n, k] x [..., k, m]",
  },
  {
    what: "conv2d channels that differ",
    call: (b) => b.conv2d(f32(b, [1, 3, 8, 8]), f32(b, [4, 2, 3, 3]), undefined),
    message: "conv2d([1,3,8,8], [4,2,3,3]): expects x [N, Cin, H, W], w [Cout, Cin, kh, kw], " +
      "b [Cout]",
  },
  {
    what: "a 1x7 kernel wider than the unpadded input",
    call: (b) => b.conv2d(f32(b, [1, 1, 3, 5]), f32(b, [1, 1, 1, 7]), undefined),
    message: "conv2d([1,1,3,5], [1,1,1,7]): kernel 1x7 larger than padded input (padding 0, 0)",
  },
  {
    what: "a conv stride of 0",
    call: (b) => b.conv2d(f32(b, [1, 1, 3, 3]), f32(b, [1, 1, 3, 3]), undefined, { stride: 0 }),
    message: "conv2d([1,1,3,3], [1,1,3,3]): stride 0 must be >= 1 and padding 0, 0 >= 0",
  },
  {
    what: "a rectangular transposed-conv kernel",
    call: (b) => b.convTranspose2d(f32(b, [1, 2, 3, 3]), f32(b, [2, 1, 1, 3]), undefined),
    message:
      "convTranspose2d([1,2,3,3], [2,1,1,3]): expects x [N, Cin, H, W], w [Cin, Cout, k, k]," +
      " b [Cout]",
  },
  {
    what: "an output padding not below the stride",
    call: (b) =>
      b.convTranspose2d(f32(b, [1, 2, 3, 3]), f32(b, [2, 1, 3, 3]), undefined, {
        stride: 2,
        outputPadding: 2,
      }),
    message: "convTranspose2d([1,2,3,3], [2,1,3,3]): bad stride 2 / padding 0 / outputPadding 2 " +
      "(stride >= 1, padding >= 0, 0 <= outputPadding < stride, non-empty output)",
  },
  {
    what: "groups that do not divide the channels",
    call: (b) => b.groupNorm(f32(b, [1, 6, 2, 2]), 4, f32(b, [6]), f32(b, [6])),
    message: "groupNorm([1,6,2,2], [6], [6]): 4 groups for x [N, C, ...], w/b [C]",
  },
  {
    what: "layerNorm weights of the wrong size",
    call: (b) => b.layerNorm(f32(b, [2, 5]), f32(b, [4]), f32(b, [4])),
    message: "layerNorm([2,5], [4], [4]): expects x [..., D], weight and bias [D]",
  },
  {
    what: "batchNorm training on one value per channel",
    call: (b) => {
      const [m, v] = [b.variable(f32(b, [3]), false), b.variable(f32(b, [3]), false)];
      return b.batchNorm(f32(b, [1, 3, 1, 1]), undefined, undefined, m, v, { training: true });
    },
    message: "batchNorm([1,3,1,1], [3], [3]): training needs more than 1 value per channel",
  },
  {
    what: "pool padding above half the kernel",
    call: (b) => b.maxPool2d(f32(b, [1, 1, 4, 4]), 2, 1, 2),
    message: "maxPool2d([1,1,4,4]): kernel 2, stride 1, padding 2: need kernel, stride >= 1 and " +
      "0 <= padding <= kernel / 2",
  },
  {
    what: "a resize to zero rows",
    call: (b) => b.interpolateBilinear(f32(b, [1, 1, 2, 2]), [0, 4], false),
    message: "interpolateBilinear([1,1,2,2]): expects x [N, C, H, W] and a size [h, w] >= 1, " +
      "got [0,4]",
  },
  {
    what: "attention keys of another width",
    call: (b) => b.attention(f32(b, [1, 2, 4, 8]), f32(b, [1, 2, 4, 6]), f32(b, [1, 2, 4, 6])),
    message: "attention([1,2,4,8], [1,2,4,6], [1,2,4,6]): expects q [B, h, Lq, d], k [B, h, L, " +
      "d], v [B, h, L, dv]",
  },
  {
    what: "a loss on shapes that differ",
    call: (b) => b.mseLoss(f32(b, [2, 3]), f32(b, [3, 2])),
    message: "mseLoss([2,3], [3,2]): shapes differ",
  },
  {
    what: "an unknown cast dtype",
    call: (b) => b.cast(f32(b, [2]), "float64" as "float32"),
    message: 'cast([2]): unsupported dtype "float64" (float32 or int32)',
  },
  {
    what: "assigning another shape to a variable",
    call: (b) => b.assign(b.variable(f32(b, [2]), true), f32(b, [3])),
    message: "assign([2], [3]): shape or dtype differs from the variable's",
  },
  {
    what: "EMA lists of different lengths",
    call: (b) => b.emaUpdate([b.variable(f32(b, [2]), false)], [], 0.9),
    message: "emaUpdate(): 1 targets but 0 sources",
  },
  {
    what: "Adam moments of the wrong shape",
    call: (b) => {
      const p = b.variable(f32(b, [2]), true);
      return b.adamStep([p], [f32(b, [2])], { step: 0, m: [f32(b, [2])], v: [f32(b, [3])] }, {
        lr: 1e-3,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weightDecay: 0,
      });
    },
    message: "adamStep([2], [2], [2], [3]): parameter 0: param, grad, m and v shapes differ",
  },
];

for (const bad of BAD_CALLS) {
  testEachBackend(`a bad call fails alike everywhere: ${bad.what}`, (b) => {
    b.scope(() => {
      assert.throws(() => bad.call(b), (e: unknown) => {
        assert.ok(e instanceof BackendError, `not a BackendError: ${e}`);
        assert.equal(e.message, bad.message);
        return true;
      });
    });
    // Cheap, and on tfjs-webgpu the message also crosses from the GPU worker: run it there.
  }, { softwareGpu: true });
}

testEachBackend(
  "setAutocast('bfloat16'), eighFloat64() and eigvalshFloat64() follow the declared capabilities",
  (b) => {
    const a = Float64Array.from([2, 0, 0, 3]);
    if (b.capabilities.eighFloat64) {
      assert.deepEqual([...b.eighFloat64(a, 2).values], [2, 3]);
      assert.throws(() => b.eighFloat64(a, 3), /eighFloat64\(\[4\]\): expected 3x3 = 9 values/);
      assert.deepEqual([...b.eigvalshFloat64(a, 2)], [2, 3]);
      assert.throws(
        () => b.eigvalshFloat64(a, 3),
        /eigvalshFloat64\(\[4\]\): expected 3x3 = 9 values/,
      );
    } else {
      assert.throws(() => b.eighFloat64(a, 2), /capabilities\.eighFloat64 is false/);
      assert.throws(() => b.eigvalshFloat64(a, 2), /capabilities\.eighFloat64 is false/);
    }
    if (!b.capabilities.autocast) {
      assert.throws(() => b.setAutocast("bfloat16"), (e) => e instanceof BackendError);
    }
  },
  { softwareGpu: true },
);

Deno.test("the checks accept the edge cases the contract allows", () => {
  const t = (...shape: number[]) => ({ shape, dtype: "float32" as const });
  V.checkSlice(t(4, 3), [4, 0], [0, -1]); // empty slice at the end
  V.checkSlice(t(4, 3), [1, 1], [3, 2]); // up to the last element
  V.checkReshape(t(2, 3), [-1]);
  V.checkReshape(t(0, 3), [0, 5]);
  V.checkAxes("sum", t(2, 3), [-1, 0]);
  V.checkPermute(t(2, 3, 4), [-1, 0, 1]);
  assert.deepEqual(V.checkBroadcast("add", [[2, 1, 4], [3, 1], []]), [2, 3, 4]);
  V.checkMatmul(t(5, 2, 3), t(3, 4));
  V.checkConv2d(t(1, 3, 5, 9), t(4, 3, 1, 7), t(4), {
    stride: 1,
    padding: [0, 3],
    activation: "relu",
  });
  V.checkConv2d(t(1, 3, 9, 5), t(4, 3, 7, 1), undefined, {
    stride: 2,
    padding: [3, 0],
    activation: undefined,
  });
  V.checkPool("avgPool2d", t(1, 1, 3, 3), 3, 1, 1);
  V.checkAttention(t(2, 4, 16, 8), t(2, 4, 9, 8), t(2, 4, 9, 5));
});

Deno.test("slice checks name the first axis that leaves the tensor", () => {
  const a = { shape: [4, 3], dtype: "float32" as const };
  assert.throws(() => V.checkSlice(a, [0, 1], [4, 3]), /axis 1: begin 1 \+ size 3 runs past/);
  assert.throws(() => V.checkSlice(a, [0], [4]), /must both have 2 entries/);
  assert.throws(() => V.checkSlice(a, [-1, 0], [1, 1]), /must be integers >= 0/);
});
