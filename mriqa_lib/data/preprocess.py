"""Bring any volume to what a method expects: reference grid, intensity scale, slices.

The pipeline and ``mriqa score`` both call these functions, so a user's scan is prepared
exactly as the training data were.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from mriqa_lib.data.template import REF_AFFINE, REF_SHAPE
from mriqa_lib.io import Volume

#: Gaussian sigma of a profile of unit full width at half maximum (FWHM = 2 sqrt(2 ln 2) sigma)
FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))


def extra_blur_mm(target_mm: float, current_mm: float) -> float:
    """Gaussian sigma (mm) that widens a resolution of ``current_mm`` FWHM to ``target_mm`` (widths add in
    quadrature); 0 when the resolution is already that coarse. Divide by the voxel size for voxels."""
    return float(np.sqrt(max(target_mm**2 - current_mm**2, 0.0)) * FWHM_TO_SIGMA)


def resample_to(
    data: np.ndarray, affine: np.ndarray, target_affine: np.ndarray, target_shape: tuple[int, ...], order: int = 1
) -> np.ndarray:
    """Resample ``data`` (voxel->world ``affine``) onto a target grid by world coordinates.

    Points outside the source field of view are 0. Orientation differences (LPS vs RAS,
    permuted axes) are handled by the affines.
    """
    # target voxel -> source voxel
    mapping = np.linalg.inv(affine) @ target_affine
    return ndimage.affine_transform(
        np.asarray(data, dtype=np.float32),
        mapping[:3, :3],
        offset=mapping[:3, 3],
        output_shape=tuple(target_shape),
        order=order,
        mode="constant",
        cval=0.0,
    ).astype(np.float32)


def conform(
    volume: Volume,
    target_affine: np.ndarray = REF_AFFINE,
    target_shape: tuple[int, int, int] = REF_SHAPE,
    order: int = 1,
) -> Volume:
    """Resample a volume onto the reference grid (2 mm, 96 x 112 x 96, RAS) by default.

    Assumes the volume is already in (or affinely registered to) MNI space, as the embedded
    cohort and Clinica t1-linear outputs are.
    """
    if volume.data.shape == tuple(target_shape) and np.allclose(volume.affine, target_affine, atol=1e-4):
        return Volume(volume.data.astype(np.float32), target_affine.copy(), volume.path)
    data = resample_to(volume.data, volume.affine, target_affine, target_shape, order)
    return Volume(data, np.asarray(target_affine, dtype=np.float64).copy(), volume.path)


def normalise(data: np.ndarray, mask: np.ndarray | None = None, low: float = 0.5, high: float = 99.5) -> np.ndarray:
    """Scale intensities so the ``low``/``high`` percentiles (inside ``mask`` or the foreground)
    map to 0/1, without clipping. The foreground is voxels above 10 % of the 99th percentile."""
    data = np.asarray(data, dtype=np.float32)
    if mask is None:
        ref = np.percentile(data, 99)
        mask = data > 0.1 * ref
    values = data[mask] if mask.any() else data.ravel()
    lo, hi = np.percentile(values, [low, high])
    if hi - lo <= 0:
        hi = lo + 1.0
    # background percentile (low) is near 0 for skull-stripped brains; keep 0 as 0 there
    lo = min(lo, 0.0) if low < 5 else lo
    return ((data - lo) / (hi - lo)).astype(np.float32)


def smooth_foreground(data: np.ndarray, sigma_voxels: float) -> np.ndarray:
    """The image smoothed by a Gaussian of ``sigma_voxels`` above its Otsu threshold (all False for a
    constant image): a skull-stripped brain apart from even a strong noise floor, or a whole head
    apart from the air around it."""
    from skimage.filters import threshold_otsu

    smooth = ndimage.gaussian_filter(np.asarray(data, np.float32), sigma_voxels)
    if smooth.max() <= smooth.min():
        return np.zeros(smooth.shape, bool)
    return smooth > threshold_otsu(smooth)


def zero_background(data: np.ndarray, voxel_mm: float, smooth_mm: float = 4.0) -> np.ndarray:
    """``data`` with 0 outside its foreground (:func:`smooth_foreground` at ``smooth_mm``, holes
    filled): what brain extraction leaves around a scan that `mriqa score` prepares. A method whose
    training volumes keep a noise floor around the brain otherwise learns that floor as a cue that
    no prepared scan has."""
    data = np.asarray(data, np.float32)
    return data * ndimage.binary_fill_holes(smooth_foreground(data, smooth_mm / voxel_mm))


def zscore(data: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Zero mean, unit variance (over ``mask`` when given)."""
    data = np.asarray(data, dtype=np.float32)
    values = data[mask] if mask is not None and mask.any() else data
    return ((data - values.mean()) / (values.std() + 1e-8)).astype(np.float32)


def centre_slices(data: np.ndarray, axis: int = 2, n: int = 20, step: int = 1) -> np.ndarray:
    """The ``n`` slices around the centre of ``axis`` (every ``step``-th), stacked on axis 0."""
    size = data.shape[axis]
    if n * step > size:
        raise ValueError(f"cannot take {n} slices with step {step} from an axis of length {size}")
    start = size // 2 - (n * step) // 2
    idx = np.arange(start, start + n * step, step)
    return np.moveaxis(np.take(data, idx, axis=axis), axis, 0).copy()


def crop_or_pad(data: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Centre-crop or zero-pad each axis of ``data`` to ``shape``."""
    out = np.zeros(shape, dtype=data.dtype)
    src, dst = [], []
    for n_in, n_out in zip(data.shape, shape):
        if n_in >= n_out:
            a = (n_in - n_out) // 2
            src.append(slice(a, a + n_out))
            dst.append(slice(0, n_out))
        else:
            a = (n_out - n_in) // 2
            src.append(slice(0, n_in))
            dst.append(slice(a, a + n_in))
    out[tuple(dst)] = data[tuple(src)]
    return out
