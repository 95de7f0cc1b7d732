"""Paper 5's data as delivered: the AMP SCZ replica (Clinica t1-linear CAPS with rec-norm / rec-nonorm
images, the authors' AMPSCZ_scores.csv, sites.csv and finetune.csv) and the HCPEP replica (CAPS +
hcpep_scores.csv), read by the real bricout adapter (mriqa_lib.data.ampscz)."""

from __future__ import annotations

import os
import shutil

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pandas as pd
import pytest
from stage_runs import run_stage

from mriqa_lib.data import ampscz as A
from mriqa_lib.io import MriqaInputError
from mriqa_lib.replicas import hcpep as RH


@pytest.fixture(scope="module")
def replica(tmp_path_factory, stage_cohort):
    """Both replicas of the 6-subject stage cohort (hcpep.build writes the AMP SCZ one too)."""
    out = tmp_path_factory.mktemp("ampscz") / "raw"
    return out, RH.build(out, stage_cohort, seed=0)


def _rated(path) -> pd.DataFrame:
    """The rated rows of the replica's QC file, read with plain pandas (independent of the adapter)."""
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    return raw[raw["score"].isin(["1", "2", "3", "4"])].reset_index(drop=True)


# ------------------------------------------------------------------------------------------ AMP SCZ
def test_ampscz_adapter_reads_the_authors_files_and_picks_rec_norm(replica):
    out, keys = replica
    caps, qc = keys["bricout.data.ampscz_caps"], keys["bricout.data.ampscz_qc"]
    frame = A.load_dataset(caps, qc, "AMPSCZ")
    truth = _rated(qc)
    assert frame["subject"].tolist() == ("sub-" + truth["sub_id_gs"]).tolist()  # unrated rows dropped
    assert frame["session"].tolist() == ("ses-" + truth["ses_id_gs"]).tolist()
    assert frame["score"].tolist() == truth["score"].astype(int).tolist()
    assert frame["site"].tolist() == truth["sub_id_gs"].str[:2].tolist()
    # the replica holds the ambiguity the rule settles: rec-nonorm and desc-Crop beside rec-norm
    names = [p.name for p in (out / "ampscz").rglob("*_T1w.nii.gz")]
    assert any("_rec-nonorm_" in n for n in names) and any("_desc-Crop_" in n for n in names)
    picked = [os.path.basename(p) for p in frame["path"]]
    assert not any("_rec-nonorm_" in n or "_desc-Crop_" in n for n in picked)
    assert sum("_rec-" not in n for n in picked) == 1  # the scan without a rec entity
    # the QC-site scans: the files the replica lists in its finetune.csv (the authors' format)
    split = A.read_qc_table(out / "ampscz" / "finetune.csv")
    qc = frame[frame.site.isin(keys["bricout.data.qc_sites"])]
    assert qc["path"].tolist() == [os.path.join(os.path.dirname(caps), f) for f in split["file"]]
    assert set(A.qc_class(qc["score"].to_numpy())) == {0, 1, 2}  # the 3 QC classes all occur
    assert keys["bricout.data.qc_sites"] == A.qc_sites(out / "ampscz" / "sites.csv") == ["IR"]
    assert set(split["given_split"]) == {"train", "val", "test"}


def test_authors_scan_list_settles_two_runs_and_the_rule_refuses(replica, tmp_path):
    out, keys = replica
    caps = tmp_path / "caps"
    shutil.copytree(keys["bricout.data.ampscz_caps"], caps)
    split = A.read_qc_table(out / "ampscz" / "finetune.csv")
    first = caps / split["file"][0].split("/", 1)[1]
    run2 = first.with_name(first.name.replace("_run-1_", "_run-2_"))
    shutil.copy(first, run2)
    with pytest.raises(MriqaInputError) as err:  # two runs: both named, no silent choice
        A.load_dataset(caps, keys["bricout.data.ampscz_qc"], "AMPSCZ")
    assert first.name in str(err.value) and run2.name in str(err.value)
    # the authors' scan list names the file they used: it settles the two runs
    frame = A.load_dataset(caps, out / "ampscz" / "finetune.csv", "AMPSCZ")
    assert frame["path"][0] == str(first) and len(frame) == len(split)
    # only the non-normalised reconstruction: an error naming it
    first.unlink()
    run2.unlink()
    nonorm = first.with_name(first.name.replace("_rec-norm_", "_rec-nonorm_"))
    with pytest.raises(MriqaInputError, match=f"no rec-norm image.*{nonorm.name}"):
        A.find_t1_linear(caps, f"sub-{first.name.split('_')[0][4:]}", first.parent.parent.name)


