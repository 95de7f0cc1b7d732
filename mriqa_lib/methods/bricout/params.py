"""params.yaml section `bricout`: synthetic-motion SFCN pretraining and QC transfer (Bricout et al., paper 5).

The defaults are the embedded CPU setting (4 mm grid, narrow SFCN, few samples); the published
settings are in ``profiles/bricout.paper.yaml``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from mriqa_lib.validation import Fractions4, Section, SplitFractions, step_trainers, trainer_field


class DataParams(Section):
    """Where the real data are (null = embedded cohort) and how they are split."""

    ampscz_caps: str | None = Field(None, description="Clinica t1-linear CAPS folder of AMP SCZ (null = embedded)")
    ampscz_qc: str | list[str] | None = Field(
        None,
        description="the authors' AMPSCZ_scores.csv (sub_id_gs, ses_id_gs, score, comment), or a list of "
        "tables read together: their pretrain.csv and finetune.csv scan lists (same columns + data, the "
        "t1-linear file used, and group, their train/val/test split, which is then kept)",
    )
    hcpep_caps: str | None = Field(None, description="Clinica t1-linear CAPS folder of HCPEP (synthesis only)")
    hcpep_qc: str | None = Field(
        None, description="HCPEP sheet hcpep_scores.csv (Date, Subject ID <id>_MR<n>, T1w, T1w comment, Center)"
    )
    t1_pattern: str = Field("*_T1w.nii.gz", description="glob of the t1-linear image inside ses-*/t1_linear/")
    motion_regex: str = Field(
        "motion|movement|moving",
        description="QC comments matching this (case-insensitive) exclude a scan from motion synthesis",
    )
    qc_sites: list[str] | None = Field(None, description="sites reserved for QC transfer (null: n_qc_sites drawn)")
    n_qc_sites: int = Field(2, ge=1, le=100, description="number of QC sites when qc_sites is null")
    synth_split: SplitFractions = Field(
        (0.7, 0.15, 0.15), description="subject-wise train/val/test fractions of the synthesis volumes"
    )
    qc_split: SplitFractions = Field(
        (0.4, 0.2, 0.4), description="subject-wise train/val/test fractions of the QC volumes"
    )
    grid_mm: float = Field(4.0, ge=0.5, le=8.0, description="isotropic voxel size of the network input (mm)")
    crop: tuple[int, int, int] = Field((40, 48, 40), description="network input shape (voxels) after the centre crop")

    @field_validator("crop")
    @classmethod
    def _crop(cls, v: tuple[int, int, int]) -> tuple[int, int, int]:
        if any(n < 8 or n > 512 for n in v):
            raise ValueError("each crop size must be within 8-512 voxels")
        return v


class EmbeddedQCParams(Section):
    """Embedded stand-in for the manual QC scores: hidden per-session degradation + rater noise."""

    sessions: int = Field(8, ge=1, le=100, description="degraded sessions per subject of the QC sites")
    score_fractions: Fractions4 = Field(
        (0.02, 0.04, 0.37, 0.57), description="target fractions of scores 1, 2, 3, 4 (paper Table 2 totals)"
    )
    rater_noise: float = Field(
        0.25, ge=0, le=5, description="rater noise, std relative to the std of the hidden badness"
    )
    artifact_probs: Fractions4 = Field(
        (0.55, 0.2, 0.15, 0.1),
        description="probabilities that the dominant degradation is motion, noise, ghosting, bias",
    )
    max_motion_mm: float = Field(3.0, gt=0, le=10, description="largest hidden motion RMS (mm)")


class MotionParams(Section):
    """Synthetic rigid motion (public-code recipe; severity = Jenkinson RMS deviation, mm)."""

    target_range: tuple[float, float] = Field((0.05, 4.0), description="target RMS ~ U(low, high) mm (public code)")
    clean_fraction: float = Field(0.1, ge=0, le=1, description="fraction of samples left without motion")
    clean_label: tuple[float, float] = Field((0.0, 0.05), description="RMS label of clean samples ~ U(low, high) mm")
    tolerance_mm: float = Field(0.02, gt=0, le=1, description="rejection-sampling tolerance (public code)")
    rms_definition: Literal["paper", "code"] = Field(
        "paper",
        description="paper: mean RMS of the poses from identity (R 80 mm); code: mean RMS between "
        "successive poses (R 82.5 mm)",
    )
    num_transforms: tuple[int, int] = Field((2, 8), description="number of poses ~ U{low..high}")
    acquisition_mm: tuple[float, float] | None = Field(
        None,
        description="voxel size (mm) of the acquisition the motion happens in, ~ log-U(low, high) per "
        "sample; a coarser grid sees only the central part of its k-space (motion.window_times). "
        "null: motion on the grid itself (paper: on its 1 mm grid)",
    )
    backend: Literal["fast", "torchio"] = Field(
        "fast",
        description="torchio: TorchIO Motion / RandomElasticDeformation (as the paper); fast: the same "
        "models batched in torch / scipy (CPU default)",
    )

    @model_validator(mode="after")
    def _ranges(self) -> MotionParams:
        if not 0 < self.target_range[0] < self.target_range[1]:
            raise ValueError("target_range must be 0 < low < high")
        if not 0 <= self.clean_label[0] <= self.clean_label[1]:
            raise ValueError("clean_label must be 0 <= low <= high")
        if not 1 <= self.num_transforms[0] <= self.num_transforms[1] <= 32:
            raise ValueError("num_transforms must be 1 <= low <= high <= 32")
        if self.acquisition_mm is not None and not 0 < self.acquisition_mm[0] <= self.acquisition_mm[1]:
            raise ValueError("acquisition_mm must be 0 < low <= high, or null")
        return self


class AugmentParams(Section):
    """The other random transforms of the P5 pipeline (the paper does not publish their magnitudes:
    TorchIO's defaults, halved here for the 4 mm grid, except the probabilities and control points)."""

    elastic_p: float = Field(1.0, ge=0, le=1, description="probability of the elastic deformation")
    elastic_control_points: int = Field(
        7, ge=5, le=20, description="B-spline control points per axis (TorchIO default)"
    )
    elastic_max_displacement_mm: float = Field(
        4.0, ge=0, le=30, description="max displacement (mm; TorchIO default 7.5, halved for the 4 mm grid)"
    )
    bias_coefficients: float = Field(0.3, ge=0, le=2, description="bias-field max coefficient (TorchIO default 0.5)")
    gamma_log: float = Field(
        0.2, ge=0, le=2, description="|log gamma| range of the contrast change (TorchIO default 0.3)"
    )
    flip_p: float = Field(0.5, ge=0, le=1, description="probability of a sagittal (left-right) flip")
    scale_range: float = Field(
        0.05, ge=0, le=0.5, description="isotropic scaling ~ U(1 - s, 1 + s) (TorchIO default 0.1)"
    )
    corrupt_p: float = Field(1.0, ge=0, le=1, description="probability of the bias field + gamma step")
    intensity_max: tuple[float, float] = Field(
        (1.0, 1.0),
        description="after the crop, the normalised volume (foreground 99.5th percentile at 1) is "
        "multiplied by U(low, high) (the authors rescale the maximum to U(0.9, 1.1))",
    )
    order: Literal["motion_first", "spatial_first", "authors"] = Field(
        "spatial_first",
        description="motion_first: motion, elastic, flip, scaling, bias, gamma (the paper's "
        "listing order); spatial_first: elastic, flip, scaling before the motion, so that the interpolation "
        "blur does not wash out the k-space artifact on a coarse grid); authors: flip, elastic, scaling, "
        "motion, bias + gamma, crop, intensity scaling (the authors' generate.py)",
    )

    @model_validator(mode="after")
    def _intensity(self) -> AugmentParams:
        if not 0 < self.intensity_max[0] <= self.intensity_max[1]:
            raise ValueError("intensity_max must be 0 < low <= high")
        return self


class ModelParams(Section):
    """SFCN width and regression bins."""

    channels: list[int] = Field(
        default_factory=lambda: [4, 8, 16, 32],
        description="output channels of the pooled conv blocks (paper 32-64-128-256-256)",
    )
    latent: int = Field(16, ge=1, le=1024, description="channels of the 1x1x1 latent block (paper 64)")
    n_bins: int = Field(50, ge=2, le=1000, description="regression bins (paper 50)")
    bin_range: tuple[float, float] = Field((-0.8, 4.8), description="range covered by the bins, mm (paper)")
    sigma: float = Field(0.168, gt=0, le=5, description="std of the Gaussian soft label, mm (paper)")
    dropout: float = Field(0.1, ge=0, lt=1, description="dropout before the bin classifier (SFCN: 0.5)")

    @field_validator("channels")
    @classmethod
    def _channels(cls, v: list[int]) -> list[int]:
        if not 1 <= len(v) <= 8 or any(c < 1 or c > 2048 for c in v):
            raise ValueError("channels must hold 1-8 values within 1-2048")
        return v


class PretrainParams(Section):
    """Synthetic-motion regression (AdamW, ReduceLROnPlateau, early stopping)."""

    samples_per_volume: int = Field(20, ge=1, le=10000, description="random pipeline passes per volume (paper 300)")
    lr: float = Field(2e-3, gt=0, le=1)
    weight_decay: float = Field(0.05, ge=0, le=1)
    batch_size: int = Field(4, ge=1, le=1024, description="per device")
    max_epochs: int = Field(24, ge=1, le=10000)
    patience: int = Field(15, ge=1, le=10000, description="early stopping on the validation loss (epochs)")
    plateau_factor: float = Field(0.6, gt=0, lt=1)
    plateau_patience: int = Field(2, ge=0, le=1000)
    precise_bn: int = Field(
        160,
        ge=0,
        le=100000,
        description="training volumes over which BatchNorm statistics "
        "are recomputed after each epoch (0 = off, as in the paper; small batches make them noisy)",
    )


class ClassifierParams(Section):
    """QC classifier training (transfer: frozen encoder + MLP; scratch: the same network end to end).

    The defaults are the transfer's; ``BricoutParams.scratch`` has its own.
    """

    lr: float = Field(5e-4, gt=0, le=1)
    weight_decay: float = Field(0.05, ge=0, le=1)
    dropout: float = Field(0.7, ge=0, lt=1)
    hidden: int = Field(10, ge=1, le=4096, description="units of the first linear layer")
    batch_size: int = Field(12, ge=1, le=1024)
    max_epochs: int = Field(40, ge=1, le=10000)
    patience: int | None = Field(None, ge=1, le=10000, description="early stopping on the validation loss (null: none)")
    class_weights: bool = Field(False, description="weight the cross-entropy by inverse class frequency")
    head: Literal["mlp", "sfcn"] = Field(
        "mlp",
        description="mlp: Linear-BN-ReLU-Linear on the flattened latent; sfcn: the SFCN's own head "
        "(average pool, dropout, 1x1x1 conv; scratch only, the frozen transfer reads the flattened latent)",
    )
    dropout_at: Literal["hidden", "input"] = Field(
        "hidden", description="mlp head: dropout after the hidden layer or on its input"
    )


class SearchParams(Section):
    """Random hyper-parameter search on validation balanced accuracy (the paper used Ray Tune)."""

    enabled: bool = False
    n_trials: int = Field(8, ge=1, le=1000)
    lr: tuple[float, float] = Field((1e-5, 1e-2), description="log-uniform range")
    dropout: tuple[float, float] = Field((0.3, 0.8))
    hidden: list[int] = Field(default_factory=lambda: [10, 32, 64])
    weight_decay: tuple[float, float] = Field((0.0, 0.1))


class BricoutParams(Section):
    """Settings of the `bricout` method (embedded default; see profiles/bricout.paper.yaml)."""

    trainer: step_trainers("pretrain", "transfer", "scratch") = trainer_field("pretrain", "transfer", "scratch")
    seed: int = Field(0, ge=0)
    data: DataParams = Field(default_factory=DataParams)
    embedded_qc: EmbeddedQCParams = Field(default_factory=EmbeddedQCParams)
    motion: MotionParams = Field(default_factory=MotionParams)
    augment: AugmentParams = Field(default_factory=AugmentParams)
    model: ModelParams = Field(default_factory=ModelParams)
    pretrain: PretrainParams = Field(default_factory=PretrainParams)
    transfer: ClassifierParams = Field(default_factory=ClassifierParams)
    scratch: ClassifierParams = Field(
        default_factory=lambda: ClassifierParams(lr=1e-3, weight_decay=0.06, dropout=0.68, max_epochs=6, patience=None)
    )
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2, 3, 4], description="QC training seeds")
    search: SearchParams = Field(default_factory=SearchParams)
    progress: bool = Field(True, description="progress bars")
    workers: int = Field(2, ge=1, le=64, description="processes of the synthesize stage")

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: list[int]) -> list[int]:
        if not v or any(s < 0 for s in v) or len(set(v)) != len(v):
            raise ValueError("seeds must be a non-empty list of distinct non-negative integers")
        return v

    @field_validator("transfer")
    @classmethod
    def _transfer_head(cls, v: ClassifierParams) -> ClassifierParams:
        if v.head != "mlp":
            raise ValueError("transfer.head must be 'mlp': the frozen transfer trains on the flattened latent")
        return v
