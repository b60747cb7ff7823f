"""PyTorch reference of the DDPM denoisers in src/models/ (unet.ts, convnet.ts).

Written from the architecture description of issue 4 (the U-Net family of dome272's
Diffusion-Models-pytorch, after Ho et al. 2020), with the same module names so that a
state_dict maps one-to-one onto the TypeScript ParamStore. Used for the parameter-name and
forward-output fixtures (tests/fixtures/make_unet_fixtures.py) and as the performance peer.

Differences from dome272's modules.py, on purpose:
- SelfAttention reads the spatial size from its input instead of a constructor argument.
- The levels and widths are configurable (presets unet-3x, unet-2xud, unet-2xud-half).
- The class embedding has num_classes + 1 rows; the last is the "null" label of
  classifier-free guidance.
- The sinusoidal time embedding is computed in float64 and then cast, as the TS side does.

Usage: python3 bench/reference/unet.py [--preset unet-3x] [--classes 0]  -> prints the count.
"""
import argparse
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

UNET_PRESETS = {
    "unet-3x": ([64, 128, 256, 256], [512, 512]),
    "unet-2xud": ([64, 128, 256], [512]),
    "unet-2xud-half": ([32, 64, 128], [256]),
}


def sinusoidal_embedding(t, dim):
    """[B] int timesteps -> [B, dim]: sin of t * 10000^(-2i/dim) for i < dim/2, then cos."""
    inv_freq = 1.0 / (10000 ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))
    angles = t.to(torch.float64)[:, None] * inv_freq[None, :]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1).float()


class DoubleConv(nn.Module):
    def __init__(self, cin, cout, mid=None, residual=False):
        super().__init__()
        mid = mid or cout
        self.residual = residual
        self.double_conv = nn.Sequential(
            nn.Conv2d(cin, mid, 3, padding=1, bias=False),
            nn.GroupNorm(1, mid),
            nn.GELU(),
            nn.Conv2d(mid, cout, 3, padding=1, bias=False),
            nn.GroupNorm(1, cout),
        )

    def forward(self, x):
        h = self.double_conv(x)
        return F.gelu(x + h) if self.residual else h


class Down(nn.Module):
    def __init__(self, cin, cout, emb_dim=256):
        super().__init__()
        self.maxpool_conv = nn.Sequential(
            nn.MaxPool2d(2), DoubleConv(cin, cin, residual=True), DoubleConv(cin, cout)
        )
        self.emb_layer = nn.Sequential(nn.SiLU(), nn.Linear(emb_dim, cout))

    def forward(self, x, emb):
        x = self.maxpool_conv(x)
        return x + self.emb_layer(emb)[:, :, None, None]


class Up(nn.Module):
    def __init__(self, cin, cout, emb_dim=256):
        super().__init__()
        self.conv = nn.Sequential(
            DoubleConv(cin, cin, residual=True), DoubleConv(cin, cout, cin // 2)
        )
        self.emb_layer = nn.Sequential(nn.SiLU(), nn.Linear(emb_dim, cout))

    def forward(self, x, skip, emb):
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=True)
        x = self.conv(torch.cat([skip, x], dim=1))
        return x + self.emb_layer(emb)[:, :, None, None]


class SelfAttention(nn.Module):
    def __init__(self, channels, heads=4):
        super().__init__()
        self.mha = nn.MultiheadAttention(channels, heads, batch_first=True)
        self.ln = nn.LayerNorm([channels])
        self.ff_self = nn.Sequential(
            nn.LayerNorm([channels]),
            nn.Linear(channels, channels),
            nn.GELU(),
            nn.Linear(channels, channels),
        )

    def forward(self, x):
        n, c, h, w = x.shape
        tokens = x.reshape(n, c, h * w).transpose(1, 2)
        normed = self.ln(tokens)
        attended = self.mha(normed, normed, normed, need_weights=False)[0] + tokens
        out = self.ff_self(attended) + attended
        return out.transpose(1, 2).reshape(n, c, h, w)


