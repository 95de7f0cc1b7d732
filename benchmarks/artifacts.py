"""Seconds per volume for every artifact of `mriqa_lib.artifacts` at its default severity.

    python benchmarks/artifacts.py [--repeats 3] [--shapes 96x112x96 160x192x160]

Sizes: the embedded volumes (96x112x96, 2 mm) and paper 5's crop (160x192x160, 1 mm). The input is
a smooth synthetic head phantom (values do not affect timing). Prints the median of ``--repeats``
runs after one warm-up call per artifact (imports, FFT plans), and the machine's thread count.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def phantom(shape):
    g = np.meshgrid(*[np.linspace(-1, 1, n, dtype=np.float32) for n in shape], indexing="ij")
    r = np.sqrt((g[0] / 0.8) ** 2 + (g[1] / 0.9) ** 2 + (g[2] / 0.8) ** 2)
    return (500 * (r < 1) + 400 * (r < 0.85)).astype(np.float32)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--shapes", nargs="+", default=["96x112x96", "160x192x160"])
    p.add_argument("--artifacts", nargs="+", default=None, help="subset of artifact names")
    args = p.parse_args(argv)

    import torch

    from mriqa_lib.artifacts import REGISTRY, apply_artifact

    shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes]
    spacings = {shape: (2.0 if shape[0] <= 100 else 1.0) for shape in shapes}
    names = args.artifacts or list(REGISTRY)
    images = {shape: phantom(shape) for shape in shapes}
    print(
        f"cpu threads: os={os.cpu_count()} torch={torch.get_num_threads()}; median of {args.repeats} runs, "
        "default severity, seed 0"
    )
    header = f"| {'artifact':<20} | " + " | ".join(f"{'x'.join(map(str, s)) + ' (s)':>16}" for s in shapes) + " |"
    print(header)
    print("|" + "-" * 22 + "|" + "|".join("-" * 18 for _ in shapes) + "|")
    for name in names:
        cells = []
        for shape in shapes:
            x, sp = images[shape], spacings[shape]
            apply_artifact(name, x, seed=0, spacing=sp)  # warm-up
            times = []
            for r in range(args.repeats):
                t0 = time.perf_counter()
                apply_artifact(name, x, seed=r, spacing=sp)
                times.append(time.perf_counter() - t0)
            cells.append(f"{np.median(times):16.3f}")
        print(f"| {name:<20} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
