import assert from "node:assert/strict";
import { backendsCommand } from "../../src/cli/backends.ts";

async function capture(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const log = console.log;
  const error = console.error;
  console.log = (...a: unknown[]) => out.push(a.join(" "));
  console.error = (...a: unknown[]) => err.push(a.join(" "));
  try {
    const code = await backendsCommand(argv);
    return { code, out: out.join("\n"), err: err.join("\n") };
  } finally {
    console.log = log;
    console.error = error;
  }
}

Deno.test("backends --json prints one object per backend with the documented keys", async () => {
  const { code, out } = await capture(["--json"]);
  assert.equal(code, 0);
  const list = JSON.parse(out) as Record<string, unknown>[];
  assert.deepEqual(list.map((b) => b.name), [
    "torch-cuda",
    "tfjs-webgpu",
    "torch-cpu",
    "tfjs-wasm",
    "tfjs-cpu",
  ]);
  for (const b of list) {
    const keys = ["name", "available", "device", "version", "reason"];
    // tfjs-webgpu also names the WebGPU adapter found (or null).
    if (b.name === "tfjs-webgpu") keys.push("adapter");
    assert.deepEqual(Object.keys(b), keys);
    assert.equal(typeof b.available, "boolean");
  }
});

Deno.test("backends prints a table line per backend", async () => {
  const { code, out } = await capture([]);
  assert.equal(code, 0);
  const lines = out.split("\n");
  assert.equal(lines.length, 5);
  assert.match(lines[1], /^tfjs-webgpu\s+(available|unavailable)\s+\S/);
  assert.match(lines[2], /^torch-cpu\s+(available|unavailable)\s+\S/);
});

Deno.test("backends rejects unknown flags with exit code 2 and the usage", async () => {
  const { code, err } = await capture(["--jsn"]);
  assert.equal(code, 2);
  assert.match(err, /Unknown option '--jsn'/);
  assert.match(err, /usage: deno run -A cli.ts backends/);
});

Deno.test("backends --help prints the usage", async () => {
  const { code, out } = await capture(["--help"]);
  assert.equal(code, 0);
  assert.match(out, /--json/);
});
