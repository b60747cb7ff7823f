import assert from "node:assert/strict";
import { downloadFile } from "../../src/io/download.ts";
import { md5Hex } from "../../src/io/md5.ts";

/** Serves `body` on 127.0.0.1 (a free port) for the duration of `fn`. */
async function withServer(body: Uint8Array, fn: (url: string) => Promise<void>) {
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    () => new Response(body.slice()),
  );
  try {
    await fn(`http://127.0.0.1:${server.addr.port}/file.bin`);
  } finally {
    await server.shutdown();
  }
}

Deno.test("downloadFile() writes the body, reports progress and checks the MD5", async () => {
  const dir = await Deno.makeTempDir();
  const body = new Uint8Array(100_000).map((_, i) => i % 251);
  try {
    await withServer(body, async (url) => {
      const seen: [number, number | null][] = [];
      await downloadFile(url, `${dir}/ok.bin`, {
        md5: md5Hex(body),
        onProgress: (received, total) => seen.push([received, total]),
      });
      assert.deepEqual(await Deno.readFile(`${dir}/ok.bin`), body);
      assert.deepEqual(seen.at(-1), [100_000, 100_000]);
      await assert.rejects(
        () => downloadFile(url, `${dir}/bad.bin`, { md5: "0".repeat(32), onProgress: () => {} }),
        /has MD5 [0-9a-f]{32}, expected 0{32}/,
      );
    });
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["ok.bin"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("downloadFile() moves the file into place only when verify accepts it", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await withServer(new Uint8Array([1, 2, 3]), async (url) => {
      let checked = "";
      await downloadFile(url, `${dir}/a.bin`, {
        onProgress: () => {},
        verify: async (temp) => {
          checked = temp;
          assert.deepEqual(await Deno.readFile(temp), new Uint8Array([1, 2, 3]));
        },
      });
      assert.match(checked, /a\.bin\.[0-9a-f]{8}\.part$/);
      await assert.rejects(
        () =>
          downloadFile(url, `${dir}/b.bin`, {
            onProgress: () => {},
            verify: () => Promise.reject(new Error("not the released file")),
          }),
        /not the released file/,
      );
    });
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["a.bin"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("downloadFile() gives up on a server that never answers and leaves nothing", async () => {
  const dir = await Deno.makeTempDir();
  const { promise: released, resolve: release } = Promise.withResolvers<void>();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async () => {
    await released;
    return new Response("late");
  });
  try {
    await assert.rejects(
      () =>
        downloadFile(`http://127.0.0.1:${server.addr.port}/slow`, `${dir}/f`, {
          timeoutMs: 200,
          onProgress: () => {},
        }),
      /cannot download .*\/slow: no answer \(timed out\)/,
    );
    assert.deepEqual([...Deno.readDirSync(dir)], []);
  } finally {
    release();
    await server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
