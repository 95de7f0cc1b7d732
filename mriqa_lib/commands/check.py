"""`mriqa check`: validate params.yaml (or a profile) and say what is wrong in one line."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "check",
        help="validate params.yaml",
        description="Validate a params file; exit 0 when valid, 2 with a one-line reason otherwise.",
    )
    p.add_argument("params", nargs="?", type=Path, default=Path("params.yaml"))
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mriqa_lib.config import load_settings

    settings = load_settings(args.params)
    print(
        f"{args.params}: valid ({len(settings.cohort.sites)} sites, {settings.cohort.n_subjects} subjects, "
        f"trainer on {settings.trainer.accelerator})"
    )
    return 0
