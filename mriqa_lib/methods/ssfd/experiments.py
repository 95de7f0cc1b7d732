"""The three experiments of paper 4 on the test set, and the numbers of metrics/ssfd.json.

1. Perturbations (pixel shift, Gaussian blur, Gaussian noise) of increasing strength applied to
   the ground-truth test slices: mean SSFD and SSIM with 95 % bootstrap CIs per level.
2. SSFD vs SSIM for several encoder levels (Spearman correlation per level).
3. Test reconstructions (supervised U-Net, zero-filled): SSIM vs SSFD (and VGG-16 perceptual
   distance when weights are configured) with the two examples where the metrics disagree /
   agree most.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage

from mriqa_lib.artifacts.intensity import blur
from mriqa_lib.artifacts.noise import gaussian_noise
from mriqa_lib.io import atomic_path, write_json, write_tsv
from mriqa_lib.methods.ssfd.params import SsfdParams
from mriqa_lib.metrics import bootstrap_ci, psnr, spearman, ssim

KINDS = ("shift", "blur", "noise")


def shift_image(image: np.ndarray, pixels: float) -> np.ndarray:
    """Translate a 2-D image by ``pixels`` along both axes (Fourier shift: exact, no interpolation
    blur; the zero background makes the circular wrap harmless)."""
    if pixels == 0:
        return image.astype(np.float32).copy()
    k = ndimage.fourier_shift(np.fft.fftn(image), (pixels, pixels))
    return np.real(np.fft.ifftn(k)).astype(np.float32)


def perturb(image: np.ndarray, kind: str, level: float, seed: int) -> np.ndarray:
    """One perturbation of one 2-D image: shift (pixels), blur (Gaussian std, pixels) or noise
    (Gaussian std relative to the image range), via :mod:`mriqa_lib.artifacts` where it exists."""
    if kind == "shift":
        return shift_image(image, level)
    if kind == "blur":
        return blur(image, level, seed, spacing=1.0)[0]
    if kind == "noise":
        return gaussian_noise(image, level, seed, reference="range")[0]
    raise ValueError(f"unknown perturbation {kind!r}")


def _quality(refs: np.ndarray, imgs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rng_ = [float(r.max() - r.min()) for r in refs]
    s = np.array([ssim(r, x, data_range=d) for r, x, d in zip(refs, imgs, rng_)])
    p = np.array([psnr(r, x, data_range=d) for r, x, d in zip(refs, imgs, rng_)])
    return s, p


def ssfd_at_common_drop(summary: pd.DataFrame, fractions=(0.5, 1.0)) -> dict:
    """SSFD of each perturbation interpolated at common mean SSIM drops.

    The largest drop all three sweeps reach is ``d*``; for each fraction f the mean SSFD of each
    perturbation is interpolated (linearly in the mean SSIM drop) at ``f d*``."""
    curves = {}
    for kind in KINDS:
        s = summary[summary.kind == kind].sort_values("level")
        drop = 1.0 - s.ssim_mean.to_numpy()
        curves[kind] = (np.maximum.accumulate(drop), s.ssfd_mean.to_numpy())
    d_star = float(min(c[0].max() for c in curves.values()))
    out = {"ssim_drop_common": d_star}
    for f in fractions:
        for kind, (d, v) in curves.items():
            out[f"ssfd_at_{f:g}_drop_{kind}"] = float(np.interp(f * d_star, d, v))
    return out


def run_evaluation(p: SsfdParams, test: dict, model_dir: Path, results: Path) -> dict:
    """All experiments; writes results/ssfd/* and returns the metrics dict."""
    import torch

    from mriqa_lib.methods.ssfd.datasets import predict
    from mriqa_lib.methods.ssfd.metric import encoder_features, load_encoder, load_vgg16, ssfd_layers, vgg_distance
    from mriqa_lib.models.ssfd_unet import ReconUNet

    results = Path(results)
    results.mkdir(parents=True, exist_ok=True)
    device = "cuda" if torch.cuda.is_available() else "cpu"  # real fastMRI test sets are large
    encoder = load_encoder(model_dir).to(device)
    cfg = json.loads((Path(model_dir) / "recon.json").read_text())
    recon_net = ReconUNet(tuple(cfg["channels"]))
    recon_net.load_state_dict(torch.load(Path(model_dir) / "recon.pt", map_location="cpu", weights_only=True))
    layers = sorted(set(p.layers_compared) | {p.layer})
    ref = test["target"].astype(np.float32)
    n = len(ref)
    metrics: dict = {"n_test_slices": n, "ssfd_layer": p.layer, "layers_compared": p.layers_compared}

    # 1. perturbation sweeps -------------------------------------------------------------------
    levels = {"shift": p.shift_px, "blur": p.blur_sigma_px, "noise": p.noise_std}
    rows = []
    examples = {}
    print(f"perturbation sweeps on {n} test slices ...")
    # cache the reference features when they fit in ~1 GB (embedded: ~30 MB); else recompute per level
    feat_bytes = sum(encoder.encoder.blocks[l - 1].conv2.out_channels * ref[0].size / 4 ** (l - 1) for l in layers) * 4 * n
    ref_feats = encoder_features(ref, layers, encoder) if feat_bytes < 1e9 else None
    for kind in KINDS:
        for j, level in enumerate(levels[kind]):
            pert = np.stack([perturb(r, kind, float(level), seed=p.seed * 100003 + i) for i, r in enumerate(ref)])
            s, ps = _quality(ref, pert)
            if level == 0:  # an exact copy: distance 0 without a forward pass
                d = {l: np.zeros(n) for l in layers}
            else:
                d = ssfd_layers(ref, pert, layers, encoder, reference_features=ref_feats)
            for i in range(n):
                rows.append({"kind": kind, "level": float(level), "image": i, "ssim": s[i], "psnr": ps[i],
                             **{f"ssfd_l{l}": d[l][i] for l in layers}})
            examples[f"{kind}_{j}"] = pert[0]
    pert_df = pd.DataFrame(rows)
    write_tsv(results / "perturbations.tsv", pert_df)
    summ = []
    for (kind, level), g in pert_df.groupby(["kind", "level"], sort=False):
        m_s, lo_s, hi_s = bootstrap_ci(g[f"ssfd_l{p.layer}"].to_numpy(), n_boot=p.n_boot, seed=p.seed)
        m_q, lo_q, hi_q = bootstrap_ci(g["ssim"].to_numpy(), n_boot=p.n_boot, seed=p.seed)
        summ.append({"kind": kind, "level": level, "ssfd_mean": m_s, "ssfd_lo": lo_s, "ssfd_hi": hi_s,
                     "ssim_mean": m_q, "ssim_lo": lo_q, "ssim_hi": hi_q})
    summary = pd.DataFrame(summ)
    write_tsv(results / "perturbation_summary.tsv", summary)
    for kind in KINDS:
        s = summary[summary.kind == kind]
        g = pert_df[pert_df.kind == kind]
        metrics[f"rho_ssfd_strength_{kind}"] = spearman(s.level, s.ssfd_mean)
        metrics[f"rho_ssfd_strength_{kind}_per_image"] = spearman(g.level, g[f"ssfd_l{p.layer}"])
        metrics[f"rho_ssim_strength_{kind}"] = spearman(s.level, s.ssim_mean)
    metrics["done_rho_blur_ge_0.9"] = bool(metrics["rho_ssfd_strength_blur"] >= 0.9)
    metrics["done_rho_noise_ge_0.9"] = bool(metrics["rho_ssfd_strength_noise"] >= 0.9)
    common = ssfd_at_common_drop(summary)
    metrics.update(common)
    for other in ("blur", "noise"):
        metrics[f"shift_claim_vs_{other}_held"] = bool(all(
            common[f"ssfd_at_{f:g}_drop_shift"] < common[f"ssfd_at_{f:g}_drop_{other}"] for f in (0.5, 1.0)))
    metrics["shift_claim_held"] = bool(metrics["shift_claim_vs_blur_held"] and metrics["shift_claim_vs_noise_held"])
    metrics["shift_claim_definition"] = ("mean SSFD of the shift sweep below that of blur and noise at the same mean "
                                         "SSIM drop (interpolated at 50 % and 100 % of the largest drop all sweeps reach)")

    # 3. reconstructions (computed before 2, which pools them) -----------------------------------
    zf = test["zero_filled"].astype(np.float32)
    unet = predict(recon_net, zf)
    rec_rows = []
    rec_imgs = {"unet": unet, "zero_filled": zf}
    vgg = load_vgg16(p.vgg_weights) if p.vgg_weights else None
    for name, imgs in rec_imgs.items():
        s, ps = _quality(ref, imgs)
        d = ssfd_layers(ref, imgs, layers, encoder, reference_features=ref_feats)
        v = vgg_distance(ref, imgs, vgg) if vgg is not None else np.full(n, np.nan)
        for i in range(n):
            rec_rows.append({"recon": name, "image": i, "subject": int(test["subject"][i]), "ssim": s[i],
                             "psnr": ps[i], "vgg": v[i], **{f"ssfd_l{l}": d[l][i] for l in layers}})
    rec = pd.DataFrame(rec_rows)
    # disagreement: difference of the normalised ranks of badness (1 - SSIM vs SSFD)
    r_ssim = (1 - rec.ssim).rank(pct=True)
    r_ssfd = rec[f"ssfd_l{p.layer}"].rank(pct=True)
    rec["rank_gap"] = (r_ssfd - r_ssim)
    write_tsv(results / "reconstructions.tsv", rec)
    dis = int(rec.rank_gap.abs().idxmax())
    # as the paper's second example: a good reconstruction by both metrics (better half of both)
    good = rec[(r_ssim < 0.5) & (r_ssfd < 0.5)]
    agr = int((good if len(good) else rec).rank_gap.abs().idxmin())
    for name in rec_imgs:
        g = rec[rec.recon == name]
        metrics[f"recon_{name}_ssim_mean"] = float(g.ssim.mean())
        metrics[f"recon_{name}_psnr_mean"] = float(g.psnr.mean())
        metrics[f"recon_{name}_ssfd_mean"] = float(g[f"ssfd_l{p.layer}"].mean())
    metrics["recon_unet_better_ssim"] = bool(metrics["recon_unet_ssim_mean"] > metrics["recon_zero_filled_ssim_mean"])
    metrics["recon_unet_better_ssfd"] = bool(metrics["recon_unet_ssfd_mean"] < metrics["recon_zero_filled_ssfd_mean"])
    metrics["rho_ssim_ssfd_recon"] = spearman(rec.ssim, rec[f"ssfd_l{p.layer}"])
    if vgg is not None:
        metrics["rho_ssim_vgg_recon"] = spearman(rec.ssim, rec.vgg)
        metrics["vgg"] = "computed"
    else:
        metrics["vgg"] = "not computed: no VGG-16 weights configured (ssfd.vgg_weights)"
    metrics["example_disagree"] = {k: rec.loc[dis, k] for k in ("recon", "image", "ssim", f"ssfd_l{p.layer}", "rank_gap")}
    metrics["example_agree"] = {k: rec.loc[agr, k] for k in ("recon", "image", "ssim", f"ssfd_l{p.layer}", "rank_gap")}

    # 2. encoder layers: SSFD vs SSIM on the reconstructions and on all perturbed images ---------
    pooled = pd.concat([pert_df[pert_df.level > 0], rec], ignore_index=True)
    layer_rows = []
    for l in p.layers_compared:
        layer_rows.append({"layer": l,
                           "rho_pooled": spearman(pooled.ssim, pooled[f"ssfd_l{l}"]),
                           "rho_recon": spearman(rec.ssim, rec[f"ssfd_l{l}"]),
                           "rho_perturbations": spearman(pooled.ssim[: (pert_df.level > 0).sum()],
                                                         pooled[f"ssfd_l{l}"][: (pert_df.level > 0).sum()])})
    layer_df = pd.DataFrame(layer_rows)
    write_tsv(results / "layers.tsv", layer_df)
    strength = (-layer_df.rho_pooled).to_numpy()  # correlation with SSIM is negative: use |rho|
    for r in layer_rows:
        metrics[f"rho_ssim_ssfd_layer{r['layer']}"] = r["rho_pooled"]
        metrics[f"rho_ssim_ssfd_layer{r['layer']}_recon"] = r["rho_recon"]
    metrics["layer_claim_held"] = bool(np.all(np.diff(strength) > 0))
    metrics["layer_claim_deepest_above_shallowest"] = bool(strength[-1] > strength[0])
    metrics["layer_claim_definition"] = ("|Spearman rho(SSFD_layer, SSIM)| over all perturbed test images and test "
                                         "reconstructions increases strictly with encoder depth")

    # images the notebook shows ---------------------------------------------------------------
    with atomic_path(results / "examples.npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(
                fh, reference0=ref[0], **{f"pert_{k}": v for k, v in examples.items()},
                disagree_ref=ref[int(rec.loc[dis, "image"])],
                disagree_img=rec_imgs[rec.loc[dis, "recon"]][int(rec.loc[dis, "image"])],
                agree_ref=ref[int(rec.loc[agr, "image"])],
                agree_img=rec_imgs[rec.loc[agr, "recon"]][int(rec.loc[agr, "image"])])
    write_json(results / "levels.json", {k: list(map(float, v)) for k, v in levels.items()})
    return metrics
