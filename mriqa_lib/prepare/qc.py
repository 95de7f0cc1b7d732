"""Checks that refuse an input before a method could give it a confident score.

Each check returns None when the input passes, or one sentence naming the reason; the chain
turns it into the error row of ``mriqa score``.
"""
from __future__ import annotations

import numpy as np

from mriqa_lib.io import Volume

# canonical (RAS) array faces: (axis, index 0 or -1) -> anatomical side
FACES = {(0, 0): "right", (0, -1): "left", (1, 0): "posterior", (1, -1): "anterior",
         (2, 0): "inferior", (2, -1): "superior"}


def field_of_view(volume: Volume, min_mm: float) -> str | None:
    """Refuse a field of view smaller than a brain along any axis."""
    extent = np.asarray(volume.shape[:3]) * volume.spacing
    if np.any(extent < min_mm):
        size = " x ".join(f"{e:.0f}" for e in extent)
        return f"not a head: field of view {size} mm is smaller than a brain (each side at least {min_mm:g} mm)"
    return None


def brain_volume(cm3: float, plausible: tuple[float, float]) -> str | None:
    """Refuse a brain mask whose volume is outside the plausible adult range."""
    lo, hi = plausible
    if not lo <= cm3 <= hi:
        return (f"brain volume {cm3:.0f} cm3 is outside the plausible adult range {lo:.0f}-{hi:.0f} cm3 "
                "(not a head, or brain extraction failed)")
    return None


def cut_area_cm2(mask: np.ndarray, spacing: np.ndarray) -> dict[str, float]:
    """Area (cm2) of brain mask on each face of the field of view of a canonical volume."""
    out = {}
    for (axis, index), side in FACES.items():
        face = np.take(mask, index, axis=axis)
        pixel = np.prod(np.delete(np.asarray(spacing, float), axis)) / 100.0
        out[side] = float(face.sum() * pixel)
    return out


def brain_cut(mask: np.ndarray, spacing: np.ndarray, max_cm2: float, max_inferior_cm2: float) -> str | None:
    """Refuse a field of view that cuts the brain: too much brain mask on one of its faces."""
    for side, area in cut_area_cm2(mask, spacing).items():
        limit = max_inferior_cm2 if side == "inferior" else max_cm2
        if area > limit:
            return (f"the field of view cuts the brain on the {side} side ({area:.1f} cm2 of brain on the edge, "
                    f"at most {limit:g} allowed)")
    return None


def registration(dice: float, similarity: float, scale: float, p) -> str | None:
    """Refuse a registration to the template that did not converge or is implausible."""
    if not np.isfinite(similarity) or dice < p.min_dice or similarity < p.min_similarity:
        return (f"registration to the template did not converge (Dice {dice:.2f}, minimum {p.min_dice:g}; "
                f"correlation {similarity:.2f}, minimum {p.min_similarity:g})")
    lo, hi = p.scale_range
    if not lo <= scale <= hi:
        return f"registration scaled the brain by {scale:.2f}, outside the plausible {lo:g}-{hi:g}"
    return None
