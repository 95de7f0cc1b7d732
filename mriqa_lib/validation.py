"""The base model and validated field types shared by config.py and the method params.

No project imports: config.py builds its ``Settings`` from the method registry, and each method's
``params.py`` is imported by its registration, so a home both share must import neither.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict


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
