"""Peer for bench/distributed.ts: torch.distributed.all_reduce of one float32 tensor on Gloo.

Run as one process per rank with MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE set; prints, on
rank 0, one JSON line {"seconds": [...], "bytes": N} with the wall time of each timed call.
Usage: python3 dist_allreduce.py NUMEL WARMUP REPS [gloo|nccl]   (nccl: CUDA tensors, GPU LOCAL_RANK)
"""
import json
import os
import sys
import time

import torch
import torch.distributed as dist


def main():
    numel, warmup, reps = (int(a) for a in sys.argv[1:4])
    backend = sys.argv[4] if len(sys.argv) > 4 else "gloo"
    torch.set_num_threads(int(os.environ.get("DENO_DIFFUSION_TORCH_THREADS", "1")))
    dist.init_process_group(backend)
    device = "cpu"
    if backend == "nccl":
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
        torch.cuda.set_device(device)
    x = torch.ones(numel, dtype=torch.float32, device=device)
    for _ in range(warmup):
        dist.all_reduce(x)
    times = []
    for _ in range(reps):
        dist.barrier()
        start = time.perf_counter()
        dist.all_reduce(x)
        if device != "cpu":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    if dist.get_rank() == 0:
        print(json.dumps({"seconds": times, "bytes": numel * 4}))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
