"""Multi-cohort T1w adapter of paper 2 on tiny NIfTI files written here: cohort table, N4,
affine registration (SimpleITK), slicing; the ITK bridge keeps world geometry."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from mriqa_lib.data.multicohort import (
    n4_correct,
    orientation_slices,
    preprocess_t1w,
    read_cohort_table,
)
from mriqa_lib.io import MriqaInputError, Volume, save_nifti
from mriqa_lib.prepare.itk import sitk_to_volume, volume_to_sitk

SHAPE = (40, 44, 36)
SPACING = 3.0


def _phantom() -> Volume:
    """An asymmetric head-like phantom (ellipsoid + off-centre blobs) on a 3 mm RAS grid."""
    idx = np.stack(np.meshgrid(*[np.arange(n, dtype=float) for n in SHAPE], indexing="ij"))
    c = (np.array(SHAPE) - 1) / 2
    r = (idx - c[:, None, None, None]) / np.array([14, 17, 12])[:, None, None, None]
    head = (np.sum(r**2, 0) < 1).astype(np.float32) * 100
    blob1 = np.sum((idx - np.array([26, 28, 20])[:, None, None, None]) ** 2, 0) < 16
    blob2 = np.sum((idx - np.array([14, 16, 14])[:, None, None, None]) ** 2, 0) < 9
    data = head + 80 * blob1 - 50 * blob2
    data = ndimage.gaussian_filter(np.clip(data, 0, None), 1.0).astype(np.float32)
    affine = np.diag([SPACING, SPACING, SPACING, 1.0])
    affine[:3, 3] = -(np.array(SHAPE) - 1) / 2 * SPACING
    return Volume(data, affine)


def _rigid(deg: float, shift_mm: np.ndarray) -> np.ndarray:
    a = np.radians(deg)
    m = np.eye(4)
    m[:3, :3] = [[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]]
    m[:3, 3] = shift_mm
    return m


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def test_sitk_bridge_roundtrip_keeps_geometry():
    vol = _phantom()
    aff = vol.affine.copy()
    aff[0] *= -1  # LAS storage
    v2 = Volume(vol.data[::-1].copy(), aff)
    back = sitk_to_volume(volume_to_sitk(v2))
    np.testing.assert_allclose(back.affine, v2.affine, atol=1e-6)
    np.testing.assert_array_equal(back.data, v2.data)


def test_cohort_table_reads_and_validates(tmp_path):
    vol = _phantom()
    for name in ("a", "b"):
        save_nifti(tmp_path / "imgs" / f"{name}.nii.gz", vol.data, vol.affine)
    table = tmp_path / "cohort.tsv"
    table.write_text(
        "participant_id\tcohort\tpath\tsplit\trating\n"
        "a\tIXI\timgs/a.nii.gz\ttrain\t\nb\tOASIS3\timgs/b.nii.gz\ttest\tmedium\n"
    )
    frame = read_cohort_table(table)
    assert list(frame["cohort"]) == ["IXI", "OASIS3"]
    assert all(p.startswith(str(tmp_path)) for p in frame["path"])
    bad = tmp_path / "bad.tsv"
    bad.write_text("participant_id\tcohort\tpath\tsplit\na\tIXI\timgs/missing.nii.gz\ttrain\n")
    with pytest.raises(MriqaInputError, match="missing.nii.gz"):
        read_cohort_table(bad)
    bad.write_text("participant_id\tcohort\tpath\tsplit\na\tIXI\timgs/a.nii.gz\tholdout\n")
    with pytest.raises(MriqaInputError, match="split"):
        read_cohort_table(bad)
    bad.write_text("participant_id\tpath\na\timgs/a.nii.gz\n")
    with pytest.raises(MriqaInputError, match="cohort"):
        read_cohort_table(bad)


def test_registration_recovers_a_misaligned_scan():
    tpl = _phantom()
    # the subject is the template seen through a rigid motion, stored in LAS at 2.5 mm
    motion = _rigid(10.0, np.array([6.0, -5.0, 4.0]))
    aff = np.diag([-2.5, 2.5, 2.5, 1.0])
    shape = (48, 52, 44)
    aff[:3, 3] = [(shape[0] - 1) / 2 * 2.5, -(shape[1] - 1) / 2 * 2.5, -(shape[2] - 1) / 2 * 2.5]
    world_to_tpl = np.linalg.inv(tpl.affine) @ motion @ aff
    data = ndimage.affine_transform(tpl.data, world_to_tpl[:3, :3], world_to_tpl[:3, 3], output_shape=shape, order=1)
    subj = Volume(data.astype(np.float32), aff)
    resampled = preprocess_t1w(subj, tpl, n4=False, register=False)
    registered = preprocess_t1w(subj, tpl, n4=False, register=True)
    assert registered.data.shape == tpl.data.shape
    np.testing.assert_allclose(registered.affine, tpl.affine, atol=1e-6)
    before, after = _corr(resampled.data, tpl.data), _corr(registered.data, tpl.data)
    assert after > 0.95 and after > before + 0.05


def test_n4_flattens_a_bias_field():
    vol = _phantom()
    x = np.linspace(-1, 1, SHAPE[0])[:, None, None]
    field = np.exp(0.5 * x + 0 * vol.data)
    biased = Volume((vol.data * field).astype(np.float32), vol.affine)
    head = vol.data > 90  # the flat ellipsoid body (blobs excluded by intensity)
    head &= vol.data < 110
    cv = lambda d: float(d[head].std() / d[head].mean())  # noqa: E731
    corrected = n4_correct(biased, shrink=1, iterations=(30, 20))
    assert cv(corrected.data) < 0.6 * cv(biased.data)


def test_orientation_slices_pad_to_square():
    data = np.arange(6 * 8 * 4, dtype=np.float32).reshape(6, 8, 4)
    ax = orientation_slices(data, "axial", [1, 2], 10)
    assert ax.shape == (2, 10, 10)
    np.testing.assert_array_equal(ax[0, 2:8, 1:9], data[:, :, 1])
    sag = orientation_slices(data, "sagittal", [3], 6)
    np.testing.assert_array_equal(sag[0, :, 1:5], data[3, 1:7, :])  # y cropped 8 -> 6, z padded 4 -> 6
    with pytest.raises(ValueError):
        orientation_slices(data, "oblique", [0], 8)
