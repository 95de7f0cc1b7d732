"""k-space helpers and k-space artifacts.

* Centred, orthonormal FFTs (numpy/scipy and torch): ``fftnc`` / ``ifftnc`` / ``fft2c`` / ``ifft2c``
  and ``*_torch`` twins. "Centred" means k = 0 sits at index ``N // 2`` (``fftshift`` convention)
  and image index ``N // 2`` is the spatial origin; ``norm="ortho"`` keeps energy (Parseval).
* fastMRI-style 1-D Cartesian undersampling masks (random and equispaced) with a fully sampled
  centre (``center_fraction``; fastMRI pairs 4x -> 0.08 and 8x -> 0.04, i.e. 0.32 / R), and
  zero-filled reconstruction.
* Multi-coil simulation: smooth coil sensitivities normalised so that ``sum_c |S_c|^2 = 1``
  at every voxel, with a smooth phase; root-sum-of-squares (RSS) combination.
* Artifacts: :func:`undersample` (zero-filled, single- or multi-coil), :func:`ghosting`,
  :func:`spike`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.fft as sfft

from ._common import (
    as_image,
    check_severity,
    complex_to_real,
    finish,
    identity_result,
    make_rng,
    resolve_axis,
)

__all__ = [
    "fftnc",
    "ifftnc",
    "fft2c",
    "ifft2c",
    "fftnc_torch",
    "ifftnc_torch",
    "fft2c_torch",
    "ifft2c_torch",
    "default_center_fraction",
    "random_mask",
    "equispaced_mask",
    "line_mask",
    "apply_line_mask",
    "zero_filled",
    "coil_sensitivities",
    "simulate_multicoil",
    "rss",
    "undersample",
    "ghosting",
    "spike",
]


# --------------------------------------------------------------------------------------------
# centred orthonormal FFTs
# --------------------------------------------------------------------------------------------
def _axes(x_ndim: int, axes: Sequence[int] | int | None) -> tuple[int, ...]:
    if axes is None:
        return tuple(range(x_ndim))
    if isinstance(axes, (int, np.integer)):
        axes = (int(axes),)
    return tuple(int(a) % x_ndim for a in axes)


def fftnc(x: np.ndarray, axes: Sequence[int] | int | None = None) -> np.ndarray:
    """Centred orthonormal n-D FFT: ``fftshift(fftn(ifftshift(x), norm="ortho"))``.

    Args:
        x: real or complex array (image domain).
        axes: axes to transform (default: all).

    Returns:
        complex k-space (complex64 for float32 input, complex128 for float64) with k = 0 at
        index ``N // 2`` of each transformed axis.
    """
    ax = _axes(np.ndim(x), axes)
    return sfft.fftshift(sfft.fftn(sfft.ifftshift(x, axes=ax), axes=ax, norm="ortho", workers=-1), axes=ax)


def ifftnc(k: np.ndarray, axes: Sequence[int] | int | None = None) -> np.ndarray:
    """Inverse of :func:`fftnc` (centred orthonormal n-D inverse FFT); returns complex."""
    ax = _axes(np.ndim(k), axes)
    return sfft.fftshift(sfft.ifftn(sfft.ifftshift(k, axes=ax), axes=ax, norm="ortho", workers=-1), axes=ax)


def fft2c(x: np.ndarray) -> np.ndarray:
    """Centred orthonormal 2-D FFT over the last two axes (fastMRI convention)."""
    return fftnc(x, axes=(-2, -1))


def ifft2c(k: np.ndarray) -> np.ndarray:
    """Centred orthonormal 2-D inverse FFT over the last two axes."""
    return ifftnc(k, axes=(-2, -1))


def fftnc_torch(x, dim: Sequence[int] | None = None):
    """Torch twin of :func:`fftnc` for real or complex tensors (any device; differentiable).

    Args:
        x: torch tensor (image domain).
        dim: dimensions to transform (default: all).
    """
    import torch

    dim = tuple(range(x.ndim)) if dim is None else tuple(dim)
    return torch.fft.fftshift(torch.fft.fftn(torch.fft.ifftshift(x, dim=dim), dim=dim, norm="ortho"), dim=dim)


def ifftnc_torch(k, dim: Sequence[int] | None = None):
    """Torch twin of :func:`ifftnc`; returns a complex tensor."""
    import torch

    dim = tuple(range(k.ndim)) if dim is None else tuple(dim)
    return torch.fft.fftshift(torch.fft.ifftn(torch.fft.ifftshift(k, dim=dim), dim=dim, norm="ortho"), dim=dim)


def fft2c_torch(x):
    """Torch centred orthonormal 2-D FFT over the last two dimensions."""
    return fftnc_torch(x, dim=(-2, -1))


def ifft2c_torch(k):
    """Torch centred orthonormal 2-D inverse FFT over the last two dimensions."""
    return ifftnc_torch(k, dim=(-2, -1))


# --------------------------------------------------------------------------------------------
# undersampling masks (fastMRI semantics)
# --------------------------------------------------------------------------------------------
def default_center_fraction(acceleration: float) -> float:
    """fastMRI's pairing of centre fraction with acceleration: 0.32 / R (4x -> 0.08, 8x -> 0.04)."""
    return min(1.0, 0.32 / float(acceleration))


