"""AMP SCZ / HCPEP reader: Clinica ``t1-linear`` outputs (CAPS layout) plus a manual QC table.

Layout read (Clinica CAPS, what ``clinica run t1-linear`` writes)::

    CAPS/subjects/sub-<label>/ses-<label>/t1_linear/sub-<label>_ses-<label>_space-MNI152NLin2009cSym[_desc-Crop]_res-1x1x1_T1w.nii.gz

QC table (CSV or TSV, one row per scan): ``subject``, ``session``, ``site``, ``score`` (1 = poor,
2 = fair, 3 = good, 4 = excellent) and ``comments`` (free text, may be empty). Subject and session
labels may be given with or without their ``sub-`` / ``ses-`` prefixes. A few common spellings of
the column names are accepted (``participant_id``, ``session_id``, ``qc_score``, ``comment``).

Paper 5 (Bricout et al.): the scans are split by site (26 sites for motion synthesis, 7 for QC),
and motion is synthesised only on scans with score 4 whose comments do not mention motion. Sites
and subjects are split by :mod:`mriqa_lib.data.splits` (the one owner of splits), see
:func:`mriqa_lib.methods.bricout.synthesis.scans_table`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from mriqa_lib.io import MriqaInputError

COLUMNS = ("subject", "session", "site", "score", "comments")
ALIASES = {
    "participant_id": "subject",
    "sub": "subject",
    "subject_id": "subject",
    "session_id": "session",
    "ses": "session",
    "visit": "session",
    "qc_score": "score",
    "qc": "score",
    "rating": "score",
    "comment": "comments",
    "qc_comments": "comments",
    "notes": "comments",
}


def _label(value: object, prefix: str) -> str:
    s = str(value).strip()
    return s if s.startswith(prefix) else f"{prefix}{s}"


def read_qc_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read and validate a QC table.

    Args:
        path: CSV (``.csv``) or TSV (any other suffix) file.

    Returns:
        DataFrame with ``subject`` (``sub-...``), ``session`` (``ses-...``), ``site`` (str),
        ``score`` (int 1-4) and ``comments`` (str, empty when missing).

    Raises:
        MriqaInputError: missing file, missing columns, scores outside 1-4, duplicated scans.
    """
    path = Path(path)
    if not path.exists():
        raise MriqaInputError(f"{path}: QC table not found")
    sep = "," if path.suffix.lower() == ".csv" else "\t"
    try:
        frame = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
    except Exception as exc:  # pandas raises many parser error types
        raise MriqaInputError(f"{path}: cannot parse QC table ({exc})") from None
    frame = frame.rename(columns={c: ALIASES.get(c.strip().lower(), c.strip().lower()) for c in frame.columns})
    if "comments" not in frame.columns:
        frame["comments"] = ""
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise MriqaInputError(f"{path}: missing column(s) {missing}; found {list(frame.columns)}")
    score = pd.to_numeric(frame["score"], errors="coerce")
    bad = frame.index[~score.isin([1, 2, 3, 4])]
    if len(bad):
        raise MriqaInputError(f"{path}: row {int(bad[0]) + 2}: score {frame['score'][bad[0]]!r} is not 1, 2, 3 or 4")
    out = pd.DataFrame(
        {
            "subject": [_label(s, "sub-") for s in frame["subject"]],
            "session": [_label(s, "ses-") for s in frame["session"]],
            "site": frame["site"].astype(str).str.strip(),
            "score": score.astype(int),
            "comments": frame["comments"].astype(str).fillna(""),
        }
    )
    dup = out.duplicated(["subject", "session"])
    if dup.any():
        row = out[dup].iloc[0]
        raise MriqaInputError(f"{path}: scan {row.subject}/{row.session} appears more than once")
    return out


def find_t1_linear(caps: str | os.PathLike, subject: str, session: str, pattern: str = "*_T1w.nii.gz") -> Path:
    """Path of the t1-linear image of one scan (the cropped ``desc-Crop`` one when both exist).

    Raises:
        MriqaInputError: no matching file (the message names the folder searched).
    """
    folder = Path(caps) / "subjects" / subject / session / "t1_linear"
    hits = sorted(folder.glob(pattern))
    if not hits:
        raise MriqaInputError(f"{folder}: no t1-linear image matching {pattern!r}")
    crop = [h for h in hits if "desc-Crop" in h.name]
    return crop[0] if crop else hits[0]


def load_dataset(
    caps: str | os.PathLike, qc_table: str | os.PathLike, dataset: str, pattern: str = "*_T1w.nii.gz"
) -> pd.DataFrame:
    """QC table of one data set joined with its t1-linear image paths.

    Args:
        caps: CAPS folder (Clinica output).
        qc_table: QC table (see :func:`read_qc_table`).
        dataset: name stored in the ``dataset`` column (e.g. "AMPSCZ", "HCPEP").
        pattern: glob of the image inside ``t1_linear/``.

    Returns:
        DataFrame with ``dataset, subject, session, site, score, comments, path``.
    """
    if not Path(caps).is_dir():
        raise MriqaInputError(f"{caps}: CAPS folder not found")
    frame = read_qc_table(qc_table)
    frame.insert(0, "dataset", dataset)
    frame["path"] = [str(find_t1_linear(caps, s, v, pattern)) for s, v in zip(frame.subject, frame.session)]
    return frame


def synthesis_eligible(frame: pd.DataFrame, motion_regex: str = "motion|movement|moving") -> pd.Series:
    """True for scans usable for motion synthesis: score 4 and no mention of motion in the comments."""
    mentions = frame["comments"].fillna("").str.contains(motion_regex, flags=re.IGNORECASE, regex=True)
    return (frame["score"] == 4) & ~mentions


def qc_class(score: int | np.ndarray) -> np.ndarray | int:
    """3-class QC target of paper 5: scores 1 and 2 -> 0, 3 -> 1, 4 -> 2."""
    s = np.asarray(score)
    out = np.where(s <= 2, 0, s - 2)
    return int(out) if out.ndim == 0 else out


CLASS_NAMES = ("1/2", "3", "4")
