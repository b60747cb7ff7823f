/**
 * `cli.ts serve` in headless Chromium: the page lists the fixture runs, a run's chart has as
 * many points as its log.jsonl, a line appended to the log shows up without a reload, the
 * preview grid and progress.png (the animated PNG) decode, and a study's report.md renders as tables and images.
 */
import assert from "node:assert/strict";
import { decodeImage } from "../../src/io/image.ts";
import { startDashboard } from "../../src/web/server.ts";
import { HAVE_CHROMIUM, launchChromium, nonBlankFraction, waitFor } from "./_browser.ts";
import { tinyImageFolder, tinyRun } from "./_runs.ts";

const SCREENSHOTS = Deno.env.get("DENO_DIFFUSION_SCREENSHOTS");

const REPORT = `# Study: tiny

## Diffusion

| Model | Published FID | Our FID |
|---|---|---|
| Tiny diffusion | 114.7 | 301.2 |

## Samples

![ddpm samples](entries/ddpm/samples.png)

<script>document.title = "pwned"</script>
`;

Deno.test({
  name: "the dashboard lists runs, draws their logs live, shows previews and renders a study",
  ignore: !HAVE_CHROMIUM,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const root = await Deno.makeTempDir({ prefix: "dd-web-dash-" });
    const runs = `${root}/runs`;
    const data = await tinyImageFolder(`${root}/data`);
    await tinyRun(`${runs}/ddpm-tiny`, "ddpm", data);
    await tinyRun(`${runs}/gan-tiny`, "gan", data);
    await Deno.mkdir(`${runs}/study/entries/ddpm`, { recursive: true });
    await Deno.copyFile(
      `${runs}/ddpm-tiny/samples/epoch-0001.png`,
      `${runs}/study/entries/ddpm/samples.png`,
    );
    await Deno.writeTextFile(`${runs}/study/report.md`, REPORT);
    const logPath = `${runs}/ddpm-tiny/log.jsonl`;
    const logLines = (await Deno.readTextFile(logPath)).trim().split("\n");

    const dash = await startDashboard({ root: runs, port: 0, pollMs: 100 });
    const browser = await launchChromium();
    try {
      const page = await browser.newPage();
      await page.setViewport({ width: 1200, height: 1000 });
      await page.goto(dash.url);
      await waitFor(page, `globalThis.ddDash?.view === "list" && globalThis.ddDash.runs === 2`);
      const listed = await page.$$eval(
        "#runs tr.run",
        (rows) => rows.map((r) => (r as unknown as { innerText: string }).innerText),
      );
      assert.equal(listed.length, 2);
      assert.match(listed.join("\n"), /ddpm\s+convnet\s+tfjs-wasm\s+3\/3/);
      assert.match(listed.join("\n"), /gan\s+dcgan\s+tfjs-wasm\s+3\/3/);
      const studies = await page.$$eval("#studies a", (a) => a.map((x) => x.textContent));
      assert.deepEqual(studies, ["study"]);

      await page.goto(`${dash.url}#run=ddpm-tiny`);
      await waitFor(page, `globalThis.ddDash.view === "run" && globalThis.ddDash.points > 0`);
      const drawn = await page.evaluate(`({ points: ddDash.points, charts: ddDash.chartPoints,
        titles: [...document.querySelectorAll(".u-title")].map((t) => t.textContent),
        newest: document.getElementById("newest").naturalWidth })`) as {
        points: number;
        charts: number[];
        titles: string[];
        newest: number;
      };
      assert.equal(drawn.points, logLines.length);
      assert.deepEqual(drawn.charts, [logLines.length, logLines.length]);
      assert.deepEqual(drawn.titles, ["loss", "gradNorm"]);
      assert.equal(drawn.newest, 274, "the newest preview grid decodes (8 images, 274 px wide)");

      // Training appends a line: it must reach the open page without a reload.
      await page.evaluate(`globalThis.noReloadMarker = 1`);
      await Deno.writeTextFile(
        logPath,
        JSON.stringify({ step: 4, epoch: 1, loss: 0.25, gradNorm: 1.5 }) + "\n",
        { append: true },
      );
      await waitFor(page, `ddDash.points === ${logLines.length + 1}`, 20_000);
      const after = await page.evaluate(`({ marker: globalThis.noReloadMarker,
        charts: ddDash.chartPoints })`) as { marker: number; charts: number[] };
      assert.equal(after.marker, 1);
      assert.deepEqual(after.charts, [logLines.length + 1, logLines.length + 1]);
      const shot = await page.screenshot({ fullPage: true });
      await Deno.writeFile(`${root}/dashboard-run.png`, shot);
      assert.ok(nonBlankFraction(decodeImage(shot).data, 3) > 0.05, "the screenshot is blank");
      if (SCREENSHOTS) await Deno.writeFile(`${SCREENSHOTS}/dashboard-run.png`, shot);

      await page.goto(`${dash.url}#run=gan-tiny`);
      await waitFor(
        page,
        `ddDash.view === "run" && ddDash.run === "gan-tiny" && ddDash.points > 0`,
      );
      await waitFor(page, `document.getElementById("progress")?.complete`);
      const gan = await page.evaluate(`({
        titles: [...document.querySelectorAll(".u-title")].map((t) => t.textContent),
        src: document.getElementById("progress").src,
        width: document.getElementById("progress").naturalWidth })`) as {
        titles: string[];
        src: string;
        width: number;
      };
      assert.deepEqual(gan.titles, ["lossD, lossG", "dReal, dFake, dNoise"]);
      // The lossless animated PNG is shown in preference to the GIF.
      assert.ok(gan.src.endsWith("/gan-tiny/progress.png"), gan.src);
      assert.ok(gan.width > 0, "progress.png decodes");

      await page.goto(`${dash.url}#study=study`);
      await waitFor(page, `document.querySelector("#report table") !== null`);
      await waitFor(page, `document.querySelector("#report img")?.complete`);
      const report = await page.evaluate(`({ text: document.getElementById("report").innerText,
        img: document.querySelector("#report img").naturalWidth, title: document.title })`) as {
        text: string;
        img: number;
        title: string;
      };
      assert.match(report.text, /Published FID\s+Our FID/);
      assert.match(report.text, /114\.7\s+301\.2/);
      assert.ok(report.img > 0, "the report's image decodes");
      assert.notEqual(report.title, "pwned", "raw HTML in report.md must not run");
      if (SCREENSHOTS) {
        await Deno.writeFile(`${SCREENSHOTS}/dashboard-study.png`, await page.screenshot());
      }
    } finally {
      await browser.close();
      await dash.shutdown();
      await Deno.remove(root, { recursive: true });
    }
  },
});
