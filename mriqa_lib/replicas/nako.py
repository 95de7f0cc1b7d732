"""Replica of NAKO-IQA as paper 1's authors read it: ``<id>/dixon/dicom_3D_GRE_TRA_{bh,fb_deep}_W_COMPOSED.nii``.

One folder per volunteer (``Q<n>``, as the authors' paths name them) holding the composed water
image of the breath-hold scan (HQ) and of the deep free-breathing scan (LQ). The replica takes the
embedded cohort's held-out test subjects (never in the embedded training pool, as NAKO volunteers
are not in UK Biobank), gives them whole-body-Dixon-like voxels (1.4 x 1.4 x 3 mm; the anatomy is a
brain) and simulates the free-breathing scan with the respiratory-motion model of
:mod:`mriqa_lib.artifacts` (periodic displacement along the phase-encoding axis). The authors read
NAKO-IQA without a subject table, so none is written: every reference subject is then used. The
UK Biobank keys stay unset, so the embedded cohort trains the encoder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mriqa_lib.io import read_tsv, save_nifti

from .ukb import TINY as UKB_TINY
from .ukb import scan_matrix

METHOD = "ecker"
DESCRIPTION = "NAKO-IQA: <id>/dixon/dicom_3D_GRE_TRA_{bh,fb_deep}_W_COMPOSED.nii (breath-hold HQ, free-breathing LQ)"

#: voxel size (mm) of the replica's volumes: in-plane x, y and slice thickness
SPACING = (1.4, 1.4, 3.0)
#: free breathing: peak displacement (mm) and period (phase-encoding lines) of the simulated motion
AMPLITUDE_MM, PERIOD_LINES = 8.0, 12.0
STEMS = {"bh": "dicom_3D_GRE_TRA_bh_W_COMPOSED", "fb_deep": "dicom_3D_GRE_TRA_fb_deep_W_COMPOSED"}

TINY = dict(UKB_TINY)


def free_breathing(data: np.ndarray, seed: int) -> np.ndarray:
    """``data`` with simulated respiratory motion (phase encoding along y, all slices of a line together)."""
    from mriqa_lib.artifacts import apply_artifact

    out, _ = apply_artifact(
        "respiratory", data, severity=AMPLITUDE_MM, seed=seed, spacing=SPACING, period_lines=PERIOD_LINES, pe_axis=1
    )
    return out


def build(out: Path, cohort: Path, seed: int) -> dict[str, object]:
    """``out/nako/Q<n>/dixon/*.nii`` from the cohort's held-out test subjects; returns ecker.nako_dir."""
    parts = read_tsv(cohort / "participants.tsv", required=("participant_id", "split"))
    test = parts.loc[parts["split"].astype(str) == "test", "participant_id"].astype(str).tolist()
    affine = np.diag([*SPACING, 1.0])
    for i, pid in enumerate(test):
        data = np.clip(scan_matrix(cohort / pid / "anat" / f"{pid}_T1w.nii.gz"), 0, None)
        folder = out / "nako" / f"Q{i + 1}" / "dixon"
        save_nifti(folder / f"{STEMS['bh']}.nii", data, affine)
        save_nifti(folder / f"{STEMS['fb_deep']}.nii", free_breathing(data, seed * 1000 + i), affine)
    return {"ecker.nako_dir": str(out / "nako")}
