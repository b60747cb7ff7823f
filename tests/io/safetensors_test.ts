import assert from "node:assert/strict";
import {
  decodeSafetensors,
  encodeSafetensors,
  readSafetensors,
  type SafeTensor,
  toFloat32,
  writeSafetensors,
} from "../../src/io/safetensors.ts";

function sample(): Map<string, SafeTensor> {
  return new Map<string, SafeTensor>([
    ["b.f32", { dtype: "F32", shape: [2, 3], data: new Float32Array([1, -2, 3.5, 0, 1e-8, 7]) }],
    ["a.f64", { dtype: "F64", shape: [2], data: new Float64Array([Math.PI, -1e300]) }],
    ["c.i32", { dtype: "I32", shape: [3], data: new Int32Array([-1, 0, 2147483647]) }],
    ["d.i64", { dtype: "I64", shape: [], data: new BigInt64Array([-(2n ** 62n)]) }],
    ["e.empty", { dtype: "F32", shape: [0, 4], data: new Float32Array(0) }],
  ]);
}

Deno.test("encodeSafetensors() and decodeSafetensors() round-trip every writable dtype", () => {
  const tensors = sample();
  const { tensors: back, metadata } = decodeSafetensors(
    encodeSafetensors(tensors, { step: "12", format: "pt" }),
  );
  assert.deepEqual(metadata, { step: "12", format: "pt" });
  assert.deepEqual([...back.keys()].sort(), [...tensors.keys()].sort());
  for (const [name, t] of tensors) {
    const b = back.get(name)!;
    assert.equal(b.dtype, t.dtype, name);
    assert.deepEqual(b.shape, t.shape, name);
    assert.deepEqual(b.data, t.data, name);
  }
});

Deno.test("encodeSafetensors() follows the spec layout: u64 header size, 8-aligned JSON", () => {
  const bytes = encodeSafetensors(
    new Map([["w", { dtype: "F32", shape: [1], data: new Float32Array([1.5]) }]]),
  );
  const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  assert.equal(n % 8, 0);
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
  assert.deepEqual(header, { w: { dtype: "F32", shape: [1], data_offsets: [0, 4] } });
  assert.equal(new DataView(bytes.buffer).getFloat32(8 + n, true), 1.5);
});

function handMade(header: object, data: Uint8Array): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

Deno.test("decodeSafetensors() reads F16 and BF16 as float32", () => {
  // F16: 1.0 = 0x3c00, -2.0 = 0xc000, 65504 = 0x7bff, 2^-24 = 0x0001 (subnormal).
  // BF16: 1.0 = 0x3f80, -0.5 = 0xbf00.
  const data = new Uint8Array(
    new Uint16Array([0x3c00, 0xc000, 0x7bff, 0x0001, 0x3f80, 0xbf00]).buffer,
  );
  const { tensors } = decodeSafetensors(handMade({
    h: { dtype: "F16", shape: [4], data_offsets: [0, 8] },
    b: { dtype: "BF16", shape: [2], data_offsets: [8, 12] },
  }, data));
  assert.deepEqual([...toFloat32(tensors.get("h")!)], [1, -2, 65504, 2 ** -24]);
  assert.deepEqual([...toFloat32(tensors.get("b")!)], [1, -0.5]);
});

Deno.test("toFloat32() converts integer and float64 tensors", () => {
  assert.deepEqual(
    [...toFloat32({ dtype: "I64", shape: [2], data: new BigInt64Array([3n, -4n]) })],
    [3, -4],
  );
  assert.deepEqual(
    [...toFloat32({ dtype: "F64", shape: [1], data: new Float64Array([0.25]) })],
    [0.25],
  );
});

Deno.test("decodeSafetensors() rejects truncated and corrupted files with the file name", () => {
  const good = encodeSafetensors(sample());
  assert.throws(
    () => decodeSafetensors(good.subarray(0, 5), "m.safetensors"),
    /m.safetensors.*8-byte/,
  );
  assert.throws(
    () => decodeSafetensors(good.subarray(0, good.length - 3), "m.safetensors"),
    /m.safetensors.*(truncated|trailing|exceeds)/,
  );
  const badJson = good.slice();
  badJson[9] = 0x7b; // "{{" breaks the JSON
  assert.throws(() => decodeSafetensors(badJson, "m.safetensors"), /not valid JSON/);
  const huge = good.slice();
  new DataView(huge.buffer).setBigUint64(0, 1n << 40n, true);
  assert.throws(() => decodeSafetensors(huge, "m.safetensors"), /header length .* exceeds/);
  const four = new Uint8Array(4);
  assert.throws(
    () =>
      decodeSafetensors(handMade({ x: { dtype: "U8", shape: [4], data_offsets: [0, 4] } }, four)),
    /dtype "U8"/,
  );
  assert.throws(
    () =>
      decodeSafetensors(handMade({ x: { dtype: "F32", shape: [2], data_offsets: [0, 4] } }, four)),
    /needs 8 bytes, has 4/,
  );
  assert.throws(
    () =>
      decodeSafetensors(handMade({
        x: { dtype: "F32", shape: [1], data_offsets: [0, 4] },
        y: { dtype: "F32", shape: [1], data_offsets: [0, 4] },
      }, four)),
    /overlap or gap/,
  );
});

Deno.test("encodeSafetensors() rejects mismatched shapes, dtypes and non-string metadata", () => {
  assert.throws(
    () =>
      encodeSafetensors(new Map([["x", { dtype: "F32", shape: [3], data: new Float32Array(2) }]])),
    /shape \[3\] has 3 elements but data has 2/,
  );
  assert.throws(
    () =>
      encodeSafetensors(new Map([["x", { dtype: "F64", shape: [2], data: new Float32Array(2) }]])),
    /needs a Float64Array/,
  );
  assert.throws(
    () =>
      encodeSafetensors(new Map([["x", { dtype: "F16", shape: [1], data: new Float32Array(1) }]])),
    /writing dtype F16 is not supported/,
  );
  assert.throws(
    () => encodeSafetensors(new Map(), { step: 3 as unknown as string }),
    /metadata "step" must be a string/,
  );
});

Deno.test("writeSafetensors() writes atomically and readSafetensors() reads it back", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/ckpt.safetensors`;
    await writeSafetensors(path, sample(), { kind: "ddpm" });
    const { tensors, metadata } = await readSafetensors(path);
    assert.equal(metadata.kind, "ddpm");
    assert.deepEqual(tensors.get("b.f32")!.data, sample().get("b.f32")!.data);
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["ckpt.safetensors"]);
    await assert.rejects(
      () => readSafetensors(`${dir}/missing.safetensors`),
      /missing.safetensors/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
