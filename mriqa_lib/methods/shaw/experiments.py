"""The three experiments of paper 3 on the test set, and the numbers of metrics/shaw.json.

1. :func:`exp1_noise_levels`: Rician noise at ``p.snr_levels`` SNRs added to each test scan; the
   median sigma against the reconstruction error, R^2 of a line per volume.
2. :func:`exp2_pairs`: the total uncertainty of the artefact scan vs the clean scan of each
   test-retest pair (pairs of test subjects only).
3. :func:`exp3_partial_noise`: noise in a box of each test scan; relative rise of the total
   reconstruction sigma vs the segmentation sigma of the multi-task model.

Experiments 1 and 3 draw their noise as the training inputs are made (:func:`.data.corrupt_as_scanned`):
on the test scan's 2 mm reference grid (``test["reference"]``), then block-averaged to the working
grid and normalised. Drawn on the working grid itself, noise of the same SNR is several times
stronger than any the network trained on (a 4 mm block mean keeps about a third of it).

Each returns its table(s) and its metrics; maps (NIfTI) of the first ``p.map_cases`` cases go
below ``maps``. :func:`claim_checks` compares the metrics with the claims' targets.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from mriqa_lib import claims
from mriqa_lib.io import load_nifti, read_tsv, save_nifti
from mriqa_lib.methods.shaw.data import corrupt_as_scanned, grid_factor, sample_seed
from mriqa_lib.methods.shaw.inference import predict, summarise

__all__ = ["foreground", "exp1_noise_levels", "exp2_pairs", "exp3_partial_noise", "claim_checks"]

# Experiments 1 and 3 draw their noise from keys (seed, 11, scan, level) and (seed, 13, scan): no named
# stream of mriqa_lib.seeds holds them (11 is bricout's), so they keep sample_seed with the old numbers.
_EXP1_KEY, _EXP3_KEY = 11, 13


def _progress(items, desc: str, unit: str):
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit=unit)


def foreground(clean: np.ndarray, frac: float) -> np.ndarray:
    """Voxels brighter than ``frac`` times the clean scan's maximum (where sigma is summarised)."""
    return clean > frac * float(clean.max())


def as_scanned(p: Any, reference: np.ndarray, artefact: str, severity: float, seed: int, **kwargs: Any):
    """``artefact`` drawn on a test scan's 2 mm ``reference`` and prepared on the working grid, as the
    training inputs are: (input, the artefact's info)."""
    spec = {"artefact": artefact, "severity": severity, "seed": seed, "kwargs": kwargs}
    return corrupt_as_scanned(np.asarray(reference, np.float32), spec, p.grid_mm)


def _exp1_volume(
    p: Any,
    model: torch.nn.Module,
    clean: np.ndarray,
    reference: np.ndarray,
    t: int,
    levels: np.ndarray,
    voxel_ml: float,
) -> tuple[np.ndarray, dict[str, np.ndarray], list[dict[str, Any]]]:
    """Test scan ``t`` at every noise level: (noisy inputs, predictions, one row per level)."""
    fg = foreground(clean, p.fg_fraction)
    noisy = np.stack(
        [
            as_scanned(p, reference, "rician_noise", 0.0, sample_seed(p.seed, _EXP1_KEY, t, k), snr_db=float(db))[0]
            for k, db in enumerate(levels)
        ]
    )
    pred = predict(model, noisy)
    rows = []
    for k, db in enumerate(levels):
        err = (pred["recon"][k] - clean) ** 2
        rows.append(
            {
                "snr_db": float(db),
                "error_fg": float(err[fg].sum()),
                "error_all": float(err.sum()),
                "input_error_fg": float(((noisy[k] - clean) ** 2)[fg].sum()),
                **summarise(pred["sigma"][k], fg, voxel_ml),
            }
        )
    return noisy, pred, rows


