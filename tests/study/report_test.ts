import assert from "node:assert/strict";
import { formatSeconds, renderReport, reportJson } from "../../src/study/report.ts";
import type { EntryResult, StudyRun } from "../../src/study/entry.ts";
import { BUILT_IN_PLANS } from "../../src/study/plans.ts";

function result(id: string, overrides: Partial<EntryResult> = {}): EntryResult {
  const entry = BUILT_IN_PLANS.unconditional.entries.find((e) => e.id === id)!;
  return {
    id,
    label: entry.label,
    table: entry.table,
    kind: entry.kind,
    classes: entry.classes,
    conditional: false,
    fingerprint: "",
    backend: "torch-cuda",
    params: entry.kind === "gan" ? { generator: 3_576_704, discriminator: 2_765_568 } : {
      model: 23_332_739,
    },
    train: {
      steps: 39_000,
      batchSize: 64,
      images: 2_496_000,
      epochs: 499.2,
      seconds: 3725,
      imagesPerSecond: 670.04,
    },
    sampling: { n: 1000, options: {}, seconds: 100 },
    scores: [{
      className: null,
      n: 1000,
      referenceN: 1000,
      fid: 101.234,
      kid: 0.0123,
      kidStd: 0.0011,
      floor: 49.91,
      published: entry.published as number,
    }],
    fidStatus: "ok",
    bitsPerDim: entry.kind === "ddpm"
      ? { total: 3.756, prior: 0.001, images: 1000, timestepStride: 1 }
      : null,
    files: { grid: `entries/${id}/samples.png` },
    finishedAt: "2026-01-01T00:00:00Z",
    ...overrides,
  };
}

function run(results: EntryResult[], fid: StudyRun["fid"]): StudyRun {
  return {
    plan: BUILT_IN_PLANS.unconditional,
    results,
    skipped: [],
    fid,
    backend: { name: "torch-cuda", device: "cuda:0", version: "libtorch 2.4" },
    scale: 1,
    samples: null,
    dataSource: null,
    unfinished: [],
    failed: [],
    seconds: 10,
  };
}

const options = { outDir: "runs/s", planSource: "unconditional" };

Deno.test("renderReport() puts our FID, KID, floor and columns next to the published FID", () => {
  const md = renderReport(
    run([result("unet-3x"), result("gan-default-512")], { status: "ok", note: "weights ok" }),
    options,
  );
  assert.match(
    md,
    /\| UNet 3x \(default\) \| 118\.5 \| 101\.2 \| 49\.9 \| 12\.30 ± 1\.10 \| 3\.756 \(1000 images\) \| 23\.33 M \| 1h02m \| 670\.0 \| 39000 steps x 64 \(499\.200 ep\) \| 1000 vs 1000 \| torch-cuda \|/,
  );
  assert.match(
    md,
    /\| DCGAN, default, 512 epochs \| 113\.3 \| 101\.2 \| 49\.9 \|.*\| G 3\.58 M, D 2\.77 M \|/,
  );
  assert.doesNotMatch(md, /unavailable|NOT COMPARABLE|Scaled run/);
  assert.match(md, /`deno run -A cli\.ts study unconditional --only unet-3x --out runs\/s`/);
  // Rows that have not run are listed as unfinished, not invented.
  assert.match(md, /\*\*Not finished:\*\* unet-2xud-half, unet-2xud, unet-3x-cosine/);
});

Deno.test("renderReport() says plainly when FID is unavailable or not comparable", () => {
  const missing = result("unet-2xud", {
    fidStatus: "unavailable",
    scores: [{
      className: null,
      n: 10,
      referenceN: 10,
      fid: null,
      kid: null,
      kidStd: null,
      floor: null,
      published: 100.1,
    }],
  });
  const scaled = { ...run([missing], { status: "unavailable", note: "weights not found" }) };
  scaled.scale = 0.01;
  const md = renderReport(scaled, options);
  assert.match(md, /FID and KID are unavailable in this run.\*\* weights not found\./);
  assert.match(md, /\| UNet 2xUD \| 100\.1 \| n\/a \| n\/a \| n\/a \| 3\.756 \(1000 images\)/);
  assert.match(md, /Scaled run \(--scale 0\.01\)/);
  assert.match(md, /--only unet-2xud --scale 0\.01 --out runs\/s/);

  const fake = renderReport(
    run([result("unet-2xud")], { status: "not-comparable", note: "random test weights" }),
    options,
  );
  assert.match(fake, /FID NOT COMPARABLE\.\*\* random test weights\./);
});

