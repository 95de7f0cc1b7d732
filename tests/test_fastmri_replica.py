"""Paper 4's data as delivered: the fastMRI brain multi-coil replica (multicoil_{train,val,test}/)
read by the real ssfd adapter, and the pipeline run on it."""

from __future__ import annotations

import json
import os
import re

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import h5py
import numpy as np
import pytest
from stage_runs import run_stage, settings_with

from mriqa_lib.data.fastmri import parse_header
from mriqa_lib.io import MriqaInputError, read_tsv
from mriqa_lib.methods.ssfd import data as D
from mriqa_lib.replicas import fastmri as R

NAME = re.compile(r"file_brain_(AXT1POST|AXT2)_2\d\d_\d{7}\.h5")


@pytest.fixture(scope="module")
def replica(tmp_path_factory, stage_cohort):
    """The replica of the 6-subject stage cohort: (fastmri folder, cohort, params keys)."""
    out = tmp_path_factory.mktemp("fastmri") / "raw"
    keys = R.build(out, stage_cohort, seed=0)
    return out / "fastmri", stage_cohort, keys


def _stems(folder):
    return sorted(p.stem for p in folder.glob("*.h5"))


def _patient(path):
    with h5py.File(path, "r") as f:
        return f.attrs["patient_id"]


def test_replica_has_fastmri_folders_names_keys_and_header(replica):
    root, cohort, keys = replica
    parts = read_tsv(cohort / "participants.tsv")
    assert keys == {"ssfd.fastmri_dir": str(root)}
    assert sorted(p.name for p in root.iterdir()) == ["multicoil_test", "multicoil_train", "multicoil_val"]
    assert len(_stems(root / "multicoil_val")) == (parts["split"] == "test").sum()
    assert len(_stems(root / "multicoil_train")) == (parts["split"] != "test").sum() + 1  # one AXT2 too
    assert all(NAME.fullmatch(p.name) for p in root.rglob("*.h5"))
    path = next((root / "multicoil_train").glob("*.h5"))
    with h5py.File(path, "r") as f:
        k, rss = f["kspace"], f["reconstruction_rss"]
        assert k.dtype == np.complex64 and k.shape[:2] == (R.N_SLICES, R.N_COILS)
        sizes = parse_header(f["ismrmrd_header"][()])
        assert sizes["encoded"] == k.shape[2:] and sizes["encoded"][0] == R.OVERSAMPLING * sizes["recon"][0]
        assert rss.shape == (R.N_SLICES, *sizes["recon"])
        assert set(f.attrs) >= {"acquisition", "max", "norm", "patient_id"}
        assert f.attrs["max"] == pytest.approx(float(rss[()].max()))
        # the unacquired columns are zero, as the header's encodingLimits say
        left, right = sizes["padding"]
        assert (left, right) == (R.UNACQUIRED, k.shape[-1] - R.UNACQUIRED)
        assert not np.abs(k[..., :left]).any() and not np.abs(k[..., right:]).any()
    for path in (root / "multicoil_test").glob("*.h5"):
        with h5py.File(path, "r") as f:
            assert "mask" in f and "reconstruction_rss" not in f
            kept = np.abs(f["kspace"][()]).sum(axis=(0, 1, 2)) > 0
            acquired = (np.arange(len(kept)) >= left) & (np.arange(len(kept)) < right)
            np.testing.assert_array_equal(kept, f["mask"][()].astype(bool) & acquired)
            assert 3.0 < len(kept) / f["mask"][()].sum() < 5.0  # 4x


