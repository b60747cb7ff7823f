/**
 * Data-parallel benchmark on this machine (CPU, Gloo, loopback):
 *
 * 1. all-reduce of a unet-3x-sized gradient (23,332,739 float32, 93 MB) over 2 ranks: ours
 *    (the shim's bucketed all-reduce, 25 MiB buckets, and one flat bucket) against
 *    `torch.distributed.all_reduce` of one tensor from Debian's python3-torch, in the same run;
 *    GB/s = bytes / seconds (algorithm bandwidth; the ring moves 2 (R-1)/R of it per rank);
 * 2. training images/s of the DDPM convnet preset at global batch 32: 1 process x 2 threads
 *    against 2 processes x 1 thread, the latter with the gradient all-reduce overlapped with
 *    backward (the default) and not (`DENO_DIFFUSION_DDP_OVERLAP=0`); scaling efficiency = 2
 *    processes / 1. For each 2-process run, rank 0's gradient-sync totals from the shim's
 *    clock: ms per step waited for communication after backward, ms per step an all-reduce
 *    was in flight, and the fraction of that hidden behind backward. A third 2-process job
 *    switches the overlap on and off on alternate steps (a paired comparison: the shared
 *    machine's load drifts between jobs) and reports the median step time of each.
 *    `--bucket-mib` sets the bucket size (default 25, as DDP).
 *
 * With `--gpus N` (a CUDA libtorch; bench/gpu/run.sh passes all GPUs) the same on N GPUs
 * over NCCL: our all-reduce against torch.distributed's (nccl), and training images/s per GPU
 * of N ranks x batch B against 1 GPU x batch B (weak scaling, as DDP is used);
 * efficiency = per-GPU images/s on N / on 1.
 *
 * Usage: deno run -A bench/distributed.ts [--json] [--reps N] [--numel N] [--steps N]
 *        [--bucket-mib M] [--skip-allreduce] [--gpus N [--preset NAME] [--batch-size B]]
 *
 * @module
 */
import { parseArgs } from "node:util";
import { freeLoopbackPort } from "../src/app/launch.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    json: { type: "boolean" },
    reps: { type: "string", default: "5" },
    numel: { type: "string", default: "23332739" },
    steps: { type: "string", default: "12" },
    gpus: { type: "string", default: "0" },
    preset: { type: "string" },
    "batch-size": { type: "string" },
    "bucket-mib": { type: "string", default: "25" },
    "skip-allreduce": { type: "boolean" },
  },
});
const reps = Number(values.reps);
const numel = Number(values.numel);
const steps = Number(values.steps);
const gpus = Number(values.gpus);
const bucketBytes = Math.round(Number(values["bucket-mib"]) * 2 ** 20);
const WORKER = decodeURIComponent(new URL("./_distributed_worker.ts", import.meta.url).pathname);
const PEER = decodeURIComponent(new URL("./reference/dist_allreduce.py", import.meta.url).pathname);
const PYTHON = Deno.env.get("DENO_DIFFUSION_TORCH_PYTHON") ?? "/usr/bin/python3";

/** The torchrun variables of each of `world` ranks; on GPUs ours see one GPU each. */
function ranks(world: number, threads: number, ours: boolean): Record<string, string>[] {
  const port = freeLoopbackPort();
  return Array.from({ length: world }, (_, rank) => ({
    MASTER_ADDR: "127.0.0.1",
    MASTER_PORT: String(port),
    RANK: String(rank),
    WORLD_SIZE: String(world),
    LOCAL_RANK: String(rank),
    LOCAL_WORLD_SIZE: String(world),
    DENO_DIFFUSION_TORCH_THREADS: String(threads),
    ...(gpus > 0 && ours
      ? { CUDA_VISIBLE_DEVICES: String(rank), DD_BENCH_BACKEND: "torch-cuda" }
      : {}),
  }));
}

