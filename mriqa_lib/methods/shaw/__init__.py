"""Paper slice: heteroscedastic reconstruction uncertainty (Shaw et al., paper 3).

Registers the method (:mod:`mriqa_lib.methods.registry`); the scorer is imported only when loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mriqa_lib.claims import Claim
from mriqa_lib.methods.registry import Flag, MethodSpec, register

from .params import ShawParams

NAME, PAPER = "shaw", "P3"


def load_scorer(model_dir: Path, settings: Any):
    """The `mriqa score` scorer of a trained ``models/shaw`` folder (see :mod:`.score`)."""
    from .score import load_scorer as load

    return load(model_dir, settings)


def _no_verdict(row: dict[str, Any]) -> None:
    return None  # a threshold needs a site's own clean scans (`mriqa calibrate`)


SPEC = register(
    MethodSpec(
        name=NAME,
        paper=PAPER,
        title="heteroscedastic reconstruction uncertainty (Shaw et al.)",
        params=ShawParams,
        load_scorer=load_scorer,
        badness="shaw_total_sigma",
        badness_sign=1.0,
        flag=Flag("shaw_total_sigma", None, "no threshold without a site's clean scans", _no_verdict),
        map_column="shaw_sigma_map",
        map_label="uncertainty \u03c3",
        stage_module="mriqa_lib.stages.shaw",
        badness_only=("shaw.multitask_iterations=1",),  # shaw_total_sigma is the reconstruction model's
        notebook="03_shaw",
        claims=(
            Claim(NAME, PAPER, "mean R^2, sigma vs reconstruction error", "exp1_r2_mean", ">=", 0.8),
            Claim(NAME, PAPER, "sigma rises with the error (smallest slope)", "exp1_slope_min", ">", 0.0),
            Claim(
                NAME,
                PAPER,
                "fraction of pairs, artefact scan more uncertain",
                "exp2_frac_artefact_above_clean",
                ">=",
                0.9,
            ),
            Claim(
                NAME,
                PAPER,
                "regional noise: recon sigma rise minus seg sigma rise",
                "exp3_recon_sigma_rise - exp3_seg_sigma_rise",
                ">",
                0.0,
            ),
        ),
    )
)
