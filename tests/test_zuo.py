"""Paper 2 (Zuo et al.): loss Eq. 1, flow density, percentile thresholds, sampler, simulated
negatives, model save/load and the scorer. Tiny inputs built here; no data/embedded."""

from __future__ import annotations

import math
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads: no spinning on shared cores

import numpy as np
import pytest
import torch
from lightning_checks import assert_same_weights, cpu_trainer, fit_and_reload

from mriqa_lib.methods.zuo.contrastive import (
    ContrastiveSampler,
    EncoderModule,
    contrastive_loss,
    simulate_motion,
    simulate_noise,
)
from mriqa_lib.methods.zuo.flow import (
    DensityModel,
    build_flow,
    fit_flow,
    percentile_thresholds,
)
from mriqa_lib.methods.zuo.params import ZuoParams

torch.set_num_threads(1)


def test_loss_matches_hand_computation():
    q = torch.tensor([[1.0, 2.0]])
    pos = torch.tensor([[0.5, -1.0]])
    neg = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [-1.0, 1.0]]])
    # by hand: m*.m+ = 0.5 - 2 = -1.5; m*.m- = 1, 2, 1
    s_pos, s_neg = -1.5, [1.0, 2.0, 1.0]
    mean_neg = sum(math.exp(s) for s in s_neg) / 3
    expected = -math.log(math.exp(s_pos) / (math.exp(s_pos) + mean_neg))
    assert contrastive_loss(q, pos, neg).item() == pytest.approx(expected, rel=1e-6)


def test_loss_batch_mean_and_ordering():
    torch.manual_seed(0)
    q, pos, neg = torch.randn(4, 2), torch.randn(4, 2), torch.randn(4, 5, 2)
    per = torch.stack([contrastive_loss(q[i : i + 1], pos[i : i + 1], neg[i : i + 1]) for i in range(4)])
    assert contrastive_loss(q, pos, neg).item() == pytest.approx(per.mean().item(), rel=1e-6)
    # a positive aligned with the query gives a lower loss than an opposite one
    q1 = torch.tensor([[2.0, 0.0]])
    n1 = torch.tensor([[[0.0, 1.0]]])
    assert contrastive_loss(q1, torch.tensor([[2.0, 0.0]]), n1) < contrastive_loss(q1, torch.tensor([[-2.0, 0.0]]), n1)


def test_flow_density_integrates_to_one():
    p = ZuoParams(flow_hidden=(16, 16), flow_steps=150, flow_jitter=0.0)
    rng = np.random.default_rng(0)
    m = np.stack([rng.normal(3.0, 0.5, 200), rng.normal(-1.0, 2.0, 200)], 1)
    model = fit_flow(m, p)
    g1 = np.linspace(3.0 - 6 * 0.5, 3.0 + 6 * 0.5, 241)
    g2 = np.linspace(-1.0 - 12.0, -1.0 + 12.0, 241)
    mesh = np.stack(np.meshgrid(g1, g2, indexing="ij"), -1).reshape(-1, 2)
    dens = np.exp(model.log_density(mesh))
    integral = dens.sum() * (g1[1] - g1[0]) * (g2[1] - g2[0])
    assert integral == pytest.approx(1.0, abs=0.03)
    # z = f(m) of the training features is roughly standard normal after fitting
    z = model.to_z(m)
    assert np.all(np.abs(z.mean(0)) < 0.3) and np.all(np.abs(z.std(0) - 1) < 0.3)


def test_thresholds_are_percentiles():
    values = np.arange(1, 101, dtype=float)  # 1..100
    thr = percentile_thresholds(values, [5.0, 3.0])
    assert thr["5"] == pytest.approx(np.percentile(values, 5)) and thr["3"] == pytest.approx(3.97)
    rng = np.random.default_rng(1)
    logp = rng.normal(size=20000)
    thr = percentile_thresholds(logp, [5.0, 3.0])
    assert (logp < thr["5"]).mean() == pytest.approx(0.05, abs=0.002)
    assert (logp < thr["3"]).mean() == pytest.approx(0.03, abs=0.002)
    assert thr["3"] < thr["5"]
    # flags of a density model use the same rule
    flow = build_flow(ZuoParams(flow_hidden=(8,)))
    model = DensityModel(flow, np.zeros(2), np.ones(2))
    m = rng.normal(size=(2000, 2))
    model.thresholds = percentile_thresholds(model.log_density(m), [5.0])
    assert model.flags(m)["5"].mean() == pytest.approx(0.05, abs=0.001)