def test_reconstruction_rss_is_the_source_slice_and_the_adapter_reproduces_it(replica):
    """The file's reconstruction_rss is the cohort slice (up to the unacquired edge columns); the
    adapter's ground truth (RSS of the k-space, cropped to reconSpace) equals reconstruction_rss."""
    from mriqa_lib.methods.ssfd.params import SsfdParams

    root, cohort, _ = replica
    parts = read_tsv(cohort / "participants.tsv")
    pid = parts.loc[parts["split"] == "test", "participant_id"].iloc[0]
    k = parts.index[parts["participant_id"] == pid][0]
    path = next((root / "multicoil_val").glob(f"*_{6000000 + 10 * k}.h5"))
    source = D.embedded_slices(cohort / pid / "anat" / f"{pid}_T1w.nii.gz", R.N_SLICES, R.SLICE_STEP)
    with h5py.File(path, "r") as f:
        truth = f["reconstruction_rss"][()]
    assert np.corrcoef(truth.ravel(), source.ravel())[0, 1] > 0.98
    d = D.slices_from_file(path, SsfdParams(), seed=0)
    np.testing.assert_allclose(d["target"] * d["scale"][:, None, None], truth, rtol=1e-4, atol=1e-5)


def test_adapter_maps_official_folders_to_ssfd_splits(replica, capsys):
    root, _, _ = replica
    out = D.fastmri_source_files(root, seed=0)
    got = {s: sorted(stem for _, stem in files) for s, files in out.items()}
    assert got["test"] == _stems(root / "multicoil_val")  # paper 4's test set: the official val set
    assert sorted(got["train"] + got["val"]) == _stems(root / "multicoil_train")
    assert got["train"] and got["val"]
    # the two contrasts of one patient stay together
    twin_patient = _patient(next((root / "multicoil_train").glob("file_brain_AXT2_*.h5")))
    twins = [p.stem for p in (root / "multicoil_train").glob("*.h5") if _patient(p) == twin_patient]
    assert len(twins) == 2 and len({next(s for s, names in got.items() if t in names) for t in twins}) == 1
    # the undersampled test files: reported, used nowhere
    skipped = _stems(root / "multicoil_test")
    assert skipped and not set(skipped) & {stem for names in got.values() for stem in names}
    assert "skipping 2 file(s)" in capsys.readouterr().out


def test_a_test_file_moved_into_val_is_refused_by_name(replica, tmp_path):
    import shutil

    root, _, _ = replica
    copy = tmp_path / "fastmri"
    shutil.copytree(root, copy)
    stray = next((copy / "multicoil_test").glob("*.h5"))
    shutil.move(stray, copy / "multicoil_val" / stray.name)
    with pytest.raises(MriqaInputError, match=rf"{stray.name}: has a 'mask' dataset"):
        D.fastmri_source_files(copy, seed=0)


def test_pipeline_runs_through_the_adapter_on_the_replica(replica, tmp_path, stage_cohort):
    """synthesize -> train -> evaluate with the replica's tiny settings: every split comes from its
    official folder, all slices of every volume, none from multicoil_test."""
    from mriqa_lib.data import splits
    from mriqa_lib.methods.ssfd.params import SsfdParams

    root, _, keys = replica
    tiny = {k.split(".", 1)[1]: v for k, v in {**R.TINY, **keys}.items()}
    with pytest.MonkeyPatch.context() as mp:
        metrics = run_stage(tmp_path, stage_cohort, "ssfd", settings_with("ssfd", SsfdParams(**tiny)), mp)
    syn = tmp_path / "data/synthetic/ssfd"
    manifest = splits.read_manifest(syn)
    assert sorted(s for s, split in manifest.items() if split == "test") == _stems(root / "multicoil_val")
    assert sorted(s for s, split in manifest.items() if split != "test") == _stems(root / "multicoil_train")
    slices = read_tsv(syn / "manifest.tsv")
    assert all(str(root / "multicoil_") in f for f in slices["file"])
    assert not slices["file"].str.contains("multicoil_test").any()
    assert metrics["n_test_slices"] == R.N_SLICES * len(_stems(root / "multicoil_val"))
    assert slices.groupby("subject").size().eq(R.N_SLICES).all()
    assert json.loads((syn / "summary.json").read_text())["source"] == keys["ssfd.fastmri_dir"]
