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


def test_sharpening_keeps_the_brain_and_each_voxels_tissue():
    """Raising the tissue probabilities to a power: exponent 1 is the identity; otherwise the
    brain's partial volume (the sum) and each voxel's most likely tissue stay, the most likely
    tissue's share grows, and a large exponent tends to hard labels times the brain's outline."""
    from mriqa_lib.data.cohort import sharpen_tissues

    rng = np.random.default_rng(0)
    raw = rng.dirichlet([1.0, 1.0, 1.0, 1.0], size=500).T  # background, GM, WM, CSF
    gm, wm, csf = raw[1], raw[2], raw[3]
    assert all(a is b for a, b in zip(sharpen_tissues(gm, wm, csf, 1.0), (gm, wm, csf)))
    inside = gm + wm + csf
    before = np.stack([gm, wm, csf])
    for exponent in (2.0, 5.0):
        after = np.stack(sharpen_tissues(gm, wm, csf, exponent))
        np.testing.assert_allclose(after.sum(0), inside, rtol=1e-5)
        assert (after.argmax(0) == before.argmax(0)).all()
        assert (after.max(0) / inside >= before.max(0) / inside - 1e-6).all()
    hard = np.stack(sharpen_tissues(gm, wm, csf, 200.0))
    onehot = np.eye(3)[before.argmax(0)].T * inside
    clear = np.sort(before, 0)[-1] > 1.2 * np.sort(before, 0)[-2]  # a clear winner among the tissues
    np.testing.assert_allclose(hard[:, clear], onehot[:, clear], atol=1e-3)


def test_randomisation_ranges_are_realised_and_leave_the_other_draws(tiny_cohort_params):
    """Per-subject sharpness and noise factor lie in their ranges; widening them changes nothing
    else a subject draws (pose, warp, bias field, intensities), so ranges of 1 reproduce the cohort
    as it was before them."""
    from mriqa_lib.data.cohort import make_subject

    site = tiny_cohort_params.sites[0]
    narrow = tiny_cohort_params.model_copy(update={"tissue_sharpness": (1.0, 1.0), "noise_scale": (1.0, 1.0)})
    wide = tiny_cohort_params.model_copy(update={"tissue_sharpness": (2.0, 4.0), "noise_scale": (0.5, 0.8)})
    a, b = make_subject(0, site, narrow)["realised"], make_subject(0, site, wide)["realised"]
    assert a["tissue_sharpness"] == 1.0 and 2.0 <= b["tissue_sharpness"] <= 4.0
    assert np.isclose(a["noise_sigma"], site.noise * site.wm)
    assert 0.5 <= b["noise_sigma"] / (site.noise * site.wm) <= 0.8
    for key in ("rotation_deg", "translation_mm", "bias_coefficients", "max_warp_mm", "tissue_intensity_wm_gm_csf"):
        np.testing.assert_array_equal(a[key], b[key])


def test_thick_slices_blur_one_axis_by_the_missing_width():
    """A point seen through slices t mm thick on a grid of s mm: along that axis a Gaussian of
    FWHM sqrt(t^2 - s^2) (variance closed form), no other axis touched, mass kept; slices no
    thicker than the voxel change nothing."""
    from mriqa_lib.data.cohort import thick_slices

    point = np.zeros((9, 41, 9), np.float32)
    point[4, 20, 4] = 1.0
    spacing = (2.0, 2.0, 2.0)
    assert thick_slices((point,), spacing, 1, 2.0)[0] is point
    (out,) = thick_slices((point,), spacing, 1, 5.0)
    profile = out[4, :, 4]
    assert np.isclose(out.sum(), 1.0, atol=1e-4) and np.isclose(profile.sum(), out.sum())
    x = (np.arange(41) - 20) * spacing[1]
    variance = float((profile * x**2).sum() / profile.sum())
    want = (np.sqrt(5.0**2 - 2.0**2) / 2.355) ** 2
    assert abs(variance - want) / want < 0.02


def test_bad_randomisation_range_names_the_key():
    import pytest
    from pydantic import ValidationError

    from mriqa_lib.config import CohortParams

    for key, value in (("noise_scale", (0.0, 1.0)), ("slice_thickness_mm", (3.0, 2.0)), ("tissue_sharpness", (2, 30))):
        with pytest.raises(ValidationError, match=key):
            CohortParams(**{key: value})
    assert CohortParams(slice_thickness_mm=(0.0, 0.0)).slice_thickness_mm == (0.0, 0.0)
