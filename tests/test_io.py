"""NIfTI validation and atomic writes."""

from __future__ import annotations

import gzip

import nibabel as nib
import numpy as np
import pytest

from mriqa_lib.io import MriqaInputError, atomic_path, load_nifti, save_nifti


def _image(shape=(8, 9, 10), seed=0):
    return np.random.default_rng(seed).random(shape).astype(np.float32)


def test_roundtrip(tmp_path):
    data, aff = _image(), np.diag([2.0, 2.0, 2.5, 1.0])
    save_nifti(tmp_path / "a.nii.gz", data, aff)
    vol = load_nifti(tmp_path / "a.nii.gz")
    np.testing.assert_array_equal(vol.data, data)
    np.testing.assert_allclose(vol.spacing, [2, 2, 2.5])


def test_truncated_file_names_file(tmp_path):
    path = tmp_path / "t.nii.gz"
    save_nifti(path, _image(), np.eye(4))
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(MriqaInputError, match="t.nii.gz"):
        load_nifti(path)


def test_corrupt_file_names_file(tmp_path):
    path = tmp_path / "c.nii.gz"
    path.write_bytes(gzip.compress(b"this is not a nifti header" * 20))
    with pytest.raises(MriqaInputError, match="c.nii.gz"):
        load_nifti(path)


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.full((4, 4, 4), np.nan, np.float32), "NaN or Inf"),
        (np.zeros((4, 4, 4), np.float32), "constant"),
        (np.zeros((4, 0, 4), np.float32), "empty"),
        (_image((6, 7)), "expected a 3-D"),
        (_image((3, 3, 3, 2)), "expected a 3-D"),
    ],
)
def test_bad_content(tmp_path, bad, message):
    path = tmp_path / "bad.nii"
    nib.save(nib.Nifti1Image(bad, np.eye(4)), str(path))
    with pytest.raises(MriqaInputError, match=message):
        load_nifti(path)


def test_inf_voxel(tmp_path):
    data = _image()
    data[1, 2, 3] = np.inf
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(tmp_path / "inf.nii"))
    with pytest.raises(MriqaInputError, match="1 of 720 voxels"):
        load_nifti(tmp_path / "inf.nii")


def test_4d_handling(tmp_path):
    nib.save(nib.Nifti1Image(_image((4, 5, 6, 1)), np.eye(4)), str(tmp_path / "one.nii"))
    assert load_nifti(tmp_path / "one.nii").data.shape == (4, 5, 6)
    nib.save(nib.Nifti1Image(_image((4, 5, 6, 2)), np.eye(4)), str(tmp_path / "two.nii"))
    assert load_nifti(tmp_path / "two.nii", allow_4d=True).data.shape == (4, 5, 6, 2)


def test_implausible_voxel_size(tmp_path):
    nib.save(nib.Nifti1Image(_image(), np.diag([100.0, 1.0, 1.0, 1.0])), str(tmp_path / "s.nii"))
    with pytest.raises(MriqaInputError, match="s.nii: implausible voxel size"):
        load_nifti(tmp_path / "s.nii")


def test_singular_affine_rejected():
    from mriqa_lib.io import _check_affine

    aff = np.eye(4)
    aff[2, 2] = 0
    with pytest.raises(MriqaInputError, match="x.nii: affine is singular"):
        _check_affine(aff, "x.nii")


def test_missing_file(tmp_path):
    with pytest.raises(MriqaInputError, match="not found"):
        load_nifti(tmp_path / "nope.nii.gz")


def test_atomic_write_keeps_previous_on_error(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("previous")
    with pytest.raises(RuntimeError):
        with atomic_path(path) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash mid-write")
    assert path.read_text() == "previous"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_atomic_writes_get_ordinary_permissions(tmp_path):
    """A report or table written atomically is readable as a plainly written file would be."""
    import os

    from mriqa_lib.io import atomic_path

    old = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "report.html") as tmp:
            tmp.write_text("x")
        (tmp_path / "plain.html").write_text("x")
    finally:
        os.umask(old)
    mode = (tmp_path / "report.html").stat().st_mode & 0o777
    assert mode == (tmp_path / "plain.html").stat().st_mode & 0o777 == 0o644


def test_atomic_dir_replaces_only_on_success(tmp_path):
    import os

    import pytest

    from mriqa_lib.io import atomic_dir

    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("previous")
    with pytest.raises(RuntimeError), atomic_dir(out) as tmp:
        (tmp / "half.txt").write_text("half")
        raise RuntimeError("failed half-way")
    assert [p.name for p in tmp_path.iterdir()] == ["out"] and (out / "old.txt").read_text() == "previous"
    with atomic_dir(out) as tmp:
        (tmp / "new.txt").write_text("new")
    assert [p.name for p in tmp_path.iterdir()] == ["out"] and [p.name for p in out.iterdir()] == ["new.txt"]
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o777 & ~umask
