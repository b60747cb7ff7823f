import assert from "node:assert/strict";
import { loadTurboJpeg } from "../../src/io/turbojpeg.ts";

// Pixel exactness against PIL is tested in jpeg_test.ts; these are the binding's own contracts.
const fixture = (name: string) => new URL(`../fixtures/jpeg/${name}`, import.meta.url).pathname;
const turbo = loadTurboJpeg();
if (typeof turbo === "string") console.error(`turbojpeg_test: skipped: ${turbo}`);

Deno.test("loadTurboJpeg() returns the reason when the library cannot be opened", () => {
  const reason = loadTurboJpeg("/no/such/libturbojpeg.so");
  assert.equal(typeof reason, "string");
  assert.match(reason as string, /libturbojpeg not found \(\/no\/such\/libturbojpeg.so: /);
});

Deno.test({
  name: "decodeRgb() shows the header's size to checkSize before it allocates, and obeys it",
  ignore: typeof turbo === "string",
  fn: async () => {
    const lib = turbo as Exclude<typeof turbo, string>;
    const bytes = await Deno.readFile(fixture("ramp_420_base_q75.jpg"));
    const seen: number[][] = [];
    const img = lib.decodeRgb(bytes, (w, h) => seen.push([w, h]))!;
    assert.deepEqual(seen, [[77, 53]]);
    assert.deepEqual([img.width, img.height, img.data.length], [77, 53, 77 * 53 * 3]);
    assert.throws(
      () =>
        lib.decodeRgb(bytes, () => {
          throw new Error("too big");
        }),
      /too big/,
    );
    // The next file still decodes: no state is left behind by the refusal.
    assert.equal(lib.decodeRgb(bytes, () => {})!.width, 77);
  },
});

Deno.test({
  name: "decodeRgb() throws libjpeg's message for a truncated file",
  ignore: typeof turbo === "string",
  fn: async () => {
    const lib = turbo as Exclude<typeof turbo, string>;
    const bytes = await Deno.readFile(fixture("photo_444_base_q75.jpg"));
    assert.throws(
      () => lib.decodeRgb(bytes.subarray(0, bytes.length - 100), () => {}),
      /Premature end of JPEG file/,
    );
  },
});
