"""How close can any 256-colour palette get to a grid of 64 CIFAR-10 photos? (io/gif.ts, #16)

An independent numpy estimate of the mean absolute error (levels, over pixels and channels)
that weighted k-medians (the L1 optimum's fixed points) reaches on the grid gif_test.ts builds,
from several k-medians++ starts (seeding in proportion to the L1 distance), for palette sizes
around GIF's 256: the best of the starts at 256, and how many colours a palette needs for 2.

    /usr/bin/python3 bench/reference/quantize_floor.py [--restarts 4] [--sizes 256,512,1024,1536]

Needs ../shared/data/cifar10-jpg beside the repository, numpy and PIL. A few minutes on 2 cores.
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests",
                                "fixtures"))
from make_quantize_fixtures import cifar_grid  # noqa: E402


def nearest(colours, palette, chunk=4096):
    """L1-nearest entry and its distance for each colour. colours [M, 3], palette [K, 3]."""
    index = np.empty(len(colours), np.int64)
    dist = np.empty(len(colours), np.int64)
    for s in range(0, len(colours), chunk):
        d = np.abs(colours[s:s + chunk, None, :] - palette[None, :, :]).sum(-1)  # [c, K]
        index[s:s + chunk] = d.argmin(1)
        dist[s:s + chunk] = d[np.arange(len(d)), index[s:s + chunk]]
    return index, dist


def medians(colours, weights, index, palette):
    """Per-channel weighted (lower) median of each cluster; empty clusters keep their entry."""
    k = len(palette)
    total = np.bincount(index, weights, k)
    out = palette.copy()
    for c in range(3):
        order = np.lexsort((colours[:, c], index))
        cum = np.cumsum(weights[order])
        before = np.concatenate([[0.0], np.cumsum(total)[:-1]])
        at = np.searchsorted(cum, before + total / 2)  # first with cum >= half of the cluster
        used = total > 0
        out[used, c] = colours[order[np.minimum(at[used], len(order) - 1)], c]
    return out


def kmedians(colours, weights, k, rng, rounds=100):
    first = rng.choice(len(colours), p=weights / weights.sum())
    palette = [colours[first]]
    dist = np.abs(colours - colours[first]).sum(1)
    for _ in range(1, k):
        p = dist * weights
        pick = rng.choice(len(colours), p=p / p.sum())
        palette.append(colours[pick])
        dist = np.minimum(dist, np.abs(colours - colours[pick]).sum(1))
    palette = np.array(palette)
    error = np.inf
    for _ in range(rounds):
        index, dist = nearest(colours, palette)
        new_error = (dist * weights).sum()
        if new_error >= error:
            break
        error = new_error
        palette = medians(colours, weights, index, palette)
    return error


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--restarts", type=int, default=4)
    parser.add_argument("--sizes", default="256,512,1024,1536")
    args = parser.parse_args()
    grid = cifar_grid().reshape(-1, 3).astype(np.int64)
    keys, weights = np.unique((grid[:, 0] << 16) | (grid[:, 1] << 8) | grid[:, 2],
                              return_counts=True)
    colours = np.stack([keys >> 16, (keys >> 8) & 255, keys & 255], 1)
    weights = weights.astype(np.float64)
    values = grid.size
    print(f"grid: {len(grid)} pixels, {len(colours)} distinct colours")
    rng = np.random.default_rng(0)
    for k in [int(s) for s in args.sizes.split(",")]:
        t = time.perf_counter()
        runs = [kmedians(colours, weights, k, rng) / values
                for _ in range(args.restarts if k == 256 else 1)]
        print(f"{k:5d} colours: k-medians MAE {min(runs):.3f} (runs: "
              f"{', '.join(f'{r:.3f}' for r in runs)}; {time.perf_counter() - t:.0f} s)")


if __name__ == "__main__":
    main()
