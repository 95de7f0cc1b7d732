"""params.yaml -> validated, typed settings.

Each top-level section of params.yaml is a pydantic model whose field defaults are the embedded
default profile; params.yaml lists every setting with the same value (tests/test_params.py). Unknown
keys, wrong types and out-of-range values raise :class:`ConfigError` with a one-line message naming
the key and what is allowed; the CLI turns it into that one line and a non-zero exit status.

The method sections come from the method registry (:mod:`mriqa_lib.methods.registry`): each
registered method's ``params`` model (defined beside the method, ``mriqa_lib/methods/<name>/params.py``)
is the section named by the method. ``Settings`` (``from mriqa_lib.config import Settings``) is that
model of all of params.yaml, built from the registry on first use (:func:`settings_model`), so that
importing this module imports no method.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError, create_model, field_validator

from mriqa_lib.prepare.params import PreparationParams
from mriqa_lib.validation import Section, SplitFractions, TrainerParams

__all__ = [
    "DEFAULT_SITES",
    "PARAMS_FILE",
    "BenchmarkParams",
    "CohortParams",
    "ConfigError",
    "Section",
    "Settings",
    "SiteParams",
    "TrainerParams",
    "apply_overrides",
    "deep_merge",
    "default_cohort_params",
    "format_validation_error",
    "load_settings",
    "parse_settings",
    "read_yaml",
    "settings_model",
    "trainer_for",
]

PARAMS_FILE = "params.yaml"

if TYPE_CHECKING:  # for readers and type checkers: the class itself is built by settings_model()
    Settings = Section


class ConfigError(ValueError):
    """A params.yaml problem; the message is one line naming the file and the key."""


class SiteParams(Section):
    """One acquisition site of the embedded cohort (all values synthetic)."""

    name: str
    spacing: tuple[float, float, float] = Field(description="voxel size in mm (x, y, z)")
    wm: float = Field(gt=0, description="white-matter intensity")
    gm: float = Field(gt=0, description="grey-matter intensity")
    csf: float = Field(ge=0, description="CSF intensity")
    bias: float = Field(ge=0, le=1, description="bias-field strength (log-amplitude)")
    noise: float = Field(ge=0, le=0.5, description="Rician noise sigma relative to WM intensity")

    @field_validator("spacing")
    @classmethod
    def _spacing(cls, v: tuple[float, float, float]) -> tuple[float, float, float]:
        if any(s < 0.5 or s > 6 for s in v):
            raise ValueError("each voxel size must be within 0.5-6 mm")
        return v


#: the six synthetic sites of the embedded cohort: contrast, voxel size, bias field and noise differ
DEFAULT_SITES = [
    {"name": "siteA", "spacing": (2.0, 2.0, 2.0), "wm": 1000, "gm": 620, "csf": 250, "bias": 0.15, "noise": 0.02},
    {"name": "siteB", "spacing": (1.8, 1.8, 2.2), "wm": 800, "gm": 560, "csf": 180, "bias": 0.30, "noise": 0.035},
    {"name": "siteC", "spacing": (2.2, 2.2, 2.2), "wm": 1200, "gm": 700, "csf": 350, "bias": 0.10, "noise": 0.015},
    {"name": "siteD", "spacing": (2.0, 2.0, 2.4), "wm": 900, "gm": 600, "csf": 300, "bias": 0.25, "noise": 0.04},
    {"name": "siteE", "spacing": (1.9, 1.9, 1.9), "wm": 1100, "gm": 640, "csf": 220, "bias": 0.20, "noise": 0.025},
    {"name": "siteF", "spacing": (2.1, 2.1, 2.1), "wm": 950, "gm": 520, "csf": 200, "bias": 0.35, "noise": 0.03},
]


class CohortParams(Section):
    """The embedded default cohort built from the ICBM152 2009a template shipped in nilearn."""

    n_subjects: int = Field(48, ge=2, le=10000)
    seed: int = Field(0, ge=0)
    contrasts: list[Literal["T1w", "T2w", "PD"]] = Field(default_factory=lambda: ["T1w"])
    split: SplitFractions = Field((0.7, 0.15, 0.15), description="train/val/test fractions")
    warp_mm: float = Field(3.0, ge=0, le=10, description="std of the smooth diffeomorphic warp (mm)")
    scale_range: float = Field(0.1, ge=0, le=0.3, description="head size varies by +- this fraction")
    rotation_deg: float = Field(4.0, ge=0, le=30)
    translation_mm: float = Field(4.0, ge=0, le=30)
    tissue_sharpness: tuple[float, float] = Field(
        (1.0, 5.0),
        description="per-subject exponent range on the tissue probabilities (1 = the average template's blur; "
        "larger = crisper tissue borders, as a single real brain)",
    )
    contrast_jitter: float = Field(
        0.15, ge=0, le=0.5, description="per-subject relative jitter of each tissue intensity around the site's"
    )
    slice_thickness_mm: tuple[float, float] = Field(
        (2.0, 3.2),
        description="per-subject slice-thickness range (mm) along one random axis; thinner than the voxel = none",
    )
    noise_scale: tuple[float, float] = Field(
        (0.5, 1.5), description="per-subject factor range on the site's noise level"
    )
    slices: int = Field(0, ge=0, le=64, description="centre axial 2-D slices exported per subject")
    workers: int = Field(2, ge=1, le=64)
    sites: list[SiteParams] = Field(
        default_factory=lambda: [SiteParams(**s) for s in DEFAULT_SITES],
        min_length=1,
        description="subjects are spread over these sites in turn",
    )

    @field_validator("tissue_sharpness", "noise_scale")
    @classmethod
    def _factor_range(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not 0 < v[0] <= v[1] <= 20:
            raise ValueError(f"must be [low, high] with 0 < low <= high <= 20, got {list(v)}")
        return v

    @field_validator("slice_thickness_mm")
    @classmethod
    def _thickness_range(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not 0 <= v[0] <= v[1] <= 20:
            raise ValueError(f"must be [low, high] mm with 0 <= low <= high <= 20, got {list(v)}")
        return v

    @field_validator("contrasts")
    @classmethod
    def _contrasts(cls, v: list[str]) -> list[str]:
        if "T1w" not in v:
            raise ValueError("contrasts must include T1w")
        return v

    @field_validator("sites")
    @classmethod
    def _sites_unique(cls, v: list[SiteParams]) -> list[SiteParams]:
        names = [s.name for s in v]
        if len(set(names)) != len(names):
            raise ValueError(f"site names must be unique, got {names}")
        return v


def default_cohort_params() -> CohortParams:
    """The embedded default cohort settings (used when no params.yaml is at hand)."""
    return CohortParams()


class BenchmarkParams(Section):
    """Cross-method benchmark: held-out test subjects x every artifact x several severities."""

    n_subjects: int = Field(6, ge=1, le=1000, description="test-split subjects used (clean + corrupted)")
    artifacts: list[str] = Field(default_factory=lambda: ["all"], description="registry names, or [all]")
    levels: list[float] = Field(
        default_factory=lambda: [0.333, 0.667, 1.0],
        description="severities as fractions of each artifact's benchmark maximum",
    )
    design: Literal["rotate", "full"] = Field(
        "rotate",
        description="full: every subject x artifact x level; rotate: each artifact x level once, "
        "on the subjects in turn (all subjects also clean): same coverage, fewer volumes",
    )
    seed: int = Field(0, ge=0)

    @field_validator("levels")
    @classmethod
    def _levels(cls, v: list[float]) -> list[float]:
        if not v or any(x <= 0 or x > 1 for x in v):
            raise ValueError("levels must be a non-empty list of fractions in (0, 1]")
        return v


class GeneralisationParams(Section):
    """Held-out-site evaluation (stage `generalisation`): every method trained without a site of the
    embedded cohort, then scored on that site raw, calibrated with its clean scans, and in-site."""

    methods: list[str] = Field(default_factory=lambda: ["all"], description="registry names, or [all]")
    sites: list[str] = Field(
        default_factory=lambda: ["siteD"],
        min_length=1,
        description="sites held out in turn (each costs one more training of every method)",
    )
    n_calibration: int = Field(
        5, ge=2, le=100, description="clean scans of the held-out site given to `mriqa calibrate`"
    )
    train_overrides: list[str] = Field(
        default_factory=list,
        description="SECTION.KEY=VALUE settings the site-out models train with, after each method's "
        "own `badness_only` ones (which skip the training no badness score reads); the in-site "
        "models are the pipeline's own",
    )
    seed: int = Field(0, ge=0, description="corruption seed of the scored copies and of the bootstrap")
    n_boot: int = Field(
        2000, ge=100, le=100000, description="bootstrap resamples (over subjects) of the 95 % CIs of the pair tables"
    )

    @field_validator("train_overrides")
    @classmethod
    def _overrides(cls, v: list[str]) -> list[str]:
        bad = [o for o in v if "=" not in o or "." not in o.partition("=")[0]]
        if bad:
            raise ValueError(f"expected SECTION.KEY=VALUE items, got {bad}")
        return v


#: the sections that are not methods, before and after the method sections (params.yaml's order)
SECTIONS_BEFORE: dict[str, type[BaseModel]] = {"cohort": CohortParams, "trainer": TrainerParams}
SECTIONS_AFTER: dict[str, type[BaseModel]] = {
    "benchmark": BenchmarkParams,
    "generalisation": GeneralisationParams,
    "preparation": PreparationParams,
}

# one Settings model per registry content: a toy method registered by a test gets its section
_SETTINGS_MODELS: dict[tuple[tuple[str, type[BaseModel]], ...], type[Section]] = {}


def settings_model() -> type[Section]:
    """The model of all of params.yaml: the fixed sections plus one section per registered method.

    A method's section is named by the method, typed by its ``MethodSpec.params`` model and
    defaults to that model's defaults. The model is built once per registry content (the same
    class while the registry does not change).

    Returns:
        the pydantic model class ``Settings``.
    """
    from mriqa_lib.methods import registry  # here, not at import: discovery imports the methods

    specs = registry.methods()
    key = tuple((name, spec.params) for name, spec in specs.items())
    model = _SETTINGS_MODELS.get(key)
    if model is None:
        model = _SETTINGS_MODELS[key] = _build_settings(dict(key))
    return model


def _build_settings(method_params: dict[str, type[BaseModel]]) -> type[Section]:
    clash = sorted(set(method_params) & (set(SECTIONS_BEFORE) | set(SECTIONS_AFTER)))
    if clash:
        raise ValueError(f"method name(s) {clash} clash with a params.yaml section of the same name")
    sections = {**SECTIONS_BEFORE, **method_params, **SECTIONS_AFTER}
    fields: dict[str, Any] = {name: (model, Field(default_factory=model)) for name, model in sections.items()}
    return create_model(
        "Settings",
        __base__=Section,
        __module__=__name__,
        __doc__="All of params.yaml: " + ", ".join(sections) + ".",
        **fields,
    )


def __getattr__(name: str) -> Any:
    # ``Settings`` is built from the method registry when first asked for, not at import, so that
    # a method package may import this module without an import cycle
    if name == "Settings":
        return settings_model()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """Follow ``loc`` through nested pydantic models; return the model that owns the last key."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = getattr(current, "model_fields", {}).get(part)
        if field is None:
            return None
        ann = field.annotation
        for cand in (ann, *getattr(ann, "__args__", ())):
            if isinstance(cand, type) and issubclass(cand, BaseModel):
                current = cand
                break
        else:
            return None
    return current if isinstance(current, type) else None