def _center_lines(num_cols: int, center_fraction: float) -> tuple[np.ndarray, int]:
    num_low = int(round(num_cols * center_fraction))
    num_low = max(0, min(num_cols, num_low))
    mask = np.zeros(num_cols, dtype=bool)
    pad = (num_cols - num_low + 1) // 2
    mask[pad : pad + num_low] = True
    return mask, num_low


def _check_mask_args(num_cols: int, acceleration: float, center_fraction: float | None) -> tuple[int, float, float]:
    num_cols = int(num_cols)
    if num_cols < 1:
        raise ValueError(f"num_cols must be >= 1, got {num_cols}")
    acceleration = float(acceleration)
    if not np.isfinite(acceleration) or acceleration < 1:
        raise ValueError(f"acceleration must be >= 1, got {acceleration}")
    cf = default_center_fraction(acceleration) if center_fraction is None else float(center_fraction)
    if not 0 <= cf <= 1:
        raise ValueError(f"center_fraction must be in [0, 1], got {cf}")
    return num_cols, acceleration, cf


def random_mask(
    num_cols: int, acceleration: float = 4.0, center_fraction: float | None = None, seed: int = 0
) -> np.ndarray:
    """fastMRI ``RandomMaskFunc``: fully sampled centre plus lines kept with a probability.

    The centre holds ``round(num_cols * center_fraction)`` lines (at index
    ``(num_cols - num_low + 1) // 2``); each other line is kept with probability
    ``(num_cols / R - num_low) / (num_cols - num_low)`` so that the *expected* acceleration is R.

    Args:
        num_cols: number of phase-encoding lines.
        acceleration: R >= 1 (``num_cols / lines kept`` in expectation).
        center_fraction: fraction of lines in the fully sampled centre (default 0.32 / R).
        seed: random seed.

    Returns:
        boolean mask of length ``num_cols`` (True = acquired).
    """
    num_cols, acceleration, cf = _check_mask_args(num_cols, acceleration, center_fraction)
    rng = make_rng(seed)
    mask, num_low = _center_lines(num_cols, cf)
    if num_low < num_cols:
        prob = (num_cols / acceleration - num_low) / (num_cols - num_low)
        mask |= rng.uniform(size=num_cols) < prob
    return mask


def equispaced_mask(
    num_cols: int, acceleration: float = 4.0, center_fraction: float | None = None, seed: int = 0
) -> np.ndarray:
    """fastMRI ``EquispacedMaskFractionFunc``: fully sampled centre plus equispaced lines.

    The spacing of the outer lines is adjusted so that the *total* acceleration (centre
    included) is R: ``adjusted = R (num_low - N) / (num_low R - N)``; the offset of the
    equispaced lines is random in ``[0, round(adjusted))``.

    Args / Returns: as :func:`random_mask`.
    """
    num_cols, acceleration, cf = _check_mask_args(num_cols, acceleration, center_fraction)
    rng = make_rng(seed)
    mask, num_low = _center_lines(num_cols, cf)
    if num_low * acceleration < num_cols:  # room for lines outside the centre
        adjusted = (acceleration * (num_low - num_cols)) / (num_low * acceleration - num_cols)
        offset = int(rng.integers(0, max(1, int(round(adjusted)))))
        samples = np.around(np.arange(offset, num_cols - 1, adjusted)).astype(int)
        mask[samples[samples < num_cols]] = True
    return mask


