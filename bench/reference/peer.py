"""The PyTorch peer of bench/compare.ts: the same workloads, written as a PyTorch user would.

    /usr/bin/python3 bench/reference/peer.py serve            # JSON lines on stdin/stdout
    /usr/bin/python3 bench/reference/peer.py run WORKLOAD [--reps 3] [--threads 2] [--device cpu]
    /usr/bin/python3 bench/reference/peer.py counts           # parameter counts, one JSON line
    /usr/bin/python3 bench/reference/peer.py profile WORKLOAD # ATen ops by self time

compare.ts drives `serve` so that our runs and the peer's alternate in one process tree:

    -> {"op": "setup", "workload": "train-unet-2xud-half", "threads": 2, "device": "cpu",
        "autocast": "float32", "params": {"model": 1234}}
    <- {"ok": true, "params": {"model": 1234}, "torch": "1.13.0", "threads": 2, "device": "cpu"}
    -> {"op": "run"}
    <- {"ok": true, "seconds": 1.23, "images": 64}
    -> {"op": "quit"}

`params` in a setup request are OUR parameter counts: setup fails (ok false) unless the peer's
models have exactly as many, so the two sides never time different networks.

Workloads (images per run in brackets):
  train-unet-2xud-half, train-unet-3x  [64]  one DDPM step as src/diffusion/task.ts takes it:
      q_sample (Ho et al. 2020 eq. 4), L_simple (eq. 14), backward, clip_grad_norm_(1.0),
      AdamW(3e-4), EMA lerp; cosine schedule, T = 1000
  sample-unet-2xud-half  [64]  50 deterministic DDIM steps (Song et al. 2021 eq. 12, eta 0),
      then clamp and copy to the host
  dcgan-step  [128]  the DCGAN tutorial's D step + G step (bench/reference/dcgan.py)
  fid-features  [64]  FID Inception-v3 features (2048-d pool3) of 32x32 images, resized to
      299x299 inside the network (bench/reference/fid_inception.py), random weights

The models come from the sibling reference files (unet.py, dcgan.py, fid_inception.py).
"""
import argparse
import contextlib
import json
import math
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import dcgan  # noqa: E402
import fid_inception  # noqa: E402
import unet  # noqa: E402

WORKLOADS = ["train-unet-2xud-half", "train-unet-3x", "sample-unet-2xud-half", "dcgan-step",
             "fid-features"]
TIMESTEPS = 1000


def count(module):
    return sum(p.numel() for p in module.parameters())


def cosine_alpha_bar(timesteps, offset=0.008, max_beta=0.999):
    """alphaBar_t of Nichol & Dhariwal 2021 eq. 17 (betas clipped at 0.999), float64 [T]."""
    def f(t):
        return math.cos((t / timesteps + offset) / (1 + offset) * math.pi / 2) ** 2
    alpha_bar, product = [], 1.0
    for i in range(timesteps):
        product *= 1 - min(1 - f(i + 1) / f(i), max_beta)
        alpha_bar.append(product)
    return torch.tensor(alpha_bar, dtype=torch.float64)


class Workload:
    """A model (or pair) on a device plus one timed unit of work, `run()`."""

    images = 0

    def __init__(self, device, autocast):
        self.device = torch.device(device)
        self.autocast = autocast == "bfloat16" and self.device.type == "cuda"

    def amp(self):
        if not self.autocast:
            return contextlib.nullcontext()  # torch.autocast("cuda") fails on CPU-only builds
        return torch.autocast("cuda", dtype=torch.bfloat16)

    def params(self):
        raise NotImplementedError

    def run(self):
        raise NotImplementedError


