"""Held-out-site evaluation on the embedded cohort: does a method hold on a site it never saw?

Every method is trained again without one site (its subjects are relabelled ``test`` in a view of
the cohort, so the split owner keeps all of them out of training and validation), then that site's
subjects and their corrupted copies (the benchmark's artifacts and severities) are scored three
ways: by the site-out models without calibration; by the same models calibrated with a few clean
scans of the site (`mriqa calibrate`, cross-fitted: a subject is never among its own calibration's
scans); and, for reference, by the pipeline's in-site models on the subjects they never trained on.
Per method and way: the fraction of (clean, corrupted) pairs of a subject ranked the right way and
the AUROC clean vs corrupted. The DVC stage (:mod:`mriqa_lib.stages.generalisation`) calls these.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from mriqa_lib.io import MriqaInputError, read_tsv, write_tsv
from mriqa_lib.methods import registry
from mriqa_lib.metrics import auroc, bootstrap_ci

#: the three ways a held-out site is scored, in the order the tables show them
WAYS = ("site-out", "site-out + calibration", "in-site")


def method_names(requested: list[str]) -> list[str]:
    """The registered methods named in ``generalisation.methods`` (``all``: every one)."""
    known = registry.names()
    if "all" in requested:
        return known
    unknown = sorted(set(requested) - set(known))
    if unknown:
        raise MriqaInputError(f"generalisation.methods: unknown method(s) {unknown}; choose from {known}")
    return [m for m in known if m in requested]


class Fold(NamedTuple):
    """One calibration fold of a held-out site: the clean scans given to `mriqa calibrate` and the
    subjects scored with that calibration (never among its scans)."""

    calibration: list[str]
    evaluation: list[str]


def site_folds(participants: Path, site: str, n_calibration: int) -> tuple[list[Fold], list[str]]:
    """Cross-fitted calibration folds of ``site`` and the site's subjects the in-site models never saw.

    The site-out models never see the site, so every subject of it is evaluated: the subjects, in
    the cohort's order, are cut into folds of at most ``len - n_calibration``; each fold is scored
    with a calibration made from the first ``n_calibration`` of the site's *other* subjects (clean
    scans a site would hand over). With only the split's ``test``/``val`` subjects (two per site in
    the embedded cohort) one atypical clean scan decided half of the pairs. The in-site models
    trained on the site's ``train`` subjects, so their reference uses only its ``test``/``val`` ones.

    Returns:
        (folds, in-site subjects).

    Raises:
        MriqaInputError: an unknown site, or too few subjects for the folds or the in-site reference.
    """
    frame = read_tsv(participants, required=("participant_id", "site", "split"))
    here = frame[frame.site.astype(str) == site]
    if here.empty:
        raise MriqaInputError(f"generalisation.sites: unknown site '{site}'; sites: {sorted(set(frame.site))}")
    subjects = here.participant_id.astype(str).tolist()
    unseen = here.participant_id[here.split.isin(["test", "val"])].astype(str).tolist()
    if not unseen or len(subjects) <= n_calibration:
        raise MriqaInputError(
            f"{participants}: site {site} has {len(subjects)} subjects, {len(unseen)} of them test/val; "
            f"needs > generalisation.n_calibration ({n_calibration}) and >= 1 test/val"
        )
    size = len(subjects) - n_calibration
    folds = []
    for k in range(0, len(subjects), size):
        evaluation = subjects[k : k + size]
        folds.append(Fold([s for s in subjects if s not in evaluation][:n_calibration], evaluation))
    return folds, unseen


def site_out_settings(settings: Any, methods: list[str]) -> Any:
    """The settings the site-out models train with: ``settings`` with each method's ``badness_only``
    overrides (the stage compares badness scores only), then ``generalisation.train_overrides``."""
    from mriqa_lib.config import apply_overrides, parse_settings

    specs = registry.methods()
    own = [o for m in methods for o in specs[m].badness_only]
    overrides = own + list(settings.generalisation.train_overrides)
    if not overrides:
        return settings
    raw = apply_overrides(settings.model_dump(mode="json"), overrides)
    return parse_settings(raw, "generalisation.train_overrides")


def site_out_view(cohort: Path, view: Path, site: str) -> None:
    """A view of ``cohort`` at ``view`` whose ``participants.tsv`` labels every subject of ``site``
    ``test``; everything else is a link to the cohort (nothing is copied)."""
    cohort, view = Path(cohort).resolve(), Path(view)
    view.mkdir(parents=True)
    for entry in cohort.iterdir():
        if entry.name != "participants.tsv":
            (view / entry.name).symlink_to(entry)
    frame = read_tsv(cohort / "participants.tsv", required=("participant_id", "site", "split"))
    frame.loc[frame.site.astype(str) == site, "split"] = "test"
    write_tsv(view / "participants.tsv", frame)


def run_step(method: str, step: str, workspace: Path) -> None:
    """``mriqa stage METHOD STEP`` in a fresh process inside ``workspace`` (with its params.yaml), as
    DVC runs it: a stage's worker pools must not fork from a process that already trained."""
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "mriqa_lib.cli", "stage", method, step, "--params", "params.yaml"]
    done = subprocess.run(cmd, cwd=workspace, check=False)
    if done.returncode != 0:
        raise RuntimeError(
            f"generalisation: `mriqa stage {method} {step}` failed in {workspace} (exit {done.returncode})"
        )