def format_validation_error(exc: ValidationError, source: str, root: type[BaseModel] | None = None) -> str:
    """One line naming the first bad key, what is wrong, and what is allowed.

    Args:
        exc: the pydantic error.
        source: what was validated (a file name), the start of the line.
        root: the model that was validated (default: ``Settings``), to list the allowed keys.
    """
    root = root or settings_model()
    err = exc.errors()[0]
    loc = tuple(err["loc"])
    key = ".".join(str(p) for p in loc) or "(top level)"
    n_more = len(exc.errors()) - 1
    more = f" (+{n_more} more problem{'s' if n_more > 1 else ''})" if n_more else ""
    if err["type"] == "extra_forbidden":
        owner = _model_at(root, loc)
        allowed = ", ".join(owner.model_fields) if owner is not None else "?"
        return f"{source}: unknown key '{key}'; allowed here: {allowed}{more}"
    if err["type"] == "missing":
        return f"{source}: missing required key '{key}'{more}"
    got = err.get("input")
    got_s = repr(got)
    if len(got_s) > 60:
        got_s = got_s[:57] + "..."
    return f"{source}: bad value for '{key}': {err['msg']} (got {got_s}){more}"


def trainer_for(settings: Any, method: str, step: str) -> TrainerParams:
    """The trainer settings of one training step of ``method``: the top-level ``trainer`` section,
    overlaid by the method's ``trainer.all`` and then its ``trainer.<step>`` (keys left unset inherit).

    This is how a paper profile trains one step on 4 GPUs and another on one (paper 5), without
    touching the other methods.
    """
    own = getattr(getattr(settings, method), "trainer", None) or {}
    merged = settings.trainer.model_dump()
    for key in ("all", step):
        if key in own:
            merged.update(own[key].model_dump(exclude_none=True))
    return TrainerParams(**merged)


