"""Running a method's stage module end to end on a tiny embedded cohort (the test_stage_* modules).

A 6-subject, 2-site cohort: every site has >= 3 subjects, so the cohort holds out one test subject
per site (2 held-out subjects, the benchmark's).
"""

from __future__ import annotations

import importlib
import json
import shutil
from pathlib import Path

from mriqa_lib.config import Settings, default_cohort_params

N_SUBJECTS = 6


def build_tiny_cohort(root: Path) -> Path:
    """The tiny cohort in ``root/data/embedded``."""
    from mriqa_lib.data.cohort import build_cohort

    base = default_cohort_params()
    params = base.model_copy(update={"n_subjects": N_SUBJECTS, "workers": 1, "sites": base.sites[:2]})
    build_cohort(root / "data" / "embedded", params, progress=False, log=lambda s: None)
    return root / "data" / "embedded"


def settings_with(name: str, section) -> Settings:
    """Default settings with method ``name``'s section replaced and one CPU thread."""
    trainer = Settings.model_fields["trainer"].default_factory().model_copy(update={"threads": 1})
    return Settings(cohort=default_cohort_params(), **{name: section}).model_copy(update={"trainer": trainer})


def claim_keys(name: str) -> set[str]:
    """Every metric key that method ``name``'s claims read (a difference claim reads two)."""
    from mriqa_lib import claims

    return {k.strip() for c in claims.CLAIMS if c.method == name for k in c.metric.split(" - ")}


def run_stage(root: Path, cohort: Path, name: str, settings: Settings, monkeypatch) -> dict:
    """Copy ``cohort`` into ``root``, run synthesize -> train -> evaluate there; metrics/<name>.json."""
    shutil.copytree(cohort, root / "data" / "embedded")
    stage = importlib.import_module(f"mriqa_lib.stages.{name}")
    monkeypatch.chdir(root)
    for step in (stage.synthesize, stage.train, stage.evaluate):
        step(settings)
    return json.loads((root / "metrics" / f"{name}.json").read_text())
