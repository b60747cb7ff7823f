import assert from "node:assert/strict";
import { decodeJpeg, jpegDecoder, readJpegHeader } from "../../src/io/jpeg.ts";
import { loadTurboJpeg } from "../../src/io/turbojpeg.ts";

// Fixture: tests/fixtures/make_jpeg_fixtures.py (PIL 9.4 on libjpeg-turbo 2.1.5): sha256 of
// PIL's Image.open(f).convert("RGB") bytes for 300 shared CIFAR-10 JPEGs (all baseline 4:2:0)
// and 48 generated files (4:4:4, 4:2:2, 4:2:0, gray; baseline and progressive; odd sizes).
interface Entry {
  path: string;
  sampling: string;
  progressive: boolean;
  width: number;
  height: number;
  sha256: string;
}
const here = (path: string) => new URL(path, import.meta.url).pathname;
const fixtures = JSON.parse(await Deno.readTextFile(here("../fixtures/jpeg/pil_hashes.json"))) as {
  cifar10: Entry[];
  generated: Entry[];
  damaged: { path: string; flip?: number; cut?: number; pil: string }[];
};
// The shared data sits beside the repository (CI keeps a copy of shared/ next to the clone).
const cifarDir = here("../../../shared/data/cifar10-jpg/");
const hasCifar = await Deno.stat(cifarDir).then((s) => s.isDirectory, () => false);
const turbo = loadTurboJpeg();
const hasTurbo = typeof turbo !== "string";
if (!hasTurbo) console.error(`jpeg_test: libjpeg-turbo tests skipped: ${turbo}`);
if (!hasCifar) console.error(`jpeg_test: CIFAR-10 hash tests skipped: ${cifarDir} is absent`);

async function sha256(data: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", data.slice()));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function mismatches(entries: Entry[], root: string, decoder: "libjpeg-turbo" | "jpeg-js") {
  const wrong: string[] = [];
  for (const entry of entries) {
    const img = decodeJpeg(await Deno.readFile(root + entry.path), entry.path, { decoder });
    assert.deepEqual([img.width, img.height], [entry.width, entry.height], entry.path);
    if ((await sha256(img.data)) !== entry.sha256) wrong.push(entry.path);
  }
  return wrong;
}

Deno.test({
  name: "decodeJpeg() with libjpeg-turbo gives PIL's exact pixels for 300 CIFAR-10 JPEGs",
  ignore: !hasTurbo || !hasCifar,
  fn: async () => {
    assert.equal(fixtures.cifar10.length, 300);
    assert.deepEqual(await mismatches(fixtures.cifar10, cifarDir, "libjpeg-turbo"), []);
  },
});

Deno.test({
  name: "decodeJpeg() with libjpeg-turbo gives PIL's exact pixels in every subsampling mode",
  ignore: !hasTurbo,
  fn: async () => {
    const modes = new Set(fixtures.generated.map((e) => `${e.sampling} ${e.progressive}`));
    assert.equal(modes.size, 8); // 4 samplings x baseline/progressive
    const root = here("../fixtures/jpeg/");
    assert.deepEqual(await mismatches(fixtures.generated, root, "libjpeg-turbo"), []);
  },
});

Deno.test({
  name: "decodeJpeg() with libjpeg-turbo refuses what PIL refuses and keeps what PIL keeps",
  ignore: !hasTurbo,
  fn: async () => {
    const disagree: string[] = [];
    for (const entry of fixtures.damaged) {
      let bytes = await Deno.readFile(here(`../fixtures/jpeg/${entry.path}`));
      if (entry.flip !== undefined) bytes[entry.flip >> 3] ^= 1 << (entry.flip & 7);
      if (entry.cut !== undefined) bytes = bytes.subarray(0, entry.cut);
      const what = `${entry.path} ${
        entry.flip !== undefined ? `flip ${entry.flip}` : `cut ${entry.cut}`
      }`;
      let ours: string;
      try {
        ours = await sha256(decodeJpeg(bytes, "bad.jpg", { decoder: "libjpeg-turbo" }).data);
      } catch (error) {
        assert.match((error as Error).message, /^bad.jpg: corrupt JPEG/);
        ours = "error";
      }
      if (ours !== entry.pil) {
        disagree.push(`${what}: PIL ${entry.pil.slice(0, 8)}, ours ${ours.slice(0, 8)}`);
      }
    }
    assert.deepEqual(disagree, []);
  },
});

