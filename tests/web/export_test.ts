/**
 * `cli.ts export --web` end to end in headless Chromium: a tiny trained DDPM and DCGAN are
 * exported, the page samples them on wasm and on WebGL (SwiftShader), and the images equal
 * `cli.ts sample` with the same seed.
 *
 * Tolerance: both sides quantise to 8 bits with round((x + 1) * 127.5); the browser's float
 * kernels (WebGL shaders, wasm without the Deno build's conv worker split) differ from Deno's
 * tfjs-wasm in the last bits, which can move a value across a rounding boundary. So at most
 * 2/255 per channel value, and at most 1% of values differing at all.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { Browser } from "puppeteer-core";
import { decodeImage, decodeImageFile } from "../../src/io/image.ts";
import { toUint8Images } from "../../src/io/png.ts";
import {
  HAVE_CHROMIUM,
  launchChromium,
  nonBlankFraction,
  staticServer,
  waitFor,
} from "./_browser.ts";
import { tinyImageFolder, tinyRun } from "./_runs.ts";

const CLI = new URL("../../cli.ts", import.meta.url).pathname;
const SCREENSHOTS = Deno.env.get("DENO_DIFFUSION_SCREENSHOTS");

async function cli(...args: string[]): Promise<{ code: number; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
}

/** `cli.ts sample` images of class `name` as 8-bit RGB, in order. */
async function cliImages(
  run: string,
  dir: string,
  name: string,
  extra: string[],
): Promise<Uint8Array[]> {
  const r = await cli(
    "sample",
    "--ckpt",
    run,
    "--n",
    "4",
    "--class",
    name,
    "--seed",
    "7",
    "--backend",
    "tfjs-wasm",
    "--quiet",
    "--out-dir",
    dir,
    ...extra,
  );
  assert.equal(r.code, 0, r.stderr);
  const files = [...Deno.readDirSync(dir)].map((e) => e.name).filter((f) => f.endsWith(".png"));
  assert.equal(files.length, 4);
  return await Promise.all(
    files.sort().map(async (f) => (await decodeImageFile(join(dir, f))).data),
  );
}

interface PageRun {
  backend: string;
  images: Uint8Array[];
  screenshot: Uint8Array;
}

/** Opens the exported page, draws 4 images of class `classId` with seed 7 and `steps`. */
async function pageImages(
  browser: Browser,
  url: string,
  classId: number,
  steps: number,
): Promise<PageRun> {
  const page = await browser.newPage();
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  try {
    await page.goto(url);
    await waitFor(page, `["ready", "error"].includes(globalThis.ddPage.status)`);
    const ready = await page.evaluate(() => {
      const s = (globalThis as unknown as { ddPage: Record<string, unknown> }).ddPage;
      return { status: s.status, error: s.error, backend: s.backend };
    });
    assert.equal(ready.status, "ready", `page failed: ${ready.error} ${errors.join("; ")}`);
    const fields = { count: 4, seed: 7, steps, class: classId };
    await page.evaluate(`for (const [id, v] of Object.entries(${JSON.stringify(fields)})) {
      const input = document.getElementById(id);
      input.value = String(v);
      input.dispatchEvent(new Event("input"));
    }`);
    await page.click("#generate");
    await waitFor(page, `["done", "error"].includes(globalThis.ddPage.status)`);
    const result = await page.evaluate(() => {
      const s = (globalThis as unknown as { ddPage: Record<string, unknown> }).ddPage;
      const images = s.images as Float32Array | undefined;
      return { status: s.status, error: s.error, images: images ? Array.from(images) : [] };
    });
    assert.equal(result.status, "done", `sampling failed: ${result.error}`);
    const images = toUint8Images(Float32Array.from(result.images), [4, 3, 32, 32]).map((i) =>
      i.data
    );
    const screenshot = await page.screenshot({ fullPage: true });
    return { backend: String(ready.backend), images, screenshot: new Uint8Array(screenshot) };
  } finally {
    await page.close();
  }
}

function assertClose(actual: Uint8Array[], expected: Uint8Array[], what: string): void {
  let differing = 0;
  let worst = 0;
  let total = 0;
  actual.forEach((img, k) => {
    for (let i = 0; i < img.length; i++) {
      const d = Math.abs(img[i] - expected[k][i]);
      if (d > 0) differing++;
      worst = Math.max(worst, d);
      total++;
    }
  });
  if (Deno.env.get("DD_WEB_DEBUG")) {
    const mid = expected.reduce((n, img) => n + img.filter((v) => v > 0 && v < 255).length, 0);
    console.log(what, worst, differing, total, "unsaturated", mid);
  }
  assert.ok(
    worst <= 2 && differing <= 0.01 * total,
    `${what}: max difference ${worst}/255, ${differing} of ${total} values differ`,
  );
}

