"""Paper 1's stage module end to end on a tiny embedded cohort: synthesize -> train -> evaluate.

The run writes every metric that paper 1's claims read, and the subjects manifest keeps the
cohort's held-out test subjects (the benchmark's subjects) out of SimCLR's training data and out
of the reference pool.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mriqa_lib.config import Settings, default_cohort_params
from mriqa_lib.methods.ecker.params import EckerParams

#: 6 subjects on 2 sites: every site has >= 3 subjects, so the cohort holds out one test subject per site
N_SUBJECTS = 6


def build_tiny_cohort(root: Path) -> Path:
    """A 6-subject, 2-site embedded cohort in ``root/data/embedded`` (2 held-out test subjects)."""
    from mriqa_lib.data.cohort import build_cohort

    base = default_cohort_params()
    params = base.model_copy(update={"n_subjects": N_SUBJECTS, "workers": 1, "sites": base.sites[:2]})
    build_cohort(root / "data" / "embedded", params, progress=False, log=lambda s: None)
    return root / "data" / "embedded"


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
    return Settings(cohort=default_cohort_params(), ecker=p).model_copy(
        update={"trainer": Settings.model_fields["trainer"].default_factory().model_copy(update={"threads": 1})}
    )


def run_pipeline(root: Path) -> dict:
    """Run the three steps in ``root`` (the working directory) and return metrics/ecker.json."""
    from mriqa_lib.stages import ecker as stage

    settings = tiny_settings()
    stage.synthesize(settings)
    stage.train(settings)
    stage.evaluate(settings)
    return json.loads((root / "metrics" / "ecker.json").read_text())


@pytest.fixture(scope="module")
def ecker_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("ecker_stage")
    build_tiny_cohort(root)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        metrics = run_pipeline(root)
    return root, metrics


def test_metrics_hold_every_key_the_claims_read(ecker_run):
    from mriqa_lib import claims

    _, metrics = ecker_run
    keys = {k.strip() for c in claims.CLAIMS if c.method == "ecker" for k in c.metric.split(" - ")}
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
