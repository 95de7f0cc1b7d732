"""Paper slice: contrastive artifact latent + RealNVP density (Zuo et al., paper 2).

Registers the method (:mod:`mriqa_lib.methods.registry`); the scorer is imported only when loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mriqa_lib.claims import Claim
from mriqa_lib.methods.registry import Flag, MethodSpec, cell, register

from .params import ZuoParams

NAME, PAPER = "zuo", "P2"


def load_scorer(model_dir: Path, settings: Any):
    """The `mriqa score` scorer of a trained ``models/zuo`` folder (see :mod:`.score`)."""
    from .score import load_scorer as load

    return load(model_dir, settings)


def calibrate(scorer, volumes, out_dir: Path, settings: Any) -> dict:
    """`mriqa calibrate` hook: density and tau thresholds refitted on the site's latents (see :mod:`.calibrate`)."""
    from .calibrate import calibrate as run

    return run(scorer, volumes, out_dir, settings)


def _below_tau5(row: dict[str, Any]) -> bool | None:
    return None if cell(row, "zuo_flag5") is None else str(row["zuo_flag5"]) in ("True", "true", "1")


SPEC = register(
    MethodSpec(
        name=NAME,
        paper=PAPER,
        title="contrastive artifact latent and RealNVP density (Zuo et al.)",
        params=ZuoParams,
        load_scorer=load_scorer,
        calibrate=calibrate,
        badness="zuo_logdensity",
        badness_sign=-1.0,
        flag=Flag("zuo_logdensity", "zuo_threshold5", "log-density below the 5 % tau threshold", _below_tau5),
        stage_module="mriqa_lib.stages.zuo",
        notebook="02_zuo",
        claims=(
            Claim(NAME, PAPER, "sensitivity at tau 5 %", "sensitivity_tau5", ">=", 0.8),
            Claim(NAME, PAPER, "specificity at tau 5 %", "specificity_tau5", ">=", 0.85),
            Claim(
                NAME, PAPER, "example A above, B-H below the 5 % threshold", "examples_all_as_expected_tau5", "==", True
            ),
        ),
    )
)
