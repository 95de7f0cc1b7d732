"""Replica of HCPEP as paper 5's authors read it: a Clinica ``t1-linear`` CAPS folder and the QC sheet.

``hcpep/HCPEP-Preproc/subjects/sub-<id>/ses-<n>/t1_linear/sub-<id>_ses-<n>_space-MNI152NLin2009cSym_res-1x1x1_T1w.nii.gz``
(HCPEP has one reconstruction: no ``rec`` entity) and ``hcpep/hcpep_scores.csv`` with the sheet's
columns ``Date, Subject ID, T1w, T1w comment, T2w, T2w comment, Center``: ``Subject ID`` is
``<id>_MR<n>`` (session n), ``T1w`` the rating 1-4 (some split, ``3/4``; some empty: not rated),
``Center`` the site (McLean, Indiana, BWH). One scan is rated twice (two dates; the latest counts).

HCPEP only adds scans to motion synthesis; paper 5's QC data are AMP SCZ, so ``build`` writes the
AMP SCZ replica too (:mod:`mriqa_lib.replicas.ampscz`, the same cohort) and points both at them.
The HCPEP scans are the cohort's volumes again under HCPEP ids (one session each).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mriqa_lib.io import load_nifti, read_tsv, save_nifti

from . import ampscz

METHOD = "bricout"
DESCRIPTION = (
    "HCPEP: Clinica t1-linear CAPS + hcpep_scores.csv (Date, Subject ID, T1w, T1w comment, Center); "
    "with the AMP SCZ replica"
)
CENTERS = ("McLean", "Indiana", "BWH")
CAPS_NAME = "HCPEP-Preproc"
SPACE_NAME = "space-MNI152NLin2009cSym_res-1x1x1_T1w.nii.gz"
#: (T1w rating, T1w comment) of the scans in turn: clean, split, ringing, motion, not rated
RATINGS = (("4", ""), ("3/4", "minor ringing"), ("4", "slightly grainy"), ("3", "some motion"), ("4", ""), ("", ""))

TINY = dict(ampscz.TINY)


def sheet(parts: pd.DataFrame, seed: int) -> pd.DataFrame:
    """The HCPEP QC sheet of the cohort's subjects (one session each, one rated twice)."""
    rng = np.random.default_rng(seed + 1)
    centers = {s: CENTERS[i % len(CENTERS)] for i, s in enumerate(sorted(parts["site"].astype(str).unique()))}
    rows = []
    for i, (pid, site) in enumerate(zip(parts["participant_id"], parts["site"].astype(str))):
        rating, comment = RATINGS[i % len(RATINGS)]
        day, month = int(rng.integers(1, 29)), int(rng.integers(1, 13))
        rows.append(
            {
                "Date": f"{day}/{month}/2019",
                "Subject ID": f"{4000 + 3 * i + 2}_MR1",
                "T1w": rating,
                "T1w comment": comment,
                "T2w": "4",
                "T2w comment": "",
                "Center": centers[site],
                "pid": pid,
            }
        )
    # the first scan rated again a year later: the latest rating (a clean 4) is the one read
    rows.insert(0, {**rows[0], "Date": rows[0]["Date"].replace("2019", "2018"), "T1w": "2", "T1w comment": "ringing"})
    return pd.DataFrame(rows)


def build(out: Path, cohort: Path, seed: int) -> dict[str, object]:
    """Write ``out/hcpep/`` (CAPS folder + hcpep_scores.csv) and the AMP SCZ replica; returns the
    bricout.data keys of both."""
    keys = ampscz.build(out, cohort, seed)
    parts = read_tsv(cohort / "participants.tsv", required=("participant_id", "site"))
    root = out / "hcpep"
    caps = root / CAPS_NAME
    table = sheet(parts, seed)
    for r in table.drop_duplicates("Subject ID").itertuples():
        sub, ses = r._2.split("_MR")  # "Subject ID"
        vol = load_nifti(cohort / r.pid / "anat" / f"{r.pid}_T1w.nii.gz")
        folder = caps / "subjects" / f"sub-{sub}" / f"ses-{ses}" / "t1_linear"
        folder.mkdir(parents=True, exist_ok=True)
        save_nifti(folder / f"sub-{sub}_ses-{ses}_{SPACE_NAME}", np.round(vol.data), vol.affine, dtype=np.int16)
    table.drop(columns="pid").to_csv(root / "hcpep_scores.csv", index=False)
    return {**keys, "bricout.data.hcpep_caps": str(caps), "bricout.data.hcpep_qc": str(root / "hcpep_scores.csv")}
