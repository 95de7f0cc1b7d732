"""AMP SCZ / HCPEP reader: Clinica ``t1-linear`` outputs (CAPS layout) plus the QC tables as the
authors of paper 5 read them (chbricout/motiondetector).

Layout read (Clinica CAPS, what ``clinica run t1-linear`` writes from the BIDS source name)::

    CAPS/subjects/sub-<label>/ses-<label>/t1_linear/
        sub-<label>_ses-<label>[_rec-<norm|nonorm>][_run-<n>]_space-MNI152NLin2009cSym[_desc-Crop]_res-1x1x1_T1w.nii.gz

AMP SCZ delivers two reconstructions of a T1w scan (``rec-norm``: intensity-normalised on the
scanner, ``rec-nonorm``) and sometimes two runs. The authors used the uncropped ``rec-norm`` image:
their notebook globs ``*_space-MNI152NLin2009cSym_res-1x1x1_T1w.nii.gz`` and every path of their
``src/dataset/ampscz/finetune.csv`` is ``..._rec-norm_run-<n>_space-MNI152NLin2009cSym_res-1x1x1_T1w``,
or the file without a ``rec`` entity where the scan has none. :func:`find_t1_linear` applies that
rule and refuses to guess otherwise (two runs, or only ``rec-nonorm``): the error names the files.

QC tables (CSV, or TSV for any other suffix), one row per scan; the kind is told by its columns:

* AMP SCZ QC file (the authors' ``AMPSCZ_scores.csv``): ``sub_id_gs`` (e.g. ``IR00124``),
  ``ses_id_gs`` (e.g. ``202210141``), ``timepoint_gs``, ``score`` (1 = poor ... 4 = excellent; some
  versions name it ``scores``; ``-`` or empty = not rated, dropped as the authors did) and
  ``comment``. The site is the first two letters of ``sub_id_gs`` (the authors' rule). The authors'
  scan lists ``pretrain.csv`` / ``finetune.csv`` have the same columns plus ``data``, the t1-linear
  file they used (``AMPSCZ-Preproc/subjects/...``), and ``group``, the split they put the scan in:
  given them (both at once: :func:`read_qc_tables`), that file is read (it settles two-run scans as
  the authors did) and that split kept.
* HCPEP sheet (the authors' ``hcpep_scores.csv``): ``Date`` (d/m/Y), ``Subject ID``
  (``<subject>_MR<session>``, e.g. ``4002_MR2`` -> ``sub-4002/ses-2``), ``T1w`` (rating; split
  ratings such as ``3/4`` or ``2 or 3`` count as the lower one, empty = not rated, dropped),
  ``T1w comment`` and ``Center`` (the site). A scan rated on two dates keeps its latest rating.
* the former generic table (``subject``, ``session``, ``site``, ``score``, ``comments``), still read.

Paper 5 (Bricout et al.): the scans are split by site (26 sites for motion synthesis, 7 for QC:
the authors' ``src/dataset/ampscz/sites.csv``, read by :func:`read_sites`), and motion is
synthesised only on scans with score 4 whose comments do not mention motion. Sites and subjects are
split by :mod:`mriqa_lib.data.splits` (the one owner of splits), see
:func:`mriqa_lib.methods.bricout.synthesis.scans_table`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
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
#: the authors' AMP SCZ QC file and HCPEP sheet: the columns read
AMPSCZ_COLUMNS = ("sub_id_gs", "ses_id_gs", "score", "comment")
HCPEP_COLUMNS = ("Subject ID", "T1w", "T1w comment", "Center")
#: ratings that mean "not rated" (the authors mapped them to -1 and dropped them)
UNRATED = {"", "-", "nan", "none"}
#: Clinica t1-linear image of one scan: the entities the file choice looks at
_REC = re.compile(r"_rec-([A-Za-z0-9]+)")
_RUN = re.compile(r"_run-([A-Za-z0-9]+)")


def _label(value: object, prefix: str) -> str:
    s = str(value).strip()
    return s if s.startswith(prefix) else f"{prefix}{s}"


def _read_table(path: Path) -> pd.DataFrame:
    """All cells as stripped-free strings (CSV for ``.csv``, TSV otherwise); a clear error if unreadable."""
    if not path.exists():
        raise MriqaInputError(f"{path}: QC table not found")
    sep = "," if path.suffix.lower() == ".csv" else "\t"
    try:
        return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
    except Exception as exc:  # pandas raises many parser error types
        raise MriqaInputError(f"{path}: cannot parse QC table ({exc})") from None


def _require(frame: pd.DataFrame, path: Path, columns: tuple[str, ...], kind: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise MriqaInputError(f"{path}: {kind}: missing column(s) {missing}; found {list(frame.columns)}")


def _scores(values: pd.Series, path: Path, column: str) -> pd.Series:
    """Integer ratings 1-4 (NaN where not rated); anything else is an error naming its row."""
    out = []
    for i, v in enumerate(values.astype(str)):
        s = v.strip()
        if s.lower() in UNRATED:
            out.append(np.nan)
            continue
        nums = [float(d) for d in re.findall(r"\d+(?:\.\d+)?", s)]
        if not nums or not all(1 <= n <= 4 for n in nums) or re.search(r"[A-Za-z]", s.replace("or", "")):
            raise MriqaInputError(f"{path}: row {i + 2}: {column} {v!r} is not a rating 1, 2, 3 or 4")
        # a split rating ("3/4", "2 or 3", the authors' 3.5) counts as the lower one: not a clean 4
        out.append(float(np.floor(min(nums))))
    return pd.Series(out, index=values.index, dtype=float)


def _ampscz(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    """The authors' AMP SCZ QC file (or their pretrain/finetune scan lists) as the common table."""
    if "score" not in frame.columns and "scores" in frame.columns:
        frame = frame.rename(columns={"scores": "score"})  # the column's name in some versions
    _require(frame, path, AMPSCZ_COLUMNS, "AMP SCZ QC file")
    sub = frame["sub_id_gs"].str.strip()
    out = pd.DataFrame(
        {
            "subject": [_label(s, "sub-") for s in sub],
            "session": [_label(str(s).strip(), "ses-") for s in frame["ses_id_gs"]],
            "site": sub.str[:2],  # the authors: site = first two letters of the subject id
            "score": _scores(frame["score"], path, "score"),
            "comments": frame["comment"].astype(str),
        }
    )
    if "data" in frame.columns:  # the authors' scan lists name the file they used
        out["file"] = frame["data"].str.strip()
    if "group" in frame.columns:  # ... and the split they put it in
        out["given_split"] = _split_column(frame["group"], path)
    return out


