"""Seconds to prepare one whole-head 3-D scan and to score it with each trained method
(CPU threads as in params.yaml).

Run after `dvc repro` from the repository root:

    python benchmarks/score.py [VOLUME] [--repeat N] [--checkpoints DIR] [--no-prepare]

VOLUME defaults to Colin27 (Debian's mricron-data) when present, else the embedded sub-001.
Prints one row for the preparation chain (reorientation, brain extraction, registration; median
of N runs), one row per method scoring the prepared volume (load seconds, score seconds as the
median of N, the columns it returned), then the total per scan (preparation + every method).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from mriqa_lib.config import load_settings
from mriqa_lib.io import Volume, load_nifti
from mriqa_lib.methods import registry
from mriqa_lib.scoring import load_scorers

COLIN27 = Path("/usr/share/mricron/templates/ch2.nii.gz")
EMBEDDED = Path("data/embedded/sub-001/anat/sub-001_T1w.nii.gz")


def default_volume() -> Path:
    """Colin27 (a real whole-head 1 mm T1w) when installed, else the embedded sub-001."""
    return COLIN27 if COLIN27.exists() else EMBEDDED


def median_seconds(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """(median wall seconds of ``repeat`` calls of ``fn``, the last call's result)."""
    times, result = [], None
    for _ in range(max(1, repeat)):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def prepare(volume: Volume, settings: Any, repeat: int) -> tuple[Volume, float | None, str]:
    """Run the preparation chain ``repeat`` times; return (prepared volume, median seconds, detail).

    Without the chain in this checkout, or when it refuses the scan, the raw volume comes back
    with seconds None and the reason as the detail.
    """
    try:
        from mriqa_lib.prepare import PrepareError, prepare_scan
    except ImportError:
        return volume, None, "unavailable: no mriqa_lib.prepare in this checkout (raw volume scored)"
    params = getattr(settings, "preparation", None) or getattr(settings, "prepare", None)
    try:
        secs, prepared = median_seconds(lambda: prepare_scan(volume, params), repeat)
    except PrepareError as exc:
        return volume, None, f"refused: {exc} (raw volume scored)"
    rec = prepared.record
    keys = ("prep", "prep_brain_cm3", "prep_similarity", "prep_dice", "prep_scale")
    detail = ", ".join(f"{k.removeprefix('prep_')} {rec[k]}" for k in keys if k in rec)
    return prepared.volume, secs, f"{detail}; -> {prepared.volume.shape}"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "volume",
        nargs="?",
        type=Path,
        default=None,
        help=f"3-D T1w NIfTI (default {COLIN27} when present, else {EMBEDDED})",
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--checkpoints", type=Path, default=Path("models"))
    parser.add_argument("--no-prepare", action="store_true", help="score the volume as it is (no preparation chain)")
    args = parser.parse_args(argv)
    settings = load_settings()
    torch.set_num_threads(settings.trainer.threads)
    path = args.volume or default_volume()
    volume = load_nifti(path)
    print(f"volume {path} {volume.shape}, torch threads {torch.get_num_threads()}, repeat {args.repeat}")
    print(f"{'step':<9} {'load s':>7} {'run s':>8}  detail")
    total = 0.0
    if args.no_prepare:
        print(f"{'prepare':<9} {'-':>7} {'-':>8}  skipped (--no-prepare)")
    else:
        volume, secs, detail = prepare(volume, settings, args.repeat)
        print(f"{'prepare':<9} {'':>7} {'-' if secs is None else f'{secs:8.3f}':>8}  {detail}")
        total += secs or 0.0
    for m in registry.names():
        t0 = time.perf_counter()
        run = load_scorers([m], args.checkpoints, settings, log=lambda s: None)
        load_s = time.perf_counter() - t0
        if m not in run.scorers:
            print(f"{m:<9} {'-':>7} {'-':>8}  unavailable: {run.unavailable.get(m)}")
            continue
        scorer = run.scorers[m]
        med, cols = median_seconds(lambda s=scorer: s.score(volume, reference=volume), args.repeat)
        total += med
        print(f"{m:<9} {load_s:7.2f} {med:8.3f}  {', '.join(cols)}")
    print(f"{'total':<9} {'':>7} {total:8.3f}  per scan: preparation + every method's scoring (loading not counted)")


if __name__ == "__main__":
    main()
