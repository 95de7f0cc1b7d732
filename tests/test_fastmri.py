"""fastMRI HDF5 adapter: writer/reader round trip, header, RSS, masks, bad input."""

from __future__ import annotations

import zlib

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
    assert parse_header(ismrmrd_header((640, 368), (320, 320))) == {
        "encoded": (640, 368),
        "recon": (320, 320),
        "padding": (0, 368),
    }
    # a fastMRI knee header: encodingLimits centre 168, maximum 335 -> padding_left 16, padding_right 352
    assert parse_header(ismrmrd_header((640, 368), (320, 320), limits=(168, 335)))["padding"] == (16, 352)
    bad = ismrmrd_header((640, 368), (320, 320)).replace(b"<x>320</x>", b"<x>n/a</x>")
    with pytest.raises(MriqaInputError, match=r"odd.h5.*reconSpace/x"):
        parse_header(bad, "odd.h5")
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


def _tiny_file(path, patient="p", undersampled=False, rows=8, cols=12):
    """A small fastMRI multi-coil file; ``undersampled``: a test-set file (``mask``, no reconstruction_rss)."""
    k = _kspace(np.random.default_rng(zlib.crc32(path.name.encode())), (2, 2, rows, cols))
    attrs = {"acquisition": "AXT1POST", "patient_id": patient}
    if undersampled:
        return write_fastmri(path, k, None, attrs=attrs, mask=np.arange(cols) % 4 == 0)
    return write_fastmri(path, k, rss_reconstruction(k), attrs=attrs)


def test_flat_folder_is_split_by_file(tmp_path):
    """A flat folder is split by file through data/splits.py (every file in exactly one split,
    seeded, 70/15/15)."""
    from mriqa_lib.data import splits
    from mriqa_lib.methods.ssfd.data import FLAT_SPLIT, fastmri_source_files

    flat = tmp_path / "flat"
    for i in range(20):
        _tiny_file(flat / f"file{i:03d}.h5", patient=f"p{i}")
    out = fastmri_source_files(flat, seed=3)
    assert [len(out[s]) for s in ("train", "val", "test")] == [14, 3, 3]
    assert sorted(stem for files in out.values() for _, stem in files) == [f"file{i:03d}" for i in range(20)]
    expected = splits.split_subjects([f"file{i:03d}" for i in range(20)], FLAT_SPLIT, 3)
    assert all(expected[stem] == s for s, files in out.items() for _, stem in files)
    assert fastmri_source_files(flat, seed=3) == out
    with pytest.raises(MriqaInputError, match="is not a folder"):
        fastmri_source_files(tmp_path / "missing", seed=0)


@pytest.fixture
def delivered(tmp_path):
    """multicoil_train (4 volumes of 3 patients), multicoil_val (2), multicoil_test (1, undersampled)."""
    root = tmp_path / "brain"
    for name, patient in (("a", "p1"), ("b", "p1"), ("c", "p2"), ("d", "p3")):
        _tiny_file(root / "multicoil_train" / f"file_brain_AXT1_200_{name}.h5", patient)
    for name in ("e", "f"):
        _tiny_file(root / "multicoil_val" / f"file_brain_AXT1_201_{name}.h5", f"v{name}")
    _tiny_file(root / "multicoil_test" / "file_brain_AXT1_202_g.h5", "t", undersampled=True)
    return root


def test_official_folders_map_to_ssfd_splits_and_test_files_are_skipped(delivered, capsys):
    """multicoil_val is SSFD's test set; multicoil_train gives train and val, split by patient_id;
    the undersampled multicoil_test files are named as skipped and read nowhere."""
    from mriqa_lib.methods.ssfd.data import fastmri_source_files

    out = fastmri_source_files(delivered, seed=0, val_fraction=0.34)
    stems = {s: sorted(stem for _, stem in files) for s, files in out.items()}
    assert stems["test"] == ["file_brain_AXT1_201_e", "file_brain_AXT1_201_f"]
    assert sorted(stems["train"] + stems["val"]) == [f"file_brain_AXT1_200_{n}" for n in "abcd"]
    assert len(stems["val"]) in (1, 2) and stems["train"]
    # both volumes of patient p1 land in one split
    split_of = {stem: s for s, names in stems.items() for stem in names}
    assert split_of["file_brain_AXT1_200_a"] == split_of["file_brain_AXT1_200_b"]
    printed = capsys.readouterr().out
    assert "skipping 1 file(s)" in printed and "file_brain_AXT1_202_g.h5" in printed  # named
    assert all("multicoil_test" not in str(f) for files in out.values() for f, _ in files)


