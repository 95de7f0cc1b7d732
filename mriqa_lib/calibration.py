"""Site calibration: a site's own clean scans as the yardstick (`mriqa calibrate`, `mriqa score --calibration`).

`mriqa calibrate SCANS --out DIR` scores a handful of a site's artifact-free scans (prepared as
`mriqa score` prepares its inputs) with every no-reference method and writes ``DIR/calibration.json``:
each method's badness values on those clean scans, and the fingerprint of the model they were
measured with. A method whose spec has a ``calibrate`` hook (P1 references, P2 density) also refits
what it needs into ``DIR/<method>/``; its scorer's ``use_calibration`` reads it back, so that method's
raw scores change too. The clean badness values are measured after the hook ran (so with the scores
`mriqa score --calibration DIR` will give; for a hooked method they are in-sample, hence optimistic).

`mriqa score --calibration DIR` then adds, next to the raw columns, ``<m>_site_z`` (z-score of the
scan's badness against the clean scans, sign-corrected so that larger = worse, sd with ddof=1) and
``<m>_site_pct`` (mid-rank percentile of its badness among the clean scans, 0-100). Without
``--calibration`` the embedded calibration ``models/calibration`` (the synthetic cohort's held-out
clean scans, :func:`embedded_calibration`) is used when present. The ``calibration`` column of
``scores.tsv`` and the report say which.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from mriqa_lib.io import MriqaInputError, Volume, atomic_dir, load_nifti, read_json, write_json
from mriqa_lib.methods import registry

__all__ = [
    "Calibration",
    "calibrate",
    "embedded_calibration",
    "load_calibration",
    "model_fingerprint",
    "resolve_calibration",
    "site_percentile",
    "site_z",
]

VERSION = 1
MANIFEST = "calibration.json"
MIN_SCANS = 2  # a z-score needs a spread, and one scan has none
FEW_SCANS = 3  # below this the sd is barely estimated: said in the report
SD_FLOOR = 1e-6  # sd used >= 1e-6 x |clean mean|, so identical clean scores do not divide by zero
EMBEDDED = Path("models/calibration")
NO_CALIBRATION = "no calibration: raw scores only"


# ---------------------------------------------------------------- the relative scores


def site_z(value: float, clean: list[float], sign: float) -> float:
    """Sign-corrected z-score of a raw badness ``value`` against the clean scans' raw values.

    ``sign * (value - mean) / sd``: positive = worse than the site's clean scans, in clean sds
    (ddof=1, floored at ``SD_FLOOR * |mean|``; a floor of 0 still divides by zero: inf).
    """
    ref = np.asarray(clean, dtype=float)
    sd = max(float(np.std(ref, ddof=1)), SD_FLOOR * abs(float(ref.mean())))
    diff = sign * (value - float(ref.mean()))
    return diff / sd if sd > 0 else math.copysign(math.inf, diff) if diff else 0.0


def site_percentile(value: float, clean: list[float], sign: float) -> float:
    """Percentile (0-100) of the scan's badness among the clean scans' badness, ties counted half (mid-rank).

    100 = worse than every clean scan, 50 = as bad as the median clean scan.
    """
    from scipy.stats import percentileofscore

    return float(percentileofscore(sign * np.asarray(clean, dtype=float), sign * value, kind="mean"))


def model_fingerprint(model_dir: str | Path) -> str:
    """sha256 (hex) over the sorted relative paths and bytes of every file in ``model_dir``."""
    model_dir = Path(model_dir)
    digest = hashlib.sha256()
    for path in sorted(p for p in model_dir.rglob("*") if p.is_file()):
        digest.update(path.relative_to(model_dir).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


@dataclass
class Calibration:
    """A loaded calibration (``kind`` "site" or "embedded"), or none (``kind`` "none").

    ``manifest`` is ``calibration.json``; ``notes`` are what the report says about it (methods
    scored raw only, too few scans).
    """

    kind: str = "none"
    folder: Path | None = None
    manifest: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def methods(self) -> dict[str, dict[str, Any]]:
        return self.manifest.get("methods", {})

    @property
    def label(self) -> str:
        """What the scores are relative to, in words (the TSV's ``calibration`` column and the report)."""
        if self.kind == "none":
            return NO_CALIBRATION
        if self.kind == "embedded":
            return "relative to the synthetic embedded cohort (no site calibration)"
        m = self.manifest
        return f"relative to the site calibration {self.folder} ({m['n_scans']} scans, {m['created']})"

    def relative(self, method: str, row: dict[str, Any]) -> dict[str, float]:
        """``<m>_site_z`` and ``<m>_site_pct`` of the row's raw badness ({} when not calibrated or not scored)."""
        entry = self.methods.get(method)
        try:
            value = float(row.get(entry["badness"]))  # type: ignore[index, arg-type]
        except (TypeError, ValueError):  # not calibrated (entry None) or not scored
            return {}
        if not math.isfinite(value):
            return {}
        clean, sign = entry["clean_badness"], float(entry["badness_sign"])
        z, pct = site_z(value, clean, sign), site_percentile(value, clean, sign)
        return {f"{method}_site_z": z, f"{method}_site_pct": pct}


# ---------------------------------------------------------------- reading one back


def _checked_manifest(path: Path) -> dict[str, Any]:
    """``calibration.json`` parsed and checked for version and shape; MriqaInputError naming the file."""
    if not path.exists():
        raise MriqaInputError(f"{path}: no calibration here (file not found); make one with `mriqa calibrate`")
    manifest = read_json(path)
    version = manifest.get("version") if isinstance(manifest, dict) else None
    if version != VERSION:
        raise MriqaInputError(
            f"{path}: calibration version {version!r} is not one this mriqa reads ({VERSION}); re-run `mriqa calibrate`"
        )
    try:
        for m, entry in manifest["methods"].items():
            clean = [float(v) for v in entry["clean_badness"]]
            if len(clean) < MIN_SCANS or entry["badness_sign"] not in (1, -1) or not entry["model"]:
                raise ValueError(f"method {m}: fewer than {MIN_SCANS} clean values, a bad sign or no model")
            if not isinstance(entry["badness"], str):
                raise TypeError(f"method {m}: badness is not a column name")
        if not isinstance(manifest["n_scans"], int) or not isinstance(manifest["created"], str):
            raise TypeError("n_scans or created is missing or of the wrong type")
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise MriqaInputError(f"{path}: malformed calibration ({type(exc).__name__}: {exc})") from None
    return manifest


def load_calibration(folder: str | Path, model_dirs: dict[str, Path]) -> Calibration:
    """Read ``folder/calibration.json`` and check it belongs to the models in use.

    Args:
        folder: the calibration folder (`mriqa calibrate --out`).
        model_dirs: method -> the model folder it scores with; each method the calibration holds
            must have been calibrated with exactly that model (same :func:`model_fingerprint`).

    Raises:
        MriqaInputError: missing or corrupt JSON, unknown version, or another model's calibration
            (naming the file, the method and both fingerprints).
    """
    folder = Path(folder)
    path = folder / MANIFEST
    manifest = _checked_manifest(path)
    for m, model_dir in model_dirs.items():
        entry = manifest["methods"].get(m)
        if entry is None:
            continue
        found = model_fingerprint(model_dir)
        if found != entry["model"]:
            raise MriqaInputError(
                f"{path}: method {m} was calibrated for another model (fingerprint {entry['model'][:16]}, "
                f"{entry.get('model_dir', '?')}) than the one in {model_dir} (fingerprint {found[:16]}); "
                "re-run `mriqa calibrate` with this model"
            )
    cal = Calibration(manifest.get("kind", "site"), folder, manifest)
    if manifest["n_scans"] < FEW_SCANS:
        cal.notes.append(f"only {manifest['n_scans']} calibration scans: the z-scores' sd is barely estimated")
    return cal


def apply_calibration(cal: Calibration, run: Any, log: Callable[[str], None] = print) -> None:
    """Hand each loaded scorer its method's own calibration (``use_calibration``) and note the
    methods the calibration does not cover (they are scored raw only). ``run``: a ScoreRun."""
    if cal.kind == "none":
        return
    skipped = cal.manifest.get("skipped", {})
    for m, scorer in run.scorers.items():
        entry = cal.methods.get(m)
        if entry is None:
            why = skipped.get(m, "not in the calibration")
            cal.notes.append(f"{m}: {why}; raw score only")
            log(f"warning: {m} scored raw only: {why}")
        elif entry.get("calibrated") is not None:
            if not hasattr(scorer, "use_calibration"):
                raise MriqaInputError(f"{cal.folder / MANIFEST}: holds {m}'s own calibration; its scorer cannot use it")
            scorer.use_calibration(cal.folder / m)


def resolve_calibration(
    folder: Path | None, checkpoints: Path, run: Any, log: Callable[[str], None] = print
) -> Calibration:
    """The calibration `mriqa score` uses, applied to ``run`` (a ScoreRun): ``folder`` when given (a
    bad one is an error), else the embedded ``checkpoints/calibration`` when present and valid for
    these models (otherwise a warning), else none."""
    model_dirs = {m: checkpoints / m for m in run.scorers}
    embedded = checkpoints / "calibration"
    if folder is not None:
        cal = load_calibration(folder, model_dirs)
    elif (embedded / MANIFEST).exists():
        try:
            cal = load_calibration(embedded, model_dirs)
        except MriqaInputError as exc:
            log(f"warning: embedded calibration not used: {exc}")
            cal = Calibration(notes=[f"embedded calibration not used: {exc}"])
    else:
        cal = Calibration()
    apply_calibration(cal, run, log)
    return cal


# ---------------------------------------------------------------- making one


def clean_volumes(items: list[Any], prepare: Any, progress: bool = True) -> list[Volume]:
    """Load and prepare each calibration scan (``items``: InputItems); ``prepare`` None = as is.

    Raises:
        MriqaInputError: an unreadable file, or a scan the preparation refuses (naming scan and reason).
    """
    from tqdm import tqdm

    from mriqa_lib.prepare import PrepareError
    from mriqa_lib.scoring import prepare_input

    volumes = []
    for item in tqdm(items, desc="preparing", unit="scan", disable=not progress):
        try:
            volumes.append(prepare_input(load_nifti(item.path), prepare)[0])
        except PrepareError as exc:
            raise MriqaInputError(
                f"{item.path}: refused by the preparation ({exc}); calibration scans must be clean, usable scans"
            ) from None
    return volumes


def _clean_badness(m: str, spec: Any, scorer: Any, volumes: list[Volume]) -> list[float]:
    """The method's raw badness on every clean volume; an error naming scan and method otherwise."""
    values = []
    for vol in volumes:
        try:
            value = float(scorer.score(vol).get(spec.badness, math.nan))
        except Exception as exc:  # noqa: BLE001 (any scorer failure: name the scan)
            raise MriqaInputError(f"{vol.path}: method {m} cannot score it ({type(exc).__name__}: {exc})") from None
        if not math.isfinite(value):
            raise MriqaInputError(f"{vol.path}: method {m} gave no finite {spec.badness}")
        values.append(value)
    return values


def _method_entry(m: str, scorer: Any, volumes: list[Volume], folder: Path, settings: Any, hooks: bool) -> dict:
    """One method's manifest entry; its hook (when ``hooks``) writes into ``folder/<m>`` first."""
    spec = registry.get(m)
    summary = None
    if hooks and spec.calibrate is not None:
        (folder / m).mkdir()
        summary = spec.calibrate(scorer, volumes, folder / m, settings)
        json.dumps(summary)  # the manifest must hold it: fail here, not half-way through writing
        if not hasattr(scorer, "use_calibration"):
            raise TypeError(f"method {m} has a calibrate hook but its scorer has no use_calibration")
        scorer.use_calibration(folder / m)  # clean badness as `mriqa score --calibration` will see it
    return {
        "badness": spec.badness,
        "badness_sign": spec.badness_sign,
        "clean_badness": _clean_badness(m, spec, scorer, volumes),
        "calibrated": summary,
    }


def _skipped(run: Any) -> dict[str, str]:
    """Methods of ``run`` (a ScoreRun) not calibrated, with why: full-reference or not loaded."""
    specs = registry.methods()
    out = {
        m: "full-reference: nothing to calibrate without a reference" for m in run.scorers if specs[m].full_reference
    }
    out.update({m: f"not loaded: {why}" for m, why in run.unavailable.items()})
    return out


def _header(items: list[Any], prepare: Any, kind: str, skipped: dict[str, str]) -> dict[str, Any]:
    """The manifest without its methods."""
    return {
        "version": VERSION,
        "kind": kind,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "n_scans": len(items),
        "scans": [str(i.path) for i in items],
        "prepared": prepare is not None,
        "methods": {},
        "skipped": skipped,
    }


def calibrate(
    items: list[Any],
    run: Any,
    out: Path,
    settings: Any,
    checkpoints: Path,
    *,
    prepare: Any = None,
    force: bool = False,
    hooks: bool = True,
    kind: str = "site",
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Write the calibration folder ``out`` from clean scans; returns the manifest.

    Args:
        items: the clean scans (InputItems from ``scoring.discover_inputs``), at least ``MIN_SCANS``.
        run: the loaded scorers (a ScoreRun); full-reference methods are skipped (no reference).
        settings: the settings the models were trained with (passed to the hooks).
        checkpoints: folder of the model folders (``checkpoints/<m>`` is fingerprinted).
        prepare: preparation settings, None = scans used as they are (already in reference space).
        force: replace an existing non-empty ``out``.
        hooks: run the methods' own ``calibrate`` hooks (off for the embedded calibration: the
            models were trained on that cohort, and only its clean-score distribution is wanted).
        kind: "site" or "embedded" (what the scores are said to be relative to).
    """
    if len(items) < MIN_SCANS:
        raise MriqaInputError(
            f"calibration needs at least {MIN_SCANS} clean scans (a z-score needs their spread), got {len(items)}"
        )
    manifest = _header(items, prepare, kind, _skipped(run))
    todo = [m for m in run.scorers if m not in manifest["skipped"]]
    if not todo:
        raise MriqaInputError("no no-reference method loaded to calibrate: " + "; ".join(manifest["skipped"].values()))

    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not force:
        raise MriqaInputError(f"{out}: exists and is not empty; use --force to replace it")
    with atomic_dir(out) as tmp:  # a failure leaves no half-written folder and any previous one intact
        volumes = clean_volumes(items, prepare, progress)
        for m in todo:
            entry = {"model": model_fingerprint(checkpoints / m), "model_dir": str(checkpoints / m)}
            manifest["methods"][m] = entry | _method_entry(m, run.scorers[m], volumes, tmp, settings, hooks)
            clean = manifest["methods"][m]["clean_badness"]
            log(f"{m}: {len(clean)} clean scans, mean {np.mean(clean):.4g}, sd {np.std(clean, ddof=1):.2g}")
        write_json(tmp / MANIFEST, manifest)
    if len(items) < FEW_SCANS:
        log(f"note: only {len(items)} scans; {FEW_SCANS} or more give a usable sd")
    return manifest


def embedded_calibration(
    settings: Any,
    out: str | Path = EMBEDDED,
    data: str | Path = "data/embedded",
    checkpoints: str | Path = "models",
    progress: bool = True,
) -> dict[str, Any]:
    """The embedded calibration: the clean-score distribution of the embedded cohort's held-out test
    subjects (``data/<sub>/anat/<sub>_T1w.nii.gz``, already in reference space: not prepared, no hooks),
    written to ``out`` (replacing it); what `mriqa score` uses without ``--calibration``. Returns the manifest."""
    from mriqa_lib.data.splits import held_out
    from mriqa_lib.scoring import InputItem, load_scorers

    data, checkpoints = Path(data), Path(checkpoints)
    subjects = sorted(held_out(data / "participants.tsv"))
    items = [InputItem(data / s / "anat" / f"{s}_T1w.nii.gz", s) for s in subjects]
    run = load_scorers(registry.names(), checkpoints, settings)
    opts = {"force": True, "hooks": False, "kind": "embedded", "progress": progress}
    return calibrate(items, run, Path(out), settings, checkpoints, **opts)
