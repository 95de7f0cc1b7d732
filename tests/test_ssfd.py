"""Paper 4 (SSFD): metric properties, SSIM/PSNR vs scikit-image, masks, VGG loader, scorer, params."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from lightning_checks import fit_and_reload

from mriqa_lib.io import MriqaInputError, Volume
from mriqa_lib.methods.ssfd.experiments import perturb, shift_image, ssfd_at_common_drop
from mriqa_lib.methods.ssfd.metric import load_vgg16, ssfd, ssfd_layers, vgg_distance
from mriqa_lib.methods.ssfd.params import SsfdParams
from mriqa_lib.metrics import psnr, ssim
from mriqa_lib.models.ssfd_unet import SsfdUNet, VGG16Features


@pytest.fixture(scope="module")
def encoder():
    torch.manual_seed(0)
    return SsfdUNet((4, 8, 8, 8, 8), groups=4).eval()


def _images(seed, n=3, shape=(32, 48)):
    rng = np.random.default_rng(seed)
    return rng.random((n, *shape)).astype(np.float32), rng.random((n, *shape)).astype(np.float32)


@pytest.mark.parametrize("layer", [1, 2, 3, 4, 5])
def test_ssfd_identity_and_symmetry(encoder, layer):
    a, b = _images(layer)
    assert np.all(ssfd(a, a, layer, encoder) == 0)
    d_ab, d_ba = ssfd(a, b, layer, encoder), ssfd(b, a, layer, encoder)
    np.testing.assert_array_equal(d_ab, d_ba)
    assert np.all(d_ab > 0)
    assert isinstance(ssfd(a[0], b[0], layer, encoder), float)


def test_ssfd_scale_invariant_and_layers_consistent(encoder):
    a, b = _images(7, shape=(30, 40))  # not a multiple of 16: padded inside
    # each image is z-scored on its own: an affine intensity change is not a difference
    assert np.allclose(ssfd(a, 3 * a + 1, 4, encoder), 0, atol=1e-8)
    many = ssfd_layers(a, b, [1, 3], encoder)
    np.testing.assert_allclose(many[3], ssfd(a, b, 3, encoder), rtol=1e-5)
    with pytest.raises(ValueError, match="layer"):
        ssfd(a, b, 6, encoder)
    with pytest.raises(ValueError, match="shapes"):
        ssfd(a, b[:, :-1], 2, encoder)


@pytest.mark.parametrize("seed,data_range", [(0, 1.0), (1, 2.0), (2, 0.5)])
def test_ssim_psnr_match_skimage(seed, data_range):
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    rng = np.random.default_rng(seed)
    x = rng.random((37, 52)) * data_range
    y = np.clip(x + rng.normal(0, 0.1 * data_range, x.shape), 0, None)
    ref = structural_similarity(
        x, y, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=data_range
    )
    assert abs(ssim(x, y, data_range=data_range) - ref) < 1e-3
    assert ssim(x, x, data_range=data_range) == pytest.approx(1.0)
    assert psnr(x, y, data_range) == pytest.approx(peak_signal_noise_ratio(x, y, data_range=data_range), rel=1e-9)
    assert psnr(x, x, data_range) == float("inf")


def test_inpaint_dataset_masks():
    from mriqa_lib.methods.ssfd.datasets import InpaintDataset

    rng = np.random.default_rng(3)
    ds = InpaintDataset(rng.random((2, 48, 64)).astype(np.float32), patch=8, fraction=0.25, seed=0, pool=4)
    inp, target, mask = ds[1]
    count = int(np.floor(48 * 64 * 0.25 / 64))
    # non-overlapping patches (min distance patch * sqrt(2)): exact coverage; holes zero-filled
    assert int(mask.sum()) == count * 64
    assert torch.all(inp[mask] == 0) and torch.equal(inp[~mask], target[~mask])
    # the target is z-scored per image (SSFD input normalisation)
    assert abs(float(target.mean())) < 1e-5 and abs(float(target.std()) - 1) < 1e-3


def test_inpaint_masks_differ_between_loader_workers_and_epochs():
    """Two DataLoader workers must not draw the same mask sequence (each holds a copy of the dataset's
    generator), and a new epoch draws new masks; the same loader seed gives the same masks again."""
    from torch.utils.data import DataLoader

    from mriqa_lib.methods.ssfd.datasets import InpaintDataset

    images = np.random.default_rng(0).random((8, 32, 32)).astype(np.float32)
    ds = InpaintDataset(images, patch=4, fraction=0.25, seed=0, pool=64)

    def epochs(seed: int) -> list[np.ndarray]:
        loader = DataLoader(ds, batch_size=1, num_workers=2, generator=torch.Generator().manual_seed(seed))
        return [np.stack([m[0, 0].numpy() for _, _, m in loader]) for _ in range(2)]

    first, second = epochs(1)
    # worker 0 serves items 0, 2, 4, 6 and worker 1 items 1, 3, 5, 7: a copied generator pairs them up
    assert not all(np.array_equal(first[k], first[k + 1]) for k in range(0, 8, 2))
    assert not np.array_equal(first, second)
    again = epochs(1)
    assert np.array_equal(first, again[0]) and np.array_equal(second, again[1])


def test_perturbations():
    rng = np.random.default_rng(5)
    x = np.zeros((32, 32), np.float32)
    x[8:20, 10:22] = rng.random((12, 12))
    np.testing.assert_allclose(shift_image(x, 2), np.roll(x, (2, 2), axis=(0, 1)), atol=1e-5)
    assert np.array_equal(perturb(x, "blur", 0.0, 0), x)
    noisy = perturb(x, "noise", 0.1, 0)
    assert abs((noisy - x).std() - 0.1 * (x.max() - x.min())) < 0.02
    with pytest.raises(ValueError):
        perturb(x, "rotate", 1.0, 0)


def test_ssfd_at_common_drop():
    rows = []
    for kind, slope in (("shift", 1.0), ("blur", 2.0), ("noise", 3.0)):
        for lvl in range(4):
            drop = 0.1 * lvl * (1 if kind != "noise" else 0.5)
            rows.append({"kind": kind, "level": lvl, "ssim_mean": 1 - drop, "ssfd_mean": slope * drop})
    out = ssfd_at_common_drop(pd.DataFrame(rows))
    assert out["ssim_drop_common"] == pytest.approx(0.15)
    assert out["ssfd_at_1_drop_shift"] == pytest.approx(0.15)
    assert out["ssfd_at_1_drop_noise"] == pytest.approx(0.45)
    assert out["ssfd_at_0.5_drop_blur"] == pytest.approx(0.15)


def test_vgg_loader(tmp_path):
    torch.manual_seed(0)
    net = VGG16Features()
    state = {**net.state_dict(), "classifier.0.weight": torch.zeros(2, 2)}
    torch.save(state, tmp_path / "vgg16.pth")
    vgg = load_vgg16(tmp_path / "vgg16.pth")
    a, b = _images(9, n=1, shape=(32, 32))
    assert vgg_distance(a, a, vgg)[0] == 0
    assert vgg_distance(a, b, vgg)[0] > 0
    torch.save({k: v for k, v in state.items() if k != "features.28.bias"}, tmp_path / "bad.pth")
    with pytest.raises(MriqaInputError, match="lacks"):
        load_vgg16(tmp_path / "bad.pth")
    with pytest.raises(MriqaInputError, match="not found"):
        load_vgg16(tmp_path / "none.pth")


def test_params_validation():
    assert SsfdParams().layer == 4
    with pytest.raises(ValueError, match="5 numbers"):
        SsfdParams(encoder_channels=[8, 16, 32, 64])
    with pytest.raises(ValueError, match="group_norm_groups"):
        SsfdParams(encoder_channels=[6, 16, 32, 64, 128], group_norm_groups=4)
    with pytest.raises(ValueError):
        SsfdParams(noise_std=[0.1, 0.0, 0.2])


def test_scorer(encoder):
    from mriqa_lib.data.template import REF_AFFINE, REF_SHAPE
    from mriqa_lib.methods.ssfd.score import Scorer

    rng = np.random.default_rng(0)
    data = np.zeros(REF_SHAPE, np.float32)
    data[20:76, 20:92, 20:76] = 1 + 0.2 * rng.random((56, 72, 56))
    vol = Volume(data, REF_AFFINE.copy())
    scorer = Scorer(encoder, layer=3, n_slices=2, step=3)
    assert scorer.score(vol, None) == {}
    same = scorer.score(vol, vol)
    assert same["ssfd_distance"] == 0 and same["ssfd_ssim"] == pytest.approx(1.0)
    worse = scorer.score(Volume(data + 0.3 * rng.random(REF_SHAPE).astype(np.float32), REF_AFFINE.copy()), vol)
    assert set(worse) == {"ssfd_distance", "ssfd_ssim", "ssfd_psnr"}
    assert worse["ssfd_distance"] > 0 and worse["ssfd_ssim"] < 1


def test_run_evaluation_end_to_end_tiny(tmp_path):
    import json

    from mriqa_lib.methods.ssfd.experiments import run_evaluation
    from mriqa_lib.models.ssfd_unet import ReconUNet

    torch.manual_seed(0)
    models = tmp_path / "models"
    models.mkdir()
    torch.save(SsfdUNet((4, 8, 8, 8, 8), 4).state_dict(), models / "inpaint.pt")
    (models / "inpaint.json").write_text(json.dumps({"channels": [4, 8, 8, 8, 8], "groups": 4}))
    torch.save(ReconUNet((4, 8)).state_dict(), models / "recon.pt")
    (models / "recon.json").write_text(json.dumps({"channels": [4, 8]}))
    rng = np.random.default_rng(0)
    target = np.zeros((5, 32, 48), np.float32)
    target[:, 8:24, 10:38] = 0.5 + rng.random((5, 16, 28))
    test = {
        "target": target,
        "zero_filled": target + 0.1 * rng.random(target.shape).astype(np.float32),
        "subject": np.arange(5),
    }
    p = SsfdParams(n_boot=100, shift_px=[0, 0.5, 1], blur_sigma_px=[0, 0.5, 1], noise_std=[0, 0.02, 0.04])
    m = run_evaluation(p, test, models, tmp_path / "results")
    assert m["rho_ssfd_strength_blur"] == pytest.approx(1.0) and m["done_rho_blur_ge_0.9"]
    assert isinstance(m["shift_claim_held"], bool) and isinstance(m["layer_claim_held"], bool)
    assert m["vgg"].startswith("not computed")
    for name in ("perturbations.tsv", "perturbation_summary.tsv", "reconstructions.tsv", "layers.tsv", "examples.npz"):
        assert (tmp_path / "results" / name).exists()
    summ = pd.read_csv(tmp_path / "results" / "perturbation_summary.tsv", sep="\t")
    assert (summ.ssfd_lo <= summ.ssfd_mean + 1e-12).all() and (summ.ssfd_mean <= summ.ssfd_hi + 1e-12).all()
    assert summ[summ.level == 0].ssfd_mean.eq(0).all() and summ[summ.level == 0].ssim_mean.eq(1).all()


@pytest.mark.parametrize("which", ["recon", "inpaint"])
def test_modules_reload_with_load_from_checkpoint(tmp_path, which):
    """One epoch of one step written by ModelCheckpoint reloads with the same hyper-parameters and weights."""
    from torch.utils.data import DataLoader

    from mriqa_lib.methods.ssfd.datasets import InpaintDataset, PairDataset
    from mriqa_lib.methods.ssfd.lit import InpaintModule, ReconModule

    images = _images(0, n=2, shape=(32, 32))[0]
    torch.manual_seed(0)
    if which == "recon":
        cls, module, ds = ReconModule, ReconModule((4, 8), 1e-3), PairDataset(images + 0.1, images)
    else:
        cls, module = InpaintModule, InpaintModule((4, 4, 4, 4, 4), 2, 1e-3)
        ds = InpaintDataset(images, 8, 0.25, seed=0, fixed=True, pool=2)
    loader = DataLoader(ds, batch_size=2)
    module, back = fit_and_reload(module, tmp_path / "ckpt", loader, loader)
    assert type(back) is cls and back.hparams == module.hparams and back.lr == module.lr
    x = ds[0][0][None]
    with torch.no_grad():
        assert torch.equal(module.net(x), back.net(x))


def test_encoder_layers_claim_follows_the_rank_correlation():
    """Layer 3's SSFD is a decreasing function of SSIM (|rho| = 1), layer 2 half noise, layer 1 pure noise:
    |rho| rises with depth, so the layer claim holds; reversed layers break it."""
    from mriqa_lib.methods.ssfd.experiments import encoder_layers

    rng = np.random.default_rng(0)
    ssim_ = rng.random(60)
    noise = rng.random(60)
    frame = pd.DataFrame(
        {
            "ssim": ssim_,
            "level": np.r_[np.zeros(10), np.ones(50)],
            "ssfd_l3": 1 - ssim_,
            "ssfd_l2": (1 - ssim_) + noise,
            "ssfd_l1": rng.random(60),
        }
    )
    pert, rec = frame.iloc[:40], frame.iloc[40:].drop(columns="level")
    p = SsfdParams(layers_compared=[1, 2, 3], layer=3)
    table, m = encoder_layers(p, pert, rec)
    assert list(table.layer) == [1, 2, 3]
    assert m["rho_ssim_ssfd_layer3"] == pytest.approx(-1.0) and m["rho_ssim_ssfd_layer3_recon"] == pytest.approx(-1.0)
    assert m["layer_claim_held"] and m["layer_claim_deepest_above_shallowest"]
    _, m = encoder_layers(SsfdParams(layers_compared=[3, 2, 1], layer=3), pert, rec)
    assert not m["layer_claim_held"] and not m["layer_claim_deepest_above_shallowest"]


def test_sweep_metrics_claim_flags_read_the_claims_targets():
    from mriqa_lib import claims
    from mriqa_lib.methods.ssfd.experiments import KINDS, sweep_metrics

    levels = [0.0, 1.0, 2.0, 3.0]
    rows = [
        {"kind": k, "level": lv, "ssfd_mean": lv * (1 + i), "ssim_mean": 1 - 0.1 * lv}
        for i, k in enumerate(KINDS)
        for lv in levels
    ]
    summary = pd.DataFrame(rows)
    per_image = summary.rename(columns={"ssfd_mean": "ssfd_l4"})
    m = sweep_metrics(SsfdParams(layer=4), summary, per_image)
    assert m["rho_ssfd_strength_blur"] == pytest.approx(1.0)
    assert m["rho_ssfd_strength_blur"] >= claims.target("ssfd", "rho_ssfd_strength_blur")
    assert m["done_rho_blur_ge_0.9"] and m["done_rho_noise_ge_0.9"]
    assert m["shift_claim_held"]  # shift has the smallest SSFD at every common SSIM drop
