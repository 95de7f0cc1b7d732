"""Volume preparation shared by the pipeline and the scorer (paper 2, Sec. 3.1).

volume -> [N4] -> [affine registration] -> template grid -> intensity scaling (0.5 / 99.5
foreground percentiles to 0 / 1) -> [background set to 0] -> slices padded to ``slice_size`` squares.

The background step (``brain_only``) makes every input look like a scan that went through
`mriqa score`'s preparation, whose brain extraction leaves exact zeros around the brain. Without
it the embedded cohort's brains sit in a noise floor, the encoder learns that floor as its main
cue, and every prepared real scan lands far outside the training latents.
"""

from __future__ import annotations

import functools

import numpy as np

from mriqa_lib.data.multicohort import (
    ORIENTATIONS,
    orientation_slices,
    preprocess_t1w,
    template_volume,
)
from mriqa_lib.data.preprocess import normalise, zero_background
from mriqa_lib.io import Volume
from mriqa_lib.methods.zuo.params import ZuoParams

__all__ = [
    "band_slices",
    "centre_axial",
    "centre_indices",
    "prepare_volume",
    "scale_intensity",
    "to_template",
]


@functools.lru_cache(maxsize=4)
def _template(spacing: float) -> Volume:
    return template_volume(spacing)


def prepare_volume(volume: Volume, p: ZuoParams) -> np.ndarray:
    """A T1w volume on the template grid, intensities scaled to about [0, 1] (float32, x y z):
    :func:`to_template` then :func:`scale_intensity`.

    Args:
        volume: input volume (world frame in mm).
        p: the ``zuo`` params (n4, registration, template_spacing).
    """
    return scale_intensity(to_template(volume, p), p)


def to_template(volume: Volume, p: ZuoParams) -> Volume:
    """The first half of :func:`prepare_volume`: [N4] -> [affine registration] -> template grid."""
    return preprocess_t1w(volume, _template(p.template_spacing), n4=p.n4, register=p.registration)


def scale_intensity(volume: Volume, p: ZuoParams) -> np.ndarray:
    """The second half of :func:`prepare_volume`: negatives to 0, foreground percentiles to 0 / 1,
    then (``p.brain_only``) 0 around the brain (:func:`~mriqa_lib.data.preprocess.zero_background`)."""
    data = normalise(np.clip(volume.data, 0, None))
    return zero_background(data, p.template_spacing) if p.brain_only else data


def centre_indices(size: int, n: int, step: int = 1) -> np.ndarray:
    """``n`` indices (every ``step``-th) around the centre of an axis of length ``size``."""
    if n * step > size:
        raise ValueError(f"cannot take {n} slices with step {step} from an axis of length {size}")
    start = size // 2 - (n * step) // 2
    return np.arange(start, start + n * step, step)


def centre_axial(data: np.ndarray, p: ZuoParams) -> np.ndarray:
    """The ``n_centre_slices`` centre axial slices, (n, S, S) float32 (paper: 20)."""
    return orientation_slices(data, "axial", centre_indices(data.shape[2], p.n_centre_slices), p.slice_size)


def band_slices(data: np.ndarray, p: ZuoParams) -> dict[str, np.ndarray]:
    """Training slices per orientation: every ``band_step``-th of the ``band`` centre slices."""
    out = {}
    for o, axis in zip(ORIENTATIONS, (2, 1, 0)):
        n = min(p.band, data.shape[axis]) // p.band_step
        out[o] = orientation_slices(data, o, centre_indices(data.shape[axis], n, p.band_step), p.slice_size)
    return out
