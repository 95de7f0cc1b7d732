"""Paper 1's data as delivered: the UK Biobank Dixon replica (field 20201 DICOM zips + basket CSV,
converted by `mriqa convert ukb-dixon`) and the NAKO-IQA replica, read by the real ecker adapters."""

from __future__ import annotations

import argparse
import os
import shutil
import zipfile

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import pandas as pd
import pytest
from stage_runs import run_stage, settings_with

from mriqa_lib.data import ukb as U
from mriqa_lib.io import MriqaInputError, load_nifti, read_tsv, save_nifti
from mriqa_lib.methods.ecker import data as D
from mriqa_lib.replicas import nako as RN
from mriqa_lib.replicas import ukb as RU


@pytest.fixture(scope="module")
def replicas(tmp_path_factory, stage_cohort):
    """Both replicas of the 6-subject stage cohort: (folder, cohort, params keys)."""
    out = tmp_path_factory.mktemp("ukb_nako") / "raw"
    keys = {**RU.build(out, stage_cohort, seed=0), **RN.build(out, stage_cohort, seed=0)}
    return out, stage_cohort, keys


# ------------------------------------------------------------------------------------------ UK Biobank
def test_ukb_replica_is_delivered_as_zips_and_a_basket_and_the_adapter_reads_its_conversion(replicas):
    out, cohort, keys = replicas
    parts = read_tsv(cohort / "participants.tsv")
    zips = sorted((out / "ukb" / "20201").iterdir())
    assert all(z.name.endswith("_20201_2_0.zip") for z in zips) and len(zips) == len(parts)
    with zipfile.ZipFile(zips[0]) as zf:  # 2 stations x 4 series (in, opp, F, W), one file per slice
        assert len(zf.namelist()) == 8 * (RU.scan_matrix(cohort / "sub-001/anat/sub-001_T1w.nii.gz").shape[2] // 2 + 2)
    basket = pd.read_csv(keys["ecker.ukb_table"], dtype=str)
    assert {"eid", "31-0.0", "12144-2.0", "21002-2.0"} <= set(basket.columns) and len(basket) == len(parts) + 1

    frame = D.ukb_subjects(keys["ecker.ukb_dir"], keys["ecker.ukb_table"])
    eids = [z.name.split("_")[0] for z in zips]
    assert frame["participant_id"].tolist() == eids  # the imaged participants, not the whole basket
    # eids were given in participants.tsv order: sex and height follow the source cohort
    truth = dict(zip(basket["eid"], zip(parts["sex"].str.upper(), parts["height"].round(0))))
    assert [truth[e] for e in frame["participant_id"]] == list(zip(frame["sex"], frame["height"]))


def test_conversion_keeps_the_water_series_and_stacks_the_stations(replicas):
    out, cohort, keys = replicas
    eid = sorted(os.listdir(keys["ecker.ukb_dir"]))[0]
    pid = read_tsv(cohort / "participants.tsv")["participant_id"].iloc[0]
    vol = load_nifti(f"{keys['ecker.ukb_dir']}/{eid}/wat.nii.gz")
    water = np.round(np.clip(RU.scan_matrix(cohort / pid / "anat" / f"{pid}_T1w.nii.gz"), 0, None))
    assert vol.shape == water.shape  # both stations, overlap counted once
    np.testing.assert_allclose(vol.data, water, atol=1e-3)  # the water image, not fat / in / opp
    np.testing.assert_allclose(vol.spacing, RU.SPACING, atol=1e-4)


def test_convert_command_writes_wat_per_eid_and_resumes(replicas, tmp_path):
    from mriqa_lib.commands import convert

    out, _, keys = replicas
    src = tmp_path / "zips"
    src.mkdir()
    first = sorted((out / "ukb" / "20201").iterdir())[0]
    shutil.copy(first, src / first.name)
    (src / "1000001_20252_2_0.zip").write_bytes(b"another field: ignored")
    parser = argparse.ArgumentParser()
    convert.add_parser(parser.add_subparsers())
    args = parser.parse_args(["convert", "ukb-dixon", str(src), "--out", str(tmp_path / "nifti")])
    assert args.func(args) == 0
    eid = first.name.split("_")[0]
    target = tmp_path / "nifti" / eid / "wat.nii.gz"
    assert os.listdir(tmp_path / "nifti") == [eid]
    np.testing.assert_array_equal(load_nifti(target).data, load_nifti(f"{keys['ecker.ukb_dir']}/{eid}/wat.nii.gz").data)
    before = target.stat().st_mtime_ns
    assert args.func(args) == 0 and target.stat().st_mtime_ns == before  # kept: a stopped run resumes


def test_conversion_errors_name_the_zip(replicas, tmp_path):
    out, _, _ = replicas
    first = sorted((out / "ukb" / "20201").iterdir())[0]
    no_water = tmp_path / "5000001_20201_2_0.zip"
    with zipfile.ZipFile(first) as src, zipfile.ZipFile(no_water, "w") as dst:
        for name in src.namelist():  # every series but the water one
            data = src.read(name)
            if b"Dixon_BH_17s_W" not in data:
                dst.writestr(name, data)
    with pytest.raises(MriqaInputError, match=r"5000001_20201_2_0\.zip: no water series.*Dixon_BH_17s_F"):
        U.convert_dixon(tmp_path, tmp_path / "out")
    (tmp_path / "5000001_20201_2_1.zip").write_bytes(b"")
    with pytest.raises(
        MriqaInputError, match=r"two field 20201 zips of participant 5000001.*_2_0\.zip and .*_2_1\.zip"
    ):
        U.dixon_zips(tmp_path)
    with pytest.raises(MriqaInputError, match="no <eid>_20201_3_<array>.zip"):
        U.dixon_zips(tmp_path, instance=3)


def test_ukb_adapter_bad_inputs_name_the_file_or_column(replicas, tmp_path):
    out, _, keys = replicas
    # the zips themselves given as ecker.ukb_dir: say how to convert them
    with pytest.raises(MriqaInputError, match="mriqa convert ukb-dixon"):
        D.ukb_subjects(out / "ukb" / "20201", keys["ecker.ukb_table"])
    basket = pd.read_csv(keys["ecker.ukb_table"], dtype=str)
    basket.drop(columns=["12144-2.0"]).to_csv(tmp_path / "no_height.csv", index=False)
    with pytest.raises(MriqaInputError, match=r"no_height\.csv: missing height column.*12144-2\.0"):
        D.ukb_subjects(keys["ecker.ukb_dir"], tmp_path / "no_height.csv")
    basket.assign(height=basket["12144-2.0"]).to_csv(tmp_path / "two.csv", index=False)
    with pytest.raises(MriqaInputError, match=r"two height columns \['height', '12144-2.0'\]"):
        D.ukb_subjects(keys["ecker.ukb_dir"], tmp_path / "two.csv")
    vol = np.ones((4, 4, 4), np.float32)
    save_nifti(tmp_path / "ukb" / "1000001" / "wat.nii.gz", vol, np.eye(4))
    save_nifti(tmp_path / "ukb" / "1000001" / "wat.nii", vol, np.eye(4))
    with pytest.raises(MriqaInputError, match=r"1000001/wat\.nii\.gz and .*1000001/wat\.nii;"):
        D.ukb_subjects(tmp_path / "ukb", keys["ecker.ukb_table"])
    (tmp_path / "ukb" / "1000002").mkdir()
    (tmp_path / "ukb" / "1000001" / "wat.nii").unlink()
    with pytest.raises(MriqaInputError, match=r"1000002/wat\.nii\.gz: file not found"):
        D.ukb_subjects(tmp_path / "ukb", keys["ecker.ukb_table"])


# ------------------------------------------------------------------------------------------- NAKO-IQA
def test_nako_replica_holds_breath_hold_and_moved_free_breathing_volumes(replicas):
    _, cohort, keys = replicas
    parts = read_tsv(cohort / "participants.tsv")
    n_test = int((parts["split"] == "test").sum())
    nako = D.nako_subjects(keys["ecker.nako_dir"])
    assert nako["participant_id"].tolist() == [f"Q{i // 2 + 1}" for i in range(2 * n_test)]
    assert nako["label"].tolist() == ["HQ", "LQ"] * n_test and nako["height"].isna().all()
    hq, lq = (load_nifti(p).data for p in nako["path"].iloc[:2])
    assert hq.shape == lq.shape and np.abs(hq - lq).mean() > 0.01 * np.abs(hq).mean()  # LQ is moved


def test_nako_two_copies_of_a_scan_are_ambiguous(tmp_path):
    vol = np.ones((4, 4, 4), np.float32)
    for stem in RN.STEMS.values():
        save_nifti(tmp_path / "Q1" / "dixon" / f"{stem}.nii", vol, np.eye(4))
    save_nifti(tmp_path / "Q1" / "dixon" / f"{RN.STEMS['bh']}.nii.gz", vol, np.eye(4))
    with pytest.raises(MriqaInputError, match=r"bh_W_COMPOSED\.nii\.gz and .*bh_W_COMPOSED\.nii;"):
        D.nako_subjects(tmp_path)


# ------------------------------------------------------------------------------------------ end to end
def test_stage_runs_through_both_adapters_on_the_replicas(replicas, tmp_path, stage_cohort):
    from mriqa_lib.io import read_json
    from mriqa_lib.methods.ecker.params import EckerParams

    _, _, keys = replicas
    tiny = {k.split(".", 1)[1]: v for k, v in RN.TINY.items() if k.startswith("ecker.")}
    section = EckerParams(**tiny, **{k.split(".", 1)[1]: v for k, v in keys.items()})
    with pytest.MonkeyPatch.context() as mp:
        metrics = run_stage(tmp_path, stage_cohort, "ecker", settings_with("ecker", section), mp)
    meta = read_json(tmp_path / "data/synthetic/ecker/meta.json")
    assert (meta["dataset"], meta["nako"]) == ("ukb", "nako-iqa")
    n_ukb = len(os.listdir(keys["ecker.ukb_dir"]))
    n_nako = len(os.listdir(keys["ecker.nako_dir"]))
    assert (metrics["n_pool_subjects"], metrics["n_test_subjects"]) == (n_ukb - 2, 2)
    assert (metrics["motion_n"], metrics["noise_n"], metrics["nako_n"]) == (8, 8, 2 * n_nako)
    # NAKO-IQA has no subject table: every pool subject is a reference (n_refs=2 would pick 2)
    pool = set(
        read_tsv(tmp_path / "data/synthetic/ecker/subject_table.tsv")
        .query("role == 'pool'")["participant_id"]
        .astype(str)
    )
    refs = read_tsv(tmp_path / "results/ecker/nako.tsv")["references"].str.split(",")
    assert all(set(r) == pool for r in refs) and len(pool) == n_ukb - 2
