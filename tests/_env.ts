/**
 * Environment variables are one per process, and `deno test --parallel` runs every test file
 * in one process: a test that sets a variable changes it for the files running beside it (a
 * pixel cap of "0" once failed an unrelated JPEG test) and for every child they spawn. So a
 * test of how a variable is read runs the reading in a child process with its own environment.
 *
 * @module
 */

/** What {@link evalWithEnv} saw: the child's exit code, its printed value or its error. */
export interface EvalResult {
  code: number;
  /** The JSON value the expression resolved to (undefined when it threw). */
  value: unknown;
  /** The child's stderr: the uncaught error's message when the expression threw. */
  stderr: string;
}

/**
 * Evaluates `expression` (it may `await`) in a fresh Deno, after `imports` (lines of
 * `import ... from "<path relative to the repository root>"`), with `env` added to (or, for an
 * `undefined` value, removed from) this process's environment.
 *
 * @example
 * ```ts ignore
 * const r = await evalWithEnv(`import { maxPixels } from "src/io/limits.ts";`, "maxPixels()", {
 *   DENO_DIFFUSION_MAX_PIXELS: "1000",
 * });
 * console.log(r.value); // 1000
 * ```
 */
export async function evalWithEnv(
  imports: string,
  expression: string,
  env: Record<string, string | undefined>,
): Promise<EvalResult> {
  const root = new URL("../", import.meta.url);
  const code = imports.replace(/from "([^"]+)"/g, (_, p) => `from "${new URL(p, root).href}"`) +
    `\nconsole.log(JSON.stringify(await (async () => (${expression}))()));`;
  const childEnv = Deno.env.toObject();
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined) delete childEnv[k];
    else childEnv[k] = v;
  }
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--ext=ts", code],
    env: childEnv,
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(120_000),
  }).output();
  const stdout = new TextDecoder().decode(out.stdout).trim();
  const stderr = new TextDecoder().decode(out.stderr);
  return {
    code: out.code,
    value: out.success && stdout !== "" ? JSON.parse(stdout.split("\n").at(-1)!) : undefined,
    stderr,
  };
}
