"""params.yaml section `zuo`: contrastive artifact latent + RealNVP density (Zuo et al., paper 2)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from mriqa_lib.artifacts.registry import REGISTRY, get_artifact
from mriqa_lib.validation import Section, step_trainers, trainer_field

# artifact names of mriqa_lib.artifacts used by the rated test set and the held-out examples
RATED_ARTIFACTS = ("rician_noise", "motion", "ghosting", "bias_field", "wrap_around")
# simulated negative kinds beyond the paper's noise and motion (2-D artifacts of mriqa_lib.artifacts):
# (a real scan also shows blur, ghosts and bias, and the paper's two kinds teach the latent none of them)
EXTRA_NEGATIVES = {"blur": (0.75, 2.5), "ghosting": (0.2, 0.8), "bias_field": (0.2, 0.8)}
# held-out examples of Fig. 3b: letter -> artifact (A clean; B non-T1w contrast from the tissue maps)
EXAMPLES = {
    "A": "clean",
    "B": "non_t1w",
    "C": "bias_field",
    "D": "rician_noise",
    "E": "motion",
    "F": "wrap_around",
    "G": "remove_side",
    "H": "registration_error",
}


class ZuoParams(Section):
    """Settings of the `zuo` method (embedded default; see profiles/zuo.paper.yaml).

    Sizes are in voxels of the template grid, severities in the units of
    :mod:`mriqa_lib.artifacts` (rician_noise: sigma / mean foreground signal; motion and
    registration_error: RMS deviation in mm; bias_field: max |coefficient| of the log-field;
    wrap_around: FOV fraction removed; ghosting: ghost intensity; remove_side: head fraction).
    """

    trainer: step_trainers("encoder") = trainer_field("encoder")
    seed: int = Field(0, ge=0)

    # --- data and preprocessing -------------------------------------------------------------
    cohort_table: str | None = Field(
        None,
        description="multi-cohort TSV (participant_id, cohort, path[, split, rating]); "
        "None = the embedded cohort in data/embedded",
    )
    cohort_dirs: dict[str, str] = Field(
        default_factory=dict,
        description="downloaded cohorts read without a table, {name: folder}: the name IXI reads the "
        "IXI-T1 layout, any other a BIDS data set (e.g. OASIS-3); added to cohort_table's rows",
    )
    split: tuple[float, float, float] = Field(
        (0.8, 0.1, 0.1), description="train/val/test fractions of the cohort_dirs subjects (the table has its own)"
    )
    n4: bool = Field(False, description="N4 bias correction before registration (paper: yes)")
    registration: bool = Field(False, description="affine registration to the template (SimpleITK)")
    brain_only: bool = Field(
        True,
        description="set the background (outside the smoothed Otsu foreground) to 0, as `mriqa score`'s brain "
        "extraction leaves a prepared scan; false = keep the noise floor (paper)",
    )
    template_spacing: float = Field(2.0, ge=0.5, le=4.0, description="template grid voxel size (mm)")
    slice_size: int = Field(112, ge=32, le=512, description="slices are padded / cropped to this square")
    band: int = Field(32, ge=4, le=256, description="training slices come from this many centre slices per orientation")
    band_step: int = Field(2, ge=1, le=8, description="keep every band_step-th slice of the band")
    n_centre_slices: int = Field(20, ge=1, le=128, description="centre axial slices averaged into the volume m")

    # --- encoder and contrastive training ---------------------------------------------------
    encoder: Literal["small", "densenet121"] = Field("small", description="small CNN or MONAI DenseNet121 (2-D)")
    width: int = Field(16, ge=4, le=128, description="channels of the small CNN's first block")
    batch_volumes: int = Field(16, ge=2, le=512, description="volumes (queries) per mini-batch")
    n_negatives_volume: int = Field(
        0,
        ge=0,
        le=511,
        description="negatives from other volumes per query; they teach artifacts only when some training volumes "
        "carry real ones (the paper's cohorts: profiles/zuo.paper.yaml sets 8), between clean volumes site look",
    )
    n_negatives_simulated: int = Field(
        5,
        ge=0,
        le=64,
        description="negatives = the query with a simulated artifact (kinds: noise, motion, extra_negatives)",
    )
    noise_range: tuple[float, float] = Field(
        (0.08, 0.3), description="Rician sigma / mean foreground of simulated negatives"
    )
    motion_range_px: tuple[float, float] = Field(
        (1.5, 4.0),
        description="range of the max translation (pixels) and rotation (degrees) of simulated motion negatives",
    )
    extra_negatives: dict[str, tuple[float, float]] = Field(
        default_factory=lambda: dict(EXTRA_NEGATIVES),
        description="more simulated negative kinds beyond the paper's noise and motion, {artifact: [low, high]} "
        "severity range (mriqa_lib.artifacts units); the query's negative j gets kind j mod (2 + len) in the "
        "order noise, motion, then these; {} = the paper's two kinds",
    )
    steps: int = Field(200, ge=1, le=1_000_000, description="encoder training iterations")
    lr: float = Field(1e-3, gt=0, le=1.0)
    weight_decay: float = Field(1e-4, ge=0, le=1.0)

    # --- site calibration (`mriqa calibrate`) ---------------------------------------------
    finetune_steps: int = Field(
        100,
        ge=0,
        le=1_000_000,
        description="contrastive fine-tuning steps of the encoder on a site's clean scans and their simulated "
        "artifacts before the density is refitted; 0 = refit the density only",
    )

    # --- flow density ----------------------------------------------------------------------
    flow_transforms: int = Field(6, ge=1, le=32, description="RealNVP affine coupling layers (paper: 6)")
    flow_hidden: tuple[int, ...] = Field((64, 64), description="hidden layers of each coupling's s, t networks")
    flow_steps: int = Field(600, ge=1, le=1_000_000, description="full-batch flow training iterations")
    flow_lr: float = Field(3e-3, gt=0, le=1.0)
    flow_jitter: float = Field(
        0.1,
        ge=0,
        le=2.0,
        description="Gaussian jitter (in std units of m) added to training m each step; 0 = none (paper)",
    )
    density_splits: list[str] = Field(default_factory=lambda: ["train"], description="splits the flow is fitted on")
    taus: list[float] = Field(
        default_factory=lambda: [5.0, 3.0], description="flag thresholds, percentiles of training densities"
    )

    # --- evaluation ------------------------------------------------------------------------
    rated_splits: list[str] = Field(
        default_factory=lambda: ["val", "test"],
        description="splits of the rated test set; must not overlap density_splits or train (the encoder's)",
    )
    rated_artifacts: list[str] = Field(default_factory=lambda: list(RATED_ARTIFACTS))
    rated_variants: int = Field(9, ge=1, le=1000, description="artifact variants per test subject")
    rated_clean: int = Field(
        1, ge=0, le=10, description="unaltered copies per test subject in the rated set (rating low)"
    )
    severity_max: dict[str, float] = Field(
        default_factory=lambda: {
            "rician_noise": 0.15,
            "motion": 6.0,
            "ghosting": 0.45,
            "bias_field": 0.9,
            "wrap_around": 0.3,
        },
        description="severity at the top of the rated scale: realised severity = r * severity_max, r ~ U(0, 1) "
        "stratified over the three bins; chosen so that the low bin (r < 1/3) stays within the clean "
        "cohort's own variation (site noise sigma/S <= ~0.05, site bias <= 0.35) or below visibility "
        "(motion <= 2 mm RMS, ghosts <= 0.15, wrap <= 10 % of the FOV)",
    )
    example_subject: int = Field(0, ge=0, description="index (within the rated splits) of the subject of examples A-H")
    example_severity: dict[str, float] = Field(
        default_factory=lambda: {
            "bias_field": 1.0,
            "rician_noise": 0.3,
            "motion": 8.0,
            "wrap_around": 0.3,
            "remove_side": 0.5,
            "registration_error": 15.0,
        },
        description="severities of the held-out examples C-H",
    )
    bins: tuple[float, float] = Field(
        (1 / 3, 2 / 3), description="r below bins[0] = low, below bins[1] = medium, else high"
    )

    @field_validator("noise_range", "motion_range_px", "bins")
    @classmethod
    def _ordered(cls, v: tuple[float, float]) -> tuple[float, float]:
        if v[0] < 0 or v[1] < v[0]:
            raise ValueError("expected 0 <= low <= high")
        return v

    @field_validator("taus")
    @classmethod
    def _taus(cls, v: list[float]) -> list[float]:
        if not v or any(t <= 0 or t >= 100 for t in v):
            raise ValueError("each tau must be a percentile in (0, 100)")
        return v

    @field_validator("density_splits")
    @classmethod
    def _splits(cls, v: list[str]) -> list[str]:
        if not v or any(s not in ("train", "val") for s in v):
            raise ValueError("density_splits must be a non-empty subset of [train, val] (test is held out)")
        return v

    @model_validator(mode="after")
    def _rated(self) -> ZuoParams:
        for name in self.rated_artifacts:
            if name not in RATED_ARTIFACTS:
                raise ValueError(f"rated_artifacts: unknown '{name}'; allowed: {', '.join(RATED_ARTIFACTS)}")
            if name not in self.severity_max:
                raise ValueError(f"severity_max has no value for rated artifact '{name}'")
        missing = [a for a in EXAMPLES.values() if a not in ("clean", "non_t1w") and a not in self.example_severity]
        if missing:
            raise ValueError(f"example_severity has no value for {missing}")
        if self.n_negatives_volume + self.n_negatives_simulated < 1:
            raise ValueError("n_negatives_volume + n_negatives_simulated must be >= 1")
        if set(self.rated_splits) & (set(self.density_splits) | {"train"}):
            raise ValueError("rated_splits must not overlap density_splits or the encoder's train split")
        if not self.rated_splits or any(s not in ("val", "test") for s in self.rated_splits):
            raise ValueError("rated_splits must be a non-empty subset of [val, test]")
        for name, (lo, hi) in self.extra_negatives.items():
            spec = get_artifact(name) if name in REGISTRY else None
            if spec is None or 2 not in spec.dims:
                raise ValueError(f"extra_negatives: '{name}' is not a 2-D artifact of mriqa_lib.artifacts")
            if not spec.valid_range[0] <= lo <= hi <= spec.valid_range[1]:
                raise ValueError(
                    f"extra_negatives.{name}: expected {spec.valid_range[0]} <= low <= high <= "
                    f"{spec.valid_range[1]} ({spec.unit})"
                )
        if self.band_step > self.band:
            raise ValueError("band_step must be <= band")
        return self
