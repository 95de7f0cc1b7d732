"""params.yaml section `shaw`: heteroscedastic reconstruction uncertainty (Shaw et al., paper 3)."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ShawParams(BaseModel):
    """Settings of the `shaw` method (embedded default; see profiles/shaw.paper.yaml)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    seed: int = Field(0, ge=0)