def _split_column(values: pd.Series, path: Path) -> pd.Series:
    """The authors' ``group`` column (train / val / test), checked."""
    split = values.str.strip()
    bad = sorted(set(split) - {"train", "val", "test"})
    if bad:
        raise MriqaInputError(f"{path}: group {bad} is not train, val or test")
    return split


def _hcpep(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    """The authors' HCPEP sheet as the common table (one row per rated scan, latest rating)."""
    _require(frame, path, HCPEP_COLUMNS, "HCPEP sheet")
    ids = []
    for i, v in enumerate(frame["Subject ID"]):
        m = re.fullmatch(r"\s*([A-Za-z0-9]+)\s*_\s*MR\s*(\d+)\s*", str(v))
        if not m:
            raise MriqaInputError(f"{path}: row {i + 2}: Subject ID {v!r} is not <subject>_MR<session>")
        ids.append((f"sub-{m.group(1)}", f"ses-{m.group(2)}"))
    out = pd.DataFrame(
        {
            "subject": [s for s, _ in ids],
            "session": [v for _, v in ids],
            "site": frame["Center"].str.strip(),
            "score": _scores(frame["T1w"], path, "T1w"),
            "comments": frame["T1w comment"].astype(str),
        }
    )
    if "Date" in frame.columns:  # a scan rated again later keeps its latest rating
        date = pd.to_datetime(frame["Date"].str.strip(), format="%d/%m/%Y", errors="coerce")
        out = out.assign(_date=date).sort_values("_date", kind="stable", na_position="first")
        out = out.drop_duplicates(["subject", "session"], keep="last").sort_index().drop(columns="_date")
    return out


def _generic(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    """The former generic table (subject, session, site, score, comments; a few aliases)."""
    frame = frame.rename(columns={c: ALIASES.get(c.strip().lower(), c.strip().lower()) for c in frame.columns})
    if "comments" not in frame.columns:
        frame["comments"] = ""
    _require(frame, path, COLUMNS, "QC table")
    out = pd.DataFrame(
        {
            "subject": [_label(s, "sub-") for s in frame["subject"]],
            "session": [_label(s, "ses-") for s in frame["session"]],
            "site": frame["site"].astype(str).str.strip(),
            "score": pd.to_numeric(frame["score"], errors="coerce"),
            "comments": frame["comments"].astype(str),
        }
    )
    bad = out.index[~out["score"].isin([1, 2, 3, 4])]
    if len(bad):
        raise MriqaInputError(f"{path}: row {int(bad[0]) + 2}: score {frame['score'][bad[0]]!r} is not 1, 2, 3 or 4")
    return out


def read_qc_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read and validate a QC table: the authors' AMP SCZ QC file or scan list, the HCPEP sheet, or
    the generic table (told apart by their columns; see the module docstring).

    Returns:
        DataFrame with ``subject`` (``sub-...``), ``session`` (``ses-...``), ``site`` (str),
        ``score`` (int 1-4), ``comments`` (str, empty when missing) and, for the authors' scan
        lists, ``file`` (the t1-linear file they used) and ``given_split`` (their ``group``: train,
        val or test). Rows not rated are dropped.

    Raises:
        MriqaInputError: missing file, missing columns, ratings outside 1-4, duplicated scans.
    """
    path = Path(path)
    frame = _read_table(path)
    frame.columns = [c.strip() for c in frame.columns]
    if "sub_id_gs" in frame.columns:
        out = _ampscz(frame, path)
    elif "Subject ID" in frame.columns:
        out = _hcpep(frame, path)
    else:
        out = _generic(frame, path)
    out = out[out["score"].notna()].reset_index(drop=True)
    out["score"] = out["score"].astype(int)
    out["comments"] = out["comments"].fillna("").astype(str)
    dup = out.duplicated(["subject", "session"])
    if dup.any():
        row = out[dup].iloc[0]
        raise MriqaInputError(f"{path}: scan {row.subject}/{row.session} appears more than once")
    return out


def _pick(hits: list[Path], folder: Path) -> Path:
    """The authors' image among a scan's t1-linear files (see the module docstring), or an error."""
    uncropped = [h for h in hits if "_desc-Crop" not in h.name]
    hits = uncropped or hits  # the authors read the uncropped image; the cropped one only if alone
    recs = {h: (_REC.search(h.name).group(1) if _REC.search(h.name) else "") for h in hits}
    chosen = [h for h in hits if recs[h] == "norm"] or [h for h in hits if recs[h] == ""]
    if not chosen:
        names = ", ".join(h.name for h in hits)
        raise MriqaInputError(
            f"{folder}: no rec-norm image (the reconstruction the authors used) and no image without "
            f"a rec entity; found {names}"
        )
    if len(chosen) > 1:
        names = " and ".join(h.name for h in chosen)
        raise MriqaInputError(
            f"{folder}: ambiguous t1-linear images {names} (two runs?): give the authors' scan list "
            "(pretrain.csv / finetune.csv, column 'data') as the QC table, or remove one"
        )
    return chosen[0]


def find_t1_linear(
    caps: str | os.PathLike, subject: str, session: str, pattern: str = "*_T1w.nii.gz", file: str | None = None
) -> Path:
    """Path of the t1-linear image of one scan: ``file`` when the QC table names it (the authors'
    scan lists), else the uncropped ``rec-norm`` image (or the one without ``rec``), as the authors.

    Raises:
        MriqaInputError: no matching file, a named file missing, or an ambiguous choice (the
        message names the folder and the files).
    """
    folder = Path(caps) / "subjects" / subject / session / "t1_linear"
    if file:
        # the authors' paths start with their CAPS folder's name: keep the part from subjects/ on
        rel = (
            file[file.index("subjects/") :] if "subjects/" in file else f"{folder.relative_to(caps)}/{Path(file).name}"
        )
        path = Path(caps) / rel
        if not path.exists():
            raise MriqaInputError(f"{path}: t1-linear image named by the QC table ({file}) not found")
        return path
    hits = sorted(folder.glob(pattern))
    if not hits:
        raise MriqaInputError(f"{folder}: no t1-linear image matching {pattern!r}")
    return _pick(hits, folder)


def read_qc_tables(paths: str | os.PathLike | Sequence[str | os.PathLike]) -> pd.DataFrame:
    """One QC table, or several read together (the authors' ``pretrain.csv`` + ``finetune.csv``).

    Raises:
        MriqaInputError: as :func:`read_qc_table`; a scan in two of the tables (naming both).
    """
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    frames = [read_qc_table(p).assign(_table=str(p)) for p in paths]
    out = pd.concat(frames, ignore_index=True)
    dup = out[out.duplicated(["subject", "session"], keep=False)]
    if not dup.empty:
        row = dup.iloc[0]
        where = " and ".join(dup[(dup.subject == row.subject) & (dup.session == row.session)]["_table"])
        raise MriqaInputError(f"scan {row.subject}/{row.session} is in two QC tables: {where}")
    return out.drop(columns="_table")


def load_dataset(
    caps: str | os.PathLike,
    qc_table: str | os.PathLike | Sequence[str | os.PathLike],
    dataset: str,
    pattern: str = "*_T1w.nii.gz",
) -> pd.DataFrame:
    """QC table(s) of one data set joined with its t1-linear image paths.

    Args:
        caps: CAPS folder (Clinica output).
        qc_table: QC table, or a list of them (see :func:`read_qc_table`, :func:`read_qc_tables`).
        dataset: name stored in the ``dataset`` column (e.g. "AMPSCZ", "HCPEP").
        pattern: glob of the image inside ``t1_linear/``.

    Returns:
        DataFrame with ``dataset, subject, session, site, score, comments, path`` and, when the
        tables are the authors' scan lists, ``given_split`` (their train / val / test).
    """
    if not Path(caps).is_dir():
        raise MriqaInputError(f"{caps}: CAPS folder not found")
    frame = read_qc_tables(qc_table)
    files = frame.pop("file") if "file" in frame.columns else pd.Series([None] * len(frame))
    files = [f if isinstance(f, str) and f else None for f in files]  # NaN: a table without 'data'
    frame.insert(0, "dataset", dataset)
    frame["path"] = [
        str(find_t1_linear(caps, s, v, pattern, f)) for s, v, f in zip(frame.subject, frame.session, files)
    ]
    return frame


def read_sites(path: str | os.PathLike) -> dict[str, str]:
    """The authors' ``sites.csv`` (index, ``site``, ``group``): site -> ``pretrain`` or ``finetune``
    (``finetune``: the 7 QC sites of paper 5)."""
    path = Path(path)
    frame = _read_table(path)
    _require(frame, path, ("site", "group"), "sites.csv")
    groups = frame["group"].str.strip()
    bad = sorted(set(groups) - {"pretrain", "finetune"})
    if bad:
        raise MriqaInputError(f"{path}: group {bad} is not pretrain or finetune")
    return dict(zip(frame["site"].str.strip(), groups))


def qc_sites(path: str | os.PathLike) -> list[str]:
    """The QC (``finetune``) sites of the authors' ``sites.csv``, sorted."""
    return sorted(s for s, g in read_sites(path).items() if g == "finetune")


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
