"""Paper 3's data as delivered: the ADNI replica (LONI NIfTI tree, MRIQUALITY.csv, pairs table,
SPM12 c1 maps) read by the real adapter, and the shaw pipeline run through it.

Truth is what the replica wrote (``replica_truth.csv``: every file's subject, RID, series, image,
PASS and simulated artefact), the cohort's own maps and the ICBM152 template, never the adapter.
"""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
from stage_runs import run_stage, settings_with

from mriqa_lib.data import adni as A
from mriqa_lib.io import MriqaInputError, load_nifti, read_tsv
from mriqa_lib.methods.shaw.params import ShawParams
from mriqa_lib.replicas import adni as R


@pytest.fixture(scope="module")
def replica(tmp_path_factory, stage_cohort):
    out = tmp_path_factory.mktemp("adni") / "raw"
    keys = R.build(out, stage_cohort, seed=0)
    return out, keys, pd.read_csv(out / "replica_truth.csv", dtype={"ptid": str})


@pytest.fixture(scope="module")
def shaw_run(tmp_path_factory, replica, stage_cohort):
    """synthesize -> train -> evaluate on the replica with the tiny settings; (workspace, metrics)."""
    _, keys, _ = replica
    tiny = {k.split(".", 1)[1]: v for k, v in {**R.TINY, **keys}.items() if k.startswith("shaw.")}
    root = tmp_path_factory.mktemp("adni_stage")
    with pytest.MonkeyPatch.context() as mp:
        return root, run_stage(root, stage_cohort, "shaw", settings_with("shaw", ShawParams(**tiny)), mp)


def test_replica_is_a_loni_download_in_native_space(replica):
    import nibabel as nib

    out, keys, truth = replica
    files = sorted((out / "ADNI").rglob("ADNI_*.nii"))
    assert len(files) == len(truth) == 5
    for f in files:  # ADNI/<PTID>/<description>/<date_time>/I<image>/ADNI_<PTID>_MR_<description>_..._S<s>_I<i>.nii
        ptid, desc, _, folder = f.relative_to(out / "ADNI").parts[:4]
        assert f.name.startswith(f"ADNI_{ptid}_MR_{desc}_br_raw_") and f.name.endswith(f"_{folder}.nii")
    img = nib.load(str(files[0]))
    assert nib.aff2axcodes(img.affine) != ("R", "A", "S")  # not the template's frame
    np.testing.assert_allclose(img.header.get_zooms(), R.SPACING, atol=1e-4)
    qc = pd.read_csv(keys["shaw.adni_qc_table"], dtype=str)
    assert {"RID", "VISCODE2", "LONIUID", "PASS"} <= set(qc.columns) and qc["LONIUID"].str.match(r"S\d+$").all()
    assert len(qc) == len(truth) + 1 and (truth["pass"] == 0).sum() == 2  # a not-downloaded subject; two failures


def test_adapter_matches_qc_rows_to_files_as_written(replica):
    out, keys, truth = replica
    scans = A.adni_scans(keys["shaw.adni_root"], keys["shaw.adni_qc_table"])
    expected = {f"I{r.image}": (r.ptid, r.rid, f"S{r.series}", bool(r["pass"])) for _, r in truth.iterrows()}
    got = {r.image_id: (r.subject_id, r.rid, r.series_id, r.artefact_free) for r in scans.itertuples()}
    assert got == expected and scans["rated"].all()
    pair = truth[truth["desc"] == "MPRAGE_Repeat"].iloc[0]
    assert A.pair_subjects(keys["shaw.adni_root"], keys["shaw.adni_pairs_table"]) == {pair["ptid"]}


def test_mayo_qc_table_is_read_by_image_id_and_grade(replica, tmp_path):
    """The Mayo ADIR table: loni_image I<id>, series_quality 1-3 acceptable / 4 unusable, T1 rows only."""
    _, keys, truth = replica
    grades = [2, 4, 3, -1, 1]
    rows = [
        {"RID": r.rid, "loni_image": f"I{r.image}", "series_type": "T1", "series_quality": g, "study_overallpass": 1}
        for r, g in zip(truth.itertuples(), grades)
    ]
    rows.append({**rows[0], "series_type": "FLAIR", "loni_image": "I1", "series_quality": 1})  # not a T1: ignored
    mayo = tmp_path / "MAYOADIRL_MRI_IMAGEQC_12_08_15.csv"
    pd.DataFrame(rows).to_csv(mayo, index=False)
    scans = A.adni_scans(keys["shaw.adni_root"], mayo).set_index("image_id")
    assert [bool(scans.loc[f"I{r.image}", "artefact_free"]) for r in truth.itertuples()] == [
        1 <= g <= 3 for g in grades
    ]


def _qc_copy(keys, tmp_path, edit) -> str:
    qc = pd.read_csv(keys["shaw.adni_qc_table"], dtype=str)
    path = tmp_path / "MRIQUALITY.csv"
    edit(qc).to_csv(path, index=False)
    return str(path)


