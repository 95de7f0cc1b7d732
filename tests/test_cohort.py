"""The embedded cohort: determinism, image/tissue alignment, participants.tsv vs files."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from mriqa_lib.data.cohort import build_cohort, random_warp, site_grid
from mriqa_lib.io import load_nifti, read_tsv


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_same_seed_same_bytes(tmp_path, tiny_cohort, tiny_cohort_params, monkeypatch):
    """The DVC stage `prepare` rebuilds the same cohort byte for byte, and its metrics are the summary."""
    from mriqa_lib.config import Settings
    from mriqa_lib.io import read_json
    from mriqa_lib.stages import prepare

    first, summary = tiny_cohort
    monkeypatch.chdir(tmp_path)
    prepare.run(Settings(cohort=tiny_cohort_params))
    assert _digest(first) == _digest(tmp_path / "data" / "embedded")
    metrics = read_json(tmp_path / "metrics" / "cohort.json")
    assert {k: v for k, v in metrics.items() if k != "seconds"} == {k: v for k, v in summary.items() if k != "seconds"}


def test_other_seed_other_images(tmp_path, tiny_cohort, tiny_cohort_params):
    first, _ = tiny_cohort
    other = tmp_path / "other"
    build_cohort(
        other, tiny_cohort_params.model_copy(update={"seed": 1, "n_subjects": 2}), progress=False, log=lambda s: None
    )
    a = load_nifti(first / "sub-001/anat/sub-001_T1w.nii.gz").data
    b = load_nifti(other / "sub-001/anat/sub-001_T1w.nii.gz").data
    assert a.shape == b.shape and not np.array_equal(a, b)


def test_subject_independent_of_cohort_size(tmp_path, tiny_cohort, tiny_cohort_params):
    first, _ = tiny_cohort
    small = tmp_path / "small"
    build_cohort(small, tiny_cohort_params.model_copy(update={"n_subjects": 2}), progress=False, log=lambda s: None)
    name = "sub-002/anat/sub-002_T1w.nii.gz"
    assert (first / name).read_bytes() == (small / name).read_bytes()


def test_tissue_order_in_every_subject(tiny_cohort):
    """Image and tissue maps are aligned: mean T1w in WM > GM > CSF in each subject."""
    out, summary = tiny_cohort
    frame = read_tsv(out / "participants.tsv")
    for pid in frame.participant_id:
        anat = out / pid / "anat"
        t1 = load_nifti(anat / f"{pid}_T1w.nii.gz").data
        means = {
            t: t1[load_nifti(anat / f"{pid}_label-{t}_probseg.nii.gz").data > 0.9].mean() for t in ("WM", "GM", "CSF")
        }
        assert means["WM"] > means["GM"] > means["CSF"], (pid, means)
    assert summary["wm_gt_gm_gt_csf_fraction"] == 1.0


def test_misaligned_maps_break_the_order(tiny_cohort):
    """The alignment check can fail: shifting the maps by a few voxels destroys the WM > GM contrast margin."""
    out, _ = tiny_cohort
    anat = out / "sub-001" / "anat"
    t1 = load_nifti(anat / "sub-001_T1w.nii.gz").data
    wm = load_nifti(anat / "sub-001_label-WM_probseg.nii.gz").data
    aligned = t1[wm > 0.9].mean()
    shifted = t1[np.roll(wm, 6, axis=0) > 0.9].mean()
    assert shifted < 0.9 * aligned


def test_participants_consistent_with_files(tiny_cohort, tiny_cohort_params):
    out, summary = tiny_cohort
    frame = read_tsv(out / "participants.tsv", required=("participant_id", "site", "split", "sex", "height", "weight"))
    on_disk = sorted(p.name for p in out.glob("sub-*"))
    assert sorted(frame.participant_id) == on_disk
    assert len(frame) == tiny_cohort_params.n_subjects == summary["n_subjects"]
    assert set(frame.split) <= {"train", "val", "test"}
    names = {s.name: s for s in tiny_cohort_params.sites}
    for row in frame.itertuples():
        vol = load_nifti(out / row.participant_id / "anat" / f"{row.participant_id}_T1w.nii.gz")
        np.testing.assert_allclose(vol.spacing, names[row.site].spacing, atol=1e-5)
        for t in ("GM", "WM", "CSF"):
            assert (out / row.participant_id / "anat" / f"{row.participant_id}_label-{t}_probseg.nii.gz").exists()


def test_head_size_within_range(tiny_cohort, tiny_cohort_params):
    out, _ = tiny_cohort
    frame = read_tsv(out / "participants.tsv")
    r = tiny_cohort_params.scale_range
    assert ((frame.head_scale >= 1 - r - 1e-9) & (frame.head_scale <= 1 + r + 1e-9)).all()


def test_warp_is_diffeomorphic():
    """Jacobian determinant of x + u(x) stays positive (no folding) for the default warp size."""
    rng = np.random.default_rng(0)
    spacing = np.array([2.0, 2.0, 2.0])
    shape = (48, 56, 48)
    u = random_warp(rng, shape, spacing, std_mm=3.0)
    grads = [np.gradient(u[i] / spacing[i], axis=j) * spacing[i] / spacing[j] for i in range(3) for j in range(3)]
    jac = np.stack(grads).reshape(3, 3, *shape) + np.eye(3)[:, :, None, None, None]
    det = np.linalg.det(np.moveaxis(jac, (0, 1), (-2, -1)))
    assert det.min() > 0
    assert np.abs(u).max() > 1.0  # it does deform


def test_site_grid_covers_reference_fov():
    aff, shape = site_grid((1.8, 1.8, 2.2))
    extent = np.array(shape) * np.array([1.8, 1.8, 2.2])
    np.testing.assert_allclose(extent, [192, 224, 192], atol=2.2)


def test_non_t1w_contrast_inverts_order(tmp_path, tiny_cohort_params):
    out = tmp_path / "t2"
    build_cohort(
        out,
        tiny_cohort_params.model_copy(update={"n_subjects": 1, "contrasts": ["T1w", "T2w"], "slices": 2}),
        progress=False,
        log=lambda s: None,
    )
    anat = out / "sub-001" / "anat"
    t2 = load_nifti(anat / "sub-001_T2w.nii.gz").data
    means = {
        t: t2[load_nifti(anat / f"sub-001_label-{t}_probseg.nii.gz").data > 0.9].mean() for t in ("WM", "GM", "CSF")
    }
    assert means["CSF"] > means["GM"] > means["WM"]
    slices = sorted((anat / "slices").glob("*.nii.gz"))
    assert len(slices) == 2 and load_nifti(slices[0], allow_2d=True).data.ndim == 2
