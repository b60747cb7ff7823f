import assert from "node:assert/strict";
import { readNpz } from "../../src/io/npy.ts";
import { readZipDirectory } from "../../src/io/zip.ts";
import { parseTorchStateDict, readTorchStateDict } from "../../src/io/torch_pickle.ts";

// Fixtures: tests/fixtures/make_io_fixtures.py (torch 1.13); expected_*.npz hold the same
// tensors as contiguous float32, written by numpy.
const fixture = (name: string) => new URL(`../fixtures/io/${name}`, import.meta.url).pathname;

async function assertMatchesExpected(file: string, expectedFile: string) {
  const weights = await readTorchStateDict(fixture(file));
  const expected = await readNpz(fixture(expectedFile));
  assert.deepEqual([...weights.keys()], [...expected.keys()], "names and their order");
  for (const [name, want] of expected) {
    const got = weights.get(name)!;
    assert.deepEqual(got.shape, want.shape, name);
    assert.ok(got.data instanceof Float32Array);
    assert.deepEqual(got.data, want.data, name);
  }
  return weights;
}

Deno.test("readTorchStateDict() reads the zip format with strides, offsets and shared storages", async () => {
  const weights = await assertMatchesExpected("tricky_zip.pth", "expected_tricky.npz");
  assert.deepEqual([...weights.get("bn.num_batches_tracked")!.data], [12345]);
  assert.deepEqual(weights.get("scalar")!.shape, []);
  // base = arange(24) / 7 viewed as [4, 6] and transposed: element [i][j] = (6 * j + i) / 7.
  assert.equal(weights.get("transposed")!.data[1 * 4 + 2], Math.fround((6 * 2 + 1) / 7));
});

Deno.test("readTorchStateDict() reads the legacy (pre-1.6) format", async () => {
  await assertMatchesExpected("tricky_legacy.pth", "expected_tricky.npz");
});

Deno.test("readTorchStateDict() reads deflated zip entries", async () => {
  await assertMatchesExpected("tricky_deflated.pth", "expected_tricky.npz");
});

Deno.test("readTorchStateDict() reads a dome272-style U-Net state_dict", async () => {
  const weights = await assertMatchesExpected("unet_dome272.pt", "expected_unet.npz");
  assert.deepEqual(weights.get("inc.double_conv.0.weight")!.shape, [4, 3, 3, 3]);
  assert.deepEqual(weights.get("sa1.mha.in_proj_weight")!.shape, [24, 8]);
});

Deno.test("readTorchStateDict() finds the weights nested in a training checkpoint", async () => {
  // {"epoch": 3, "lr": 0.5, "state_dict": {"w": Parameter(arange(3)), "b": ones(2, float64)}}
  const weights = await readTorchStateDict(fixture("nested_checkpoint.pth"));
  assert.deepEqual([...weights.keys()], ["w", "b"]);
  assert.deepEqual([...weights.get("w")!.data], [0, 1, 2]);
  assert.deepEqual([...weights.get("b")!.data], [1, 1]);
});

Deno.test("readTorchStateDict() refuses pickled Python objects without running them", async () => {
  await assert.rejects(
    () => readTorchStateDict(fixture("refused_object.pth")),
    /refused_object.pth.*refusing pickle global argparse.Namespace/,
  );
});

Deno.test("parseTorchStateDict() names the file for truncated and corrupted input", async () => {
  for (const file of ["tricky_zip.pth", "tricky_legacy.pth", "tricky_deflated.pth"]) {
    const bytes = await Deno.readFile(fixture(file));
    for (const cut of [10, bytes.length >> 1, bytes.length - 30]) {
      assert.throws(
        () => parseTorchStateDict(bytes.subarray(0, cut), "cut.pth"),
        /cut.pth/,
        `${file} cut at ${cut}`,
      );
    }
  }
  const zip = (await Deno.readFile(fixture("tricky_zip.pth"))).slice();
  // Flip a byte of a stored tensor's data: the CRC check catches it.
  const storage = readZipDirectory(zip, "x").find((e) => e.name.endsWith("/data/0"))!;
  const view = new DataView(zip.buffer);
  const h = storage.localHeaderOffset;
  zip[h + 30 + view.getUint16(h + 26, true) + view.getUint16(h + 28, true)] ^= 0xff;
  assert.throws(() => parseTorchStateDict(zip, "flipped.pth"), /flipped.pth.*CRC-32 mismatch/);
  assert.throws(
    () => parseTorchStateDict(new TextEncoder().encode("hello"), "text.pth"),
    /text.pth: cannot read as a PyTorch state_dict: neither a zip archive nor a pickle/,
  );
  await assert.rejects(() => readTorchStateDict("/no/such/file.pth"), /\/no\/such\/file.pth/);
});
