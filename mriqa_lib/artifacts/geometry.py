"""Geometric artifacts: wrap-around (FOV aliasing), removal of one side of the head, registration
error (affine misalignment), pixel shift.

Rigid poses follow :mod:`.rigid` (mm along the array axes, origin at the grid centre, a pose maps
an output point to the input point it samples). 2-D images are treated as the plane ``(1, H, W)``
of a 3-D frame, so in-plane rotation is about axis 0 (as in :mod:`.motion`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.fft as sfft
from scipy import ndimage

from ._common import (
    as_image,
    check_severity,
    finish,
    foreground_mask,
    identity_result,
    make_rng,
    parse_spacing,
    resolve_axis,
)
from .rigid import DEFAULT_RADIUS_MM, jenkinson_rms, rotation_angle_deg

__all__ = ["fold", "wrap_around", "remove_side", "resample_pose", "registration_error", "pixel_shift"]


def fold(image: np.ndarray, axis: int, fov: int, start: int) -> np.ndarray:
    """Alias ``image`` into a FOV of ``fov`` voxels along ``axis`` starting at voxel ``start``.

    Returns the folded FOV (length ``fov`` along ``axis``): element ``j`` is the sum of all
    ``image[i]`` with ``(i - start) mod fov == j`` -- what sampling k-space ``N / fov`` times
    more coarsely produces.
    """
    x = np.moveaxis(np.asarray(image), axis, 0)
    n = x.shape[0]
    out = np.zeros((fov,) + x.shape[1:], dtype=np.float64)
    m_lo = -int(np.ceil(start / fov)) - 1
    m_hi = int(np.ceil((n - start) / fov)) + 1
    for m in range(m_lo, m_hi + 1):
        idx = start + m * fov + np.arange(fov)
        ok = (idx >= 0) & (idx < n)
        if ok.any():
            out[ok] += x[idx[ok]]
    return np.moveaxis(out, 0, axis)


def wrap_around(
    image: np.ndarray, severity: float | None = None, seed: int = 0, *, spacing=None, axis: int = 1, offset: int = 0
) -> tuple[np.ndarray, dict]:
    """Wrap-around (FOV aliasing, paper 2 example F) along ``axis``.

    The FOV along ``axis`` shrinks from N to ``N' = round(N (1 - severity))`` voxels, centred
    (plus ``offset``); tissue outside it folds back in (:func:`fold`). The output keeps the input's
    grid: the folded FOV sits at its place, voxels outside it are set to the image minimum
    (not acquired). For ``N' = N / 2`` this equals keeping every 2nd k-space line.

    Args:
        image: 2-D or 3-D image.
        severity: fraction of the FOV removed along ``axis``, in [0, 0.9]; 0 = none. Default 0.2.
        seed: unused (deterministic).
        spacing: unused.
        axis: phase-encoding axis that aliases (default 1: anterior-posterior in RAS arrays).
        offset: shift (voxels) of the reduced FOV from the centre.

    Returns:
        image and params: ``severity`` (1 - N'/N), ``fov_voxels``, ``fov_start``, ``axis``.
    """
    x = as_image(image)
    s = check_severity(0.2 if severity is None else severity, 0.0, 0.9)
    axis = resolve_axis(axis, x.ndim)
    n = x.shape[axis]
    fov = max(1, int(round(n * (1 - s))))
    start = int(np.clip((n - fov) // 2 + int(offset), 0, n - fov))
    params = {"severity": 1 - fov / n, "fov_voxels": fov, "fov_start": start, "axis": axis}
    if fov == n:
        return identity_result(x, params)
    folded = fold(x, axis, fov, start)
    out = np.full(x.shape, x.min(), dtype=np.float64)
    sl = [slice(None)] * x.ndim
    sl[axis] = slice(start, start + fov)
    out[tuple(sl)] = folded
    return finish(out, params)


def remove_side(
    image: np.ndarray,
    severity: float | None = None,
    seed: int = 0,
    *,
    spacing=None,
    axis: int = 0,
    side: str | None = None,
    fg_fraction: float = 0.05,
) -> tuple[np.ndarray, dict]:
    """Remove one side of the head (paper 2 example G): everything beyond a plane is set to the
    background value (image minimum).

    The plane is placed so that ``severity`` of the head's extent along ``axis`` (bounding box of
    the foreground above ``fg_fraction`` of the range) is removed from the chosen side.

    Args:
        image: 2-D or 3-D image.
        severity: removed fraction of the head extent, in [0, 1]; 0 = none. Default 0.3.
        seed: random seed (draws ``side`` when it is None).
        spacing: unused.
        axis: axis across which the side is cut (default 0: left-right in RAS arrays).
        side: ``"low"`` (index 0 side) or ``"high"``.
        fg_fraction: foreground threshold.

    Returns:
        image and params: ``severity``, ``axis``, ``side``, ``cut_index`` (first removed index for
        "high", first kept index for "low"), ``removed_foreground_fraction``.
    """
    x = as_image(image)
    s = check_severity(0.3 if severity is None else severity, 0.0, 1.0)
    axis = resolve_axis(axis, x.ndim)
    rng = make_rng(seed)
    sd = ("low" if rng.uniform() < 0.5 else "high") if side is None else side
    if sd not in ("low", "high"):
        raise ValueError(f"side must be 'low' or 'high', got {side!r}")
    fg = foreground_mask(x, fg_fraction)
    prof = np.flatnonzero(fg.any(axis=tuple(a for a in range(x.ndim) if a != axis)))
    a, b = (int(prof[0]), int(prof[-1]) + 1) if len(prof) else (0, x.shape[axis])
    ext = b - a
    cut = int(round(b - s * ext)) if sd == "high" else int(round(a + s * ext))
    params = {"severity": s, "axis": axis, "side": sd, "cut_index": cut, "head_extent": [a, b]}
    if s == 0:
        params["removed_foreground_fraction"] = 0.0
        return identity_result(x, params)
    out = np.array(x, copy=True)
    sl = [slice(None)] * x.ndim
    sl[axis] = slice(cut, None) if sd == "high" else slice(0, cut)
    removed = np.zeros(x.shape, bool)
    removed[tuple(sl)] = True
    out[removed] = x.min()
    params["removed_foreground_fraction"] = float((fg & removed).sum() / max(fg.sum(), 1))
    return finish(out, params)


def _axis_angle_matrix(axis: np.ndarray, angle_rad: float) -> np.ndarray:
    k = axis / np.linalg.norm(axis)
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(angle_rad) * kx + (1 - np.cos(angle_rad)) * kx @ kx


def resample_pose(
    image: np.ndarray,
    pose: np.ndarray,
    spacing: Sequence[float] | None = None,
    order: int = 1,
    cval: float | None = None,
) -> np.ndarray:
    """Resample ``image`` under a 4x4 pose (mm, frame of :mod:`.rigid`): ``out(p) = image(A p)``.

    2-D images use the lower-right 2x2 block of the rotation and translation components 1, 2
    (the ``(1, H, W)`` convention). Outside voxels get ``cval`` (default: image minimum).
    """
    x = np.asarray(image, dtype=np.float32)
    sp = parse_spacing(spacing, x.ndim)
    a = np.asarray(pose, dtype=np.float64)
    lin, t = a[:3, :3], a[:3, 3]
    if x.ndim == 2:
        lin, t = lin[1:, 1:], t[1:]
    c = (np.asarray(x.shape, dtype=np.float64) - 1) / 2
    m = (lin * sp[None, :]) / sp[:, None]  # S^-1 L S
    off = c - m @ c + t / sp
    return ndimage.affine_transform(
        x, m, offset=off, order=order, mode="constant", cval=float(x.min()) if cval is None else float(cval)
    )


def registration_error(
    image: np.ndarray,
    severity: float | None = None,
    seed: int = 0,
    *,
    spacing=None,
    scale: float | Sequence[float] | None = None,
    radius_mm: float = DEFAULT_RADIUS_MM,
    rotation_share: float | None = None,
    order: int = 1,
) -> tuple[np.ndarray, dict]:
    """Registration error (paper 2 example H): a random rigid (optionally scaled) misalignment.

    A random rotation axis (2-D: axis 0, in-plane), a random translation direction (2-D: in the
    plane) and a random share ``u ~ U(0, 1)`` of the squared error given to the rotation are drawn;
    the angle and translation are then solved so that the Jenkinson RMS deviation (radius
    ``radius_mm``, about the grid centre) equals ``severity`` exactly:
    ``RMS^2 = R^2/5 * 4 (1 - cos theta) + |t|^2``. ``scale`` (isotropic or per-axis factors)
    adds a scaling before the rotation; the recorded ``rms_mm`` then includes it.

    Args:
        image: 2-D or 3-D image.
        severity: RMS deviation of the misalignment in mm; 0 = none. Default 4 mm.
        seed: random seed.
        spacing: voxel size (mm).
        scale: optional scaling factors (1 = none).
        radius_mm: Jenkinson radius (mm).
        rotation_share: fix ``u`` instead of drawing it.
        order: spline order of the resampling (1 = linear).

    Returns:
        image and params: ``severity`` (realised RMS, mm), ``rms_mm``, ``pose`` (4x4),
        ``rotation_axis``, ``rotation_deg``, ``translation_mm``, ``scale``.
    """
    x = as_image(image)
    s = check_severity(4.0 if severity is None else severity, 0.0, float(radius_mm) * 1.2)
    sp = parse_spacing(spacing, x.ndim)
    rng = make_rng(seed)
    if x.ndim == 2:
        axis = np.array([1.0, 0.0, 0.0])
        tdir = np.concatenate([[0.0], rng.standard_normal(2)])
    else:
        axis = rng.standard_normal(3)
        tdir = rng.standard_normal(3)
    axis /= np.linalg.norm(axis)
    tdir /= np.linalg.norm(tdir)
    u = float(rng.uniform()) if rotation_share is None else float(rotation_share)
    cos_t = 1 - 5 * u * s**2 / (4 * radius_mm**2)
    theta = float(np.arccos(np.clip(cos_t, -1, 1)))
    t = tdir * np.sqrt(max(s**2 - 4 * radius_mm**2 / 5 * (1 - np.cos(theta)), 0.0))
    lin = _axis_angle_matrix(axis, theta)
    sc = np.ones(3)
    if scale is not None:
        sc_in = np.broadcast_to(np.asarray(scale, dtype=float), (x.ndim,))
        sc[3 - x.ndim :] = sc_in
        lin = lin @ np.diag(sc)
    pose = np.eye(4)
    pose[:3, :3] = lin
    pose[:3, 3] = t
    rms = jenkinson_rms(pose, None, radius_mm)
    params = {
        "severity": rms,
        "rms_mm": rms,
        "radius_mm": float(radius_mm),
        "pose": pose,
        "rotation_axis": axis,
        "rotation_deg": float(np.degrees(theta)),
        "rotation_share": u,
        "translation_mm": t,
        "scale": sc,
        "spacing_mm": sp,
        "frame": "mm along the array axes, origin at the grid centre; out(p) = in(pose @ p)",
    }
    if s == 0 and scale is None:
        return identity_result(x, params)
    params["rotation_deg_check"] = rotation_angle_deg(_axis_angle_matrix(axis, theta))
    out = resample_pose(x, pose, sp, order=order)
    return finish(out, params)


def pixel_shift(
    image: np.ndarray,
    severity: float | None = None,
    seed: int = 0,
    *,
    spacing=None,
    axis: int | None = None,
    direction: Sequence[float] | None = None,
) -> tuple[np.ndarray, dict]:
    """Translate the image by ``severity`` pixels (paper 4's pixel-shift perturbation).

    Exact band-limited (Fourier) circular shift: integer shifts equal ``np.roll``; sub-pixel
    shifts interpolate with the sinc kernel. Positive shift moves content towards higher indices.

    Args:
        image: 2-D or 3-D image.
        severity: shift length in pixels (voxels); 0 = none. Default 1.
        seed: random seed (direction when neither ``axis`` nor ``direction`` is given).
        spacing: unused (the unit is pixels).
        axis: shift along this axis only.
        direction: explicit direction vector (normalised).

    Returns:
        image and params: ``severity`` (pixels), ``shift`` (pixels per axis).
    """
    x = as_image(image)
    s = check_severity(1.0 if severity is None else severity, 0.0, 1e4)
    rng = make_rng(seed)
    if direction is not None:
        d = np.asarray(direction, dtype=float)
        if d.shape != (x.ndim,) or not np.any(d):
            raise ValueError(f"direction must be a non-zero vector of length {x.ndim}")
    elif axis is not None:
        d = np.zeros(x.ndim)
        d[resolve_axis(axis, x.ndim)] = 1.0
    else:
        d = rng.standard_normal(x.ndim)
    d = d / np.linalg.norm(d)
    shift = s * d
    params = {"severity": s, "shift": shift}
    if s == 0:
        return identity_result(x, params)
    k = sfft.fftn(x.astype(np.float64), workers=-1)
    k = ndimage.fourier_shift(k, shift)
    out = sfft.ifftn(k, workers=-1).real
    return finish(out, params)
