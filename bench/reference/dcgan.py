"""The DCGAN pair of src/models/dcgan.ts, in PyTorch: the reference for parameter names, counts
and numerics (tests/fixtures/make_dcgan_fixtures.py) and the performance peer for G+D steps.

    /usr/bin/python3 bench/reference/dcgan.py            # parameter counts vs ours (runs deno)
    /usr/bin/python3 bench/reference/dcgan.py --bench    # images/s of G+D steps, batch 128

It is the PyTorch DCGAN tutorial's nn.Sequential adapted from 64x64 to 32x32 (one block fewer on
each side), with bias-free convolutions, BCE on logits (no final Sigmoid), and optional class
conditioning: an nn.Embedding row tiled over the input's spatial size and concatenated as extra
input channels (G: onto the 1x1 noise; D: onto the 32x32 image).
"""
import argparse
import json
import os
import subprocess
import time

import torch
import torch.nn as nn


def generator_widths(preset, ngf, channels):
    second = ngf * 4 if preset == "dcgan-wide" else ngf * 2
    return [ngf * 4, second, ngf, channels]


class Generator(nn.Module):
    def __init__(self, preset="dcgan", nz=100, ngf=64, channels=3, num_classes=0, embed_dim=0):
        super().__init__()
        w = generator_widths(preset, ngf, channels)
        k = embed_dim if num_classes > 0 else 0
        self.nz = nz
        self.main = nn.Sequential(
            nn.ConvTranspose2d(nz + k, w[0], 4, 1, 0, bias=False),  # 1 -> 4
            nn.BatchNorm2d(w[0]),
            nn.ReLU(True),
            nn.ConvTranspose2d(w[0], w[1], 4, 2, 1, bias=False),  # 4 -> 8
            nn.BatchNorm2d(w[1]),
            nn.ReLU(True),
            nn.ConvTranspose2d(w[1], w[2], 4, 2, 1, bias=False),  # 8 -> 16
            nn.BatchNorm2d(w[2]),
            nn.ReLU(True),
            nn.ConvTranspose2d(w[2], w[3], 4, 2, 1, bias=False),  # 16 -> 32
            nn.Tanh(),
        )
        self.label_emb = nn.Embedding(num_classes, embed_dim) if num_classes > 0 else None

    def forward(self, z, labels=None):  # z [B, nz, 1, 1]
        if self.label_emb is not None:
            z = torch.cat([z, self.label_emb(labels)[:, :, None, None]], 1)
        return self.main(z)  # [B, C, 32, 32]


class Discriminator(nn.Module):
    def __init__(self, ndf=64, channels=3, num_classes=0, embed_dim=0):
        super().__init__()
        k = embed_dim if num_classes > 0 else 0
        self.main = nn.Sequential(
            nn.Conv2d(channels + k, ndf, 4, 2, 1, bias=False),  # 32 -> 16
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False),  # 16 -> 8
            nn.BatchNorm2d(ndf * 2),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1, bias=False),  # 8 -> 4
            nn.BatchNorm2d(ndf * 4),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 4, 1, 4, 1, 0, bias=False),  # 4 -> 1
        )
        self.label_emb = nn.Embedding(num_classes, embed_dim) if num_classes > 0 else None

    def forward(self, x, labels=None):  # x [B, C, 32, 32]
        if self.label_emb is not None:
            planes = self.label_emb(labels)[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3])
            x = torch.cat([x, planes], 1)
        return self.main(x).view(-1)  # [B] logits


def weights_init(m):
    """The tutorial's init: conv weights N(0, 0.02); BatchNorm weight N(1, 0.02), bias 0."""
    name = m.__class__.__name__
    if name.find("Conv") != -1:
        nn.init.normal_(m.weight.data, 0.0, 0.02)
    elif name.find("BatchNorm") != -1:
        nn.init.normal_(m.weight.data, 1.0, 0.02)
        nn.init.constant_(m.bias.data, 0)