class DdpmTrainStep(Workload):
    images = 64

    def __init__(self, preset, device, autocast):
        super().__init__(device, autocast)
        torch.manual_seed(0)
        self.model = unet.create(preset).to(self.device)
        self.ema = unet.create(preset).to(self.device)
        self.ema.load_state_dict(self.model.state_dict())
        self.ema.requires_grad_(False)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=3e-4, betas=(0.9, 0.999),
                                     eps=1e-8, weight_decay=0)
        alpha_bar = cosine_alpha_bar(TIMESTEPS)
        self.sqrt_ab = alpha_bar.sqrt().float().to(self.device)
        self.sqrt_1m_ab = (1 - alpha_bar).sqrt().float().to(self.device)
        self.x0 = (torch.rand(self.images, 3, 32, 32) * 2 - 1).to(self.device)

    def params(self):
        return {"model": count(self.model)}

    def run(self):
        n = self.x0.shape[0]
        t = torch.randint(0, TIMESTEPS, (n,), device=self.device)
        noise = torch.randn_like(self.x0)
        # eq. 4: x_t = sqrt(alphaBar_t) x_0 + sqrt(1 - alphaBar_t) eps
        x_t = self.sqrt_ab[t].view(n, 1, 1, 1) * self.x0 + self.sqrt_1m_ab[t].view(n, 1, 1, 1) * noise
        with self.amp():
            loss = F.mse_loss(self.model(x_t, t).float(), noise)  # eq. 14, L_simple
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        with torch.no_grad():
            # The task copies the weights until emaStart (decay 0): same cost as any decay.
            for e, p in zip(self.ema.parameters(), self.model.parameters()):
                e.lerp_(p, 1.0)
        return loss.item()


