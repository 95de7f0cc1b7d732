"""Paper 2 (Zuo et al.): loss Eq. 1, flow density, percentile thresholds, sampler, simulated
negatives, model save/load and the scorer. Tiny inputs built here; no data/embedded."""
from __future__ import annotations

import math
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads: no spinning on shared cores

import numpy as np
import pytest
import torch

from mriqa_lib.methods.zuo.contrastive import ContrastiveSampler, contrastive_loss, simulate_motion, simulate_noise
from mriqa_lib.methods.zuo.flow import DensityModel, build_flow, fit_flow, percentile_thresholds
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
    per = torch.stack([contrastive_loss(q[i:i + 1], pos[i:i + 1], neg[i:i + 1]) for i in range(4)])
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
    slices = {o: np.stack([np.full((k, s, s), 10 * i + j, np.float32) for i in range(v)])
              for j, o in enumerate(("axial", "coronal", "sagittal"))}
    p = ZuoParams(batch_volumes=4, n_negatives_volume=5, steps=3)
    ds = ContrastiveSampler(slices, p, seed=0)
    b = ds[1]
    q, pos = b["query"][:, 0, 0, 0].numpy(), b["positive"][:, 0, 0, 0].numpy()
    assert np.all(q // 10 == pos // 10)           # same volume
    assert np.all(q % 10 != pos % 10)             # another orientation
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


def test_params_validation():
    with pytest.raises(ValueError):
        ZuoParams(taus=[120.0])
    with pytest.raises(ValueError):
        ZuoParams(rated_artifacts=["not_an_artifact"])
    with pytest.raises(ValueError):
        ZuoParams(density_splits=["test"])
    with pytest.raises(ValueError):
        ZuoParams(unknown_key=1)


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
    assert set(out) == {"zuo_logdensity", "zuo_flag5", "zuo_flag3", "zuo_threshold5", "zuo_threshold3",
                        "zuo_m1", "zuo_m2"}
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
