"""Replica of paper 2's public cohorts as downloaded: the IXI-T1 tarball unpacked and OASIS-3 in BIDS.

Real downloads are native-space scans: the replica moves each embedded volume into a scanner-like
frame (axes permuted to a sagittal acquisition, origin off the brain centre), so that N4 and the
affine registration of paper 2's preprocessing have something to undo. IXI's three hospitals (Guys,
HH, IOP) stand for three embedded sites; one OASIS-3 subject has two sessions.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mriqa_lib.io import Volume, load_nifti, read_tsv, save_nifti

METHOD = "zuo"
DESCRIPTION = "IXI-T1 (IXI<nnn>-<hospital>-<nnnn>-T1.nii.gz) + OASIS-3 BIDS (sub-OAS3*/ses-d*/anat), native space"

IXI_HOSPITALS = ("Guys", "HH", "IOP")

TINY = {
    "zuo.template_spacing": 4.0,
    "zuo.slice_size": 56,
    "zuo.band": 8,
    "zuo.n_centre_slices": 4,
    "zuo.width": 4,
    "zuo.batch_volumes": 2,
    "zuo.n_negatives_volume": 2,
    "zuo.n_negatives_simulated": 2,
    "zuo.steps": 3,
    "zuo.flow_transforms": 2,
    "zuo.flow_hidden": [8],
    "zuo.flow_steps": 10,
    "zuo.rated_variants": 3,
    "zuo.n4": True,  # the paper's preprocessing, which native-space downloads need
    "zuo.registration": True,
    "trainer.threads": 1,
}


def scanner_frame(volume: Volume, shift_mm: np.ndarray) -> Volume:
    """The same head in a sagittal scanner frame: voxel axes (y, z, x) -> stored (x, y, z) order,
    and the world origin moved by ``shift_mm`` (a scanner's isocentre is not the brain's centre)."""
    data = np.transpose(volume.data, (1, 2, 0))[::-1]  # first stored axis runs anterior -> posterior
    perm = volume.affine[:, [1, 2, 0, 3]].copy()
    perm[:3, 3] += perm[:3, 0] * (data.shape[0] - 1)  # the flip along the first axis
    perm[:3, 0] *= -1
    perm[:3, 3] += shift_mm
    return Volume(np.ascontiguousarray(data), perm, None)


def build(out: Path, cohort: Path, seed: int) -> dict[str, object]:
    """IXI-T1/ and OASIS3/ under ``out`` from the cohort's T1w volumes (first 2/3 IXI, rest OASIS-3)."""
    rng = np.random.default_rng(seed)
    parts = read_tsv(cohort / "participants.tsv", required=("participant_id", "site"))
    ids = parts["participant_id"].astype(str).tolist()
    sites = sorted(parts["site"].astype(str).unique())
    n_ixi = (2 * len(ids)) // 3
    for i, pid in enumerate(ids):
        volume = load_nifti(cohort / pid / "anat" / f"{pid}_T1w.nii.gz")
        moved = scanner_frame(volume, rng.uniform(-15.0, 15.0, 3))
        if i < n_ixi:
            site = parts["site"].iloc[i]
            hospital = IXI_HOSPITALS[sites.index(site) % len(IXI_HOSPITALS)]
            path = out / "IXI-T1" / f"IXI{i + 2:03d}-{hospital}-{1000 + 7 * i:04d}-T1.nii.gz"
        else:
            sub = f"sub-OAS3{i:04d}"
            sessions = ("d0100", "d0900") if i == n_ixi else ("d0100",)  # a returning subject
            for ses in sessions[1:]:
                later = out / "OASIS3" / sub / f"ses-{ses}" / "anat" / f"{sub}_ses-{ses}_T1w.nii.gz"
                moved_later = scanner_frame(volume, rng.uniform(-15.0, 15.0, 3))
                later.parent.mkdir(parents=True, exist_ok=True)
                save_nifti(later, moved_later.data, moved_later.affine)
            path = out / "OASIS3" / sub / f"ses-{sessions[0]}" / "anat" / f"{sub}_ses-{sessions[0]}_T1w.nii.gz"
        path.parent.mkdir(parents=True, exist_ok=True)
        save_nifti(path, moved.data, moved.affine)
    return {"zuo.cohort_dirs": {"IXI": str(out / "IXI-T1"), "OASIS3": str(out / "OASIS3")}}
