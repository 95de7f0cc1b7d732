"""`mriqa stage`: the DVC stage entry points (`mriqa stage prepare`, `mriqa stage METHOD STEP`).

The methods and their steps come from the registry (:mod:`mriqa_lib.methods.registry`): STEP is a
function of the method's ``stage_module`` taking the settings.

Under a multi-process launch (DDP, ``srun``), only rank 0 writes: other ranks run ``train`` (they
take part in the training) with their outputs in a throwaway folder, and skip the other steps.
"""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path

# stages without a step: name -> module with run(settings)
SINGLE = {
    "prepare": "mriqa_lib.stages.prepare",
    "benchmark": "mriqa_lib.stages.benchmark",
    "generalisation": "mriqa_lib.stages.generalisation",
}


def _steps() -> tuple[str, ...]:
    """Every step some registered method has, in first-seen order."""
    from mriqa_lib.methods import registry

    return tuple(dict.fromkeys(step for spec in registry.methods().values() for step in spec.stages))


def add_parser(sub: argparse._SubParsersAction) -> None:
    from mriqa_lib.methods import registry

    names, steps = registry.names(), _steps()
    p = sub.add_parser(
        "stage",
        help="run one pipeline stage (what dvc.yaml calls)",
        description="Run one DVC stage with the settings of params.yaml. `prepare` builds the embedded "
        f"cohort; METHOD is one of {', '.join(names)} and STEP one of {', '.join(steps)}. Outputs go to "
        "data/synthetic/METHOD, models/METHOD, results/METHOD and metrics/METHOD.json.",
    )
    p.add_argument("name", help=f"{', '.join(SINGLE)}, or a method name")
    p.add_argument("step", nargs="?", default=None, help=f"{', '.join(steps[:-1])} or {steps[-1]} (methods only)")
    p.add_argument("--params", type=Path, default=Path("params.yaml"))
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override one setting for this run only, e.g. --set trainer.devices=4 (repeatable)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mriqa_lib.config import ConfigError, load_settings
    from mriqa_lib.methods import registry
    from mriqa_lib.training import is_rank_zero, scratch_outputs

    settings = load_settings(args.params, args.overrides)
    if args.step is None and args.name in SINGLE:
        if is_rank_zero():  # neither stage trains: other processes of a launch have nothing to do
            importlib.import_module(SINGLE[args.name]).run(settings)
        return 0
    spec = registry.methods().get(args.name)
    if spec is None or args.step not in spec.stages:
        raise ConfigError(
            f"unknown stage '{args.name} {args.step}'; methods: {', '.join(registry.names())}; "
            f"steps: {', '.join(spec.stages if spec else _steps())}"
        )
    step = getattr(importlib.import_module(spec.stage_module), args.step)
    if is_rank_zero():
        step(settings)
    elif args.step == "train":  # every DDP process trains; only rank 0's outputs are kept
        with scratch_outputs():
            step(settings)
    else:
        print(f"{args.name} {args.step}: not rank 0 of a multi-process launch; rank 0 runs this step")
    return 0
