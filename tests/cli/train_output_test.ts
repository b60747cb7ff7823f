import assert from "node:assert/strict";

const CLI = new URL("../../cli.ts", import.meta.url).pathname;

Deno.test("train checks its --out folder before loading data or training", async () => {
  const root = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${root}/file`, "x");
    const out = await new Deno.Command(Deno.execPath(), {
      // The data does not exist either: the output check must come first.
      args: ["run", "-A", CLI, "train", "--data", `${root}/no-data`, "--out", `${root}/file/run`],
      stdout: "piped",
      stderr: "piped",
      env: { DENO_DIFFUSION_BACKEND: "tfjs-cpu" },
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 1, stderr);
    assert.match(stderr, /--out .*\/file\/run: .*\/file is a file, not a folder \(fix the path\)/);
    assert.doesNotMatch(stderr, /os error/);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
