"""DVC stage `benchmark`: every registered method on one common held-out test set.

Loads the cohort's test-split subjects and every trained scorer, calls :mod:`mriqa_lib.benchmark`
(corrupt, score, summarise) and writes ``results/benchmark/{scores,summary}.tsv``, the README block
(``readme_section.md``) and ``metrics/benchmark.json``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from mriqa_lib.benchmark import (
    README_BEGIN,
    README_END,
    artifact_names,
    benchmark_jobs,
    benchmark_metrics,
    readme_section,
    score_jobs,
    summarise,
    update_readme,
)
from mriqa_lib.io import Volume, load_nifti, read_tsv, write_tsv
from mriqa_lib.methods import registry
from mriqa_lib.scoring import load_scorers
from mriqa_lib.stages.common import (
    EMBEDDED,
    MethodPaths,
    seed_everything,
    write_metrics,
)

if TYPE_CHECKING:
    from mriqa_lib.config import Settings

__all__ = [
    "PATHS",
    "README_BEGIN",
    "README_END",
    "benchmark_subjects",
    "clean_scan",
    "readme_section",
    "run",
    "summarise",
    "update_readme",
]

PATHS = MethodPaths("benchmark")


def benchmark_subjects(n: int) -> list[str]:
    """The first ``n`` (in participants.tsv order) of the embedded cohort's held-out test subjects
    (:func:`mriqa_lib.data.splits.held_out`: no method trains or validates on them)."""
    from mriqa_lib.data.splits import held_out

    tsv = EMBEDDED / "participants.tsv"
    held = held_out(tsv)
    return [s for s in read_tsv(tsv, required=("participant_id", "split")).participant_id if s in held][:n]


def clean_scan(subject: str) -> Volume:
    """A subject's clean T1w scan of the embedded cohort."""
    return load_nifti(EMBEDDED / subject / "anat" / f"{subject}_T1w.nii.gz")


def run(settings: Settings) -> None:
    """Build the corrupted test set in memory, score it with every method, write results."""
    params = settings.benchmark
    seed_everything(params.seed, settings.trainer.threads)
    subjects = benchmark_subjects(params.n_subjects)
    names = artifact_names(params.artifacts)
    loaded = load_scorers(registry.names(), Path("models"), settings)
    if not loaded.scorers:
        raise RuntimeError("no trained method available; run the train stages first")
    methods = list(loaded.scorers)
    jobs = benchmark_jobs(subjects, names, params.levels, params.design)
    print(
        f"benchmark: {len(subjects)} subjects x ({len(names)} artifacts x {len(params.levels)} levels + clean) "
        f"= {len(jobs)} volumes, methods {', '.join(methods)}"
    )
    start = time.time()
    scores = score_jobs(jobs, loaded.scorers, clean_scan, params.seed)
    table = summarise(scores, methods)
    PATHS.results.mkdir(parents=True, exist_ok=True)
    write_tsv(PATHS.results / "scores.tsv", scores)
    write_tsv(PATHS.results / "summary.tsv", table)
    (PATHS.results / "readme_section.md").write_text(readme_section(table) + "\n")
    metrics = benchmark_metrics(scores, table, subjects, names, methods, loaded.unavailable, time.time() - start)
    write_metrics(PATHS.metrics, metrics)
