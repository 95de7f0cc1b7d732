"""Intensity artifacts: bias field, Gaussian blur, non-T1w contrast, gamma contrast change."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from mriqa_lib.data.preprocess import FWHM_TO_SIGMA

from ._common import (
    as_image,
    check_severity,
    finish,
    foreground_mask,
    identity_result,
    make_rng,
    parse_spacing,
)

__all__ = ["bias_field", "polynomial_field", "blur", "non_t1w_contrast", "gamma_contrast"]


def _monomials(ndim: int, order: int) -> list[tuple[int, ...]]:
    if ndim == 2:
        return [(i, j) for i in range(order + 1) for j in range(order + 1 - i)]
    return [(i, j, k) for i in range(order + 1) for j in range(order + 1 - i) for k in range(order + 1 - i - j)]


def polynomial_field(shape, coefficients, order: int = 3) -> np.ndarray:
    """Log-field ``sum_m c_m x^i y^j (z^k)`` on coordinates spanning [-1, 1] per axis.

    Monomials are ordered as :func:`_monomials` (i outer, then j, then k), constant term first.
    """
    mons = _monomials(len(shape), order)
    coefficients = np.asarray(coefficients, dtype=np.float64)
    if len(coefficients) != len(mons):
        raise ValueError(f"need {len(mons)} coefficients for order {order} in {len(shape)}-D")
    axes = [np.linspace(-1, 1, n) for n in shape]
    powers = [np.stack([a**p for p in range(order + 1)], axis=1) for a in axes]  # (n, order + 1)
    coef = np.zeros((order + 1,) * len(shape))
    for c, m in zip(coefficients, mons):
        coef[m] += c
    # separable evaluation: contract one axis at a time (a few passes over the volume, not one per term)
    if len(shape) == 2:
        return powers[0] @ coef @ powers[1].T
    tmp = np.tensordot(powers[2], coef, axes=([1], [2]))  # (nz, a, b)
    tmp = np.tensordot(powers[1], tmp, axes=([1], [2]))  # (ny, nz, a)
    return np.tensordot(powers[0], tmp, axes=([1], [2]))  # (nx, ny, nz)


def bias_field(
    image: np.ndarray, severity: float | None = None, seed: int = 0, *, spacing=None, order: int = 3
) -> tuple[np.ndarray, dict]:
    """Smooth multiplicative bias field, TorchIO ``RandomBiasField`` model.

    ``out = image * exp(P)`` with ``P`` a polynomial of degree ``order`` in coordinates spanning
    [-1, 1] per axis, whose coefficients are ``severity * u`` with ``u ~ U(-1, 1)`` (TorchIO's
    default range is 0.5). With a fixed seed the log-field scales linearly with severity.

    Args:
        image: 2-D or 3-D image.
        severity: maximum |coefficient| of the log-field polynomial (TorchIO ``coefficients``);
            0 = no bias. Default 0.5.
        seed: random seed.
        spacing: unused.
        order: polynomial degree.

    Returns:
        image and params: ``severity``, ``order``, ``coefficients`` (monomial order i, j[, k]),
        ``field_min`` / ``field_max`` (multiplicative field range), ``log_field_std``.
    """
    x = as_image(image)
    s = check_severity(0.5 if severity is None else severity, 0.0, 10.0)
    rng = make_rng(seed)
    n_coef = len(_monomials(x.ndim, order))
    coef = s * rng.uniform(-1, 1, size=n_coef)
    params = {"severity": s, "order": int(order), "coefficients": coef}
    if s == 0:
        params.update(field_min=1.0, field_max=1.0, log_field_std=0.0)
        return identity_result(x, params)
    logf = polynomial_field(x.shape, coef, order)
    field = np.exp(logf).astype(np.float32)
    params.update(field_min=float(field.min()), field_max=float(field.max()), log_field_std=float(logf.std()))
    return finish(x * field, params)


def blur(
    image: np.ndarray, severity: float | None = None, seed: int = 0, *, spacing=None, axes=None
) -> tuple[np.ndarray, dict]:
    """Gaussian blur (paper 4 perturbation; also a generic resolution loss).

    Args:
        image: 2-D or 3-D image.
        severity: Gaussian standard deviation in mm (FWHM = 2.355 * sigma); 0 = none. Default 1 mm.
        seed: unused (deterministic).
        spacing: voxel size in mm (sigma in voxels = severity / spacing).
        axes: axes to blur (default all).

    Returns:
        image and params: ``severity`` (sigma_mm), ``sigma_voxels`` per axis, ``fwhm_mm``.
    """
    x = as_image(image)
    s = check_severity(1.0 if severity is None else severity, 0.0, 100.0)
    sp = parse_spacing(spacing, x.ndim)
    sig = s / sp
    if axes is not None:
        keep = np.zeros(x.ndim, bool)
        keep[list(axes)] = True
        sig = np.where(keep, sig, 0.0)
    params = {"severity": s, "sigma_voxels": sig, "fwhm_mm": s / FWHM_TO_SIGMA}
    if s == 0:
        return identity_result(x, params)
    out = ndimage.gaussian_filter(x, sigma=sig.tolist(), mode="nearest", truncate=4.0)
    return finish(out, params)


def non_t1w_contrast(
    image: np.ndarray,
    severity: float | None = None,
    seed: int = 0,
    *,
    spacing=None,
    fg_fraction: float = 0.05,
    gamma: float = 1.0,
) -> tuple[np.ndarray, dict]:
    """Change a T1w image towards a T2w-like (non-T1w) look (paper 2, example B).

    Inside the head mask (filled foreground above ``fg_fraction`` of the range, softened by a
    1-voxel Gaussian) intensities are inverted, ``y = hi - x + lo`` with ``lo`` / ``hi`` the 1st /
    99th foreground percentiles (so CSF becomes bright and white matter dark), optionally
    shaped by ``gamma``; the background stays as it is. The output is the blend
    ``(1 - severity) * x + severity * y``: the distance from the T1w image grows linearly with
    severity; around 0.5 the within-head contrast vanishes (a flat, PD-like look, exactly flat
    for ``gamma = 1``) before it reappears inverted. Paper 2's example B is severity 1.

    Args:
        image: 2-D or 3-D T1w image (non-negative).
        severity: blend weight in [0, 1]; 1 = fully inverted contrast. Default 1.
        seed: unused (deterministic).
        spacing: unused.
        fg_fraction: head-mask threshold (fraction of the range).
        gamma: exponent applied to the inverted intensities (normalised to [0, 1]).

    Returns:
        image and params: ``severity``, ``lo``, ``hi``, ``gamma``, ``mask_fraction``.
    """
    x = as_image(image)
    s = check_severity(1.0 if severity is None else severity, 0.0, 1.0)
    fg = foreground_mask(x, fg_fraction)
    fg = ndimage.binary_fill_holes(fg)
    vals = x[fg] if fg.any() else x.ravel()
    lo, hi = (float(v) for v in np.percentile(vals, [1, 99]))
    params = {"severity": s, "lo": lo, "hi": hi, "gamma": float(gamma), "mask_fraction": float(fg.mean())}
    if s == 0:
        return identity_result(x, params)
    t = np.clip((hi - x) / max(hi - lo, 1e-12), 0, 1) ** float(gamma)
    y = lo + t * (hi - lo)
    w = ndimage.gaussian_filter(fg.astype(np.float32), 1.0)
    inverted = w * y + (1 - w) * x
    out = (1 - s) * x + s * inverted
    return finish(out, params)


def gamma_contrast(
    image: np.ndarray, severity: float | None = None, seed: int = 0, *, spacing=None, sign: int | None = None
) -> tuple[np.ndarray, dict]:
    """Gamma contrast change (TorchIO ``RandomGamma``; paper 5's "contrast" augmentation).

    ``out = lo + (hi - lo) * ((x - lo) / (hi - lo)) ** g`` with ``g = exp(sign * severity)``
    and ``lo, hi`` the image's min / max (range preserved).

    Args:
        image: 2-D or 3-D image.
        severity: ``|log g|``; 0 = identity. Default 0.3 (TorchIO's default log-gamma range).
        seed: random seed (draws the sign when ``sign`` is None).
        spacing: unused.
        sign: +1 (darker mid-tones, g > 1) or -1 (brighter, g < 1).

    Returns:
        image and params: ``severity``, ``log_gamma``, ``gamma``.
    """
    x = as_image(image)
    s = check_severity(0.3 if severity is None else severity, 0.0, 5.0)
    rng = make_rng(seed)
    sg = (1 if rng.uniform() < 0.5 else -1) if sign is None else (1 if sign >= 0 else -1)
    lg = sg * s
    params = {"severity": s, "log_gamma": lg, "gamma": float(np.exp(lg))}
    if s == 0:
        return identity_result(x, params)
    lo, hi = float(x.min()), float(x.max())
    rng_ = max(hi - lo, 1e-12)
    out = lo + rng_ * np.clip((x - lo) / rng_, 0, 1) ** np.exp(lg)
    return finish(out, params)
