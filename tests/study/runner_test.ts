import assert from "node:assert/strict";
import { runStudy } from "../../src/study/runner.ts";
import type { StudyRun } from "../../src/study/entry.ts";
import type { GanEntry } from "../../src/study/plans.ts";
import { writeReport } from "../../src/study/report.ts";
import { decodeGif } from "../../src/io/gif.ts";
import { decodeImageFile, listImageFiles } from "../../src/io/image.ts";
import { assertSamePixels, readApng } from "../io/_apng_reader.ts";
import { makeTinyData, studyBackend, tinyPlan } from "./_tiny.ts";

const work = await Deno.makeTempDir({ prefix: "study_runner_test_" });
globalThis.addEventListener("unload", () => Deno.removeSync(work, { recursive: true }));
const data = await makeTinyData(`${work}/data`);
const backend = await studyBackend();
globalThis.addEventListener("unload", () => backend.dispose());

function options(outDir: string, extra: Partial<Parameters<typeof runStudy>[1]> = {}) {
  return { backend, outDir, scale: 1, dataSource: data, download: false, ...extra };
}

async function readJson(path: string) {
  return JSON.parse(await Deno.readTextFile(path));
}

let first: StudyRun;
const out = `${work}/run`;

Deno.test({
  name: "runStudy() trains, samples and reports every entry, with FID marked unavailable",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    first = await runStudy(tinyPlan(), options(out));
    await writeReport(first, { outDir: out, planSource: "tiny.json" });
    assert.deepEqual(first.results.map((r) => r.id), [
      "ddpm-tiny",
      "gan-tiny",
      "cond-gan-tiny",
      "floor-cat-8",
    ]);
    assert.deepEqual(first.fid.status, "unavailable");
    const md = await Deno.readTextFile(`${out}/report.md`);
    assert.match(md, /FID and KID are unavailable in this run/);
    assert.match(md, /pt_inception-2015-12-05-6726825d\.pth/);
    // Every row, with the published FID next to an n/a of ours (nothing made up).
    assert.match(md, /\| Tiny diffusion \| 114\.7 \| n\/a \| n\/a \| n\/a \| \d+\.\d{3} \(/);
    assert.match(md, /\| Tiny DCGAN \| 109\.1 \| n\/a \| n\/a \| n\/a \|/);
    assert.match(md, /\| Tiny conditional DCGAN — cat \| 231\.7 \| n\/a \|/);
    assert.match(md, /\| Tiny conditional DCGAN — frog \| 181\.7 \| n\/a \|/);
    assert.match(md, /\| floor-cat-8 \| n\/a \| n\/a \| n\/a \| 8 vs 8 \|/);
    // Grids, the GAN GIF and the command of every row.
    assert.match(md, /!\[ddpm-tiny samples\]\(entries\/ddpm-tiny\/samples\.png\)/);
    assert.match(md, /!\[gan-tiny progress\]\(entries\/gan-tiny\/progress\.gif\)/);
    for (const id of ["ddpm-tiny", "gan-tiny", "cond-gan-tiny", "floor-cat-8"]) {
      assert(md.includes(`cli.ts study tiny.json --only ${id} --data ${data} --out ${out}`), id);
    }

    const json = await readJson(`${out}/report.json`);
    assert.deepEqual(json.fid.status, "unavailable");
    const ddpm = json.results[0];
    assert(ddpm.bitsPerDim.total > 0 && Number.isFinite(ddpm.bitsPerDim.total));
    // A real evaluation over all 24 test cats; the full bound includes its prior term L_T.
    assert.deepEqual(ddpm.bitsPerDim.images, 24);
    assert(ddpm.bitsPerDim.total >= ddpm.bitsPerDim.prior);
    assert.deepEqual(ddpm.scores[0].fid, null);
    // 24 images, batch 8, 1 epoch -> 3 steps; GAN 2 epochs -> 6 steps.
    assert.deepEqual(ddpm.train.steps, 3);
    assert.deepEqual(json.results[1].train.steps, 6);
    assert(ddpm.params.model > 0 && json.results[1].params.generator > 0);
    assert.deepEqual(json.results[2].scores.map((s: { className: string }) => s.className), [
      "cat",
      "frog",
    ]);
    // The GIF has the untrained generator and one frame per training segment (6 steps -> 6),
    // each a 64-image grid of the same noise.
    const frames = decodeGif(await Deno.readFile(`${out}/entries/gan-tiny/progress.gif`));
    assert.deepEqual(frames.length, 7);
    assert.deepEqual([frames[0].width, frames[0].height], [274, 274]);
    // progress.png: the same frames, each the fixed-noise grid PNG's pixels exactly.
    const apng = readApng(await Deno.readFile(`${out}/entries/gan-tiny/progress.png`));
    const grids = await listImageFiles(`${out}/entries/gan-tiny/frames`);
    const pngs = await Promise.all(grids.sort().map(decodeImageFile));
    assert.equal(apng.frames.length, pngs.length);
    apng.frames.forEach((f, k) => assertSamePixels(f.data, pngs[k].data, grids[k]));
    // FID inputs: one PNG per sample (per class for the conditional model).
    // Images only: each sample folder also carries its hidden .samples.json manifest.
    const count = async (dir: string) =>
      (await Array.fromAsync(Deno.readDir(dir))).filter((e) => e.name.endsWith(".png")).length;
    assert.deepEqual(await count(`${out}/entries/ddpm-tiny/fid-samples`), 8);
    assert.deepEqual(await count(`${out}/entries/cond-gan-tiny/fid-samples/frog`), 8);
  },
});

