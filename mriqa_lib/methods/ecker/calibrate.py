"""Site calibration of paper 1 (Ecker et al.): a reference bank made of the site's own scans.

The paper's recipe for references: checked artifact-free scans are the HQ references and the same
scans after simulated artifacts are the LQ references. `mriqa calibrate` applies it to a site's
artifact-free scans: HQ = these scans, LQ = each scan after one simulated acquisition per artifact
kind, made by the pipeline's own functions (:func:`.synthesis.reference_pool`: same severities,
seeds ``case_seed(seed, "ref", kind, participant_id)``) and embedded by the scorer's network as the
train stage embeds its references (:func:`.experiments.reference_bank`). The bank has the format of
``models/ecker/references.npz``; :meth:`.score.Scorer.use_calibration` swaps it in.

Matching metadata (sex, height in cm, weight in kg) comes from a ``metadata`` table when given, else
from a BIDS ``participants.tsv`` above a scan; unknown values are stored as "" / NaN, and such
references are then equally close to every scan (matching falls back to all references).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mriqa_lib.io import MriqaInputError, Volume, atomic_path, write_json

from . import data as D

__all__ = ["BANK", "PROVENANCE", "calibrate", "load_bank", "participant_ids", "scan_metadata", "site_bank"]

#: the reference bank, same keys as models/ecker/references.npz
BANK = "references.npz"
#: which scans, seed, severities and metadata source made the bank
PROVENANCE = "references.json"
_META_KEYS = ("participant_id", "sex", "height", "weight")


def _scan_id(path: Path | None, index: int) -> str:
    """The BIDS subject (``sub-XXX``) of a file name, else the name without extension."""
    if path is None:
        return f"scan{index}"
    found = re.match(r"(sub-[A-Za-z0-9]+)", Path(path).name)
    return found.group(1) if found else Path(path).name.split(".")[0]


def participant_ids(volumes: list[Volume]) -> list[str]:
    """One unique id per scan (repeats of an id get ``-2``, ``-3``, ...): it seeds the scan's LQ versions."""
    ids, seen = [], {}
    for i, vol in enumerate(volumes):
        base = _scan_id(vol.path, i)
        seen[base] = seen.get(base, 0) + 1
        ids.append(base if seen[base] == 1 else f"{base}-{seen[base]}")
    return ids


def _participants_tsv(path: Path | None) -> Path | None:
    """The ``participants.tsv`` of the BIDS root above a scan (up to 4 folders up), if any."""
    if path is None:
        return None
    for folder in list(Path(path).resolve().parents)[:4]:
        if (folder / "participants.tsv").exists():
            return folder / "participants.tsv"
    return None


def _bids_row(vol: Volume, index: int, tables: dict, notes: list[str]) -> dict | None:
    """sex/height/weight of a scan from its BIDS ``participants.tsv``; None when absent or unusable."""
    table_path = _participants_tsv(vol.path)
    if table_path is None:
        return None
    if table_path not in tables:
        try:
            tables[table_path] = D.read_table(table_path).set_index("participant_id")
        except MriqaInputError as exc:  # a BIDS table without height/weight is common: not an error here
            tables[table_path] = None
            notes.append(f"not used: {exc}")
    table, sid = tables[table_path], _scan_id(vol.path, index)
    if table is None or sid not in table.index:
        return None
    return table.loc[sid, ["sex", "height", "weight"]].to_dict()


