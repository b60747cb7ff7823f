import assert from "node:assert/strict";
import { gunzipFile, parseTar } from "../../src/io/tar.ts";
import { gzip, makeTar } from "../data/_tar.ts";

Deno.test("parseTar() reads ustar archives and rejects corrupt headers and truncation", () => {
  const tar = makeTar([{ name: "d/a.bin", data: new Uint8Array([1, 2, 3]) }, {
    name: "d/b.txt",
    data: new Uint8Array(700),
  }]);
  const files = parseTar(tar, "t.tar");
  assert.deepEqual(files.map((f) => [f.name, f.data.length]), [["d/a.bin", 3], ["d/b.txt", 700]]);
  assert.deepEqual([...files[0].data], [1, 2, 3]);
  const corrupt = tar.slice();
  corrupt[10] ^= 1;
  assert.throws(() => parseTar(corrupt, "t.tar"), /t.tar: corrupt tar header at byte 0 \(checksum/);
  assert.throws(() => parseTar(tar.subarray(0, 1100), "t.tar"), /t.tar: truncated tar archive/);
  assert.throws(
    () => parseTar(tar.subarray(0, 1700), "t.tar"),
    /t.tar: tar entry at byte 1024 runs past the end/,
  );
});

Deno.test("gunzipFile() inflates a gzip file and names a corrupt one", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const tar = makeTar([{ name: "a.bin", data: new Uint8Array([7, 8]) }]);
    await Deno.writeFile(`${dir}/a.tar.gz`, await gzip(tar));
    assert.deepEqual(await gunzipFile(`${dir}/a.tar.gz`), tar);
    await Deno.writeFile(`${dir}/bad.gz`, new Uint8Array([1, 2, 3, 4]));
    await assert.rejects(() => gunzipFile(`${dir}/bad.gz`), /bad\.gz: corrupt gzip data/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
