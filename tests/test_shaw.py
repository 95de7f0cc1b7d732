"""Paper 3 (Shaw et al.): losses, network heads, working grid, ADNI adapter, scorer.

Tiny inputs built here; truth from closed forms (GaussianNLLLoss, the optimum of Eq. 2), exact
properties (zero-initialised mean head = identity, sigma > 0) and known rigid shifts.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from lightning_checks import fit_and_reload

from mriqa_lib.io import MriqaInputError, Volume, load_nifti, save_nifti
from mriqa_lib.methods.shaw.losses import hetero_nll, seg_uncertainty_loss
from mriqa_lib.methods.shaw.params import ShawParams
from mriqa_lib.models.unet_hetero import HeteroUNet, MultiTaskHeteroUNet

torch.set_num_threads(1)


# --- losses ------------------------------------------------------------------------------------
def test_hetero_loss_equals_gaussian_nll():
    g = torch.Generator().manual_seed(0)
    mean, target = torch.randn(2, 1, 5, 6, 7, generator=g), torch.randn(2, 1, 5, 6, 7, generator=g)
    logvar = torch.empty(2, 1, 5, 6, 7).uniform_(-6, 3, generator=g)
    ref = torch.nn.GaussianNLLLoss(full=False, eps=1e-6, reduction="mean")(mean, target, torch.exp(logvar))
    assert torch.allclose(hetero_nll(mean, logvar, target), ref, rtol=1e-5, atol=1e-6)


def test_hetero_loss_gradients_match_gaussian_nll():
    g = torch.Generator().manual_seed(1)
    mean = torch.randn(1, 1, 4, 4, 4, generator=g, requires_grad=True)
    logvar = torch.empty(1, 1, 4, 4, 4).uniform_(-3, 2, generator=g).requires_grad_()
    target = torch.randn(1, 1, 4, 4, 4, generator=g)
    g1 = torch.autograd.grad(hetero_nll(mean, logvar, target), (mean, logvar))
    ref = torch.nn.GaussianNLLLoss()(mean, target, torch.exp(logvar))
    g2 = torch.autograd.grad(ref, (mean, logvar))
    for a, b in zip(g1, g2):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-7)


def test_beta_nll_at_one_gives_the_squared_error_and_variance_regression_gradients():
    # Seitzer et al. 2022, beta = 1: d/d mean = -(y - mean) / N and d/d logvar = (sigma^2 - r^2) / (2 N)
    g = torch.Generator().manual_seed(3)
    mean = torch.randn(1, 1, 4, 4, 4, generator=g, requires_grad=True)
    logvar = torch.empty(1, 1, 4, 4, 4).uniform_(-6, 1, generator=g).requires_grad_()
    target = torch.randn(1, 1, 4, 4, 4, generator=g)
    gm, gl = torch.autograd.grad(hetero_nll(mean, logvar, target, beta=1.0), (mean, logvar))
    n, r = mean.numel(), (target - mean).detach()
    assert torch.allclose(gm, -r / n, rtol=1e-4, atol=1e-7)
    assert torch.allclose(gl, (torch.exp(logvar.detach()) - r**2) / (2 * n), rtol=1e-4, atol=1e-7)
    # the optimum sigma^2 = r^2 is the same as Eq. 1's: both gradients vanish there
    at_opt = torch.log(r**2).requires_grad_()
    for beta in (0.0, 0.5, 1.0):
        (grad,) = torch.autograd.grad(hetero_nll(mean.detach(), at_opt, target, beta=beta), at_opt)
        assert grad.abs().max() < 1e-6


def test_seg_loss_closed_form_and_optimum():
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(1, 2, 3, 4, 5, generator=g)
    target = torch.randint(0, 2, (1, 3, 4, 5), generator=g)
    ce = torch.nn.functional.cross_entropy(logits, target, reduction="none")
    # sigma_s = 1 (log 0): Eq. 2 is the plain cross entropy
    assert torch.allclose(seg_uncertainty_loss(logits, torch.zeros(1, 1, 3, 4, 5), target), ce.mean())
    # Eq. 2 is minimised per voxel at sigma_s^2 = 2 CE: the gradient vanishes there
    s = torch.log(2 * ce)[:, None].clone().requires_grad_()
    (grad,) = torch.autograd.grad(seg_uncertainty_loss(logits, s, target), s)
    assert grad.abs().max() < 1e-6
    s2 = torch.full_like(s, 0.7)
    expected = (torch.exp(-s2[:, 0]) * ce + 0.35).mean()
    assert torch.allclose(seg_uncertainty_loss(logits, s2, target), expected)


# --- networks ----------------------------------------------------------------------------------
def test_zero_initialised_mean_head_returns_input():
    torch.manual_seed(0)
    x = torch.rand(2, 1, 16, 16, 8)
    for net in (HeteroUNet((4, 8, 16)), MultiTaskHeteroUNet((4, 8, 16))):
        with torch.no_grad():
            mean = net(x)[0]
        assert torch.equal(mean, x)  # exactly the input through the residual path
    no_res = HeteroUNet((4, 8, 16), residual=False)
    with torch.no_grad():
        assert torch.count_nonzero(no_res(x)[0]) == 0


def test_sigma_positive_and_finite_for_extreme_inputs():
    from mriqa_lib.methods.shaw.inference import predict

    torch.manual_seed(0)
    net = MultiTaskHeteroUNet((4, 8), logvar_range=(-12.0, 6.0))
    for m in net.modules():  # large random weights push the heads far out
        if isinstance(m, torch.nn.Conv3d):
            torch.nn.init.normal_(m.weight, 0, 3.0)
    vols = np.stack(
        [np.zeros((8, 10, 6)), np.full((8, 10, 6), 1e4), np.random.default_rng(0).normal(0, 1e3, (8, 10, 6))]
    )
    out = predict(net, vols.astype(np.float32))
    for key in ("sigma", "seg_sigma"):
        assert out[key].shape == (3, 8, 10, 6)  # padded to a multiple of 2 inside, cropped back
        assert np.all(np.isfinite(out[key])) and np.all(out[key] > 0)
        assert out[key].min() >= np.exp(-6.0) * 0.999 and out[key].max() <= np.exp(3.0) * 1.001
    assert np.all((out["seg_prob"] >= 0) & (out["seg_prob"] <= 1))


def test_variance_head_learns_noise_level():
    """After a short fit on inputs with two noise levels, sigma is larger on the noisier input."""
    from mriqa_lib.methods.shaw.inference import predict

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    clean = np.zeros((16, 16, 16), np.float32)
    clean[4:12, 4:12, 4:12] = 1.0
    net = HeteroUNet((4, 8), norm="none")
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    y = torch.from_numpy(clean)[None, None]
    for step in range(60):
        level = 0.02 if step % 2 else 0.4
        x = torch.from_numpy(clean + rng.normal(0, level, clean.shape).astype(np.float32))[None, None]
        loss = hetero_nll(*net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    low = predict(net, clean + rng.normal(0, 0.02, clean.shape).astype(np.float32))["sigma"]
    high = predict(net, clean + rng.normal(0, 0.4, clean.shape).astype(np.float32))["sigma"]
    assert np.median(high) > 2 * np.median(low)


# --- working grid and params ----------------------------------------------------------------------
def test_work_grid_block_centres():
    from mriqa_lib.data.template import REF_AFFINE
    from mriqa_lib.methods.shaw.data import block_mean, work_grid

    affine, shape = work_grid(4.0)
    assert shape == (48, 56, 48)
    idx = np.array([3, 5, 7, 1.0])
    # block i averages reference voxels 2i and 2i + 1: its centre is their mean position
    ref_pts = [REF_AFFINE @ np.r_[2 * idx[:3] + d, 1] for d in (0, 1)]
    assert np.allclose(affine @ idx, (ref_pts[0] + ref_pts[1]) / 2)
    data = np.arange(4 * 4 * 4, dtype=np.float32).reshape(4, 4, 4)
    assert block_mean(data, 2)[0, 0, 0] == pytest.approx(data[:2, :2, :2].mean())


def test_params_validation():
    with pytest.raises(ValueError, match="multiple"):
        ShawParams(grid_mm=5.0)
    with pytest.raises(ValueError, match="low <= high"):
        ShawParams(noise_snr_db=(10.0, -10.0))
    with pytest.raises(ValueError, match="adni_root"):
        ShawParams(adni_qc_table="qc.csv")
    with pytest.raises(ValueError):
        ShawParams(unknown_key=1)


# --- ADNI adapter -------------------------------------------------------------------------------
def _phantom(shape=(28, 30, 26)) -> np.ndarray:
    x, y, z = np.meshgrid(*[np.arange(n, dtype=np.float32) for n in shape], indexing="ij")
    c = np.array(shape) / 2
    img = 100.0 * (((x - c[0]) / 9) ** 2 + ((y - c[1]) / 11) ** 2 + ((z - c[2]) / 8) ** 2 < 1)
    img += 60.0 * (((x - c[0] - 4) ** 2 + (y - c[1] + 3) ** 2 + (z - c[2] - 2) ** 2) < 9)  # asymmetric blob
    img -= 40.0 * (((x - c[0] + 3) ** 2 + (y - c[1] - 5) ** 2 + (z - c[2] + 1) ** 2) < 6)
    from scipy import ndimage

    return ndimage.gaussian_filter(img, 0.8).astype(np.float32)


@pytest.fixture()
def adni_dir(tmp_path):
    """A LONI download (``ADNI/<PTID>/MPRAGE/<date>/I<image>/ADNI_<PTID>_MR_..._S<series>_I<image>``),
    MRIQUALITY.csv (RID, VISCODE2, LONIUID = S<series>, PASS) and a pairs table."""
    from scipy import ndimage

    root = tmp_path / "ADNI"
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = [-28, -30, -26]
    base = _phantom()
    shifted = ndimage.shift(base, (1.5, -1.0, 0.5), order=3)  # (3, -2, 1) mm
    files = {
        "101": ("002_S_0001", base, "1"),
        "102": ("002_S_0001", shifted, "0"),
        "201": ("002_S_0002", np.roll(base, 1, axis=0), "1"),
    }
    for iid, (ptid, data, _) in files.items():
        d = root / ptid / "MPRAGE" / "2006-01-01_10_00_00.0" / f"I{iid}"
        save_nifti(d / f"ADNI_{ptid}_MR_MPRAGE_br_raw_20060101100000000_1_S1{iid}_I{iid}.nii.gz", data, affine)
    (tmp_path / "MRIQUALITY.csv").write_text(
        "RID,VISCODE2,LONIUID,PASS\n"
        + "".join(f"{int(ptid[-4:])},bl,S1{iid},{flag}\n" for iid, (ptid, _, flag) in files.items())
    )
    (tmp_path / "pairs.tsv").write_text("subject_id\tclean_image_id\tartefact_image_id\n002_S_0001\tI101\tI102\n")
    return root, tmp_path / "MRIQUALITY.csv", tmp_path / "pairs.tsv", base


def _unprepared(monkeypatch):
    """The phantoms are no heads: use them as they are instead of the preparation chain."""
    from mriqa_lib.data import adni

    monkeypatch.setattr(
        adni, "prepare_file", lambda path, cache, params=None: (load_nifti(path), {"prep_image": str(path)})
    )


def test_adni_qc_table_and_pairs_alignment(adni_dir, tmp_path, monkeypatch):
    from mriqa_lib.data.adni import adni_pairs, adni_scans

    root, qc, pairs, base = adni_dir
    frame = adni_scans(root, qc)
    assert list(frame["image_id"]) == ["I101", "I102", "I201"]
    assert list(frame["series_id"]) == ["S1101", "S1102", "S1201"]
    assert list(frame["artefact_free"]) == [True, False, True]
    assert list(frame["subject_id"]) == ["002_S_0001", "002_S_0001", "002_S_0002"]
    assert all(p.name.endswith(f"_{i}.nii.gz") for p, i in zip(frame["path"], frame["image_id"]))
    _unprepared(monkeypatch)
    (pair,) = adni_pairs(root, pairs, tmp_path / "cache")
    assert pair["subject_id"] == "002_S_0001"
    art = pair["artefact"]
    assert art.shape == base.shape and np.allclose(art.affine, pair["clean"].affine)
    # the recovered transform undoes the known (3, -2, 1) mm shift (ITK LPS frame: x, y flipped)
    assert np.allclose(pair["alignment"]["translation_mm"], [-3.0, 2.0, 1.0], atol=0.4)
    inner = (slice(4, -4),) * 3
    before = np.abs(load_nifti(sorted(root.rglob("*I102.nii.gz"))[0]).data - base)[inner].mean()
    after = np.abs(art.data - base)[inner].mean()
    assert after < 0.3 * before


def test_adni_errors_name_the_file(adni_dir, tmp_path):
    from mriqa_lib.data.adni import pair_subjects, read_qc_table

    root, qc, _, _ = adni_dir
    bad = tmp_path / "bad.csv"
    bad.write_text("subject_id,clean_image_id,artefact_image_id\n002_S_0009,I999,I101\n")
    with pytest.raises(MriqaInputError, match="bad.csv: line 2: scan I999 has no downloaded file"):
        pair_subjects(root, bad)
    bad.write_text("RID,LONIUID,PASS\n1,S1101,maybe\n")
    with pytest.raises(MriqaInputError, match="bad.csv: line 2: PASS 'maybe'"):
        read_qc_table(bad)
    bad.write_text("LONIUID,PASS\nS1101,1\n")
    with pytest.raises(MriqaInputError, match=r"bad.csv: MRIQUALITY needs column\(s\) \['RID'\]"):
        read_qc_table(bad)


def test_shaw_split_forces_held_out_subjects_into_test():
    """Shaw's split is splits.split_subjects with p.split: the held-out subjects (the cohort's, or ADNI's
    pair subjects) are test subjects, every subject is in one split, the fractions are kept."""
    from mriqa_lib.methods.shaw.synthesis import subject_splits

    p = ShawParams()
    scans = [{"subject_id": f"s{i:02d}"} for i in range(20)] + [{"subject_id": "s00"}]  # s00 scanned twice
    held = {"s03", "s07", "s11"}
    split = subject_splits(scans, p, held)
    assert set(split) == {f"s{i:02d}" for i in range(20)}
    assert all(split[s] == "test" for s in held)
    counts = {k: list(split.values()).count(k) for k in ("train", "val", "test")}
    assert counts == {"train": 15, "val": 2, "test": 3}  # 80/10/10 of 20, the test split filled by the held-out
    assert subject_splits(scans, p, set()) == subject_splits(scans, p, set())  # seeded


def test_embedded_pairs_use_test_subjects_only():
    import pandas as pd

    from mriqa_lib.methods.shaw.synthesis import pair_scans

    table = pd.DataFrame({"subject_id": list("abcde"), "split": ["train", "test", "val", "test", "train"]})
    assert pair_scans(table) == [1, 3]
    with pytest.raises(MriqaInputError, match="no test subject"):
        pair_scans(table.assign(split="train"))


# --- scorer -------------------------------------------------------------------------------------
def test_scorer_columns_and_sigma_map_geometry(tmp_path):
    from mriqa_lib.methods.shaw.inference import save_model
    from mriqa_lib.methods.shaw.score import load_scorer

    p = ShawParams(features=[4, 8])
    torch.manual_seed(0)
    model_dir = tmp_path / "models"
    save_model(HeteroUNet((4, 8), norm=p.norm), "recon", p, model_dir / "recon.pt")

    class S:
        shaw = p

    scorer = load_scorer(model_dir, S())
    affine = np.diag([3.0, 3.0, 3.0, 1.0])
    affine[:3, 3] = [-60, -90, -50]
    data = np.zeros((40, 44, 38), np.float32)
    data[8:32, 8:36, 8:30] = 500 + np.random.default_rng(0).normal(0, 20, (24, 28, 22))
    path = tmp_path / "in" / "sub-01_T1w.nii.gz"
    save_nifti(path, data, affine)
    row = scorer.score(load_nifti(path), maps_dir=tmp_path / "maps")
    assert row["shaw_total_sigma"] > 0 and row["shaw_median_sigma"] > 0
    import nibabel as nib

    map_path = Path(row["shaw_sigma_map"])
    assert map_path.parent == tmp_path / "maps" and map_path.name.startswith("sub-01_T1w_")
    sigma_map = nib.load(str(map_path))
    assert sigma_map.shape == data.shape and np.allclose(sigma_map.affine, affine)
    assert np.all(np.asarray(sigma_map.dataobj) >= 0)


def test_rigid_align_is_reproducible_with_seed_zero():
    """SimpleITK treats sampling seed 0 as the wall clock; seed 0 here must still give the same bytes."""
    from mriqa_lib.data.adni import rigid_align
    from mriqa_lib.io import Volume

    rng = np.random.default_rng(0)
    data = np.zeros((32, 32, 32), np.float32)
    data[8:24, 10:22, 9:25] = 100 + rng.normal(0, 5, (16, 12, 16))
    fixed = Volume(data, np.diag([2.0, 2.0, 2.0, 1.0]))
    moving = Volume(np.roll(data, 2, axis=0), fixed.affine)
    runs = [rigid_align(fixed, moving, iterations=30, seed=0)[0].data for _ in range(3)]
    assert all(np.array_equal(runs[0], r) for r in runs[1:])


# --- Lightning module ----------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["recon", "multitask"])
def test_module_checkpoint_reloads_with_load_from_checkpoint(tmp_path, kind):
    """One training step written by ModelCheckpoint reloads with the same hyper-parameters and weights."""

    from mriqa_lib.methods.shaw.lit import ShawModule, loaders

    p = ShawParams(features=[2, 4], patch=8, batch_size=1)
    rng = np.random.default_rng(0)
    clean = rng.random((2, 12, 12, 12)).astype(np.float16)
    data = {"inputs": clean, "clean": clean, "gm": (clean > 0.5).astype(np.uint8), "source": np.arange(2)}
    torch.manual_seed(0)
    module = ShawModule.from_params(kind, p, total_steps=1)
    loader, val_loader = loaders(p, data, data, iterations=1)
    module, back = fit_and_reload(module, tmp_path / "ckpt", loader, val_loader)
    assert back.hparams.kind == kind and list(back.hparams.features) == [2, 4] and back.lr == p.lr
    x = torch.from_numpy(clean[:1].astype(np.float32))[:, None]
    with torch.no_grad():
        for a, b in zip(module.net(x), back.net(x)):
            assert torch.equal(a, b)


def test_multitask_starts_from_a_reconstruction_model():
    from mriqa_lib.methods.shaw.lit import ShawModule

    p = ShawParams(features=[2, 4])
    recon = ShawModule.from_params("recon", p)
    multi = ShawModule.from_params("multitask", p)
    multi.start_from(recon.net.state_dict())
    shared = recon.net.state_dict()
    assert all(torch.equal(v, multi.net.state_dict()[k]) for k, v in shared.items())
    with pytest.raises(ValueError, match="not a reconstruction model"):
        recon.start_from(multi.net.state_dict())


def test_patch_dataset_draws_from_named_streams():
    """Sample order, epoch order and crop positions are the streams shaw.sample_order/epoch_order/sample_draw,
    which are the keys 77/78/79 the data sets were drawn with before the streams had names."""
    from mriqa_lib.methods.shaw.lit import PatchDataset

    vols = np.arange(3 * 10 * 10 * 10, dtype=np.float32).reshape(3, 10, 10, 10)
    ds = PatchDataset(vols, vols, np.zeros_like(vols, np.uint8), np.arange(3), length=7, patch=4, seed=5)
    assert np.array_equal(ds.order, np.random.default_rng(np.random.SeedSequence([5, 77])).permutation(3))
    for i in range(7):
        epoch, j = divmod(i, 3)
        k = int(np.random.default_rng(np.random.SeedSequence([5, 78, epoch])).permutation(3)[j])
        rng = np.random.default_rng(np.random.SeedSequence([5, 79, i]))
        start = [int(rng.integers(0, 7)) for _ in range(3)]
        expected = vols[k][tuple(slice(s, s + 4) for s in start)]
        assert np.array_equal(ds[i]["x"][0].numpy(), expected)


# --- experiments (a stand-in network with a known sigma, so every number has a closed form) ------------
def _fake_predict(model, images, batch=4):
    """sigma = 1 + |x| (a noisier scan is more uncertain); recon = x; seg: fixed prob 0.75, sigma 2."""
    x = np.asarray(images, np.float32)
    return {"recon": x, "sigma": 1.0 + np.abs(x), "seg_prob": np.full_like(x, 0.75), "seg_sigma": np.full_like(x, 2.0)}


def test_exp2_pairs_totals_and_fraction_from_the_sigma_maps(tmp_path, monkeypatch):
    import pandas as pd

    from mriqa_lib.data.template import REF_AFFINE
    from mriqa_lib.methods.shaw import experiments as E

    monkeypatch.setattr(E, "predict", _fake_predict)
    p = ShawParams(grid_mm=4.0, map_cases=0)
    rng = np.random.default_rng(0)
    rows = []
    for k, (art, lift) in enumerate([("motion", 0.5), ("ghosting", 0.2), ("motion", -0.3)]):
        clean = rng.random((6, 6, 6)).astype(np.float32) + 0.5
        save_nifti(tmp_path / f"p{k}_clean.nii.gz", clean, REF_AFFINE)
        save_nifti(tmp_path / f"p{k}_artefact.nii.gz", clean + lift, REF_AFFINE)  # |x| rises iff lift > 0
        rows.append(
            {
                "pair": f"p{k}",
                "subject_id": f"s{k}",
                "artefact": art,
                "severity": 1.0,
                "clean_file": f"p{k}_clean.nii.gz",
                "artefact_file": f"p{k}_artefact.nii.gz",
            }
        )
    exp2, m = E.exp2_pairs(p, None, pd.DataFrame(rows), tmp_path, tmp_path / "maps")
    voxel_ml = 4.0**3 / 1000
    expected = [
        float((1 + np.abs(load_nifti(tmp_path / f"p{k}_artefact.nii.gz").data)).sum() * voxel_ml) for k in range(3)
    ]
    assert np.allclose(exp2["artefact_total_sigma"], expected, rtol=1e-6)
    assert list(exp2["artefact_above_clean"]) == [True, True, False]
    assert m["exp2_frac_artefact_above_clean"] == pytest.approx(2 / 3) and m["exp2_n_pairs"] == 3
    assert m["exp2_frac_above_motion"] == 0.5 and m["exp2_frac_above_ghosting"] == 1.0
    assert len(list((tmp_path / "maps").glob("*_sigma.nii.gz"))) == 6  # max(map_cases, 4) pairs: all 3


def _upsampled(volumes: np.ndarray) -> np.ndarray:
    """Volumes on a twice finer grid whose 2 x 2 x 2 block means are ``volumes`` (2 mm references of 4 mm scans)."""
    return volumes.repeat(2, axis=1).repeat(2, axis=2).repeat(2, axis=3)


def _prepared_ramps(n: int, size: int) -> np.ndarray:
    """``n`` test scans: an intensity ramp in a central box, normalised as a prepared scan is."""
    from mriqa_lib.data.preprocess import normalise

    clean = np.zeros((size,) * 3, np.float32)
    inner = slice(size // 6, size - size // 6)
    clean[inner, inner, inner] = np.linspace(1.0, 2.0, len(range(size)[inner]), dtype=np.float32)
    return np.stack([normalise(clean)] * n)


def _deviation(x: np.ndarray, clean: np.ndarray, fg: np.ndarray) -> np.ndarray:
    """``x`` minus its best affine match to ``clean`` over ``fg``: what is left once the scale the
    normalisation sets is taken out."""
    a, b = np.polyfit(clean[fg], x[fg], 1)
    return x - a * clean - b


def test_exp1_draws_its_noise_on_the_2mm_grid_as_training_does(tmp_path, monkeypatch):
    """The working-grid input keeps about 1/sqrt(8) of the noise a 2 mm draw of the same SNR adds
    (a 2 x 2 x 2 block mean of independent noise), not all of it as a draw on the 4 mm grid would."""
    from mriqa_lib.artifacts import apply_artifact
    from mriqa_lib.data.preprocess import normalise
    from mriqa_lib.methods.shaw import experiments as E

    seen = []
    monkeypatch.setattr(E, "predict", lambda model, x, batch=4: seen.append(x) or {"recon": x, "sigma": x + 1})
    clean = _prepared_ramps(1, 24)
    p = ShawParams(grid_mm=4.0, map_cases=0, snr_levels=3, snr_high_db=10.0, snr_low_db=10.0)
    E.exp1_noise_levels(p, None, {"clean": clean, "reference": _upsampled(clean)}, ["a"], tmp_path, np.eye(4))
    fg = clean[0] > 0

    def noise(x):
        return float(np.std(_deviation(x, clean[0], fg)[fg]))

    kept = np.mean([noise(x) for x in seen[0]])
    on_grid = np.mean(  # the same SNR drawn on the working grid, normalised as the input is
        [noise(normalise(apply_artifact("rician_noise", clean[0], None, seed=k, snr_db=10.0)[0])) for k in range(3)]
    )
    assert (
        0.2 < kept / on_grid < 0.6
    )  # 1/sqrt(8) = 0.35 for Gaussian noise (Rician and normalisation: 0.44); 1 on the grid


def test_exp3_rise_of_reconstruction_sigma_only(tmp_path, monkeypatch):
    """Noise in a box raises a sigma that follows the input's deviation from the clean scan, inside
    the box, and leaves the constant segmentation sigma: rises > 0 and 0."""
    from mriqa_lib.methods.shaw import experiments as E

    clean = _prepared_ramps(2, 12)

    def predict(model, images, batch=4):  # sigma = 1 + 100 x the input's deviation from the clean scan
        x = np.asarray(images, np.float32)
        sigma = np.stack([1.0 + 100.0 * np.abs(_deviation(xi, clean[0], fg)) for xi in x])
        return {"recon": x, "sigma": sigma, "seg_prob": np.full_like(x, 0.75), "seg_sigma": np.full_like(x, 2.0)}

    p = ShawParams(grid_mm=4.0, map_cases=0, regional_snr_db=0.0)
    fg = clean[0] > p.fg_fraction * clean[0].max()
    monkeypatch.setattr(E, "predict", predict)
    test = {"clean": clean, "gm": fg[None].repeat(2, 0).astype(np.uint8), "reference": _upsampled(clean)}
    exp3, m = E.exp3_partial_noise(p, None, test, ["a", "b"], tmp_path, np.eye(4))
    assert len(exp3) == 4 and set(exp3["condition"]) == {"clean", "partial_noise"}
    assert m["exp3_recon_sigma_rise"] > 0 and m["exp3_seg_sigma_rise"] == 0.0
    assert m["exp3_frac_recon_rise_above_seg"] == 1.0
    n_gm, n_all = int(fg.sum()), clean[0].size  # prob 0.75 everywhere: seg = whole grid
    assert m["exp3_gm_dice_clean"] == pytest.approx(2 * n_gm / (n_all + n_gm))
    clean_rows, noisy_rows = exp3[exp3.condition == "clean"], exp3[exp3.condition == "partial_noise"]
    assert np.allclose(clean_rows["recon_total_sigma"], fg.sum() * 4.0**3 / 1000)  # sigma 1 on the clean scan
    # the box drawn on the 2 mm grid is found on the 4 mm one: the noise raised sigma there most
    mean_sigma = noisy_rows["recon_total_sigma"].to_numpy() / (fg.sum() * 4.0**3 / 1000)
    assert (noisy_rows["recon_sigma_in_box"].to_numpy() > 2 * mean_sigma).all()


def test_exp1_r2_is_one_when_sigma_tracks_the_error_linearly(tmp_path, monkeypatch):
    """A network whose median sigma is an exact linear function of its squared error gives R^2 = 1."""
    from mriqa_lib.methods.shaw import experiments as E

    clean = np.zeros((1, 10, 10, 10), np.float32)
    clean[:, 2:8, 2:8, 2:8] = 1.0

    def predict(model, images, batch=4):
        x = np.asarray(images, np.float32)
        err = ((x - clean[0]) ** 2)[:, clean[0] > 0.1].sum(axis=1)  # per level: the foreground error
        return {"recon": x, "sigma": np.broadcast_to((0.1 + 2.0 * err)[:, None, None, None], x.shape).copy()}

    monkeypatch.setattr(E, "predict", predict)
    p = ShawParams(grid_mm=4.0, map_cases=1, snr_levels=5)
    test = {"clean": clean, "reference": _upsampled(clean)}
    exp1, r2, m = E.exp1_noise_levels(p, None, test, ["a"], tmp_path, np.eye(4))
    assert len(exp1) == 5 and m["exp1_levels"] == 5
    assert m["exp1_r2_mean"] == pytest.approx(1.0, abs=1e-9)
    assert m["exp1_slope_min"] == pytest.approx(2.0, rel=1e-6)
    assert (tmp_path / "exp1" / "a_clean.nii.gz").exists()

    # a sigma that falls as the error grows fits a line just as well: only the slope tells them apart
    def falling(model, images, batch=4):
        out = predict(model, images, batch)
        return {"recon": out["recon"], "sigma": 10.0 - out["sigma"]}

    monkeypatch.setattr(E, "predict", falling)
    _, _, m = E.exp1_noise_levels(p, None, test, ["a"], tmp_path / "falling", np.eye(4))
    assert m["exp1_r2_mean"] == pytest.approx(1.0, abs=1e-9)
    assert m["exp1_slope_min"] == pytest.approx(-2.0, rel=1e-5)


def test_claim_checks_read_the_claims_targets():
    from mriqa_lib import claims
    from mriqa_lib.methods.shaw.experiments import claim_checks

    r2 = claims.target("shaw", "exp1_r2_mean")
    pairs = claims.target("shaw", "exp2_frac_artefact_above_clean")
    assert claim_checks({"exp1_r2_mean": r2}) == {"done_r2_ge_0_8": True}
    done = claim_checks(
        {
            "exp1_r2_mean": r2 - 1e-9,
            "exp2_frac_artefact_above_clean": pairs,
            "exp3_recon_sigma_rise": 0.2,
            "exp3_seg_sigma_rise": 0.2,
        }
    )
    assert done == {"done_r2_ge_0_8": False, "done_pairs_ge_90pct": True, "done_recon_rise_gt_seg_rise": False}


def test_claim_checks_follow_a_changed_target(monkeypatch):
    """No threshold is typed in the experiments: moving the claims' targets moves the flags."""
    from mriqa_lib import claims
    from mriqa_lib.methods.shaw.experiments import claim_checks

    metrics = {
        "exp1_r2_mean": 0.6,
        "exp2_frac_artefact_above_clean": 0.6,
        "exp3_recon_sigma_rise": 0.9,
        "exp3_seg_sigma_rise": 0.1,
    }  # rise difference 0.8
    monkeypatch.setattr(claims, "target", lambda method, metric: 0.5)
    assert all(claim_checks(metrics).values())
    monkeypatch.setattr(claims, "target", lambda method, metric: 0.85)
    assert not any(claim_checks(metrics).values())


