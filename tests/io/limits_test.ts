import assert from "node:assert/strict";
import { checkPixels, DEFAULT_MAX_PIXELS, maxPixels } from "../../src/io/limits.ts";

Deno.test("maxPixels() takes the option, else DENO_DIFFUSION_MAX_PIXELS, else 8192 x 8192", () => {
  assert.equal(DEFAULT_MAX_PIXELS, 67108864);
  const saved = Deno.env.get("DENO_DIFFUSION_MAX_PIXELS");
  Deno.env.delete("DENO_DIFFUSION_MAX_PIXELS");
  try {
    assert.equal(maxPixels(), DEFAULT_MAX_PIXELS);
    assert.equal(maxPixels(500), 500);
    Deno.env.set("DENO_DIFFUSION_MAX_PIXELS", " 1000000 ");
    assert.equal(maxPixels(), 1000000);
    assert.equal(maxPixels(7), 7);
    for (const bad of ["0", "-5", "1.5", "1e400", "many"]) {
      Deno.env.set("DENO_DIFFUSION_MAX_PIXELS", bad);
      assert.throws(() => maxPixels(), /DENO_DIFFUSION_MAX_PIXELS must be a positive integer/, bad);
    }
    assert.throws(() => maxPixels(0), /maxPixels must be a positive integer, got 0/);
  } finally {
    if (saved === undefined) Deno.env.delete("DENO_DIFFUSION_MAX_PIXELS");
    else Deno.env.set("DENO_DIFFUSION_MAX_PIXELS", saved);
  }
});

Deno.test("checkPixels() accepts up to the cap and names file, size and remedy above it", () => {
  checkPixels(100, 100, "a.png", "PNG", 10000);
  assert.throws(
    () => checkPixels(101, 100, "a.png", "PNG", 10000),
    /^Error: a.png: PNG header claims 101x100 = 10100 pixels, above the cap of 10000 .*maxPixels/,
  );
  assert.throws(() => checkPixels(0, 5, "b.jpg", "JPEG", 10), /b.jpg: corrupt JPEG .* 0x5 image/);
});
