"""Inpainting masks for paper 4 (SSFD pretext task): square patches placed by Poisson-disc sampling.

Public-code details reproduced: patch 16 x 16, number of patches
``count = floor(H * W * coverage / patch^2)`` (coverage 0.25), minimum distance between patch
centres ``patch * sqrt(2)`` (so patches never overlap: two squares of side p overlap only when
both |dx| and |dy| are below p, i.e. when the centres are closer than p * sqrt(2)).
Centres are drawn with :class:`scipy.stats.qmc.PoissonDisk` (Bridson's algorithm) inside the
region where a whole patch fits, then ``count`` of them are kept in random order.
"""

from __future__ import annotations

import math

import numpy as np

from ._common import as_image, check_severity, finish, identity_result, make_rng

__all__ = ["poisson_disc_centres", "inpainting_mask", "patch_dropout"]


def poisson_disc_centres(
    shape, count: int, min_distance: float, margin: float = 0.0, seed: int = 0, max_rounds: int = 8
) -> np.ndarray:
    """Up to ``count`` points in ``[margin, H - margin] x [margin, W - margin]`` with pairwise distance
    >= ``min_distance`` (Poisson disc). Several independent Poisson-disc rounds are tried (all from
    ``seed``) when one round fills the space with fewer than ``count`` points; the fullest is used.

    Returns:
        float array ``(n, 2)`` of (row, col) centres, ``n <= count``.
    """
    from scipy.stats import qmc

    h, w = (float(v) for v in shape[:2])
    lo = [margin, margin]
    hi = [max(h - margin, margin + 1e-6), max(w - margin, margin + 1e-6)]
    rng = make_rng(seed)
    best = np.zeros((0, 2))
    for _ in range(int(max_rounds)):
        engine = qmc.PoissonDisk(
            d=2,
            radius=float(min_distance),
            l_bounds=lo,
            u_bounds=hi,
            rng=np.random.default_rng(int(rng.integers(0, 2**31 - 1))),
        )
        pts = engine.random(int(count))
        if len(pts) > len(best):
            best = pts
        if len(best) >= count:
            break
    order = rng.permutation(len(best))
    return best[order][:count]


def inpainting_mask(
    shape, patch: int = 16, coverage: float = 0.25, seed: int = 0, min_distance: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Boolean mask (True = patch to zero-fill) of square patches covering ``coverage`` of the image.

    Args:
        shape: ``(H, W)``.
        patch: patch side in pixels (16 in paper 4).
        coverage: target covered fraction (0.25 in paper 4).
        seed: random seed.
        min_distance: minimum centre distance (default ``patch * sqrt(2)``: no overlap).

    Returns:
        ``(mask, corners)``: mask of shape ``(H, W)`` and the integer top-left corners ``(n, 2)``.
    """
    h, w = int(shape[0]), int(shape[1])
    patch = int(patch)
    if patch < 1 or patch > min(h, w):
        raise ValueError(f"patch {patch} does not fit an image of shape {(h, w)}")
    count = int(math.floor(h * w * float(coverage) / patch**2))
    md = patch * math.sqrt(2) if min_distance is None else float(min_distance)
    mask = np.zeros((h, w), dtype=bool)
    if count <= 0:
        return mask, np.zeros((0, 2), dtype=int)
    centres = poisson_disc_centres((h, w), count, md, margin=patch / 2, seed=seed)
    corners = np.clip(np.floor(centres - patch / 2 + 0.5).astype(int), 0, [h - patch, w - patch])
    for r, c in corners:
        mask[r : r + patch, c : c + patch] = True
    return mask, corners


def patch_dropout(
    image: np.ndarray,
    severity: float | None = None,
    seed: int = 0,
    *,
    spacing=None,
    patch: int = 16,
    fill: float = 0.0,
    min_distance: float | None = None,
    slice_axis: int = -1,
) -> tuple[np.ndarray, dict]:
    """Zero-fill Poisson-disc placed square patches (paper 4's inpainting pretext corruption).

    Args:
        image: 2-D image, or 3-D (the same mask is applied to every slice along ``slice_axis``).
        severity: target covered fraction (paper 4: 0.25); 0 = none. Default 0.25.
        seed: random seed.
        spacing: unused (the patch is in pixels).
        patch: patch side in pixels.
        fill: value written into the patches.
        min_distance: minimum centre distance (default ``patch * sqrt(2)``).
        slice_axis: for 3-D input, the axis across which slices are taken.

    Returns:
        image and params: ``severity`` (realised coverage), ``target_coverage``, ``n_patches``,
        ``n_requested``, ``patch``, ``corners`` (top-left, per patch).
    """
    x = as_image(image)
    s = check_severity(0.25 if severity is None else severity, 0.0, 0.5)
    if x.ndim == 3:
        ax = slice_axis % 3
        plane = [n for i, n in enumerate(x.shape) if i != ax]
    else:
        plane = list(x.shape)
    count = int(math.floor(plane[0] * plane[1] * s / int(patch) ** 2))
    params = {"target_coverage": s, "patch": int(patch), "n_requested": count}
    if s == 0 or count == 0:
        return identity_result(x, {"severity": 0.0, **params, "n_patches": 0, "corners": []})
    mask, corners = inpainting_mask(plane, patch, s, seed, min_distance)
    if x.ndim == 3:
        mask = np.expand_dims(mask, ax)
    out = np.where(mask, np.float32(fill), x)
    params.update(severity=float(mask.mean()), n_patches=len(corners), corners=corners)
    return finish(out, params)
