"""Settings of the real-scan preparation chain (``preparation:`` in params.yaml)."""

from __future__ import annotations

from pydantic import Field, model_validator

from mriqa_lib.validation import Section


class PreparationParams(Section):
    """Brain extraction, registration to the template, and the QC limits that refuse an input.

    The limits are generous on purpose: they catch inputs that are not a head or a preparation
    that failed, not unusual anatomy.
    """

    spacing_mm: float = Field(
        2.0,
        ge=0.5,
        le=4.0,
        description="voxel size of the prepared volume on the "
        "reference field of view (2 mm = the 96 x 112 x 96 grid every embedded method uses)",
    )
    passthrough_inside: float = Field(
        0.97,
        gt=0,
        le=1,
        description="an input counts as already in the "
        "reference space (used as is) when at least this fraction of its "
        "foreground lies in the dilated template brain ...",
    )
    passthrough_dice: float = Field(
        0.5, gt=0, le=1, description="... and its foreground overlaps the template brain with at least this Dice"
    )
    min_fov_mm: float = Field(100.0, ge=0, description="smallest field of view (mm, each axis) taken for a head")
    brain_cm3: tuple[float, float] = Field(
        (800.0, 2400.0),
        description="plausible adult brain-mask volume (cm3; deepbet's mask holds the brain and its CSF)",
    )
    max_cut_cm2: float = Field(
        3.0, ge=0, description="brain-mask area allowed on a field-of-view face before the brain counts as cut (cm2)"
    )
    max_cut_inferior_cm2: float = Field(
        12.0, ge=0, description="the same for the inferior face, which the brain stem crosses in many scans (cm2)"
    )
    min_dice: float = Field(
        0.85,
        gt=0,
        le=1,
        description="Dice of the registered brain mask with the template "
        "brain below which the registration counts as failed",
    )
    min_similarity: float = Field(
        0.5,
        ge=-1,
        le=1,
        description="correlation of the registered brain with the template brain (both smoothed by "
        "one voxel) below which the registration counts as failed",
    )
    scale_range: tuple[float, float] = Field(
        (0.75, 1.35),
        description="plausible linear size of the brain "
        "relative to the template (cube root of the affine's determinant)",
    )
    iterations: int = Field(100, ge=1, le=2000, description="optimiser iterations per registration level")
    seed: int = Field(0, ge=0, description="metric-sampling seed of the registration")

    @model_validator(mode="after")
    def _ranges(self) -> PreparationParams:
        for name in ("brain_cm3", "scale_range"):
            lo, hi = getattr(self, name)
            if not 0 < lo < hi:
                raise ValueError(f"{name} must be two increasing positive numbers, got {[lo, hi]}")
        return self
