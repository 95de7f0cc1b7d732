"""DVC stage `prepare`: build the embedded cohort into data/embedded (metrics/cohort.json)."""

from __future__ import annotations

from mriqa_lib.config import Settings
from mriqa_lib.data.cohort import build_cohort
from mriqa_lib.stages.common import EMBEDDED, write_metrics


def run(settings: Settings) -> None:
    summary = build_cohort(EMBEDDED, settings.cohort)
    write_metrics("metrics/cohort.json", summary)
