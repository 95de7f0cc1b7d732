"""The one SimpleITK bridge: :class:`~mriqa_lib.io.Volume` (nibabel RAS affine) <-> ITK image (LPS).

ITK's physical frame is LPS; nibabel's affines are RAS. Everything that registers or filters
with SimpleITK converts through here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from mriqa_lib.io import Volume

RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def volume_to_sitk(volume: Volume):
    """A ``SimpleITK.Image`` with the same world geometry as ``volume``."""
    import SimpleITK as sitk

    aff = RAS_TO_LPS @ np.asarray(volume.affine, np.float64)
    spacing = np.sqrt((aff[:3, :3] ** 2).sum(axis=0))
    img = sitk.GetImageFromArray(np.ascontiguousarray(np.asarray(volume.data, np.float32).transpose(2, 1, 0)))
    img.SetSpacing([float(s) for s in spacing])
    img.SetOrigin([float(o) for o in aff[:3, 3]])
    img.SetDirection([float(d) for d in (aff[:3, :3] / spacing).ravel()])
    return img


def sitk_to_volume(image, path: Path | None = None, affine: np.ndarray | None = None) -> Volume:
    """Back to a RAS :class:`Volume` (array axes x, y, z); ``affine`` overrides the image's own."""
    import SimpleITK as sitk

    data = sitk.GetArrayFromImage(image).transpose(2, 1, 0).astype(np.float32)
    if affine is None:
        spacing = np.asarray(image.GetSpacing())
        lps = np.eye(4)
        lps[:3, :3] = np.asarray(image.GetDirection()).reshape(3, 3) * spacing
        lps[:3, 3] = image.GetOrigin()
        affine = RAS_TO_LPS @ lps
    return Volume(np.ascontiguousarray(data), np.asarray(affine, np.float64), path)


def lps_to_ras_matrix(matrix: np.ndarray) -> np.ndarray:
    """A 4x4 point mapping written in LPS coordinates, rewritten for RAS coordinates."""
    return RAS_TO_LPS @ np.asarray(matrix, np.float64) @ RAS_TO_LPS


@contextlib.contextmanager
def kept_locale() -> Iterator[None]:
    """Restore the process locale afterwards: GDCM's DICOM writer sets LC_CTYPE to "C" and leaves
    it, after which Python opens UTF-8 text files as ASCII."""
    import locale

    before = locale.setlocale(locale.LC_ALL)
    try:
        yield
    finally:
        locale.setlocale(locale.LC_ALL, before)


@contextlib.contextmanager
def single_itk_thread() -> Iterator[None]:
    """Run ITK single-threaded: its threaded metrics sum in scheduling order, so the same inputs
    could give last-bit different registrations."""
    import SimpleITK as sitk

    before = sitk.ProcessObject_GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject_SetGlobalDefaultNumberOfThreads(1)
    try:
        yield
    finally:
        sitk.ProcessObject_SetGlobalDefaultNumberOfThreads(before)
