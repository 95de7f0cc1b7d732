"""Paper 4's stage module end to end on a tiny embedded cohort: synthesize -> train -> evaluate.

The run writes every metric that paper 4's claims read, and the subjects manifest keeps the
cohort's held-out test subjects (the benchmark's subjects) in SSFD's test split only.
"""

from __future__ import annotations

import pytest
from stage_runs import N_SUBJECTS, claim_keys, run_stage, settings_with

from mriqa_lib.config import Settings
from mriqa_lib.methods.ssfd.params import SsfdParams


def tiny_settings() -> Settings:
    """SSFD settings small enough for seconds on one core (2 slices a subject, 4-channel nets, 1 epoch)."""
    p = SsfdParams(
        slices_per_subject=2,
        n_coils=2,
        encoder_channels=[4, 4, 4, 4, 4],
        group_norm_groups=2,
        pretext_epochs=1,
        recon_epochs=1,
        recon_channels=[4, 4],
        pretext_batch_size=4,
        recon_batch_size=4,
        n_boot=100,
        shift_px=[0, 0.5, 1],
        blur_sigma_px=[0, 0.5, 1],
        noise_std=[0, 0.02, 0.04],
    )
    return settings_with("ssfd", p)


@pytest.fixture(scope="module")
def ssfd_run(tmp_path_factory, stage_cohort):
    root = tmp_path_factory.mktemp("ssfd_stage")
    with pytest.MonkeyPatch.context() as mp:
        return root, run_stage(root, stage_cohort, "ssfd", tiny_settings(), mp)


def test_metrics_hold_every_key_the_claims_read(ssfd_run):
    from mriqa_lib import claims

    _, metrics = ssfd_run
    keys = claim_keys("ssfd")
    assert keys and keys <= set(metrics), keys - set(metrics)
    target = claims.target("ssfd", "rho_ssfd_strength_blur")
    assert metrics["done_rho_blur_ge_0.9"] == (metrics["rho_ssfd_strength_blur"] >= target)


def test_held_out_subjects_only_in_the_test_split(ssfd_run):
    import numpy as np

    from mriqa_lib.data import splits
    from mriqa_lib.io import read_tsv

    root, _ = ssfd_run
    held = splits.held_out(root / "data/embedded/participants.tsv")
    assert len(held) == 2
    manifest = splits.read_manifest(root / "data/synthetic/ssfd")
    assert set(manifest) == {f"sub-{i:03d}" for i in range(1, N_SUBJECTS + 1)}
    assert all(manifest[s] == "test" for s in held)
    slices = read_tsv(root / "data/synthetic/ssfd/manifest.tsv")
    for split in ("train", "val"):  # the slices the networks saw come from other subjects
        seen = set(slices.loc[slices["split"] == split, "subject"])
        assert seen and not seen & held
        n = len(np.load(root / f"data/synthetic/ssfd/{split}.npz")["target"])
        assert n == (slices["split"] == split).sum()