def parse_settings(raw: Any, source: str = PARAMS_FILE) -> Settings:
    """Validate an already-parsed params mapping (sections left out keep their defaults)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping of sections at the top level, got {type(raw).__name__}")
    try:
        return settings_model().model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from None


def read_yaml(path: str | os.PathLike) -> Any:
    """Parse a YAML file; a missing file or bad YAML raises :class:`ConfigError` naming the line."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: file not found (run from the repository root or pass --params)")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}: invalid YAML{where}: {problem}") from None


def load_settings(path: str | os.PathLike = PARAMS_FILE, overrides: list[str] | None = None) -> Settings:
    """Read and validate params.yaml (or another profile file), with ``SECTION.KEY=VALUE`` overrides."""
    raw = read_yaml(path)
    if overrides:
        raw = apply_overrides(raw if isinstance(raw, dict) else {}, overrides)
    return parse_settings(raw, f"{path} + {' '.join(overrides)}" if overrides else str(path))


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """``raw`` with each ``a.b.c=VALUE`` set (VALUE read as YAML: 4 -> int, [1, 2] -> list, gpu -> str).

    Raises:
        ConfigError: an override without ``=`` or a dotted key, or one that descends into a non-mapping.
    """
    out = deep_merge(raw, {})
    for item in overrides:
        key, sep, value = item.partition("=")
        parts = key.strip().split(".")
        if not sep or len(parts) < 2 or not all(parts):
            raise ConfigError(f"override '{item}': expected SECTION.KEY=VALUE, e.g. trainer.devices=4")
        node = out
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override '{item}': '{part}' is a value, not a section")
            node[part] = child = dict(child)
            node = child
        node[parts[-1]] = yaml.safe_load(value)
    return out


def deep_merge(base: dict, overlay: dict) -> dict:
    """Return ``base`` with ``overlay`` merged in recursively (overlay wins; lists replaced)."""
    out = dict(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out
