"""Held-out-site evaluation: the site-out view keeps a whole site out of every method's training, and
the stage's pair and AUROC tables are what the score rows say (a toy method, no paper trained)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import BaseModel

from mriqa_lib import generalisation as G
from mriqa_lib.io import MriqaInputError, save_nifti
from mriqa_lib.methods import registry
from mriqa_lib.methods.registry import MethodSpec

ROOT = Path(__file__).resolve().parents[1]
SITES = {"siteA": ["test", "val", "train", "train", "train"], "siteB": ["test", "val", "train", "train", "train"]}


class ToyParams(BaseModel):
    seed: int = 0


class StdScorer(registry.Scorer):
    """Badness = the volume's standard deviation (noise raises it)."""

    def score(self, volume, reference=None, maps_dir=None):
        return {"toygen_std": float(np.std(volume.data))}


def train(settings) -> None:
    """The toy's training step: record which subjects the split owner lets it train on."""
    from mriqa_lib.data.splits import held_out
    from mriqa_lib.io import read_tsv

    tsv = Path("data/embedded/participants.tsv")
    held = held_out(tsv)
    subjects = [s for s in read_tsv(tsv, required=("participant_id",)).participant_id if s not in held]
    Path("models/toygen").mkdir(parents=True, exist_ok=True)
    Path("models/toygen/train.json").write_text(json.dumps(subjects))


def _in_process(method: str, step: str, workspace: Path) -> None:
    """run_step without a new process: the toy is registered in this process only."""
    import importlib
    import os

    previous = os.getcwd()
    os.chdir(workspace)
    try:
        getattr(importlib.import_module(registry.methods()[method].stage_module), step)(None)
    finally:
        os.chdir(previous)


@pytest.fixture()
def toygen(monkeypatch):
    monkeypatch.setattr(G, "run_step", _in_process)
    spec = registry.register(
        MethodSpec(
            name="toygen",
            paper="P9",
            title="standard deviation (test)",
            params=ToyParams,
            load_scorer=lambda model_dir, settings: StdScorer(),
            badness="toygen_std",
            stage_module=__name__,
            stages=("train", "evaluate"),
        )
    )
    yield spec
    registry.unregister("toygen")


def _cohort(folder: Path) -> None:
    rows, i = ["participant_id\tsite\tsplit"], 0
    x, y, z = np.meshgrid(*[np.linspace(-1, 1, 20)] * 3, indexing="ij")
    for site, splits in SITES.items():
        for split in splits:
            i += 1
            sid = f"sub-{i:02d}"
            rows.append(f"{sid}\t{site}\t{split}")
            ball = (x**2 + y**2 + z**2 < 0.5) * 100.0 + np.random.default_rng(i).normal(0, 1.0, x.shape)
            save_nifti(folder / sid / "anat" / f"{sid}_T1w.nii.gz", ball.astype(np.float32), np.diag([2.0] * 3 + [1.0]))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "participants.tsv").write_text("\n".join(rows) + "\n")


def test_site_folds_evaluate_every_subject_once_never_with_its_own_scan_in_the_calibration(tmp_path):
    _cohort(tmp_path)
    participants = tmp_path / "participants.tsv"
    site_b = ["sub-06", "sub-07", "sub-08", "sub-09", "sub-10"]
    for n in (1, 2, 3, 4):
        folds, unseen = G.site_folds(participants, "siteB", n)
        assert unseen == ["sub-06", "sub-07"]  # the in-site models trained on siteB's train subjects
        evaluated = [s for f in folds for s in f.evaluation]
        assert sorted(evaluated) == site_b  # every subject once
        for f in folds:
            assert len(f.calibration) == n and not set(f.calibration) & set(f.evaluation)
            assert set(f.calibration) <= set(site_b)
    folds, _ = G.site_folds(participants, "siteB", 2)
    assert folds == [
        G.Fold(["sub-09", "sub-10"], ["sub-06", "sub-07", "sub-08"]),
        G.Fold(["sub-06", "sub-07"], ["sub-09", "sub-10"]),
    ]
    with pytest.raises(MriqaInputError, match="unknown site 'siteZ'"):
        G.site_folds(participants, "siteZ", 2)
    with pytest.raises(MriqaInputError, match="n_calibration"):
        G.site_folds(participants, "siteB", 5)


def test_no_subject_of_the_held_out_site_reaches_a_method_s_training(toygen, tmp_path):
    """The view relabels the site `test`; the split owner then keeps all of it out of training."""
    _cohort(tmp_path / "cohort")
    G.site_out_view(tmp_path / "cohort", tmp_path / "ws" / "data" / "embedded", "siteA")
    from mriqa_lib.config import load_settings

    G.train_site_out(load_settings(ROOT / "params.yaml"), tmp_path / "ws", ["toygen"], log=lambda s: None)
    trained = json.loads((tmp_path / "ws" / "models" / "toygen" / "train.json").read_text())
    assert trained == ["sub-07", "sub-08", "sub-09", "sub-10"]  # siteB's training and validation subjects only
    original = (tmp_path / "cohort" / "participants.tsv").read_text()
    assert "siteA\ttrain" in original  # the cohort itself is untouched
    assert (tmp_path / "ws" / "data" / "embedded" / "sub-01").is_symlink()


