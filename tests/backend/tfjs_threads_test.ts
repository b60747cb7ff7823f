/**
 * tfjs-wasm's threaded-SIMD build under Deno (src/backend/tfjs_threads.ts): it loads with a
 * thread per core, gives the single-threaded build's numbers bit for bit, and lets a program
 * that never disposes its backend exit. The build is chosen once per process, so each build
 * runs in a child process (tests/backend/_tfjs_threads_child.ts).
 *
 * @module
 */
import assert from "node:assert/strict";
import { evalWithEnv } from "../_env.ts";

const CHILD = new URL("./_tfjs_threads_child.ts", import.meta.url).pathname;
const cores = navigator.hardwareConcurrency ?? 1;

/** Runs the child with DENO_DIFFUSION_TFJS_THREADS=`threads` (and `env`); its JSON line. */
async function child(threads: string, env: Record<string, string> = {}) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CHILD],
    env: { DENO_DIFFUSION_TFJS_THREADS: threads, DENO_DIFFUSION_TFJS_WORKERS: "0", ...env },
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(120_000),
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  assert.equal(
    out.code,
    0,
    `child (threads ${threads}) failed: ${new TextDecoder().decode(out.stderr)}`,
  );
  return {
    ...JSON.parse(text.trim().split("\n").at(-1)!) as {
      device: string;
      value: number;
      grads: number[][];
    },
    stderr: new TextDecoder().decode(out.stderr),
  };
}

Deno.test({
  name:
    "the threaded tfjs-wasm build loads, exits undisposed and equals the single-threaded one bit for bit",
  ignore: cores < 2,
  async fn() {
    const [one, many] = [await child("1"), await child("0")];
    assert.match(one.device, /, 1 thread\)$/);
    assert.match(many.device, new RegExp(`, ${Math.min(cores, 8)} threads\\)$`));
    assert.equal(many.value, one.value);
    assert.equal(many.grads.length, 4);
    many.grads.forEach((g, i) => assert.deepEqual(g, one.grads[i], `gradient ${i}`));
    assert.ok(one.grads.every((g) => g.some((v) => v !== 0)), "gradients are not all zero");
  },
});

Deno.test({
  name:
    "a threaded build whose pool thread never starts falls back to the single-threaded one, saying why on stderr",
  ignore: cores < 2,
  async fn() {
    const hung = await child("2", {
      DENO_DIFFUSION_TFJS_TEST_POOL_HANG: "1",
      DENO_DIFFUSION_TFJS_THREADS_TIMEOUT: "2",
    });
    assert.match(hung.device, /, 1 thread\)$/);
    const lines = hung.stderr.split("\n").filter((l) => l.startsWith("tfjs-wasm:"));
    assert.equal(lines.length, 1, hung.stderr);
    assert.match(lines[0], /threaded build \(2 threads\) did not start within 2 s/);
    assert.match(lines[0], /single-threaded build runs instead/);
    assert.match(lines[0], /DENO_DIFFUSION_TFJS_THREADS=1 .*DENO_DIFFUSION_TFJS_THREADS_TIMEOUT=0/);
    const one = await child("1");
    assert.equal(hung.value, one.value);
    hung.grads.forEach((g, i) => assert.deepEqual(g, one.grads[i], `gradient ${i}`));
    assert.equal(one.stderr.includes("tfjs-wasm:"), false, "no fallback line without a hang");
  },
});

Deno.test("DENO_DIFFUSION_TFJS_THREADS_TIMEOUT is seconds (0 = no limit), 60 by default", async () => {
  // Read in a child: setting the variable here would change it for the files beside.
  const timeout = (value: string | undefined) =>
    evalWithEnv(
      `import { wasmThreadsTimeoutSeconds } from "src/backend/tfjs_threads.ts";`,
      "wasmThreadsTimeoutSeconds()",
      { DENO_DIFFUSION_TFJS_THREADS_TIMEOUT: value },
    );
  assert.equal((await timeout(undefined)).value, 60);
  assert.equal((await timeout("0")).value, 0);
  assert.equal((await timeout("2.5")).value, 2.5);
  const bad = await timeout("-1");
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /seconds \(0 = no limit\), got "-1"/);
});

Deno.test("DENO_DIFFUSION_TFJS_THREADS picks the threads, capped by the cores", async () => {
  // Read in a child: setting the variable here would change it for the files beside.
  const wanted = (value: string) =>
    evalWithEnv(
      `import { wasmThreadsWanted } from "src/backend/tfjs_threads.ts";`,
      "wasmThreadsWanted()",
      {
        DENO_DIFFUSION_TFJS_THREADS: value,
      },
    );
  assert.equal((await wanted("1")).value, 1);
  assert.equal((await wanted("0")).value, Math.min(cores, 8));
  assert.equal((await wanted("64")).value, Math.min(cores, 8));
  const bad = await wanted("two");
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /must be a whole number \(0 = all cores\), got "two"/);
});
