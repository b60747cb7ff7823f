import assert from "node:assert/strict";
import { formatTable, median } from "../../bench/compare.ts";
import {
  createWorkload,
  parseWorkloads,
  type WorkloadName,
  WORKLOADS,
} from "../../bench/workloads.ts";
import { createBackend } from "../../src/backend/select.ts";

const PYTHON = Deno.env.get("PEER_PYTHON") ?? "/usr/bin/python3";
const PEER = new URL("../../bench/reference/peer.py", import.meta.url).pathname;

/** Whether the peer's Python can import torch (Debian's python3-torch here). */
async function peerPythonHasTorch(): Promise<boolean> {
  try {
    const r = await new Deno.Command(PYTHON, { args: ["-c", "import torch"], stderr: "null" })
      .output();
    return r.success;
  } catch {
    return false;
  }
}
const hasTorch = await peerPythonHasTorch();
if (!hasTorch) console.log(`skipping the PyTorch peer tests: ${PYTHON} cannot import torch`);

Deno.test("parseWorkloads() expands issue letters and keeps table order", () => {
  assert.deepEqual(parseWorkloads("c,a"), ["train-unet-2xud-half", "train-unet-3x", "dcgan-step"]);
  assert.deepEqual(parseWorkloads("fid-features, b"), ["sample-unet-2xud-half", "fid-features"]);
  assert.throws(() => parseWorkloads("e"), /unknown workload "e"/);
});

Deno.test("median() takes the middle value, or the mean of the middle pair", () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.equal(median([7]), 7);
});

Deno.test("formatTable() prints one aligned row per workload and backend, failures included", () => {
  const row = {
    workload: "dcgan-step" as WorkloadName,
    backend: "torch-cpu",
    ours_ips: 30.5,
    peer_ips: 20,
    ratio: 1.5,
    reps: 5,
    warmup: 1,
    ours_seconds: [],
    peer_seconds: [],
    device: "cpu (2 threads)",
    threads: 2,
    autocast: "float32",
    torch: "1.13.0",
  };
  const failed = {
    ...row,
    backend: "tfjs-wasm",
    ours_ips: null,
    peer_ips: null,
    ratio: null,
    error: "out of memory",
  };
  const lines = formatTable([row, { ...row, backend: "tfjs-wasm", ratio: 0.25, reps: 1 }, failed])
    .split("\n");
  assert.equal(lines.length, 5);
  assert.match(lines[2], /^dcgan-step \(c\)\s+torch-cpu\s+30\.50\s+20\.00\s+1\.50\s+1\+5$/);
  assert.match(lines[3], /tfjs-wasm .* 0\.25\s+1\+1$/);
  assert.match(lines[4], /tfjs-wasm\s+failed\s+failed\s+failed\s+-$/);
  assert.equal(new Set(lines.map((l) => l.length)).size, 1, "columns are aligned");
});

Deno.test("createWorkload() runs a workload at a batch given instead of its standard one", async () => {
  const backend = await createBackend("tfjs-cpu");
  try {
    const small = createWorkload(backend, "dcgan-step", { batch: 2 });
    try {
      assert.equal(small.images, 2);
      small.run(); // one D+G step on 2 images
    } finally {
      small.dispose();
    }
    const features = createWorkload(backend, "fid-features", { batch: 3 });
    assert.equal(features.images, 3);
    features.dispose();
    for (const bad of [0, -1, 1.5, NaN]) {
      assert.throws(
        () => createWorkload(backend, "train-unet-2xud-half", { batch: bad }),
        /the batch must be a whole number >= 1/,
      );
    }
  } finally {
    backend.dispose();
  }
});

Deno.test({
  name: "peer.py counts exactly our parameters in every workload",
  ignore: !hasTorch,
  async fn() {
    const out = await new Deno.Command(PYTHON, { args: [PEER, "counts"] }).output();
    assert.ok(out.success, new TextDecoder().decode(out.stderr));
    const peer = JSON.parse(new TextDecoder().decode(out.stdout));
    const backend = await createBackend("tfjs-cpu");
    try {
      for (const name of Object.keys(WORKLOADS) as WorkloadName[]) {
        // Built on the cheapest backend: the counts do not depend on it.
        const ours = createWorkload(backend, name);
        try {
          assert.deepEqual(ours.params, peer[name], name);
        } finally {
          ours.dispose();
        }
      }
    } finally {
      backend.dispose();
    }
  },
});

Deno.test({
  name: "peer.py serve refuses a model whose parameter count differs, then times a run",
  ignore: !hasTorch,
  async fn() {
    const child = new Deno.Command(PYTHON, {
      args: [PEER, "serve"],
      stdin: "piped",
      stdout: "piped",
    }).spawn();
    const writer = child.stdin.getWriter();
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let buffered = "";
    const ask = async (message: unknown) => {
      await writer.write(new TextEncoder().encode(JSON.stringify(message) + "\n"));
      while (!buffered.includes("\n")) {
        const { value, done } = await reader.read();
        if (done) throw new Error("peer exited");
        buffered += value;
      }
      const at = buffered.indexOf("\n");
      const line = buffered.slice(0, at);
      buffered = buffered.slice(at + 1);
      return JSON.parse(line);
    };
    try {
      const setup = { op: "setup", workload: "dcgan-step", threads: 1 };
      const wrong = await ask({ ...setup, params: { generator: 1068927, discriminator: 663296 } });
      assert.equal(wrong.ok, false);
      assert.match(wrong.error, /generator: PyTorch has 1068928 parameters, ours 1068927/);
      const right = await ask({ ...setup, params: { generator: 1068928, discriminator: 663296 } });
      assert.equal(right.ok, true, right.error);
      assert.equal(right.threads, 1);
      assert.equal(right.images, 128);
      const run = await ask({ op: "run" });
      assert.equal(run.ok, true, run.error);
      assert.ok(run.seconds > 0 && run.seconds < 120, `seconds ${run.seconds}`);
      const bad = await ask({ op: "bogus" });
      assert.match(bad.error, /unknown op 'bogus'/);
    } finally {
      await writer.write(new TextEncoder().encode('{"op":"quit"}\n'));
      await writer.close();
      await reader.cancel();
      await child.status;
    }
  },
});
