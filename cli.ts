#!/usr/bin/env -S deno run -A
/**
 * The deno-diffusion command line: `deno run -A cli.ts <command> [flags]`.
 * Each command lives in src/cli/; this file only dispatches and reports errors.
 *
 * @module
 */
import { UsageError } from "./src/cli/args.ts";

type Command = (argv: string[]) => Promise<number>;

const COMMANDS: Record<string, { summary: string; load: () => Promise<Command> }> = {
  train: {
    summary: "train a diffusion model or a DCGAN (default: DDPM on CIFAR-10 cats)",
    load: async () => (await import("./src/cli/train.ts")).trainCommand,
  },
  sample: {
    summary: "generate images from a checkpoint (grid PNG or a folder of PNGs)",
    load: async () => (await import("./src/cli/sample.ts")).sampleCommand,
  },
  fid: {
    summary: "FID (and KID) between folders, .npz statistics, or a checkpoint and a data split",
    load: async () => {
      const { fidCommand } = await import("./src/cli/fid.ts");
      const { fidCheckpointCommand } = await import("./src/cli/fid_checkpoint.ts");
      return (argv) =>
        argv.some((a) => a === "--ckpt" || a.startsWith("--ckpt="))
          ? fidCheckpointCommand(argv)
          : fidCommand(argv);
    },
  },
  eval: {
    summary: "bits/dim of a diffusion checkpoint on a data split (the variational bound)",
    load: async () => (await import("./src/cli/eval.ts")).evalCommand,
  },
  params: {
    summary: "parameter count of a model preset",
    load: async () => (await import("./src/cli/params.ts")).paramsCommand,
  },
  study: {
    summary: "rerun the original study's experiments and write report.md",
    load: async () => (await import("./src/cli/study.ts")).studyCommand,
  },
  export: {
    summary: "export a trained model as a web page that samples it in the browser",
    load: async () => (await import("./src/web/export_command.ts")).exportCommand,
  },
  serve: {
    summary: "live dashboard of a runs folder (loss curves, previews, studies) in the browser",
    load: async () => (await import("./src/web/serve_command.ts")).serveCommand,
  },
  backends: {
    summary: "list the tensor backends and whether each is available",
    load: async () => (await import("./src/cli/backends.ts")).backendsCommand,
  },
};

/** Commands that select a tensor backend (and so may load the native shim). */
const USES_BACKEND = new Set(["train", "sample", "fid", "eval", "study", "backends"]);

/** The value of `--backend X` / `--backend=X` in argv, if any. */
function backendArg(argv: string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--backend") return argv[i + 1];
    if (argv[i].startsWith("--backend=")) return argv[i].slice("--backend=".length);
  }
  return undefined;
}

/**
 * What the CLI does for its own process before a command selects a backend (the library never
 * does either): OpenMP workers wait passively (libgomp reads OMP_WAIT_POLICY once, when
 * libtorch loads; spinning workers make small ops 10-50x slower on shared cores), and a
 * missing or stale native shim is built when libtorch is installed, saying so on stderr.
 */
async function prepareBackends(argv: string[]): Promise<void> {
  if (Deno.env.get("OMP_WAIT_POLICY") === undefined) Deno.env.set("OMP_WAIT_POLICY", "PASSIVE");
  const wanted = backendArg(argv) ?? Deno.env.get("DENO_DIFFUSION_BACKEND") ?? "auto";
  if (wanted.startsWith("tfjs") || argv.includes("--help") || argv.includes("-h")) return;
  const { prepareNativeShim } = await import("./native/build.ts");
  await prepareNativeShim({ log: (m) => console.error(`[native] ${m}`) });
}

function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((c) => c.length)) + 2;
  return [
    "deno-diffusion: DDPM and DCGAN training, sampling and FID",
    "",
    "Usage: deno run -A cli.ts <command> [flags]   (each command has --help)",
    "",
    "Commands:",
    ...Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}${c.summary}`),
  ].join("\n");
}

/** Runs the CLI with `argv` and returns the exit status. */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === "--help" || name === "-h" || name === "help") {
    console.log(usage());
    return name ? 0 : 2;
  }
  const command = COMMANDS[name];
  if (!command) {
    console.error(`unknown command '${name}'.\n\n${usage()}`);
    return 2;
  }
  try {
    if (USES_BACKEND.has(name)) await prepareBackends(rest);
    return await (await command.load())(rest);
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`error: ${e.message}`);
      return 2;
    }
    const err = e as Error;
    console.error(`error: ${err.message}`);
    if (Deno.env.get("DENO_DIFFUSION_DEBUG")) console.error(err.stack);
    return 1;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
