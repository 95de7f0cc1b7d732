"""`mriqa stage`: the DVC stage entry points (`mriqa stage prepare`, `mriqa stage METHOD STEP`)."""
from __future__ import annotations

import argparse
import importlib
from pathlib import Path

METHODS = ("ecker", "zuo", "shaw", "ssfd", "bricout")
STEPS = ("synthesize", "train", "evaluate")
SINGLE = ("prepare", "benchmark")  # stages without a step


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "stage", help="run one pipeline stage (what dvc.yaml calls)",
        description="Run one DVC stage with the settings of params.yaml. `prepare` builds the embedded "
        f"cohort; METHOD is one of {', '.join(METHODS)} and STEP one of {', '.join(STEPS)}. Outputs go to "
        "data/synthetic/METHOD, models/METHOD, results/METHOD and metrics/METHOD.json.",
    )
    p.add_argument("name", help="prepare, benchmark, or a method name")
    p.add_argument("step", nargs="?", default=None, help="synthesize, train or evaluate (methods only)")
    p.add_argument("--params", type=Path, default=Path("params.yaml"))
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mriqa_lib.config import ConfigError, load_settings

    settings = load_settings(args.params)
    if args.step is None and args.name in SINGLE:
        module = importlib.import_module(f"mriqa_lib.stages.{args.name}")
        module.run(settings)
        return 0
    if args.name not in METHODS or args.step not in STEPS:
        raise ConfigError(f"unknown stage '{args.name} {args.step}'; methods: {', '.join(METHODS)}; steps: {', '.join(STEPS)}")
    module = importlib.import_module(f"mriqa_lib.stages.{args.name}")
    getattr(module, args.step)(settings)
    return 0
