"""params.yaml section `ecker`: SimCLR zero-shot HQ/LQ classification (Ecker et al., paper 1)."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class EckerParams(BaseModel):
    """Settings of the `ecker` method (embedded default; see profiles/ecker.paper.yaml)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    seed: int = Field(0, ge=0)