/** Runs `cmd args` once per env; returns rank 0's last JSON line. */
async function job(cmd: string, args: string[], envs: Record<string, string>[]) {
  const outs = await Promise.all(
    envs.map((env) =>
      new Deno.Command(cmd, { args, env, stdout: "piped", stderr: "piped" }).output()
    ),
  );
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  outs.forEach((o, r) => {
    if (!o.success) throw new Error(`rank ${r} of ${cmd} failed:\n${decode(o.stderr)}`);
  });
  return JSON.parse(decode(outs[0].stdout).trim().split("\n").at(-1)!);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const deno = Deno.execPath();
const world = gpus > 0 ? gpus : 2;
const rate = (r: { seconds: number[]; bytes: number }) => ({
  seconds: median(r.seconds),
  gb_per_s: r.bytes / median(r.seconds) / 1e9,
});

const allReduce: Record<string, unknown> = {
  collectives: gpus > 0 ? "nccl" : "gloo",
  numel,
  bytes: numel * 4,
  ranks: world,
  reps,
};
if (!values["skip-allreduce"]) {
  for (
    const [name, bucket] of [["ours_bucketed_25MiB", 25 * 2 ** 20], [
      "ours_one_bucket",
      2 ** 31,
    ]] as const
  ) {
    const args = ["run", "-A", WORKER, "allreduce", `${numel}`, "1", `${reps}`, `${bucket}`];
    allReduce[name] = rate(await job(deno, args, ranks(world, 1, true)));
  }
  const peerArgs = [PEER, `${numel}`, "1", `${reps}`, gpus > 0 ? "nccl" : "gloo"];
  allReduce.torch_distributed = rate(await job(PYTHON, peerArgs, ranks(world, 1, false)));
  const gbs = (k: string) => (allReduce[k] as { gb_per_s: number }).gb_per_s;
  allReduce.ratio_bucketed_vs_torch = gbs("ours_bucketed_25MiB") / gbs("torch_distributed");
  allReduce.ratio_one_bucket_vs_torch = gbs("ours_one_bucket") / gbs("torch_distributed");
}

/** Rank 0's gradient-sync totals (ProcessGroup.gradientSyncStats), per step. */
function syncSummary(sync: Record<string, number>) {
  const per = (k: string) => sync[k] / sync.steps;
  return {
    steps: sync.steps,
    overlapped_steps: sync.overlappedSteps,
    buckets_per_step: per("buckets"),
    buckets_launched_in_backward_per_step: per("bucketsLaunchedInBackward"),
    backward_ms_per_step: per("backwardMs"),
    exposed_comm_ms_per_step: per("exposedMs"),
    in_flight_comm_ms_per_step: per("inFlightMs"),
    hidden_fraction: sync.inFlightMs > 0 ? sync.hiddenMs / sync.inFlightMs : 0,
  };
}

let training: Record<string, unknown>;
const preset = values.preset ?? (gpus > 0 ? "unet-2xud" : "convnet");
if (gpus > 0) {
  const batch = Number(values["batch-size"] ?? 64);
  const train = ["run", "-A", WORKER, "train", `${steps}`, `${batch}`, preset];
  const one = await job(
    deno,
    train,
    ranks(1, 1, true).map(({ RANK: _, WORLD_SIZE: __, ...e }) => e),
  );
  const many = await job(deno, train, ranks(gpus, 1, true));
  training = {
    model: `ddpm ${preset}, 32x32, batch ${batch} per GPU`,
    steps,
    one_gpu_images_per_s: one.imagesPerSecond,
    [`${gpus}_gpus_images_per_s_per_gpu`]: many.imagesPerSecond / gpus,
    scaling_efficiency: many.imagesPerSecond / gpus / one.imagesPerSecond,
  };
} else {
  const batch = Number(values["batch-size"] ?? 32);
  const train = (b: number) => [
    "run",
    "-A",
    WORKER,
    "train",
    `${steps}`,
    `${b}`,
    preset,
    `${bucketBytes}`,
  ];
  const alone = await job(deno, train(batch), [{ DENO_DIFFUSION_TORCH_THREADS: "2" }]);
  const withOverlap = (on: boolean) =>
    ranks(2, 1, true).map((e) => ({ ...e, DENO_DIFFUSION_DDP_OVERLAP: on ? "1" : "0" }));
  // Alternated, so that a change in the shared machine's load hits both alike.
  const split = await job(deno, train(batch / 2), withOverlap(true));
  const flat = await job(deno, train(batch / 2), withOverlap(false));
  // One more job switching the overlap on and off on alternate steps; the first two steps
  // (one of each, warm-up) left out.
  const paired = await job(
    deno,
    ["run", "-A", WORKER, "train", `${2 * steps + 2}`, `${batch / 2}`, preset, `${bucketBytes}`],
    ranks(2, 1, true).map((e) => ({ ...e, DD_BENCH_ALTERNATE: "1" })),
  );
  const stepMedian = (xs: number[]) => median(xs.slice(1));
  training = {
    model: `ddpm ${preset}, 32x32, global batch ${batch}`,
    steps,
    bucket_mib: bucketBytes / 2 ** 20,
    one_process_2_threads_images_per_s: alone.imagesPerSecond,
    two_processes_1_thread_images_per_s: split.imagesPerSecond,
    two_processes_1_thread_no_overlap_images_per_s: flat.imagesPerSecond,
    scaling_efficiency: split.imagesPerSecond / alone.imagesPerSecond,
    scaling_efficiency_no_overlap: flat.imagesPerSecond / alone.imagesPerSecond,
    overlap_speedup: split.imagesPerSecond / flat.imagesPerSecond,
    alternating_steps_median_ms_overlap: stepMedian(paired.stepMs.on),
    alternating_steps_median_ms_no_overlap: stepMedian(paired.stepMs.off),
    alternating_speedup: stepMedian(paired.stepMs.off) / stepMedian(paired.stepMs.on),
    gradient_sync_overlapped: syncSummary(split.sync),
    gradient_sync_not_overlapped: syncSummary(flat.sync),
  };
}
const result = {
  machine: `${navigator.hardwareConcurrency} cores, ${Deno.build.os}/${Deno.build.arch}`,
  all_reduce: allReduce,
  training,
};
console.log(values.json ? JSON.stringify(result) : JSON.stringify(result, null, 2));