def line_mask(
    shape: Sequence[int],
    axis: int = -1,
    kind: str = "random",
    acceleration: float = 4.0,
    center_fraction: float | None = None,
    seed: int = 0,
) -> np.ndarray:
    """A 1-D line mask along ``axis`` shaped to broadcast against an array of ``shape``.

    Args:
        shape: k-space shape.
        axis: phase-encoding axis that is undersampled (default: last, as fastMRI's columns).
        kind: ``"random"`` or ``"equispaced"``.
        acceleration, center_fraction, seed: see :func:`random_mask`.
    """
    axis = resolve_axis(axis, len(shape))
    fn = {"random": random_mask, "equispaced": equispaced_mask}.get(kind)
    if fn is None:
        raise ValueError(f"kind must be 'random' or 'equispaced', got {kind!r}")
    m = fn(shape[axis], acceleration, center_fraction, seed)
    bshape = [1] * len(shape)
    bshape[axis] = shape[axis]
    return m.reshape(bshape)


def apply_line_mask(kspace: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Zero the k-space lines where ``mask`` is False (``mask`` broadcasts against ``kspace``)."""
    return kspace * mask


def zero_filled(kspace: np.ndarray, axes: Sequence[int] | int | None = None) -> np.ndarray:
    """Zero-filled reconstruction: magnitude of :func:`ifftnc` of (masked) k-space."""
    return np.abs(ifftnc(kspace, axes=axes))


# --------------------------------------------------------------------------------------------
# multi-coil
# --------------------------------------------------------------------------------------------
def coil_sensitivities(
    shape: Sequence[int],
    n_coils: int = 8,
    seed: int = 0,
    coil_width: float = 0.8,
    coil_distance: float = 1.3,
    phase_scale: float = 1.0,
) -> np.ndarray:
    """Smooth complex coil sensitivities with ``sum_c |S_c|^2 = 1`` at every voxel.

    Coils sit on a ring (2-D: a circle around the image centre; 3-D: a circle in the plane of
    the first two axes, alternating above/below the mid-plane along the third) at
    ``coil_distance`` in normalised coordinates (the image spans [-1, 1] per axis). The
    magnitude of coil c is ``exp(-|r - p_c|^2 / (2 coil_width^2))``; its phase is a smooth
    random field ``phi_c + a_c . r`` (a random constant plus a random linear ramp of up to
    ``phase_scale`` radians across the half-FOV). Finally ``S <- S / sqrt(sum_c |S_c|^2)``.

    Args:
        shape: image shape (2-D or 3-D).
        n_coils: number of coils (>= 1).
        seed: random seed (ring rotation and phases).
        coil_width: Gaussian width of each coil profile (normalised units).
        coil_distance: ring radius (normalised units).
        phase_scale: maximum linear phase (radians per half-FOV).

    Returns:
        complex64 array of shape ``(n_coils, *shape)``.
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) not in (2, 3):
        raise ValueError(f"coil_sensitivities: shape must be 2-D or 3-D, got {shape}")
    if int(n_coils) < 1:
        raise ValueError(f"n_coils must be >= 1, got {n_coils}")
    n_coils = int(n_coils)
    rng = make_rng(seed)
    grids = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij", sparse=True)
    theta0 = rng.uniform(0, 2 * np.pi)
    sens = np.empty((n_coils, *shape), dtype=np.complex64)
    for c in range(n_coils):
        ang = theta0 + 2 * np.pi * c / n_coils
        pos = [coil_distance * np.cos(ang), coil_distance * np.sin(ang)]
        if len(shape) == 3:
            pos.append(0.5 * (-1) ** c)
        d2 = sum((g - p) ** 2 for g, p in zip(grids, pos))
        mag = np.exp(-d2 / (2 * coil_width**2))
        slope = rng.uniform(-phase_scale, phase_scale, size=len(shape))
        phase = rng.uniform(-np.pi, np.pi) + sum(s * g for s, g in zip(slope, grids))
        sens[c] = (mag * np.exp(1j * phase)).astype(np.complex64)
    norm = np.sqrt((np.abs(sens) ** 2).sum(axis=0))
    sens /= np.maximum(norm, np.finfo(np.float32).tiny)
    return sens


def simulate_multicoil(
    image: np.ndarray, n_coils: int = 8, seed: int = 0, sensitivities: np.ndarray | None = None
) -> np.ndarray:
    """Coil images ``S_c * image`` (complex, shape ``(n_coils, *image.shape)``).

    With normalised sensitivities, ``rss(simulate_multicoil(x)) == |x|``.
    """
    x = np.asarray(image)
    if sensitivities is None:
        sensitivities = coil_sensitivities(x.shape, n_coils, seed)
    if sensitivities.shape[1:] != x.shape:
        raise ValueError(f"sensitivities shape {sensitivities.shape} does not match image {x.shape}")
    return (sensitivities * x[None]).astype(np.complex64)


