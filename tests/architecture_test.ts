/**
 * The layering of ARCHITECTURE.md, executable: every import of every .ts under src/ (static
 * `import`/`export ... from`, `import type`, side-effect `import "x"`, dynamic `import("x")`)
 * must point to the file's own folder or a folder below it, never between the siblings
 * diffusion and gan, and never close a cycle of files. Imports inside comments (JSDoc
 * examples) do not count; imports that leave src/ or are bare (npm:, node:, jsr:) are not
 * layer edges.
 */
import assert from "node:assert/strict";

/** The layer order, bottom first; folders in one inner list are siblings of equal rank. */
export const LAYERS: readonly (readonly string[])[] = [
  ["core"],
  ["io"],
  ["backend"],
  ["data"],
  ["nn"],
  ["models"],
  ["metrics"],
  ["task"],
  ["diffusion", "gan"],
  ["train"],
  ["app"],
  ["study"],
  ["cli"],
  ["web"],
];

/** One import found in a source file. */
export interface ImportSite {
  /** The quoted specifier, e.g. "../core/rng.ts". */
  specifier: string;
  /** 1-based line of the specifier. */
  line: number;
}

/**
 * The imports of a TypeScript source: comments and the insides of plain strings and template
 * literals are blanked first (keeping line breaks), so only real code is scanned.
 */
