"""`mriqa replica` and paper 2's replica: downloaded IXI and OASIS-3 (BIDS) folders read without a table."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import nibabel as nib
import numpy as np
import pytest
from stage_runs import run_stage, settings_with

from mriqa_lib.config import ConfigError
from mriqa_lib.io import MriqaInputError, Volume, read_tsv, save_nifti
from mriqa_lib.methods import registry
from mriqa_lib.replicas import DATASETS, module, workspace_params
from mriqa_lib.replicas import multicohort as R


def test_every_data_set_has_a_replica_for_a_registered_method_with_valid_tiny_settings():
    available = [d for d in DATASETS if _importable(d)]
    assert "multicohort" in available
    for name in available:
        mod = module(name)
        assert mod.METHOD in registry.names(), name
        assert mod.DESCRIPTION.strip(), name
        workspace_params({}, mod.TINY)  # raises ConfigError on a key or value the settings refuse


def _importable(name: str) -> bool:
    try:
        module(name)
    except ModuleNotFoundError:
        return False  # a data set whose replica has not landed yet
    return True


def test_unknown_data_set_and_bad_tiny_key_are_configuration_errors():
    with pytest.raises(ConfigError, match="unknown data set 'ukbb'.*ukb"):
        module("ukbb")
    with pytest.raises(ConfigError, match="zuo"):
        workspace_params({}, {"zuo.no_such_key": 1})


def test_scanner_frame_keeps_every_voxel_at_its_world_position():
    rng = np.random.default_rng(0)
    affine = np.diag([2.0, 1.5, 1.0, 1.0])
    affine[:3, 3] = [-90.0, -120.0, -70.0]
    vol = Volume(rng.random((5, 6, 7)).astype(np.float32), affine, None)
    shift = np.array([3.0, -4.0, 5.0])
    moved = R.scanner_frame(vol, shift)
    assert moved.data.shape == (6, 7, 5)
    for ijk in [(0, 0, 0), (4, 5, 6), (2, 1, 3)]:
        world = affine @ [*ijk, 1]
        # find the moved voxel holding the same value; its world position is the old one + shift
        new = np.argwhere(moved.data == vol.data[ijk])[0]
        np.testing.assert_allclose(moved.affine @ [*new, 1], world + [*shift, 0], atol=1e-9)
    assert nib.aff2axcodes(moved.affine)[0] in ("A", "P")  # a sagittal acquisition: first axis is y


@pytest.fixture(scope="module")
def replica(tmp_path_factory, stage_cohort):
    out = tmp_path_factory.mktemp("multicohort") / "raw"
    return out, R.build(out, stage_cohort, seed=0), read_tsv(stage_cohort / "participants.tsv")


def test_replica_is_read_as_downloaded(replica):
    from mriqa_lib.data.multicohort import folder_table

    out, keys, parts = replica
    table = folder_table(keys["zuo.cohort_dirs"], (0.6, 0.2, 0.2), seed=0)
    ixi = sorted(p.name for p in (out / "IXI-T1").iterdir())
    bids = sorted(p.name for p in (out / "OASIS3").rglob("*_T1w.nii.gz"))
    assert len(table) == len(ixi) + len(bids) == len(parts) + 1  # one OASIS-3 subject came back
    assert sorted(table.loc[table["cohort"].str.startswith("IXI-"), "participant_id"]) == [n[:6] for n in ixi]
    assert set(table["cohort"]) == {f"IXI-{h}" for h in R.IXI_HOSPITALS[: parts["site"].nunique()]} | {"OASIS3"}
    # the two sessions of the returning subject are one subject: one split
    subject = table["participant_id"].str.split("_ses-").str[0]
    assert (table.groupby(subject)["split"].nunique() == 1).all()
    assert set(table["split"]) == {"train", "val", "test"}


def test_ambiguous_runs_missing_folders_and_empty_folders_are_named(replica, tmp_path):
    from mriqa_lib.data.multicohort import folder_table

    out, keys, _ = replica
    anat = next((out / "OASIS3").rglob("anat"))
    first = next(anat.glob("*_T1w.nii.gz"))
    second = anat / first.name.replace("_T1w", "_run-02_T1w")
    save_nifti(second, np.ones((4, 4, 4)), np.eye(4))
    try:
        with pytest.raises(MriqaInputError, match=rf"{first.name}.*{second.name}|{second.name}.*{first.name}"):
            folder_table(keys["zuo.cohort_dirs"])
    finally:
        second.unlink()
    with pytest.raises(MriqaInputError, match="nowhere.*'IXI'.*zuo.cohort_dirs"):
        folder_table({"IXI": str(tmp_path / "nowhere")})
    with pytest.raises(MriqaInputError, match="no T1w image.*IXI<nnn>"):
        folder_table({"ixi": str(tmp_path)})


def test_paper2_pipeline_runs_through_the_folder_adapter_on_native_space_scans(replica, tmp_path, stage_cohort):
    """synthesize -> train -> evaluate with N4 and registration on the replica's native-space scans."""
    out, keys, _ = replica
    from mriqa_lib.methods.zuo.params import ZuoParams

    tiny = {k.split(".", 1)[1]: v for k, v in R.TINY.items() if k.startswith("zuo.")}
    # N4 is left to the CI's replica run: it costs seconds per volume and is SimpleITK's own filter
    p = ZuoParams(**{**tiny, "cohort_dirs": keys["zuo.cohort_dirs"], "split": (0.6, 0.2, 0.2), "n4": False})
    with pytest.MonkeyPatch.context() as mp:
        metrics = run_stage(tmp_path, stage_cohort, "zuo", settings_with("zuo", p), mp)
    syn = tmp_path / "data/synthetic/zuo"
    trained = set(read_tsv(syn / "train.tsv")["participant_id"])
    rated = set(read_tsv(syn / "rated.tsv")["participant_id"])
    assert trained and rated and not trained & rated
    assert all(pid.startswith(("IXI", "sub-OAS3")) for pid in trained | rated)  # the replica, not data/embedded
    # every rated volume: 1 clean copy + 3 variants
    n_rated_volumes = len(rated)
    assert metrics["n_rated"] == 4 * n_rated_volumes


