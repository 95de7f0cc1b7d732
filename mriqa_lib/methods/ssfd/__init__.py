"""Paper slice: SSFD self-supervised feature distance (Adamson et al., paper 4).

Registers the method (:mod:`mriqa_lib.methods.registry`); the scorer is imported only when loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mriqa_lib.claims import Claim
from mriqa_lib.methods.registry import Flag, MethodSpec, register

from .params import SsfdParams

NAME, PAPER = "ssfd", "P4"


def load_scorer(model_dir: Path, settings: Any):
    """The `mriqa score` scorer of a trained ``models/ssfd`` folder (see :mod:`.score`)."""
    from .score import load_scorer as load

    return load(model_dir, settings)


def _no_verdict(row: dict[str, Any]) -> None:
    return None  # a distance to the reference, with no threshold in the paper


SPEC = register(
    MethodSpec(
        name=NAME,
        paper=PAPER,
        title="self-supervised feature distance to a reference scan (Adamson et al.)",
        params=SsfdParams,
        load_scorer=load_scorer,
        badness="ssfd_distance",
        badness_sign=1.0,
        flag=Flag("ssfd_distance", None, "full-reference distance, no threshold", _no_verdict),
        full_reference=True,
        stage_module="mriqa_lib.stages.ssfd",
        notebook="04_ssfd",
        claims=(
            Claim(NAME, PAPER, "Spearman rho, SSFD vs blur strength", "rho_ssfd_strength_blur", ">=", 0.9),
            Claim(NAME, PAPER, "Spearman rho, SSFD vs noise strength", "rho_ssfd_strength_noise", ">=", 0.9),
            Claim(
                NAME, PAPER, "shift scores lower SSFD than blur and noise at equal SSIM", "shift_claim_held", "==", True
            ),
            Claim(NAME, PAPER, "SSFD-SSIM correlation rises with encoder depth", "layer_claim_held", "==", True),
        ),
    )
)