def _exp1_maps(
    maps: Path,
    sid: str,
    clean: np.ndarray,
    noisy: np.ndarray,
    pred: dict[str, np.ndarray],
    levels: np.ndarray,
    affine: np.ndarray,
) -> None:
    """Input, reconstruction and sigma at the highest, middle and lowest SNR, and the clean scan."""
    map_levels = {float(levels[0]), float(levels[len(levels) // 2]), float(levels[-1])}
    for k, db in enumerate(levels):
        if float(db) in map_levels:
            tag = f"{sid}_snr{db:+.1f}dB"
            for name, arr in (("input", noisy[k]), ("recon", pred["recon"][k]), ("sigma", pred["sigma"][k])):
                save_nifti(maps / "exp1" / f"{tag}_{name}.nii.gz", arr, affine)
    save_nifti(maps / "exp1" / f"{sid}_clean.nii.gz", clean, affine)


def exp1_noise_levels(
    p: Any, model: torch.nn.Module, test: dict[str, np.ndarray], subjects: list[str], maps: Path, affine: np.ndarray
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Experiment 1: median sigma vs reconstruction error over ``p.snr_levels`` Rician noise levels.

    Args:
        p: ``ShawParams``.
        model: the reconstruction model.
        test: the test set: ``clean`` volumes on the working grid, one per subject of ``subjects``
            in order, and ``reference``, the same scans on the 2 mm grid the noise is drawn on.
        subjects: subject id of each test volume to use (its length is the number of volumes).
        maps: folder of the NIfTI maps.
        affine: the working grid's affine.

    Returns:
        ``(rows per volume and level, R^2 per volume, metrics exp1_*)``.
    """
    from mriqa_lib.artifacts import snr_levels_db
    from mriqa_lib.metrics import linear_fit_r2

    levels = snr_levels_db(p.snr_levels, p.snr_high_db, p.snr_low_db)
    voxel_ml = float(p.grid_mm) ** 3 / 1000.0
    rows = []
    for t in _progress(range(len(subjects)), "exp1 noise levels", "vol"):
        clean = test["clean"][t].astype(np.float32)
        noisy, pred, per_level = _exp1_volume(p, model, clean, test["reference"][t], t, levels, voxel_ml)
        rows += [{"subject_id": subjects[t], **r} for r in per_level]
        if t < p.map_cases:
            _exp1_maps(maps, subjects[t], clean, noisy, pred, levels, affine)
    exp1 = pd.DataFrame(rows)
    r2 = (
        exp1.groupby("subject_id", sort=False)
        .apply(
            lambda g: pd.Series(
                {
                    "r2": linear_fit_r2(g["error_fg"], g["sigma_median"]),
                    "r2_all": linear_fit_r2(g["error_all"], g["sigma_median"]),
                    "slope": float(np.polyfit(g["error_fg"], g["sigma_median"], 1)[0]),
                }
            ),
            include_groups=False,
        )
        .reset_index()
    )
    metrics = dict(
        exp1_r2_mean=float(r2["r2"].mean()),
        exp1_r2_min=float(r2["r2"].min()),
        exp1_r2_max=float(r2["r2"].max()),
        exp1_r2_example=float(r2["r2"].iloc[0]),
        exp1_r2_all_voxels_mean=float(r2["r2_all"].mean()),
        exp1_slope_min=float(r2["slope"].min()),  # R^2 alone also rewards a sigma that falls with the error
        exp1_levels=int(len(levels)),
    )
    return exp1, r2, metrics


def _exp2_pair(
    p: Any, model: torch.nn.Module, rec: dict[str, Any], folder: Path, maps: Path | None, voxel_ml: float
) -> dict[str, Any]:
    """Total and median sigma of both scans of one pair; their maps go to ``maps`` unless None."""
    vols = {r: load_nifti(folder / rec[f"{r}_file"]) for r in ("clean", "artefact")}
    pred = predict(model, np.stack([vols["clean"].data, vols["artefact"].data]))
    fg = foreground(vols["clean"].data, p.fg_fraction)
    out = {
        "pair": rec["pair"],
        "subject_id": rec["subject_id"],
        "artefact": rec["artefact"],
        "severity": rec.get("severity"),
    }
    for j, r in enumerate(("clean", "artefact")):
        s = summarise(pred["sigma"][j], fg, voxel_ml)
        out.update({f"{r}_total_sigma": s["sigma_total"], f"{r}_median_sigma": s["sigma_median"]})
        if maps is not None:
            stem = rec[f"{r}_file"].replace(".nii.gz", "")
            save_nifti(maps / f"{stem}_sigma.nii.gz", pred["sigma"][j], vols[r].affine)
            save_nifti(maps / f"{stem}_recon.nii.gz", pred["recon"][j], vols[r].affine)
            shutil.copyfile(folder / rec[f"{r}_file"], maps / rec[f"{r}_file"])
    return out


def exp2_pairs(
    p: Any, model: torch.nn.Module, pairs: pd.DataFrame, folder: Path, maps: Path
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Experiment 2: is the artefact scan of each test-retest pair more uncertain than the clean one?

    Args:
        pairs: ``pairs.tsv`` of the synthesize step; ``folder`` holds its NIfTI files.
        maps: folder of the maps of the first ``max(p.map_cases, 4)`` pairs.

    Returns:
        ``(one row per pair, metrics exp2_*)``: the fraction of pairs with the artefact scan above,
        mean totals, the AUROC of total sigma (artefact vs clean), the fraction per artefact.
    """
    from mriqa_lib.metrics import auroc

    voxel_ml = float(p.grid_mm) ** 3 / 1000.0
    rows = [
        _exp2_pair(p, model, rec, folder, maps if k < max(p.map_cases, 4) else None, voxel_ml)
        for k, rec in enumerate(_progress(pairs.to_dict("records"), "exp2 pairs", "pair"))
    ]
    exp2 = pd.DataFrame(rows)
    exp2["artefact_above_clean"] = exp2["artefact_total_sigma"] > exp2["clean_total_sigma"]
    labels = [False] * len(exp2) + [True] * len(exp2)
    metrics = dict(
        exp2_n_pairs=int(len(exp2)),
        exp2_frac_artefact_above_clean=float(exp2["artefact_above_clean"].mean()),
        exp2_total_sigma_clean_mean=float(exp2["clean_total_sigma"].mean()),
        exp2_total_sigma_artefact_mean=float(exp2["artefact_total_sigma"].mean()),
        exp2_auroc=auroc(labels, list(exp2["clean_total_sigma"]) + list(exp2["artefact_total_sigma"])),
    )
    for name, g in exp2.groupby("artefact"):
        metrics[f"exp2_frac_above_{name}"] = float(g["artefact_above_clean"].mean())
    return exp2, metrics


def _exp3_volume(
    p: Any, model: torch.nn.Module, clean: np.ndarray, reference: np.ndarray, gm: np.ndarray, t: int, voxel_ml: float
) -> tuple[np.ndarray, dict[str, np.ndarray], list[dict[str, Any]]]:
    """Test scan ``t`` clean and with noise in a box: (noisy input, predictions, one row per condition)."""
    rel = 10.0 ** (-p.regional_snr_db / 20.0)
    seed = sample_seed(p.seed, _EXP3_KEY, t)
    noisy, info = as_scanned(p, reference, "regional_noise", rel, seed, box_fraction=p.regional_box_fraction)
    pred = predict(model, np.stack([clean, noisy]))
    fg = foreground(clean, p.fg_fraction)
    f = grid_factor(p.grid_mm)  # the box is in 2 mm voxels: the working-grid blocks it touches
    region = np.zeros(clean.shape, bool)
    region[tuple(slice(a // f, -(-b // f)) for a, b in info["box"])] = True
    rows = []
    for j, cond in enumerate(("clean", "partial_noise")):
        seg = pred["seg_prob"][j] > 0.5
        dice = 2 * (seg & gm).sum() / max(1, seg.sum() + gm.sum())
        rows.append(
            {
                "condition": cond,
                "recon_total_sigma": float(pred["sigma"][j][fg].sum() * voxel_ml),
                "seg_total_sigma": float(pred["seg_sigma"][j][fg].sum() * voxel_ml),
                "recon_sigma_in_box": float(pred["sigma"][j][region & fg].mean()),
                "seg_sigma_in_box": float(pred["seg_sigma"][j][region & fg].mean()),
                "gm_dice": float(dice),
                "box": str(info["box"]),
            }
        )
    return noisy, pred, rows


def exp3_partial_noise(
    p: Any, model: torch.nn.Module, test: dict[str, np.ndarray], subjects: list[str], maps: Path, affine: np.ndarray
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Experiment 3: noise in a box raises the reconstruction sigma more than the segmentation sigma.

    Args: as :func:`exp1_noise_levels`, with the multi-task ``model`` (``test`` needs ``gm`` too).

    Returns:
        ``(two rows per volume, metrics exp3_*)``: mean relative rises of both total sigmas, the
        fraction of volumes where the reconstruction's rise is the larger, grey-matter Dice.
    """
    voxel_ml = float(p.grid_mm) ** 3 / 1000.0
    rows = []
    for t in _progress(range(len(subjects)), "exp3 partial noise", "vol"):
        clean, gm = test["clean"][t].astype(np.float32), test["gm"][t].astype(bool)
        noisy, pred, per_cond = _exp3_volume(p, model, clean, test["reference"][t], gm, t, voxel_ml)
        rows += [{"subject_id": subjects[t], **r} for r in per_cond]
        for j, cond in enumerate(("clean", "partial_noise") if t < p.map_cases else ()):
            base = maps / "exp3" / f"{subjects[t]}_{cond}"
            for name, arr in (
                ("input", [clean, noisy][j]),
                ("recon", pred["recon"][j]),
                ("sigma", pred["sigma"][j]),
                ("seg", pred["seg_prob"][j]),
                ("segsigma", pred["seg_sigma"][j]),
            ):
                save_nifti(f"{base}_{name}.nii.gz", arr, affine)
    exp3 = pd.DataFrame(rows)
    wide = exp3.pivot(index="subject_id", columns="condition", values=["recon_total_sigma", "seg_total_sigma"])
    rise_r = wide["recon_total_sigma"]["partial_noise"] / wide["recon_total_sigma"]["clean"] - 1
    rise_s = wide["seg_total_sigma"]["partial_noise"] / wide["seg_total_sigma"]["clean"] - 1
    dice = exp3.groupby("condition")["gm_dice"].mean()
    metrics = dict(
        exp3_recon_sigma_rise=float(rise_r.mean()),
        exp3_seg_sigma_rise=float(rise_s.mean()),
        exp3_frac_recon_rise_above_seg=float((rise_r > rise_s).mean()),
        exp3_gm_dice_clean=float(dice["clean"]),
        exp3_gm_dice_partial_noise=float(dice["partial_noise"]),
    )
    return exp3, metrics


def claim_checks(metrics: dict[str, Any]) -> dict[str, bool]:
    """``done_*`` flags: each measured experiment against its claim's target (:func:`mriqa_lib.claims.target`)."""
    out = {"done_r2_ge_0_8": bool(metrics["exp1_r2_mean"] >= claims.target("shaw", "exp1_r2_mean"))}
    if "exp2_frac_artefact_above_clean" in metrics:
        out["done_pairs_ge_90pct"] = bool(
            metrics["exp2_frac_artefact_above_clean"] >= claims.target("shaw", "exp2_frac_artefact_above_clean")
        )
    if "exp3_recon_sigma_rise" in metrics:
        rise = "exp3_recon_sigma_rise - exp3_seg_sigma_rise"
        out["done_recon_rise_gt_seg_rise"] = bool(
            metrics["exp3_recon_sigma_rise"] - metrics["exp3_seg_sigma_rise"] > claims.target("shaw", rise)
        )
    return out


def read_pairs(folder: Path) -> pd.DataFrame | None:
    """``folder/pairs.tsv`` (None when the synthesize step wrote no pairs)."""
    path = Path(folder) / "pairs.tsv"
    return read_tsv(path) if path.exists() else None
