"""Inference of paper 3: reconstruction, sigma maps and the summary uncertainties of a volume."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mriqa_lib.io import MriqaInputError

__all__ = ["predict", "summarise", "save_model", "load_model"]


@torch.no_grad()
def predict(model: torch.nn.Module, images: np.ndarray | list[np.ndarray], batch: int = 4) -> dict[str, np.ndarray]:
    """Run a (multi-task) heteroscedastic U-Net on prepared volumes.

    Args:
        model: :class:`HeteroUNet` or :class:`MultiTaskHeteroUNet` (eval mode is set here).
        images: one ``(X, Y, Z)`` volume or a stack ``(N, X, Y, Z)`` on the working grid.
        batch: volumes per forward pass.

    Returns:
        ``recon`` and ``sigma`` (reconstruction standard deviation, > 0), and for the multi-task
        model ``seg_prob`` (grey-matter probability) and ``seg_sigma``; each ``(N, X, Y, Z)``
        (or ``(X, Y, Z)`` for a single input).
    """
    model.eval()
    arr = np.asarray(images, dtype=np.float32)
    single = arr.ndim == 3
    arr = arr[None] if single else arr
    levels = len(model.encoder.levels)
    mult = 2 ** (levels - 1)
    shape = arr.shape[1:]
    pads = [(-n) % mult for n in shape]
    outs: dict[str, list[np.ndarray]] = {}
    device = next(model.parameters()).device
    for i in range(0, len(arr), batch):
        x = torch.from_numpy(arr[i : i + batch])[:, None].to(device)
        x = torch.nn.functional.pad(x, (0, pads[2], 0, pads[1], 0, pads[0]))
        res = tuple(r.float().cpu() for r in model(x))
        crop = (slice(None), 0, slice(0, shape[0]), slice(0, shape[1]), slice(0, shape[2]))
        outs.setdefault("recon", []).append(res[0][crop].numpy())
        outs.setdefault("sigma", []).append(torch.exp(0.5 * res[1])[crop].numpy())
        if len(res) == 4:
            prob = torch.softmax(res[2], dim=1)[:, 1:2]
            outs.setdefault("seg_prob", []).append(prob[crop].numpy())
            outs.setdefault("seg_sigma", []).append(torch.exp(0.5 * res[3])[crop].numpy())
    result = {k: np.concatenate(v).astype(np.float32) for k, v in outs.items()}
    return {k: v[0] for k, v in result.items()} if single else result


def summarise(sigma: np.ndarray, mask: np.ndarray, voxel_ml: float) -> dict[str, float]:
    """Median and quartiles of ``sigma`` inside ``mask``, and the total ``sum(sigma) * voxel_ml``
    over the whole field of view (normalised-intensity x mL: independent of the grid size)."""
    vals = sigma[mask] if mask.any() else sigma.ravel()
    q1, med, q3 = np.percentile(vals, [25, 50, 75])
    return {
        "sigma_median": float(med),
        "sigma_q1": float(q1),
        "sigma_q3": float(q3),
        "sigma_mean_fg": float(vals.mean()),
        "sigma_total": float(sigma.sum(dtype=np.float64) * voxel_ml),
        "sigma_total_fg": float(vals.sum(dtype=np.float64) * voxel_ml),
    }


def save_model(model: torch.nn.Module, kind: str, p: Any, path: str | Path) -> Path:
    """State dict (``torch.load(..., weights_only=True)``) plus a JSON with the architecture."""
    from mriqa_lib.io import atomic_path, write_json

    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(model.state_dict(), tmp)
    write_json(
        path.with_suffix(".json"),
        {
            "kind": kind,
            "features": list(p.features),
            "logvar_range": list(p.logvar_range),
            "grid_mm": p.grid_mm,
            "norm": p.norm,
        },
    )
    return path


def load_model(path: str | Path, device: Any = "cpu") -> tuple[torch.nn.Module, dict[str, Any]]:
    """Load a model written by :func:`save_model` (architecture from the JSON beside it) onto
    ``device`` (:func:`predict` runs where the model is)."""
    from mriqa_lib.models.unet_hetero import HeteroUNet, MultiTaskHeteroUNet

    path = Path(path)
    meta_path = path.with_suffix(".json")
    if not path.exists() or not meta_path.exists():
        raise MriqaInputError(f"{path}: trained model (or its .json) not found; run `mriqa stage shaw train`")
    meta = json.loads(meta_path.read_text())
    cls = HeteroUNet if meta["kind"] == "recon" else MultiTaskHeteroUNet
    model = cls(tuple(meta["features"]), logvar_range=tuple(meta["logvar_range"]), norm=meta.get("norm", "instance"))
    try:
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    except Exception as exc:
        raise MriqaInputError(f"{path}: cannot load the state dict ({type(exc).__name__}: {exc})") from None
    model.to(device).eval()
    return model, meta