def test_replica_command_writes_a_workspace_whose_params_point_into_it(tmp_path, capsys):
    from mriqa_lib.cli import main
    from mriqa_lib.config import load_settings

    assert main(["replica", "--list"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in DATASETS if _importable(name))
    assert main(["replica", "nosuchset", "--out", str(tmp_path / "x")]) == 2
    assert not (tmp_path / "x").exists()

    ws = tmp_path / "ws"
    assert main(["replica", "multicohort", "--out", str(ws), "--params", str(tmp_path / "absent.yaml")]) == 0
    assert "mriqa stage zuo synthesize" in capsys.readouterr().out
    settings = load_settings(ws / "params.yaml")
    folders = settings.zuo.cohort_dirs
    assert set(folders) == {"IXI", "OASIS3"}
    assert all(not os.path.isabs(f) and (ws / f).is_dir() for f in folders.values())  # the workspace can move
    assert settings.zuo.steps == R.TINY["zuo.steps"] and settings.zuo.registration
    assert (ws / "data/embedded/participants.tsv").exists()


def test_writing_dicom_keeps_the_locale_that_python_reads_text_files_with(tmp_path):
    """GDCM's writer leaves LC_CTYPE at "C" (every later read_text() would be ASCII); the replica's
    DICOM writing restores it."""
    import locale

    from mriqa_lib.replicas.ukb import write_zip

    before = locale.setlocale(locale.LC_CTYPE)
    write_zip(tmp_path / "1000001_20201_2_0.zip", np.full((8, 8, 12), 100.0), "1000001")
    assert locale.setlocale(locale.LC_CTYPE) == before
