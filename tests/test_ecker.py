"""Paper 1 (Ecker et al.): NT-Xent, zero-shot decision rule, reference matching, preparation."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from mriqa_lib.io import MriqaInputError
from mriqa_lib.methods.ecker import data as D
from mriqa_lib.methods.ecker.inference import cosine, decide, mean_similarities
from mriqa_lib.methods.ecker.params import EckerParams
from mriqa_lib.methods.ecker.simclr import nt_xent, random_resized_crop, warmup_cosine


# ------------------------------------------------------------------------------------------ NT-Xent
def _nt_xent_by_hand(z1: np.ndarray, z2: np.ndarray, t: float) -> float:
    """Loop-by-loop SimCLR loss: l(i,j) = -log(exp(s_ij) / sum_{k != i} exp(s_ik)), mean over 2N."""
    z = np.concatenate([z1, z2]).astype(np.float64)
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    n = len(z1)
    total = 0.0
    for i in range(2 * n):
        j = i + n if i < n else i - n
        denom = sum(math.exp(z[i] @ z[k] / t) for k in range(2 * n) if k != i)
        total += -math.log(math.exp(z[i] @ z[j] / t) / denom)
    return total / (2 * n)


def test_nt_xent_matches_hand_computation_tiny_batch():
    z1 = np.array([[1.0, 0.0], [0.0, 2.0]])
    z2 = np.array([[1.0, 1.0], [-1.0, 1.0]])
    got = nt_xent(torch.tensor(z1), torch.tensor(z2), temperature=0.1).item()
    # closed form for this batch: view pairs at 45 deg; s = cos / 0.1
    c = 1 / math.sqrt(2)
    # anchor 0 = (1,0): positives (1,1)/sqrt2 -> c; others: (0,1) -> 0, (-1,1)/sqrt2 -> -c
    l0 = -math.log(math.exp(10 * c) / (math.exp(0) + math.exp(10 * c) + math.exp(-10 * c)))
    # anchor 1 = (0,1): positive (-1,1)/sqrt2 -> c; others: (1,0) -> 0, (1,1)/sqrt2 -> c
    l1 = -math.log(math.exp(10 * c) / (math.exp(0) + math.exp(10 * c) + math.exp(10 * c)))
    # anchor 2 = (1,1)/sqrt2: positive (1,0) -> c; others: (0,1) -> c, (-1,1)/sqrt2 -> 0
    l2 = -math.log(math.exp(10 * c) / (math.exp(10 * c) + math.exp(10 * c) + math.exp(0)))
    # anchor 3 = (-1,1)/sqrt2: positive (0,1) -> c; others: (1,0) -> -c, (1,1)/sqrt2 -> 0
    l3 = -math.log(math.exp(10 * c) / (math.exp(-10 * c) + math.exp(10 * c) + math.exp(0)))
    assert got == pytest.approx((l0 + l1 + l2 + l3) / 4, rel=1e-6)
    assert got == pytest.approx(_nt_xent_by_hand(z1, z2, 0.1), rel=1e-6)


def test_nt_xent_random_batch_and_invariance():
    rng = np.random.default_rng(0)
    z1, z2 = rng.standard_normal((5, 7)), rng.standard_normal((5, 7))
    got = nt_xent(torch.tensor(z1), torch.tensor(z2), 0.5).item()
    assert got == pytest.approx(_nt_xent_by_hand(z1, z2, 0.5), rel=1e-6)
    # only directions matter (L2 normalisation), and swapping the views changes nothing
    assert nt_xent(torch.tensor(3 * z1), torch.tensor(z2), 0.5).item() == pytest.approx(got, rel=1e-6)
    assert nt_xent(torch.tensor(z2), torch.tensor(z1), 0.5).item() == pytest.approx(got, rel=1e-6)
    # perfectly aligned, mutually orthogonal pairs reach the lower bound -log(e^{1/T}/(e^{1/T}+2N-2))
    e = torch.eye(4, dtype=torch.float64)[:2]
    low = -math.log(math.exp(10) / (math.exp(10) + 2))
    assert nt_xent(e, e, 0.1).item() == pytest.approx(low, rel=1e-9)
    with pytest.raises(ValueError):
        nt_xent(torch.zeros(2, 3), torch.zeros(3, 3))


# ----------------------------------------------------------------------------- decision rule / SIM
def test_decision_rule_and_sim_score():
    labels, sim = decide(np.array([0.9, 0.6, 0.7]), np.array([0.8, 0.75, 0.7]))
    assert labels.tolist() == ["HQ", "LQ", "HQ"]  # larger mean similarity wins; a tie goes to HQ
    assert sim == pytest.approx([0.9, 1 - 0.75, 0.7])


def test_mean_similarities_uses_position_matched_references():
    h = np.array([[1.0, 0.0], [0.0, 1.0]])  # two slices
    hq = np.array([[[1.0, 0.0], [1.0, 0.0]], [[0.0, 1.0], [0.0, 1.0]]])  # (slices, refs, d)
    lq = np.array([[[0.0, 1.0], [1.0, 1.0]], [[1.0, 0.0], [1.0, 0.0]]])
    s_hq, s_lq = mean_similarities(h, hq, lq)
    assert s_hq == pytest.approx(1.0)
    assert s_lq == pytest.approx(np.mean([0.0, 1 / math.sqrt(2), 0.0, 0.0]))
    assert cosine(np.array([3.0, 4.0]), np.array([[6.0, 8.0], [-4.0, 3.0]])) == pytest.approx([1.0, 0.0])


# --------------------------------------------------------------------------------- reference matching
def _pool() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "participant_id": [f"s{i}" for i in range(6)],
            "sex": ["M", "F", "M", "F", "M", "M"],
            "height": [180.0, 160.0, 170.0, 165.0, 181.0, 150.0],
            "weight": [80.0, 60.0, 70.0, 62.0, 95.0, 50.0],
        }
    )


def test_match_references_same_sex_then_nearest_height_weight():
    pool = _pool()
    got = D.match_references(pool, "M", 180.0, 81.0, 2)
    # standardised distances to (180, 81): s0 is nearest, then s4 (1 cm, 14 kg) before s2 (10 cm, 11 kg)
    hs, ws = pool["height"].std(ddof=0), pool["weight"].std(ddof=0)
    d = {i: np.hypot((pool.height[i] - 180) / hs, (pool.weight[i] - 81) / ws) for i in (0, 2, 4, 5)}
    expect = sorted(d, key=d.get)[:2]
    assert got.tolist() == expect == [0, 4]
    # women only, whatever their height and weight, before any man
    assert set(D.match_references(pool, "F", 180.0, 81.0, 2).tolist()) == {1, 3}
    # more references than same-sex subjects: the other sex fills up, nearest first
    assert D.match_references(pool, "F", 160.0, 60.0, 3).tolist()[:2] == [1, 3]
    # without sex matching the nearest subject of any sex comes first
    assert D.match_references(pool, "F", 181.0, 95.0, 1, match_sex=False).tolist() == [4]
    # nothing to match on (NAKO-IQA without a table): every pool subject, not the first n_refs
    assert D.match_references(pool, None, None, None, 4).tolist() == list(range(len(pool)))
    assert D.match_references(pool, None, float("nan"), float("nan"), 4).tolist() == list(range(len(pool)))
    # sex known, height/weight unknown: the same-sex subjects first, n_refs of them
    assert D.match_references(pool, "F", None, None, 2).tolist() == [1, 3]


def test_match_references_by_site_first():
    pool = _pool().assign(site=["a", "b", "b", "a", "b", "a"])
    # site a holds s0, s3, s5: only they are candidates, and the men (s0, s5) come before s3
    got = D.match_references(pool, "M", 180.0, 81.0, 10, site="a", match_site=True)
    assert got.tolist()[:2] == [0, 5] and sorted(got.tolist()) == [0, 3, 5]
    # within site b the nearest man to (180, 81) among s2, s4 (site-b spread) is s4
    sub = pool[pool.site == "b"].reset_index(drop=True)
    hs, ws = sub["height"].std(ddof=0), sub["weight"].std(ddof=0)
    d = {i: np.hypot((pool.height[i] - 180) / hs, (pool.weight[i] - 81) / ws) for i in (2, 4)}
    assert D.match_references(pool, "M", 180.0, 81.0, 1, site="b", match_site=True).tolist() == [min(d, key=d.get)]
    # off, an unknown site, a site not in the pool, or no site column: the plain matching
    plain = D.match_references(pool, "M", 180.0, 81.0, 3).tolist()
    assert D.match_references(pool, "M", 180.0, 81.0, 3, site="a").tolist() == plain
    assert D.match_references(pool, "M", 180.0, 81.0, 3, site=None, match_site=True).tolist() == plain
    assert D.match_references(pool, "M", 180.0, 81.0, 3, site=float("nan"), match_site=True).tolist() == plain
    assert D.match_references(pool, "M", 180.0, 81.0, 3, site="z", match_site=True).tolist() == plain
    assert D.match_references(_pool(), "M", 180.0, 81.0, 3, site="a", match_site=True).tolist() == plain


def test_split_subjects_keeps_test_out_of_pool():
    frame = pd.DataFrame({"split": ["train"] * 6 + ["val"] * 2 + ["test"] * 2})
    pool, test = D.split_subjects(frame, 3, seed=0)
    assert set(pool).isdisjoint(test) and len(pool) + len(test) == 10
    assert {8, 9} <= set(test)  # the cohort's own test split is held out first
    assert set(test) - {8, 9} <= {6, 7}  # then its validation split
    # fewer test subjects asked for than the cohort holds out: every held-out subject still tests
    pool, test = D.split_subjects(frame, 1, seed=0)
    assert test.tolist() == [8, 9] and pool.tolist() == list(range(8))
    pool, _ = D.split_subjects(frame.iloc[[0, 1, 8, 9]].reset_index(drop=True), 1, seed=0)
    assert pool.tolist() == [0, 1]  # two left to train on: enough
    with pytest.raises(MriqaInputError, match="n_test_subjects"):
        D.split_subjects(frame.iloc[[0, 8, 9]].reset_index(drop=True), 1, seed=0)


def test_held_out_first_is_a_seeded_draw_beyond_the_held_out_subjects():
    from mriqa_lib.data.splits import held_out_first

    labels = ["train"] * 20 + ["test"]
    draws = {tuple(held_out_first(labels, 3, seed)[1]) for seed in range(20)}
    assert all(20 in d and len(d) == 3 for d in draws)
    assert len(draws) > 5  # the two drawn subjects change with the seed ...
    assert held_out_first(labels, 3, 4)[1].tolist() == held_out_first(labels, 3, 4)[1].tolist()  # ... reproducibly


# ------------------------------------------------------------------------------- preparation / augment
def test_prepare_slices_shape_and_centring():
    p = EckerParams(img_size=16, crop=1.0)
    img = np.zeros((20, 10), np.float32)
    img[8:12, 3:7] = 1.0  # a centred square
    out = D.prepare_slices(img, p)
    assert out.shape == (16, 16)
    ys, xs = np.nonzero(out > 0.5)
    assert abs(ys.mean() - 7.5) < 0.6 and abs(xs.mean() - 7.5) < 0.6


def test_random_resized_crop_full_scale_is_identity():
    x = torch.rand(3, 1, 8, 8)
    y = random_resized_crop(x, scale=(1.0, 1.0), ratio=(1.0, 1.0))
    assert torch.allclose(x, y, atol=1e-5)
    z = random_resized_crop(x, scale=(0.2, 0.5), size=4, generator=torch.Generator().manual_seed(0))
    assert z.shape == (3, 1, 4, 4)


def test_warmup_cosine_schedule():
    assert warmup_cosine(0, 4, 20) == pytest.approx(0.2)
    assert warmup_cosine(3, 4, 20) == pytest.approx(0.8)
    assert warmup_cosine(4, 4, 20) == pytest.approx(1.0)
    assert warmup_cosine(12, 4, 20) == pytest.approx(0.5)
    assert warmup_cosine(20, 4, 20) == pytest.approx(0.0, abs=1e-12)


def test_degrade_motion_level_zero_is_identity_and_noise_sigma():
    p = EckerParams(noise_sigma=0.25)
    img = np.random.default_rng(0).random((2, 24, 24)).astype(np.float32)
    assert np.array_equal(D.degrade(img, "motion", p, 0, (2.0, 2.0), level=0.0), img)
    noisy = D.degrade(img, "noise", p, 1, (2.0, 2.0))
    assert np.std(noisy - img) == pytest.approx(0.25, rel=0.1)


def test_params_validation_names_the_key():
    from mriqa_lib.config import ConfigError, default_cohort_params, parse_settings

    base = {"cohort": default_cohort_params().model_dump()}
    with pytest.raises(ConfigError, match="ecker.temperature"):
        parse_settings({**base, "ecker": {"temperature": -1}})
    with pytest.raises(ConfigError, match="ecker.bogus"):
        parse_settings({**base, "ecker": {"bogus": 1}})


# ------------------------------------------------------------------------------------------- adapters
def test_ukb_and_nako_adapters(tmp_path):
    from mriqa_lib.io import MriqaInputError, save_nifti

    vol = np.random.default_rng(0).random((8, 8, 6)).astype(np.float32)
    for eid in ("1001", "1002"):
        save_nifti(tmp_path / "ukb" / eid / "wat.nii.gz", vol, np.eye(4))
    # a basket table: every participant (1003 has no imaging), UKB field ids, blanks where unmeasured
    (tmp_path / "ukb.csv").write_text("eid,31-0.0,12144-2.0,21002-2.0\n1001,1,180,80\n1002,0,165,\n1003,1,,\n")
    frame = D.ukb_subjects(tmp_path / "ukb", tmp_path / "ukb.csv")
    assert frame["participant_id"].tolist() == ["1001", "1002"]
    assert frame["sex"].tolist() == ["M", "F"] and frame["height"].tolist() == [180.0, 165.0]
    assert frame["weight"].iloc[0] == 80.0 and np.isnan(frame["weight"].iloc[1])
    (tmp_path / "bad.csv").write_text("eid,sex,height,weight\n1001,1,170,70\n")
    with pytest.raises(MriqaInputError, match="no row for eid 1002"):
        D.ukb_subjects(tmp_path / "ukb", tmp_path / "bad.csv")
    for stem, v in (("bh", vol), ("fb_deep", vol[::-1])):
        save_nifti(tmp_path / "nako" / "Q1" / "dixon" / f"dicom_3D_GRE_TRA_{stem}_W_COMPOSED.nii", v, np.eye(4))
    nako = D.nako_subjects(tmp_path / "nako")
    assert nako["label"].tolist() == ["HQ", "LQ"]
    assert nako["path"].str.endswith("fb_deep_W_COMPOSED.nii").tolist() == [False, True]
    save_nifti(tmp_path / "nako" / "Q2" / "dixon" / "dicom_3D_GRE_TRA_bh_W_COMPOSED.nii", vol, np.eye(4))
    with pytest.raises(MriqaInputError, match="Q2.*fb_deep_W_COMPOSED"):
        D.nako_subjects(tmp_path / "nako")


def test_read_table_keeps_an_optional_site_and_blank_is_unknown(tmp_path):
    path = tmp_path / "ukb.csv"
    path.write_text("eid,sex,height,weight,site\n1,1,180,80,Cheadle\n2,0,165,60, \n")
    table = D.read_table(path)
    assert table["site"].iloc[0] == "Cheadle" and pd.isna(table["site"].iloc[1])
    assert table["sex"].tolist() == ["M", "F"]
    (tmp_path / "plain.csv").write_text("eid,sex,height,weight\n1,1,180,80\n")
    assert "site" not in D.read_table(tmp_path / "plain.csv").columns


# ------------------------------------------------------------------------------ test sets, experiments
def test_balanced_cases_half_lq_every_pair_before_repeats():
    from mriqa_lib.methods.ecker.synthesis import balanced_cases

    cases = balanced_cases(np.array([3, 7]), n_slices=3, n_cases=10, seed=1)
    assert (cases["label"] == "LQ").sum() == 5 and set(cases["subject"]) == {3, 7}
    first = cases[cases["repeat"] == 0]
    assert len(first) == 6 and len(set(zip(first["subject"], first["slice"]))) == 6  # all 6 pairs, once each
    assert (cases["repeat"] == 1).sum() == 4


def test_split_manifest_and_subject_table_agree():
    from mriqa_lib.methods.ecker.synthesis import split_manifest, subject_table

    subjects = pd.DataFrame({"participant_id": ["a", "b", "c"], "sex": ["M", "F", "M"], "path": ["x", "y", "z"]})
    assert split_manifest(subjects, np.array([1])) == {"a": "train", "b": "test", "c": "train"}
    table = subject_table(subjects, np.array([1]))
    assert table["role"].tolist() == ["pool", "test", "pool"] and table["index"].tolist() == [0, 1, 2]
    assert "path" not in table.columns


class _MeanNet:
    """A stand-in encoder: image mean m -> (1 - m, m), so brighter slices look like the LQ references."""

    feature_dim = 2

    def eval(self):
        return self

    def encode(self, x):
        m = x.mean(dim=(1, 2, 3))
        return torch.stack([1 - m, m], 1)


def _bank(n_pool: int, n_slices: int) -> dict:
    hq = np.tile([1.0, 0.0], (n_pool, n_slices, 1))
    lq = np.tile([0.0, 1.0], (n_pool, n_slices, 1))
    return {"hq": hq, "motion": lq, "noise": lq, "respiratory": lq}


def _pool_table(n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "participant_id": [f"r{i}" for i in range(n)],
            "sex": ["M", "F"] * (n // 2),
            "height": np.linspace(160, 190, n),
            "weight": np.linspace(60, 90, n),
        }
    )


def test_classify_and_metrics_on_separable_cases():
    from mriqa_lib.methods.ecker.experiments import simulated_experiment

    p = EckerParams(n_refs=2)
    labels = np.array(["HQ", "LQ", "HQ", "LQ"])
    images = np.stack([np.full((4, 4), 0.1 if y == "HQ" else 0.9, np.float32) for y in labels])
    frame = pd.DataFrame(
        {"subject": [0, 0, 1, 1], "slice": [0, 1, 0, 1], "label": labels, "sex": "M", "height": 170.0, "weight": 70.0}
    )
    res, metrics, examples = simulated_experiment(_MeanNet(), "motion", images, frame, _pool_table(4), _bank(4, 2), p)
    assert res["pred"].tolist() == labels.tolist()
    assert metrics["motion_accuracy"] == 1.0 and metrics["motion_auroc"] == 1.0 and metrics["motion_n"] == 4
    # references: the 2 same-sex subjects nearest in height and weight (r0 and r2 are the men)
    assert set(res["references"].iloc[0].split(",")) == {"r0", "r2"}
    # SIM: similarity to HQ for HQ cases, 1 - similarity to LQ for LQ cases
    m = 0.9
    assert res["sim"].iloc[1] == pytest.approx(1 - m / math.hypot(1 - m, m))
    assert len(examples["motion_hq"]) == 2 and np.all(examples["motion_lq"] == np.float32(0.9))


def test_continuous_experiment_rank_correlation_is_one_when_lq_similarity_grows_with_motion():
    from mriqa_lib.methods.ecker.experiments import continuous_experiment

    levels = [0.0, 1.0, 2.0, 4.0]
    frame = pd.DataFrame(
        [{"subject": s, "participant_id": f"t{s}", "slice": 0, "level": lv} for s in (0, 1) for lv in levels]
    )
    images = np.stack(
        [np.full((4, 4), lv / 8 + 0.05 * s, np.float32) for s, lv in zip(frame["subject"], frame["level"])]
    )
    _, metrics, examples = continuous_experiment(_MeanNet(), images, frame, _pool_table(2), _bank(2, 1), EckerParams())
    assert metrics["continuous_spearman_within_case_mean"] == pytest.approx(1.0)
    assert metrics["continuous_spearman_level_vs_sim_lq_levelmeans"] == pytest.approx(1.0)
    assert metrics["continuous_n"] == 8 and examples["continuous_levels"].tolist() == levels
