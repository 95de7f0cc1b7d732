"""Noise artifacts: Gaussian (paper 1, paper 4), Rician at a target SNR (paper 3), regional noise
(paper 3's partial noise).

SNR definition used throughout (paper 3 does not spell one out)::

    SNR_dB = 20 * log10( S / sigma )

``S`` = mean of the *clean* image over its foreground, foreground = voxels above
``min + fg_fraction * (max - min)`` of the clean image (``fg_fraction`` = 0.1 by default; for a
magnitude image with zero background this is ``clean > 0.1 * max``); ``sigma`` = standard
deviation of the complex Gaussian noise per real / imaginary channel before the magnitude is
taken (Rician), or of the additive noise (Gaussian). So 0 dB means sigma equals the mean
foreground signal; paper 3's 41 levels run from 10 dB (sigma = 0.316 S) to -10 dB (sigma = 3.16 S).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ._common import (
    as_image,
    check_severity,
    finish,
    foreground_mask,
    identity_result,
    make_rng,
)

__all__ = [
    "snr_levels_db",
    "snr_db_to_relative_sigma",
    "relative_sigma_to_snr_db",
    "signal_level",
    "measure_snr_db",
    "gaussian_noise",
    "rician_noise",
    "regional_noise",
    "random_box",
]


def snr_levels_db(n: int = 41, high: float = 10.0, low: float = -10.0) -> np.ndarray:
    """Paper 3's noise levels: ``n`` SNRs evenly spaced from ``high`` to ``low`` dB (41: 0.5 dB steps)."""
    return np.linspace(high, low, int(n))


def snr_db_to_relative_sigma(snr_db: float) -> float:
    """sigma / S for a given SNR in dB: ``10 ** (-snr_db / 20)``."""
    return float(10.0 ** (-float(snr_db) / 20.0))


def relative_sigma_to_snr_db(rel_sigma: float) -> float:
    """SNR in dB for sigma / S: ``-20 log10(rel_sigma)`` (inf for 0)."""
    return float("inf") if rel_sigma == 0 else float(-20.0 * np.log10(rel_sigma))


def signal_level(clean: np.ndarray, fg_fraction: float = 0.1) -> tuple[float, np.ndarray]:
    """Mean foreground signal S of a clean image and its foreground mask (see module docstring)."""
    fg = foreground_mask(clean, fg_fraction)
    if not fg.any():
        raise ValueError("image has no foreground (constant image?)")
    return float(clean[fg].mean(dtype=np.float64)), fg


def measure_snr_db(noisy: np.ndarray, clean: np.ndarray, kind: str = "rician", fg_fraction: float = 0.1) -> float:
    """Estimate the SNR (dB) of ``noisy`` given the clean image, on the clean foreground.

    Rician: moment estimator ``sigma^2 = (mean(noisy^2) - mean(clean^2)) / 2`` (since
    ``E[M^2] = A^2 + 2 sigma^2``); Gaussian: ``sigma = std(noisy - clean)``.
    """
    s, fg = signal_level(np.asarray(clean, np.float64), fg_fraction)
    n, c = np.asarray(noisy, np.float64)[fg], np.asarray(clean, np.float64)[fg]
    if kind == "rician":
        var = max((np.mean(n**2) - np.mean(c**2)) / 2.0, 1e-300)
    elif kind == "gaussian":
        var = max(np.var(n - c), 1e-300)
    else:
        raise ValueError(f"kind must be 'rician' or 'gaussian', got {kind!r}")
    return float(20 * np.log10(s / np.sqrt(var)))


