"""End to end on a tiny CAPS tree: synthesize -> train -> evaluate writes every metric the issue names."""

import json
from pathlib import Path

import pandas as pd
from test_bricout import _write_caps

from mriqa_lib.config import Settings, default_cohort_params
from mriqa_lib.methods.bricout.params import BricoutParams


def test_tiny_pipeline_end_to_end(tmp_path, monkeypatch):
    from mriqa_lib.stages import bricout as stage

    caps, table = _write_caps(tmp_path, sites=("NC", "CM", "IR"), subjects_per_site=4)
    bp = BricoutParams(progress=False, workers=1, seeds=[0, 1])
    bp.data.ampscz_caps, bp.data.ampscz_qc = str(caps), str(table)
    bp.data.n_qc_sites, bp.data.grid_mm, bp.data.crop = 1, 8.0, (16, 16, 16)
    bp.data.synth_split = (0.5, 0.25, 0.25)
    bp.data.qc_split = (0.5, 0.25, 0.25)
    bp.model.channels, bp.model.latent = [2, 2], 2
    bp.pretrain.samples_per_volume, bp.pretrain.max_epochs = 2, 1
    bp.transfer.max_epochs = bp.scratch.max_epochs = 1
    bp.augment.elastic_max_displacement_mm = 4.0
    bp.search.enabled, bp.search.n_trials = True, 2  # the paper's hyper-parameter search, run for real
    settings = Settings(cohort=default_cohort_params(), bricout=bp)
    monkeypatch.chdir(tmp_path)
    stage.synthesize(settings)
    stage.train(settings)
    stage.evaluate(settings)
    metrics = json.loads((tmp_path / "metrics/bricout.json").read_text())
    train = json.loads((tmp_path / "metrics/bricout_train.json").read_text())
    for key in (
        "synth_test_r2",
        "transfer_bal_acc_median",
        "scratch_bal_acc_median",
        "transfer_bal_acc_seed0",
        "scratch_bal_acc_seed1",
    ):
        assert key in metrics
    assert 0.0 <= metrics["transfer_bal_acc_median"] <= 1.0
    for kind in ("pretrain", "transfer", "scratch"):
        assert train[f"{kind}_wall_seconds"] > 0
        assert train[f"{kind}_peak_cpu_rss_mb"] > 0
    per_seed = pd.read_csv(tmp_path / "results/bricout/qc_per_seed.tsv", sep="\t")
    assert sorted(per_seed.model.unique()) == ["scratch", "transfer"] and len(per_seed) == 4
    config = json.loads((tmp_path / "models/bricout/config.json").read_text())
    sp = bp.search
    for kind in ("transfer", "scratch"):
        trials = config[kind]["search_trials"]
        assert len(trials) == 2
        for t in trials:
            assert sp.lr[0] <= t["lr"] <= sp.lr[1] and sp.dropout[0] <= t["dropout"] <= sp.dropout[1]
            assert t["hidden"] in sp.hidden and sp.weight_decay[0] <= t["weight_decay"] <= sp.weight_decay[1]
        best = max(trials, key=lambda t: t["val_bal_acc"])
        assert {k: config[kind]["config"][k] for k in ("lr", "dropout", "hidden")} == {
            k: best[k] for k in ("lr", "dropout", "hidden")
        }
    # real data: nothing is held out, subjects are listed as <dataset>/<subject> in their split
    from mriqa_lib.data.splits import read_manifest

    scans = pd.read_csv(tmp_path / "data/synthetic/bricout/scans.tsv", sep="\t", dtype=str).fillna("")
    used = scans[scans.split != ""]
    assert read_manifest(tmp_path / "data/synthetic/bricout") == dict(zip("AMPSCZ/" + used.subject, used.split))
    for name in ("calibration.tsv", "qc_split_counts.tsv", "parameters.tsv", "pipeline_examples.npz", "cost.json"):
        assert (tmp_path / "results/bricout" / name).exists()


def test_search_keeps_the_best_trial_and_samples_within_ranges(monkeypatch):
    """Random search: the returned config is the trial with the highest validation score."""
    import numpy as np

    from mriqa_lib.methods.bricout import training

    def fake_fit(settings, cfg, frozen, data, seed, ckpt, in_features, enc_state):
        return None, {"val_bal_acc": -abs(np.log10(cfg["lr"]) + 3.0)}  # best at lr = 1e-3

    monkeypatch.setattr(training, "fit_classifier", fake_fit)
    bp = BricoutParams(progress=False)
    bp.search.enabled, bp.search.n_trials = True, 12
    settings = Settings(cohort=default_cohort_params(), bricout=bp)
    base = bp.transfer.model_dump()
    cfg, trials = training.search(settings, base, True, {}, 4, Path("/nonexistent"), None)
    lrs = np.array([t["lr"] for t in trials])
    assert len(trials) == 12 and len(set(lrs)) == 12
    assert cfg["lr"] == lrs[np.argmin(np.abs(np.log10(lrs) + 3.0))]
    assert cfg["max_epochs"] == base["max_epochs"]  # untouched keys come from the base config
    again, _ = training.search(settings, base, True, {}, 4, Path("/nonexistent"), None)
    assert again == cfg  # seeded: the same trials again
