import assert from "node:assert/strict";
import { studyCommand } from "../../src/cli/study.ts";
import { UsageError } from "../../src/cli/args.ts";

async function captured(fn: () => Promise<number>): Promise<{ status: number; out: string }> {
  const original = console.log;
  const lines: string[] = [];
  console.log = (...args: unknown[]) => lines.push(args.join(" "));
  try {
    return { status: await fn(), out: lines.join("\n") };
  } finally {
    console.log = original;
  }
}

Deno.test("studyCommand() --help lists the flags and the built-in plans", async () => {
  const { status, out } = await captured(() => studyCommand(["--help"]));
  assert.equal(status, 0);
  for (const flag of ["--scale", "--out", "--data", "--backend", "--inception-weights", "--n"]) {
    assert.ok(out.includes(flag), flag);
  }
  assert.match(out, /Built-in plans: unconditional, conditional, timesteps, floor/);
});

Deno.test("studyCommand() --list prints a plan's entries without running anything", async () => {
  const { status, out } = await captured(() => studyCommand(["unconditional", "--list"]));
  assert.equal(status, 0);
  assert.equal(out.split("\n").length, 8);
  assert.match(out, /unet-2xud-cosine\s+ddpm\s+UNet 2xUD, cosine/);
});

Deno.test("studyCommand() rejects bad arguments with a hint", async () => {
  const rejects = (argv: string[], pattern: RegExp) =>
    assert.rejects(() => studyCommand(argv), (e: Error) => {
      assert.ok(e instanceof UsageError, e.message);
      assert.match(e.message, pattern);
      return true;
    });
  await rejects([], /missing argument/);
  await rejects(["uncond"], /unknown plan 'uncond': use one of unconditional/);
  await rejects(["floor", "--scael", "0.1"], /unknown flag --scael .*did you mean --scale/);
  await rejects(["floor", "--scale", "2"], /--scale must be a number in \[0, 1\]/);
  await rejects(["floor", "--scale", "0"], /--scale must be greater than 0/);
  await rejects(["floor", "--n", "1"], /--n must be an integer >= 2/);
});

Deno.test("studyCommand() writes Reproduce commands with the plan file and data by absolute path", async () => {
  const root = await Deno.realPath(await Deno.makeTempDir());
  const here = Deno.cwd();
  try {
    // A tiny CIFAR-10 binary folder: 40 train and 40 test records, labels i % 10.
    const batch = new Uint8Array(40 * 3073).map((_, i) => i % 3073 === 0 ? (i / 3073) % 10 : i);
    await Deno.mkdir(`${root}/data`);
    await Deno.writeFile(`${root}/data/data_batch_1.bin`, batch);
    await Deno.writeFile(`${root}/data/test_batch.bin`, batch);
    await Deno.writeTextFile(
      `${root}/plan.json`,
      JSON.stringify({
        name: "tiny-floor",
        entries: [{ id: "floor-cat", kind: "floor", classes: "cat", samples: 4 }],
      }),
    );
    Deno.chdir(root);
    const status = await studyCommand([
      "plan.json",
      "--data",
      "data",
      "--no-download",
      "--backend",
      "tfjs-cpu",
      "--out",
      "out",
    ]);
    assert.equal(status, 0);
    const json = JSON.parse(await Deno.readTextFile(`${root}/out/report.json`));
    assert.equal(
      json.results[0].command,
      `deno run -A cli.ts study ${root}/plan.json --only floor-cat --data ${root}/data --out out`,
    );
    const md = await Deno.readTextFile(`${root}/out/report.md`);
    assert.match(md, /\| floor-cat|train vs test/);
    assert.match(md, /trains no model \(train-vs-test floor rows only\)/);
  } finally {
    Deno.chdir(here);
    await Deno.remove(root, { recursive: true });
  }
});
