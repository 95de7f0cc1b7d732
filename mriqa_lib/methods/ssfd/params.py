"""params.yaml section `ssfd`: SSFD self-supervised feature distance (Adamson et al., paper 4)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from mriqa_lib.validation import Section, step_trainers, trainer_field


class SsfdParams(Section):
    """Settings of the `ssfd` method (embedded default; see profiles/ssfd.paper.yaml)."""

    trainer: step_trainers("inpaint", "recon") = trainer_field("inpaint", "recon")
    seed: int = Field(0, ge=0)

    # --- data ---------------------------------------------------------------------------------
    fastmri_dir: str | None = Field(
        None,
        description="fastMRI brain folder as unpacked: multicoil_train/ (split into train/val by "
        "patient_id) and multicoil_val/ (the test set, as paper 4); multicoil_test/ and challenge files are "
        "skipped; None = embedded cohort written in fastMRI's layout",
    )
    target: Literal["rss", "esc", "jsense"] = Field(
        "rss",
        description="ground truth: RSS of the fully sampled k-space, the file's "
        "reconstruction_esc, or a JSENSE coil combination (needs sigpy)",
    )
    crop: tuple[int, int] | None = Field(
        None, description="centre crop (rows, cols) of every image; None = the header's reconSpace"
    )
    max_slices_per_file: int = Field(0, ge=0, le=1000, description="0 = all slices of a file")
    slices_per_subject: int = Field(8, ge=1, le=96, description="embedded: axial slices per subject")
    slice_step: int = Field(3, ge=1, le=10, description="embedded: step between those slices (voxels)")
    n_coils: int = Field(4, ge=1, le=64, description="embedded: simulated receive coils")
    acceleration: float = Field(4.0, ge=1.0, le=16.0)
    center_fraction: float = Field(0.08, gt=0.0, le=1.0)
    mask_type: Literal["equispaced", "random"] = "equispaced"

    # --- pretext: inpainting U-Net --------------------------------------------------------------
    patch_size: int = Field(16, ge=2, le=128, description="side of the zero-filled square patches (pixels)")
    patch_fraction: float = Field(0.25, gt=0.0, lt=0.6, description="image area covered by patches")
    encoder_channels: list[int] = Field(
        default_factory=lambda: [8, 16, 32, 64, 128], description="channels of the 5 encoder levels"
    )
    group_norm_groups: int = Field(4, ge=1, le=64)
    pretext_epochs: int = Field(5, ge=1, le=1000)
    pretext_lr: float = Field(3e-3, gt=0.0, le=1.0)
    pretext_batch_size: int = Field(16, ge=1, le=1024)

    # --- supervised reconstruction U-Net ---------------------------------------------------------
    recon_channels: list[int] = Field(default_factory=lambda: [8, 16, 32])
    recon_epochs: int = Field(4, ge=1, le=1000)
    recon_lr: float = Field(3e-3, gt=0.0, le=1.0)
    recon_batch_size: int = Field(16, ge=1, le=1024)

    # --- metric and experiments ---------------------------------------------------------------
    layer: int = Field(4, ge=1, le=5, description="encoder level whose features SSFD compares")
    layers_compared: list[int] = Field(default_factory=lambda: [1, 2, 3, 4])
    shift_px: list[float] = Field(default_factory=lambda: [0, 0.25, 0.5, 0.75, 1.0, 1.25])
    blur_sigma_px: list[float] = Field(default_factory=lambda: [0, 0.4, 0.8, 1.2, 1.6, 2.0])
    noise_std: list[float] = Field(
        default_factory=lambda: [0, 0.01, 0.02, 0.03, 0.04, 0.05],
        description="Gaussian noise std relative to the image range",
    )
    n_boot: int = Field(1000, ge=100, le=100000)
    vgg_weights: str | None = Field(
        None,
        description="VGG-16 state dict (torchvision key names "
        "features.N.weight/bias) for the VGG perceptual baseline; None = not computed",
    )

    @field_validator("encoder_channels")
    @classmethod
    def _five_levels(cls, v: list[int]) -> list[int]:
        if len(v) != 5 or any(c < 1 or c > 4096 for c in v):
            raise ValueError("encoder_channels must be 5 numbers in 1-4096 (one per encoder level)")
        return v

    @field_validator("recon_channels")
    @classmethod
    def _recon(cls, v: list[int]) -> list[int]:
        if not 2 <= len(v) <= 6 or any(c < 1 or c > 4096 for c in v):
            raise ValueError("recon_channels must be 2-6 numbers in 1-4096")
        return v

    @field_validator("layers_compared")
    @classmethod
    def _layers(cls, v: list[int]) -> list[int]:
        if not v or any(l < 1 or l > 5 for l in v):
            raise ValueError("layers_compared must list encoder levels 1-5")
        return v

    @field_validator("shift_px", "blur_sigma_px", "noise_std")
    @classmethod
    def _levels(cls, v: list[float]) -> list[float]:
        if len(v) < 3 or any(x < 0 or x > 100 for x in v) or list(v) != sorted(v):
            raise ValueError("perturbation levels must be >= 3 increasing numbers in 0-100")
        return v

    @model_validator(mode="after")
    def _groups(self) -> SsfdParams:
        bad = [c for c in self.encoder_channels if c % self.group_norm_groups]
        if bad:
            raise ValueError(
                f"group_norm_groups={self.group_norm_groups} must divide every encoder channel count (not {bad})"
            )
        return self
