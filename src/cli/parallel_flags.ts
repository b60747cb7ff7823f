/**
 * The data-parallel flags every command that can run on several ranks shares (`train`,
 * `sample`, `fid` (both forms), `study`): `--nproc N`, `--master-port P`, `--dist-timeout S`, and
 * what `--nproc` does (start the ranks, or refuse inside a job torchrun already started).
 *
 * @module
 */
import { torchCudaDeviceCount } from "../backend/torch.ts";
import { readTorchrunEnv } from "../app/launch.ts";
import { launchRanks } from "../app/parallel.ts";
import { backendFlag, type FlagSpec, int, num, type Parsed, UsageError } from "./args.ts";

/** `--nproc`, `--master-port`, `--dist-timeout`, for a command's flag table. */
export function parallelFlags(what: string): Record<string, FlagSpec> {
  return {
    nproc: {
      type: "string",
      arg: "N",
      help: `data-parallel processes on this machine (torch backends; ${what})`,
    },
    "master-port": {
      type: "string",
      arg: "PORT",
      help: "rendezvous port for --nproc (default: a free one)",
    },
    "dist-timeout": {
      type: "string",
      arg: "S",
      help: "seconds a rank waits for the others before failing (default 300)",
    },
  };
}

/**
 * With `--nproc N > 1`, starts N ranks of `command` on this machine and returns the job's exit
 * code; otherwise null (this process does the work, alone or as a rank torchrun started).
 * `--nproc` under torchrun (WORLD_SIZE set) and `--nproc` on a tfjs backend are errors.
 *
 * @example
 * ```ts ignore
 * const code = await launchIfAsked("sample", argv, parsed);
 * if (code !== null) return code;
 * ```
 */
export async function launchIfAsked(
  command: string,
  argv: string[],
  parsed: Parsed,
): Promise<number | null> {
  const nproc = int(parsed, "nproc", 1) ?? 1;
  const masterPort = int(parsed, "master-port", 1, 65535);
  distTimeout(parsed); // a bad value fails here, before any rank starts
  if (nproc === 1) return null;
  if (readTorchrunEnv() !== null) {
    throw new UsageError(
      "--nproc starts the ranks itself; under torchrun or SLURM (WORLD_SIZE set) drop it",
    );
  }
  const flag = backendFlag(parsed);
  return await launchRanks(command, argv, {
    nproc,
    masterPort,
    backendFlag: flag,
    gpus: flag === "torch-cuda" || (flag === "auto" && (await torchCudaDeviceCount()) > 0),
  });
}

/** `--dist-timeout` in seconds, checked; undefined when not given (the 300 s default). */
export function distTimeout(parsed: Parsed): number | undefined {
  return num(parsed, "dist-timeout", 0.001);
}
