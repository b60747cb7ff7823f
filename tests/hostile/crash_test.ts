import assert from "node:assert/strict";
import { readSafetensors } from "../../src/io/safetensors.ts";
import { goodImageFolder } from "./_corpus.ts";
import { snapshot } from "./_harness.ts";

// Issue 17's crash test: a tiny training run killed with SIGKILL at 10 random moments (four of
// them the moment a temp file of a checkpoint write appears), restarted each time, ends with
// weights, optimizer state and RNG equal bit for bit to an uninterrupted run's, with no temp
// file left and model.safetensors and checkpoint.json agreeing with the checkpoint.

const CLI = new URL("../../cli.ts", import.meta.url).pathname;
// Enough that ten kills (each after at most ~1.6 s of training) land before the end even on
// an idle machine, where 300 tiny GAN steps were done after nine.
const STEPS = 1000;
const KILLS = 10;
const TARGETED = new Set([2, 4, 6, 8]); // kills aimed at an in-flight checkpoint write

function start(args: string[]): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, ...args],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
    env: {
      DENO_DIFFUSION_BACKEND: "torch-cpu",
      DENO_DIFFUSION_TORCH_THREADS: "1",
      OMP_WAIT_POLICY: "PASSIVE",
    },
  }).spawn();
}

/** Resolves once the child's stderr has printed a line matching `pattern` (or it ended). */
async function waitFor(child: Deno.ChildProcess, pattern: RegExp): Promise<string> {
  let text = "";
  const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  while (!pattern.test(text)) {
    const { value, done } = await reader.read();
    if (done) break;
    text += value;
  }
  // Keep draining so the child never blocks on a full pipe.
  (async () => {
    while (!(await reader.read().catch(() => ({ done: true }))).done) { /* drain */ }
  })();
  return text;
}

async function tempFiles(dir: string): Promise<string[]> {
  try {
    return [...(await snapshot(dir)).keys()].filter((p) => p.endsWith(".tmp"));
  } catch {
    return [];
  }
}

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

function trainArgs(data: string, out: string): string[] {
  return [
    "train",
    "--model",
    "gan",
    "--ngf",
    "2",
    "--ndf",
    "2",
    "--nz",
    "4",
    "--data",
    data,
    "--classes",
    "a",
    "--batch-size",
    "2",
    "--max-steps",
    String(STEPS),
    "--checkpoint-every",
    "1",
    "--preview-every",
    "0",
    "--out",
    out,
  ];
}

Deno.test("a run killed -9 at 10 random moments and resumed equals an uninterrupted run", async () => {
  const root = await Deno.makeTempDir({ prefix: "hostile-crash-" });
  try {
    const data = await goodImageFolder(`${root}/data`);
    const reference = start(trainArgs(data, `${root}/reference`));
    await waitFor(reference, /$^/); // drain to the end
    assert.equal((await reference.status).code, 0, "the uninterrupted run failed");

    const run = `${root}/killed`;
    let seed = 20261203;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    let hitWrites = 0;
    let kills = 0;
    for (let k = 0; k < KILLS; k++) {
      const resume = await exists(`${run}/checkpoint.safetensors`);
      const child = start(resume ? ["train", "--resume", "--out", run] : trainArgs(data, run));
      const said = await waitFor(child, /resumed .* at step|training gan|error/);
      assert.doesNotMatch(said, /error/, said);
      if (TARGETED.has(k)) {
        // Poll for the temp file of a checkpoint write and kill as soon as one shows.
        const deadline = Date.now() + 20_000;
        while (Date.now() < deadline && (await tempFiles(run)).length === 0) {
          await new Promise((r) => setTimeout(r, 1));
        }
      } else {
        await new Promise((r) => setTimeout(r, 100 + random() * 1500));
      }
      try {
        child.kill("SIGKILL");
      } catch {
        // It ended on its own between the last check and the kill; its status says how.
      }
      const status = await child.status;
      if (status.success) break; // finished before the kill: nothing left to interrupt
      kills++;
      if ((await tempFiles(run)).length > 0) hitWrites++;
    }
    assert.equal(kills, KILLS, `the run finished after ${kills} kills: raise STEPS`);
    assert.ok(hitWrites >= 1, "no kill landed during a checkpoint write");

    const last = start(["train", "--resume", "--out", run]);
    const said = await waitFor(last, /$^/);
    assert.equal((await last.status).code, 0, said);

    assert.deepEqual(await tempFiles(run), [], "temp files were left behind");
    const [want, got] = await Promise.all([
      readSafetensors(`${root}/reference/checkpoint.safetensors`),
      readSafetensors(`${run}/checkpoint.safetensors`),
    ]);
    assert.deepEqual([...got.tensors.keys()].sort(), [...want.tensors.keys()].sort());
    for (const [name, t] of want.tensors) {
      assert.deepEqual(got.tensors.get(name)!.data, t.data, `${name} differs`);
    }
    const [a, b] = [want, got].map((f) => JSON.parse(f.metadata.deno_diffusion));
    assert.equal(b.step, STEPS);
    assert.deepEqual(b.rng, a.rng);
    assert.deepEqual(b.optimizerSteps, a.optimizerSteps);
    const json = JSON.parse(await Deno.readTextFile(`${run}/checkpoint.json`));
    assert.equal(json.savedAt, b.savedAt, "checkpoint.json disagrees with the checkpoint");
    const exported = await readSafetensors(`${run}/model.safetensors`);
    assert.equal(exported.metadata.deno_diffusion_saved_at, b.savedAt);
    console.log(`${kills} kills, ${hitWrites} of them left a checkpoint write unfinished`);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