def test_bad_tables_name_the_file_column_and_rows(replica, tmp_path):
    _, keys, truth = replica
    root = keys["shaw.adni_root"]
    bad = _qc_copy(keys, tmp_path, lambda q: q.drop(columns=["PASS"]))
    with pytest.raises(MriqaInputError, match=r"MRIQUALITY.csv: not an ADNI MR image-quality table.*PASS"):
        A.adni_scans(root, bad)
    bad = _qc_copy(keys, tmp_path, lambda q: pd.concat([q, q.iloc[[2]]]))  # one series rated twice
    with pytest.raises(MriqaInputError, match=r"line 4 and line 8 both rate S\d+"):
        A.adni_scans(root, bad)
    bad = _qc_copy(keys, tmp_path, lambda q: q.assign(RID=q["RID"].where(q.index != 0, "9")))
    with pytest.raises(MriqaInputError, match=r"line 2 rates S\d+ as RID 9, but its file .* is subject"):
        A.adni_scans(root, bad)
    with pytest.raises(MriqaInputError, match="nothere.csv: file not found"):
        A.adni_scans(root, tmp_path / "nothere.csv")
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("subject_id,clean_image_id,artefact_image_id\n" + f"{truth.ptid[0]},I{truth.image[0]},I999\n")
    with pytest.raises(MriqaInputError, match=r"pairs.csv: line 2: scan I999 has no downloaded file"):
        A.pair_subjects(root, pairs)
    pairs.write_text("RID,clean_image_id,artefact_image_id\n" + f"7,I{truth.image[0]},I{truth.image[1]}\n")
    with pytest.raises(MriqaInputError, match="line 2: the scans are of two subjects"):
        A.pair_subjects(root, pairs)
    pairs.write_text("subject,clean_image_id\n1,I1\n")
    with pytest.raises(MriqaInputError, match=r"pairs.csv: no subject column"):
        A.read_pairs_table(pairs)


def test_two_files_for_one_image_or_series_are_ambiguous(replica, tmp_path):
    out, keys, _ = replica
    root = tmp_path / "ADNI"
    shutil.copytree(keys["shaw.adni_root"], root)
    first = sorted(root.rglob("ADNI_*.nii"))[0]
    copy = first.parent.parent / "I1" / (first.name + ".gz")  # the same image twice (.nii and .nii.gz)
    copy.parent.mkdir()
    shutil.copy(first, copy)
    with pytest.raises(MriqaInputError, match=r"two files with LONI image id I\d+: ") as err:
        A.find_loni_files(root)
    assert str(first) in str(err.value) and str(copy) in str(err.value)
    copy.rename(copy.parent / first.name.replace(first.name.split("_")[-1], "I1.nii"))  # same series, new image
    with pytest.raises(MriqaInputError, match=r"line \d+ \(S\d+\) matches two files: .*I\d+\.nii and .*I\d+\.nii"):
        A.adni_scans(root, keys["shaw.adni_qc_table"])


def test_pipeline_runs_through_the_adapter_on_the_replica(shaw_run, replica):
    root, metrics = shaw_run
    _, _, truth = replica
    assert metrics["data_source"] == "adni" and metrics["gm_source"].startswith("SPM12 c1 GM maps in")
    assert metrics["exp2_n_pairs"] == 1 and metrics["n_test"] >= 1
    train = pd.read_json(root / "metrics/shaw_train.json", typ="series")
    assert train["gm_source"] == metrics["gm_source"] and "multitask" in train
    scans = read_tsv(root / "data/synthetic/shaw/scans.tsv")
    passed = truth[truth["pass"] == 1]
    assert sorted(scans["image_id"]) == sorted(f"I{i}" for i in passed["image"])  # QC failures never used
    pair = truth[truth["desc"] == "MPRAGE_Repeat"].iloc[0]
    assert set(scans.loc[scans["subject_id"] == pair["ptid"], "split"]) == {"test"}
    pairs = read_tsv(root / "data/synthetic/shaw/pairs.tsv")
    assert list(pairs["artefact_image_id"]) == [f"I{pair['image']}"]
    # every scan used (those passed + the pair's artefact scan) went through deepbet and the registration
    records = [pd.read_json(f, typ="series") for f in sorted((root / "data/prepared/adni").glob("*_prep.json"))]
    assert len(records) == len(passed) + 1 and all(r["prep"] == "registered" for r in records)


def test_prepared_scans_are_cached_and_gm_maps_follow_the_registration(shaw_run, replica):
    """The cache is reused (no second preparation); a scan's c1 map moved by the registration lands
    on the template's GM (the chain registers to it), far better than without the registration."""
    import os

    from mriqa_lib.data.preprocess import resample_to
    from mriqa_lib.data.template import REF_AFFINE, REF_SHAPE, load_template

    root, _ = shaw_run
    _, keys, truth = replica
    cache = root / "data/prepared/adni"
    files = A.find_loni_files(keys["shaw.adni_root"]).set_index("image_id")
    scan = files.loc[f"I{truth[truth['pass'] == 1]['image'].iloc[0]}", "path"]
    meta = cache / f"{scan.name.split('.nii')[0]}_prep.json"
    before = os.stat(meta).st_mtime_ns
    vol, rec = A.prepare_file(scan, cache)
    assert vol is not None and rec["prep"] == "registered" and os.stat(meta).st_mtime_ns == before
    tpl = load_template()
    truth_gm = resample_to(tpl.gm, tpl.affine, REF_AFFINE, REF_SHAPE).ravel()
    r = {}
    for name, record in (("moved", rec), ("unmoved", {})):  # {}: identity, no registration
        path, source = A.gm_target(scan, record, keys["shaw.adni_gm_dir"], cache)
        r[name] = np.corrcoef(load_nifti(path).data.ravel(), truth_gm)[0, 1]
    assert source.startswith("SPM12 c1")
    assert r["moved"] > 0.7 and r["moved"] > r["unmoved"] + 0.3
    fallback, flag = A.gm_target(scan, rec, None, cache)
    assert flag == A.GM_TEMPLATE and np.allclose(load_nifti(fallback).data.ravel(), truth_gm, atol=1e-3)
    missing = cache.parent / "no_gm"
    missing.mkdir()
    with pytest.raises(MriqaInputError, match=rf"no_gm: no grey-matter map of {scan.name} \(c1"):
        A.gm_target(scan, rec, missing, cache)
