import assert from "node:assert/strict";
import { deflateSync } from "node:zlib";
import { decodeGif, encodeGif } from "../../src/io/gif.ts";
import { damaged, gifBomb, interlacedPng, jpegBomb, pngBomb } from "./_hostile_images.ts";
import { decodeImage } from "../../src/io/image.ts";
import { loadTurboJpeg } from "../../src/io/turbojpeg.ts";
import { evalWithEnv } from "../_env.ts";

// Decompression bombs, truncations and bit flips for every image reader (issue 17, class 1).
// The bombs are built here: tiny files whose headers claim billions of pixels.
const fixture = (name: string) => new URL(`../fixtures/${name}`, import.meta.url).pathname;
const MiB = 2 ** 20;

function rssGrowthMiB(fn: () => void): number {
  const before = Deno.memoryUsage().rss;
  fn();
  return (Deno.memoryUsage().rss - before) / MiB;
}

Deno.test("a 69-byte PNG claiming 50000x50000 is refused from its header, naming the file", () => {
  const bomb = pngBomb(50000, 50000);
  assert.equal(bomb.length, 69);
  const growth = rssGrowthMiB(() =>
    assert.throws(
      () => decodeImage(bomb, "bomb.png"),
      /bomb.png: PNG header claims 50000x50000 = 2500000000 pixels, above the cap of 67108864/,
    )
  );
  assert.ok(growth < 100, `RSS grew ${growth.toFixed(1)} MiB`);
});

Deno.test("an interlaced PNG decodes, and one whose data inflates past its header is refused", () => {
  for (const [w, h] of [[13, 7], [1, 1], [9, 17]]) {
    const rgb = new Uint8Array(w * h * 3).map((_, i) => (i * 29) % 256);
    const img = decodeImage(interlacedPng(w, h, rgb), "adam7.png");
    assert.deepEqual([img.width, img.height, [...img.data]], [w, h, [...rgb]]);
  }
  // 16x16 pixels, 49 KB of zlib that inflates to 50 MB (pngjs would inflate it all). Adam7
  // at 16x16 RGB holds 2x2, 2x2, 4x2, 4x4, 8x4, 8x8 and 16x8 pixels: 798 bytes with filter bytes.
  const bomb = interlacedPng(16, 16, new Uint8Array(0), deflateSync(new Uint8Array(50e6)));
  const growth = rssGrowthMiB(() =>
    assert.throws(
      () => decodeImage(bomb, "zip.png"),
      /zip.png: corrupt PNG \(its image data inflates to more than the 798 bytes its 16x16 header allows/,
    )
  );
  assert.ok(growth < 30, `RSS grew ${growth.toFixed(1)} MiB`);
});

Deno.test("a JPEG whose SOF claims 65000x65000 is refused from its header", async () => {
  const bomb = await jpegBomb(65000, 65000);
  const growth = rssGrowthMiB(() =>
    assert.throws(() => decodeImage(bomb, "bomb.jpg"), /bomb.jpg: JPEG header claims 65000x65000/)
  );
  assert.ok(growth < 100, `RSS grew ${growth.toFixed(1)} MiB`);
});

Deno.test("a GIF whose logical screen is 65535x65535 is refused from its header", () => {
  const bomb = gifBomb(65535, 65535);
  const growth = rssGrowthMiB(() =>
    assert.throws(() => decodeGif(bomb, "bomb.gif"), /bomb.gif: GIF header claims 65535x65535/)
  );
  assert.ok(growth < 100, `RSS grew ${growth.toFixed(1)} MiB`);
});

Deno.test("a GIF of many frames is refused when all its frames together pass the cap", () => {
  const frame = { width: 8, height: 8, channels: 3 as const, data: new Uint8Array(192) };
  const bytes = encodeGif(Array(20).fill(frame), { delayMs: 10 });
  assert.equal(decodeGif(bytes, "ok.gif", { maxPixels: 20 * 64 }).length, 20);
  assert.throws(
    () => decodeGif(bytes, "long.gif", { maxPixels: 20 * 64 - 1 }),
    /long.gif: GIF has 20 frames of 8x8 = 1280 pixels in all, above the cap of 1279/,
  );
});

Deno.test("the pixel cap is an option and DENO_DIFFUSION_MAX_PIXELS, and says how to raise it", async () => {
  const jpg = await Deno.readFile(fixture("jpeg/ramp_444_base_q75.jpg")); // 77x53
  assert.equal(decodeImage(jpg, "ramp.jpg", { maxPixels: 77 * 53 }).width, 77);
  assert.throws(
    () => decodeImage(jpg, "ramp.jpg", { maxPixels: 77 * 53 - 1 }),
    /ramp.jpg: JPEG header claims 77x53 .* raise the cap with DENO_DIFFUSION_MAX_PIXELS/,
  );
  // The variable is read in a child: setting it here would change it for the files beside.
  const png = fixture("io/rgb.png");
  const imports = `import { decodeImage } from "src/io/image.ts";`;
  const decodeWith = (cap: string) =>
    evalWithEnv(
      imports,
      `decodeImage(await Deno.readFile(${JSON.stringify(png)}), "rgb.png").width`,
      { DENO_DIFFUSION_MAX_PIXELS: cap },
    );
  const small = await decodeWith("10");
  assert.notEqual(small.code, 0);
  assert.match(small.stderr, /rgb.png: PNG header claims .* cap of 10 /);
  const bad = await decodeWith("lots");
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /DENO_DIFFUSION_MAX_PIXELS must be a positive/);
  assert.ok(((await decodeWith("1000000")).value as number) > 0, "a cap above the image decodes");
  assert.throws(() => decodeImage(pngBomb(0, 7), "empty.png"), /empty.png: corrupt PNG .* 0x7/);
});