async function checkScreenshot(png: Uint8Array, path: string): Promise<void> {
  await Deno.writeFile(path, png);
  const shot = decodeImage(png, path);
  assert.ok(nonBlankFraction(shot.data, 3) > 0.01, `${path} is blank`);
}

Deno.test({
  name: "an exported DDPM samples in Chromium on wasm and WebGL like `cli.ts sample`",
  ignore: !HAVE_CHROMIUM,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const root = await Deno.makeTempDir({ prefix: "dd-web-export-" });
    const browser = await launchChromium();
    try {
      const run = await tinyRun(`${root}/ddpm`, "ddpm", await tinyImageFolder(`${root}/data`));
      const exported = await cli("export", "--ckpt", run, "--web", `${root}/web`);
      assert.equal(exported.code, 0, exported.stderr);
      assert.match(exported.stderr, /exported the ddpm model to .*app\.js \d/);
      const expected = await cliImages(run, `${root}/cli`, "blue", [
        "--sampler",
        "ddim",
        "--steps",
        "5",
      ]);
      await Deno.writeTextFile(`${root}/notes.txt`, "mine");
      const foreign = await cli("export", "--ckpt", run, "--web", root);
      assert.equal(foreign.code, 1);
      assert.match(foreign.stderr, /already holds other files .*pick an empty or new folder/);
      const server = staticServer(`${root}/web`);
      try {
        for (const backend of ["wasm", "webgl"]) {
          const got = await pageImages(browser, `${server.url}/?backend=${backend}`, 1, 5);
          assert.equal(got.backend, backend);
          assertClose(got.images, expected, `${backend} page vs cli.ts sample`);
          await checkScreenshot(got.screenshot, `${root}/export-${backend}.png`);
          if (SCREENSHOTS && backend === "webgl") {
            await Deno.copyFile(`${root}/export-${backend}.png`, `${SCREENSHOTS}/export-page.png`);
          }
        }
      } finally {
        await server.shutdown();
      }
      // A different seed gives different images (the comparison above is not vacuous).
      const other = await cliImages(run, `${root}/cli2`, "blue", [
        "--sampler",
        "ddim",
        "--steps",
        "5",
        "--seed",
        "8",
      ]);
      assert.ok(other.some((img, k) => img.some((v, i) => v !== expected[k][i])));
    } finally {
      await browser.close();
      await Deno.remove(root, { recursive: true });
    }
  },
});

Deno.test({
  name: "an exported DCGAN samples like `cli.ts sample`, also from file:// with the weights picked",
  ignore: !HAVE_CHROMIUM,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const root = await Deno.makeTempDir({ prefix: "dd-web-export-gan-" });
    const browser = await launchChromium();
    try {
      const run = await tinyRun(`${root}/gan`, "gan", await tinyImageFolder(`${root}/data`));
      const exported = await cli("export", "--ckpt", run, "--web", `${root}/web`);
      assert.equal(exported.code, 0, exported.stderr);
      const expected = await cliImages(run, `${root}/cli`, "red", []);
      const server = staticServer(`${root}/web`);
      try {
        const got = await pageImages(browser, `${server.url}/?backend=wasm`, 0, 1);
        assertClose(got.images, expected, "GAN page vs cli.ts sample");
      } finally {
        await server.shutdown();
      }
      // file://: the page cannot fetch its neighbour, so it asks for the weights file.
      const page = await browser.newPage();
      try {
        await page.goto(`file://${root}/web/index.html?backend=wasm`);
        await waitFor(page, `globalThis.ddPage.status === "need-file"`);
        const input = await page.$("input#weights-file");
        await input!.uploadFile(`${root}/web/model.safetensors`);
        await waitFor(page, `["ready", "error"].includes(globalThis.ddPage.status)`);
        await page.click("#generate");
        await waitFor(page, `["done", "error"].includes(globalThis.ddPage.status)`);
        const status = await page.evaluate(() =>
          (globalThis as unknown as { ddPage: { status: string; error?: string } }).ddPage
        );
        assert.equal(status.status, "done", String(status.error));
      } finally {
        await page.close();
      }
    } finally {
      await browser.close();
      await Deno.remove(root, { recursive: true });
    }
  },
});

Deno.test("export names a missing checkpoint and a missing --web", async () => {
  const root = await Deno.makeTempDir({ prefix: "dd-web-export-bad-" });
  try {
    const missing = await cli("export", "--ckpt", `${root}/nothing`, "--web", `${root}/web`);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /no checkpoint at .*nothing/);
    const noWeb = await cli("export", "--ckpt", `${root}/nothing`);
    assert.equal(noWeb.code, 2);
    assert.match(noWeb.stderr, /--web OUT_DIR is required/);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
