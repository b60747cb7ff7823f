import assert from "node:assert/strict";
import {
  checkOutputFile,
  checkOutputFolder,
  freeBytes,
  OutputError,
  writeError,
} from "../../src/io/output.ts";
import { writeFileAtomic } from "../../src/io/atomic.ts";

function caught(fn: () => void): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error("expected a throw");
}

Deno.test("writeError() says 'could not write PATH: reason' with a hint, never a raw os error", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/taken`, "x");
    const exists = writeError(
      `${dir}/taken`,
      caught(() => Deno.writeFileSync(`${dir}/taken`, new Uint8Array(1), { createNew: true })),
    );
    assert.ok(exists instanceof OutputError);
    assert.match(
      exists.message,
      new RegExp(`^could not write ${dir}/taken: File exists \\(.+\\)$`),
    );
    assert.doesNotMatch(exists.message, /os error|writefile/);
    const missing = writeError(
      "/no-such-dir/x.png",
      caught(() => Deno.writeFileSync("/no-such-dir/x.png", new Uint8Array(1))),
    );
    assert.equal(
      missing.message,
      "could not write /no-such-dir/x.png: No such file or directory (create the folder first, or fix the path)",
    );
    // The atomic writer words its failures the same way.
    await assert.rejects(
      () => writeFileAtomic(`${dir}/taken/inside`, "x"),
      new RegExp(`^OutputError: could not write ${dir}/taken/inside: Not a directory \\(`),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("checkOutputFile() refuses a missing folder, a file as folder and a folder as file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/file`, "x");
    await assert.rejects(
      () => checkOutputFile(`${dir}/missing/grid.png`, { flag: "--out" }),
      new RegExp(`--out ${dir}/missing/grid.png: the folder ${dir}/missing does not exist`),
    );
    await assert.rejects(
      () => checkOutputFile(`${dir}/file/grid.png`),
      /file\/grid.png: .*\/file is a file, not a folder/,
    );
    await assert.rejects(() => checkOutputFile(dir), /is a folder; give a file name/);
    await checkOutputFile(`${dir}/grid.png`);
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["file"]); // probe removed
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("checkOutputFolder() accepts a folder to be created, refuses a file, creates nothing", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/file`, "x");
    await checkOutputFolder(`${dir}/a/b/c`);
    await assert.rejects(
      () => checkOutputFolder(`${dir}/file`, { flag: "--out-dir" }),
      /--out-dir .*\/file is a file, not a folder/,
    );
    await assert.rejects(
      () => checkOutputFolder(`${dir}/file/sub`),
      /\/file is a file, not a folder/,
    );
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["file"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the free-space check refuses an output larger than the disk's free space", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const free = await freeBytes(dir);
    assert.ok(free !== null && free > 0, "df is available on the test machines");
    await checkOutputFolder(dir, { expectedBytes: 1024 });
    await assert.rejects(
      () => checkOutputFolder(`${dir}/samples`, { expectedBytes: free * 2, flag: "--out-dir" }),
      /not enough space for --out-dir .*: the output needs about \d+ MB, \d+ MB are free/,
    );
    await assert.rejects(
      () => checkOutputFile(`${dir}/grid.png`, { expectedBytes: free * 2 }),
      /not enough space/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
