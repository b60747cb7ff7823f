import assert from "node:assert/strict";
import { decodeImage, decodeImageFile, listImageFiles, readImageFile } from "../../src/io/image.ts";
import { jpegDecoder } from "../../src/io/jpeg.ts";
import { readNpz } from "../../src/io/npy.ts";
import { parseCifarBatch } from "../../src/data/cifar10.ts";

// Fixtures: tests/fixtures/make_io_fixtures.py; expected_images.npz holds PIL's
// Image.open(f).convert("RGB") of each file as float32 [H, W, 3].
const fixture = (name: string) => new URL(`../fixtures/io/${name}`, import.meta.url).pathname;
// The shared data sits beside the repository (CI keeps a copy of shared/ next to the clone).
const shared = new URL("../../../shared/data/", import.meta.url).pathname;
const hasShared = await Deno.stat(shared).then((s) => s.isDirectory, () => false);
if (!hasShared) console.error(`image_test: the CIFAR-10 JPEG test is skipped: ${shared} is absent`);

Deno.test("decodeImageFile() matches PIL's RGB for RGB, gray, RGBA, palette and 16-bit PNGs", async () => {
  const expected = await readNpz(fixture("expected_images.npz"));
  for (const name of ["rgb.png", "gray.png", "rgba.png", "palette.png", "gray16.png"]) {
    const img = await decodeImageFile(fixture(name));
    const want = expected.get(name)!;
    assert.deepEqual([img.height, img.width, img.channels], want.shape, name);
    assert.deepEqual([...img.data], [...want.data], name);
  }
});

async function jpegDifference(name: string): Promise<{ max: number; mean: number; bias: number }> {
  const want = (await readNpz(fixture("expected_images.npz"))).get(name)!;
  const img = await decodeImageFile(fixture(name));
  assert.deepEqual([img.height, img.width, 3], want.shape, name);
  let max = 0;
  let sum = 0;
  let signed = 0;
  for (let i = 0; i < want.data.length; i++) {
    const d = img.data[i] - want.data[i];
    max = Math.max(max, Math.abs(d));
    sum += Math.abs(d);
    signed += d;
  }
  return { max, mean: sum / want.data.length, bias: signed / want.data.length };
}

Deno.test("decodeImageFile() decodes 4:4:4, 4:2:0 and gray JPEGs as PIL does", async () => {
  if (jpegDecoder().name === "libjpeg-turbo") {
    for (const name of ["smooth444.jpg", "smooth.jpg", "gray.jpg"]) {
      assert.equal((await jpegDifference(name)).max, 0, name);
    }
    return;
  }
  // The jpeg-js fallback: IDCT rounding differs, which the colour transform can amplify to a
  // few levels on single pixels (measured on smooth444: mean 0.14, max 3, bias +0.10), and it
  // replicates subsampled chroma where libjpeg interpolates it (smooth.jpg, a strong chroma
  // ramp: mean 2.91, max 11).
  const colour = await jpegDifference("smooth444.jpg");
  assert.ok(colour.mean < 0.3 && colour.max <= 3, JSON.stringify(colour));
  assert.ok(Math.abs(colour.bias) < 0.25, JSON.stringify(colour));
  assert.ok((await jpegDifference("gray.jpg")).max <= 1);
  const { max, mean, bias } = await jpegDifference("smooth.jpg");
  assert.ok(
    mean < 4 && max <= 16 && Math.abs(bias) < 0.5,
    `mean ${mean}, max ${max}, bias ${bias}`,
  );
});

Deno.test({
  name: "decodeImageFile() of a CIFAR-10 JPEG is close to the lossless original",
  ignore: !hasShared,
  fn: async () => {
    const img = await decodeImageFile(`${shared}cifar10-jpg/test/cat/0000.jpg`);
    const batch = parseCifarBatch(
      await Deno.readFile(`${shared}cifar10-bin-sample/test_batch_first1000.bin`),
    );
    let error = 0;
    for (let c = 0; c < 3; c++) {
      for (let i = 0; i < 1024; i++) {
        error += Math.abs(img.data[i * 3 + c] - batch.images[c * 1024 + i]);
      }
    }
    // The README says ~6/255 mean absolute error for these quality-75 re-encodings.
    const mean = error / 3072;
    assert.ok(mean > 1 && mean < 12, `mean abs error ${mean}`);
  },
});

Deno.test("decodeImage() names the file for corrupt and unknown input", async () => {
  const png = await Deno.readFile(fixture("rgb.png"));
  assert.throws(() => decodeImage(png.subarray(0, 60), "cut.png"), /cut.png: corrupt PNG/);
  const jpg = await Deno.readFile(fixture("smooth.jpg"));
  assert.throws(() => decodeImage(jpg.subarray(0, 200), "cut.jpg"), /cut.jpg: corrupt JPEG/);
  assert.throws(
    () => decodeImage(new TextEncoder().encode("GIF89a..."), "x.bmp"),
    /x.bmp: not a PNG or JPEG/,
  );
  await assert.rejects(() => decodeImageFile("/no/such.png"), /\/no\/such.png/);
});

Deno.test("listImageFiles() sorts images, skips other files and rejects empty or missing folders", async () => {
  const dir = await Deno.makeTempDir();
  try {
    for (const name of ["b.png", "a.JPG", "c.jpeg", "notes.txt"]) {
      await Deno.writeFile(`${dir}/${name}`, new Uint8Array(1));
    }
    await Deno.mkdir(`${dir}/sub.png`);
    assert.deepEqual(await listImageFiles(dir), [`${dir}/a.JPG`, `${dir}/b.png`, `${dir}/c.jpeg`]);
    await Deno.mkdir(`${dir}/empty`);
    await assert.rejects(
      () => listImageFiles(`${dir}/empty`),
      /empty holds no .png, .jpg or .jpeg/,
    );
    await assert.rejects(() => listImageFiles(`${dir}/missing`), /missing does not exist/);
    await assert.rejects(() => listImageFiles(`${dir}/b.png`), /b.png is not a folder/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readImageFile() applies its pixel cap and names the path", async () => {
  const path = fixture("rgb.png");
  const img = await readImageFile(path);
  const pixels = img.width * img.height;
  assert.equal((await readImageFile(path, { maxPixels: pixels })).width, img.width);
  await assert.rejects(
    () => readImageFile(path, { maxPixels: pixels - 1 }),
    new RegExp(`${path}: PNG header claims ${img.width}x${img.height}`),
  );
});