Deno.test({
  name: "runStudy() skips finished entries on a rerun",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const before = await Deno.stat(`${out}/entries/ddpm-tiny/result.json`);
    const again = await runStudy(tinyPlan(), options(out));
    assert.deepEqual(again.skipped, ["ddpm-tiny", "gan-tiny", "cond-gan-tiny", "floor-cat-8"]);
    const after = await Deno.stat(`${out}/entries/ddpm-tiny/result.json`);
    assert.deepEqual(after.mtime?.getTime(), before.mtime?.getTime());
    assert.deepEqual(again.results, first.results);
  },
});

Deno.test({
  name: "runStudy() resumes a half-trained entry and ends where an uninterrupted run ends",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const plan = tinyPlan();
    plan.entries = plan.entries.filter((e) => e.id === "ddpm-tiny" || e.id === "gan-tiny");
    const resumed = `${work}/resumed`;
    // Abort after the first training step of each entry.
    const controller = new AbortController();
    const interrupted = await runStudy(
      plan,
      options(resumed, {
        signal: controller.signal,
        trainerReport: (line, final) => {
          if (!final && /^\[/.test(line)) controller.abort();
        },
      }),
    );
    assert.deepEqual(interrupted.results, []);
    assert.deepEqual(interrupted.unfinished, ["ddpm-tiny", "gan-tiny"]);
    const checkpoint = await readJson(`${resumed}/entries/ddpm-tiny/checkpoint.json`);
    assert.deepEqual(checkpoint.step, 1);

    const lines: string[] = [];
    const finished = await runStudy(plan, options(resumed, { log: (m) => lines.push(m) }));
    assert.deepEqual(finished.results.map((r) => r.train?.steps), [3, 6]);
    // Same weights as the uninterrupted run: the same samples, byte for byte.
    for (const id of ["ddpm-tiny", "gan-tiny"]) {
      const a = await Deno.readFile(`${out}/entries/${id}/samples.png`);
      const b = await Deno.readFile(`${resumed}/entries/${id}/samples.png`);
      assert.deepEqual(b, a, `${id} samples differ after resuming`);
    }
  },
});

Deno.test({
  name: "runStudy() refuses a run folder made with other settings",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const plan = tinyPlan();
    plan.entries = plan.entries.filter((e) => e.id === "floor-cat-8");
    await assert.rejects(
      () => runStudy(plan, options(out, { samples: 4 })),
      /holds a result of entry 'floor-cat-8' run with other settings/,
    );
    await assert.rejects(
      () => runStudy(plan, options(out, { only: ["nope"] })),
      /--only: no entry nope in plan tiny/,
    );
  },
});

Deno.test({
  name: "runStudy() records a failing entry and still runs the others",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const plan = tinyPlan();
    plan.entries = plan.entries.filter((e) => e.id === "gan-tiny" || e.id === "floor-cat-8");
    const gan = plan.entries[0] as GanEntry;
    plan.entries[0] = { ...gan, config: { preset: "dcgan-huge" as "dcgan" } };
    const broken = `${work}/broken`;
    const result = await runStudy(plan, options(broken));
    assert.deepEqual(result.results.map((r) => r.id), ["floor-cat-8"]);
    assert.equal(result.failed.length, 1);
    assert.equal(result.failed[0].id, "gan-tiny");
    assert.match(result.failed[0].error, /dcgan-huge/);
    await writeReport(result, { outDir: broken, planSource: "tiny.json" });
    const md = await Deno.readTextFile(`${broken}/report.md`);
    assert.match(md, /\*\*Failed:\*\* gan-tiny: .*dcgan-huge/);
  },
});