def make_pair(preset="dcgan", nz=100, ngf=64, ndf=64, channels=3, num_classes=0, embed_dim=0):
    g = Generator(preset, nz, ngf, channels, num_classes, embed_dim)
    d = Discriminator(ndf, channels, num_classes, embed_dim)
    g.apply(weights_init)
    d.apply(weights_init)
    return g, d


def count(module):
    return sum(p.numel() for p in module.parameters())


def train_step(g, d, opt_g, opt_d, real, labels, z, smooth=False):
    """The tutorial's alternating step; returns lossD, lossG, D(x), D(G(z)) (before D's update)."""
    bce = nn.BCEWithLogitsLoss()
    t_real, t_fake = (0.9, 0.1) if smooth else (1.0, 0.0)
    d.zero_grad()
    out_real = d(real, labels)
    err_real = bce(out_real, torch.full_like(out_real, t_real))
    fake = g(z, labels)
    out_fake = d(fake.detach(), labels)
    err_fake = bce(out_fake, torch.full_like(out_fake, t_fake))
    loss_d = err_real + err_fake
    loss_d.backward()
    opt_d.step()
    g.zero_grad()
    out = d(fake, labels)
    loss_g = bce(out, torch.ones_like(out))
    loss_g.backward()
    opt_g.step()
    return {
        "lossD": loss_d.item(),
        "lossG": loss_g.item(),
        "dReal": torch.sigmoid(out_real).mean().item(),
        "dFake": torch.sigmoid(out_fake).mean().item(),
    }


def adam(module, lr=2e-4):
    return torch.optim.Adam(module.parameters(), lr=lr, betas=(0.5, 0.999))


CASES = [
    {"preset": "dcgan", "nz": 100, "ngf": 64, "ndf": 64, "numClasses": 0, "embedDim": 0},
    {"preset": "dcgan-wide", "nz": 100, "ngf": 64, "ndf": 64, "numClasses": 0, "embedDim": 0},
    {"preset": "dcgan", "nz": 128, "ngf": 64, "ndf": 64, "numClasses": 10, "embedDim": 10},
    {"preset": "dcgan-wide", "nz": 100, "ngf": 32, "ndf": 48, "numClasses": 2, "embedDim": 5},
]


def ours(cases):
    """Parameter counts from src/models/dcgan.ts (dcganParamCounts), via deno."""
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
    code = (
        'import { dcganParamCounts } from "./src/models/dcgan.ts";'
        f"const cases = {json.dumps(cases)};"
        "console.log(JSON.stringify(cases.map((c) => dcganParamCounts({ ...c, channels: 3 }))));"
    )
    out = subprocess.run(["deno", "eval", code], cwd=root, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def check_counts():
    for case, mine in zip(CASES, ours(CASES)):
        g, d = make_pair(case["preset"], case["nz"], case["ngf"], case["ndf"], 3,
                         case["numClasses"], case["embedDim"])
        theirs = {"generator": count(g), "discriminator": count(d)}
        print(case, "torch:", theirs, "deno:", mine)
        assert theirs["generator"] == mine["generator"], "generator counts differ"
        assert theirs["discriminator"] == mine["discriminator"], "discriminator counts differ"
    print("parameter counts agree")


def bench(batch, steps, warmup):
    torch.manual_seed(0)
    g, d = make_pair()
    opt_g, opt_d = adam(g), adam(d)
    real = torch.rand(batch, 3, 32, 32) * 2 - 1
    for i in range(warmup + steps):
        if i == warmup:
            start = time.perf_counter()
        train_step(g, d, opt_g, opt_d, real, None, torch.randn(batch, 100, 1, 1))
    seconds = time.perf_counter() - start
    print(json.dumps({
        "torch": torch.__version__, "threads": torch.get_num_threads(), "batch": batch,
        "steps": steps, "seconds": round(seconds, 3),
        "images_per_s": round(batch * steps / seconds, 1),
    }))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--bench", action="store_true")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    args = parser.parse_args()
    if args.bench:
        bench(args.batch, args.steps, args.warmup)
    else:
        check_counts()
