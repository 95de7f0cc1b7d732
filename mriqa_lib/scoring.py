"""Score a user's scans with every trained method (`mriqa score`).

Inputs are NIfTI files, folders of them, or BIDS datasets (T1w). Each method's scorer
(``mriqa_lib/methods/<m>/score.py``) prepares the volume with the same code the pipeline uses.
One row per volume goes to ``scores.tsv`` (written atomically after every volume, so an
interrupted run resumes where it stopped); a bad file gets an error row and the rest go on.
"""
from __future__ import annotations

import importlib
import re
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from mriqa_lib.io import MriqaInputError, Volume, load_nifti, read_tsv, write_tsv

METHODS = ("ecker", "zuo", "shaw", "ssfd", "bricout")
NIFTI = (".nii", ".nii.gz")
_BIDS_ENTITY = re.compile(r"(sub|ses)-([A-Za-z0-9]+)")

# For ordering the report: each method's column and the sign that makes larger = worse scan.
BADNESS = {
    "ecker": ("ecker_lq_margin", 1.0),
    "zuo": ("zuo_logdensity", -1.0),
    "shaw": ("shaw_total_sigma", 1.0),
    "ssfd": ("ssfd_distance", 1.0),
    "bricout": ("bricout_motion_rms", 1.0),
}


@dataclass
class InputItem:
    """One volume to score, with its BIDS entities when known."""

    path: Path
    subject: str = ""
    session: str = ""


def _is_nifti(path: Path) -> bool:
    return path.name.endswith(NIFTI)


def _entities(path: Path) -> tuple[str, str]:
    found = dict(_BIDS_ENTITY.findall(path.name))
    return found.get("sub", ""), found.get("ses", "")


def discover_inputs(inputs: Iterable[str | Path]) -> list[InputItem]:
    """Expand files, folders and BIDS datasets into a sorted, de-duplicated list of volumes.

    A folder with ``dataset_description.json`` is a BIDS dataset: its ``sub-*/[ses-*/]anat/*_T1w``
    images are taken (derivatives and probability maps are not). Any other folder contributes
    every NIfTI file below it. A path that does not exist raises :class:`MriqaInputError`.
    """
    items: dict[Path, InputItem] = {}
    for raw in inputs:
        path = Path(raw)
        if not path.exists():
            raise MriqaInputError(f"{path}: no such file or folder")
        if path.is_dir():
            if (path / "dataset_description.json").exists():
                files = [p for p in path.glob("sub-*/**/anat/*_T1w.nii*") if _is_nifti(p)]
            else:
                files = [p for p in path.rglob("*") if p.is_file() and _is_nifti(p)]
        else:
            files = [path]
        for f in sorted(files):
            sub, ses = _entities(f)
            items.setdefault(f.resolve(), InputItem(f, sub, ses))
    return sorted(items.values(), key=lambda i: str(i.path))


@dataclass
class ScoreRun:
    """Loaded scorers and the methods that could not be loaded (with the reason)."""

    scorers: dict[str, Any] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)


def load_scorers(methods: Iterable[str], checkpoints: Path, settings: Any,
                 log: Callable[[str], None] = print) -> ScoreRun:
    """Load each method's scorer from ``checkpoints/<method>``; a missing model is reported,
    not fatal, so the other methods still score."""
    run = ScoreRun()
    for m in methods:
        if m not in METHODS:
            raise MriqaInputError(f"unknown method '{m}'; choose from {', '.join(METHODS)}")
        model_dir = checkpoints / m
        if not model_dir.exists():
            run.unavailable[m] = f"no trained model in {model_dir} (run `dvc repro` or pass --checkpoints)"
            continue
        try:
            module = importlib.import_module(f"mriqa_lib.methods.{m}.score")
            run.scorers[m] = module.load_scorer(model_dir, settings)
        except Exception as exc:  # a broken model must not stop the other methods
            run.unavailable[m] = f"cannot load ({type(exc).__name__}: {exc})"
    for m, why in run.unavailable.items():
        log(f"warning: method {m} skipped: {why}")
    return run


