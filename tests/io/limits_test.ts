import assert from "node:assert/strict";
import { checkPixels, DEFAULT_MAX_PIXELS, maxPixels } from "../../src/io/limits.ts";
import { evalWithEnv } from "../_env.ts";

Deno.test("maxPixels() takes the option, else DENO_DIFFUSION_MAX_PIXELS, else 8192 x 8192", async () => {
  assert.equal(DEFAULT_MAX_PIXELS, 67108864);
  assert.equal(maxPixels(500), 500);
  assert.throws(() => maxPixels(0), /maxPixels must be a positive integer, got 0/);
  const imports = `import { maxPixels } from "src/io/limits.ts";`;
  const read = (value: string | undefined, expression = "maxPixels()") =>
    evalWithEnv(imports, expression, { DENO_DIFFUSION_MAX_PIXELS: value });
  assert.equal((await read(undefined)).value, DEFAULT_MAX_PIXELS);
  assert.equal((await read(" 1000000 ")).value, 1000000);
  assert.equal((await read("1000000", "maxPixels(7)")).value, 7);
  for (const bad of ["0", "-5", "1.5", "1e400", "many"]) {
    const r = await read(bad);
    assert.notEqual(r.code, 0, bad);
    assert.match(r.stderr, /DENO_DIFFUSION_MAX_PIXELS must be a positive integer/, bad);
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
