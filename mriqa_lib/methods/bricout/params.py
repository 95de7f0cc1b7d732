"""params.yaml section `bricout`: synthetic-motion SFCN pretraining and QC transfer (Bricout et al., paper 5)."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class BricoutParams(BaseModel):
    """Settings of the `bricout` method (embedded default; see profiles/bricout.paper.yaml)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    seed: int = Field(0, ge=0)