def train_site_out(settings: Any, workspace: Path, methods: list[str], log: Callable[[str], None] = print) -> None:
    """Run every method's steps before ``evaluate`` (synthesize, train) inside ``workspace``, whose
    ``data/embedded`` is the site-out view, with ``settings`` (written to ``workspace/params.yaml``);
    the models land in ``workspace/models/<m>``."""
    import yaml

    (workspace / "params.yaml").write_text(yaml.safe_dump(settings.model_dump(mode="json"), sort_keys=False))
    specs = registry.methods()
    for m in methods:
        for step in specs[m].stages:
            if step != "evaluate":
                log(f"generalisation: {m} {step} without the held-out site")
                run_step(m, step, workspace)


def scorer_runs(
    settings: Any,
    site_out: Any,
    workspace: Path,
    methods: list[str],
    folds: list[tuple[list[Path], list[str]]],
    unseen: list[str],
    log: Callable[[str], None] = print,
) -> Iterator[tuple[str, Any, list[str]]]:
    """(way, loaded scorers, subjects they score), the ways of :data:`WAYS` in order: the site-out
    models (trained with the settings ``site_out``) raw on every fold's subjects; the same models
    calibrated, once per fold (calibration scans, subjects), with a calibration made from its scans
    (written to ``workspace/calibration-<i>``); and the pipeline's own models (``models/``,
    ``settings``) on the subjects they never trained on (``unseen``)."""
    from mriqa_lib.calibration import apply_calibration, calibrate, load_calibration
    from mriqa_lib.scoring import InputItem, load_scorers

    models = workspace / "models"
    yield WAYS[0], load_scorers(methods, models, site_out, log), [s for _, fold in folds for s in fold]
    for i, (scans, subjects) in enumerate(folds):
        run, folder = load_scorers(methods, models, site_out, log), workspace / f"calibration-{i}"
        items = [InputItem(p, p.name.split("_")[0]) for p in scans]
        calibrate(items, run, folder, site_out, models, force=True, progress=False, log=log)
        apply_calibration(load_calibration(folder, {m: models / m for m in run.scorers}), run, log)
        yield WAYS[1], run, subjects
    yield WAYS[2], load_scorers(methods, Path("models"), settings, log), unseen


#: what identifies a pair across ways: the same subject, artifact and severity (the same volume)
PAIR_KEY = ("subject", "artifact", "severity_level")


def pair_outcomes(frame: Any, col: str, sign: float, by: str = "subject") -> Any:
    """Each corrupted row of ``frame`` against the clean row (``artifact`` "clean") of its ``by`` group
    (a subject, or a real scan): ``right`` = 1 when ``sign * frame[col]`` is larger (worse), 0 when
    smaller, 0.5 on a tie (the AUROC convention), NaN when either score is missing. Returns the
    corrupted rows with ``right`` added (none when ``col`` is absent)."""
    import pandas as pd

    is_clean = frame.artifact == "clean"
    out = frame[~is_clean].copy()
    if col not in frame:
        return out.iloc[0:0].assign(right=pd.Series(dtype=float))
    bad = sign * pd.to_numeric(frame[col], errors="coerce")
    clean = bad[is_clean].groupby(frame[by][is_clean]).first()
    base = out[by].map(clean).astype(float)
    mine = bad[out.index].astype(float)
    right = np.where(mine > base, 1.0, np.where(mine < base, 0.0, 0.5))
    out["right"] = np.where(mine.isna() | base.isna(), np.nan, right)
    return out


#: fewer subjects than this give no interval: resampling two or three of them spans only their few mixtures
MIN_SUBJECTS_CI = 5


