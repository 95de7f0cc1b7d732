"""Data of paper 4: fastMRI volumes (real, or the embedded cohort written in fastMRI's layout)
turned into (ground truth, 4x zero-filled) slice pairs.

Embedded: each subject's T1w -> ``conform`` (2 mm grid) -> ``normalise`` -> ``slices_per_subject``
axial slices (96 x 112; columns = phase encoding) -> multi-coil k-space with smooth coil
sensitivities (:mod:`mriqa_lib.artifacts.kspace`) -> ``data/synthetic/ssfd/fastmri/<split>/sub-XXX.h5``
with ``kspace``, ``reconstruction_rss`` and an ISMRMRD header. Both sources then go through the
same reader (:func:`mriqa_lib.data.fastmri.read_fastmri`) and :func:`slices_from_file`.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from mriqa_lib.artifacts.kspace import fft2c, simulate_multicoil
from mriqa_lib.data.fastmri import (centre_crop, ismrmrd_header, jsense_reconstruction, read_fastmri,
                                    rss_reconstruction, undersample_kspace, write_fastmri)
from mriqa_lib.data.preprocess import conform, normalise
from mriqa_lib.io import MriqaInputError, load_nifti
from mriqa_lib.methods.ssfd.params import SsfdParams

SPLITS = ("train", "val", "test")


def embedded_slices(t1_path: Path, n: int, step: int) -> np.ndarray:
    """``n`` axial slices (every ``step``-th around the centre) of a conformed, normalised T1w:
    array (n, 96, 112), rows = x (left-right), columns = y (anterior-posterior, phase encoding)."""
    vol = conform(load_nifti(t1_path))
    data = np.clip(normalise(vol.data), 0, None)
    z0 = data.shape[2] // 2 - (n * step) // 2 + 4  # a little above the centre: more brain per slice
    idx = np.clip(np.arange(z0, z0 + n * step, step), 0, data.shape[2] - 1)
    return np.stack([data[:, :, z] for z in idx]).astype(np.float32)


def write_embedded_file(path: Path, slices: np.ndarray, n_coils: int, seed: int, subject: str) -> Path:
    """Simulate multi-coil k-space of ``slices`` (n, rows, cols) and write a fastMRI-layout file."""
    kspace = np.stack([fft2c(simulate_multicoil(s, n_coils, seed=seed * 1000 + i)) for i, s in enumerate(slices)])
    target = rss_reconstruction(kspace)
    header = ismrmrd_header(slices.shape[-2:], slices.shape[-2:], fov_mm=(192.0, 224.0), n_coils=n_coils)
    return write_fastmri(path, kspace, target, header,
                         attrs={"acquisition": "AXT1_embedded", "patient_id": subject})


def ground_truth(f, params: SsfdParams, crop: tuple[int, int]) -> np.ndarray:
    """The ground-truth images of a fastMRI file as the params ask (rss / esc / jsense)."""
    if params.target == "jsense":
        return jsense_reconstruction(f.kspace, crop)
    if params.target == "esc":
        if f.target_key != "reconstruction_esc":
            raise MriqaInputError(f"{f.path}: ssfd.target 'esc' but the file has no reconstruction_esc")
        return centre_crop(f.target, crop)
    return rss_reconstruction(f.kspace, crop)


def slices_from_file(path: Path, params: SsfdParams, seed: int) -> dict[str, np.ndarray]:
    """Ground truth and 4x zero-filled RSS of every slice of one fastMRI file, scaled together so
    that the zero-filled image's 99th percentile is 1 (the only scale known at inference).

    Returns: dict of ``target``, ``zero_filled`` (n, rows, cols) float32, ``scale`` (n,),
    ``slice`` (n,) indices, ``mask`` (cols,) the sampling mask.
    """
    f = read_fastmri(path, params.max_slices_per_file)
    crop = tuple(params.crop) if params.crop else f.recon
    gt = ground_truth(f, params, crop)
    under, mask = undersample_kspace(f.kspace, params.acceleration, params.center_fraction,
                                     params.mask_type, seed)
    zf = rss_reconstruction(under, crop)
    scale = np.percentile(zf.reshape(len(zf), -1), 99, axis=1).astype(np.float32)
    scale = np.maximum(scale, 1e-12)
    return {"target": gt / scale[:, None, None], "zero_filled": zf / scale[:, None, None], "scale": scale,
            "slice": np.arange(len(gt)), "mask": mask}


def pad_to_multiple(x: np.ndarray, multiple: int = 16) -> np.ndarray:
    """Zero-pad the last two axes (centred) up to multiples of ``multiple`` (U-Net strides)."""
    rows, cols = x.shape[-2:]
    shape = (-(-rows // multiple) * multiple, -(-cols // multiple) * multiple)
    if shape == (rows, cols):
        return x
    return centre_crop(x, shape)
