"""One preparation chain for any T1w input: what ``mriqa score`` and the real-data adapters run
before a method sees a scan.

canonical (RAS) orientation -> field-of-view and image-structure checks -> brain extraction (deepbet) -> brain-volume
and cut-brain checks -> affine registration to the ICBM152 2009a brain (SimpleITK) -> registration
check -> the brain on the reference field of view. Each method then resamples to its own grid and
normalises intensities as it always has. An input already in the reference space (brain only,
in template space, like the embedded cohort) is returned unchanged.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mriqa_lib.io import Volume

from . import qc
from .params import PreparationParams

RECORD_COLUMNS = (
    "prep",
    "prep_brain_cm3",
    "prep_similarity",
    "prep_dice",
    "prep_scale",
    "prep_transform",
    "prep_seconds",
)


class PrepareError(ValueError):
    """The input was refused; the message names the reason. ``record`` holds what was measured."""

    def __init__(self, message: str, record: dict[str, Any], mask: Volume | None = None) -> None:
        super().__init__(message)
        self.record, self.mask = record, mask


@dataclass
class Prepared:
    """A prepared scan: the volume the methods score, the native brain mask, and the record."""

    volume: Volume
    mask: Volume | None = None  # deepbet's mask on the canonical input grid (None when passed through)
    record: dict[str, Any] = field(default_factory=dict)


def canonical(volume: Volume) -> Volume:
    """The volume with its array axes reordered/flipped to the closest RAS orientation (no resampling)."""
    import nibabel as nib

    img = nib.as_closest_canonical(nib.Nifti1Image(np.asarray(volume.data, np.float32), volume.affine))
    return Volume(np.asarray(img.dataobj, dtype=np.float32), np.asarray(img.affine, np.float64), volume.path)


def in_reference_space(volume: Volume, p: PreparationParams) -> tuple[bool, float]:
    """Whether the volume is already a brain-only image in template space; returns (verdict, Dice).

    On the 2 mm reference grid: its field of view must hold the whole template brain, at least
    ``p.passthrough_inside`` of its foreground must lie within 10 mm of the template brain, and the
    foreground must overlap the template brain with Dice >= ``p.passthrough_dice``. The foreground
    is the image smoothed by 4 mm above its Otsu threshold: that separates a skull-stripped brain
    from even a strong noise floor, and keeps the scalp and neck of a whole head.
    """
    from scipy import ndimage

    from mriqa_lib.data.preprocess import conform, smooth_foreground

    from .register import dice, template_brain

    tpl, tmask = template_brain(2.0)
    seen = conform(Volume(np.ones(volume.shape, np.float32), volume.affine), tpl.affine, tpl.shape).data > 0.5
    if (tmask & ~seen).any():
        return False, 0.0
    fg = smooth_foreground(conform(volume, tpl.affine, tpl.shape).data, 2.0)
    if not fg.any():
        return False, 0.0
    near = ndimage.binary_dilation(tmask, iterations=5)
    overlap = dice(fg, tmask)
    return bool((fg & near).sum() / fg.sum() >= p.passthrough_inside and overlap >= p.passthrough_dice), overlap


def _format_matrix(matrix: np.ndarray) -> str:
    return "; ".join(" ".join(f"{v:.4g}" for v in row) for row in matrix[:3])


def prepare_scan(volume: Volume, p: PreparationParams | None = None) -> Prepared:
    """Prepare one scan for the methods (see the module docstring).

    Returns:
        :class:`Prepared`; ``record`` holds the TSV columns ``prep`` ("reference space" or
        "registered"), ``prep_brain_cm3``, ``prep_similarity``, ``prep_dice``, ``prep_scale``,
        ``prep_transform`` (3 x 4 RAS matrix, template mm -> scan mm) and ``prep_seconds``.

    Raises:
        PrepareError: not a head, implausible brain, cut brain, or a failed registration; its
            message names the reason and its ``record`` holds what was measured.
    """
    p = p or PreparationParams()
    start = time.perf_counter()
    record: dict[str, Any] = {c: float("nan") for c in RECORD_COLUMNS}
    record.update(prep="failed", prep_transform="")

    def done(**values: Any) -> dict[str, Any]:
        record.update(values, prep_seconds=round(time.perf_counter() - start, 3))
        return record

    passthrough, overlap = in_reference_space(volume, p)
    if passthrough:
        return Prepared(volume, None, done(prep="reference space", prep_dice=round(overlap, 4)))
    native = canonical(volume)
    _refuse_if(qc.field_of_view(native, p.min_fov_mm), done)
    _refuse_if(qc.spatial_structure(native), done)
    mask = _extract(native, done)
    cm3 = float(mask.sum() * np.prod(native.spacing) / 1000.0)
    done(prep_brain_cm3=round(cm3, 1))
    mask_vol = Volume(mask.astype(np.uint8), native.affine, volume.path)
    _refuse_if(qc.brain_volume(cm3, p.brain_cm3), done, mask_vol)
    _refuse_if(qc.brain_cut(mask, native.spacing, p.max_cut_cm2, p.max_cut_inferior_cm2), done, mask_vol)
    reg = _register(native, mask, p, done, mask_vol)
    done(
        prep_similarity=round(reg.similarity, 4),
        prep_dice=round(reg.dice, 4),
        prep_scale=round(reg.scale, 4),
        prep_transform=_format_matrix(reg.matrix),
    )
    _refuse_if(qc.registration(reg.dice, reg.similarity, reg.scale, p), done, mask_vol)
    return Prepared(reg.volume, mask_vol, done(prep="registered"))


def _refuse_if(reason: str | None, done, mask: Volume | None = None) -> None:
    if reason:
        raise PrepareError(reason, done(), mask)


def _extract(native: Volume, done) -> np.ndarray:
    from .brain import BrainExtractionError, brain_mask

    try:
        return brain_mask(native)
    except BrainExtractionError as exc:
        raise PrepareError(f"not a head: {exc}", done()) from None


def _register(native: Volume, mask: np.ndarray, p: PreparationParams, done, mask_vol: Volume):
    from .register import register_brain

    brain = Volume(np.where(mask, native.data, 0.0).astype(np.float32), native.affine, native.path)
    try:
        return register_brain(brain, mask, p.spacing_mm, p.iterations, p.seed)
    except RuntimeError as exc:  # ITK gives up (e.g. too few samples inside the masks)
        raise PrepareError(
            f"registration to the template did not converge ({str(exc).strip().splitlines()[-1]})", done(), mask_vol
        ) from None
