"""Seconds to score one 3-D volume with each trained method (CPU threads as in params.yaml).

Run after `dvc repro` from the repository root:  python benchmarks/score.py [VOLUME] [--repeat N]
Prints a table: method, load seconds, score seconds (median of N), the columns it returned.
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from mriqa_lib.config import load_settings
from mriqa_lib.io import load_nifti
from mriqa_lib.scoring import METHODS, load_scorers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("volume", nargs="?", default="data/embedded/sub-001/anat/sub-001_T1w.nii.gz")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--checkpoints", type=Path, default=Path("models"))
    args = parser.parse_args()
    settings = load_settings()
    torch.set_num_threads(settings.trainer.threads)
    volume = load_nifti(args.volume)
    print(f"volume {args.volume} {volume.shape}, torch threads {torch.get_num_threads()}")
    print(f"{'method':<9} {'load s':>7} {'score s':>8}  columns")
    total = 0.0
    for m in METHODS:
        t0 = time.perf_counter()
        run = load_scorers([m], args.checkpoints, settings, log=lambda s: None)
        load_s = time.perf_counter() - t0
        if m not in run.scorers:
            print(f"{m:<9} {'-':>7} {'-':>8}  unavailable: {run.unavailable.get(m)}")
            continue
        times, cols = [], {}
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            cols = run.scorers[m].score(volume, reference=volume)
            times.append(time.perf_counter() - t0)
        med = statistics.median(times)
        total += med
        print(f"{m:<9} {load_s:7.2f} {med:8.3f}  {', '.join(cols)}")
    print(f"{'all':<9} {'':>7} {total:8.3f}")


if __name__ == "__main__":
    main()