/** Each damaged file decodes or throws an Error naming the file and its format. */
function checkDamaged(
  good: Uint8Array,
  decode: (bytes: Uint8Array, source: string) => unknown,
  format: RegExp,
): { cuts: number; flips: number; decoded: number } {
  let decoded = 0;
  const attempt = (bytes: Uint8Array, what: string) => {
    try {
      decode(bytes, "bad.file");
      decoded++;
    } catch (error) {
      assert.ok(error instanceof Error, `${what}: threw a non-Error ${String(error)}`);
      assert.match(error.message, /^bad\.file: /, `${what}: ${error.message}`);
      assert.match(error.message, format, `${what}: ${error.message}`);
    }
  };
  let cuts = 0;
  let flips = 0;
  for (const { what, bytes } of damaged(good, 160, 300)) {
    if (what.startsWith("cut")) cuts++;
    else flips++;
    attempt(bytes, what);
  }
  assert.ok(decoded < cuts + flips, "some damage must be detected");
  return { cuts, flips, decoded };
}

Deno.test("truncated and bit-flipped PNGs give a clear error or an image, never a crash", async () => {
  const png = await Deno.readFile(fixture("io/rgb.png"));
  const result = checkDamaged(png, (b, s) => decodeImage(b, s), /PNG|not a PNG or JPEG/);
  assert.ok(result.decoded < result.flips, JSON.stringify(result)); // CRCs catch most flips
});

for (const decoder of ["libjpeg-turbo", "jpeg-js"] as const) {
  Deno.test({
    name: `truncated and bit-flipped JPEGs give a clear error or an image with ${decoder}`,
    ignore: decoder === "libjpeg-turbo" && typeof loadTurboJpeg() === "string",
    fn: async () => {
      const { decodeJpeg } = await import("../../src/io/jpeg.ts");
      for (const name of ["photo_420_base_q75.jpg", "ramp_422_prog_q75.jpg"]) {
        const jpg = await Deno.readFile(fixture(`jpeg/${name}`));
        checkDamaged(jpg, (b, s) => decodeJpeg(b, s, { decoder }), /JPEG/);
      }
    },
  });
}

Deno.test("truncated and bit-flipped GIFs give a clear error or an image, never a crash", () => {
  const frames = [0, 1, 2].map((k) => ({
    width: 12,
    height: 9,
    channels: 3 as const,
    data: new Uint8Array(12 * 9 * 3).map((_, i) => (i * (k + 3) * 37) % 256),
  }));
  checkDamaged(encodeGif(frames, { delayMs: 100 }), (b, s) => decodeGif(b, s), /GIF/);
});