def subject_bootstrap(right: Any, subject: Any, n_boot: int, seed: int) -> tuple[float, float, float]:
    """Mean of pair outcomes (or of paired differences) and its 95 % CI from resampling *subjects*:
    a subject's pairs share its clean scan, so they are not independent draws. (value, low, high);
    the interval is NaN below :data:`MIN_SUBJECTS_CI` subjects, everything NaN without a finite outcome."""
    import pandas as pd

    frame = pd.DataFrame({"subject": np.asarray(subject), "right": np.asarray(right, dtype=float)}).dropna()
    if frame.empty:
        return float("nan"), float("nan"), float("nan")
    per_subject = frame.groupby("subject").right.agg(["sum", "count"]).to_numpy(dtype=float)

    def pooled(v: np.ndarray) -> float:  # all pairs of the drawn subjects together
        return float(v[:, 0].sum() / v[:, 1].sum())

    if len(per_subject) < MIN_SUBJECTS_CI:
        return pooled(per_subject), float("nan"), float("nan")
    return bootstrap_ci(per_subject, pooled, n_boot=n_boot, seed=seed)


def pair_table(
    scores: Any, methods: list[str], way: str, site: str, specs: Any = None, n_boot: int = 2000, seed: int = 0
) -> list[dict[str, Any]]:
    """Per method: pairs ranked right (:func:`pair_outcomes`; ties count half) with its subject-bootstrap
    95 % CI, and AUROC clean vs corrupted, from the benchmark's score rows (``specs``: the registry's
    method specs, or any mapping of name -> object with ``badness`` and ``badness_sign``)."""
    import pandas as pd

    specs = specs or registry.methods()
    rows = []
    for m in methods:
        col = specs[m].badness
        if col not in scores:
            continue
        bad = specs[m].badness_sign * pd.to_numeric(scores[col], errors="coerce")
        pairs = pair_outcomes(scores, col, specs[m].badness_sign)
        value, low, high = subject_bootstrap(pairs.right, pairs.subject, n_boot, seed)
        corrupted = scores.artifact != "clean"
        rows.append(
            {
                "site": site,
                "method": m,
                "way": way,
                "pairs_right": value,
                "pairs_right_low": low,
                "pairs_right_high": high,
                "auroc": auroc(corrupted[bad.notna()], bad[bad.notna()]),
                "n_pairs": int(pairs.right.notna().sum()),
            }
        )
    return rows


def calibration_effect(
    scores: Any, methods: list[str], site: str, specs: Any = None, n_boot: int = 2000, seed: int = 0
) -> list[dict[str, Any]]:
    """Per method: pairs ranked right with calibration minus without, over the pairs both ways scored
    (the same volumes), with a subject-bootstrap 95 % CI of that paired difference."""
    specs = specs or registry.methods()
    raw, calibrated = (scores[scores.way == w] for w in WAYS[:2])
    key = [c for c in PAIR_KEY if c in scores]
    rows = []
    for m in methods:
        col, sign = specs[m].badness, specs[m].badness_sign
        if col not in scores:
            continue
        before, after = (pair_outcomes(s, col, sign)[[*key, "right"]] for s in (raw, calibrated))
        both = before.merge(after, on=key, suffixes=("", "_cal"))
        diff = both.right_cal - both.right
        value, low, high = subject_bootstrap(diff, both.subject, n_boot, seed)
        n = int(diff.notna().sum())
        rows.append({"site": site, "method": m, "effect": value, "effect_low": low, "effect_high": high, "n_pairs": n})
    return rows


def generalisation_metrics(table: Any, effects: Any = None) -> dict[str, Any]:
    """metrics/generalisation.json: ``<site>_<method>_<way>_{pairs_right[_low,_high],auroc}``, the mean
    over sites of each method and way (way names with spaces and ``+`` written as ``_``), and from
    ``effects`` (:func:`calibration_effect` rows) ``<site>_<method>_calibration_effect[_low,_high]``.
    A value that is not a finite number (no interval below :data:`MIN_SUBJECTS_CI` subjects) is left
    out: JSON has no NaN."""
    out: dict[str, Any] = {}

    def put(name: str, value: Any) -> None:
        if np.isfinite(float(value)):
            out[name] = round(float(value), 4)

    key = {w: w.replace(" + ", "_").replace("-", "_") for w in WAYS}
    for r in table.itertuples():
        for stat in ("pairs_right", "pairs_right_low", "pairs_right_high", "auroc"):
            put(f"{r.site}_{r.method}_{key[r.way]}_{stat}", getattr(r, stat))
    for (m, w), g in table.groupby(["method", "way"]):
        put(f"{m}_{key[w]}_pairs_right", g.pairs_right.mean())
        put(f"{m}_{key[w]}_auroc", g.auroc.mean())
    for r in effects.itertuples() if effects is not None else ():
        for stat in ("effect", "effect_low", "effect_high"):
            put(f"{r.site}_{r.method}_calibration_{stat}", getattr(r, stat))
    return out
