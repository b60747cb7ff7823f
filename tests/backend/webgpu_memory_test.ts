/**
 * Out of GPU memory on tfjs-webgpu (src/backend/webgpu_memory.ts): a tensor above the
 * adapter's limits is a BackendError naming the op, its shapes, the bytes and what to do, and
 * the backend goes on working; an allocation the device fails, a lost device or an uncaught
 * GPU error make the next op refuse with the same kind of message. The first case runs on the
 * real adapter (lavapipe counts); the asynchronous ones on a fake device whose error scope
 * reports the failure, since no software adapter here runs out of memory on demand.
 *
 * @module
 */
import assert from "node:assert/strict";
import { type Backend, BackendError } from "../../src/backend/backend.ts";
import {
  GpuBufferGuard,
  gpuFailureDetail,
  GpuMemoryError,
  type GuardedDevice,
} from "../../src/backend/webgpu_memory.ts";
import type { WebGpuAdapterInfo } from "../../src/backend/webgpu.ts";
import { testEachBackend } from "../_backends.ts";

testEachBackend(
  "a tensor above the adapter's binding limit is a BackendError with op, shapes, bytes and advice; the backend stays usable",
  (b: Backend) => {
    const limit = (b as { adapter?: WebGpuAdapterInfo | null }).adapter
      ?.maxStorageBufferBindingSize;
    assert.ok(limit, "the adapter reports its storage binding limit");
    // [n, 1] x [1, n]: tiny inputs, a float32 product of 4 n^2 bytes, just above the limit.
    const n = Math.ceil(Math.sqrt(limit / 4)) + 64;
    let error: unknown;
    try {
      b.scope(() => {
        b.read(b.matmul(b.full([n, 1], 1), b.full([1, n], 2)));
      });
    } catch (e) {
      error = e;
    }
    assert.ok(error instanceof BackendError, `got ${error}`);
    assert.equal(error.op, "matmul");
    assert.deepEqual(error.shapes, [[n, 1], [1, n]]);
    const mib = (4 * n * n / 2 ** 20).toFixed(1);
    assert.match(error.message, new RegExp(`out of GPU memory: a ${mib} MiB buffer`));
    assert.match(error.message, /maxStorageBufferBindingSize/);
    assert.match(error.message, /--batch-size.*--backend torch-cpu or --backend tfjs-wasm/);
    // Nothing invalid was queued: the next ops still compute.
    const sum = b.scope(() => b.sum(b.mul(b.full([1000], 1.5), 2)));
    assert.deepEqual(Array.from(b.read(sum)), [3000]);
    sum.dispose();
  },
  { only: ["tfjs-webgpu"], softwareGpu: true },
);

/** A device whose allocations the test scripts: the error scope answers `oom` per call. */
function fakeDevice(oom: boolean[]) {
  const listeners: ((e: GPUUncapturedErrorEvent) => void)[] = [];
  let loseDevice: (info: GPUDeviceLostInfo) => void = () => {};
  const scopes: string[] = [];
  const device: GuardedDevice = {
    limits: { maxBufferSize: 1 << 20, maxStorageBufferBindingSize: 1 << 16 },
    createBuffer: (d) => ({ size: d.size }) as unknown as GPUBuffer,
    pushErrorScope: (filter) => void scopes.push(filter),
    popErrorScope: () => {
      assert.equal(scopes.pop(), "out-of-memory");
      const failed = oom.shift();
      return Promise.resolve(failed ? { message: "device memory exhausted" } as GPUError : null);
    },
    lost: new Promise((resolve) => loseDevice = resolve),
    addEventListener: (_type, listener) => void listeners.push(listener),
  };
  return { device, listeners, lose: (info: GPUDeviceLostInfo) => loseDevice(info) };
}

const STORAGE = 0x80;
const COPY_DST = 0x08;

Deno.test("the guard refuses a storage buffer above the binding limit and any buffer above maxBufferSize, before making it", () => {
  const { device } = fakeDevice([]);
  const guard = new GpuBufferGuard(device, () => 3 * 2 ** 20);
  assert.doesNotThrow(() => device.createBuffer({ size: 1 << 16, usage: STORAGE }));
  assert.throws(
    () => device.createBuffer({ size: (1 << 16) + 4, usage: STORAGE }),
    (e: unknown) =>
      e instanceof GpuMemoryError && e.limit?.name === "maxStorageBufferBindingSize" &&
      e.requested === (1 << 16) + 4 && e.held === 3 * 2 ** 20,
  );
  // A staging buffer (no STORAGE) is bounded by maxBufferSize only.
  assert.doesNotThrow(() => device.createBuffer({ size: 1 << 20, usage: COPY_DST }));
  assert.throws(
    () => device.createBuffer({ size: (1 << 20) + 4, usage: COPY_DST }),
    /above the adapter's largest \(maxBufferSize 1\.0 MiB\)/,
  );
  assert.equal(guard.broken, undefined, "a refused buffer leaves the device intact");
});

Deno.test("an allocation the device fails marks the guard broken, and its detail says the queued work is lost", async () => {
  const { device } = fakeDevice([false, true]);
  const guard = new GpuBufferGuard(device, () => 5 * 2 ** 20);
  device.createBuffer({ size: 4096, usage: STORAGE });
  await Promise.resolve();
  assert.equal(guard.broken, undefined);
  device.createBuffer({ size: 2 ** 19, usage: COPY_DST });
  await new Promise((r) => setTimeout(r, 0));
  const broken = guard.broken as Error | undefined;
  assert.ok(broken instanceof GpuMemoryError);
  const detail = gpuFailureDetail(broken);
  assert.match(
    detail,
    /^out of GPU memory: allocating 0\.5 MiB failed \(device memory exhausted\)/,
  );
  assert.match(detail, /\[5\.0 MiB of GPU buffers held\]/);
  assert.match(detail, /--batch-size.*start a new process\.$/);
});

Deno.test("a lost device or an uncaught GPU error marks the guard broken with the reason", async () => {
  const lost = fakeDevice([]);
  const a = new GpuBufferGuard(lost.device, () => 0);
  lost.lose({ reason: "destroyed", message: "driver reset" } as GPUDeviceLostInfo);
  await new Promise((r) => setTimeout(r, 0));
  assert.match(a.broken?.message ?? "", /GPU device was lost \(destroyed: driver reset\)/);
  const uncaught = fakeDevice([]);
  const b = new GpuBufferGuard(uncaught.device, () => 0);
  uncaught.listeners.forEach((l) =>
    l({ error: { message: "Binding size too large\nmore" } } as GPUUncapturedErrorEvent)
  );
  assert.equal(b.broken?.message, "a GPU command failed: Binding size too large");
  assert.match(gpuFailureDetail(b.broken!), /start a new process\.$/);
});