def _number(value: Any) -> float:
    """A float, NaN for a missing or non-numeric value."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _key(path: Any) -> str:
    """A path as the metadata table keys it (absolute, so relative and absolute spellings agree)."""
    return str(Path(path).resolve()) if path is not None else ""


def scan_metadata(volumes: list[Volume], metadata: dict | None = None) -> tuple[pd.DataFrame, list[str]]:
    """Matching covariates of each scan: ``sex`` (M/F, "" unknown), ``height`` (cm), ``weight`` (kg).

    Args:
        volumes: the site's scans.
        metadata: optional ``{file path: {"sex", "height", "weight"}}``; scans not in it are looked
            up in a BIDS ``participants.tsv`` above them.

    Returns:
        the table (one row per scan) and notes on where the values came from.
    """
    rows, tables, notes = [], {}, []
    given = {_key(k): v for k, v in (metadata or {}).items()}
    for i, vol in enumerate(volumes):
        row = given.get(_key(vol.path)) or _bids_row(vol, i, tables, notes) or {}
        sex = str(row.get("sex") or "").strip().upper()[:1]
        rows.append(
            {
                "sex": sex if sex in ("M", "F") else "",
                "height": _number(row.get("height")),
                "weight": _number(row.get("weight")),
            }
        )
    return pd.DataFrame(rows), notes


def site_bank(scorer, volumes: list[Volume], seed: int, metadata: dict | None = None) -> tuple[dict, list[str]]:
    """The reference bank of a site: embeddings ``(n_scans, n_slices, h)`` of the scans (``hq``) and of
    their simulated LQ versions (one key per artifact kind), and the matching metadata.

    Args:
        scorer: the loaded :class:`.score.Scorer` (network, preparation params ``scorer.p``).
        volumes: the site's artifact-free scans.
        seed: run seed of the simulated acquisitions (``ecker.seed``).
        metadata: optional table, see :func:`scan_metadata`.

    Returns:
        the bank (keys of ``models/ecker/references.npz``) and notes on the metadata.
    """
    from .experiments import reference_bank
    from .synthesis import reference_pool

    p = scorer.p.model_copy(update={"seed": int(seed)})
    ids = participant_ids(volumes)
    raw, spacing = {}, {}
    for i, vol in enumerate(volumes):
        raw[i], spacing[i] = D.volume_slices(vol, p, scorer.conform_grid)
    pool = reference_pool(raw, spacing, pd.DataFrame({"participant_id": ids}), np.arange(len(volumes)), p)
    meta, notes = scan_metadata(volumes, metadata)
    bank = {
        **reference_bank(scorer.net, pool),
        "participant_id": np.asarray(ids, dtype=str),
        "sex": meta["sex"].to_numpy(str),
        "height": meta["height"].to_numpy(float),
        "weight": meta["weight"].to_numpy(float),
    }
    return bank, notes


def _summary(volumes: list[Volume], bank: dict, seed: int, notes: list[str], p) -> dict[str, Any]:
    known = int(np.sum(np.isfinite(bank["height"]) & np.isfinite(bank["weight"]) & (bank["sex"] != "")))
    kinds = [k for k in bank if k not in ("hq", *_META_KEYS)]
    return {
        "method": "ecker",
        "fitted": "reference bank: HQ = the site's scans, LQ = their simulated versions (paper 1's recipe)",
        "n_scans": len(volumes),
        "lq_kinds": kinds,
        "seed": int(seed),
        "severities": {
            "motion": {"degrees": p.motion_degrees, "translation_mm": p.motion_translation_mm},
            "noise": {"sigma": p.noise_sigma},
            "respiratory": {"amplitude_mm": p.resp_amplitude_mm, "period_lines": p.resp_period_lines},
        },
        "metadata_known": known,
        "metadata_note": "references without sex/height/weight are equally close to every scan, so "
        "matching uses all of them" + (f"; {'; '.join(notes)}" if notes else ""),
        "files": [BANK, PROVENANCE],
    }


def calibrate(scorer, volumes: list[Volume], out_dir: Path, settings, *, metadata: dict | None = None) -> dict:
    """`mriqa calibrate` hook of paper 1: write the site's reference bank into ``out_dir``.

    Args:
        scorer: the loaded :class:`.score.Scorer`.
        volumes: artifact-free scans of one site, prepared as `mriqa score` prepares an input.
        out_dir: existing folder; receives ``references.npz`` and ``references.json``.
        settings: the project settings (``settings.ecker.seed`` seeds the simulated LQ versions).
        metadata: optional ``{path: {sex, height, weight}}`` for reference matching.

    Returns:
        a JSON-able summary (what was fitted, how many scans, metadata coverage).
    """
    if not volumes:
        raise MriqaInputError("ecker calibration: no scans given")
    seed = settings.ecker.seed
    bank, notes = site_bank(scorer, volumes, seed, metadata)
    out_dir = Path(out_dir)
    with atomic_path(out_dir / BANK) as tmp:
        np.savez_compressed(tmp, **bank)
    summary = _summary(volumes, bank, seed, notes, scorer.p)
    scans = [str(v.path) for v in volumes]
    write_json(out_dir / PROVENANCE, {**summary, "scans": scans, "participant_id": bank["participant_id"].tolist()})
    return summary


def load_bank(folder: Path, feature_dim: int, n_slices: int, lq: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The bank :func:`calibrate` wrote into ``folder``, checked against the scorer's network.

    Args:
        folder: the calibration folder.
        feature_dim: the encoder's embedding size h.
        n_slices: slices per scan the scorer compares (``ecker.n_slices``).
        lq: the LQ kinds the scorer compares with.

    Raises:
        MriqaInputError: the file is missing, unreadable, or does not fit the scorer (names the file).
    """
    path = Path(folder) / BANK
    if not path.exists():
        raise MriqaInputError(f"{path}: file not found (run `mriqa calibrate`)")
    try:
        with np.load(path, allow_pickle=False) as f:
            bank = {k: f[k] for k in f.files}
    except Exception as exc:  # zip, pickle or header errors: all mean a damaged file
        raise MriqaInputError(f"{path}: cannot read the reference bank ({type(exc).__name__}: {exc})") from None
    missing = [k for k in ("hq", *lq, *_META_KEYS) if k not in bank]
    if missing:
        raise MriqaInputError(f"{path}: missing {missing}; has {sorted(bank)}")
    want = (len(bank["participant_id"]), n_slices, feature_dim)
    bad = [k for k in ("hq", *lq) if bank[k].shape != want]
    if bad:
        raise MriqaInputError(f"{path}: {bad} not of shape {want} (made with another model?)")
    return bank
