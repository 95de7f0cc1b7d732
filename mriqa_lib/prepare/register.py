"""Affine registration of an extracted brain to the ICBM152 2009a template brain (SimpleITK).

Two stages, both Mattes mutual information on the 2 mm template: a similarity transform
(rotation, translation, one scale) started from the centres of mass and the brain-volume ratio,
then a full affine started from it. The result is resampled onto the reference field of view at
the requested voxel size, with Gaussian anti-aliasing when that is coarser than the scan.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from mriqa_lib.data.preprocess import extra_blur_mm
from mriqa_lib.io import Volume

from .itk import RAS_TO_LPS, lps_to_ras_matrix, single_itk_thread, sitk_to_volume, volume_to_sitk


@dataclass
class Registration:
    """The registered brain on the output grid and how well it matches the template."""

    volume: Volume
    mask: np.ndarray  # registered brain mask on the output grid
    matrix: np.ndarray  # 4x4 RAS mm: template point -> the scan point it samples
    dice: float
    similarity: float  # Pearson correlation with the template brain inside its mask
    scale: float  # linear size of the brain relative to the template


@functools.lru_cache(maxsize=4)
def template_brain(spacing: float) -> tuple[Volume, np.ndarray]:
    """The template brain (T1 x mask) and its mask on the reference field of view at ``spacing`` mm."""
    from mriqa_lib.data.multicohort import template_volume
    from mriqa_lib.data.preprocess import resample_to
    from mriqa_lib.data.template import load_template

    brain = template_volume(spacing)
    tpl = load_template()
    mask = resample_to(tpl.mask, tpl.affine, brain.affine, brain.shape) > 0.5
    return brain, mask


def _affine_matrix(transform) -> np.ndarray:
    """4x4 LPS matrix of any affine ITK transform, read off by mapping the origin and unit vectors."""
    origin = np.asarray(transform.TransformPoint((0.0, 0.0, 0.0)))
    mat = np.eye(4)
    for i in range(3):
        e = [0.0, 0.0, 0.0]
        e[i] = 1.0
        mat[:3, i] = np.asarray(transform.TransformPoint(tuple(e))) - origin
    mat[:3, 3] = origin
    return mat


def registration_method(
    iterations: int, seed: int, shrink: list[int], sigmas: list[float], sampling: float = 0.2, relaxation: float = 0.6
):
    """Mattes mutual information (32 bins, a ``sampling`` fraction of voxels, fixed ``seed``) and
    regular-step gradient descent over a ``shrink`` / ``sigmas`` (mm) pyramid; no transform set."""
    import SimpleITK as sitk

    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    # SimpleITK reads seed 0 as "seed from the wall clock": shift it to stay reproducible
    reg.SetMetricSamplingPercentage(float(sampling), int(seed) + 1)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(
        learningRate=1.0,
        minStep=1e-4,
        numberOfIterations=iterations,
        relaxationFactor=float(relaxation),
        gradientMagnitudeTolerance=1e-6,
    )
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel(shrink)
    reg.SetSmoothingSigmasPerLevel(sigmas)
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    return reg


def _rotation_search(fixed, moving, fixed_mask, seed: int):
    """Best rotation on a coarse grid (+-40 degrees about each axis, 20 degree steps) after centring:
    a head can be tilted more in the scanner than gradient descent recovers from."""
    import SimpleITK as sitk

    init = sitk.CenteredTransformInitializer(
        fixed, moving, sitk.Euler3DTransform(), sitk.CenteredTransformInitializerFilter.MOMENTS
    )
    init = sitk.Euler3DTransform(init)
    reg = registration_method(1, seed, [4], [4.0])
    step = np.radians(20.0)
    reg.SetOptimizerAsExhaustive(numberOfSteps=[2, 2, 2, 0, 0, 0], stepLength=float(step))
    reg.SetOptimizerScales([1.0] * 6)
    reg.SetMetricFixedMask(fixed_mask)
    reg.SetInitialTransform(init, inPlace=True)
    reg.Execute(fixed, moving)
    return init


def _fit(fixed, moving, fixed_mask, size_ratio: float, iterations: int, seed: int):
    """Rotation search, similarity, then affine; returns the final ITK transform (template -> scan, LPS)."""
    import SimpleITK as sitk

    euler = _rotation_search(fixed, moving, fixed_mask, seed)
    init = sitk.Similarity3DTransform()
    init.SetCenter(euler.GetCenter())
    init.SetMatrix(euler.GetMatrix())
    init.SetTranslation(euler.GetTranslation())
    init.SetScale(float(size_ratio))
    reg = registration_method(iterations, seed, [4, 2], [4.0, 2.0])
    reg.SetMetricFixedMask(fixed_mask)
    reg.SetInitialTransform(init, inPlace=True)
    reg.Execute(fixed, moving)
    affine = sitk.AffineTransform(3)
    affine.SetCenter(init.GetCenter())
    affine.SetMatrix(init.GetMatrix())
    affine.SetTranslation(init.GetTranslation())
    reg = registration_method(iterations, seed, [2, 1], [2.0, 0.0])
    reg.SetMetricFixedMask(fixed_mask)
    reg.SetInitialTransform(affine, inPlace=True)
    reg.Execute(fixed, moving)
    return affine


def _antialias(image, out_spacing: float):
    """Gaussian smoothing so that resampling to ``out_spacing`` mm does not alias."""
    import SimpleITK as sitk

    sigma = [extra_blur_mm(out_spacing, s) for s in image.GetSpacing()]
    return sitk.SmoothingRecursiveGaussian(image, sigma) if max(sigma) > 0.05 else image


def _coarse(image, spacing: float = 2.0):
    """The image on a grid of ``spacing`` mm with the same orientation (anti-aliased): the
    registration runs on the 2 mm template, so a 1 mm scan would only cost smoothing time."""
    import SimpleITK as sitk

    old = np.asarray(image.GetSpacing())
    if np.all(old >= spacing * 0.9):
        return image
    size = [int(np.ceil(n * s / spacing)) for n, s in zip(image.GetSize(), old)]
    return sitk.Resample(
        _antialias(image, spacing),
        size,
        sitk.Transform(),
        sitk.sitkLinear,
        image.GetOrigin(),
        [spacing] * 3,
        image.GetDirection(),
        0.0,
        sitk.sitkFloat32,
    )


def register_brain(
    brain: Volume, mask: np.ndarray, spacing: float, iterations: int = 100, seed: int = 0
) -> Registration:
    """Register an extracted brain (``brain`` = scan x ``mask``) to the template brain.

    Args:
        brain: the scan with everything outside the brain mask set to 0 (world frame in mm).
        mask: its brain mask (same grid).
        spacing: voxel size (mm) of the output grid on the reference field of view.
        iterations: optimiser iterations per level; seed: metric-sampling seed.
    """
    import SimpleITK as sitk

    fixed_vol, fixed_mask = template_brain(2.0)
    out_vol, out_mask = template_brain(float(spacing))
    fixed = volume_to_sitk(fixed_vol)
    moving = volume_to_sitk(brain)
    fmask = sitk.Cast(volume_to_sitk(Volume(fixed_mask.astype(np.float32), fixed_vol.affine)), sitk.sitkUInt8)
    voxel_cm3 = float(np.prod(brain.spacing))
    ratio = (mask.sum() * voxel_cm3) / (fixed_mask.sum() * 8.0)
    with single_itk_thread():
        transform = _fit(fixed, _coarse(moving), fmask, ratio ** (1 / 3), iterations, seed)
    grid = volume_to_sitk(out_vol)
    smooth = _antialias(moving, float(spacing))
    warped = sitk_to_volume(
        sitk.Resample(smooth, grid, transform, sitk.sitkLinear, 0.0, sitk.sitkFloat32),
        brain.path,
        affine=out_vol.affine,
    )
    mask_img = volume_to_sitk(Volume(mask.astype(np.float32), brain.affine))
    warped_mask = (
        sitk_to_volume(sitk.Resample(mask_img, grid, transform, sitk.sitkLinear, 0.0, sitk.sitkFloat32)).data > 0.5
    )
    matrix = lps_to_ras_matrix(_affine_matrix(transform))
    return Registration(
        volume=warped,
        mask=warped_mask,
        matrix=matrix,
        dice=dice(warped_mask, out_mask),
        similarity=smooth_correlation(warped.data, out_vol.data, out_mask),
        scale=float(abs(np.linalg.det(matrix[:3, :3])) ** (1 / 3)),
    )


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice overlap of two boolean masks (0 when both are empty)."""
    total = int(a.sum()) + int(b.sum())
    return float(2.0 * np.logical_and(a, b).sum() / total) if total else 0.0


def smooth_correlation(a: np.ndarray, b: np.ndarray, mask: np.ndarray, sigma: float = 1.0) -> float:
    """:func:`correlation` after Gaussian smoothing by ``sigma`` voxels: the template is an average
    of many brains, so one subject's fine folding should not count against the alignment."""
    from scipy import ndimage

    return correlation(ndimage.gaussian_filter(a, sigma), ndimage.gaussian_filter(b, sigma), mask)


def correlation(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """Pearson correlation of two images inside ``mask`` (nan when either is constant there)."""
    x, y = a[mask].astype(np.float64), b[mask].astype(np.float64)
    if x.std() == 0 or y.std() == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


__all__ = ["Registration", "register_brain", "template_brain", "dice", "correlation", "RAS_TO_LPS"]
