"""params.yaml section `shaw`: heteroscedastic reconstruction uncertainty (Shaw et al., paper 3)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from mriqa_lib.validation import Section, SplitFractions, step_trainers, trainer_field

ARTEFACTS = ("motion", "ghosting", "spike", "rician_noise", "regional_noise")


class ShawParams(Section):
    """Settings of the `shaw` method (embedded default; see profiles/shaw.paper.yaml).

    Real data (ADNI, see :mod:`mriqa_lib.data.adni`): ``adni_root`` holds the LONI NIfTI download,
    ``adni_qc_table`` is ADNI's MRIQUALITY.csv or Mayo QC table (the scans it passes are prepared
    and split 80/10/10 for training), ``adni_pairs_table`` lists test-retest pairs (one scan of each
    labelled "containing artefacts"), ``adni_gm_dir`` the optional GM maps. ``null`` uses the
    embedded cohort instead.
    """

    trainer: step_trainers("recon", "multitask") = trainer_field("recon", "multitask")
    seed: int = Field(0, ge=0)
    # --- data ------------------------------------------------------------------------------------
    adni_root: str | None = Field(
        None, description="LONI download folder ADNI/<PTID>/<description>/<date>/I<image>/*.nii (null = embedded)"
    )
    adni_qc_table: str | None = Field(
        None,
        description="ADNI MRIQUALITY.csv (RID, LONIUID, PASS) or the Mayo ADIR QC table "
        "(RID, loni_image, series_quality)",
    )
    adni_pairs_table: str | None = Field(
        None, description="CSV/TSV: subject_id (PTID or RID), clean_image_id, artefact_image_id (I<id> or S<id>)"
    )
    adni_gm_dir: str | None = Field(
        None,
        description="folder with each LONI file's native-space GM map (SPM12 c1<file>.nii or FSL FAST "
        "<file>_pve_1.nii.gz); null = the ICBM152 GM map as a template stand-in (flagged in the metrics)",
    )
    adni_prepared_dir: str = Field(
        "data/prepared/adni", description="cache of the ADNI scans after the preparation chain (deepbet, registration)"
    )
    split: SplitFractions = Field((0.8, 0.1, 0.1), description="train/val/test fractions of the clean scans")
    grid_mm: float = Field(
        4.0,
        ge=2.0,
        le=8.0,
        description="working voxel size: the 2 mm reference grid "
        "block-averaged by grid_mm/2 (must be a multiple of 2 mm)",
    )
    # --- simulated artefacts for training ----------------------------------------------------------
    artefacts: list[Literal["motion", "ghosting", "spike", "rician_noise", "regional_noise"]] = Field(
        default_factory=lambda: list(ARTEFACTS[:4]), description="k-space artefacts of the training set"
    )
    artefact_weights: list[float] | None = Field(
        default_factory=lambda: [3.0, 1.0, 1.0, 2.0],
        description="relative frequency of each artefact (same length "
        "as artefacts; null = equal); motion is subtle on a 4 mm grid and noise drives experiment 1, so both are "
        "drawn more often",
    )
    multitask_extra_per_volume: int = Field(
        0,
        ge=0,
        le=1000,
        description="extra regional-noise copies of each "
        "training scan, seen by the multi-task model only (local noise)",
    )
    corruptions_per_volume: int = Field(3, ge=1, le=1000, description="corrupted copies of each training scan")
    clean_fraction: float = Field(0.15, ge=0, le=1, description="fraction of training samples left uncorrupted")
    motion_rms_mm: tuple[float, float] = Field((1.0, 6.0), description="motion: Jenkinson RMS range (mm)")
    ghosting_range: tuple[float, float] = Field((0.2, 0.9), description="ghosting: intensity range (0-1)")
    spike_range: tuple[float, float] = Field((0.05, 0.6), description="spike: amplitude range (fraction of max|k|)")
    noise_snr_db: tuple[float, float] = Field(
        (-12.0, 25.0), description="Rician noise (global or regional): SNR range (dB)"
    )
    # --- network and training ------------------------------------------------------------------------
    features: list[int] = Field(
        default_factory=lambda: [8, 16, 32, 64],
        min_length=2,
        max_length=7,
        description="U-Net channels per level (nnU-Net: 32, 64, 128, 256, 320)",
    )
    norm: Literal["none", "instance"] = Field(
        "none",
        description="normalisation in the U-Net blocks (nnU-Net: instance; none keeps the absolute noise "
        "level visible to the sigma head)",
    )
    patch: int = Field(24, ge=8, le=512, description="training patch side (voxels, cubic)")
    whole_volume: bool = Field(False, description="train on whole volumes instead of patches")
    iterations: int = Field(400, ge=1, le=10_000_000, description="optimiser steps of the reconstruction model")
    multitask_iterations: int = Field(800, ge=1, le=10_000_000, description="optimiser steps of the multi-task model")
    multitask_from_recon: bool = Field(
        False,
        description="start the multi-task model's encoder and reconstruction "
        "decoder from the trained reconstruction model (fewer steps, but the shared "
        "encoder then carries the noise features into the segmentation sigma)",
    )
    batch_size: int = Field(1, ge=1, le=256)
    lr: float = Field(1e-3, gt=0, le=1, description="Adam learning rate")
    lr_schedule: Literal["cosine", "constant"] = Field(
        "cosine", description="cosine decay of the learning rate over the run (paper: constant)"
    )
    grad_clip: float = Field(
        1.0,
        ge=0,
        le=1e6,
        description="gradient-norm clipping (0 = off): one heavy-noise "
        "patch under a confident sigma otherwise gives a huge Eq. 1 gradient",
    )
    logvar_range: tuple[float, float] = Field((-12.0, 6.0), description="log-variance squashed into this range")
    logvar_init: float = Field(
        -3.0,
        ge=-40,
        le=40,
        description="initial log-variance (sigma 0.22, about the residual of a noisy training input): "
        "starting confident makes Eq. 1's first noisy patches blow up the gradient",
    )
    nll_beta: float = Field(
        1.0,
        ge=0,
        le=1,
        description="beta-NLL weight sigma^(2 beta) (Seitzer et al. 2022; 0 = Eq. 1 as published): with "
        "Eq. 1 a few hundred CPU steps learn no sigma at all, since exactly clean voxels take all the weight",
    )
    val_every: int = Field(100, ge=1, le=1_000_000, description="validate every n steps")
    checkpoint: Literal["last", "best_val"] = Field(
        "last",
        description="weights kept: the last step's, or those of the validation with the lowest loss "
        "(a few noisy validation volumes make the last the steadier choice on the embedded cohort)",
    )
    # --- experiments ---------------------------------------------------------------------------------
    snr_levels: int = Field(41, ge=3, le=1000, description="experiment 1: number of Rician noise levels")
    snr_high_db: float = Field(10.0, ge=-40, le=60, description="experiment 1: highest SNR (dB)")
    snr_low_db: float = Field(-10.0, ge=-40, le=60, description="experiment 1: lowest SNR (dB)")
    n_pairs: int = Field(
        20, ge=1, le=100000, description="experiment 2 (embedded): test-retest pairs from held-out scans"
    )
    pair_rotation_deg: float = Field(2.0, ge=0, le=30, description="embedded pairs: max misalignment rotation (deg)")
    pair_translation_mm: float = Field(
        3.0, ge=0, le=50, description="embedded pairs: max misalignment translation (mm)"
    )
    pair_severity_scale: tuple[float, float] = Field(
        (0.3, 1.0),
        description="embedded pairs: artefact severity as a fraction of the training range (from its low end)",
    )
    regional_snr_db: float = Field(0.0, ge=-40, le=60, description="experiment 3: SNR of the partial noise (dB)")
    regional_box_fraction: float = Field(1 / 3, gt=0, le=1, description="experiment 3: noisy box side / axis length")
    max_test: int = Field(0, ge=0, le=100000, description="cap on test volumes per experiment (0 = all)")
    map_cases: int = Field(3, ge=0, le=100000, description="cases whose maps are written as NIfTI per experiment")
    fg_fraction: float = Field(0.1, gt=0, lt=1, description="foreground = clean > fg_fraction * max (sigma statistics)")

    @field_validator("grid_mm")
    @classmethod
    def _grid(cls, v: float) -> float:
        if abs(v / 2 - round(v / 2)) > 1e-6:
            raise ValueError("grid_mm must be a multiple of the 2 mm reference spacing (2, 4, 6, 8)")
        return v

    @field_validator("features")
    @classmethod
    def _features(cls, v: list[int]) -> list[int]:
        if any(c < 1 or c > 1024 for c in v):
            raise ValueError("each U-Net level needs 1-1024 channels")
        return v

    @field_validator(
        "motion_rms_mm", "ghosting_range", "spike_range", "noise_snr_db", "logvar_range", "pair_severity_scale"
    )
    @classmethod
    def _ordered(cls, v: tuple[float, float]) -> tuple[float, float]:
        if v[0] > v[1]:
            raise ValueError("range must be (low, high) with low <= high")
        return v

    @model_validator(mode="after")
    def _weights(self) -> ShawParams:
        w = self.artefact_weights
        if w is not None and (len(w) != len(self.artefacts) or any(x < 0 for x in w) or sum(w) <= 0):
            raise ValueError("artefact_weights needs one weight >= 0 per artefact (not all zero)")
        return self

    @model_validator(mode="after")
    def _adni(self) -> ShawParams:
        if (self.adni_pairs_table or self.adni_qc_table) and not self.adni_root:
            raise ValueError("adni_qc_table / adni_pairs_table need adni_root")
        if self.adni_root and not self.adni_qc_table:
            raise ValueError("adni_root needs adni_qc_table (the artefact-free flag selects training scans)")
        return self
