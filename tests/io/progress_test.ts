import assert from "node:assert/strict";
import { byteProgress, ProgressBar, type StatusLine } from "../../src/io/progress.ts";

function recorder(): { status: StatusLine; lines: [string, boolean][] } {
  const lines: [string, boolean][] = [];
  return { status: (line, final) => void lines.push([line, final]), lines };
}

Deno.test("byteProgress() shows MiB and percent, and ends the line when the total is reached", () => {
  const { status, lines } = recorder();
  const progress = byteProgress("data.tar.gz", status);
  progress(2 ** 20, 2 ** 22);
  progress(2 ** 22, 2 ** 22);
  progress(3 * 2 ** 20, null);
  assert.deepEqual(lines, [
    ["downloading data.tar.gz: 1.0 / 4.0 MiB (25%)", false],
    ["downloading data.tar.gz: 4.0 / 4.0 MiB (100%)", true],
    ["downloading data.tar.gz: 3.0 MiB", false],
  ]);
});

Deno.test("ProgressBar on a terminal draws a bar for a known total, a count otherwise, and finishes the line", () => {
  const { status, lines } = recorder();
  const bar = new ProgressBar("features", 10, "images", status, true);
  bar.update(5);
  bar.finish(10);
  assert.match(lines[0][0], /^features \[#{15}\.{15}\] 5\/10 images, [\d.]+ img\/s, \d+ s$/);
  assert.equal(lines[0][1], false);
  assert.match(lines[1][0], /^features \[#{30}\] 10\/10 images/);
  assert.equal(lines[1][1], true);
  const open = recorder();
  new ProgressBar("files", undefined, "images", open.status).update(3, true);
  assert.match(open.lines[0][0], /^files 3 images, /);
  assert.equal(open.lines[0][1], true);
});

Deno.test("ProgressBar writes plain lines without a bar when stderr is not a terminal", async () => {
  // A child process whose stderr is a pipe, as in a log file or CI.
  const code = `import { ProgressBar } from ${
    JSON.stringify(new URL("../../src/io/progress.ts", import.meta.url).href)
  };
const bar = new ProgressBar("sampling", 10);
bar.update(5, true);
bar.finish(10);`;
  const { stderr, success } = await new Deno.Command(Deno.execPath(), {
    args: ["eval", code],
    stdout: "null",
    stderr: "piped",
  }).output();
  assert.ok(success);
  const text = new TextDecoder().decode(stderr);
  assert.ok(!text.includes("\r") && !text.includes("\x1b"), "no redraw codes in a log");
  assert.doesNotMatch(text, /\[#/);
  assert.deepEqual(
    text.trim().split("\n").map((line) => line.replace(/, [\d.]+ img\/s, \d+ s$/, "")),
    ["sampling 5/10 images", "sampling 10/10 images"],
  );
});
