"""Paper 3's stage module end to end on a tiny embedded cohort: synthesize -> train -> evaluate.

The run writes every metric that paper 3's claims read, and the subjects manifest keeps the
cohort's held-out test subjects (the benchmark's subjects) out of training and validation.
"""

from __future__ import annotations

import pytest
from stage_runs import N_SUBJECTS, claim_keys, run_stage, settings_with

from mriqa_lib.config import Settings
from mriqa_lib.methods.shaw.params import ShawParams


def tiny_settings() -> Settings:
    """Shaw settings small enough for seconds on one core (8 mm grid, 2-level U-Net, 4 steps)."""
    p = ShawParams(
        grid_mm=8.0,
        features=[2, 4],
        patch=8,
        iterations=4,
        multitask_iterations=4,
        val_every=2,
        corruptions_per_volume=1,
        multitask_extra_per_volume=1,
        snr_levels=3,
        n_pairs=3,
        map_cases=1,
    )
    return settings_with("shaw", p)


@pytest.fixture(scope="module")
def shaw_run(tmp_path_factory, stage_cohort):
    root = tmp_path_factory.mktemp("shaw_stage")
    with pytest.MonkeyPatch.context() as mp:
        return root, run_stage(root, stage_cohort, "shaw", tiny_settings(), mp)


def test_metrics_hold_every_key_the_claims_read(shaw_run):
    from mriqa_lib import claims

    _, metrics = shaw_run
    keys = claim_keys("shaw")
    assert keys and keys <= set(metrics), keys - set(metrics)
    assert metrics["exp1_levels"] == 3 and metrics["exp2_n_pairs"] == 3
    assert metrics["done_r2_ge_0_8"] == (metrics["exp1_r2_mean"] >= claims.target("shaw", "exp1_r2_mean"))


def test_held_out_subjects_never_train_or_validate(shaw_run):
    from mriqa_lib.data import splits
    from mriqa_lib.io import read_tsv

    root, _ = shaw_run
    held = splits.held_out(root / "data/embedded/participants.tsv")
    assert len(held) == 2
    manifest = splits.read_manifest(root / "data/synthetic/shaw")
    assert set(manifest) == {f"sub-{i:03d}" for i in range(1, N_SUBJECTS + 1)}  # every subject it used
    assert all(manifest[s] == "test" for s in held)
    scans = read_tsv(root / "data/synthetic/shaw/scans.tsv")
    assert dict(zip(scans["subject_id"], scans["split"])) == manifest
    for split in ("train", "val"):  # the artefact manifests name the subjects the networks saw
        seen = set(read_tsv(root / f"data/synthetic/shaw/{split}.tsv")["subject_id"])
        assert seen and not seen & held
    # experiment 2's pairs are made of test subjects only (never a training target)
    pairs = read_tsv(root / "data/synthetic/shaw/pairs.tsv")
    assert set(pairs["subject_id"]) <= {s for s, v in manifest.items() if v == "test"}


def test_training_checkpoints_reload_as_the_saved_models(shaw_run):
    """The stage's Lightning checkpoints reload with load_from_checkpoint; validating at the last step (4 of
    4), the checkpoint holds the weights of the state dict the scorer reads (models/shaw/<kind>.pt)."""
    import torch

    from mriqa_lib.methods.shaw.lit import ShawModule

    root, _ = shaw_run
    for kind in ("recon", "multitask"):
        module = ShawModule.load_from_checkpoint(root / f"models/shaw/ckpt_{kind}/checkpoints/best.ckpt")
        assert module.hparams.kind == kind and module.hparams.total_steps == 4
        saved = torch.load(root / f"models/shaw/{kind}.pt", weights_only=True)
        state = module.net.state_dict()
        assert saved.keys() == state.keys() and all(torch.equal(saved[k], state[k]) for k in saved)


def test_best_validation_checkpoint_is_the_lowest_logged_loss_and_the_saved_model(tmp_path, stage_cohort):
    """With ``checkpoint: best_val`` (the paper profile) the kept weights are those of the validation
    with the lowest logged loss, and they are what models/shaw/recon.pt holds."""
    import pandas as pd
    import torch

    settings = tiny_settings()
    settings.shaw.checkpoint, settings.shaw.iterations, settings.shaw.val_every = "best_val", 6, 1
    with pytest.MonkeyPatch.context() as mp:
        run_stage(tmp_path, stage_cohort, "shaw", settings, mp)
    folder = tmp_path / "models/shaw/ckpt_recon"
    logged = pd.read_csv(folder / "logs/metrics.csv")["val_loss"].dropna()
    assert len(logged) == 6
    ckpt = torch.load(folder / "checkpoints/best.ckpt", weights_only=False)
    score = next(v["best_model_score"] for k, v in ckpt["callbacks"].items() if k.startswith("ModelCheckpoint"))
    assert float(score) == pytest.approx(logged.min(), abs=1e-6)
    saved = torch.load(tmp_path / "models/shaw/recon.pt", weights_only=True)
    kept = {k[len("net.") :]: v for k, v in ckpt["state_dict"].items() if k.startswith("net.")}
    assert saved.keys() == kept.keys() and all(torch.equal(saved[k], kept[k]) for k in saved)
