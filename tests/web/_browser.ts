/**
 * Headless Chromium for the web tests (Debian's `chromium`, installed by setup.sh), driven by
 * puppeteer-core, with SwiftShader so WebGL works without a GPU.
 *
 * @module
 */
import puppeteer, { type Browser, type Page } from "puppeteer-core";

/** Where setup.sh's Debian package puts the browser (override: $CHROMIUM). */
export const CHROMIUM = Deno.env.get("CHROMIUM") ?? "/usr/bin/chromium";

const installed = (() => {
  try {
    return Deno.statSync(CHROMIUM).isFile;
  } catch {
    return false;
  }
})();
const required = (Deno.env.get("DENO_DIFFUSION_REQUIRE") ?? "").split(",").map((s) => s.trim());

/**
 * Whether to run the browser tests: when Chromium is installed, or when DENO_DIFFUSION_REQUIRE
 * lists "chromium" (CI does), so that a missing browser fails there instead of skipping.
 */
export const HAVE_CHROMIUM = installed || required.includes("chromium");
if (!HAVE_CHROMIUM) {
  console.log(`skipping the browser tests: no ${CHROMIUM} (setup.sh installs Debian's chromium)`);
}

/** Launches headless Chromium with software WebGL. */
export function launchChromium(): Promise<Browser> {
  return puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    protocolTimeout: 300_000,
    args: [
      "--no-sandbox", // the CI runs as root
      "--use-angle=swiftshader",
      "--enable-unsafe-swiftshader",
      "--disable-dev-shm-usage",
      "--window-size=1100,900",
    ],
  });
}

/** Waits (polling, so a busy GPU thread cannot starve it) until `fn` is true in the page. */
export async function waitFor(page: Page, fn: string, timeoutMs = 120_000): Promise<void> {
  await page.waitForFunction(fn, { polling: 200, timeout: timeoutMs });
}

/** A static file server over `dir` on 127.0.0.1 (plain files only, for the exported page). */
export function staticServer(dir: string): Deno.HttpServer<Deno.NetAddr> & { url: string } {
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, async (req) => {
    const name = decodeURIComponent(new URL(req.url).pathname).slice(1) || "index.html";
    if (name.includes("/") || name.startsWith(".")) return new Response("no", { status: 404 });
    try {
      return new Response(await Deno.readFile(`${dir}/${name}`));
    } catch {
      return new Response("not found", { status: 404 });
    }
  });
  return Object.assign(server, { url: `http://127.0.0.1:${server.addr.port}` });
}

/** Fraction of pixels of an RGB(A) image that differ from its first pixel. */
export function nonBlankFraction(data: Uint8Array, channels: number): number {
  let differing = 0;
  const n = data.length / channels;
  for (let p = 0; p < n; p++) {
    for (let c = 0; c < 3; c++) {
      if (data[p * channels + c] !== data[c]) {
        differing++;
        break;
      }
    }
  }
  return differing / n;
}
