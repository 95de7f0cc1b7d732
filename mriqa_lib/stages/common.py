"""Paths and helpers shared by the DVC stage entry points.

Convention (dvc.yaml relies on it): method ``m`` reads ``data/embedded`` (or its real data set
from params), writes its training/test sets to ``data/synthetic/m``, its trained models to
``models/m``, its evaluation results to ``results/m``, its metrics to ``metrics/m.json`` (and
``metrics/m_train.json`` for training cost), and its notebook draws ``figures/m``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mriqa_lib.io import write_json
from mriqa_lib.seeds import seed_everything  # noqa: F401  (stages seed through here)

EMBEDDED = Path("data/embedded")


@dataclass(frozen=True)
class MethodPaths:
    """Where method ``name`` reads and writes (relative to the repository root)."""

    name: str

    @property
    def synthetic(self) -> Path:
        return Path("data/synthetic") / self.name

    @property
    def models(self) -> Path:
        return Path("models") / self.name

    @property
    def results(self) -> Path:
        return Path("results") / self.name

    @property
    def metrics(self) -> Path:
        return Path("metrics") / f"{self.name}.json"

    @property
    def train_metrics(self) -> Path:
        return Path("metrics") / f"{self.name}_train.json"

    @property
    def figures(self) -> Path:
        return Path("figures") / self.name

    def load_split(self, split: str) -> dict[str, np.ndarray]:
        """Arrays of ``data/synthetic/<name>/<split>.npz`` (written by the synthesize step)."""
        from mriqa_lib.io import MriqaInputError

        path = self.synthetic / f"{split}.npz"
        if not path.exists():
            raise MriqaInputError(f"{path}: not found; run `mriqa stage {self.name} synthesize` first")
        try:
            with np.load(path) as z:
                return {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError) as exc:
            raise MriqaInputError(f"{path}: cannot read ({exc}); rerun `mriqa stage {self.name} synthesize`") from None


def write_metrics(path: str | os.PathLike, metrics: dict[str, Any]) -> Path:
    """Write a metrics JSON (atomically) and say where it went."""
    path = write_json(path, metrics)
    print(f"metrics -> {path}")
    return path
