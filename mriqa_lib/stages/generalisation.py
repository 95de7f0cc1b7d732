"""DVC stage `generalisation`: every method trained without one site, scored on that site.

Loads the cohort, calls :mod:`mriqa_lib.generalisation` (site-out view, training, the three ways of
scoring, pair and AUROC tables) with the benchmark's corruption machinery, and writes
``results/generalisation/{scores,summary,calibration_effect}.tsv`` and ``metrics/generalisation.json``.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from mriqa_lib import generalisation as G
from mriqa_lib.benchmark import artifact_names, benchmark_jobs, score_jobs
from mriqa_lib.io import write_tsv
from mriqa_lib.stages.benchmark import clean_scan
from mriqa_lib.stages.common import EMBEDDED, MethodPaths, seed_everything, write_metrics

if TYPE_CHECKING:
    from mriqa_lib.config import Settings

PATHS = MethodPaths("generalisation")


def score_site(settings: Settings, site: str) -> tuple[list, list, list]:
    """Train every method without ``site`` (in a throwaway workspace) and score the site three ways;
    returns (score frames, pair-table rows, calibration-effect rows)."""
    import pandas as pd

    p, bench = settings.generalisation, settings.benchmark
    folds, unseen = G.site_folds(EMBEDDED / "participants.tsv", site, p.n_calibration)
    subjects = [s for fold in folds for s in fold.evaluation]
    scans = [([EMBEDDED / s / "anat" / f"{s}_T1w.nii.gz" for s in f.calibration], f.evaluation) for f in folds]
    jobs = benchmark_jobs(subjects, artifact_names(bench.artifacts), bench.levels, bench.design)
    methods, frames, rows = G.method_names(p.methods), [], []
    site_out = G.site_out_settings(settings, methods)
    with tempfile.TemporaryDirectory(prefix=f"mriqa-without-{site}-") as tmp:
        workspace = Path(tmp)
        G.site_out_view(EMBEDDED, workspace / "data" / "embedded", site)
        G.train_site_out(site_out, workspace, methods)
        by_way: dict[str, list] = {}
        for way, run, only in G.scorer_runs(settings, site_out, workspace, methods, scans, unseen):
            print(f"generalisation: {site}, {way}: scoring the volumes of {len(only)} subjects")
            scores = score_jobs(jobs, run.scorers, clean_scan, p.seed, progress=False, subjects=set(only))
            by_way.setdefault(way, []).append(scores.assign(site=site, way=way))
        for way, parts in by_way.items():
            scores = pd.concat(parts, ignore_index=True)
            frames.append(scores)
            rows += G.pair_table(scores, methods, way, site, n_boot=p.n_boot, seed=p.seed)
    effects = G.calibration_effect(pd.concat(frames), methods, site, n_boot=p.n_boot, seed=p.seed)
    return frames, rows, effects


def run(settings: Settings) -> None:
    """Every configured held-out site -> results/generalisation and metrics/generalisation.json."""
    import pandas as pd

    start = time.time()
    seed_everything(settings.generalisation.seed, settings.trainer.threads)
    frames, rows, effects = [], [], []
    for site in settings.generalisation.sites:
        f, r, e = score_site(settings, site)
        frames, rows, effects = frames + f, rows + r, effects + e
    table, effect = pd.DataFrame(rows), pd.DataFrame(effects)
    PATHS.results.mkdir(parents=True, exist_ok=True)
    write_tsv(PATHS.results / "scores.tsv", pd.concat(frames, ignore_index=True))
    write_tsv(PATHS.results / "summary.tsv", table)
    write_tsv(PATHS.results / "calibration_effect.tsv", effect)
    metrics = G.generalisation_metrics(table, effect) | {"sites": list(settings.generalisation.sites)}
    write_metrics(PATHS.metrics, metrics | {"wall_seconds": round(time.time() - start, 1)})
    print(table.pivot_table(index="method", columns="way", values="pairs_right").round(2).to_string())
