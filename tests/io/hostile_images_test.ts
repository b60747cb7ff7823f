import assert from "node:assert/strict";
import { crc32, deflateSync } from "node:zlib";
import { decodeGif, encodeGif } from "../../src/io/gif.ts";
import { decodeImage } from "../../src/io/image.ts";
import { loadTurboJpeg } from "../../src/io/turbojpeg.ts";

// Decompression bombs, truncations and bit flips for every image reader (issue 17, class 1).
// The bombs are built here: tiny files whose headers claim billions of pixels.
const fixture = (name: string) => new URL(`../fixtures/${name}`, import.meta.url).pathname;
const MiB = 2 ** 20;

function chunk(type: string, data: Uint8Array): Uint8Array {
  const body = new Uint8Array(4 + data.length);
  body.set(new TextEncoder().encode(type));
  body.set(data, 4);
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  out.set(body, 4);
  view.setUint32(8 + data.length, crc32(body) >>> 0);
  return out;
}

/** A well-formed PNG (correct CRCs) whose IHDR claims `width` x `height` 8-bit RGB pixels. */
function pngBomb(width: number, height: number): Uint8Array {
  const ihdr = new Uint8Array(13);
  new DataView(ihdr.buffer).setUint32(0, width);
  new DataView(ihdr.buffer).setUint32(4, height);
  ihdr.set([8, 2, 0, 0, 0], 8);
  // The first 100 bytes of zero-filtered black rows: 12 bytes of zlib, 69 bytes of PNG.
  const idat = new Uint8Array(deflateSync(new Uint8Array(100)));
  const parts = [
    new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", idat),
    chunk("IEND", new Uint8Array(0)),
  ];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  parts.reduce((at, p) => (out.set(p, at), at + p.length), 0);
  return out;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  parts.reduce((at, p) => (out.set(p, at), at + p.length), 0);
  return out;
}

/** An Adam7-interlaced 8-bit RGB PNG of `rgb` [H, W, 3], or with `idat` as its image data. */
function interlacedPng(width: number, height: number, rgb: Uint8Array, idat?: Uint8Array) {
  const rows: number[] = [];
  const passes = [[0, 0, 8, 8], [4, 0, 8, 8], [0, 4, 4, 8], [2, 0, 4, 4], [0, 2, 2, 4], [
    1,
    0,
    2,
    2,
  ], [0, 1, 1, 2]];
  for (const [x0, y0, dx, dy] of passes) {
    if (x0 >= width) continue;
    for (let y = y0; y < height; y += dy) {
      rows.push(0); // filter type None
      for (let x = x0; x < width; x += dx) {
        rows.push(...rgb.subarray((y * width + x) * 3, (y * width + x) * 3 + 3));
      }
    }
  }
  const ihdr = new Uint8Array(13);
  new DataView(ihdr.buffer).setUint32(0, width);
  new DataView(ihdr.buffer).setUint32(4, height);
  ihdr.set([8, 2, 0, 0, 1], 8); // 8-bit RGB, Adam7
  return concat([
    new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", idat ?? new Uint8Array(deflateSync(new Uint8Array(rows)))),
    chunk("IEND", new Uint8Array(0)),
  ]);
}

/** A real JPEG whose SOF marker is rewritten to claim `width` x `height`. */
async function jpegBomb(width: number, height: number): Promise<Uint8Array> {
  const bytes = (await Deno.readFile(fixture("jpeg/photo_420_base_q75.jpg"))).slice();
  for (let p = 2; p < bytes.length;) {
    const marker = bytes[p + 1];
    if (marker === 0xc0) {
      bytes.set([height >> 8, height & 255, width >> 8, width & 255], p + 5);
      return bytes;
    }
    p += 2 + ((bytes[p + 2] << 8) | bytes[p + 3]);
  }
  throw new Error("fixture has no baseline SOF");
}

/** A real GIF whose logical screen is rewritten to `width` x `height`. */
function gifBomb(width: number, height: number): Uint8Array {
  const frame = { width: 4, height: 4, channels: 3 as const, data: new Uint8Array(48) };
  const bytes = encodeGif([frame], { delayMs: 10 });
  bytes.set([width & 255, width >> 8, height & 255, height >> 8], 6);
  return bytes;
}

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
  const png = await Deno.readFile(fixture("io/rgb.png"));
  Deno.env.set("DENO_DIFFUSION_MAX_PIXELS", "10");
  try {
    assert.throws(() => decodeImage(png, "rgb.png"), /rgb.png: PNG header claims .* cap of 10 /);
    Deno.env.set("DENO_DIFFUSION_MAX_PIXELS", "lots");
    assert.throws(
      () => decodeImage(png, "rgb.png"),
      /DENO_DIFFUSION_MAX_PIXELS must be a positive/,
    );
  } finally {
    Deno.env.delete("DENO_DIFFUSION_MAX_PIXELS");
  }
  assert.throws(() => decodeImage(pngBomb(0, 7), "empty.png"), /empty.png: corrupt PNG .* 0x7/);
});

/** Seeded positions: every cut length below 64 bytes, then a spread over the rest. */
function positions(length: number, count: number, seed: number): number[] {
  let state = seed;
  const out = Array.from({ length: Math.min(64, length) }, (_, i) => i);
  while (out.length < count) {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    out.push(state % length);
  }
  return out;
}

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
  const cuts = positions(good.length, 160, 1);
  for (const cut of cuts) attempt(good.subarray(0, cut), `cut at ${cut}`);
  const flips = positions(good.length * 8, 300, 2);
  for (const bit of flips) {
    const bytes = good.slice();
    bytes[bit >> 3] ^= 1 << (bit & 7);
    attempt(bytes, `bit ${bit} flipped`);
  }
  assert.ok(decoded < cuts.length + flips.length, "some damage must be detected");
  return { cuts: cuts.length, flips: flips.length, decoded };
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
