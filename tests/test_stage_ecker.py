"""Paper 1's stage module end to end on a tiny embedded cohort: synthesize -> train -> evaluate.

The run writes every metric that paper 1's claims read, and the subjects manifest keeps the
cohort's held-out test subjects (the benchmark's subjects) out of SimCLR's training data and out
of the reference pool.
"""

from __future__ import annotations

import numpy as np
import pytest
from stage_runs import N_SUBJECTS, claim_keys, run_stage, settings_with

from mriqa_lib.config import Settings
from mriqa_lib.methods.ecker.params import EckerParams


def tiny_settings() -> Settings:
    """Ecker settings small enough for seconds on one core (2 slices of 16 px, a 1/8-width ResNet18, 1 epoch)."""
    p = EckerParams(
        n_test_subjects=2,
        n_slices=2,
        slice_step=1,
        img_size=16,
        train_size=16,
        width=0.125,
        proj_dim=8,
        epochs=1,
        warmup_epochs=0,
        batch_size=4,
        n_test_motion=8,
        n_test_noise=8,
        n_refs=2,
        match_site=True,
        continuous_levels=[0.0, 2.0, 6.0],
        continuous_cases=1,
    )
    return settings_with("ecker", p)


@pytest.fixture(scope="module")
def ecker_run(tmp_path_factory, stage_cohort):
    root = tmp_path_factory.mktemp("ecker_stage")
    with pytest.MonkeyPatch.context() as mp:
        return root, run_stage(root, stage_cohort, "ecker", tiny_settings(), mp)


def test_metrics_hold_every_key_the_claims_read(ecker_run):
    _, metrics = ecker_run
    keys = claim_keys("ecker")
    assert keys and keys <= set(metrics), keys - set(metrics)
    # the tiny settings' case counts reach the metrics: 8 + 8 balanced cases, 2 subjects x 2 NAKO-like volumes,
    # 2 subjects x 1 slice x 3 motion levels
    assert (metrics["motion_n"], metrics["noise_n"], metrics["nako_n"], metrics["continuous_n"]) == (8, 8, 4, 6)
    assert (metrics["n_pool_subjects"], metrics["n_test_subjects"]) == (N_SUBJECTS - 2, 2)
    for prefix in ("motion", "noise", "nako"):
        assert 0.0 <= metrics[f"{prefix}_accuracy"] <= 1.0


def test_held_out_subjects_never_train_nor_serve_as_references(ecker_run):
    from mriqa_lib.data import splits
    from mriqa_lib.io import read_tsv

    root, _ = ecker_run
    held = splits.held_out(root / "data/embedded/participants.tsv")
    assert len(held) == 2
    manifest = splits.read_manifest(root / "data/synthetic/ecker")
    assert set(manifest) == {f"sub-{i:03d}" for i in range(1, N_SUBJECTS + 1)}  # every subject it used
    assert all(manifest[s] == "test" for s in held)
    train = {s for s, split in manifest.items() if split in ("train", "val")}
    assert train and not train & held
    # the reference bank of `mriqa score` (= SimCLR's training subjects) holds the training subjects only
    bank = np.load(root / "models/ecker/references.npz")
    assert set(bank["participant_id"].astype(str)) == train
    # every test case comes from a test subject
    for name in ("test_motion", "test_noise", "test_nako", "test_continuous"):
        cases = read_tsv(root / f"data/synthetic/ecker/{name}.tsv")
        assert set(cases["participant_id"].astype(str)) <= {s for s, v in manifest.items() if v == "test"}
