/**
 * The dashboard server's safety and API over HTTP (no browser): it binds 127.0.0.1, serves
 * only files inside its folder, is read-only, and refuses traversal, symlinks out, absurd
 * ranges and oversized requests. Requests go over a raw socket where fetch would normalise
 * the path.
 */
import assert from "node:assert/strict";
import { startDashboard } from "../../src/web/server.ts";

interface Raw {
  status: number;
  headers: string;
  body: string;
}

/** Sends `request` verbatim and reads the whole response (the server closes or we stop). */
async function raw(port: number, request: string): Promise<Raw> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(new TextEncoder().encode(request));
    const chunks: Uint8Array[] = [];
    const buf = new Uint8Array(65536);
    while (true) {
      const n = await conn.read(buf);
      if (n === null) break;
      chunks.push(buf.slice(0, n));
      const text = new TextDecoder().decode(
        new Uint8Array(chunks.flatMap((c) => [...c])),
      );
      const end = text.indexOf("\r\n\r\n");
      if (end >= 0) {
        const length = /content-length: (\d+)/i.exec(text.slice(0, end));
        if (length && text.length - end - 4 >= Number(length[1])) break;
        if (!length && /\r\n0\r\n\r\n$/.test(text)) break;
      }
    }
    const text = new TextDecoder().decode(new Uint8Array(chunks.flatMap((c) => [...c])));
    const [head, ...rest] = text.split("\r\n\r\n");
    return { status: Number(head.split(" ")[1]), headers: head, body: rest.join("\r\n\r\n") };
  } finally {
    conn.close();
  }
}

const get = (port: number, path: string, extra = "") =>
  raw(port, `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n${extra}\r\n`);

async function fixture(): Promise<{ outside: string; root: string }> {
  const outside = await Deno.makeTempDir({ prefix: "dd-serve-" });
  const root = `${outside}/runs`;
  await Deno.mkdir(`${root}/cats/samples`, { recursive: true });
  await Deno.writeTextFile(`${outside}/secret.txt`, "do not serve");
  await Deno.writeTextFile(`${root}/cats/log.jsonl`, '{"step":1,"loss":0.5}\n{"step":2,"loss"');
  await Deno.writeTextFile(`${root}/cats/samples/epoch-0001.png`, "0123456789");
  await Deno.symlink(`${outside}/secret.txt`, `${root}/cats/leak.txt`);
  await Deno.symlink(outside, `${root}/cats/up`);
  return { outside, root };
}

