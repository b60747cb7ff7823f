import assert from "node:assert/strict";
import { readLogFrom, scanRoot, summarizeRun } from "../../src/web/runs.ts";

Deno.test("readLogFrom returns complete lines only and resumes where it stopped", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/log.jsonl`;
    await Deno.writeTextFile(path, '{"step":1}\n{"step":2}\n{"st');
    const first = await readLogFrom(path);
    assert.deepEqual(first.lines, [{ step: 1 }, { step: 2 }]);
    await Deno.writeTextFile(path, 'ep":3}\nnot json\n', { append: true });
    const second = await readLogFrom(path, first.next);
    assert.deepEqual(second.lines, [{ step: 3 }]);
    await Deno.writeTextFile(path, '{"step":1}\n');
    assert.equal((await readLogFrom(path, second.next)).truncated, true);
    assert.deepEqual(await readLogFrom(`${dir}/missing.jsonl`), {
      lines: [],
      next: 0,
      truncated: false,
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("summarizeRun says training, interrupted or finished from the checkpoint and log times", async () => {
  const root = await Deno.makeTempDir();
  try {
    const write = async (name: string, step: number, total: number, ageSeconds: number) => {
      await Deno.mkdir(`${root}/${name}/samples`, { recursive: true });
      const state = {
        kind: "ddpm",
        step,
        config: { preset: "convnet" },
        backend: "tfjs-wasm",
        train: { totalSteps: total, batchSize: 4 },
      };
      await Deno.writeTextFile(`${root}/${name}/checkpoint.json`, JSON.stringify(state));
      await Deno.writeTextFile(
        `${root}/${name}/log.jsonl`,
        JSON.stringify({ step, loss: 0.1, images_per_s: 2 }) + "\n",
      );
      await Deno.writeTextFile(`${root}/${name}/samples/epoch-0001.png`, "");
      await Deno.writeTextFile(`${root}/${name}/samples/epoch-0002.png`, "");
      const when = new Date(Date.now() - ageSeconds * 1000);
      await Deno.utime(`${root}/${name}/log.jsonl`, when, when);
      await Deno.utime(`${root}/${name}/checkpoint.json`, when, when);
    };
    await write("busy", 10, 100, 1);
    await write("stopped", 10, 100, 3600);
    await write("done", 100, 100, 3600);
    const busy = (await summarizeRun(root, "busy"))!;
    assert.equal(busy.state, "training");
    assert.equal(busy.etaSeconds, (90 * 4) / 2);
    assert.deepEqual(busy.previews, ["busy/samples/epoch-0002.png", "busy/samples/epoch-0001.png"]);
    assert.deepEqual([busy.gif, busy.apng], [null, null], "no progress animations yet");
    await Deno.writeTextFile(`${root}/busy/progress.gif`, "");
    await Deno.writeTextFile(`${root}/busy/progress.png`, "");
    const animated = (await summarizeRun(root, "busy"))!;
    assert.deepEqual([animated.gif, animated.apng], ["busy/progress.gif", "busy/progress.png"]);
    assert.equal((await summarizeRun(root, "stopped"))!.state, "interrupted");
    assert.equal((await summarizeRun(root, "done"))!.state, "finished");
    assert.equal(await summarizeRun(root, "nothing"), null);
    const { runs } = await scanRoot(root);
    assert.deepEqual(runs.map((r) => r.path), ["busy", "done", "stopped"]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