export function parseImports(source: string): ImportSite[] {
  const code = blankCommentsAndStrings(source);
  const sites: ImportSite[] = [];
  const patterns = [
    // import x from "m"; import type { X } from "m"; export { x } from "m"; export * from "m"
    /\b(?:import|export)\s+(?:type\s+)?[\w*{$][^;'"`]*?\bfrom\s*(["'])/g,
    // import "m" (side effects only)
    /\bimport\s*(["'])/g,
    // import("m") and import(
    //   "m")
    /\bimport\s*\(\s*(["'])/g,
  ];
  for (const pattern of patterns) {
    for (const m of code.matchAll(pattern)) {
      const quoteAt = m.index! + m[0].length - 1;
      const end = source.indexOf(m[1], quoteAt + 1);
      const specifier = source.slice(quoteAt + 1, end);
      sites.push({ specifier, line: source.slice(0, quoteAt).split("\n").length });
    }
  }
  return sites.sort((a, b) => a.line - b.line);
}

/**
 * Replaces comments with spaces and the contents of string and template literals with spaces
 * (the quotes stay, so import specifiers can be located; their text is read from the
 * original). Line breaks are kept so offsets and lines match the original.
 */
function blankCommentsAndStrings(s: string): string {
  const out = s.split("");
  const blank = (from: number, to: number) => {
    for (let k = from; k < to; k++) if (out[k] !== "\n") out[k] = " ";
  };
  let i = 0;
  while (i < s.length) {
    const c = s[i];
    if (c === "/" && s[i + 1] === "/") {
      const end = s.indexOf("\n", i);
      const stop = end < 0 ? s.length : end;
      blank(i, stop);
      i = stop;
    } else if (c === "/" && s[i + 1] === "*") {
      const end = s.indexOf("*/", i + 2);
      const stop = end < 0 ? s.length : end + 2;
      blank(i, stop);
      i = stop;
    } else if (c === '"' || c === "'" || c === "`") {
      let j = i + 1;
      while (j < s.length && s[j] !== c) j += s[j] === "\\" ? 2 : 1;
      // Keep specifier-like strings: an import's quote is preceded by `from`, `import` or `(`.
      const before = s.slice(Math.max(0, i - 12), i);
      if (c === "`" || !/(?:\bfrom|\bimport|\bimport\s*\()\s*$/.test(before)) blank(i + 1, j);
      i = j + 1;
    } else {
      i++;
    }
  }
  return out.join("");
}

/** A broken rule, with where it is broken. */
export interface Violation {
  /** "src/folder/file.ts:line". */
  at: string;
  message: string;
}

/**
 * Checks a set of source files (paths relative to the project root, all under `src/`) against
 * {@link LAYERS}: unknown folders, upward edges, sibling edges and file-level cycles.
 */
export function checkLayers(files: ReadonlyMap<string, string>): Violation[] {
  const rank = new Map<string, number>();
  LAYERS.forEach((group, r) => group.forEach((folder) => rank.set(folder, r)));
  const violations: Violation[] = [];
  const edges = new Map<string, { to: string; line: number }[]>();
  for (const [path, source] of files) {
    const folder = layerOf(path);
    if (!rank.has(folder)) {
      violations.push({
        at: `${path}:1`,
        message: `'${folder}' is not a layer: put the file in one of ${
          LAYERS.flat().join(", ")
        } or add the folder to ARCHITECTURE.md and LAYERS`,
      });
      continue;
    }
    const out: { to: string; line: number }[] = [];
    for (const { specifier, line } of parseImports(source)) {
      if (!specifier.startsWith(".")) continue; // npm:, node:, jsr:, URLs
      const target = normalize(`${dirname(path)}/${specifier}`);
      if (!target.startsWith("src/")) continue;
      out.push({ to: target, line });
      const to = layerOf(target);
      if (to === folder) continue;
      const at = `${path}:${line}`;
      if (!rank.has(to)) {
        violations.push({ at, message: `imports ${target}, which is in no layer ('${to}')` });
      } else if (rank.get(to)! > rank.get(folder)!) {
        violations.push({
          at,
          message: `upward import: ${folder} imports ${target} from the higher layer ${to}`,
        });
      } else if (rank.get(to) === rank.get(folder)) {
        violations.push({
          at,
          message: `sibling import: ${folder} and ${to} are siblings and must not import each ` +
            `other (${target}); move the shared code down`,
        });
      }
    }
    edges.set(path, out);
  }
  for (const cycle of fileCycles(edges)) {
    const first = cycle[0];
    const edge = edges.get(first.from)!.find((e) => e.to === first.to)!;
    violations.push({
      at: `${first.from}:${edge.line}`,
      message: `import cycle: ${cycle.map((e) => e.from).join(" -> ")} -> ${first.from}`,
    });
  }
  return violations;
}

/** Every strongly connected group of files (Tarjan), as one closed walk of edges each. */
function fileCycles(
  edges: ReadonlyMap<string, { to: string; line: number }[]>,
): { from: string; to: string }[][] {
  let counter = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const groups: string[][] = [];
  const visit = (v: string) => {
    index.set(v, counter);
    low.set(v, counter++);
    stack.push(v);
    onStack.add(v);
    for (const { to } of edges.get(v) ?? []) {
      if (!edges.has(to)) continue;
      if (!index.has(to)) {
        visit(to);
        low.set(v, Math.min(low.get(v)!, low.get(to)!));
      } else if (onStack.has(to)) {
        low.set(v, Math.min(low.get(v)!, index.get(to)!));
      }
    }
    if (low.get(v) === index.get(v)) {
      const group: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        group.push(w);
      } while (w !== v);
      const selfLoop = (edges.get(v) ?? []).some((e) => e.to === v);
      if (group.length > 1 || selfLoop) groups.push(group);
    }
  };
  for (const v of [...edges.keys()].sort()) if (!index.has(v)) visit(v);
  // Walk inside each group from its first file back to it, to name one concrete cycle.
  return groups.map((group) => {
    const members = new Set(group);
    const start = [...group].sort()[0];
    const parent = new Map<string, string>();
    const queue = [start];
    const seen = new Set([start]);
    while (queue.length) {
      const v = queue.shift()!;
      for (const { to } of edges.get(v) ?? []) {
        if (!members.has(to)) continue;
        if (to === start) {
          const path = [v];
          while (path[0] !== start) path.unshift(parent.get(path[0])!);
          return path.map((from, k) => ({ from, to: path[k + 1] ?? start }));
        }
        if (!seen.has(to)) {
          seen.add(to);
          parent.set(to, v);
          queue.push(to);
        }
      }
    }
    return [{ from: start, to: start }];
  });
}

function layerOf(path: string): string {
  const parts = path.split("/");
  return parts.length > 2 ? parts[1] : "(src root)";
}

function dirname(path: string): string {
  return path.slice(0, path.lastIndexOf("/"));
}

function normalize(path: string): string {
  const out: string[] = [];
  for (const part of path.split("/")) {
    if (part === "..") out.pop();
    else if (part !== "." && part !== "") out.push(part);
  }
  return out.join("/");
}

async function readSources(): Promise<Map<string, string>> {
  const root = new URL("../", import.meta.url);
  const files = new Map<string, string>();
  const walk = async (rel: string) => {
    for await (const entry of Deno.readDir(new URL(rel, root))) {
      const path = `${rel}/${entry.name}`;
      if (entry.isDirectory) await walk(path);
      else if (entry.isFile && entry.name.endsWith(".ts")) {
        files.set(path, await Deno.readTextFile(new URL(path, root)));
      }
    }
  };
  await walk("src");
  return files;
}

Deno.test("src/ imports only downwards, never between diffusion and gan, and has no cycles", async () => {
  const files = await readSources();
  assert.ok(files.size > 50, `expected the src/ tree, found ${files.size} files`);
  const violations = checkLayers(files);
  assert.deepEqual(
    violations.map((v) => `${v.at}: ${v.message}`),
    [],
    "see ARCHITECTURE.md for the layer order",
  );
});

Deno.test("parseImports() finds static, type-only, re-export, side-effect and dynamic imports", () => {
  const source = [
    'import { a } from "./a.ts";',
    "import type { B } from './b.ts';",
    "import {",
    "  c,",
    '} from "./c.ts";',
    'export { d } from "./d.ts";',
    'export * from "./e.ts";',
    'import "./f.ts";',
    'const g = await import("./g.ts");',
    "const h = await import(",
    '  "./h.ts"',
    ");",
    'import x, { type Y } from "./i.ts";',
  ].join("\n");
  assert.deepEqual(parseImports(source), [
    { specifier: "./a.ts", line: 1 },
    { specifier: "./b.ts", line: 2 },
    { specifier: "./c.ts", line: 5 },
    { specifier: "./d.ts", line: 6 },
    { specifier: "./e.ts", line: 7 },
    { specifier: "./f.ts", line: 8 },
    { specifier: "./g.ts", line: 9 },
    { specifier: "./h.ts", line: 11 },
    { specifier: "./i.ts", line: 13 },
  ]);
});

Deno.test("parseImports() ignores imports in comments, JSDoc examples and strings", () => {
  const source = [
    "/**",
    " * @example",
    " * ```ts",
    ' * import { x } from "../cli/x.ts";',
    " * ```",
    " */",
    '// import { y } from "../cli/y.ts";',
    "const message = \"import { z } from '../cli/z.ts'\";",
    'const t = `import("../cli/t.ts")`;',
    'import { real } from "./real.ts";',
  ].join("\n");
  assert.deepEqual(parseImports(source), [{ specifier: "./real.ts", line: 10 }]);
});

Deno.test("checkLayers() reports upward, sibling, unknown-folder imports and cycles, with file and line", () => {
  const bad = new Map([
    ["src/core/rng.ts", 'import { train } from "../train/trainer.ts";\n'],
    ["src/train/trainer.ts", 'import { x } from "./a.ts";\n'],
    ["src/train/a.ts", '\nimport { y } from "./b.ts";\n'],
    ["src/train/b.ts", 'import { z } from "./a.ts";\n'],
    ["src/gan/task.ts", 'import type { D } from "../diffusion/task.ts";\n'],
    ["src/diffusion/task.ts", 'import { Rng } from "../core/rng.ts";\n'],
    ["src/misc/util.ts", "export const u = 1;\n"],
    ["src/io/png.ts", 'import { u } from "../misc/util.ts";\nimport "npm:pngjs";\n'],
  ]);
  const found = checkLayers(bad).map((v) => `${v.at}: ${v.message}`);
  const expect = (pattern: RegExp) =>
    assert.ok(
      found.some((f) => pattern.test(f)),
      `no violation matching ${pattern} in\n${found.join("\n")}`,
    );
  expect(/^src\/core\/rng\.ts:1: upward import: core imports src\/train\/trainer\.ts/);
  expect(/^src\/gan\/task\.ts:1: sibling import: gan and diffusion/);
  expect(/^src\/misc\/util\.ts:1: 'misc' is not a layer/);
  expect(/^src\/io\/png\.ts:1: imports src\/misc\/util\.ts, which is in no layer/);
  expect(
    /^src\/train\/a\.ts:2: import cycle: src\/train\/a\.ts -> src\/train\/b\.ts -> src\/train\/a\.ts/,
  );
  assert.equal(found.length, 5, found.join("\n"));
});

Deno.test("checkLayers() accepts downward and same-folder imports", () => {
  const good = new Map([
    ["src/core/rng.ts", "export class Rng {}\n"],
    [
      "src/train/trainer.ts",
      'import { Rng } from "../core/rng.ts";\nimport { c } from "./ckpt.ts";\n',
    ],
    ["src/train/ckpt.ts", 'import type { Rng } from "../core/rng.ts";\nexport const c = 1;\n'],
    ["src/cli/train.ts", 'import { train } from "../train/trainer.ts";\n'],
  ]);
  assert.deepEqual(checkLayers(good), []);
});