def test_pair_table_counts_pairs_by_hand_and_auroc_is_scikit_learn():
    from sklearn.metrics import roc_auc_score

    scores = pd.DataFrame(
        {
            "subject": ["a", "a", "a", "b", "b", "b"],
            "artifact": ["clean", "noise", "blur", "clean", "noise", "blur"],
            "toy_x": [1.0, 2.0, 1.0, 5.0, 4.0, 6.0],
        }
    )

    class Spec:
        badness, badness_sign = "toy_x", 1.0

    specs = {"toy": Spec}
    (row,) = G.pair_table(scores, ["toy"], "site-out", "siteQ", specs)
    # pairs: a/noise 2>1 right, a/blur tie (half), b/noise 4<5 wrong, b/blur 6>5 right -> 2.5 / 4
    assert row["pairs_right"] == pytest.approx(2.5 / 4) and row["n_pairs"] == 4
    assert row["auroc"] == pytest.approx(roc_auc_score(scores.artifact != "clean", scores.toy_x))
    assert np.isnan(row["pairs_right_low"]) and np.isnan(row["pairs_right_high"])  # two subjects: no interval


class _Toy:
    badness, badness_sign = "toy_x", 1.0


def test_subject_bootstrap_resamples_subjects_not_pairs_closed_form():
    """Each subject's 10 pairs are all right or all wrong: the pairs are as correlated as can be, so the
    interval must be that of n_subjects draws (width 2 * 1.96 * sd / sqrt(n_subjects)), not of all the pairs."""
    rng = np.random.default_rng(3)
    per_subject = rng.random(40) < 0.7
    subject = np.repeat([f"s{i}" for i in range(40)], 10)
    right = np.repeat(per_subject.astype(float), 10)
    value, low, high = G.subject_bootstrap(right, subject, n_boot=20000, seed=0)
    assert value == pytest.approx(per_subject.mean())
    expected = 2 * 1.96 * per_subject.std() / np.sqrt(40)
    assert (high - low) == pytest.approx(expected, rel=0.12)
    assert (high - low) > 2.5 * 2 * 1.96 * per_subject.std() / np.sqrt(400)  # the pair-level width is sqrt(10) smaller
    assert np.isnan(G.subject_bootstrap([np.nan], ["a"], 100, 0)[0])  # no finite outcome: no estimate


def test_calibration_effect_is_the_paired_difference_over_the_same_volumes():
    rows = []
    others = [(s, 5.0, 6.0, 4.0) for s in "bcde"]  # right on noise, wrong on blur, in both ways
    for way, noise_a in (("site-out", 0.5), ("site-out + calibration", 2.0)):  # calibration fixes a/noise
        for subject, clean, noise, blur in [("a", 1.0, noise_a, 3.0), *others]:
            for artifact, x in (("clean", clean), ("noise", noise), ("blur", blur)):
                rows.append({"way": way, "subject": subject, "artifact": artifact, "severity_level": 1, "toy_x": x})
    scores = pd.DataFrame(rows)
    (row,) = G.calibration_effect(scores, ["toy"], "siteQ", {"toy": _Toy})
    assert row["effect"] == pytest.approx(6 / 10 - 5 / 10) and row["n_pairs"] == 10
    # only subject a changed (+1 of its 2 pairs): k draws of a among 5 give k / 10, k ~ Binomial(5, 1/5),
    # whose 2.5 % and 97.5 % quantiles are 0 and 3
    assert (row["effect_low"], row["effect_high"]) == pytest.approx((0.0, 0.3))
    shuffled = scores.sample(frac=1.0, random_state=0)  # pairs are matched by key, not by row order
    assert G.calibration_effect(shuffled, ["toy"], "siteQ", {"toy": _Toy})[0]["effect"] == pytest.approx(row["effect"])
    same = scores.assign(toy_x=np.where(scores.way == "site-out", scores.toy_x, np.nan))
    same.loc[same.way != "site-out", "toy_x"] = same.loc[same.way == "site-out", "toy_x"].to_numpy()
    (zero,) = G.calibration_effect(same, ["toy"], "siteQ", {"toy": _Toy})
    assert (zero["effect"], zero["effect_low"], zero["effect_high"]) == (0.0, 0.0, 0.0)


def test_save_table_flattens_a_pivot_tables_column_levels(tmp_path):
    from mriqa_lib.plots import save_table

    summary = pd.DataFrame({"method": ["p", "p"], "way": ["raw", "cal"], "pairs_right": [0.5, 0.75]})
    table = summary.pivot_table(index="method", columns="way", values=["pairs_right"]).reset_index()
    csv, md = save_table(table, tmp_path, "t")
    assert pd.read_csv(csv).columns.tolist() == ["method", "pairs_right, cal", "pairs_right, raw"]
    assert "('" not in md.read_text() and "pairs_right, raw" in md.read_text()