Deno.test("reportJson() carries every result with its command", () => {
  const json = reportJson(run([result("unet-3x")], { status: "ok", note: "" }), options);
  const results = json.results as (EntryResult & { command: string })[];
  assert.equal(results[0].scores[0].fid, 101.234);
  assert.equal(
    results[0].command,
    "deno run -A cli.ts study unconditional --only unet-3x --out runs/s",
  );
  assert.equal((json.unfinished as string[]).length, 7);
});

Deno.test("formatSeconds() writes short durations", () => {
  assert.equal(formatSeconds(4.24), "4.2 s");
  assert.equal(formatSeconds(75), "1m15s");
  assert.equal(formatSeconds(3725), "1h02m");
});

Deno.test("Reproduce commands carry the weights flag and quote paths that need it", () => {
  const md = renderReport(run([result("unet-3x")], { status: "ok", note: "" }), {
    outDir: "runs/s",
    planSource: "/home/me/my plans/grid.json",
    inceptionWeights: "/w/pt_inception-2015-12-05-6726825d.pth",
    dataSource: "/data/cifar-10-batches-bin",
  });
  assert.match(
    md,
    /`deno run -A cli\.ts study '\/home\/me\/my plans\/grid\.json' --only unet-3x --data \/data\/cifar-10-batches-bin --inception-weights \/w\/pt_inception-2015-12-05-6726825d\.pth --out runs\/s`/,
  );
});

Deno.test("a floor-only report shows every finished row and says it has no samples", () => {
  const plan = BUILT_IN_PLANS.floor;
  const results: EntryResult[] = plan.entries.map((entry, i) => ({
    ...result("unet-3x"),
    id: entry.id,
    label: entry.label,
    table: entry.table,
    kind: entry.kind,
    classes: entry.classes,
    params: {},
    train: null,
    sampling: null,
    bitsPerDim: null,
    files: {},
    scores: [{
      className: null,
      n: 100 + i,
      referenceN: 100 + i,
      fid: 50 + i,
      kid: null,
      kidStd: null,
      floor: 50 + i,
      published: typeof entry.published === "number" ? entry.published : null,
    }],
  }));
  const md = renderReport({ ...run(results, { status: "ok", note: "" }), plan }, {
    outDir: "runs/f",
    planSource: "floor",
  });
  assert.match(
    md,
    /\| Comparison \| Published FID \| FID \(ours\) \| KID x 10\^3 \| Images per split \|/,
  );
  for (const [i, entry] of plan.entries.entries()) {
    assert.ok(md.includes(`| ${entry.label} | `), entry.label);
    assert.ok(md.includes(`| ${(50 + i).toFixed(1)} | n/a | ${100 + i} vs ${100 + i} |`), entry.id);
  }
  assert.match(md, /trains no model \(train-vs-test floor rows only\), so there are no samples/);
  assert.doesNotMatch(md, /No model has finished yet/);
});

Deno.test("the timesteps plan says its published column is empty and why", () => {
  const plan = BUILT_IN_PLANS.timesteps;
  assert.ok(plan.entries.every((e) => e.published === undefined));
  assert.match(plan.description, /original \(seed\) study gives no FID for a sweep over T/);
});

Deno.test("renderReport() links the training curves and samples strip it is given", () => {
  const r = run([result("unet-3x"), result("gan-default-512")], { status: "ok", note: "ok" });
  const md = renderReport(r, options, {
    curves: { "unet-3x": "entries/unet-3x/curves.svg" },
    strip: "samples-strip.svg",
  });
  assert.match(
    md,
    /## Training curves\n\n!\[unet-3x training loss\]\(entries\/unet-3x\/curves\.svg\)/,
  );
  assert.doesNotMatch(md, /gan-default-512 training loss/);
  assert.match(md, /## Samples at a glance\n\n!\[[^\]]*\]\(samples-strip\.svg\)/);
  assert.doesNotMatch(renderReport(r, options), /Training curves|at a glance/);
});
