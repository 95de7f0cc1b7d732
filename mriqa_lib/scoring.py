"""Score a user's scans with every trained method (`mriqa score`).

Inputs are NIfTI files, folders of them, or BIDS datasets (T1w). Each registered method's scorer
(:class:`mriqa_lib.methods.registry.Scorer`, loaded by its spec's ``load_scorer``) prepares the
volume with the same code the pipeline uses.
One row per volume goes to ``scores.tsv`` (written atomically after every volume, so an
interrupted run resumes where it stopped); a bad file gets an error row and the rest go on.
"""

from __future__ import annotations

import re
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mriqa_lib.io import (
    MriqaInputError,
    Volume,
    load_nifti,
    output_stem,
    read_tsv,
    save_nifti,
    write_tsv,
)
from mriqa_lib.methods import registry
from mriqa_lib.methods.registry import Flag

NIFTI = (".nii", ".nii.gz")
_BIDS_ENTITY = re.compile(r"(sub|ses)-([A-Za-z0-9]+)")


def badness() -> dict[str, tuple[str, float]]:
    """Each registered method's badness column and the sign that makes larger = worse scan."""
    return {name: (spec.badness, spec.badness_sign) for name, spec in registry.methods().items()}


def flags() -> dict[str, Flag]:
    """Each registered method's verdict rule (:class:`mriqa_lib.methods.registry.Flag`)."""
    return {name: spec.flag for name, spec in registry.methods().items()}


def __getattr__(name: str) -> Any:
    # Older names, read from the registry when asked for (a method registered later is included)
    if name == "METHODS":
        return registry.names()
    if name == "BADNESS":
        return badness()
    if name == "FLAGS":
        return flags()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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


def load_scorers(
    methods: Iterable[str], checkpoints: Path, settings: Any, log: Callable[[str], None] = print
) -> ScoreRun:
    """Load each method's scorer from ``checkpoints/<method>``; a missing model is reported,
    not fatal, so the other methods still score."""
    run = ScoreRun()
    known = registry.methods()
    for m in methods:
        if m not in known:
            raise MriqaInputError(f"unknown method '{m}'; choose from {', '.join(known)}")
        model_dir = checkpoints / m
        if not model_dir.exists():
            run.unavailable[m] = f"no trained model in {model_dir} (run `dvc repro` or pass --checkpoints)"
            continue
        try:
            run.scorers[m] = known[m].load_scorer(model_dir, settings)
        except Exception as exc:  # noqa: BLE001 (a broken model must not stop the other methods)
            run.unavailable[m] = f"cannot load ({type(exc).__name__}: {exc})"
    for m, why in run.unavailable.items():
        log(f"warning: method {m} skipped: {why}")
    return run


def prepare_input(volume: Volume, params: Any, prep_dir: Path | None = None) -> tuple[Volume, dict[str, Any]]:
    """Run the preparation chain on one volume; returns (what the methods score, record columns).

    ``params`` None = preparation off (the volume is used as is). With ``prep_dir`` the brain mask
    (input grid, canonical orientation) and the prepared volume are written there, their paths in
    ``prep_mask`` / ``prep_image``, also when the chain refuses the input (to show why).

    Raises:
        PrepareError: the input was refused (not a head, cut brain, failed registration, ...).
    """
    from mriqa_lib.prepare import PrepareError, prepare_scan

    if params is None:
        return volume, {"prep": "off"}
    try:
        prepared = prepare_scan(volume, params)
    except PrepareError as exc:
        exc.record.update(_write_prep(prep_dir, volume, exc.mask, None))
        raise
    record = dict(prepared.record)
    record.update(_write_prep(prep_dir, volume, prepared.mask, prepared.volume if prepared.mask is not None else None))
    return prepared.volume, record


def _write_prep(prep_dir: Path | None, volume: Volume, mask: Volume | None, image: Volume | None) -> dict[str, str]:
    out = {"prep_mask": "", "prep_image": ""}
    if prep_dir is None:
        return out
    stem = output_stem(volume.path)
    if mask is not None:
        out["prep_mask"] = str(save_nifti(prep_dir / f"{stem}_brainmask.nii.gz", mask.data, mask.affine, np.uint8))
    if image is not None:
        out["prep_image"] = str(save_nifti(prep_dir / f"{stem}_prepared.nii.gz", image.data, image.affine))
    return out


