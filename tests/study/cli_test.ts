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