def gaussian_noise(
    image: np.ndarray,
    severity: float | None = None,
    seed: int = 0,
    *,
    spacing=None,
    reference: str = "range",
    clip: bool = False,
) -> tuple[np.ndarray, dict]:
    """Additive zero-mean Gaussian noise.

    Args:
        image: 2-D or 3-D image.
        severity: noise standard deviation relative to ``reference``; default 0.25 (paper 1:
            N(0, 0.25) added to images scaled to [0, 1], read as sigma = 0.25).
        seed: random seed.
        spacing: unused.
        reference: ``"range"`` (sigma = severity * (max - min)), ``"signal"`` (sigma = severity *
            mean foreground signal, as the SNR definition), or ``"absolute"`` (sigma = severity).
        clip: clip the result to the input's [min, max].

    Returns:
        image and params: ``severity``, ``sigma`` (absolute), ``reference``, ``snr_db``.
    """
    x = as_image(image)
    s = check_severity(0.25 if severity is None else severity, 0.0, 100.0)
    if reference == "range":
        scale = float(x.max()) - float(x.min())
    elif reference == "signal":
        scale = signal_level(x)[0]
    elif reference == "absolute":
        scale = 1.0
    else:
        raise ValueError(f"reference must be 'range', 'signal' or 'absolute', got {reference!r}")
    sigma = s * scale
    sig_level = signal_level(x)[0]
    params = {
        "severity": s,
        "sigma": sigma,
        "reference": reference,
        "clip": bool(clip),
        "snr_db": relative_sigma_to_snr_db(sigma / sig_level) if sig_level > 0 else None,
    }
    if s == 0:
        return identity_result(x, params)
    rng = make_rng(seed)
    out = x + np.float32(sigma) * rng.standard_normal(x.shape, dtype=np.float32)
    if clip:
        out = np.clip(out, x.min(), x.max())
    return finish(out, params)


