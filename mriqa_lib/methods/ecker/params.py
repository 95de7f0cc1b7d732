"""params.yaml section `ecker`: SimCLR zero-shot HQ/LQ classification (Ecker et al., paper 1)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from mriqa_lib.validation import Section, step_trainers, trainer_field


class EckerParams(Section):
    """Settings of the `ecker` method (embedded default; see profiles/ecker.paper.yaml).

    Real data: ``ukb_dir`` (a folder per subject holding ``wat.nii.gz``, converted from the UK
    Biobank field 20201 zips by ``mriqa convert ukb-dixon``) with ``ukb_table`` (eid, sex, height,
    weight: a basket table's field ids or literal names) trains the encoder and gives the references;
    ``nako_dir`` (``<id>/dixon/dicom_3D_GRE_TRA_{bh,fb_deep}_W_COMPOSED.nii``, breath-hold and deep
    free-breathing) is the NAKO-IQA test. ``null`` uses the embedded cohort instead (2-D axial slices; respiratory
    motion simulated for the NAKO-like set).
    """

    trainer: step_trainers("simclr") = trainer_field("simclr")
    seed: int = Field(0, ge=0)
    # --- data -----------------------------------------------------------------------------
    ukb_dir: str | None = Field(
        None,
        description="UK Biobank Dixon root: <dir>/<eid>/wat.nii.gz (`mriqa convert ukb-dixon`; null = embedded)",
    )
    ukb_table: str | None = Field(
        None,
        description="TSV/CSV with eid, sex, height (cm), weight (kg), or UKB fields 31-0.0, 12144-2.0, 21002-2.0",
    )
    nako_dir: str | None = Field(
        None,
        description="NAKO-IQA root: <dir>/<id>/dixon/dicom_3D_GRE_TRA_{bh,fb_deep}_W_COMPOSED.nii (null = embedded)",
    )
    nako_table: str | None = Field(
        None, description="optional TSV/CSV with id, sex, height, weight of NAKO-IQA subjects (none: all references)"
    )
    n_test_subjects: int = Field(
        20, ge=2, le=100000, description="held-out subjects (never trained on, never references)"
    )
    n_slices: int = Field(12, ge=1, le=256, description="centre axial slices per volume")
    slice_step: int = Field(3, ge=1, le=16, description="every n-th axial slice")
    img_size: int = Field(
        96, ge=16, le=1024, description="prepared slice size (px, square): stored, and the inference input"
    )
    train_size: int = Field(
        96,
        ge=16,
        le=1024,
        description="output size of the random resized crop (px): the training input; set it to "
        "img_size so that a scale-1 crop is the inference input (no train/test scale gap)",
    )
    crop: float = Field(
        0.86, gt=0.1, le=1.0, description="centre crop of the square-padded slice before resizing (fraction)"
    )
    # --- simulated artifacts ------------------------------------------------------------------
    noise_sigma: float = Field(0.25, ge=0, le=5, description="Gaussian noise sigma on [0,1]-scaled images")
    motion_degrees: float = Field(3.0, ge=0, le=45, description="rigid motion: max |rotation| per pose (deg)")
    motion_translation_mm: float = Field(6.0, ge=0, le=100, description="rigid motion: max |translation| per pose (mm)")
    motion_transforms: int = Field(4, ge=1, le=32, description="rigid motion: number of poses")
    resp_amplitude_mm: float = Field(8.0, ge=0, le=100, description="free breathing: peak displacement (mm)")
    resp_period_lines: float = Field(12.0, gt=1, le=10000, description="free breathing: period in phase-encoding lines")
    nako_lq: Literal["motion", "noise", "respiratory"] = Field(
        "motion", description="artifact of the LQ references for the NAKO set"
    )
    # --- tests ----------------------------------------------------------------------------------
    n_test_motion: int = Field(240, ge=2, le=1000000, description="simulated-motion test cases (half HQ, half LQ)")
    n_test_noise: int = Field(240, ge=2, le=1000000, description="simulated-noise test cases (half HQ, half LQ)")
    n_refs: int = Field(10, ge=1, le=1000, description="HQ (and as many LQ) references matched per test subject")
    match_sex: bool = True
    match_site: bool = Field(
        True,
        description="references only from the test scan's own site (acquisition "
        "protocol) when the subject table has a site column and the pool has that site; "
        "sex, height and weight then choose among them. UK Biobank is one protocol (paper: off)",
    )
    continuous_levels: list[float] = Field(
        default_factory=lambda: [0.0, 0.5, 1.0, 2.0, 3.0, 4.0, 6.0],
        description="continuous test: rotation (deg) = translation (mm) ranges",
    )
    continuous_cases: int = Field(
        3, ge=1, le=10000, description="continuous test: slices per subject (one motion per subject and level)"
    )
    # --- network and training -----------------------------------------------------------------
    width: float = Field(0.25, gt=0, le=4, description="ResNet18 widen factor (1 = 64..512 channels)")
    conv1_stride: int = Field(2, ge=1, le=4)
    proj_dim: int = Field(128, ge=2, le=4096)
    temperature: float = Field(0.1, gt=0, le=10)
    crop_scale: tuple[float, float] = Field((0.2, 1.0), description="random resized crop area fraction")
    crop_ratio: tuple[float, float] = Field(
        (0.75, 1.3333333), description="random resized crop aspect ratio (3/4 to 4/3)"
    )
    epochs: int = Field(10, ge=1, le=10000)
    warmup_epochs: int = Field(1, ge=0, le=1000)
    batch_size: int = Field(32, ge=2, le=65536)
    lr: float = Field(1e-3, gt=0, le=10)
    weight_decay: float = Field(1e-6, ge=0, le=1)

    @field_validator("crop_scale", "crop_ratio")
    @classmethod
    def _range(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not (0 < v[0] <= v[1]):
            raise ValueError("need 0 < low <= high")
        return v

    @field_validator("continuous_levels")
    @classmethod
    def _levels(cls, v: list[float]) -> list[float]:
        if len(v) < 2 or any(x < 0 or x > 45 for x in v):
            raise ValueError("need at least 2 levels, each within 0-45")
        return v

    @model_validator(mode="after")
    def _pairs(self) -> EckerParams:
        if (self.ukb_dir is None) != (self.ukb_table is None):
            raise ValueError("ukb_dir and ukb_table must be set together")
        if self.warmup_epochs >= self.epochs and self.epochs > 1:
            raise ValueError("warmup_epochs must be < epochs")
        return self
