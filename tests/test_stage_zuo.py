"""Paper 2's stage module end to end on a tiny embedded cohort: synthesize -> train -> evaluate.

The run writes every metric that paper 2's claims read, and the subjects manifest keeps the
cohort's held-out test subjects (the benchmark's subjects) out of the encoder's and the flow's
training data: they are only ever rated.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads: no spinning on shared cores

import pytest
from stage_runs import N_SUBJECTS, claim_keys, run_stage, settings_with

from mriqa_lib.config import Settings
from mriqa_lib.methods.zuo.params import ZuoParams


def tiny_settings() -> Settings:
    """Zuo settings small enough for seconds on one core (4 mm template grid, 4-channel encoder, 3 steps)."""
    p = ZuoParams(
        template_spacing=4.0,
        slice_size=56,
        band=8,
        band_step=2,
        n_centre_slices=4,
        width=4,
        batch_volumes=2,
        n_negatives_volume=2,
        n_negatives_simulated=2,
        steps=3,
        flow_transforms=2,
        flow_hidden=(8,),
        flow_steps=10,
        rated_variants=3,
    )
    return settings_with("zuo", p)


@pytest.fixture(scope="module")
def zuo_run(tmp_path_factory, stage_cohort):
    root = tmp_path_factory.mktemp("zuo_stage")
    with pytest.MonkeyPatch.context() as mp:
        return root, run_stage(root, stage_cohort, "zuo", tiny_settings(), mp)


def test_metrics_hold_every_key_the_claims_read(zuo_run):
    _, metrics = zuo_run
    keys = claim_keys("zuo")
    assert keys and keys <= set(metrics), keys - set(metrics)
    # 4 rated subjects (val + test) x (1 clean + 3 variants: one per severity bin, so 2 of 4 fail)
    assert (metrics["n_rated"], metrics["n_rated_fail"], metrics["n_rated_pass"]) == (16, 8, 8)
    # the 5 % flags of the examples agree with the summary flag
    below = metrics["examples_BH_below_tau5"]
    assert metrics["examples_all_as_expected_tau5"] == (metrics["example_A_above_tau5"] and below == 7)


def test_held_out_subjects_are_only_rated(zuo_run):
    from mriqa_lib.data import splits
    from mriqa_lib.io import read_tsv

    root, _ = zuo_run
    held = splits.held_out(root / "data/embedded/participants.tsv")
    assert len(held) == 2
    manifest = splits.read_manifest(root / "data/synthetic/zuo")
    assert set(manifest) == {f"sub-{i:03d}" for i in range(1, N_SUBJECTS + 1)}  # every subject it used
    assert all(manifest[s] == "test" for s in held)
    trained = {s for s, split in manifest.items() if split in ("train", "val")}
    assert trained and not trained & held
    # the encoder's and the flow's volumes are the manifest's training subjects; the rated set and the
    # examples come from its test subjects
    syn = root / "data/synthetic/zuo"
    assert (
        set(read_tsv(syn / "train.tsv")["participant_id"]) | set(read_tsv(syn / "density.tsv")["participant_id"])
        == trained
    )
    rated = set(read_tsv(syn / "rated.tsv")["participant_id"]) | set(read_tsv(syn / "examples.tsv")["participant_id"])
    assert rated == {s for s, split in manifest.items() if split == "test"}
