"""Validated field types shared by config.py and the method params (no project imports: config
imports the method params, so a shared home must not import either)."""
from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator


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
