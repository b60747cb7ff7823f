import assert from "node:assert/strict";
import { BackendUnavailableError } from "../../src/backend/backend.ts";
import {
  BACKEND_ORDER,
  createBackend,
  listBackends,
  selectBackend,
} from "../../src/backend/select.ts";
import { probeWebGpu } from "../../src/backend/webgpu.ts";

const infos = await listBackends();
// A software WebGPU adapter is available (for tests and explicit choice) but never auto-selected.
const firstAvailable = infos.find((i) =>
  i.available && !(i.name === "tfjs-webgpu" && i.adapter?.software)
);

Deno.test("listBackends() reports every backend once, in preference order, with reasons", () => {
  assert.deepEqual(infos.map((i) => i.name), [...BACKEND_ORDER]);
  for (const info of infos) {
    assert.ok(info.reason.length > 0, `${info.name} has no reason`);
    assert.ok(!info.reason.includes("\x1b["), "reasons carry no terminal colour codes");
    if (info.available) assert.ok(info.device && info.version, `${info.name} lacks device/version`);
  }
});

Deno.test({
  name: "selectBackend() picks the first available backend and says why",
  ignore: !firstAvailable || Deno.env.get("DENO_DIFFUSION_BACKEND") !== undefined,
  async fn() {
    const logs: string[] = [];
    const backend = await selectBackend({ log: (m) => logs.push(m) });
    try {
      assert.equal(backend.name, firstAvailable!.name);
      assert.equal(logs.length, 1);
      assert.match(logs[0], new RegExp(`^backend ${backend.name} .*: first`));
    } finally {
      backend.dispose();
    }
  },
});

Deno.test({
  name: "selectBackend() honours an explicit name",
  ignore: !firstAvailable,
  async fn() {
    const name = infos.filter((i) => i.available).at(-1)!.name;
    const logs: string[] = [];
    const byName = await selectBackend({ name, log: (m) => logs.push(m) });
    assert.equal(byName.name, name);
    assert.match(logs[0], /requested by --backend/);
    byName.dispose();
  },
});

Deno.test({
  name: "selectBackend() honours DENO_DIFFUSION_BACKEND",
  ignore: !firstAvailable,
  async fn() {
    // A child process: the environment is shared by test modules running in parallel.
    const name = infos.filter((i) => i.available).at(-1)!.name;
    const script = `
      import { selectBackend } from ${
      JSON.stringify(new URL("../../src/backend/select.ts", import.meta.url).href)
    };
      const b = await selectBackend({ log: (m) => console.log(m) });
      b.dispose();`;
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["eval", script],
      env: { DENO_DIFFUSION_BACKEND: name },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout);
    assert.ok(out.success, new TextDecoder().decode(out.stderr));
    assert.match(text, new RegExp(`^backend ${name} .*requested by DENO_DIFFUSION_BACKEND`));
  },
});

Deno.test("selectBackend() rejects an unknown name with the list of valid ones", async () => {
  await assert.rejects(
    () => selectBackend({ name: "torch-tpu" as "torch-cpu" }),
    (e: unknown) =>
      e instanceof BackendUnavailableError &&
      e.message.includes("torch-cuda, tfjs-webgpu, torch-cpu"),
  );
});

Deno.test({
  name: "an explicitly requested backend that cannot load is an error, not a fallback",
  ignore: infos.every((i) => i.available),
  async fn() {
    const missing = infos.find((i) => !i.available)!;
    await assert.rejects(() => createBackend(missing.name), BackendUnavailableError);
    await assert.rejects(() => selectBackend({ name: missing.name }), BackendUnavailableError);
  },
});

Deno.test("tfjs-webgpu reports its adapter, and a software adapter is never auto-selected", async () => {
  const info = (await listBackends()).find((i) => i.name === "tfjs-webgpu")!;
  const adapter = await probeWebGpu();
  assert.deepEqual(info.adapter, adapter);
  if (adapter === null) {
    assert.match(info.reason, /no WebGPU adapter/);
  } else if (info.available) {
    // Under Deno it runs in a worker that found the same adapter.
    assert.ok(info.device.includes(adapter.description), info.device);
    assert.equal(info.device.includes("software"), adapter.software, info.device);
  }
  if (adapter?.software) {
    const previous = Deno.env.get("DENO_DIFFUSION_BACKEND");
    Deno.env.delete("DENO_DIFFUSION_BACKEND");
    try {
      const backend = await selectBackend();
      assert.notEqual(backend.name, "tfjs-webgpu");
      backend.dispose();
    } finally {
      if (previous !== undefined) Deno.env.set("DENO_DIFFUSION_BACKEND", previous);
    }
  }
});
