"""Paper slice: SimCLR zero-shot HQ/LQ classification (Ecker et al., paper 1).

Registers the method (:mod:`mriqa_lib.methods.registry`); the scorer is imported only when loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mriqa_lib.claims import Claim
from mriqa_lib.methods.registry import Flag, MethodSpec, cell, register

from .params import EckerParams

NAME, PAPER = "ecker", "P1"


def load_scorer(model_dir: Path, settings: Any):
    """The `mriqa score` scorer of a trained ``models/ecker`` folder (see :mod:`.score`)."""
    from .score import load_scorer as load

    return load(model_dir, settings)


def calibrate(scorer, volumes, out_dir: Path, settings: Any) -> dict:
    """`mriqa calibrate` hook: a reference bank of the site's own scans (HQ) and their simulated LQ
    versions (see :mod:`.calibrate`)."""
    from .calibrate import calibrate as run

    return run(scorer, volumes, out_dir, settings)


def _is_lq(row: dict[str, Any]) -> bool | None:
    return None if cell(row, "ecker_class") is None else row["ecker_class"] == "LQ"


SPEC = register(
    MethodSpec(
        name=NAME,
        paper=PAPER,
        title="SimCLR zero-shot HQ/LQ classification (Ecker et al.)",
        params=EckerParams,
        load_scorer=load_scorer,
        calibrate=calibrate,
        badness="ecker_lq_margin",
        badness_sign=1.0,
        flag=Flag("ecker_lq_margin", 0.0, "LQ: more similar to the low-quality references (margin > 0)", _is_lq),
        stage_module="mriqa_lib.stages.ecker",
        notebook="01_ecker",
        claims=(
            Claim(NAME, PAPER, "accuracy, simulated motion", "motion_accuracy", ">=", 0.85),
            Claim(NAME, PAPER, "accuracy, simulated noise", "noise_accuracy", ">=", 0.9),
            Claim(NAME, PAPER, "accuracy, NAKO-like set", "nako_accuracy", ">=", 0.8),
            Claim(
                NAME,
                PAPER,
                "Spearman rho, motion magnitude vs similarity to LQ",
                "continuous_spearman_level_vs_sim_lq",
                ">=",
                0.8,
            ),
        ),
    )
)