class DdimSample(Workload):
    images = 64
    steps = 50

    def __init__(self, preset, device, autocast):
        super().__init__(device, autocast)
        torch.manual_seed(0)
        # eval(): nn.MultiheadAttention takes its fused inference path (PyTorch >= 1.12).
        self.model = unet.create(preset).to(self.device).eval().requires_grad_(False)
        self.alpha_bar = cosine_alpha_bar(TIMESTEPS).tolist()

    def params(self):
        return {"model": count(self.model)}

    @torch.no_grad()
    def run(self):
        n = self.images
        seq = [k * TIMESTEPS // self.steps for k in range(self.steps)]
        x = torch.randn(n, 3, 32, 32, device=self.device)
        for k in range(len(seq) - 1, -1, -1):
            ab = self.alpha_bar[seq[k]]
            ab_prev = self.alpha_bar[seq[k - 1]] if k > 0 else 1.0
            t = torch.full((n,), seq[k], dtype=torch.long, device=self.device)
            with self.amp():
                eps = self.model(x, t).float()
            x0 = (x - math.sqrt(1 - ab) * eps) / math.sqrt(ab)
            # Song et al. 2021 eq. 12 with sigma = 0
            x = math.sqrt(ab_prev) * x0 + math.sqrt(1 - ab_prev) * eps
        return x.clamp(-1, 1).cpu()


class DcganStep(Workload):
    images = 128

    def __init__(self, device, autocast):
        super().__init__(device, autocast)
        torch.manual_seed(0)
        g, d = dcgan.make_pair()
        self.g, self.d = g.to(self.device), d.to(self.device)
        self.opt_g, self.opt_d = dcgan.adam(self.g), dcgan.adam(self.d)
        self.real = (torch.rand(self.images, 3, 32, 32) * 2 - 1).to(self.device)

    def params(self):
        return {"generator": count(self.g), "discriminator": count(self.d)}

    def run(self):
        z = torch.randn(self.images, 100, 1, 1, device=self.device)
        with self.amp():
            return dcgan.train_step(self.g, self.d, self.opt_g, self.opt_d, self.real, None, z)


class FidFeatures(Workload):
    images = 64

    def __init__(self, device, autocast):
        super().__init__(device, autocast)
        torch.manual_seed(0)
        self.net = fid_inception.FIDInceptionV3().eval().to(self.device).requires_grad_(False)
        self.batch = torch.rand(self.images, 3, 32, 32, device=self.device)

    def params(self):
        # The 1008-way classifier `fc` is in the state_dict but not in the features.
        return {"inception": sum(p.numel() for name, p in self.net.named_parameters()
                                 if not name.startswith("fc."))}

    @torch.no_grad()
    def run(self):
        with self.amp():
            pool3 = self.net(self.batch, last_block=3)[-1]
        return pool3.float().reshape(self.images, -1).cpu()  # [N, 2048]


def create(name, device="cpu", autocast="float32"):
    if name.startswith("train-"):
        return DdpmTrainStep(name[len("train-"):], device, autocast)
    if name.startswith("sample-"):
        return DdimSample(name[len("sample-"):], device, autocast)
    if name == "dcgan-step":
        return DcganStep(device, autocast)
    if name == "fid-features":
        return FidFeatures(device, autocast)
    raise ValueError(f"unknown workload {name!r}: use one of {', '.join(WORKLOADS)}")


def timed(workload):
    start = time.perf_counter()
    workload.run()
    if workload.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def check_params(workload, expected):
    """Raises unless the peer's parameter counts equal ours (`expected`, by group)."""
    mine = workload.params()
    for group, n in (expected or {}).items():
        if group not in mine:
            raise ValueError(f"no parameter group {group!r} here (have {sorted(mine)})")
        if mine[group] != n:
            raise ValueError(f"{group}: PyTorch has {mine[group]} parameters, ours {n}: "
                             "the peer and our model differ; fix the reference model")
    return mine


def serve():
    workload = None
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            request = json.loads(line)
            op = request.get("op")
            if op == "setup":
                workload = None  # free the previous model first
                if request.get("threads"):
                    torch.set_num_threads(int(request["threads"]))
                workload = create(request["workload"], request.get("device", "cpu"),
                                  request.get("autocast", "float32"))
                reply = {"ok": True, "params": check_params(workload, request.get("params")),
                         "torch": torch.__version__, "threads": torch.get_num_threads(),
                         "device": str(workload.device), "images": workload.images}
            elif op == "run":
                if workload is None:
                    raise ValueError("run before setup")
                reply = {"ok": True, "seconds": timed(workload), "images": workload.images}
            elif op == "quit":
                return
            else:
                raise ValueError(f"unknown op {op!r}: use setup, run or quit")
        except Exception as e:  # reported to compare.ts, which stops with the message
            reply = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="JSON lines on stdin/stdout (driven by bench/compare.ts)")
    run = sub.add_parser("run", help="time one workload on its own")
    run.add_argument("workload", choices=WORKLOADS)
    run.add_argument("--reps", type=int, default=3)
    run.add_argument("--warmup", type=int, default=1)
    run.add_argument("--threads", type=int, default=0)
    run.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    run.add_argument("--autocast", default="float32", choices=["float32", "bfloat16"])
    sub.add_parser("counts", help="parameter counts of every workload's models")
    profile = sub.add_parser("profile", help="ATen ops of one run by self time (torch.profiler)")
    profile.add_argument("workload", choices=WORKLOADS)
    profile.add_argument("--threads", type=int, default=0)
    profile.add_argument("--rows", type=int, default=30)
    args = parser.parse_args()
    if args.command == "serve":
        serve()
    elif args.command == "counts":
        print(json.dumps({name: create(name).params() for name in WORKLOADS}))
    elif args.command == "profile":
        if args.threads:
            torch.set_num_threads(args.threads)
        workload = create(args.workload)
        timed(workload)  # warm-up
        with torch.autograd.profiler.profile() as prof:
            seconds = timed(workload)
        print(f"{args.workload}: {seconds * 1000:.1f} ms, {torch.get_num_threads()} threads")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows))
    else:
        if args.threads:
            torch.set_num_threads(args.threads)
        workload = create(args.workload, args.device, args.autocast)
        for _ in range(args.warmup):
            timed(workload)
        times = sorted(timed(workload) for _ in range(args.reps))
        median = times[len(times) // 2]
        print(json.dumps({"workload": args.workload, "torch": torch.__version__,
                          "threads": torch.get_num_threads(), "device": str(workload.device),
                          "seconds": times, "images_per_s": workload.images / median}))


if __name__ == "__main__":
    main()