def score_volume(item: InputItem, run: ScoreRun, reference: Volume | None = None,
                 maps_dir: Path | None = None) -> dict[str, Any]:
    """Score one file with every loaded method; never raises: problems go to ``error``."""
    row: dict[str, Any] = {"path": str(item.path), "subject": item.subject, "session": item.session}
    errors = []
    start = time.perf_counter()
    try:
        volume = load_nifti(item.path)
    except MriqaInputError as exc:
        row.update(error=str(exc), runtime_s=round(time.perf_counter() - start, 3))
        return row
    for m, scorer in run.scorers.items():
        t0 = time.perf_counter()
        try:
            kwargs = {"reference": reference}
            if maps_dir is not None and getattr(scorer, "writes_maps", False):
                kwargs["maps_dir"] = maps_dir
            row.update(scorer.score(volume, **kwargs))
        except Exception as exc:  # report and go on with the other methods
            errors.append(f"{m}: {type(exc).__name__}: {exc}")
            if not isinstance(exc, (MriqaInputError, ValueError)):
                traceback.print_exc()
        row[f"{m}_seconds"] = round(time.perf_counter() - t0, 3)
    row["runtime_s"] = round(time.perf_counter() - start, 3)
    row["error"] = "; ".join(errors)
    return row


def badness_rank(frame: "Any") -> "Any":
    """Mean over methods of each volume's rank by badness (1 = worst), for 'worst first'."""
    import pandas as pd

    ranks = []
    for col, sign in BADNESS.values():
        if col in frame and frame[col].notna().any():
            ranks.append((sign * pd.to_numeric(frame[col], errors="coerce")).rank(ascending=False))
    if not ranks:
        return pd.Series(np.arange(1, len(frame) + 1, dtype=float), index=frame.index)
    return pd.concat(ranks, axis=1).mean(axis=1)


def score_inputs(items: list[InputItem], run: ScoreRun, out_dir: Path, force: bool = False,
                 reference: Volume | None = None, progress: bool = True) -> "Any":
    """Score every item into ``out_dir/scores.tsv`` (resuming unless ``force``); return the table."""
    import pandas as pd
    from tqdm import tqdm

    out_dir.mkdir(parents=True, exist_ok=True)
    tsv = out_dir / "scores.tsv"
    rows: dict[str, dict[str, Any]] = {}
    if tsv.exists() and not force:
        old = read_tsv(tsv, required=("path", "error"))
        for rec in old.to_dict("records"):
            done = isinstance(rec.get("error"), float) or not rec.get("error")
            wanted = all(f"{m}_seconds" in rec and not pd.isna(rec[f"{m}_seconds"]) for m in run.scorers)
            if done and wanted:
                rec["error"] = ""
                rows[rec["path"]] = rec
    todo = [i for i in items if str(i.path) not in rows]
    if len(todo) < len(items):
        print(f"{len(items) - len(todo)} volume(s) already scored in {tsv} (use --force to redo)")
    maps_dir = out_dir / "maps"
    for item in tqdm(todo, desc="scoring", unit="vol", disable=not progress):
        rows[str(item.path)] = score_volume(item, run, reference, maps_dir)
        write_tsv(tsv, _frame([rows[str(i.path)] for i in items if str(i.path) in rows]))
    frame = _frame([rows[str(i.path)] for i in items])
    write_tsv(tsv, frame)
    return frame


def _frame(rows: list[dict[str, Any]]) -> "Any":
    import pandas as pd

    frame = pd.DataFrame(rows)
    first = ["path", "subject", "session"]
    last = [c for c in frame.columns if c.endswith("_seconds")] + ["runtime_s", "error"]
    middle = [c for c in frame.columns if c not in first and c not in last]
    cols = [c for c in first + middle + last if c in frame.columns]
    return frame[cols]
