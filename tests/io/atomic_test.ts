import assert from "node:assert/strict";
import { removeStaleTemps, writeFileAtomic, writeFileAtomicSync } from "../../src/io/atomic.ts";

Deno.test("writeFileAtomic() writes the bytes and leaves no temp file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await writeFileAtomic(`${dir}/a.txt`, "first");
    await writeFileAtomic(`${dir}/a.txt`, new Uint8Array([104, 105]));
    assert.equal(await Deno.readTextFile(`${dir}/a.txt`), "hi");
    writeFileAtomicSync(`${dir}/b.txt`, "sync");
    assert.equal(await Deno.readTextFile(`${dir}/b.txt`), "sync");
    const names = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
    assert.deepEqual(names, ["a.txt", "b.txt"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("writeFileAtomic() fails cleanly and keeps the old file when the rename fails", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // The target is a non-empty folder: rename over it fails after the temp file is written.
    await Deno.mkdir(`${dir}/target`);
    await Deno.writeTextFile(`${dir}/target/keep`, "x");
    await assert.rejects(
      () => writeFileAtomic(`${dir}/target`, "data"),
      /could not write .*target/,
    );
    assert.throws(() => writeFileAtomicSync(`${dir}/target`, "data"), /could not write .*target/);
    const names = [...Deno.readDirSync(dir)].map((e) => e.name);
    assert.deepEqual(names, ["target"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("writeFileAtomic() names the path when the folder is missing", async () => {
  await assert.rejects(
    () => writeFileAtomic("/nonexistent-dir-xyz/file.bin", "x"),
    /could not write \/nonexistent-dir-xyz\/file.bin/,
  );
});

Deno.test("removeStaleTemps() removes only the temp files atomic writes name, and lists them", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await writeFileAtomic(`${dir}/kept.json`, "{}");
    const ours = [".checkpoint.safetensors.1a2b3c4d5e.tmp", ".log.jsonl.zz09.tmp"];
    const theirs = ["notes.tmp", ".hidden.tmp", "checkpoint.safetensors.tmp", ".a.B9.tmp"];
    for (const name of [...ours, ...theirs]) await Deno.writeTextFile(`${dir}/${name}`, "x");
    assert.deepEqual(await removeStaleTemps(dir), [...ours].sort());
    const left = [];
    for await (const e of Deno.readDir(dir)) left.push(e.name);
    assert.deepEqual(left.sort(), ["kept.json", ...theirs].sort());
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
