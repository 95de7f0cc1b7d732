"""The real-scan preparation chain against independent truth.

A "scan" is the template brain itself moved by a known rigid transform and resampled onto an
oblique 1.5 mm grid, so the registration must find the inverse of what was applied, and the brain
volume must match the template's own mask. Inputs that are not a head must be refused with a reason.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial.transform import Rotation

from mriqa_lib.data.preprocess import resample_to
from mriqa_lib.data.template import load_template
from mriqa_lib.io import Volume, load_nifti, save_nifti
from mriqa_lib.prepare import PreparationParams, PrepareError, canonical, prepare_scan
from mriqa_lib.prepare.qc import cut_area_cm2

P = PreparationParams()


def _moved_template(degrees=(12.0, -6.0, 8.0), shift=(6.0, -15.0, 20.0), spacing=1.5) -> tuple[Volume, np.ndarray]:
    """The template brain seen in a scanner frame: world point x_scan = M x_template. Returns (volume, M)."""
    tpl = load_template()
    move = np.eye(4)
    move[:3, :3] = Rotation.from_euler("xyz", degrees, degrees=True).as_matrix()
    move[:3, 3] = shift
    shape = (130, 150, 130)
    # an LPS-ordered grid (flipped x and y), as DICOM converters often write
    grid = np.diag([-spacing, -spacing, spacing, 1.0])
    grid[:3, 3] = (
        move[:3, :3] @ np.array([0.0, -18.0, 15.0]) + move[:3, 3] + [spacing * 65, spacing * 75, -spacing * 65]
    )
    # the scan's voxel -> template world: inverse move after the scan's own voxel -> scan world
    data = resample_to(tpl.t1 * tpl.mask * 1000.0, tpl.affine, np.linalg.inv(move) @ grid, shape)
    return Volume(data, grid), move


@pytest.fixture(scope="module")
def moved():
    vol, move = _moved_template()
    return vol, move, prepare_scan(vol, P)


def test_registration_recovers_the_known_transform(moved):
    vol, move, prepared = moved
    rec = prepared.record
    assert rec["prep"] == "registered"
    matrix = np.array([[float(v) for v in row.split()] for row in rec["prep_transform"].split(";")])
    # template point -> scan point: the rigid move that made the scan
    assert np.allclose(matrix[:, :3], move[:3, :3], atol=0.03)
    # displacement of points on the brain (radius ~70 mm) below 2 mm
    pts = np.array([[70, 0, 0], [0, 70, 0], [0, 0, 70], [-70, -20, 10]], float)
    err = (pts @ matrix[:, :3].T + matrix[:, 3]) - (pts @ move[:3, :3].T + move[:3, 3])
    assert np.abs(err).max() < 2.0
    assert rec["prep_dice"] > 0.9 and rec["prep_similarity"] > 0.9 and abs(rec["prep_scale"] - 1) < 0.03


def test_brain_volume_matches_the_template_mask(moved):
    tpl = load_template()
    truth = tpl.mask.sum() * abs(np.linalg.det(tpl.affine[:3, :3])) / 1000.0
    assert moved[2].record["prep_brain_cm3"] == pytest.approx(truth, rel=0.1)


def test_prepared_volume_is_on_the_reference_grid_and_brain_only(moved):
    from mriqa_lib.data.template import REF_AFFINE, REF_SHAPE

    out = moved[2].volume
    assert out.shape == REF_SHAPE and np.allclose(out.affine, REF_AFFINE)
    tpl = load_template()
    mask = resample_to(tpl.mask, tpl.affine, REF_AFFINE, REF_SHAPE) > 0.5
    assert np.corrcoef(out.data[mask], resample_to(tpl.t1, tpl.affine, REF_AFFINE, REF_SHAPE)[mask])[0, 1] > 0.9


def test_embedded_scan_passes_through_unchanged(tiny_cohort):
    root, _ = tiny_cohort
    path = sorted(root.glob("sub-*/anat/*_T1w.nii.gz"))[0]
    vol = load_nifti(path)
    prepared = prepare_scan(vol, P)
    assert prepared.record["prep"] == "reference space"
    assert prepared.volume is vol and prepared.mask is None


def test_canonical_reorders_axes_without_resampling():
    data = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    lps = np.diag([-2.0, -2.0, 2.0, 1.0])
    out = canonical(Volume(data, lps))
    assert np.array_equal(out.data, data[::-1, ::-1, :])
    # the same world point holds the same value
    ijk = np.array([1, 2, 3, 1.0])
    world = lps @ ijk
    back = np.linalg.inv(out.affine) @ world
    assert out.data[tuple(back[:3].round().astype(int))] == data[1, 2, 3]


def test_cut_area_counts_mask_on_each_face():
    mask = np.zeros((10, 10, 10), bool)
    mask[2:8, 2:8, 5:] = True  # touches the superior face with 6 x 6 voxels
    area = cut_area_cm2(mask, np.array([2.0, 2.0, 2.0]))
    assert area["superior"] == pytest.approx(36 * 4 / 100)
    assert sum(v for k, v in area.items() if k != "superior") == 0


def test_neighbour_correlation_of_smooth_and_random_images():
    from scipy import ndimage

    from mriqa_lib.prepare.qc import neighbour_correlation

    noise = np.random.default_rng(0).normal(size=(40, 40, 40))
    assert abs(neighbour_correlation(noise)) < 0.05
    # smoothing white noise by a Gaussian of sigma s gives neighbour correlation exp(-1 / (4 s^2))
    assert neighbour_correlation(ndimage.gaussian_filter(noise, 3.0, mode="wrap")) == pytest.approx(
        np.exp(-1 / 36), abs=0.01
    )


def _refused(vol: Volume) -> str:
    with pytest.raises(PrepareError) as info:
        prepare_scan(vol, P)
    assert info.value.record["prep"] == "failed"
    return str(info.value)


def test_refuses_random_numbers_in_a_tiny_volume():
    vol = Volume(np.random.default_rng(0).random((4, 4, 4)).astype(np.float32), np.eye(4))
    assert "not a head" in _refused(vol) and "field of view" in _refused(vol)


def test_refuses_a_volume_smaller_than_a_brain():
    vol, _ = _moved_template(spacing=0.5)  # the same voxels at 0.5 mm: a 65 mm field of view
    assert "field of view" in _refused(vol)


def test_refuses_a_large_random_volume():
    vol = Volume(np.random.default_rng(1).random((120, 120, 120)).astype(np.float32), np.diag([1.5, 1.5, 1.5, 1]))
    assert "not a head: no spatial structure" in _refused(vol)


def test_refuses_a_field_of_view_that_cuts_the_brain():
    vol, _ = _moved_template(degrees=(0, 0, 0), shift=(0, 0, 0))
    cut = Volume(vol.data[:, :, :-40].copy(), vol.affine)  # top 60 mm of the field of view gone
    assert "cuts the brain on the superior side" in _refused(cut)


def test_refuses_a_ball_that_is_not_a_brain():
    x, y, z = np.meshgrid(*[np.linspace(-1, 1, 100)] * 3, indexing="ij")
    ball = ((x**2 + y**2 + z**2) < 0.7).astype(np.float32) * 100
    assert "registration to the template did not converge" in _refused(Volume(ball, np.diag([1.5, 1.5, 1.5, 1])))


def test_score_gives_error_rows_naming_the_reason(tmp_path):
    from mriqa_lib.scoring import InputItem, ScoreRun, score_inputs

    class Constant:
        def score(self, volume, reference=None):
            return {"bricout_motion_rms": 1.0}

    save_nifti(tmp_path / "in" / "tiny.nii.gz", np.random.default_rng(0).random((8, 8, 8)), np.eye(4))
    frame = score_inputs(
        [InputItem(tmp_path / "in" / "tiny.nii.gz")],
        ScoreRun(scorers={"bricout": Constant()}),
        tmp_path / "out",
        progress=False,
        prepare=P,
    )
    row = frame.iloc[0]
    assert row["error"].startswith("preparation: not a head") and row["prep"] == "failed"
    assert "bricout_motion_rms" not in frame or np.isnan(row["bricout_motion_rms"])


def test_extra_blur_takes_a_gaussian_profile_to_the_target_fwhm():
    """A Gaussian of FWHM c blurred by extra_blur_mm(t, c) is a Gaussian of FWHM t: variances add, and
    a Gaussian's FWHM is sqrt(8 ln 2) = 2.3548 of its sigma (closed form); nothing when already t."""
    from mriqa_lib.data.preprocess import extra_blur_mm

    step, current, target = 0.05, 2.0, 5.0
    x = np.arange(-400, 401) * step
    profile = np.exp(-0.5 * (x / (current / 2.3548200450309493)) ** 2)
    out = ndimage.gaussian_filter1d(profile, extra_blur_mm(target, current) / step, mode="constant")
    half = x[out >= out.max() / 2]
    assert abs((half[-1] - half[0]) - target) < 2 * step
    assert extra_blur_mm(2.0, 3.0) == 0.0 and extra_blur_mm(2.0, 2.0) == 0.0


def test_zero_background_keeps_the_brain_and_its_dark_holes_and_clears_the_noise_floor():
    from mriqa_lib.data.preprocess import zero_background

    rng = np.random.default_rng(1)
    zz, yy, xx = np.meshgrid(*(np.arange(48.0),) * 3, indexing="ij")
    r = np.sqrt((zz - 24) ** 2 + (yy - 24) ** 2 + (xx - 24) ** 2)
    brain = np.where(r < 16, 1.0, 0.0) * np.where(r < 5, 0.15, 1.0)  # a dark ventricle in the middle
    noisy = (brain + np.abs(rng.normal(0, 0.08, brain.shape))).astype(np.float32)
    out = zero_background(noisy, voxel_mm=2.0)
    assert out[r > 20].max() == 0  # the noise floor away from the brain
    np.testing.assert_array_equal(out[r < 14], noisy[r < 14])  # the brain, ventricle included
    extracted = (noisy * (r < 16)).astype(np.float32)  # already brain-extracted: left as it is
    np.testing.assert_array_equal(zero_background(extracted, voxel_mm=2.0)[r < 15], extracted[r < 15])
    assert not zero_background(np.ones((8, 8, 8), np.float32), 2.0).any()  # no foreground in a constant image
