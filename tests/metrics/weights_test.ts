import assert from "node:assert/strict";
import {
  cachedWeightsPath,
  FID_WEIGHTS_FILE,
  resolveInceptionWeights,
} from "../../src/metrics/weights.ts";

const dir = await Deno.makeTempDir({ prefix: "weights_test_" });
globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));

/** The help every "no weights" error carries: the file's name, where to get it, where to put it. */
function isFullHelp(e: Error): boolean {
  return e.message.includes(FID_WEIGHTS_FILE) &&
    e.message.includes("https://github.com/mseitzer/pytorch-fid/releases/download") &&
    e.message.includes(cachedWeightsPath()) && e.message.includes("--inception-weights") &&
    e.message.includes("DENO_DIFFUSION_INCEPTION");
}

async function withEnv(value: string | undefined, fn: () => Promise<void>): Promise<void> {
  const previous = Deno.env.get("DENO_DIFFUSION_INCEPTION");
  if (value === undefined) Deno.env.delete("DENO_DIFFUSION_INCEPTION");
  else Deno.env.set("DENO_DIFFUSION_INCEPTION", value);
  try {
    await fn();
  } finally {
    if (previous === undefined) Deno.env.delete("DENO_DIFFUSION_INCEPTION");
    else Deno.env.set("DENO_DIFFUSION_INCEPTION", previous);
  }
}

Deno.test("a missing --inception-weights file gets the same help as no weights at all", async () => {
  await assert.rejects(
    resolveInceptionWeights({ path: `${dir}/nope.pth` }),
    (e: Error) =>
      /nope\.pth \(from --inception-weights\) does not exist/.test(e.message) &&
      isFullHelp(e),
  );
});

Deno.test("a folder given as the weights (flag or DENO_DIFFUSION_INCEPTION) gets the full help", async () => {
  await assert.rejects(
    resolveInceptionWeights({ path: dir }),
    (e: Error) => /\(from --inception-weights\) is a folder/.test(e.message) && isFullHelp(e),
  );
  await withEnv(dir, async () => {
    await assert.rejects(
      resolveInceptionWeights({ download: false }),
      (e: Error) =>
        /\(from DENO_DIFFUSION_INCEPTION\) is a folder/.test(e.message) && isFullHelp(e),
    );
  });
  await withEnv(`${dir}/absent.pth`, async () => {
    await assert.rejects(
      resolveInceptionWeights({ download: false }),
      (e: Error) =>
        /absent\.pth \(from DENO_DIFFUSION_INCEPTION\) does not exist/.test(e.message) &&
        isFullHelp(e),
    );
  });
});
