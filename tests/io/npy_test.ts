import assert from "node:assert/strict";
import {
  encodeNpy,
  encodeNpz,
  type NdArray,
  parseNpy,
  parseNpz,
  readNpy,
  readNpz,
  writeNpy,
  writeNpz,
} from "../../src/io/npy.ts";

// Fixtures: tests/fixtures/make_io_fixtures.py (numpy). fid_stats*.npz hold
// mu[i] = i / 8 and sigma[i][j] = 1 / (1 + i + j), 16-d, float64.
const fixture = (name: string) => new URL(`../fixtures/io/${name}`, import.meta.url).pathname;

function assertFidStats(stats: Map<string, NdArray>) {
  const mu = stats.get("mu")!;
  const sigma = stats.get("sigma")!;
  assert.equal(mu.dtype, "float64");
  assert.deepEqual(mu.shape, [16]);
  assert.deepEqual([...mu.data], Array.from({ length: 16 }, (_, i) => i / 8));
  assert.deepEqual(sigma.shape, [16, 16]);
  for (let i = 0; i < 16; i++) {
    for (let j = 0; j < 16; j++) assert.equal(sigma.data[i * 16 + j], 1 / (1 + i + j));
  }
}

Deno.test("readNpz() reads pytorch-fid style np.savez and np.savez_compressed stats", async () => {
  assertFidStats(await readNpz(fixture("fid_stats.npz")));
  assertFidStats(await readNpz(fixture("fid_stats_compressed.npz")));
});

Deno.test("readNpy() reads a float32 C-order array written by numpy", async () => {
  const array = await readNpy(fixture("ramp_f32.npy"));
  assert.equal(array.dtype, "float32");
  assert.deepEqual(array.shape, [2, 3, 4]);
  assert.deepEqual([...array.data], Array.from({ length: 24 }, (_, i) => i / 4));
});

Deno.test("parseNpy() rejects Fortran order, other dtypes and truncation with clear errors", async () => {
  await assert.rejects(() => readNpy(fixture("fortran.npy")), /fortran.npy.*Fortran-order/);
  await assert.rejects(
    () => readNpy(fixture("int64.npy")),
    /int64.npy.*dtype '<i8' is not supported/,
  );
  const good = await Deno.readFile(fixture("ramp_f32.npy"));
  assert.throws(() => parseNpy(good.subarray(0, good.length - 1), "cut.npy"), /cut.npy.*truncated/);
  assert.throws(() => parseNpy(good.subarray(0, 40), "cut.npy"), /cut.npy.*truncated/);
  assert.throws(() => parseNpy(new Uint8Array(20), "zero.npy"), /zero.npy.*magic/);
  await assert.rejects(() => readNpy("/no/such.npy"), /\/no\/such.npy/);
});

Deno.test("parseNpz() rejects truncated and corrupted archives", async () => {
  const good = await Deno.readFile(fixture("fid_stats.npz"));
  assert.throws(() => parseNpz(good.subarray(0, good.length - 10), "cut.npz"), /cut.npz/);
  const flipped = good.slice();
  flipped[200] ^= 0xff; // inside mu's data
  assert.throws(() => parseNpz(flipped, "flip.npz"), /flip.npz.*CRC-32 mismatch/);
  const compressed = (await Deno.readFile(fixture("fid_stats_compressed.npz"))).slice();
  compressed[100] ^= 0xff;
  assert.throws(() => parseNpz(compressed, "flipz.npz"), /flipz.npz/);
  assert.throws(() => parseNpz(new Uint8Array(30), "x.npz"), /x.npz: not an .npz file/);
});

Deno.test("encodeNpy() and encodeNpz() round-trip with 64-byte aligned headers", () => {
  const a: NdArray = { dtype: "float32", shape: [2, 2], data: new Float32Array([1, -2, 0.5, 3]) };
  const b: NdArray = { dtype: "float64", shape: [3], data: new Float64Array([Math.E, 0, -1]) };
  const c: NdArray = { dtype: "float64", shape: [], data: new Float64Array([7]) };
  const bytes = encodeNpy(a);
  assert.equal((bytes.length - 16) % 64, 0); // header block is 64-aligned; data is 16 bytes
  assert.deepEqual(parseNpy(bytes), a);
  assert.deepEqual(parseNpy(encodeNpy(c)), c);
  const back = parseNpz(encodeNpz(new Map([["a", a], ["b", b]])));
  assert.deepEqual(back.get("a"), a);
  assert.deepEqual(back.get("b"), b);
  assert.throws(
    () => encodeNpy({ dtype: "float32", shape: [3], data: new Float32Array(2) }),
    /shape \[3\] does not match 2 elements/,
  );
});

Deno.test("writeNpz() output loads in numpy as pytorch-fid would (skipped without python3+numpy)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/stats.npz`;
    const sigma = new Float64Array(9).map((_, k) => 1 / (1 + Math.floor(k / 3) + (k % 3)));
    await writeNpz(
      path,
      new Map([
        ["mu", { dtype: "float64", shape: [3], data: new Float64Array([0.5, -1, 2]) }],
        ["sigma", { dtype: "float64", shape: [3, 3], data: sigma }],
      ]),
    );
    await writeNpy(`${dir}/x.npy`, {
      dtype: "float32",
      shape: [2],
      data: new Float32Array([1, 2]),
    });
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name).sort(), ["stats.npz", "x.npy"]);
    const script = `import numpy as np, sys
f = np.load(sys.argv[1]); mu, sigma = f["mu"][:], f["sigma"][:]
assert mu.dtype == np.float64 and mu.tolist() == [0.5, -1.0, 2.0], mu
want = 1.0 / (1.0 + np.add.outer(np.arange(3), np.arange(3)))
assert sigma.shape == (3, 3) and (sigma == want).all(), sigma
x = np.load(sys.argv[2]); assert x.dtype == np.float32 and x.tolist() == [1.0, 2.0]
print("ok")`;
    let output: Deno.CommandOutput;
    try {
      output = await new Deno.Command("python3", {
        args: ["-c", script, path, `${dir}/x.npy`],
        stdout: "piped",
        stderr: "piped",
      }).output();
    } catch {
      console.log("skipped: python3 not found");
      return;
    }
    const stderr = new TextDecoder().decode(output.stderr);
    if (/No module named 'numpy'/.test(stderr)) {
      console.log("skipped: numpy not installed");
      return;
    }
    assert.equal(output.code, 0, stderr);
    assert.equal(new TextDecoder().decode(output.stdout).trim(), "ok");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