Deno.test("decodeJpeg() with the jpeg-js fallback is close to PIL but not exact", async () => {
  // Documents why libjpeg-turbo is preferred: the fallback matches no hash, yet decodes
  // every mode to the right size (its distance from PIL is measured in the report of #16).
  const root = here("../fixtures/jpeg/");
  const wrong = await mismatches(fixtures.generated, root, "jpeg-js");
  assert.ok(wrong.length > fixtures.generated.length / 2, `${wrong.length} differ`);
});

Deno.test("jpegDecoder() reports libjpeg-turbo when it loads, else jpeg-js with the reason", () => {
  const info = jpegDecoder();
  if (Deno.env.get("DENO_DIFFUSION_JPEG")) return; // an explicit choice is the user's
  if (hasTurbo) assert.equal(info.name, "libjpeg-turbo");
  else assert.deepEqual([info.name, /libturbojpeg0/.test(info.detail)], ["jpeg-js", true]);
});

Deno.test("readJpegHeader() finds the frame header and returns null before one", async () => {
  const bytes = await Deno.readFile(here("../fixtures/jpeg/ramp_422_prog_q75.jpg"));
  const header = readJpegHeader(bytes)!;
  assert.deepEqual(
    [header.width, header.height, header.components, header.progressive],
    [77, 53, 3, true],
  );
  assert.equal(readJpegHeader(bytes.subarray(0, 20)), null);
  // Stray bytes between markers are skipped, as libjpeg (and PIL's parser) do: PIL decodes
  // this file with a warning to the same pixels.
  const at = 4 + ((bytes[4] << 8) | bytes[5]); // after APP0
  const padded = new Uint8Array(bytes.length + 3);
  padded.set(bytes.subarray(0, at));
  padded.set([0x00, 0x13, 0x37], at);
  padded.set(bytes.subarray(at), at + 3);
  assert.equal(readJpegHeader(padded)?.width, 77);
  if (hasTurbo) {
    const want = decodeJpeg(bytes, "ramp.jpg", { decoder: "libjpeg-turbo" });
    assert.deepEqual(decodeJpeg(padded, "padded.jpg", { decoder: "libjpeg-turbo" }), want);
  }
  assert.equal(readJpegHeader(new Uint8Array([0xff, 0xd8, 0x00, 0x00, 0x00])), null);
});

Deno.test("decodeJpeg() names the file for corrupt input with either decoder", async () => {
  const bytes = await Deno.readFile(here("../fixtures/jpeg/photo_420_base_q75.jpg"));
  const decoders = hasTurbo ? ["libjpeg-turbo", "jpeg-js"] as const : ["jpeg-js"] as const;
  for (const decoder of decoders) {
    for (const cut of [3, 40, 400, bytes.length - 40]) {
      assert.throws(
        () => decodeJpeg(bytes.subarray(0, cut), "cut.jpg", { decoder }),
        /cut.jpg: corrupt JPEG/,
        `${decoder} cut at ${cut}`,
      );
    }
  }
});

Deno.test({
  name: "DENO_DIFFUSION_JPEG=jpeg-js selects the fallback and says so on stderr",
  ignore: !hasTurbo,
  fn: async () => {
    const script = `import { decodeJpeg, jpegDecoder } from "${here("../../src/io/jpeg.ts")}";
      decodeJpeg(await Deno.readFile("${here("../fixtures/jpeg/ramp_444_base_q75.jpg")}"));
      console.log(jpegDecoder().name);`;
    const run = (env: Record<string, string>) =>
      new Deno.Command(Deno.execPath(), {
        args: ["eval", "--ext=ts", script],
        env,
        cwd: here("../.."),
      }).output();
    const fallback = await run({ DENO_DIFFUSION_JPEG: "jpeg-js" });
    const err = new TextDecoder().decode(fallback.stderr);
    assert.equal(new TextDecoder().decode(fallback.stdout).trim(), "jpeg-js", err);
    assert.match(err, /jpeg: decoding with jpeg-js \(chosen by DENO_DIFFUSION_JPEG=jpeg-js\)/);
    const missing = await run({ DENO_DIFFUSION_JPEG: "/no/libturbojpeg.so" });
    assert.notEqual(missing.code, 0);
    assert.match(new TextDecoder().decode(missing.stderr), /libjpeg-turbo cannot be used/);
  },
});
