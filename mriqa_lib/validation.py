"""The base model and validated field types shared by config.py and the method params.

No project imports: config.py builds its ``Settings`` from the method registry, and each method's
``params.py`` is imported by its registration, so a home both share must import neither.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, create_model


class Section(BaseModel):
    """Base of every params.yaml section: unknown keys are errors, values are validated on assignment.

    The field defaults of a section are the embedded default profile: params.yaml lists every one of
    them with the same value (tests/test_params.py checks it).
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _fractions(v: tuple[float, ...]) -> tuple[float, ...]:
    if any(x < 0 for x in v) or abs(sum(v) - 1) > 1e-6:
        raise ValueError("fractions must be >= 0 and sum to 1")
    return v


def _split(v: tuple[float, float, float]) -> tuple[float, float, float]:
    _fractions(v)
    if v[0] == 0:
        raise ValueError("split fractions need a non-empty train part")
    return v


#: train/val/test fractions: each >= 0, summing to 1, train > 0
SplitFractions = Annotated[tuple[float, float, float], AfterValidator(_split)]
#: probabilities of a categorical distribution: each >= 0, summing to 1
Fractions4 = Annotated[tuple[float, float, float, float], AfterValidator(_fractions)]


class TrainerParams(Section):
    """Passed straight to ``lightning.Trainer``: scale to GPUs, DDP and SLURM by configuration."""

    accelerator: Literal["auto", "cpu", "gpu", "cuda", "mps"] = "cpu"
    devices: int | str = 1
    strategy: str = "auto"
    num_nodes: int = Field(1, ge=1)
    precision: Literal["32-true", "32", "16-mixed", "bf16-mixed", "64-true"] = "32-true"
    num_workers: int = Field(0, ge=0, le=64, description="DataLoader worker processes")
    deterministic: bool = True
    threads: int = Field(2, ge=1, le=256, description="torch CPU threads")


def _optional(annotation: Any, constraints: list) -> Any:
    return (Annotated[(annotation, *constraints)] if constraints else annotation) | None


#: a ``trainer`` section with every field optional: what a method (or one of its training steps) sets
#: for itself; ``None`` inherits the top-level ``trainer`` section
TrainerOverride = create_model(
    "TrainerOverride",
    __base__=Section,
    __doc__="Trainer fields a method or one of its training steps sets for itself (unset: inherited).",
    **{  # the same types and bounds as TrainerParams, plus None
        name: (_optional(f.annotation, f.metadata), Field(None, description=f.description))
        for name, f in TrainerParams.model_fields.items()
    },
)


def step_trainers(*steps: str) -> Any:
    """The type of a method's ``trainer`` setting: ``{all | STEP: {trainer fields}}``.

    ``all`` applies to every training step of the method, a step name (``pretrain``) to that step
    only, over ``all``; a key that is neither is an error naming the steps the method has.
    """
    allowed = ("all", *steps)

    def check(value: dict[str, BaseModel]) -> dict[str, BaseModel]:
        unknown = sorted(set(value) - set(allowed))
        if unknown:
            raise ValueError(f"unknown training step(s) {unknown}; this method has {list(allowed)}")
        return value

    return Annotated[dict[str, TrainerOverride], AfterValidator(check)]


def trainer_field(*steps: str) -> Any:
    """The ``trainer`` field of a method section (empty: the top-level ``trainer`` section applies)."""
    return Field(
        default_factory=dict,
        description="this method's own trainer settings: 'all' or a training step "
        f"({', '.join(steps)}) -> trainer keys (e.g. devices: 4); unset keys inherit the trainer section",
    )