def _rician(x: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    n1 = rng.standard_normal(x.shape, dtype=np.float32)
    n2 = rng.standard_normal(x.shape, dtype=np.float32)
    sig = np.float32(sigma)
    return np.sqrt((x + sig * n1) ** 2 + (sig * n2) ** 2)


def rician_noise(
    image: np.ndarray,
    severity: float | None = None,
    seed: int = 0,
    *,
    spacing=None,
    snr_db: float | None = None,
    fg_fraction: float = 0.1,
) -> tuple[np.ndarray, dict]:
    """Rician noise: ``|x + n1 + i n2|`` with ``n1, n2 ~ N(0, sigma^2)`` (paper 3).

    Args:
        image: 2-D or 3-D magnitude image (negative values are allowed but unphysical).
        severity: sigma relative to the mean foreground signal, ``10 ** (-SNR_dB / 20)``
            (0 = noiseless; 0.316 = 10 dB; 1 = 0 dB; 3.16 = -10 dB). Default 0.316.
        seed: random seed.
        spacing: unused.
        snr_db: target SNR in dB (overrides ``severity``).
        fg_fraction: foreground threshold (fraction of the clean image's range).

    Returns:
        image and params: ``severity`` (sigma / S), ``snr_db`` (target), ``sigma`` (absolute),
        ``signal_mean`` (S), ``fg_fraction``, ``snr_db_measured`` (moment estimate on the
        foreground, see :func:`measure_snr_db`).
    """
    x = as_image(image)
    if snr_db is not None:
        s = snr_db_to_relative_sigma(snr_db)
    else:
        s = check_severity(0.316227766 if severity is None else severity, 0.0, 1000.0)
    sig_mean, _ = signal_level(x, fg_fraction)
    sigma = s * sig_mean
    params = {
        "severity": s,
        "snr_db": relative_sigma_to_snr_db(s),
        "sigma": sigma,
        "signal_mean": sig_mean,
        "fg_fraction": fg_fraction,
    }
    if s == 0:
        return identity_result(x, params)
    out = _rician(x, sigma, make_rng(seed))
    params["snr_db_measured"] = measure_snr_db(out, x, "rician", fg_fraction)
    return finish(out, params)


def random_box(
    shape: Sequence[int], fraction: float | Sequence[float], rng: np.random.Generator, within: np.ndarray | None = None
) -> list[list[int]]:
    """A random axis-aligned box ``[[start, stop], ...]`` with side ``fraction * shape`` per axis,
    centred on a random voxel of ``within`` (a boolean mask) or of the whole grid."""
    shape = [int(v) for v in shape]
    frac = np.broadcast_to(np.asarray(fraction, dtype=float), (len(shape),))
    sides = [max(1, int(round(f * n))) for f, n in zip(frac, shape)]
    if within is not None and within.any():
        idx = np.flatnonzero(within.ravel())
        centre = np.unravel_index(idx[rng.integers(len(idx))], within.shape)
    else:
        centre = [rng.integers(n) for n in shape]
    box = []
    for c, side, n in zip(centre, sides, shape):
        start = int(np.clip(int(c) - side // 2, 0, n - side))
        box.append([start, start + side])
    return box


def regional_noise(
    image: np.ndarray,
    severity: float | None = None,
    seed: int = 0,
    *,
    spacing=None,
    mask: Any = None,
    box: Sequence[Sequence[int]] | None = None,
    box_fraction: float | Sequence[float] = 1 / 3,
    kind: str = "rician",
    fg_fraction: float = 0.1,
) -> tuple[np.ndarray, dict]:
    """Noise restricted to a region (paper 3's partial noise): a box or a given mask.

    Args:
        image: 2-D or 3-D image.
        severity: sigma relative to the mean foreground signal of the *whole* image (as
            :func:`rician_noise`); default 1.0 (0 dB).
        seed: random seed (box position, noise).
        spacing: unused.
        mask: boolean array of the image's shape (True = noisy); overrides ``box``.
        box: ``[[start, stop], ...]`` per axis (voxel indices); default: a random box of side
            ``box_fraction`` of each axis centred on a random foreground voxel.
        box_fraction: side of the random box as a fraction of each axis.
        kind: ``"rician"`` or ``"gaussian"``.
        fg_fraction: foreground threshold for the signal level.

    Returns:
        image and params: ``severity``, ``sigma``, ``snr_db``, ``kind``, ``box`` (or
        ``mask_voxels``), ``region_fraction`` (fraction of voxels affected).
    """
    x = as_image(image)
    s = check_severity(1.0 if severity is None else severity, 0.0, 1000.0)
    if kind not in ("rician", "gaussian"):
        raise ValueError(f"kind must be 'rician' or 'gaussian', got {kind!r}")
    rng = make_rng(seed)
    sig_mean, fg = signal_level(x, fg_fraction)
    params: dict = {
        "severity": s,
        "kind": kind,
        "sigma": s * sig_mean,
        "snr_db": relative_sigma_to_snr_db(s),
        "signal_mean": sig_mean,
    }
    if mask is not None:
        region = np.asarray(mask, dtype=bool)
        if region.shape != x.shape:
            raise ValueError(f"mask shape {region.shape} does not match image {x.shape}")
        params["mask_voxels"] = int(region.sum())
    else:
        if box is None:
            box = random_box(x.shape, box_fraction, rng, within=fg)
        box = [[int(a), int(b)] for a, b in box]
        if len(box) != x.ndim:
            raise ValueError(f"box needs {x.ndim} [start, stop] pairs, got {box}")
        region = np.zeros(x.shape, dtype=bool)
        region[tuple(slice(a, b) for a, b in box)] = True
        params["box"] = box
    params["region_fraction"] = float(region.mean())
    if s == 0:
        return identity_result(x, params)
    noise_rng = make_rng(int(rng.integers(0, 2**31 - 1)))
    sigma = np.float32(s * sig_mean)
    if kind == "rician":
        noisy = _rician(x, float(sigma), noise_rng)
    else:
        noisy = x + sigma * noise_rng.standard_normal(x.shape, dtype=np.float32)
    out = np.where(region, noisy, x)
    return finish(out, params)
