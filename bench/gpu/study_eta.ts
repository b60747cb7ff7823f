/**
 * Expected full-scale time of every study entry, from the throughput measured by a scaled
 * run of the same plan on the same machine:
 *
 *   deno run -A cli.ts study unconditional --scale 0.002 --out runs/probe
 *   deno run -A bench/gpu/study_eta.ts runs/probe/report.json
 *
 * Training: full budget images / the probe's training images/s. Sampling: the probe's
 * seconds per image per denoising step x (samples x T) for ancestral DDPM. Bits/dim: the
 * same per-step cost x (1,000 test images x T forward passes). GANs: training only (their
 * sampling is one forward pass). The probe's first steps include warm-up, so the estimate
 * errs long.
 *
 * @module
 */
import type { EntryResult } from "../../src/study/entry.ts";
import type { StudyEntry } from "../../src/study/plans.ts";
import { formatSeconds } from "../../src/study/report.ts";

const path = Deno.args[0];
if (!path) {
  console.error("usage: deno run -A bench/gpu/study_eta.ts RUN/report.json");
  Deno.exit(2);
}
const report = JSON.parse(await Deno.readTextFile(path)) as {
  plan: { entries: StudyEntry[] };
  scale: number;
  backend: { name: string; device: string };
  results: EntryResult[];
};
console.log(
  `measured at --scale ${report.scale} on ${report.backend.name} (${report.backend.device})`,
);
console.log("| Entry | Train images/s (measured) | Train | Sample | Bits/dim | Total |");
console.log("|---|---|---|---|---|---|");
let total = 0;
for (const entry of report.plan.entries) {
  const result = report.results.find((r) => r.id === entry.id);
  if (!result?.train || !entry.budget) continue;
  const datasetSize = result.train.images / result.train.epochs;
  const trainSeconds = (entry.budget.epochs * datasetSize) / result.train.imagesPerSecond;
  let sampleSeconds = 0;
  let bpdSeconds = 0;
  if (entry.kind === "ddpm" && result.sampling) {
    const timesteps = Number(entry.config?.timesteps ?? 1000);
    const steps = Number(result.sampling.options.steps ?? timesteps);
    const groups = result.scores.length;
    const perImageStep = result.sampling.seconds / (result.sampling.n * groups * steps);
    sampleSeconds = perImageStep * entry.samples * groups * timesteps;
    bpdSeconds = perImageStep * 1000 * timesteps;
  }
  const sum = trainSeconds + sampleSeconds + bpdSeconds;
  total += sum;
  console.log(
    `| ${entry.id} | ${result.train.imagesPerSecond.toFixed(1)} | ${
      formatSeconds(trainSeconds)
    } | ${formatSeconds(sampleSeconds)} | ${formatSeconds(bpdSeconds)} | ${formatSeconds(sum)} |`,
  );
}
console.log(`\nexpected total: ${formatSeconds(total)} (plus FID feature extraction)`);
