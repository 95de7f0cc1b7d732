"""The three experiments of paper 4 on the test set, and the numbers of metrics/ssfd.json.

1. :func:`perturbation_sweeps` (+ :func:`sweep_summary`, :func:`sweep_metrics`): perturbations
   (pixel shift, Gaussian blur, Gaussian noise) of increasing strength applied to the ground-truth
   test slices: mean SSFD and SSIM with 95 % bootstrap CIs per level.
2. :func:`encoder_layers`: SSFD vs SSIM for several encoder levels (Spearman correlation per level).
3. :func:`reconstructions` (+ :func:`reconstruction_metrics`): test reconstructions (supervised
   U-Net, zero-filled): SSIM vs SSFD (and VGG-16 perceptual distance when weights are configured)
   with the two examples where the metrics disagree / agree most.

:func:`run_evaluation` runs them in that order (3 before 2, which pools its reconstructions) and
writes every table; claims' thresholds come from :func:`mriqa_lib.claims.target`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import ndimage

from mriqa_lib import claims
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


@dataclass
class Models:
    """What the experiments run: SSFD's encoder, the reconstruction U-Net and the compared layers.

    No features are cached: :func:`~mriqa_lib.methods.ssfd.metric.ssfd_layers` encodes each batch
    of references with its images and drops both, so memory does not grow with the test set."""

    encoder: Any
    recon_net: Any
    layers: list[int]


def load_models(p: SsfdParams, model_dir: Path, ref: np.ndarray, device: Any = "cpu") -> Models:
    """Encoder (on ``device``: real fastMRI test sets are large) and reconstruction U-Net of ``model_dir``.

    ``ref`` (the test slices) is unused since SSFD streams (kept for the callers' signature)."""
    import torch

    from mriqa_lib.methods.ssfd.metric import load_encoder
    from mriqa_lib.models.ssfd_unet import ReconUNet

    encoder = load_encoder(model_dir).to(device)
    cfg = json.loads((Path(model_dir) / "recon.json").read_text())
    recon_net = ReconUNet(tuple(cfg["channels"]))
    recon_net.load_state_dict(torch.load(Path(model_dir) / "recon.pt", map_location="cpu", weights_only=True))
    layers = sorted(set(p.layers_compared) | {p.layer})
    return Models(encoder, recon_net, layers)


def sweep_levels(p: SsfdParams) -> dict[str, list[float]]:
    """Perturbation strengths of each kind (shift pixels, blur std, relative noise std)."""
    return {"shift": p.shift_px, "blur": p.blur_sigma_px, "noise": p.noise_std}


def perturbation_sweeps(p: SsfdParams, ref: np.ndarray, models: Models) -> tuple[pd.DataFrame, dict]:
    """Experiment 1: SSIM, PSNR and SSFD of every layer for each test slice, kind and level.

    Slice ``i`` is perturbed with seed ``p.seed * 100003 + i``; level 0 is an exact copy (distance 0).

    Returns:
        one row per (kind, level, slice), and the first slice at every level (for the notebook).
    """
    from mriqa_lib.methods.ssfd.metric import ssfd_layers

    n, layers = len(ref), models.layers
    rows, examples = [], {}
    print(f"perturbation sweeps on {n} test slices ...")
    for kind in KINDS:
        for j, level in enumerate(sweep_levels(p)[kind]):
            pert = np.stack([perturb(r, kind, float(level), seed=p.seed * 100003 + i) for i, r in enumerate(ref)])
            s, ps = _quality(ref, pert)
            if level == 0:  # an exact copy: distance 0 without a forward pass
                d = {l: np.zeros(n) for l in layers}
            else:
                d = ssfd_layers(ref, pert, layers, models.encoder)
            for i in range(n):
                rows.append(
                    {
                        "kind": kind,
                        "level": float(level),
                        "image": i,
                        "ssim": s[i],
                        "psnr": ps[i],
                        **{f"ssfd_l{l}": d[l][i] for l in layers},
                    }
                )
            examples[f"{kind}_{j}"] = pert[0]
    return pd.DataFrame(rows), examples


def sweep_summary(p: SsfdParams, pert_df: pd.DataFrame) -> pd.DataFrame:
    """Mean SSFD (layer ``p.layer``) and SSIM per kind and level with bootstrap 95 % CIs."""
    summ = []
    for (kind, level), g in pert_df.groupby(["kind", "level"], sort=False):
        m_s, lo_s, hi_s = bootstrap_ci(g[f"ssfd_l{p.layer}"].to_numpy(), n_boot=p.n_boot, seed=p.seed)
        m_q, lo_q, hi_q = bootstrap_ci(g["ssim"].to_numpy(), n_boot=p.n_boot, seed=p.seed)
        summ.append(
            {
                "kind": kind,
                "level": level,
                "ssfd_mean": m_s,
                "ssfd_lo": lo_s,
                "ssfd_hi": hi_s,
                "ssim_mean": m_q,
                "ssim_lo": lo_q,
                "ssim_hi": hi_q,
            }
        )
    return pd.DataFrame(summ)


def sweep_metrics(p: SsfdParams, summary: pd.DataFrame, pert_df: pd.DataFrame) -> dict:
    """Experiment 1's numbers: Spearman rho of SSFD / SSIM with strength, and the shift claim
    (SSFD of a shift below that of blur and noise at equal SSIM drop)."""
    metrics: dict = {}
    for kind in KINDS:
        s = summary[summary.kind == kind]
        g = pert_df[pert_df.kind == kind]
        metrics[f"rho_ssfd_strength_{kind}"] = spearman(s.level, s.ssfd_mean)
        metrics[f"rho_ssfd_strength_{kind}_per_image"] = spearman(g.level, g[f"ssfd_l{p.layer}"])
        metrics[f"rho_ssim_strength_{kind}"] = spearman(s.level, s.ssim_mean)
    for kind in ("blur", "noise"):
        key = f"rho_ssfd_strength_{kind}"
        metrics[f"done_rho_{kind}_ge_0.9"] = bool(metrics[key] >= claims.target("ssfd", key))
    common = ssfd_at_common_drop(summary)
    metrics.update(common)
    for other in ("blur", "noise"):
        metrics[f"shift_claim_vs_{other}_held"] = bool(
            all(common[f"ssfd_at_{f:g}_drop_shift"] < common[f"ssfd_at_{f:g}_drop_{other}"] for f in (0.5, 1.0))
        )
    metrics["shift_claim_held"] = bool(metrics["shift_claim_vs_blur_held"] and metrics["shift_claim_vs_noise_held"])
    metrics["shift_claim_definition"] = (
        "mean SSFD of the shift sweep below that of blur and noise at the same mean "
        "SSIM drop (interpolated at 50 % and 100 % of the largest drop all sweeps "
        "reach)"
    )
    return metrics


def reconstructions(p: SsfdParams, test: dict, models: Models) -> tuple[pd.DataFrame, dict[str, np.ndarray], bool]:
    """Experiment 3: SSIM, PSNR, VGG distance (NaN without weights) and SSFD of every layer of the
    U-Net's and the zero-filled reconstructions, with ``rank_gap`` (normalised rank of SSFD minus
    that of 1 - SSIM: where the metrics disagree).

    Returns:
        the table, the reconstructions by name, and whether VGG-16 was computed.
    """
    from mriqa_lib.methods.ssfd.datasets import predict
    from mriqa_lib.methods.ssfd.metric import load_vgg16, ssfd_layers, vgg_distance

    ref, layers = test["target"].astype(np.float32), models.layers
    zf = test["zero_filled"].astype(np.float32)
    rec_imgs = {"unet": predict(models.recon_net, zf), "zero_filled": zf}
    vgg = load_vgg16(p.vgg_weights) if p.vgg_weights else None
    rows = []
    for name, imgs in rec_imgs.items():
        s, ps = _quality(ref, imgs)
        d = ssfd_layers(ref, imgs, layers, models.encoder)
        v = vgg_distance(ref, imgs, vgg) if vgg is not None else np.full(len(ref), np.nan)
        for i in range(len(ref)):
            rows.append(
                {
                    "recon": name,
                    "image": i,
                    "subject": int(test["subject"][i]),
                    "ssim": s[i],
                    "psnr": ps[i],
                    "vgg": v[i],
                    **{f"ssfd_l{l}": d[l][i] for l in layers},
                }
            )
    rec = pd.DataFrame(rows)
    # disagreement: difference of the normalised ranks of badness (1 - SSIM vs SSFD)
    rec["rank_gap"] = rec[f"ssfd_l{p.layer}"].rank(pct=True) - (1 - rec.ssim).rank(pct=True)
    return rec, rec_imgs, vgg is not None


def example_rows(p: SsfdParams, rec: pd.DataFrame) -> tuple[int, int]:
    """Rows of the reconstruction where SSIM and SSFD disagree most, and of a good reconstruction by
    both metrics (better half of both; as the paper's second example) where they agree most."""
    r_ssim = (1 - rec.ssim).rank(pct=True)
    r_ssfd = rec[f"ssfd_l{p.layer}"].rank(pct=True)
    dis = int(rec.rank_gap.abs().idxmax())
    good = rec[(r_ssim < 0.5) & (r_ssfd < 0.5)]
    agr = int((good if len(good) else rec).rank_gap.abs().idxmin())
    return dis, agr


def reconstruction_metrics(p: SsfdParams, rec: pd.DataFrame, vgg: bool, dis: int, agr: int) -> dict:
    """Experiment 3's numbers: mean quality per reconstruction, SSIM-SSFD (and SSIM-VGG) rho, examples."""
    metrics: dict = {}
    for name in rec.recon.unique():
        g = rec[rec.recon == name]
        metrics[f"recon_{name}_ssim_mean"] = float(g.ssim.mean())
        metrics[f"recon_{name}_psnr_mean"] = float(g.psnr.mean())
        metrics[f"recon_{name}_ssfd_mean"] = float(g[f"ssfd_l{p.layer}"].mean())
    metrics["recon_unet_better_ssim"] = bool(metrics["recon_unet_ssim_mean"] > metrics["recon_zero_filled_ssim_mean"])
    metrics["recon_unet_better_ssfd"] = bool(metrics["recon_unet_ssfd_mean"] < metrics["recon_zero_filled_ssfd_mean"])
    metrics["rho_ssim_ssfd_recon"] = spearman(rec.ssim, rec[f"ssfd_l{p.layer}"])
    if vgg:
        metrics["rho_ssim_vgg_recon"] = spearman(rec.ssim, rec.vgg)
        metrics["vgg"] = "computed"
    else:
        metrics["vgg"] = "not computed: no VGG-16 weights configured (ssfd.vgg_weights)"
    keys = ("recon", "image", "ssim", f"ssfd_l{p.layer}", "rank_gap")
    metrics["example_disagree"] = {k: rec.loc[dis, k] for k in keys}
    metrics["example_agree"] = {k: rec.loc[agr, k] for k in keys}
    return metrics


def encoder_layers(p: SsfdParams, pert_df: pd.DataFrame, rec: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """Experiment 2: |Spearman rho(SSFD of layer l, SSIM)| over all perturbed images (level > 0) and
    reconstructions, per compared layer; the layer claim holds when it rises strictly with depth."""
    pooled = pd.concat([pert_df[pert_df.level > 0], rec], ignore_index=True)
    n_pert = int((pert_df.level > 0).sum())
    layer_rows = []
    for l in p.layers_compared:
        layer_rows.append(
            {
                "layer": l,
                "rho_pooled": spearman(pooled.ssim, pooled[f"ssfd_l{l}"]),
                "rho_recon": spearman(rec.ssim, rec[f"ssfd_l{l}"]),
                "rho_perturbations": spearman(pooled.ssim[:n_pert], pooled[f"ssfd_l{l}"][:n_pert]),
            }
        )
    layer_df = pd.DataFrame(layer_rows)
    strength = (-layer_df.rho_pooled).to_numpy()  # correlation with SSIM is negative: use |rho|
    metrics: dict = {}
    for r in layer_rows:
        metrics[f"rho_ssim_ssfd_layer{r['layer']}"] = r["rho_pooled"]
        metrics[f"rho_ssim_ssfd_layer{r['layer']}_recon"] = r["rho_recon"]
    metrics["layer_claim_held"] = bool(np.all(np.diff(strength) > 0))
    metrics["layer_claim_deepest_above_shallowest"] = bool(strength[-1] > strength[0])
    metrics["layer_claim_definition"] = (
        "|Spearman rho(SSFD_layer, SSIM)| over all perturbed test images and test "
        "reconstructions increases strictly with encoder depth"
    )
    return layer_df, metrics


def write_examples(
    path: Path, ref: np.ndarray, examples: dict, rec: pd.DataFrame, rec_imgs: dict[str, np.ndarray], dis: int, agr: int
) -> None:
    """The images the notebook shows: a reference, its perturbations, the two example reconstructions."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(
                fh,
                reference0=ref[0],
                **{f"pert_{k}": v for k, v in examples.items()},
                disagree_ref=ref[int(rec.loc[dis, "image"])],
                disagree_img=rec_imgs[rec.loc[dis, "recon"]][int(rec.loc[dis, "image"])],
                agree_ref=ref[int(rec.loc[agr, "image"])],
                agree_img=rec_imgs[rec.loc[agr, "recon"]][int(rec.loc[agr, "image"])],
            )


def run_evaluation(p: SsfdParams, test: dict, model_dir: Path, results: Path, device: Any = "cpu") -> dict:
    """All experiments (the encoder on ``device``); writes results/ssfd/* and returns the metrics dict."""
    results = Path(results)
    results.mkdir(parents=True, exist_ok=True)
    ref = test["target"].astype(np.float32)
    models = load_models(p, model_dir, ref, device)
    metrics: dict = {"n_test_slices": len(ref), "ssfd_layer": p.layer, "layers_compared": p.layers_compared}
    pert_df, examples = perturbation_sweeps(p, ref, models)
    write_tsv(results / "perturbations.tsv", pert_df)
    summary = sweep_summary(p, pert_df)
    write_tsv(results / "perturbation_summary.tsv", summary)
    metrics.update(sweep_metrics(p, summary, pert_df))
    rec, rec_imgs, vgg = reconstructions(p, test, models)  # before experiment 2, which pools them
    write_tsv(results / "reconstructions.tsv", rec)
    dis, agr = example_rows(p, rec)
    metrics.update(reconstruction_metrics(p, rec, vgg, dis, agr))
    layer_df, layer_metrics = encoder_layers(p, pert_df, rec)
    write_tsv(results / "layers.tsv", layer_df)
    metrics.update(layer_metrics)
    write_examples(results / "examples.npz", ref, examples, rec, rec_imgs, dis, agr)
    write_json(results / "levels.json", {k: list(map(float, v)) for k, v in sweep_levels(p).items()})
    return metrics
