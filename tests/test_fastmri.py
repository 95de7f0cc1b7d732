"""fastMRI HDF5 adapter: writer/reader round trip, header, RSS, masks, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from mriqa_lib.artifacts.kspace import fft2c, simulate_multicoil
from mriqa_lib.data.fastmri import (
    centre_crop,
    ismrmrd_header,
    jsense_reconstruction,
    parse_header,
    read_fastmri,
    rss_reconstruction,
    undersample_kspace,
    write_fastmri,
)
from mriqa_lib.io import MriqaInputError


def _kspace(rng, shape):
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)


def test_multicoil_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    k = _kspace(rng, (3, 4, 16, 20))
    target = rng.random((3, 12, 10)).astype(np.float32)
    header = ismrmrd_header((16, 20), (12, 10), n_coils=4)
    path = write_fastmri(tmp_path / "a.h5", k, target, header, attrs={"acquisition": "CORPD_FBK", "patient_id": "p1"})
    f = read_fastmri(path)
    assert f.multicoil and f.kspace.shape == (3, 4, 16, 20)
    np.testing.assert_array_equal(f.kspace, k)
    np.testing.assert_array_equal(f.target, target)
    assert f.target_key == "reconstruction_rss"
    assert f.encoded == (16, 20) and f.recon == (12, 10)
    assert f.attrs["acquisition"] == "CORPD_FBK" and f.attrs["patient_id"] == "p1"
    assert f.attrs["max"] == pytest.approx(float(target.max()))
    assert rss_reconstruction(f.kspace, f.recon).shape == (3, 12, 10)
    # centre slices only
    assert read_fastmri(path, max_slices=1).kspace.shape[0] == 1


def test_single_coil_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    k = _kspace(rng, (2, 8, 10))
    target = rng.random((2, 8, 10)).astype(np.float32)
    f = read_fastmri(write_fastmri(tmp_path / "s.h5", k, target))
    assert not f.multicoil and f.kspace.shape == (2, 1, 8, 10)
    np.testing.assert_array_equal(f.kspace[:, 0], k)
    assert f.target_key == "reconstruction_esc"
    assert f.recon == (8, 10)


def test_rss_of_simulated_coils_is_magnitude():
    rng = np.random.default_rng(2)
    x = rng.random((24, 28)).astype(np.float32)
    k = fft2c(simulate_multicoil(x, n_coils=6, seed=3))
    np.testing.assert_allclose(rss_reconstruction(k), x, atol=1e-5)


def test_header_parse_and_errors(tmp_path):
    assert parse_header(ismrmrd_header((640, 368), (320, 320))) == {"encoded": (640, 368), "recon": (320, 320)}
    with pytest.raises(MriqaInputError, match="bad.h5"):
        parse_header(b"<notxml", "bad.h5")
    (tmp_path / "junk.h5").write_text("not hdf5")
    with pytest.raises(MriqaInputError, match="junk.h5"):
        read_fastmri(tmp_path / "junk.h5")
    with pytest.raises(MriqaInputError, match="file not found"):
        read_fastmri(tmp_path / "missing.h5")
    import h5py

    with h5py.File(tmp_path / "nok.h5", "w") as f:
        f.create_dataset("x", data=np.zeros(3))
    with pytest.raises(MriqaInputError, match="no 'kspace'"):
        read_fastmri(tmp_path / "nok.h5")


def test_equispaced_4x_mask_with_centre_fraction():
    k = np.ones((1, 2, 8, 112), np.complex64)
    under, mask = undersample_kspace(k, 4.0, 0.08, "equispaced", seed=0)
    n_centre = int(round(112 * 0.08))
    c0 = (112 - n_centre + 1) // 2
    assert mask[c0 : c0 + n_centre].all()
    assert abs(112 / mask.sum() - 4.0) < 0.5
    np.testing.assert_array_equal(under[0, 0, 0] != 0, mask)


def test_centre_crop_and_pad():
    x = np.arange(6 * 8, dtype=float).reshape(6, 8)
    np.testing.assert_array_equal(centre_crop(x, (2, 4)), x[2:4, 2:6])
    assert centre_crop(x, (8, 8)).shape == (8, 8)


def test_jsense_needs_sigpy_or_runs():
    rng = np.random.default_rng(4)
    x = np.zeros((32, 32), np.float32)
    x[8:24, 8:24] = 1.0
    k = fft2c(simulate_multicoil(x, n_coils=4, seed=1))[None]
    try:
        import sigpy  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="sigpy"):
            jsense_reconstruction(k)
        return
    out = jsense_reconstruction(k, ksp_calib_width=12, mps_ker_width=6)
    assert out.shape == (1, 32, 32)
    # JSENSE combination recovers the object up to a global scale
    corr = np.corrcoef(out[0].ravel(), x.ravel())[0, 1]
    assert corr > 0.95 and rng is not None


def test_embedded_file_through_the_same_reader(tmp_path):
    from mriqa_lib.methods.ssfd.data import slices_from_file, write_embedded_file
    from mriqa_lib.methods.ssfd.params import SsfdParams

    rng = np.random.default_rng(5)
    slices = np.zeros((2, 32, 48), np.float32)
    slices[:, 8:24, 10:38] = 0.5 + rng.random((2, 16, 28))
    path = write_embedded_file(tmp_path / "sub-001.h5", slices, n_coils=3, seed=0, subject="sub-001")
    f = read_fastmri(path)
    assert f.multicoil and f.kspace.shape == (2, 3, 32, 48) and f.attrs["patient_id"] == "sub-001"
    np.testing.assert_allclose(f.target, slices, atol=1e-5)
    d = slices_from_file(path, SsfdParams(), seed=0)
    # ground truth and zero-filled share one per-slice scale; the ground truth is the original slice
    np.testing.assert_allclose(d["target"] * d["scale"][:, None, None], slices, atol=1e-5)
    assert d["zero_filled"].shape == (2, 32, 48)
    assert abs(48 / d["mask"].sum() - 4.0) < 0.6
    assert not np.allclose(d["zero_filled"], d["target"], atol=1e-2)


def test_source_files_keep_a_delivered_split_and_split_a_flat_folder(tmp_path):
    """train/val/test subfolders are used as delivered; a flat folder is split by file through
    data/splits.py (every file in exactly one split, seeded, 70/15/15); a missing split is an error."""
    from mriqa_lib.data import splits
    from mriqa_lib.methods.ssfd.data import FLAT_SPLIT, fastmri_source_files

    flat = tmp_path / "flat"
    flat.mkdir()
    for i in range(20):
        (flat / f"file{i:03d}.h5").touch()
    out = fastmri_source_files(flat, seed=3)
    assert [len(out[s]) for s in ("train", "val", "test")] == [14, 3, 3]
    assert sorted(stem for files in out.values() for _, stem in files) == [f"file{i:03d}" for i in range(20)]
    expected = splits.split_subjects([f"file{i:03d}" for i in range(20)], FLAT_SPLIT, 3)
    assert all(expected[stem] == s for s, files in out.items() for _, stem in files)
    assert fastmri_source_files(flat, seed=3) == out

    delivered = tmp_path / "delivered"
    for s, n in (("train", 2), ("val", 1), ("test", 1)):
        (delivered / s).mkdir(parents=True)
        for i in range(n):
            (delivered / s / f"{s}{i}.h5").touch()
    out = fastmri_source_files(delivered, seed=0)
    assert {s: [stem for _, stem in files] for s, files in out.items()} == {
        "train": ["train0", "train1"],
        "val": ["val0"],
        "test": ["test0"],
    }
    (delivered / "val" / "val0.h5").unlink()
    with pytest.raises(MriqaInputError, match="need .h5 files for train, val and test"):
        fastmri_source_files(delivered, seed=0)
    with pytest.raises(MriqaInputError, match="is not a folder"):
        fastmri_source_files(tmp_path / "missing", seed=0)