def test_ampscz_bad_inputs_name_the_file_or_column(replica, tmp_path):
    _, keys = replica
    caps, qc = keys["bricout.data.ampscz_caps"], keys["bricout.data.ampscz_qc"]
    table = pd.read_csv(qc, dtype=str, keep_default_na=False)
    bad = tmp_path / "no_comment.csv"
    table.drop(columns="comment").to_csv(bad, index=False)
    with pytest.raises(MriqaInputError, match=r"no_comment\.csv.*'comment'"):
        A.read_qc_table(bad)
    bad = tmp_path / "bad_score.csv"
    table.assign(score=table["score"].where(table.index != 1, "5")).to_csv(bad, index=False)
    with pytest.raises(MriqaInputError, match=r"bad_score\.csv: row 3: score '5'"):
        A.read_qc_table(bad)
    with pytest.raises(MriqaInputError, match="missing.csv: QC table not found"):
        A.read_qc_table(tmp_path / "missing.csv")
    ghost = tmp_path / "ghost.csv"
    table.assign(sub_id_gs=table["sub_id_gs"].where(table.index != 0, "NC00000")).to_csv(ghost, index=False)
    with pytest.raises(MriqaInputError, match="sub-NC00000/ses-.*/t1_linear: no t1-linear image"):
        A.load_dataset(caps, ghost, "AMPSCZ")
    sites = tmp_path / "sites.csv"
    sites.write_text(",site,group\n0,NC,pretrain\n1,IR,qc\n")
    with pytest.raises(MriqaInputError, match=r"sites\.csv: group \['qc'\]"):
        A.read_sites(sites)


# ------------------------------------------------------------------------------------------ HCPEP
def test_hcpep_adapter_reads_the_sheet_as_the_authors(replica, stage_cohort):
    _, keys = replica
    frame = A.load_dataset(keys["bricout.data.hcpep_caps"], keys["bricout.data.hcpep_qc"], "HCPEP")
    sheet = pd.read_csv(keys["bricout.data.hcpep_qc"], dtype=str, keep_default_na=False)
    rated = sheet[sheet["T1w"] != ""].drop_duplicates("Subject ID", keep="last")  # latest rating
    assert frame["subject"].tolist() == ("sub-" + rated["Subject ID"].str.split("_").str[0]).tolist()
    assert set(frame["session"]) == {"ses-1"} and frame["site"].tolist() == rated["Center"].tolist()
    # "3/4" counts as 3; the scan rated twice keeps its later rating (4, not 2)
    expect = rated["T1w"].map({"4": 4, "3": 3, "3/4": 3, "2": 2}).tolist()
    assert frame["score"].tolist() == expect and frame["score"].iloc[0] == 4
    assert all(p.endswith("_space-MNI152NLin2009cSym_res-1x1x1_T1w.nii.gz") and os.path.exists(p) for p in frame.path)


def test_hcpep_bad_inputs_name_the_file_or_column(replica, tmp_path):
    _, keys = replica
    sheet = pd.read_csv(keys["bricout.data.hcpep_qc"], dtype=str, keep_default_na=False)
    bad = tmp_path / "hcpep.csv"
    sheet.drop(columns="Center").to_csv(bad, index=False)
    with pytest.raises(MriqaInputError, match=r"hcpep\.csv: HCPEP sheet: missing column\(s\) \['Center'\]"):
        A.read_qc_table(bad)
    sheet.assign(**{"Subject ID": sheet["Subject ID"].where(sheet.index != 2, "4005-1")}).to_csv(bad, index=False)
    with pytest.raises(MriqaInputError, match="row 4: Subject ID '4005-1'"):
        A.read_qc_table(bad)


