/**
 * Flag parsing shared by every command: node:util parseArgs in strict mode, turned into
 * {@link UsageError}s that say what was wrong and which flag was probably meant.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { BACKEND_ORDER, type BackendName } from "../backend/select.ts";

/** A mistake on the command line; the CLI prints it with a hint and exits with status 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** One flag: its type, an optional default, and the help text. */
export interface FlagSpec {
  type: "string" | "boolean";
  short?: string;
  default?: string | boolean;
  help: string;
  /** Placeholder shown in help, e.g. "N" or "PATH". */
  arg?: string;
  multiple?: boolean;
}

/** A command's flags, positionals and help. */
export interface CommandSpec {
  name: string;
  summary: string;
  usage: string;
  flags: Record<string, FlagSpec>;
  /** Extra help text after the flag list. */
  details?: string;
  positionals?: { min: number; max: number };
}

/** Parsed values: strings/booleans by flag name, plus positionals. */
export interface Parsed {
  values: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
  help: boolean;
}

/**
 * Parses `argv` against `spec`; throws {@link UsageError} for unknown flags, missing values
 * or a wrong number of positionals.
 *
 * @example
 * ```ts
 * import { parseCommand } from "./args.ts";
 * const spec = { name: "demo", summary: "", usage: "demo [--n N]", flags: { n: { type: "string" as const, help: "count" } } };
 * console.log(parseCommand(["--n", "3"], spec).values.n); // "3"
 * ```
 */
export function parseCommand(argv: string[], spec: CommandSpec): Parsed {
  const options: Record<
    string,
    { type: "string" | "boolean"; short?: string; multiple?: boolean }
  > = {
    help: { type: "boolean", short: "h" },
  };
  for (const [name, f] of Object.entries(spec.flags)) {
    options[name] = {
      type: f.type,
      ...(f.short ? { short: f.short } : {}),
      ...(f.multiple ? { multiple: true } : {}),
    };
  }
  let parsed;
  try {
    parsed = parseArgs({
      args: attachNegativeValues(argv, options),
      options,
      strict: true,
      allowPositionals: true,
    });
  } catch (e) {
    throw new UsageError(explainParseError((e as Error).message, spec));
  }
  const values = parsed.values as Parsed["values"];
  const help = values.help === true;
  for (const [name, f] of Object.entries(spec.flags)) {
    if (values[name] === undefined && f.default !== undefined) values[name] = f.default;
  }
  const { min, max } = spec.positionals ?? { min: 0, max: 0 };
  if (!help && (parsed.positionals.length < min || parsed.positionals.length > max)) {
    throw new UsageError(
      parsed.positionals.length > max
        ? `unexpected argument '${parsed.positionals[max]}'. Usage: ${spec.usage}`
        : `missing argument. Usage: ${spec.usage}`,
    );
  }
  return { values, positionals: parsed.positionals, help };
}

/**
 * `--max-steps -5` would make parseArgs take "-5" for a flag ("argument is ambiguous"); a
 * value that looks like a negative number is attached as `--max-steps=-5` instead, so the
 * flag's own range check says what is wrong with it.
 */
function attachNegativeValues(
  argv: string[],
  options: Record<string, { type: "string" | "boolean"; short?: string }>,
): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--") return out.concat(argv.slice(i));
    const name = arg.startsWith("--") && !arg.includes("=") ? arg.slice(2) : undefined;
    const next = argv[i + 1];
    if (
      name !== undefined && options[name]?.type === "string" && next !== undefined &&
      /^-(\d|\.\d|Infinity)/.test(next)
    ) {
      out.push(`${arg}=${next}`);
      i++;
    } else {
      out.push(arg);
    }
  }
  return out;
}

function explainParseError(message: string, spec: CommandSpec): string {
  const unknown = message.match(/Unknown option '(-{1,2})([^']+)'/);
  if (unknown) {
    const near = closest(unknown[2], Object.keys(spec.flags));
    return `unknown flag ${unknown[1]}${unknown[2]} for '${spec.name}'` +
      (near ? ` (did you mean --${near}?)` : "") + `. Run '${spec.name} --help' for the flags.`;
  }
  return `${message.replace(/\. To specify.*$/, "")}. Run '${spec.name} --help' for the flags.`;
}

function closest(word: string, candidates: string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.floor(word.length / 3)) + 1;
  for (const c of candidates) {
    const d = editDistance(word, c);
    if (d < bestDistance) [best, bestDistance] = [c, d];
  }
  return best;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = above;
    }
  }
  return row[b.length];
}

/** Help text for a command. */
export function helpText(spec: CommandSpec): string {
  const lines = [`${spec.summary}`, "", `Usage: ${spec.usage}`, "", "Flags:"];
  const entries = Object.entries(spec.flags).map(([name, f]) => {
    const left = `  --${name}${f.type === "string" ? ` ${f.arg ?? "VALUE"}` : ""}`;
    const def = f.default !== undefined && f.default !== false ? ` (default ${f.default})` : "";
    return [left, f.help + def] as const;
  });
  entries.push(["  -h, --help", "show this help"]);
  const width = Math.max(...entries.map(([l]) => l.length)) + 2;
  for (const [left, right] of entries) lines.push(left.padEnd(width) + right);
  if (spec.details) lines.push("", spec.details);
  return lines.join("\n");
}

/** The string value of a flag, or undefined. */
export function str(parsed: Parsed, name: string): string | undefined {
  const v = parsed.values[name];
  return typeof v === "string" ? v : undefined;
}

/** A boolean flag. */
export function bool(parsed: Parsed, name: string): boolean {
  return parsed.values[name] === true;
}

/** An integer flag within [min, max]; undefined when absent. */
export function int(
  parsed: Parsed,
  name: string,
  min = -Infinity,
  max = Infinity,
): number | undefined {
  const raw = str(parsed, name);
  if (raw === undefined) return undefined;
  // Number("") is 0: an empty value must not pass as the integer 0.
  const v = raw.trim() === "" ? NaN : Number(raw);
  if (!Number.isInteger(v) || v < min || v > max) {
    const range = max === Infinity ? `>= ${min}` : `in ${min}..${max}`;
    throw new UsageError(`--${name} must be an integer ${range}, got '${raw}'`);
  }
  return v;
}

/** A number flag within [min, max]; undefined when absent. */
export function num(
  parsed: Parsed,
  name: string,
  min = -Infinity,
  max = Infinity,
): number | undefined {
  const raw = str(parsed, name);
  if (raw === undefined) return undefined;
  const v = Number(raw);
  if (raw.trim() === "" || !Number.isFinite(v) || v < min || v > max) {
    throw new UsageError(`--${name} must be a number in [${min}, ${max}], got '${raw}'`);
  }
  return v;
}

/** A flag restricted to `choices`; undefined when absent. */
export function choice<T extends string>(
  parsed: Parsed,
  name: string,
  choices: readonly T[],
): T | undefined {
  const raw = str(parsed, name);
  if (raw === undefined) return undefined;
  if (!(choices as readonly string[]).includes(raw)) {
    throw new UsageError(`--${name} must be one of ${choices.join(", ")}, got '${raw}'`);
  }
  return raw as T;
}

/** The `--backend` flag every command that computes takes. */
export const BACKEND_FLAG: FlagSpec = {
  type: "string",
  arg: "NAME",
  help: `${BACKEND_ORDER.join(", ")} or auto (default: the best available)`,
};

/** The `--backend` value, checked; "auto" when absent. */
export function backendFlag(parsed: Parsed): BackendName | "auto" {
  return choice(parsed, "backend", ["auto", ...BACKEND_ORDER] as const) ?? "auto";
}