def score_volume(
    item: InputItem,
    run: ScoreRun,
    reference: Volume | None = None,
    maps_dir: Path | None = None,
    prepare: Any = None,
    calibration: Any = None,
) -> dict[str, Any]:
    """Score one file with every loaded method; never raises: problems go to ``error``.

    ``prepare``: the preparation settings (None = use the volume as is); a refused input gets
    an error row ``preparation: <reason>`` and no method's score. ``calibration``
    (:class:`mriqa_lib.calibration.Calibration`, already applied to ``run``): adds each calibrated
    method's ``<m>_site_z`` / ``<m>_site_pct`` after its raw columns, and says what they are
    relative to in ``calibration``.
    """
    from mriqa_lib.prepare import PrepareError

    row: dict[str, Any] = {"path": str(item.path), "subject": item.subject, "session": item.session}
    if calibration is not None:
        row["calibration"] = calibration.label
    start = time.perf_counter()
    try:
        volume, prep = prepare_input(
            load_nifti(item.path), prepare, maps_dir.parent / "prep" if maps_dir is not None else None
        )
        row.update(prep)
    except MriqaInputError as exc:
        row.update(error=str(exc), runtime_s=round(time.perf_counter() - start, 3))
        return row
    except PrepareError as exc:
        row.update(exc.record, error=f"preparation: {exc}", runtime_s=round(time.perf_counter() - start, 3))
        return row
    errors = _score_methods(row, volume, run, reference, maps_dir, calibration)
    row["runtime_s"] = round(time.perf_counter() - start, 3)
    row["error"] = "; ".join(errors)
    return row


def _score_methods(
    row: dict[str, Any],
    volume: Volume,
    run: ScoreRun,
    reference: Volume | None,
    maps_dir: Path | None,
    calibration: Any,
) -> list[str]:
    """Add every loaded method's columns (and seconds) to ``row``; returns the methods' errors."""
    errors = []
    known = registry.methods()
    for m, scorer in run.scorers.items():
        t0 = time.perf_counter()
        try:
            kwargs = {"reference": reference}
            if maps_dir is not None and m in known and known[m].map_column:
                kwargs["maps_dir"] = maps_dir
            row.update(scorer.score(volume, **kwargs))
            if calibration is not None:
                row.update(calibration.relative(m, row))
        except Exception as exc:  # noqa: BLE001 (report and go on with the other methods)
            errors.append(f"{m}: {type(exc).__name__}: {exc}")
            if not isinstance(exc, (MriqaInputError, ValueError)):
                traceback.print_exc()
        row[f"{m}_seconds"] = round(time.perf_counter() - t0, 3)
    return errors


def badness_rank(frame: Any) -> Any:
    """Mean over methods of each volume's rank by badness (1 = worst), for 'worst first'."""
    import pandas as pd

    ranks = []
    for col, sign in badness().values():
        if col in frame and frame[col].notna().any():
            ranks.append((sign * pd.to_numeric(frame[col], errors="coerce")).rank(ascending=False))
    if not ranks:
        return pd.Series(np.arange(1, len(frame) + 1, dtype=float), index=frame.index)
    return pd.concat(ranks, axis=1).mean(axis=1)


def score_inputs(
    items: list[InputItem],
    run: ScoreRun,
    out_dir: Path,
    force: bool = False,
    reference: Volume | None = None,
    progress: bool = True,
    prepare: Any = None,
    calibration: Any = None,
) -> Any:
    """Score every item into ``out_dir/scores.tsv`` (resuming unless ``force``); return the table.

    ``prepare``: preparation settings (:class:`mriqa_lib.prepare.PreparationParams`) or None to
    score the volumes as they are; the prepared files go to ``out_dir/prep``. ``calibration``: see
    :func:`score_volume`; rows scored under another calibration are scored again.
    """
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
            same_prep = (str(rec.get("prep", "off")) == "off") == (prepare is None)
            same_cal = calibration is None or rec.get("calibration") == calibration.label
            if done and wanted and same_prep and same_cal:
                rec["error"] = ""
                rows[rec["path"]] = rec
    todo = [i for i in items if str(i.path) not in rows]
    if len(todo) < len(items):
        print(f"{len(items) - len(todo)} volume(s) already scored in {tsv} (use --force to redo)")
    maps_dir = out_dir / "maps"
    for item in tqdm(todo, desc="scoring", unit="vol", disable=not progress):
        rows[str(item.path)] = score_volume(item, run, reference, maps_dir, prepare, calibration)
        write_tsv(tsv, _frame([rows[str(i.path)] for i in items if str(i.path) in rows]))
    frame = _frame([rows[str(i.path)] for i in items])
    write_tsv(tsv, frame)
    return frame


def _frame(rows: list[dict[str, Any]]) -> Any:
    import pandas as pd

    frame = pd.DataFrame(rows)
    first = ["path", "subject", "session"]
    last = [c for c in frame.columns if c.endswith("_seconds")] + ["calibration", "runtime_s", "error"]
    middle = [c for c in frame.columns if c not in first and c not in last]
    cols = [c for c in first + middle + last if c in frame.columns]
    return frame[cols]