def rss(coil_images: np.ndarray, axis: int = 0) -> np.ndarray:
    """Root-sum-of-squares coil combination: ``sqrt(sum_c |x_c|^2)`` along ``axis``."""
    return np.sqrt((np.abs(coil_images) ** 2).sum(axis=axis))


# --------------------------------------------------------------------------------------------
# artifacts
# --------------------------------------------------------------------------------------------
def undersample(
    image: np.ndarray,
    severity: float | None = None,
    seed: int = 0,
    *,
    spacing=None,
    acceleration: float | None = None,
    center_fraction: float | None = None,
    mask_type: str = "random",
    axis: int = -1,
    n_coils: int = 1,
    noise_sigma: float = 0.0,
) -> tuple[np.ndarray, dict]:
    """Cartesian undersampling with zero-filled reconstruction (fastMRI-style masks).

    The image is (optionally) split into ``n_coils`` coil images (:func:`coil_sensitivities`),
    each is Fourier transformed over all axes (:func:`fftnc`), lines along ``axis`` are kept by
    a :func:`random_mask` / :func:`equispaced_mask`, complex Gaussian noise of ``noise_sigma``
    (absolute, per real/imaginary channel, in k-space) may be added, and the result is the
    zero-filled magnitude (single coil) or the RSS of the zero-filled coil images.

    Args:
        image: 2-D or 3-D image.
        severity: fraction of phase-encoding lines skipped, ``1 - 1/R`` (0 = fully sampled,
            0.75 = 4x). Ignored when ``acceleration`` is given. Default 0.75.
        seed: random seed (mask, coil phases, noise).
        spacing: unused (accepted for a uniform signature).
        acceleration: R >= 1; overrides ``severity``.
        center_fraction: fully sampled centre fraction (default 0.32 / R: 4x -> 0.08).
        mask_type: ``"random"`` or ``"equispaced"``.
        axis: undersampled (phase-encoding) axis; default last (fastMRI columns).
        n_coils: 1 = single coil (magnitude of zero-filled); > 1 = multi-coil RSS.
        noise_sigma: k-space noise standard deviation (absolute units, orthonormal FFT).

    Returns:
        image, params with ``severity`` (1 - 1/R_realised), ``acceleration`` (requested),
        ``acceleration_realised`` (lines / lines kept), ``center_fraction``,
        ``center_lines``, ``sampled_lines`` (indices), ``axis``, ``mask_type``, ``n_coils``.
    """
    x = as_image(image)
    axis = resolve_axis(axis, x.ndim)
    if acceleration is None:
        s = check_severity(0.75 if severity is None else severity, 0.0, 0.99)
        acceleration = 1.0 / (1.0 - s)
    acceleration = float(acceleration)
    cf = default_center_fraction(acceleration) if center_fraction is None else float(center_fraction)
    base = {
        "acceleration": acceleration,
        "center_fraction": cf,
        "mask_type": mask_type,
        "axis": axis,
        "n_coils": int(n_coils),
        "noise_sigma": float(noise_sigma),
    }
    n = x.shape[axis]
    if acceleration == 1.0 and noise_sigma == 0 and int(n_coils) == 1:
        return identity_result(
            x,
            {"severity": 0.0, **base, "acceleration_realised": 1.0, "center_lines": n, "sampled_lines": list(range(n))},
        )
    rng = make_rng(seed)
    mask_seed, coil_seed, noise_seed = (int(v) for v in rng.integers(0, 2**31 - 1, size=3))
    mask = line_mask(x.shape, axis, mask_type, acceleration, cf, mask_seed)
    n_kept = int(mask.sum())
    if int(n_coils) > 1:
        data = simulate_multicoil(x, int(n_coils), coil_seed)
        k_axes = tuple(range(1, x.ndim + 1))
        kspace = fftnc(data, axes=k_axes) * mask[None]
    else:
        kspace = fftnc(x.astype(np.complex64)) * mask
        k_axes = None
    if noise_sigma > 0:
        nrng = make_rng(noise_seed)
        noise = nrng.standard_normal(kspace.shape, dtype=np.float32) + 1j * nrng.standard_normal(
            kspace.shape, dtype=np.float32
        )
        kspace = kspace + (noise_sigma * noise * (mask if int(n_coils) == 1 else mask[None])).astype(np.complex64)
    rec = ifftnc(kspace, axes=k_axes)
    out = rss(rec, axis=0) if int(n_coils) > 1 else np.abs(rec)
    r_real = n / max(n_kept, 1)
    _, num_low = _center_lines(n, cf)
    params = {
        "severity": 1.0 - 1.0 / r_real,
        **base,
        "acceleration_realised": r_real,
        "center_lines": num_low,
        "sampled_lines": np.flatnonzero(mask.ravel()).tolist(),
    }
    return finish(out, params)


