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

/** Runs the child with DENO_DIFFUSION_TFJS_THREADS=`threads`; its JSON line. */
async function child(threads: string) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CHILD],
    env: { DENO_DIFFUSION_TFJS_THREADS: threads, DENO_DIFFUSION_TFJS_WORKERS: "0" },
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
  return JSON.parse(text.trim().split("\n").at(-1)!) as {
    device: string;
    value: number;
    grads: number[][];
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
