"""Checks that refuse an input before a method could give it a confident score.

Each check returns None when the input passes, or one sentence naming the reason; the chain
turns it into the error row of ``mriqa score``.
"""

from __future__ import annotations

import numpy as np

from mriqa_lib.io import Volume

# canonical (RAS) array faces: (axis, index 0 or -1) -> anatomical side
FACES = {
    (0, 0): "right",
    (0, -1): "left",
    (1, 0): "posterior",
    (1, -1): "anterior",
    (2, 0): "inferior",
    (2, -1): "superior",
}


def field_of_view(volume: Volume, min_mm: float) -> str | None:
    """Refuse a field of view smaller than a brain along any axis."""
    extent = np.asarray(volume.shape[:3]) * volume.spacing
    if np.any(extent < min_mm):
        size = " x ".join(f"{e:.0f}" for e in extent)
        return f"not a head: field of view {size} mm is smaller than a brain (each side at least {min_mm:g} mm)"
    return None


def neighbour_correlation(data: np.ndarray) -> float:
    """Mean over the axes of the correlation between each voxel and its next neighbour (1 for smooth
    images; about 0 for voxels of unrelated random numbers)."""
    data = np.asarray(data, np.float64)
    out = []
    for axis in range(3):
        a = np.take(data, range(0, data.shape[axis] - 1), axis=axis).ravel()
        b = np.take(data, range(1, data.shape[axis]), axis=axis).ravel()
        out.append(np.corrcoef(a, b)[0, 1] if a.std() > 0 and b.std() > 0 else 0.0)
    return float(np.mean(out))


def block_mean2(data: np.ndarray) -> np.ndarray:
    """Mean over 2 x 2 x 2 blocks (a trailing odd plane is dropped)."""
    n = [s // 2 for s in data.shape[:3]]
    d = np.asarray(data[: 2 * n[0], : 2 * n[1], : 2 * n[2]], np.float32)
    return d.reshape(n[0], 2, n[1], 2, n[2], 2).mean(axis=(1, 3, 5))


def spatial_structure(volume: Volume, minimum: float = 0.2) -> str | None:
    """Refuse an image without spatial structure (neighbouring voxels unrelated): not an image of a head.

    Measured on 2 x 2 x 2 block means, which keeps a very noisy scan (Rician noise at 0 dB SNR on
    Colin27: 0.39) well above random numbers (0.00)."""
    rho = neighbour_correlation(block_mean2(volume.data) if min(volume.shape) >= 32 else volume.data)
    if rho < minimum:
        return (
            f"not a head: no spatial structure (neighbouring voxels correlate {rho:.2f}, a scan at least {minimum:g})"
        )
    return None


def brain_volume(cm3: float, plausible: tuple[float, float]) -> str | None:
    """Refuse a brain mask whose volume is outside the plausible adult range."""
    lo, hi = plausible
    if not lo <= cm3 <= hi:
        return (
            f"brain volume {cm3:.0f} cm3 is outside the plausible adult range {lo:.0f}-{hi:.0f} cm3 "
            "(not a head, or brain extraction failed)"
        )
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
            return (
                f"the field of view cuts the brain on the {side} side ({area:.1f} cm2 of brain on the edge, "
                f"at most {limit:g} allowed)"
            )
    return None


def registration(dice: float, similarity: float, scale: float, p) -> str | None:
    """Refuse a registration to the template that did not converge or is implausible."""
    if not np.isfinite(similarity) or dice < p.min_dice or similarity < p.min_similarity:
        return (
            f"registration to the template did not converge (Dice {dice:.3f}, minimum {p.min_dice:g}; "
            f"correlation {similarity:.3f}, minimum {p.min_similarity:g})"
        )
    lo, hi = p.scale_range
    if not lo <= scale <= hi:
        return f"registration scaled the brain by {scale:.2f}, outside the plausible {lo:g}-{hi:g}"
    return None
