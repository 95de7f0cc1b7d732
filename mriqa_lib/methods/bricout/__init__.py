"""Paper slice: synthetic-motion SFCN pretraining and QC transfer (Bricout et al., paper 5).

Registers the method (:mod:`mriqa_lib.methods.registry`); the scorer is imported only when loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mriqa_lib.claims import Claim
from mriqa_lib.methods.registry import Flag, MethodSpec, cell, register

from .params import BricoutParams

NAME, PAPER = "bricout", "P5"


def load_scorer(model_dir: Path, settings: Any):
    """The `mriqa score` scorer of a trained ``models/bricout`` folder (see :mod:`.score`)."""
    from .score import load_scorer as load

    return load(model_dir, settings)


def _poor_or_fair(row: dict[str, Any]) -> bool | None:
    return None if cell(row, "bricout_qc_class") is None else int(row["bricout_qc_class"]) == 0


SPEC = register(
    MethodSpec(
        name=NAME,
        paper=PAPER,
        title="synthetic-motion SFCN pretraining and QC transfer (Bricout et al.)",
        params=BricoutParams,
        load_scorer=load_scorer,
        badness="bricout_motion_rms",
        badness_sign=1.0,
        flag=Flag("bricout_motion_rms", None, "predicted QC score 1/2 (poor or fair)", _poor_or_fair),
        motion_rms="bricout_motion_rms",
        stage_module="mriqa_lib.stages.bricout",
        badness_only=("bricout.seeds=[0]", "bricout.scratch.max_epochs=1"),  # the RMS is the pretrained SFCN's
        notebook="05_bricout",
        claims=(
            Claim(NAME, PAPER, "R^2, synthetic-motion test set", "synth_test_r2", ">=", 0.7),
            Claim(
                NAME,
                PAPER,
                "median balanced accuracy, transfer minus scratch",
                "transfer_bal_acc_median - scratch_bal_acc_median",
                ">=",
                0.0,
            ),
        ),
    )
)