def test_the_stage_scores_the_held_out_site_three_ways(toygen, tmp_path, monkeypatch):
    from mriqa_lib.config import load_settings
    from mriqa_lib.io import read_json
    from mriqa_lib.stages import generalisation as stage

    monkeypatch.chdir(tmp_path)
    _cohort(tmp_path / "data" / "embedded")
    train(None)  # the "in-site" model: trained on the whole cohort's training subjects
    settings = load_settings(ROOT / "params.yaml")
    settings.generalisation = settings.generalisation.model_copy(
        update={"methods": ["toygen"], "sites": ["siteB"], "n_calibration": 3}
    )
    settings.benchmark = settings.benchmark.model_copy(update={"artifacts": ["rician_noise"], "levels": [0.5, 1.0]})
    settings.trainer.threads = 1
    stage.run(settings)

    scores = pd.read_csv("results/generalisation/scores.tsv", sep="\t")
    summary = pd.read_csv("results/generalisation/summary.tsv", sep="\t")
    assert list(summary.way) == list(G.WAYS)
    site_b = {"sub-06", "sub-07", "sub-08", "sub-09", "sub-10"}
    subjects = scores.groupby("way").subject.apply(set)
    assert subjects["site-out"] == subjects["site-out + calibration"] == site_b
    assert subjects["in-site"] == {"sub-06", "sub-07"}  # the in-site model trained on the others
    for _, rows in scores[scores.artifact != "clean"].groupby("subject"):  # the same corrupted volumes
        by_way = rows.groupby("way").toygen_std.apply(list)
        assert by_way["site-out"] == by_way["site-out + calibration"]
    for way, rows in scores.groupby("way"):
        clean = rows[rows.artifact == "clean"].set_index("subject").toygen_std
        corrupted = rows[rows.artifact != "clean"]
        right = np.mean(corrupted.toygen_std.to_numpy() > corrupted.subject.map(clean).to_numpy())
        assert summary.set_index("way").loc[way, "pairs_right"] == pytest.approx(right)
    effect = pd.read_csv("results/generalisation/calibration_effect.tsv", sep="\t").set_index("method")
    by_way = summary.set_index("way").pairs_right  # the same pairs in both ways: the paired mean is the difference
    assert effect.loc["toygen", "effect"] == pytest.approx(by_way["site-out + calibration"] - by_way["site-out"])
    metrics = json.loads(Path("metrics/generalisation.json").read_text(), parse_constant=pytest.fail)  # no NaN
    assert metrics["siteB_toygen_calibration_effect"] == pytest.approx(effect.loc["toygen", "effect"], abs=1e-4)
    assert "siteB_toygen_in_site_pairs_right_low" not in metrics  # two in-site subjects: no interval
    metrics = read_json("metrics/generalisation.json")
    assert metrics["toygen_site_out_calibration_pairs_right"] == pytest.approx(
        summary.set_index("way").loc["site-out + calibration", "pairs_right"]
    )
    assert metrics["sites"] == ["siteB"]


def test_a_failing_step_names_the_method_step_and_workspace(tmp_path):
    """run_step runs `mriqa stage` in a fresh process; its failure is an error naming the step."""
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    with pytest.raises(RuntimeError, match=r"`mriqa stage nosuchmethod train` failed in .* \(exit 2\)"):
        G.run_step("nosuchmethod", "train", tmp_path)


def test_site_out_settings_apply_each_method_s_badness_only_then_the_user_s():
    from mriqa_lib.config import load_settings

    settings = load_settings(ROOT / "params.yaml")
    settings.generalisation = settings.generalisation.model_copy(
        update={"train_overrides": ["bricout.seeds=[3]", "shaw.iterations=7"]}
    )
    out = G.site_out_settings(settings, registry.names())
    assert out.shaw.multitask_iterations == 1 and out.bricout.scratch.max_epochs == 1  # the methods' own
    assert out.bricout.seeds == [3] and out.shaw.iterations == 7  # the user's, applied last
    assert settings.shaw.multitask_iterations != 1  # the pipeline's settings are untouched
    only_ecker = G.site_out_settings(settings, ["ecker"])
    assert only_ecker.shaw.multitask_iterations == settings.shaw.multitask_iterations
    for spec in registry.methods().values():  # every method's own overrides name real settings
        G.site_out_settings(load_settings(ROOT / "params.yaml"), [spec.name])


def test_metrics_keep_finite_intervals_and_leave_out_missing_ones():
    nan = float("nan")
    table = pd.DataFrame(
        [
            {"site": "s", "method": "m", "way": "site-out", "pairs_right": 0.8, "pairs_right_low": 0.7},
            {"site": "s", "method": "m", "way": "in-site", "pairs_right": 0.6, "pairs_right_low": nan},
        ]
    ).assign(pairs_right_high=[0.9, nan], auroc=[0.75, 0.5])
    metrics = G.generalisation_metrics(table)
    assert metrics["s_m_site_out_pairs_right_low"] == 0.7 and metrics["s_m_site_out_pairs_right_high"] == 0.9
    assert "s_m_in_site_pairs_right_low" not in metrics and metrics["s_m_in_site_pairs_right"] == 0.6
    json.loads(json.dumps(metrics, allow_nan=False))  # strict JSON
