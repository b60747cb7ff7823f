/**
 * mod.ts as a library user outside this repository gets it: imported from a folder with no
 * deno.json (so no import map), it must type-check and run. Every npm package is therefore
 * named with a full `npm:name@version` specifier in the source, and deno.json's import map
 * (kept for tools and tests) must name the same versions. deno.json turns off the lint rule
 * no-import-prefix for this reason.
 */
import assert from "node:assert/strict";

const ROOT = new URL("..", import.meta.url);
const MOD = new URL("mod.ts", ROOT).href;

async function deno(cwd: string, ...args: string[]): Promise<{ code: number; output: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args,
    cwd,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  return { code: out.code, output: text };
}

Deno.test("mod.ts type-checks and runs from a folder without the project's deno.json", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(
      `${dir}/main.ts`,
      [
        `import { createBackend, createTask, Rng } from "${MOD}";`,
        `const backend = await createBackend("tfjs-cpu");`,
        `const task = createTask(backend, { kind: "gan", config: { ngf: 4, ndf: 4, nz: 8 } }, 0);`,
        `const images = task.sample(new Int32Array(2), new Rng(1)); // [2, 3, 32, 32]`,
        `console.log(JSON.stringify({ kind: task.kind, values: images.length }));`,
        `task.dispose();`,
        `backend.dispose();`,
      ].join("\n"),
    );
    const checked = await deno(dir, "check", "--no-config", "--no-lock", "main.ts");
    assert.equal(checked.code, 0, checked.output);
    const ran = await deno(dir, "run", "--no-config", "--no-lock", "-A", "main.ts");
    assert.equal(ran.code, 0, ran.output);
    assert.match(ran.output, /\{"kind":"gan","values":6144\}/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** Import specifiers of real code (JSDoc lines skipped) in every .ts file under `dir`. */
async function specifiers(dir: URL): Promise<{ file: string; spec: string }[]> {
  const found: { file: string; spec: string }[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const url = new URL(entry.name + (entry.isDirectory ? "/" : ""), dir);
    if (entry.isDirectory) found.push(...await specifiers(url));
    else if (entry.name.endsWith(".ts")) {
      for (const line of (await Deno.readTextFile(url)).split("\n")) {
        if (/^\s*(\*|\/\/)/.test(line)) continue;
        const m = line.match(/(?:from|import)\s*\(?\s*"([^"]+)"/);
        if (m) found.push({ file: url.pathname, spec: m[1] });
      }
    }
  }
  return found;
}

Deno.test("src/ names npm packages with full versioned specifiers that match deno.json", async () => {
  const imports: Record<string, string> =
    JSON.parse(await Deno.readTextFile(new URL("deno.json", ROOT))).imports ?? {};
  const all = await specifiers(new URL("src/", ROOT));
  assert.ok(all.some((s) => s.spec.startsWith("npm:")), "the scan finds npm imports");
  for (const { file, spec } of all) {
    if (/^(\.|node:|jsr:|npm:|https?:)/.test(spec)) {
      const m = spec.match(/^npm:((?:@[^/]+\/)?[^@/]+)@([^/]+)/);
      if (spec.startsWith("npm:")) {
        assert.ok(m, `${file}: ${spec} has no version`);
        const mapped = imports[m![1]];
        if (mapped !== undefined) {
          assert.equal(mapped, `npm:${m![1]}@${m![2]}`, `${file}: ${spec} vs deno.json ${mapped}`);
        }
      }
    } else {
      assert.fail(`${file}: bare import "${spec}" needs deno.json; write npm:${spec}@VERSION`);
    }
  }
});
