"""Stage ``bricout`` on the embedded path: synthesize -> train -> evaluate on a tiny cohort.

The real-data path (AMP SCZ CAPS tree) is run by test_bricout_pipeline.py; here the embedded
cohort is the input, as in ``dvc repro``, so the cohort's held-out test subjects exist and the
split rule can be checked: they are in no synthetic-motion or QC training/validation split.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from mriqa_lib import claims
from mriqa_lib.config import CohortParams, Settings
from mriqa_lib.methods.bricout.params import BricoutParams


def tiny_settings(cohort: CohortParams) -> Settings:
    """Tiny network (8 mm grid, 16^3 crop, channels [2, 2]) on a two-site cohort: one synthesis
    site and one QC site, every split non-empty."""
    bp = BricoutParams(progress=False, workers=1, seeds=[0, 1])
    bp.data.n_qc_sites, bp.data.grid_mm, bp.data.crop = 1, 8.0, (16, 16, 16)
    bp.data.qc_split = (0.4, 0.2, 0.4)
    bp.embedded_qc.sessions = 4
    bp.model.channels, bp.model.latent = [2, 2], 2
    bp.pretrain.samples_per_volume, bp.pretrain.max_epochs, bp.pretrain.batch_size = 2, 1, 4
    bp.transfer.max_epochs = bp.scratch.max_epochs = 1
    bp.augment.elastic_max_displacement_mm = 4.0
    return Settings(cohort=cohort, bricout=bp)


def run_embedded(root: Path, cohort: CohortParams) -> dict:
    """Build the cohort under ``root/data/embedded`` and run the three steps in ``root``."""
    import os

    from mriqa_lib.data.cohort import build_cohort
    from mriqa_lib.stages import bricout as stage

    build_cohort(root / "data/embedded", cohort, progress=False, log=lambda s: None)
    settings = tiny_settings(cohort)
    cwd = os.getcwd()
    os.chdir(root)
    try:
        stage.synthesize(settings)
        stage.train(settings)
        stage.evaluate(settings)
    finally:
        os.chdir(cwd)
    return json.loads((root / "metrics/bricout.json").read_text())


@pytest.fixture(scope="module")
def embedded_run(tmp_path_factory, tiny_cohort_params):
    """One run on an 8-subject, 2-site cohort (4 subjects a site: held-out, val and train at each)."""
    cohort = tiny_cohort_params.model_copy(update={"n_subjects": 8})
    root = tmp_path_factory.mktemp("bricout_stage")
    return root, run_embedded(root, cohort)


def test_metrics_hold_every_key_the_claims_read(embedded_run):
    root, metrics = embedded_run
    keys = {k.strip() for c in claims.CLAIMS if c.method == "bricout" for k in c.metric.split(" - ")}
    assert keys and keys <= set(metrics)
    # the claimed R^2 is 1 - SSE / SST of the calibration table's synthetic test rows
    cal = pd.read_csv(root / "results/bricout/calibration.tsv", sep="\t")
    test = cal[cal.split == "test"]
    sse, sst = ((test.rms_true - test.rms_pred) ** 2).sum(), ((test.rms_true - test.rms_true.mean()) ** 2).sum()
    assert metrics["synth_test_r2"] == pytest.approx(1 - sse / sst, rel=1e-5)
    # the claimed medians are the medians of the per-seed test balanced accuracies
    per_seed = pd.read_csv(root / "results/bricout/qc_per_seed.tsv", sep="\t")
    for kind in ("transfer", "scratch"):
        accs = per_seed[per_seed.model == kind].bal_acc
        assert len(accs) == 2 and accs.between(0, 1).all()
        assert metrics[f"{kind}_bal_acc_median"] == pytest.approx(accs.median())


def test_held_out_subjects_are_in_no_training_or_validation_split(embedded_run):
    from mriqa_lib.data import splits

    root, metrics = embedded_run
    held = splits.held_out(root / "data/embedded/participants.tsv")
    assert held  # the cohort holds some subjects out
    synthetic = root / "data/synthetic/bricout"
    for folder in (synthetic, synthetic / "samples", synthetic / "qc"):
        used = splits.read_manifest(folder)
        assert not {s for s, split in used.items() if split in ("train", "val") and s in held}, folder
    # the manifests say what the data hold: every sample and QC volume is in its subject's split
    both = {**splits.read_manifest(synthetic / "samples"), **splits.read_manifest(synthetic / "qc")}
    assert set(both) == {f"sub-{i:03d}" for i in range(1, 9)}
    for table in ("synthetic.tsv", "qc.tsv"):
        frame = pd.read_csv(synthetic / table, sep="\t", dtype=str)
        assert (frame.subject.map(both) == frame.split).all()
        assert {"train", "val", "test"} <= set(frame.split)
    # held-out subjects the method tests on are scored (QC test set, synthetic test set)
    assert metrics["n_qc_test"] > 0 and metrics["n_synth_test"] > 0


def test_saved_weights_are_the_best_checkpoints(embedded_run):
    """What the train step saves for scoring is the best Lightning checkpoint, reloaded with
    ``load_from_checkpoint`` from its saved hyper-parameters alone."""
    import torch

    from mriqa_lib.methods.bricout.model import MotionRegressor, QCClassifier

    root, _ = embedded_run
    models = root / "models/bricout"
    config = json.loads((models / "config.json").read_text())
    reg = MotionRegressor.load_from_checkpoint(models / "pretrain/checkpoints/best.ckpt", map_location="cpu")
    saved = torch.load(models / "pretrain/sfcn.pt", weights_only=True)
    assert all(torch.equal(v, saved[k]) for k, v in reg.net.state_dict().items())
    for kind in ("transfer", "scratch"):
        for run in config[kind]["runs"]:
            clf = QCClassifier.load_from_checkpoint(run["checkpoint"], map_location="cpu")
            assert clf.hparams.frozen == (kind == "transfer") and clf.hparams.hidden == config[kind]["config"]["hidden"]
            saved = torch.load(models / kind / f"seed{run['seed']}" / "model.pt", weights_only=True)
            net = clf.net.head if kind == "transfer" else clf.net
            assert all(torch.equal(v, saved[k]) for k, v in net.state_dict().items())