def test_only_undersampled_folders_are_refused(delivered):
    """Nothing fully sampled left (multicoil_test only): refused, never used as truth."""
    import shutil

    from mriqa_lib.methods.ssfd.data import fastmri_source_files

    shutil.rmtree(delivered / "multicoil_train")
    shutil.rmtree(delivered / "multicoil_val")
    with pytest.raises(MriqaInputError, match=r"only already undersampled fastMRI folders \(multicoil_test"):
        fastmri_source_files(delivered, seed=0)


def test_brain_tarball_folder_names_are_accepted_but_not_both(delivered):
    from mriqa_lib.methods.ssfd.data import fastmri_source_files

    (delivered / "multicoil_val").rename(delivered / "brain_multicoil_val")
    assert len(fastmri_source_files(delivered, seed=0)["test"]) == 2
    (delivered / "multicoil_val").mkdir()
    with pytest.raises(MriqaInputError, match="multicoil_val and .*brain_multicoil_val"):
        fastmri_source_files(delivered, seed=0)


def test_layout_errors_name_the_folder_or_file(delivered, tmp_path):
    from mriqa_lib.methods.ssfd.data import fastmri_source_files

    # an undersampled (test-set) file among the ground-truth files is refused, named
    stray = _tiny_file(delivered / "multicoil_val" / "file_brain_AXT1_202_x.h5", "t", undersampled=True)
    with pytest.raises(MriqaInputError, match=r"file_brain_AXT1_202_x.h5.*'mask'.*ground truth"):
        fastmri_source_files(delivered, seed=0)
    stray.unlink()
    # a truncated file is named
    good = delivered / "multicoil_train" / "file_brain_AXT1_200_a.h5"
    good.write_bytes(good.read_bytes()[:200])
    with pytest.raises(MriqaInputError, match="file_brain_AXT1_200_a.h5: cannot read"):
        fastmri_source_files(delivered, seed=0)
    # multicoil_val missing
    (delivered / "multicoil_val").rename(tmp_path / "elsewhere")
    with pytest.raises(MriqaInputError, match="multicoil_val/ is missing"):
        fastmri_source_files(delivered, seed=0)
    # the old train/ val/ test/ layout is not fastMRI's
    old = tmp_path / "old"
    for s in ("train", "val", "test"):
        _tiny_file(old / s / "x.h5")
    with pytest.raises(MriqaInputError, match="expected fastMRI's delivered folders multicoil_train/"):
        fastmri_source_files(old, seed=0)


def test_an_undersampled_file_is_never_ground_truth_and_padding_limits_the_mask(tmp_path):
    from mriqa_lib.methods.ssfd.data import slices_from_file
    from mriqa_lib.methods.ssfd.params import SsfdParams

    test_file = _tiny_file(tmp_path / "file_brain_test.h5", undersampled=True)
    f = read_fastmri(test_file)
    assert f.undersampled and f.target is None and f.mask is not None
    with pytest.raises(MriqaInputError, match="file_brain_test.h5: already undersampled"):
        slices_from_file(test_file, SsfdParams(), seed=0)
    # columns 0-3 and 44-47 were not acquired (encodingLimits): they are never in the sampling mask
    rng = np.random.default_rng(0)
    k = _kspace(rng, (1, 2, 16, 48))
    k[..., :4] = 0
    k[..., 44:] = 0
    header = ismrmrd_header((16, 48), (16, 48), n_coils=2, limits=(20, 39))
    path = write_fastmri(tmp_path / "padded.h5", k, rss_reconstruction(k), header)
    assert read_fastmri(path).padding == (4, 44)
    mask = slices_from_file(path, SsfdParams(center_fraction=0.5, acceleration=1.0), seed=0)["mask"]
    assert not mask[:4].any() and not mask[44:].any() and mask[4:44].all()