# ------------------------------------------------------------------------------------------ end to end
def test_stage_runs_through_the_adapter_on_both_replicas(replica, tmp_path, stage_cohort):
    from mriqa_lib.config import parse_settings
    from mriqa_lib.replicas import workspace_params

    _, keys = replica
    settings = parse_settings(workspace_params({}, {**RH.TINY, **keys}))
    with pytest.MonkeyPatch.context() as mp:
        metrics = run_stage(tmp_path, stage_cohort, "bricout", settings, mp)
    scans = pd.read_csv(tmp_path / "data/synthetic/bricout/scans.tsv", sep="\t", dtype=str, keep_default_na=False)
    amp = _rated(keys["bricout.data.ampscz_qc"])
    hcp = A.read_qc_table(keys["bricout.data.hcpep_qc"])
    assert scans.dataset.value_counts().to_dict() == {"AMPSCZ": len(amp), "HCPEP": len(hcp)}
    assert set(scans[scans.role == "qc"].site) == {"IR"} and (scans[scans.dataset == "HCPEP"].role == "synthesis").all()
    qc_truth = amp[amp.sub_id_gs.str.startswith("IR")]
    assert metrics["n_qc_test"] == (scans[(scans.role == "qc")].split == "test").sum() > 0
    assert (scans.role == "qc").sum() == len(qc_truth)
    # motion synthesised only on rated-4 scans without motion words, HCPEP's clean 4s included
    eligible = scans[scans.eligible == "True"]
    assert set(eligible.score) == {"4"} and (eligible.dataset == "HCPEP").any()
    assert not eligible.comments.str.contains("motion").any()
    assert {"synth_test_r2", "transfer_bal_acc_median", "scratch_bal_acc_median"} <= set(metrics)


def test_authors_scan_lists_read_together_keep_their_split(replica, tmp_path):
    """Given pretrain.csv + finetune.csv, each scan keeps the authors' group; the drawn split differs."""
    from mriqa_lib.config import parse_settings
    from mriqa_lib.methods.bricout.synthesis import scans_table
    from mriqa_lib.replicas import workspace_params

    out, keys = replica
    lists = [str(out / "ampscz" / "pretrain.csv"), str(out / "ampscz" / "finetune.csv")]
    truth = pd.concat([pd.read_csv(p, dtype=str) for p in lists])
    authors = {(f"sub-{s}", f"ses-{v}"): g for s, v, g in zip(truth.sub_id_gs, truth.ses_id_gs, truth.group)}

    def table(qc) -> pd.DataFrame:
        settings = parse_settings(workspace_params({}, {**RH.TINY, **keys, "bricout.data.ampscz_qc": qc}))
        t = scans_table(settings, tmp_path / "unused")  # real data: the embedded cohort is not read
        return t[(t.dataset == "AMPSCZ") & (t.split != "")]

    given = table(lists)  # every QC scan, and the synthesis scans that pass the motion-comment rule
    assert (given.role == "qc").sum() == len(pd.read_csv(lists[1])) and (given.role == "synthesis").sum() > 0
    assert [authors[(s, v)] for s, v in zip(given.subject, given.session)] == given.split.tolist()
    drawn = table(keys["bricout.data.ampscz_qc"])  # the scores file: no split given, one is drawn
    drawn = drawn[[(s, v) in authors for s, v in zip(drawn.subject, drawn.session)]]
    assert [authors[(s, v)] for s, v in zip(drawn.subject, drawn.session)] != drawn.split.tolist()
    # a scan listed in two tables is an error naming both
    with pytest.raises(MriqaInputError, match="two QC tables.*finetune.csv and .*finetune.csv"):
        A.read_qc_tables([lists[1], shutil.copy(lists[1], tmp_path / "finetune.csv")])