def ghosting(
    image: np.ndarray,
    severity: float | None = None,
    seed: int = 0,
    *,
    spacing=None,
    num_ghosts: int | None = None,
    axis: int = 0,
    restore: float = 0.02,
    output: str = "auto",
) -> tuple[np.ndarray, dict]:
    """Ghosting (TorchIO ``Ghosting`` model): every ``num_ghosts``-th k-space plane along ``axis``
    is scaled by ``1 - severity``, which replicates the object ``num_ghosts`` times along
    ``axis`` (ghost amplitude proportional to ``severity``). The central ``restore`` fraction of
    k-space along ``axis`` is left untouched so the main image keeps its contrast.

    Args:
        image: 2-D or 3-D image.
        severity: ghost intensity in [0, 1] (fraction by which the modulated lines are
            attenuated); 0 = no artifact. Default 0.5.
        seed: random seed; draws ``num_ghosts`` in [2, 8] when it is None.
        spacing: unused.
        num_ghosts: period of the modulated lines (= number of ghosts across the FOV).
        axis: phase-encoding axis.
        restore: central fraction of k-space restored.
        output: "auto" | "magnitude" | "real" (see module notes).
    """
    x = as_image(image)
    s = check_severity(0.5 if severity is None else severity, 0.0, 1.0)
    axis = resolve_axis(axis, x.ndim)
    rng = make_rng(seed)
    ng = int(rng.integers(2, 9)) if num_ghosts is None else int(num_ghosts)
    if ng < 1:
        raise ValueError(f"num_ghosts must be >= 1, got {ng}")
    params = {"severity": s, "num_ghosts": ng, "axis": axis, "restore": float(restore)}
    if s == 0:
        return identity_result(x, params)
    k = fftnc(x.astype(np.complex64))
    n = x.shape[axis]
    factor = np.ones(n, dtype=np.float32)
    factor[::ng] = 1.0 - s
    if restore > 0:
        half = int(round(n * restore / 2))
        c = n // 2
        factor[max(0, c - half) : c + half + 1] = 1.0
    bshape = [1] * x.ndim
    bshape[axis] = n
    k *= factor.reshape(bshape)
    out, mode = complex_to_real(ifftnc(k), output, x)
    params["output"] = mode
    return finish(out, params)


def spike(
    image: np.ndarray,
    severity: float | None = None,
    seed: int = 0,
    *,
    spacing=None,
    n_spikes: int = 1,
    min_radius: float = 0.1,
    max_radius: float = 0.6,
    output: str = "auto",
) -> tuple[np.ndarray, dict]:
    """k-space spike ("herringbone"/ stripes): ``n_spikes`` points of k-space get an extra value of
    ``severity * max|K|`` with a random phase, giving stripes across the whole image.

    Spike positions are random, at a normalised k-space radius in ``[min_radius, max_radius]``
    (1 = edge of k-space along each axis), recorded as integer indices of the centred k-space.

    Args:
        image: 2-D or 3-D image.
        severity: spike amplitude relative to the maximum k-space magnitude; 0 = none. Default 0.5.
        seed: random seed (positions and phases).
        spacing: unused.
        n_spikes: number of spikes.
        min_radius, max_radius: normalised k-space radius range of the spike positions.
        output: "auto" | "magnitude" | "real".
    """
    x = as_image(image)
    s = check_severity(0.5 if severity is None else severity, 0.0, 100.0)
    rng = make_rng(seed)
    shape = np.array(x.shape)
    positions, phases = [], []
    for _ in range(int(n_spikes)):
        direction = rng.standard_normal(x.ndim)
        direction /= np.linalg.norm(direction)
        radius = rng.uniform(min_radius, max_radius)
        idx = np.clip(np.round(shape // 2 + direction * radius * (shape / 2)).astype(int), 0, shape - 1)
        positions.append(idx.tolist())
        phases.append(float(rng.uniform(-np.pi, np.pi)))
    params = {"severity": s, "positions": positions, "phases": phases}
    if s == 0:
        return identity_result(x, params)
    k = fftnc(x.astype(np.complex64))
    kmax = float(np.abs(k).max())
    for idx, ph in zip(positions, phases):
        k[tuple(idx)] += np.complex64(s * kmax * np.exp(1j * ph))
    out, mode = complex_to_real(ifftnc(k), output, x)
    params.update(output=mode, kspace_max=kmax)
    return finish(out, params)
