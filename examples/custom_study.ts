/**
 * A custom study grid from code: two learning rates of the DCGAN on cats, the train-vs-test
 * floor beside them, at a thousandth of the budget. Rerunning skips what is done.
 *
 *   deno run -A examples/custom_study.ts ../shared/data/cifar10-jpg
 *
 * @module
 */
import { runStudy, selectBackend, validatePlan, writeReport } from "../mod.ts";

const plan = validatePlan({
  name: "gan-lr",
  title: "DCGAN learning rate on CIFAR-10 cats",
  entries: [
    ...[1e-4, 2e-4].map((lr) => ({
      id: `gan-lr-${lr.toExponential()}`, // "gan-lr-1e-4": ids are [a-z0-9-]
      label: `DCGAN, lr ${lr}`,
      kind: "gan",
      classes: "cat",
      config: { lr },
      budget: { epochs: 100 },
      samples: 1000,
    })),
    { id: "floor", label: "train vs test", kind: "floor", classes: "cat", samples: 1000 },
  ],
});
using backend = await selectBackend({ log: console.error });
const outDir = "runs/example-study";
const run = await runStudy(plan, {
  backend,
  outDir,
  scale: 0.001,
  dataSource: Deno.args[0],
  download: true,
  log: console.error,
});
await writeReport(run, { outDir, planSource: "examples/custom_study.ts" });
console.log(`wrote ${outDir}/report.md (FID: ${run.fid.status})`);
