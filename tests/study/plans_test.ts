import assert from "node:assert/strict";
import {
  BUILT_IN_PLANS,
  type DdpmEntry,
  type GanEntry,
  MIN_SAMPLES,
  resolvePlan,
  scaleEntry,
  validatePlan,
} from "../../src/study/plans.ts";

Deno.test("BUILT_IN_PLANS.unconditional has the original's 8 rows and published FIDs", () => {
  const plan = BUILT_IN_PLANS.unconditional;
  const published = Object.fromEntries(plan.entries.map((e) => [e.id, e.published]));
  assert.deepEqual(published, {
    "unet-2xud-half": 114.7,
    "unet-2xud": 100.1,
    "unet-3x": 118.5,
    "unet-3x-cosine": 115.9,
    "unet-2xud-cosine": 97.3,
    "gan-smoothed-1024": 125.6,
    "gan-default-1024": 109.1,
    "gan-default-512": 113.3,
  });
  for (const e of plan.entries) {
    assert.equal(e.classes, "cat");
    assert.equal(e.samples, 1000);
  }
  const byId = Object.fromEntries(plan.entries.map((e) => [e.id, e]));
  const ddpmConfig = (id: string) => (byId[id] as DdpmEntry).config;
  assert.equal(ddpmConfig("unet-3x-cosine")?.schedule, "cosine");
  assert.equal(ddpmConfig("unet-2xud")?.schedule, "linear");
  assert.equal((byId["gan-smoothed-1024"] as GanEntry).config?.smooth, true);
  assert.equal(byId["gan-default-512"].budget?.epochs, 512);
});

Deno.test("BUILT_IN_PLANS cover conditional, timesteps and floor as the original did", () => {
  const cond = BUILT_IN_PLANS.conditional.entries;
  assert.deepEqual(cond.map((e) => [e.kind, e.classes, e.conditional, e.published]), [
    ["ddpm", "cat,frog", true, { cat: 102.9, frog: 70.5 }],
    ["gan", "cat,frog", true, { cat: 231.7, frog: 181.7 }],
  ]);
  assert.deepEqual(
    BUILT_IN_PLANS.timesteps.entries.map((e) => (e as DdpmEntry).config?.timesteps),
    [500, 1000, 1500],
  );
  const floor = BUILT_IN_PLANS.floor.entries;
  assert.deepEqual(floor.filter((e) => e.classes === "all").map((e) => e.samples), [
    500,
    1000,
    2000,
    5000,
    10000,
  ]);
  assert.deepEqual(floor.filter((e) => e.classes === "cat").map((e) => e.published), [87, 49.8]);
});

Deno.test("scaleEntry() multiplies the budgets and keeps the minimums", () => {
  const entry = BUILT_IN_PLANS.unconditional.entries[0]; // 500 epochs, 1000 samples, T = 1000
  const full = scaleEntry(entry, 1);
  assert.equal(full.trainImages(5000), 500 * 5000);
  assert.equal(full.scaledSamples, 1000);
  assert.deepEqual(full.scaledSampler, {}); // ancestral DDPM, all T steps
  assert.deepEqual(full.bitsPerDim, { images: 1000, timestepStride: 1 });

  const tenth = scaleEntry(entry, 0.1);
  assert.equal(tenth.trainImages(5000), 250_000);
  assert.equal(tenth.scaledSamples, 100);
  assert.deepEqual(tenth.scaledSampler, { sampler: "ddim", steps: 100 });
  // 100 of the 999 KL terms: every 9th.
  assert.deepEqual(tenth.bitsPerDim, { images: 100, timestepStride: 9 });

  const tiny = scaleEntry(entry, 1e-6);
  assert.equal(tiny.trainImages(5000), 3);
  assert.equal(tiny.scaledSamples, MIN_SAMPLES);
  assert.deepEqual(tiny.scaledSampler, { sampler: "ddim", steps: 4 });
  assert.equal(scaleEntry(entry, 0.5, 33).scaledSamples, 33);

  const gan = scaleEntry(BUILT_IN_PLANS.unconditional.entries[5], 0.01);
  assert.equal(gan.trainImages(5000), Math.round(1024 * 5000 * 0.01));
  assert.deepEqual(gan.scaledSampler, {});
  assert.throws(() => scaleEntry(entry, 0), /scale must be in \(0, 1\]/);
  assert.throws(() => scaleEntry(entry, 2), /scale must be in \(0, 1\]/);
});

Deno.test("validatePlan() fills defaults and names the bad field", () => {
  const plan = validatePlan({
    name: "mine",
    entries: [{ id: "a-1", kind: "gan", classes: "cat", samples: 10, budget: { epochs: 3 } }],
  });
  assert.equal(plan.referenceSplit, "test");
  assert.equal(plan.entries[0].label, "a-1");
  assert.equal(plan.entries[0].table, "mine");
  const bad = (entries: unknown[], pattern: RegExp) =>
    assert.throws(() => validatePlan({ name: "x", entries }, "x.json"), pattern);
  bad(
    [{ id: "A", kind: "gan", classes: "cat", samples: 9, budget: { epochs: 1 } }],
    /x\.json: entries\[0\]\.id/,
  );
  bad([{ id: "a", kind: "vae", classes: "cat", samples: 9 }], /entries\[0\]\.kind must be/);
  bad([{ id: "a", kind: "gan", classes: "cat", samples: 9 }], /entries\[0\]\.budget must be/);
  bad([{ id: "a", kind: "floor", classes: "cat", samples: 1 }], /samples must be an integer >= 2/);
  bad([
    { id: "a", kind: "floor", classes: "cat", samples: 9 },
    { id: "a", kind: "floor", classes: "cat", samples: 9 },
  ], /'a' is used twice/);
  bad([{ id: "a", kind: "floor", classes: "cat", samples: 9, published: "big" }], /published/);
  assert.throws(() => validatePlan([]), /expected a JSON object/);
  assert.throws(() => validatePlan({ name: "x", entries: [] }), /'entries' must be a non-empty/);
});

Deno.test("resolvePlan() reads built-in names and JSON files, and explains a bad name", async () => {
  const plan = await resolvePlan("floor");
  assert.equal(plan.entries.length, 7);
  plan.entries.pop(); // a copy: the built-in plan is untouched
  assert.equal(BUILT_IN_PLANS.floor.entries.length, 7);
  await assert.rejects(() => resolvePlan("unconditonal"), /unknown plan 'unconditonal': use one/);
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/p.json`, "{ not json");
    await assert.rejects(() => resolvePlan(`${dir}/p.json`), /is not valid JSON/);
    await assert.rejects(() => resolvePlan(`${dir}/missing.json`), /cannot read plan file/);
    await Deno.writeTextFile(
      `${dir}/p.json`,
      JSON.stringify({
        name: "f",
        entries: [{ id: "f", kind: "floor", classes: "cat", samples: 4 }],
      }),
    );
    assert.equal((await resolvePlan(`${dir}/p.json`)).entries[0].id, "f");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
