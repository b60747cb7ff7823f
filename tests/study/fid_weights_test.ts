/**
 * The study with an Inception network: the real pytorch-fid weights are not on these
 * machines, so the FID engineer's fixture script makes random weights in exactly their
 * layout (it needs /usr/bin/python3 with torch; without it this test FAILS, as theirs do).
 * Numbers from such weights must be labelled as not comparable.
 *
 * @module
 */
import assert from "node:assert/strict";
import { runStudy } from "../../src/study/runner.ts";
import { writeReport } from "../../src/study/report.ts";
import { makeTinyData, studyBackend, tinyPlan } from "./_tiny.ts";
import { makeInceptionFixture } from "../_inception_weights.ts";

Deno.test({
  name: "runStudy() scores saved samples once weights appear, labelled not comparable",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const work = await Deno.makeTempDir({ prefix: "study_fid_test_" });
    const backend = await studyBackend();
    try {
      const [data, weights] = await Promise.all([
        makeTinyData(`${work}/data`, 8),
        makeInceptionFixture(work),
      ]);
      const plan = tinyPlan();
      plan.entries = plan.entries.filter((e) => e.id === "gan-tiny" || e.id === "floor-cat-8");
      const out = `${work}/run`;
      const base = { backend, outDir: out, scale: 1, dataSource: data, download: false };
      const blind = await runStudy(plan, base);
      assert.equal(blind.fid.status, "unavailable");
      const checkpoint = await Deno.stat(`${out}/entries/gan-tiny/checkpoint.safetensors`);

      const scored = await runStudy(plan, { ...base, inceptionWeights: weights });
      await writeReport(scored, { outDir: out, planSource: "tiny.json" });
      assert.equal(scored.fid.status, "not-comparable");
      // Scored from the saved samples: no retraining.
      const after = await Deno.stat(`${out}/entries/gan-tiny/checkpoint.safetensors`);
      assert.equal(after.mtime?.getTime(), checkpoint.mtime?.getTime());
      const [gan, floor] = scored.results;
      for (const s of [...gan.scores, ...floor.scores]) {
        assert.ok(Number.isFinite(s.fid) && s.fid! > -1e-6, `fid ${s.fid}`);
        assert.ok(Number.isFinite(s.kid) && Number.isFinite(s.kidStd), `kid ${s.kid}`);
        assert.equal(s.n, 8);
        assert.equal(s.referenceN, 8);
      }
      // The floor next to the GAN's FID is the floor row's FID: same images, same N.
      assert.equal(gan.scores[0].floor, floor.scores[0].fid);
      assert.notEqual(gan.scores[0].fid, gan.scores[0].floor);
      const md = await Deno.readTextFile(`${out}/report.md`);
      assert.match(md, /FID NOT COMPARABLE\.\*\* FID from NOT the released Inception weights/);
      assert.doesNotMatch(md, /unavailable in this run/);
      const fid = gan.scores[0].fid!.toFixed(1);
      assert.ok(md.includes(`| Tiny DCGAN | 109.1 | ${fid} |`), md);
    } finally {
      backend.dispose();
      await Deno.remove(work, { recursive: true });
    }
  },
});