def test_sampler_positive_other_orientation_negatives_other_volumes():
    v, k, s = 5, 3, 8
    # each slice carries its volume id (value) and orientation (sign pattern via offset)
    slices = {
        o: np.stack([np.full((k, s, s), 10 * i + j, np.float32) for i in range(v)])
        for j, o in enumerate(("axial", "coronal", "sagittal"))
    }
    p = ZuoParams(batch_volumes=4, n_negatives_volume=5, steps=3)
    ds = ContrastiveSampler(slices, p, seed=0)
    b = ds[1]
    q, pos = b["query"][:, 0, 0, 0].numpy(), b["positive"][:, 0, 0, 0].numpy()
    assert np.all(q // 10 == pos // 10)  # same volume
    assert np.all(q % 10 != pos % 10)  # another orientation
    pooled = np.concatenate([q, pos])
    for j, idx in enumerate(b["neg_idx"].numpy()):
        assert np.all(pooled[idx] // 10 != q[j] // 10)  # negatives from other volumes only
    again = ds[1]
    assert torch.equal(again["query"], b["query"])  # deterministic per item


def test_simulated_noise_and_motion():
    gen = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    img = (((yy - 16) ** 2 / 100 + (xx - 16) ** 2 / 60) < 1).float().view(1, 1, 32, 32)
    x = img.repeat(2, 1, 1, 1)
    # no motion -> the image itself (exact k-space round trip)
    assert torch.allclose(simulate_motion(x, torch.zeros(2), gen), x, atol=1e-5)
    moved = simulate_motion(x, torch.tensor([3.0, 3.0]), gen)
    assert (moved - x).abs().mean() > 0.01
    noisy = simulate_noise(x, torch.tensor([0.0, 0.2]), gen)
    assert torch.allclose(noisy[0], x[0], atol=1e-6)
    background = noisy[1][x[1] == 0]
    # Rician background of sigma 0.2 x mean foreground (1.0): mean = sigma * sqrt(pi / 2)
    assert background.mean().item() == pytest.approx(0.2 * math.sqrt(math.pi / 2), rel=0.1)


def _ellipse_slices(n: int = 3, size: int = 32) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(float(size)), torch.arange(float(size)), indexing="ij")
    inside = (((yy - size / 2) ** 2 / 100 + (xx - size / 2) ** 2 / 60) < 1).float()
    texture = 0.5 + 0.5 * torch.sin(xx / 2) ** 2  # some structure for blur to act on
    return (inside * texture).view(1, 1, size, size).repeat(n, 1, 1, 1)


def test_extra_negatives_are_the_artifact_library_on_the_query_brain():
    from mriqa_lib.artifacts import apply_artifact

    p = ZuoParams(encoder="small", width=4, n_negatives_simulated=5, brain_only=True)
    q = _ellipse_slices()
    neg = EncoderModule(p).simulated_negatives(q, seed=3)
    assert neg.shape == (3, 5, 1, 32, 32)
    outside = (q == 0).unsqueeze(1).expand(3, 5, 1, 32, 32)
    assert neg[outside].abs().max() == 0  # brain_only: nothing outside the query's brain
    # kind j mod 5: noise, motion, blur, ghosting, bias_field; blur's severity lies in its range, so the
    # negative is the library's blur of the query at some sigma within [low, high] (mm on a 2 mm grid)
    lo, hi = p.extra_negatives["blur"]
    query, blurred = q[0, 0].numpy(), neg[0, 2, 0].numpy()
    errors = [
        np.abs(apply_artifact("blur", query, s, spacing=p.template_spacing)[0] * (query > 0) - blurred).max()
        for s in np.linspace(lo, hi, 200)
    ]
    assert min(errors) < 2e-3
    # a bias field multiplies the brain by a smooth positive field: the ratio is smooth and not constant
    ratio = (neg[0, 4, 0] / q[0, 0])[q[0, 0] > 0]
    assert (ratio > 0).all() and ratio.std() > 0.01


def test_without_extra_negatives_the_paper_kinds_are_unchanged():
    paper = ZuoParams(encoder="small", width=4, extra_negatives={}, brain_only=False)
    wider = ZuoParams(encoder="small", width=4, brain_only=False)
    q = _ellipse_slices()
    a = EncoderModule(paper).simulated_negatives(q, seed=5)
    b = EncoderModule(wider).simulated_negatives(q, seed=5)
    # 4 negatives: noise, motion, noise, motion in the paper; noise, motion, blur, ghosting with extras;
    # the paper's kinds draw from the same stream either way
    assert torch.equal(a[:, :2], b[:, :2])
    corner = (slice(None), 0, slice(0, 4), slice(0, 4))  # far from the ellipse: noise reaches it, blur does not
    assert a[:, 2][corner].mean() > 0.01 and b[:, 2][corner].abs().max() < 1e-3


def test_brain_only_sets_the_noise_floor_to_zero_as_brain_extraction_does():
    from mriqa_lib.io import Volume
    from mriqa_lib.methods.zuo.prep import scale_intensity

    rng = np.random.default_rng(0)
    zz, yy, xx = np.meshgrid(*(np.arange(40.0),) * 3, indexing="ij")
    brain = (((zz - 20) ** 2 + (yy - 20) ** 2 + (xx - 20) ** 2) < 12**2).astype(np.float32)
    noisy = brain * 100 + np.abs(rng.normal(0, 8, brain.shape)).astype(np.float32)  # brain in a noise floor
    p = ZuoParams(brain_only=True)
    out = scale_intensity(Volume(noisy, np.eye(4)), p)
    kept = scale_intensity(Volume(noisy, np.eye(4)), p.model_copy(update={"brain_only": False}))
    assert out[brain == 0][np.abs(zz - 20)[brain == 0] > 16].max() == 0  # far background: exactly 0
    np.testing.assert_array_equal(out[brain > 0], kept[brain > 0])  # the brain is left as it was
    # the brain extracted beforehand (a prepared scan) gives the same input inside the brain
    extracted = scale_intensity(Volume(noisy * brain, np.eye(4)), p)
    assert np.corrcoef(extracted[brain > 0], out[brain > 0])[0, 1] > 0.999


def test_params_validation():
    with pytest.raises(ValueError):
        ZuoParams(taus=[120.0])
    with pytest.raises(ValueError):
        ZuoParams(rated_artifacts=["not_an_artifact"])
    with pytest.raises(ValueError):
        ZuoParams(density_splits=["test"])
    with pytest.raises(ValueError):
        ZuoParams(unknown_key=1)
    with pytest.raises(ValueError, match="extra_negatives"):
        ZuoParams(extra_negatives={"not_an_artifact": (0.1, 0.2)})
    with pytest.raises(ValueError, match="extra_negatives.blur"):
        ZuoParams(extra_negatives={"blur": (2.0, 1.0)})


def test_scorer_roundtrip(tmp_path):
    from mriqa_lib.data.template import REF_AFFINE, REF_SHAPE
    from mriqa_lib.io import Volume
    from mriqa_lib.methods.zuo.inference import save_model, volume_m
    from mriqa_lib.methods.zuo.prep import centre_axial, prepare_volume
    from mriqa_lib.methods.zuo.score import load_scorer
    from mriqa_lib.models.artifact_encoder import build_encoder

    p = ZuoParams(width=4, flow_hidden=(8,), flow_steps=20)
    torch.manual_seed(0)
    encoder = build_encoder("small", p.width).eval()
    rng = np.random.default_rng(0)
    density = fit_flow(rng.normal(size=(50, 2)), p)
    save_model(tmp_path, encoder, density, p)
    idx = np.stack(np.meshgrid(*[np.arange(n, dtype=float) for n in REF_SHAPE], indexing="ij"))
    c = (np.array(REF_SHAPE) - 1)[:, None, None, None] / 2
    head = (np.sum(((idx - c) / np.array([35, 45, 35])[:, None, None, None]) ** 2, 0) < 1) * 800.0
    vol = Volume((head + rng.normal(0, 20, REF_SHAPE)).clip(0).astype(np.float32), REF_AFFINE.copy())

    class S:  # the settings object passed by `mriqa score`
        zuo = p

    scorer = load_scorer(tmp_path, S())
    out = scorer.score(vol)
    assert set(out) == {
        "zuo_logdensity",
        "zuo_flag5",
        "zuo_flag3",
        "zuo_threshold5",
        "zuo_threshold3",
        "zuo_m1",
        "zuo_m2",
    }
    assert isinstance(out["zuo_flag5"], bool)
    # the thresholds are the training densities' tau percentiles, and the flags follow from them
    for tau in ("5", "3"):
        assert out[f"zuo_threshold{tau}"] == density.thresholds[tau]
        assert out[f"zuo_flag{tau}"] == (out["zuo_logdensity"] < density.thresholds[tau])
    assert out["zuo_flag5"] == (out["zuo_logdensity"] < density.thresholds["5"])
    # same preparation and encoding as the pipeline (slices stored as float16 there)
    m = volume_m(encoder, centre_axial(prepare_volume(vol, p), p).astype(np.float16).astype(np.float32))
    assert out["zuo_m1"] == pytest.approx(m[0], abs=1e-5) and out["zuo_m2"] == pytest.approx(m[1], abs=1e-5)
    assert out["zuo_logdensity"] == pytest.approx(float(density.log_density(m)[0]), abs=1e-4)


def test_encoders_map_slices_to_m_in_r2():
    from mriqa_lib.models.artifact_encoder import build_encoder

    x = torch.randn(2, 1, 64, 64)
    for name in ("small", "densenet121"):
        enc = build_encoder(name, width=4).eval()
        with torch.no_grad():
            assert enc(x).shape == (2, 2)
    with pytest.raises(ValueError):
        build_encoder("resnet")


# ------------------------------------------------------------------------------- Lightning modules
def test_encoder_module_reloads_from_its_checkpoint(tmp_path):
    from torch.utils.data import DataLoader

    from mriqa_lib.methods.zuo.contrastive import EncoderModule

    p = ZuoParams(width=4, batch_volumes=2, n_negatives_volume=2, n_negatives_simulated=2, steps=2)
    rng = np.random.default_rng(0)
    slices = {o: rng.random((3, 2, 32, 32)).astype(np.float32) for o in ("axial", "coronal", "sagittal")}
    torch.manual_seed(0)
    module = EncoderModule(p)
    loader = DataLoader(ContrastiveSampler(slices, p, p.seed), batch_size=None)
    module, loaded = fit_and_reload(module, tmp_path, loader, max_steps=p.steps)
    assert loaded.p == p
    x = torch.rand(3, 1, 32, 32)
    assert torch.equal(module(x), loaded(x))


def test_flow_module_reloads_from_its_checkpoint_and_lightning_fits_as_the_plain_loop(tmp_path):
    from mriqa_lib.methods.zuo.flow import FlowModule, _FullBatch

    p = ZuoParams(flow_transforms=2, flow_hidden=(8,), flow_steps=5)
    u = np.random.default_rng(0).normal(size=(30, 2))
    torch.manual_seed(p.seed)
    module = FlowModule(p)
    loader = torch.utils.data.DataLoader(_FullBatch(u, p.flow_steps), batch_size=None)
    module, loaded = fit_and_reload(module, tmp_path, loader, max_steps=p.flow_steps)
    assert loaded.p == p
    x = torch.as_tensor(u[:5], dtype=torch.float32)
    assert torch.equal(module.flow().log_prob(x), loaded.flow().log_prob(x))
    # fit_flow's plain loop (the pipeline's path) trains the same flow as Lightning: same seed, same steps
    plain = fit_flow(u, p)
    trained = fit_flow(u, p, trainer=cpu_trainer(tmp_path / "again", p.flow_steps)[0])
    assert_same_weights(plain.flow, trained.flow)


# ------------------------------------------------------------------------- splits, plan, experiments
def test_subject_splits_train_on_train_and_density_rate_the_rest():
    import pandas as pd

    from mriqa_lib.io import MriqaInputError
    from mriqa_lib.methods.zuo.data import subject_splits

    table = pd.DataFrame({"participant_id": ["a", "b", "c", "d"], "split": ["train", "val", "test", "train"]})
    assert subject_splits(table, ZuoParams()) == {"a": "train", "b": "test", "c": "test", "d": "train"}
    # the flow may fit on val volumes: they are training data then, and only test volumes are rated
    assert subject_splits(table, ZuoParams(density_splits=["train", "val"], rated_splits=["test"])) == {
        "a": "train",
        "b": "train",
        "c": "test",
        "d": "train",
    }
    # settings that escaped validation cannot train on a held-out test subject
    bad = ZuoParams.model_construct(**{**ZuoParams().model_dump(), "density_splits": ["train", "test"]})
    with pytest.raises(MriqaInputError, match="subject c"):
        subject_splits(table, bad)


def test_rated_plan_draws_each_subject_from_its_named_stream():
    from mriqa_lib.methods.zuo.data import rated_plan

    p = ZuoParams(rated_variants=4, rated_clean=1)
    plan = rated_plan(3, p)
    assert [r["variant"] for r in plan if r["subject"] == 1] == [0, 1, 2, 3, 4]
    for s in range(3):  # "zuo.subject_looks" is SeedSequence([seed, 7, subject]): the numbers it always drew
        rng = np.random.default_rng(np.random.SeedSequence([p.seed, 7, s]))
        kinds = list(rng.permutation(p.rated_artifacts))
        rows = [r for r in plan if r["subject"] == s and r["artifact"] != "none"]
        for j, row in enumerate(rows):
            r = rng.uniform([0, 1 / 3, 2 / 3][j % 3], [1 / 3, 2 / 3, 1][j % 3])
            assert row["artifact"] == kinds[j % len(kinds)] and row["r"] == r
            assert row["seed"] == rng.integers(2**31)
            assert row["fail"] == (r >= 1 / 3)
    # one subject's looks do not depend on how many subjects there are
    assert [r for r in rated_plan(1, p)] == [r for r in plan if r["subject"] == 0]


def _density(thresholds: dict) -> DensityModel:
    torch.manual_seed(0)
    return DensityModel(build_flow(ZuoParams(flow_hidden=(8,))), np.zeros(2), np.ones(2), thresholds)


def test_rated_metrics_and_example_flags_follow_the_thresholds():
    import pandas as pd

    from mriqa_lib.methods.zuo.experiments import (
        example_metrics,
        rated_metrics,
        with_scores,
    )

    density = _density({"5": -3.0, "3": -4.0})
    m = np.zeros((6, 2))
    logp = np.array([-1.0, -2.0, -3.5, -5.0, -3.5, -1.0])  # flag5: 3 of 6; flag3: 1 of 6
    rated = with_scores(
        pd.DataFrame(
            {
                "rating": ["low", "low", "low", "high", "medium", "medium"],
                "fail": [False, False, False, True, True, True],
            }
        ),
        m,
        logp,
        density,
    )
    assert rated["flag5"].tolist() == [False, False, True, True, True, False]
    dens = with_scores(pd.DataFrame({"x": range(4)}), np.zeros((4, 2)), np.array([-1.0, -1, -1, -3.5]), density)
    metrics, table = rated_metrics(rated, dens, density)
    assert metrics["sensitivity_tau5"] == pytest.approx(2 / 3, abs=1e-4)  # 2 of 3 fails flagged
    assert metrics["specificity_tau5"] == pytest.approx(2 / 3, abs=1e-4)  # 2 of 3 passes not flagged
    assert metrics["sensitivity_tau3"] == pytest.approx(1 / 3, abs=1e-4) and metrics["specificity_tau3"] == 1.0
    assert metrics["density_set_flagged_fraction_tau5"] == 0.25 and metrics["n_rated_fail"] == 3
    # AUROC of -log p: fails 5, 3.5, 1 beat passes 1, 2, 3.5 in 3 + 2.5 + 0.5 of 9 pairs (ties count half)
    assert metrics["flagged_fraction_medium_tau5"] == 0.5
    assert metrics["auroc_neg_logp_vs_fail"] == pytest.approx(6 / 9, abs=1e-4)
    assert table.loc[(table.tau == 5.0) & (table.rating == "low"), ["flagged", "passed"]].values.tolist() == [[1, 2]]
    ex = with_scores(pd.DataFrame({"letter": list("ABC")}), np.zeros((3, 2)), np.array([-1.0, -3.5, -2.0]), density)
    flags = example_metrics(ex, density)  # the first threshold (5 %) decides
    assert flags["example_A_above_tau5"] and flags["examples_BH_below_tau5"] == 1
    assert not flags["examples_all_as_expected_tau5"] and flags["example_C_logp_minus_thr_tau5"] == 1.0


def test_density_grid_covers_the_features():
    from mriqa_lib.methods.zuo.experiments import density_grid

    density = _density({"5": -3.0})
    m = np.array([[0.0, -1.0], [2.0, 3.0]])
    grid = density_grid(density, m, n=11)
    assert grid["m1"][0] < m[:, 0].min() and m[:, 0].max() < grid["m1"][-1]
    assert grid["m2"][0] < m[:, 1].min() and m[:, 1].max() < grid["m2"][-1]
    assert grid["logp"].shape == (11, 11) and grid["thresholds"].tolist() == [-3.0]
    # rows run along m2, columns along m1
    assert grid["logp"][4, 7] == pytest.approx(density.log_density(np.array([[grid["m1"][7], grid["m2"][4]]]))[0])
