/**
 * The main thread's end of the GPU worker: one worker per process shared by every tfjs-webgpu
 * backend, and requests the worker does not know refused with a BackendError naming them.
 * Needs a WebGPU adapter (lavapipe counts).
 *
 * @module
 */
import assert from "node:assert/strict";
import { BackendError } from "../../src/backend/backend.ts";
import { WebGpuBackend } from "../../src/backend/webgpu_backend.ts";
import { acquireLink, releaseLink } from "../../src/backend/webgpu_link.ts";
import { testEachBackend } from "../_backends.ts";

const WORKER = new URL("../../src/backend/webgpu_worker.ts", import.meta.url);

testEachBackend("backends share the process's GPU worker", async (b) => {
  assert.ok(b instanceof WebGpuBackend);
  const link = await acquireLink(WORKER);
  try {
    assert.equal(link, b.link);
    assert.ok(link.usable);
  } finally {
    releaseLink(link);
  }
  assert.ok(b.link.usable, "releasing one reference leaves the worker to its other holder");
}, { only: ["tfjs-webgpu"], softwareGpu: true });

testEachBackend("an unknown request is a BackendError naming it", (b) => {
  assert.ok(b instanceof WebGpuBackend);
  assert.throws(
    () => b.link.call("transmogrify", [1], { shapes: [[2, 3]] }),
    (e: Error) =>
      e instanceof BackendError && e.op === "transmogrify" &&
      /unknown request to the GPU worker/.test(e.message),
  );
  // The worker still answers afterwards.
  const hello = b.link.call("hello", []) as { name: string };
  assert.equal(hello.name, "tfjs-webgpu");
}, { only: ["tfjs-webgpu"], softwareGpu: true });
