/**
 * The shared-memory message format between the main thread and the GPU worker: values, typed
 * arrays, non-finite numbers and omitted arguments survive a round trip exactly, the buffer
 * grows for large messages and refuses one past its limit, and each side's own objects are
 * mapped by `replace`/`revive`. No GPU needed.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  createChannelBuffers,
  readMessage,
  writeMessage,
} from "../../src/backend/webgpu_channel.ts";

Deno.test("a message round-trips JSON values and typed arrays bit for bit", () => {
  const { data } = createChannelBuffers();
  const f32 = new Float32Array([1.5, -0, 3.4028234663852886e38, 1e-45]);
  const i32 = new Int32Array([-(2 ** 31), 7, 2 ** 31 - 1]);
  const f64 = new Float64Array([Math.PI, 1e-300]);
  // A view that starts inside its buffer: only its own elements travel.
  const view = new Float32Array([9, 8, 7, 6]).subarray(1, 3);
  writeMessage(data, { op: "x", args: [f32, [2, 2], "float32", { i32, nested: [f64, view] }] });
  const back = readMessage(data) as { op: string; args: unknown[] };
  assert.equal(back.op, "x");
  const [a, shape, dtype, rest] = back.args as [
    Float32Array,
    number[],
    string,
    { i32: Int32Array; nested: [Float64Array, Float32Array] },
  ];
  assert.ok(a instanceof Float32Array && rest.i32 instanceof Int32Array);
  assert.deepEqual(new Uint8Array(a.buffer), new Uint8Array(f32.buffer));
  assert.ok(Object.is(a[1], -0));
  assert.deepEqual([...rest.i32], [...i32]);
  assert.deepEqual([...rest.nested[0]], [...f64]);
  assert.deepEqual([...rest.nested[1]], [8, 7]);
  assert.deepEqual(shape, [2, 2]);
  assert.equal(dtype, "float32");
  // What comes back is a copy, not a view of the shared buffer.
  assert.ok(!(a.buffer instanceof SharedArrayBuffer));
});

Deno.test("non-finite numbers and omitted arguments keep their values", () => {
  const { data } = createChannelBuffers();
  writeMessage(data, { args: [-Infinity, Infinity, NaN, undefined, 2, { eps: undefined }] });
  const { args } = readMessage(data) as { args: unknown[] };
  assert.equal(args.length, 6);
  assert.equal(args[0], -Infinity);
  assert.equal(args[1], Infinity);
  assert.ok(Number.isNaN(args[2]));
  assert.equal(args[3], undefined);
  assert.equal(args[4], 2);
  assert.deepEqual(args[5], {});
});

Deno.test("the buffer grows for a large message and refuses one past its limit", () => {
  const { data } = createChannelBuffers();
  const start = data.byteLength;
  const big = new Float32Array(start); // 4x the initial buffer
  big[big.length - 1] = 42;
  writeMessage(data, [big]);
  assert.ok(data.byteLength >= 4 * start);
  const [back] = readMessage(data) as [Float32Array];
  assert.equal(back.length, big.length);
  assert.equal(back[back.length - 1], 42);

  const small = new SharedArrayBuffer(64, { maxByteLength: 2 ** 21 });
  assert.throws(
    () => writeMessage(small, [new Float32Array(3 * 2 ** 18)]),
    (e: Error) =>
      e instanceof RangeError && /message of 3\.0 MiB exceeds the 2\.0 MiB channel/.test(e.message),
  );
  assert.equal(small.byteLength, 64); // nothing was written
});

Deno.test("replace and revive map each side's own objects", () => {
  class Handle {
    constructor(readonly id: number) {}
  }
  const { data } = createChannelBuffers();
  writeMessage(
    data,
    { args: [new Handle(3), [new Handle(4)], { id: 5 }] },
    (v) => v instanceof Handle ? { $t: v.id } : undefined,
  );
  const { args } = readMessage(
    data,
    (v) => typeof v.$t === "number" ? `tensor ${v.$t}` : undefined,
  ) as { args: unknown[] };
  assert.deepEqual(args, ["tensor 3", ["tensor 4"], { id: 5 }]);
});