Deno.test("serve binds 127.0.0.1 by default and serves files inside its folder, with ranges", async () => {
  const { outside, root } = await fixture();
  const dash = await startDashboard({ root, port: 0 });
  try {
    assert.match(dash.url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
    const port = Number(new URL(dash.url).port);
    const whole = await get(port, "/files/cats/samples/epoch-0001.png");
    assert.equal(whole.status, 200);
    assert.equal(whole.body, "0123456789");
    assert.match(whole.headers, /content-type: image\/png/i);
    assert.match(whole.headers, /x-content-type-options: nosniff/i);
    const part = await get(port, "/files/cats/samples/epoch-0001.png", "Range: bytes=2-5\r\n");
    assert.equal(part.status, 206);
    assert.equal(part.body, "2345");
    assert.match(part.headers, /content-range: bytes 2-5\/10/i);
    const tail = await get(port, "/files/cats/samples/epoch-0001.png", "Range: bytes=-3\r\n");
    assert.equal(tail.body, "789");
  } finally {
    await dash.shutdown();
    await Deno.remove(outside, { recursive: true });
  }
});

Deno.test("serve refuses traversal, symlinks out of the folder, writes and absurd requests", async () => {
  const { outside, root } = await fixture();
  const dash = await startDashboard({ root, port: 0 });
  try {
    const port = Number(new URL(dash.url).port);
    for (
      const path of [
        "/files/../secret.txt",
        "/files/%2e%2e/secret.txt",
        "/files/cats/..%2f..%2fsecret.txt",
        "/files/cats/%2e%2e/%2e%2e/secret.txt",
        "/files/cats/..%5c..%5csecret.txt",
        "/files/cats/log.jsonl%00.png",
        "/files/cats/leak.txt",
        "/files/cats/up/secret.txt",
        "/api/run?path=../",
        "/api/report?path=cats/up",
        "/files//etc/passwd",
      ]
    ) {
      const r = await get(port, path);
      if (Deno.env.get("DD_WEB_DEBUG")) console.log(path, r.status);
      assert.ok([400, 403, 404].includes(r.status), `${path} answered ${r.status}`);
      assert.ok(!r.body.includes("do not serve"), `${path} leaked the file`);
    }
    for (const range of ["bytes=99999999999-", "bytes=0-1,4-5", "bytes=abc", "bytes=5-2"]) {
      const r = await get(port, "/files/cats/samples/epoch-0001.png", `Range: ${range}\r\n`);
      assert.equal(r.status, 416, `Range ${range} answered ${r.status}`);
    }
    const post = await raw(
      port,
      `POST /files/cats/log.jsonl HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n` +
        "Content-Length: 2\r\n\r\nhi",
    );
    assert.equal(post.status, 405);
    const put = await raw(
      port,
      `PUT /files/cats/new.txt HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n` +
        "Content-Length: 0\r\n\r\n",
    );
    assert.equal(put.status, 405);
    await assert.rejects(Deno.stat(`${root}/cats/new.txt`), Deno.errors.NotFound);
    const body = await raw(
      port,
      `GET /api/runs HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n` +
        "Content-Length: 5\r\n\r\nhello",
    );
    assert.equal(body.status, 413);
    const long = await get(port, `/files/${"a".repeat(5000)}`);
    assert.ok([414, 431].includes(long.status), `a 5 kB URL answered ${long.status}`);
    const rebinding = await raw(
      port,
      `GET /api/runs HTTP/1.1\r\nHost: evil.example:${port}\r\nConnection: close\r\n\r\n`,
    );
    assert.equal(rebinding.status, 403);
  } finally {
    await dash.shutdown();
    await Deno.remove(outside, { recursive: true });
  }
});

Deno.test("serve's API lists runs and returns only complete log lines", async () => {
  const { outside, root } = await fixture();
  const dash = await startDashboard({ root, port: 0 });
  try {
    const runs = await (await fetch(`${dash.url}api/runs`)).json();
    assert.deepEqual(runs.runs.map((r: { path: string }) => r.path), ["cats"]);
    assert.equal(runs.runs[0].state, "training"); // the log was just written
    const run = await (await fetch(`${dash.url}api/run?path=cats`)).json();
    // The second line has no newline yet: it is still being written.
    assert.deepEqual(run.log, [{ step: 1, loss: 0.5 }]);
    assert.equal(run.next, '{"step":1,"loss":0.5}\n'.length);
  } finally {
    await dash.shutdown();
    await Deno.remove(outside, { recursive: true });
  }
});

Deno.test("serve refuses a folder that does not exist, saying which", async () => {
  await assert.rejects(
    startDashboard({ root: "/nonexistent/runs", port: 0 }),
    /\/nonexistent\/runs is not a folder/,
  );
});

Deno.test("cli.ts serve prints its URL, serves the page and stops on Ctrl-C", async () => {
  const root = await Deno.makeTempDir({ prefix: "dd-serve-cli-" });
  const cli = new URL("../../cli.ts", import.meta.url).pathname;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", cli, "serve", root, "--port", "0"],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  try {
    const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    while (!/serving .* at (http:\S+)/.test(text)) {
      const { value, done } = await reader.read();
      if (done) break;
      text += value;
    }
    const url = /serving .* at (http:\S+)/.exec(text)?.[1];
    assert.ok(url?.startsWith("http://127.0.0.1:"), `no URL in: ${text}`);
    const page = await fetch(url!);
    assert.equal(page.status, 200);
    assert.match(await page.text(), /<script src="\/assets\/dashboard\.js">/);
    child.kill("SIGINT");
    assert.equal((await child.status).code, 0);
    reader.releaseLock();
    await child.stderr.cancel().catch(() => {});
  } finally {
    try {
      child.kill("SIGKILL");
    } catch {
      // already stopped
    }
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("cli.ts serve names a missing folder", async () => {
  const cli = new URL("../../cli.ts", import.meta.url).pathname;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", cli, "serve", "/nonexistent/runs", "--port", "0"],
    stdout: "null",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 1);
  assert.match(new TextDecoder().decode(out.stderr), /\/nonexistent\/runs is not a folder/);
});
