import assert from "node:assert/strict";
import {
  contentType,
  parseRange,
  realRoot,
  RefusedError,
  resolveInside,
} from "../../src/web/files.ts";

Deno.test("parseRange serves one range inside the file and refuses the rest with 416", () => {
  assert.equal(parseRange(null, 10), undefined);
  assert.deepEqual(parseRange("bytes=0-3", 10), [0, 3]);
  assert.deepEqual(parseRange("bytes=4-", 10), [4, 9]);
  assert.deepEqual(parseRange("bytes=8-100", 10), [8, 9]);
  assert.deepEqual(parseRange("bytes=-3", 10), [7, 9]);
  assert.deepEqual(parseRange("bytes=-30", 10), [0, 9]);
  for (
    const bad of ["bytes=10-", "bytes=5-2", "bytes=0-1,3-4", "items=0-1", "bytes=-", "bytes=-0"]
  ) {
    assert.throws(() => parseRange(bad, 10), (e) => e instanceof RefusedError && e.status === 416);
  }
  assert.throws(() => parseRange(`bytes=${"9".repeat(30)}-`, 10), RefusedError);
});

Deno.test("resolveInside keeps paths inside the root: 403 for .. and symlinks out, 404 missing", async () => {
  const outside = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${outside}/root/a`, { recursive: true });
    await Deno.writeTextFile(`${outside}/root/a/x.txt`, "x");
    await Deno.writeTextFile(`${outside}/secret`, "s");
    await Deno.symlink(`${outside}/secret`, `${outside}/root/a/out`);
    await Deno.symlink(`${outside}/root/a/x.txt`, `${outside}/root/a/in`);
    const root = await realRoot(`${outside}/root`);
    assert.equal(await resolveInside(root, "a/x.txt"), `${root}/a/x.txt`);
    assert.equal(await resolveInside(root, "/a//./x.txt"), `${root}/a/x.txt`);
    assert.equal(await resolveInside(root, "a/in"), `${root}/a/x.txt`);
    const status = (p: string) =>
      resolveInside(root, p).then(() => 200, (e) => (e as RefusedError).status);
    assert.equal(await status("../secret"), 403);
    assert.equal(await status("a/../../secret"), 403);
    assert.equal(await status("a/out"), 403);
    assert.equal(await status("a\\..\\..\\secret"), 400);
    assert.equal(await status("a/x.txt\0"), 400);
    assert.equal(await status("a/missing"), 404);
  } finally {
    await Deno.remove(outside, { recursive: true });
  }
});

Deno.test("contentType names images and never serves a run folder's HTML as HTML", () => {
  assert.equal(contentType("a/epoch-0001.png"), "image/png");
  assert.equal(contentType("progress.GIF"), "image/gif");
  assert.match(contentType("report.html"), /^text\/plain/);
  assert.equal(contentType("checkpoint.safetensors"), "application/octet-stream");
});