class UNet(nn.Module):
    def __init__(self, preset="unet-3x", channels=3, num_classes=0, time_dim=256):
        super().__init__()
        widths, bottleneck = UNET_PRESETS[preset]
        self.levels = len(widths) - 1
        self.time_dim = time_dim
        self.inc = DoubleConv(channels, widths[0])
        for l in range(1, self.levels + 1):
            setattr(self, f"down{l}", Down(widths[l - 1], widths[l], time_dim))
            setattr(self, f"sa{l}", SelfAttention(widths[l]))
        bot = [widths[-1], *bottleneck, widths[-1]]
        self.n_bot = len(bot) - 1
        for i in range(1, len(bot)):
            setattr(self, f"bot{i}", DoubleConv(bot[i - 1], bot[i]))
        below = widths[-1]
        for k in range(1, self.levels + 1):
            skip = widths[self.levels - k]
            out = widths[self.levels - k - 1] if k < self.levels else widths[0]
            setattr(self, f"up{k}", Up(below + skip, out, time_dim))
            setattr(self, f"sa{self.levels + k}", SelfAttention(out))
            below = out
        self.outc = nn.Conv2d(widths[0], channels, 1)
        if num_classes > 0:
            self.label_emb = nn.Embedding(num_classes + 1, time_dim)

    def forward(self, x, t, y=None):
        emb = sinusoidal_embedding(t, self.time_dim)
        if y is not None:
            emb = emb + self.label_emb(y)
        skips = [self.inc(x)]
        h = skips[0]
        for l in range(1, self.levels + 1):
            h = getattr(self, f"sa{l}")(getattr(self, f"down{l}")(h, emb))
            skips.append(h)
        for i in range(1, self.n_bot + 1):
            h = getattr(self, f"bot{i}")(h)
        for k in range(1, self.levels + 1):
            h = getattr(self, f"up{k}")(h, skips[self.levels - k], emb)
            h = getattr(self, f"sa{self.levels + k}")(h)
        return self.outc(h)


class ConvNet(nn.Module):
    """Conv/ConvTranspose encoder-decoder with additive skips and the time embedding per block."""

    def __init__(self, channels=3, num_classes=0, width=64, time_dim=256):
        super().__init__()
        w = width
        self.time_dim = time_dim
        self.inc = nn.Conv2d(channels, w, 3, padding=1)
        self.enc1 = nn.Conv2d(w, 2 * w, 4, stride=2, padding=1)
        self.norm1 = nn.GroupNorm(1, 2 * w)
        self.emb1 = nn.Linear(time_dim, 2 * w)
        self.enc2 = nn.Conv2d(2 * w, 4 * w, 4, stride=2, padding=1)
        self.norm2 = nn.GroupNorm(1, 4 * w)
        self.emb2 = nn.Linear(time_dim, 4 * w)
        self.mid = nn.Conv2d(4 * w, 4 * w, 3, padding=1)
        self.norm3 = nn.GroupNorm(1, 4 * w)
        self.emb3 = nn.Linear(time_dim, 4 * w)
        self.dec2 = nn.ConvTranspose2d(4 * w, 2 * w, 4, stride=2, padding=1)
        self.norm4 = nn.GroupNorm(1, 2 * w)
        self.emb4 = nn.Linear(time_dim, 2 * w)
        self.dec1 = nn.ConvTranspose2d(2 * w, w, 4, stride=2, padding=1)
        self.norm5 = nn.GroupNorm(1, w)
        self.emb5 = nn.Linear(time_dim, w)
        self.outc = nn.Conv2d(w, channels, 3, padding=1)
        if num_classes > 0:
            self.label_emb = nn.Embedding(num_classes + 1, time_dim)

    def block(self, h, conv, norm, emb_layer, emb):
        h = norm(conv(h)) + emb_layer(F.silu(emb))[:, :, None, None]
        return F.silu(h)

    def forward(self, x, t, y=None):
        emb = sinusoidal_embedding(t, self.time_dim)
        if y is not None:
            emb = emb + self.label_emb(y)
        h0 = F.silu(self.inc(x))
        h1 = self.block(h0, self.enc1, self.norm1, self.emb1, emb)
        h2 = self.block(h1, self.enc2, self.norm2, self.emb2, emb)
        h = self.block(h2, self.mid, self.norm3, self.emb3, emb) + h2
        h = self.block(h, self.dec2, self.norm4, self.emb4, emb) + h1
        h = self.block(h, self.dec1, self.norm5, self.emb5, emb) + h0
        return self.outc(h)


def create(preset, channels=3, num_classes=0):
    if preset == "convnet":
        return ConvNet(channels, num_classes)
    return UNet(preset, channels, num_classes)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="unet-3x", choices=[*UNET_PRESETS, "convnet"])
    parser.add_argument("--classes", type=int, default=0)
    args = parser.parse_args()
    model = create(args.preset, 3, args.classes)
    print(sum(p.numel() for p in model.parameters()))