def test_module_pickles():
    """A top-level class pickles (the old closure-built class could not: DDP spawn and checkpoints need it)."""
    import pickle

    from mriqa_lib.methods.shaw.lit import ShawModule

    module = ShawModule.from_params("multitask", ShawParams(features=[2, 4]), total_steps=5)
    back = pickle.loads(pickle.dumps(module))
    assert type(back) is ShawModule and back.hparams == module.hparams
    assert all(torch.equal(v, back.state_dict()[k]) for k, v in module.state_dict().items())


def test_training_artefacts_are_drawn_on_the_reference_grid_as_a_scored_scan_is_prepared():
    """A training input is exactly what the scorer's preparation makes of the scan corrupted on the
    2 mm reference grid; a 4 mm block mean keeps 1/sqrt(8) of its white noise (closed form)."""
    from mriqa_lib.artifacts import apply_artifact
    from mriqa_lib.data.template import REF_AFFINE, REF_SHAPE
    from mriqa_lib.methods.shaw.data import corrupt_as_scanned, prepare_volume

    reference = np.zeros(REF_SHAPE, np.float32)
    reference[20:76, 20:92, 20:76] = 1.0
    assert np.array_equal(
        corrupt_as_scanned(reference, {"artefact": "none"}, 4.0)[0],
        prepare_volume(Volume(reference, REF_AFFINE), 4.0).data,
    )
    spec = {"artefact": "gaussian_noise", "severity": 0.1, "seed": 3, "kwargs": {}}
    x, _ = corrupt_as_scanned(reference, spec, 4.0)
    noisy, _ = apply_artifact("gaussian_noise", reference, 0.1, seed=3, spacing=(2.0,) * 3)
    assert np.allclose(x, prepare_volume(Volume(noisy, REF_AFFINE), 4.0).data, atol=1e-6)
    inside = (slice(14, 34), slice(14, 42), slice(14, 34))  # 4 mm blocks well inside the cube
    scale = np.median(x[inside])  # the cube's level after normalisation
    ratio = x[inside].std() / scale / (noisy[40:60, 40:70, 40:60].std() / np.median(noisy[40:60, 40:70, 40:60]))
    assert ratio == pytest.approx(1 / np.sqrt(8), rel=0.1)
