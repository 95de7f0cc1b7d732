"""ADNI reader (paper 3): LONI NIfTI downloads, ADNI's MR image-quality tables, test-retest pairs.

ADNI cannot be downloaded here (data-use agreement); this adapter reads it as LONI IDA delivers it,
from paths in params.yaml (``shaw.adni_root``, ``shaw.adni_qc_table``, ``shaw.adni_pairs_table``,
``shaw.adni_gm_dir``):

* Images (IDA "Search & Download", NIfTI format): ``ADNI/<PTID>/<description>/<date_time>/I<image>/
  ADNI_<PTID>_MR_<description>_br_raw_<datetime>_<n>_S<series>_I<image>.nii`` (``.nii.gz`` too).
  ``PTID`` is ``<site>_S_<RID>`` (``002_S_0295``): its last 4 digits are the RID. Other files are
  ignored; two files with one image id are an error naming both.
* QC table, one of ADNI's two MR image-quality tables (IDA "Study Data > Imaging > MR Image
  Quality"), recognised by its columns (case-insensitive, as the tables' versions differ):

  - ``MRIQUALITY.csv``: ``RID``, ``LONIUID`` (series id ``S<id>``), ``PASS`` (1 pass, 0 fail,
    -1/blank not rated), optional ``VISCODE2``/``VISCODE``;
  - Mayo ADIR QC (``MAYOADIRL_MRI_IMAGEQC_*.csv`` / ``MAYOADIRL_MRI_QUALITY_ADNI3.csv``): ``RID``,
    ``loni_image`` (image id ``I<id>``), ``series_quality`` (1-3 acceptable, 4 unusable, -1 not
    rated), optional ``study_overallpass``, ``series_type`` (only ``T1`` rows are read), ``VISCODE2``.

  Column names follow Clinica's ADNI converter (aramis-lab/clinica,
  ``adni_to_bids/adni_modalities/adni_t1.py``: ``mri_quality.LONIUID == 'S' + SeriesID``,
  ``PASS != 1``; ``mayo_mri_qc.loni_image``, ``series_quality < 4``, ``series_type == 'T1'``) and
  ADNI's MRI quality-control page (grades 1-3 acceptable, 4 failure). A QC row is matched to a
  file through the series id (``MRIQUALITY``) or the image id (Mayo), and the row's RID must be the
  file's. The tables cover all of ADNI: rows without a downloaded file are ignored, and a
  downloaded file without a row is unrated (never a training scan). A file matching two rows, or a
  row matching two files, is an error naming both.
* Pairs table (CSV or TSV; not an ADNI file: the authors' selection of back-to-back MPRAGE /
  MPRAGE-repeat scans of one session, one labelled "containing artefacts" by the QC):
  ``subject_id`` (PTID or RID), ``clean_image_id``, ``artefact_image_id`` (``I<image>`` or
  ``S<series>``; a bare number is an image id).

LONI's NIfTI are native space: every scan used goes through the shared preparation chain
(:func:`mriqa_lib.prepare.prepare_scan`: canonical orientation, deepbet brain extraction, affine
registration to the ICBM152 2009a brain), cached in ``shaw.adni_prepared_dir`` (:func:`prepare_file`).
Grey-matter targets of the multi-task model (:func:`gm_target`) come from ``shaw.adni_gm_dir`` (SPM12
"Segment" ``c1<file>.nii`` or FSL FAST ``<file>_pve_1.nii.gz`` of each raw file, in its native
space, moved by the scan's registration) or, without it, from the ICBM152 GM probability map (a
template stand-in, flagged as such). Pairs are then aligned rigidly (:func:`rigid_align`).

Subjects are split by :mod:`mriqa_lib.data.splits`; paper 3 forces the subjects of the test-retest
pairs (:func:`pair_subjects`, PTIDs read off the pair images' files) into its test split.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mriqa_lib.io import MriqaInputError, Volume, load_nifti

__all__ = [
    "read_table",
    "read_qc_table",
    "find_loni_files",
    "adni_scans",
    "read_pairs_table",
    "resolve_pairs",
    "pair_subjects",
    "prepare_file",
    "gm_target",
    "adni_pairs",
    "rigid_align",
    "GM_TEMPLATE",
]

#: LONI's NIfTI file name: ADNI_<PTID>_MR_<description>_..._S<series>_I<image>.nii[.gz]
LONI_NAME = re.compile(
    r"^ADNI_(?P<ptid>\d{3}_S_(?P<rid>\d{4}))_MR_(?P<desc>.+)_S(?P<series>\d+)_I(?P<image>\d+)\.nii(?:\.gz)?$"
)
#: gm_target's source when no GM maps are configured
GM_TEMPLATE = "ICBM152 2009a GM probability map (template stand-in)"
_PASS = {"1": True, "1.0": True, "0": False, "0.0": False, "-1": False, "-1.0": False, "": False}
_SUBJECT = ("subject_id", "PTID", "RID")


# ---------------------------------------------------------------------------------------------
# tables
# ---------------------------------------------------------------------------------------------
def read_table(path: str | os.PathLike) -> Any:
    """A CSV or TSV (chosen by content: tab in the header line) as strings; clear error if unreadable."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise MriqaInputError(f"{path}: file not found")
    try:
        header = path.read_text(errors="replace").splitlines()[0]
        sep = "\t" if "\t" in header else ","
        return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
    except Exception as exc:  # pandas raises many parser error types
        raise MriqaInputError(f"{path}: cannot parse table ({exc})") from None


def _columns(frame) -> dict[str, str]:
    """Lower-case name -> the table's own spelling (ADNI's table versions differ in case)."""
    return {str(c).strip().lower(): c for c in frame.columns}


def _need(frame, path: Path, names: tuple[str, ...], what: str) -> list[str]:
    cols = _columns(frame)
    missing = [n for n in names if n.lower() not in cols]
    if missing:
        raise MriqaInputError(f"{path}: {what} needs column(s) {missing}; found {list(frame.columns)}")
    return [cols[n.lower()] for n in names]


def _loni_id(value: str, default: str, where: str) -> str:
    """``S123`` / ``I456`` as given; a bare number gets ``default``'s letter; anything else is an error."""
    v = str(value).strip().upper()
    if re.fullmatch(r"\d+", v):
        return default + v
    if re.fullmatch(r"[SI]\d+", v):
        return v
    raise MriqaInputError(f"{where}: {value!r} is not a LONI series (S<id>) or image (I<id>) id")


def _rid(value: str, where: str) -> int:
    try:
        return int(float(str(value).strip()))
    except ValueError:
        raise MriqaInputError(f"{where}: RID {value!r} is not a number") from None


def _qc_format(raw, path: Path) -> str:
    cols = _columns(raw)
    if {"loniuid", "pass"} <= set(cols):
        return "MRIQUALITY"
    if {"loni_image", "series_quality"} <= set(cols):
        return "MAYOADIRL"
    raise MriqaInputError(
        f"{path}: not an ADNI MR image-quality table: MRIQUALITY.csv needs RID, LONIUID, PASS; the Mayo "
        f"ADIR QC table needs RID, loni_image, series_quality; found {list(raw.columns)}"
    )


def _qc_flag(fmt: str, value: str, where: str) -> bool:
    """Artefact-free: MRIQUALITY ``PASS`` 1; Mayo ``series_quality`` 1-3 (4 unusable, -1 not rated)."""
    v = str(value).strip()
    if fmt == "MRIQUALITY":
        if v not in _PASS:
            raise MriqaInputError(f"{where}: PASS {value!r} is not 1 / 0 / -1")
        return _PASS[v]
    try:
        grade = int(float(v)) if v else -1
    except ValueError:
        raise MriqaInputError(f"{where}: series_quality {value!r} is not a grade 1-4 (or -1)") from None
    return 1 <= grade <= 3


def read_qc_table(path: str | os.PathLike) -> Any:
    """``MRIQUALITY.csv`` or a Mayo ADIR QC table -> one row per rated T1 scan.

    Returns:
        DataFrame with ``rid`` (int), ``key`` (``S<series>`` for MRIQUALITY, ``I<image>`` for
        Mayo), ``visit`` (VISCODE2, else VISCODE, else ""), ``artefact_free`` (bool), ``qc``
        (the raw PASS / series_quality), ``qc_line`` (line in the file), ``qc_format``.
    """
    import pandas as pd

    path = Path(path)
    raw = read_table(path)
    fmt = _qc_format(raw, path)
    key_col = "LONIUID" if fmt == "MRIQUALITY" else "loni_image"
    flag_col = "PASS" if fmt == "MRIQUALITY" else "series_quality"
    crid, ckey, cflag = _need(raw, path, ("RID", key_col, flag_col), fmt)
    cols = _columns(raw)
    visit = next((cols[c] for c in ("viscode2", "viscode") if c in cols), None)
    if "series_type" in cols:  # the Mayo table rates every series type; paper 3 uses the T1 ones
        raw = raw[raw[cols["series_type"]].str.strip().str.upper() == "T1"]
    rows = []
    for i, rec in zip(raw.index, raw.to_dict("records")):
        where = f"{path}: line {i + 2}"
        rows.append(
            {
                "rid": _rid(rec[crid], where),
                "key": _loni_id(rec[ckey], "S" if fmt == "MRIQUALITY" else "I", where),
                "visit": str(rec[visit]).strip() if visit else "",
                "artefact_free": _qc_flag(fmt, rec[cflag], where),
                "qc": str(rec[cflag]).strip(),
                "qc_line": i + 2,
                "qc_format": fmt,
            }
        )
    cols_out = ["rid", "key", "visit", "artefact_free", "qc", "qc_line", "qc_format"]
    return pd.DataFrame(rows, columns=cols_out)


def read_pairs_table(path: str | os.PathLike) -> Any:
    """Pairs table -> ``subject`` (as given: PTID or RID), ``clean_id`` and ``artefact_id`` (``S...`` / ``I...``)."""
    path = Path(path)
    raw = read_table(path)
    cols = _columns(raw)
    subject = next((cols[c.lower()] for c in _SUBJECT if c.lower() in cols), None)
    if subject is None:
        raise MriqaInputError(f"{path}: no subject column (one of {list(_SUBJECT)}); found {list(raw.columns)}")
    cclean, cart = _need(raw, path, ("clean_image_id", "artefact_image_id"), "the pairs table")
    out = raw.copy()
    out["subject"] = raw[subject].astype(str).str.strip()
    for col, name in ((cclean, "clean_id"), (cart, "artefact_id")):
        out[name] = [_loni_id(v, "I", f"{path}: line {i + 2}") for i, v in enumerate(raw[col])]
    out["line"] = [i + 2 for i in range(len(out))]
    return out


# ---------------------------------------------------------------------------------------------
# files
# ---------------------------------------------------------------------------------------------
def find_loni_files(root: str | os.PathLike) -> Any:
    """Every LONI-named NIfTI below ``root``: ``path``, ``subject_id`` (PTID), ``rid``, ``series_id``
    (``S...``), ``image_id`` (``I...``), ``description``.

    Raises:
        MriqaInputError: ``root`` missing, no LONI file in it, or two files with one image id.
    """
    import pandas as pd

    root = Path(root)
    if not root.is_dir():
        raise MriqaInputError(f"{root}: ADNI folder not found (params shaw.adni_root)")
    rows, seen = [], {}
    for p in sorted(root.rglob("ADNI_*.nii*")):
        m = LONI_NAME.match(p.name)
        if not m:
            continue
        image = "I" + m["image"]
        if image in seen:
            raise MriqaInputError(f"two files with LONI image id {image}: {seen[image]} and {p}; keep one")
        seen[image] = p
        rows.append(
            {
                "path": p,
                "subject_id": m["ptid"],
                "rid": int(m["rid"]),
                "series_id": "S" + m["series"],
                "image_id": image,
                "description": m["desc"],
            }
        )
    if not rows:
        raise MriqaInputError(f"{root}: no LONI NIfTI file (ADNI_<PTID>_MR_..._S<series>_I<image>.nii) below it")
    return pd.DataFrame(rows)


def _match(files, qc, qc_table: Path) -> list[dict[str, Any] | None]:
    """The QC row of each file (None when unrated); errors for one-to-two matches and RID mismatches."""
    key = "series_id" if (qc["qc_format"] == "MRIQUALITY").all() else "image_id"
    by_key: dict[str, list[dict[str, Any]]] = {}
    for rec in qc.to_dict("records"):
        by_key.setdefault(rec["key"], []).append(rec)
    users: dict[str, Path] = {}
    out = []
    for f in files.to_dict("records"):
        rows = by_key.get(f[key], [])
        if len(rows) > 1:
            lines = " and ".join(f"line {r['qc_line']}" for r in rows[:2])
            raise MriqaInputError(f"{qc_table}: {lines} both rate {f[key]} ({f['path']}); keep one")
        if rows and f[key] in users:
            raise MriqaInputError(
                f"{qc_table}: line {rows[0]['qc_line']} ({f[key]}) matches two files: {users[f[key]]} and {f['path']}"
            )
        if rows and rows[0]["rid"] != f["rid"]:
            raise MriqaInputError(
                f"{qc_table}: line {rows[0]['qc_line']} rates {f[key]} as RID {rows[0]['rid']}, but its file "
                f"{f['path']} is subject {f['subject_id']} (RID {f['rid']})"
            )
        if rows:
            users[f[key]] = f["path"]
        out.append(rows[0] if rows else None)
    return out


def adni_scans(root: str | os.PathLike, qc_table: str | os.PathLike) -> Any:
    """Every downloaded LONI file with its QC verdict.

    Returns:
        :func:`find_loni_files`'s frame plus ``rated`` (a QC row exists), ``artefact_free``,
        ``visit``, ``qc`` and ``qc_line`` (empty when unrated).
    """
    files = find_loni_files(root)
    qc = read_qc_table(qc_table)
    matched = _match(files, qc, Path(qc_table))
    files["rated"] = [m is not None for m in matched]
    files["artefact_free"] = [bool(m and m["artefact_free"]) for m in matched]
    for col in ("visit", "qc"):
        files[col] = [m[col] if m else "" for m in matched]
    files["qc_line"] = [m["qc_line"] if m else 0 for m in matched]
    return files


def _lookup(files, loni_id: str, where: str) -> dict[str, Any]:
    col = "series_id" if loni_id.startswith("S") else "image_id"
    hits = files[files[col] == loni_id].to_dict("records")
    if not hits:
        raise MriqaInputError(
            f"{where}: scan {loni_id} has no downloaded file (ADNI_..._{loni_id}... below shaw.adni_root)"
        )
    if len(hits) > 1:
        raise MriqaInputError(
            f"{where}: series {loni_id} has two files, {hits[0]['path']} and {hits[1]['path']}; name the image (I...)"
        )
    return hits[0]


def resolve_pairs(files, pairs_table: str | os.PathLike) -> list[dict[str, Any]]:
    """Each pair of the pairs table with its two files: ``subject_id`` (PTID of the files), ``clean``
    and ``artefact`` (rows of :func:`find_loni_files`), ``line``.

    Raises:
        MriqaInputError: a scan without a file, the two scans of a pair from two subjects, or a
            subject column naming another subject than the files (each names the table's line).
    """
    out = []
    for rec in read_pairs_table(pairs_table).to_dict("records"):
        where = f"{pairs_table}: line {rec['line']}"
        clean, art = (_lookup(files, rec[k], where) for k in ("clean_id", "artefact_id"))
        if clean["subject_id"] != art["subject_id"]:
            raise MriqaInputError(f"{where}: the scans are of two subjects: {clean['path']} and {art['path']}")
        given = rec["subject"]  # a PTID or a RID (RIDs are unique across ADNI)
        if given != clean["subject_id"] and _rid_of(given) != clean["rid"]:
            raise MriqaInputError(f"{where}: subject {given!r}, but its scans are of {clean['subject_id']}")
        out.append({"subject_id": clean["subject_id"], "clean": clean, "artefact": art, "line": rec["line"]})
    return out


def _rid_of(subject: str) -> int | None:
    """RID of a PTID (last 4 digits) or of a bare RID; None otherwise."""
    m = re.fullmatch(r"(?:\d{3}_S_)?(\d{1,4})", subject.strip())
    return int(m.group(1)) if m else None


def pair_subjects(root: str | os.PathLike, pairs_table: str | os.PathLike) -> set[str]:
    """PTIDs of every test-retest pair, read off the pair images' files (so a pairs table naming a
    subject by RID, or a clean scan the QC passed, cannot slip a pair subject into training)."""
    return {p["subject_id"] for p in resolve_pairs(find_loni_files(root), pairs_table)}


# ---------------------------------------------------------------------------------------------
# preparation (native space -> template space), cached
# ---------------------------------------------------------------------------------------------
def _cache_names(path: Path, cache: Path) -> tuple[Path, Path]:
    stem = path.name.split(".nii")[0]
    return cache / f"{stem}_prepared.nii.gz", cache / f"{stem}_prep.json"


def prepare_file(path: str | os.PathLike, cache: str | os.PathLike, params: Any = None) -> tuple[Volume | None, dict]:
    """One raw LONI file through the shared preparation chain, cached in ``cache``.

    The prepared volume (brain on the 2 mm reference grid) and the chain's record go to
    ``<stem>_prepared.nii.gz`` (``record["prep_image"]``) / ``<stem>_prep.json``; they are reused
    while the source file's size and the preparation settings are unchanged. A refused scan
    (``PrepareError``: not a head, cut brain, failed registration) returns ``(None, record)`` with
    the reason in ``record["prep_error"]``.
    """
    from mriqa_lib.io import read_json, save_nifti, write_json
    from mriqa_lib.prepare import PreparationParams, PrepareError, prepare_scan

    path, cache = Path(path), Path(cache)
    params = params or PreparationParams()
    image, meta = _cache_names(path, cache)
    if not path.is_file():
        raise MriqaInputError(f"{path}: file not found")
    stamp = {"source": path.name, "size": path.stat().st_size, "preparation": params.model_dump(mode="json")}
    if meta.exists():
        rec = read_json(meta)
        if {k: rec.get(k) for k in stamp} == stamp and (rec.get("prep_error") or image.exists()):
            return (None if rec.get("prep_error") else load_nifti(image)), rec
    try:
        prepared = prepare_scan(load_nifti(path), params)
        rec, vol = {**prepared.record, "prep_error": "", "prep_image": str(image)}, prepared.volume
    except PrepareError as exc:
        rec, vol = {**exc.record, "prep_error": str(exc), "prep_image": ""}, None
    if vol is not None:
        save_nifti(image, vol.data, vol.affine)
    write_json(meta, {**stamp, **rec})
    return vol, {**stamp, **rec}


def _transform(record: dict) -> np.ndarray:
    """The chain's 4 x 4 RAS matrix: template point -> the scan point it samples (identity when
    the scan was already in the reference space)."""
    text = str(record.get("prep_transform", "") or "")
    mat = np.eye(4)
    if text:
        mat[:3] = np.array([[float(v) for v in row.split()] for row in text.split(";")])
    return mat


def _gm_file(scan: Path, gm_dir: Path) -> Path:
    """The GM map of ``scan`` in ``gm_dir``: SPM12 ``c1<stem>.nii[.gz]`` or FSL FAST ``<stem>_pve_1.nii.gz``."""
    stem = scan.name.split(".nii")[0]
    hits = [p for pat in (f"c1{stem}.nii*", f"{stem}_pve_1.nii*") for p in sorted(gm_dir.rglob(pat))]
    if not hits:
        raise MriqaInputError(
            f"{gm_dir}: no grey-matter map of {scan.name} (c1{stem}.nii from SPM12 Segment or "
            f"{stem}_pve_1.nii.gz from FSL FAST; params shaw.adni_gm_dir)"
        )
    if len(hits) > 1:
        raise MriqaInputError(f"{gm_dir}: two grey-matter maps of {scan.name}: {hits[0]} and {hits[1]}; keep one")
    return hits[0]


def gm_target(scan: Path, record: dict, gm_dir: str | os.PathLike | None, cache: str | os.PathLike) -> tuple[Path, str]:
    """The grey-matter probability map on the reference grid for one prepared scan; ``(path, source)``.

    With ``gm_dir``: the scan's own native-space map (:func:`_gm_file`), moved onto the reference
    grid by the scan's registration (``prep_transform``) and cached. Without: the ICBM152 2009a GM
    map (the template the chain registers to), the same for every scan (source :data:`GM_TEMPLATE`).
    """
    from mriqa_lib.data.preprocess import resample_to
    from mriqa_lib.data.template import REF_AFFINE, REF_SHAPE, load_template
    from mriqa_lib.io import save_nifti

    cache = Path(cache)
    if gm_dir is None:
        out = cache / "template_GM_probseg.nii.gz"
        if not out.exists():
            tpl = load_template()
            save_nifti(out, resample_to(tpl.gm, tpl.affine, REF_AFFINE, REF_SHAPE), REF_AFFINE)
        return out, GM_TEMPLATE
    src = _gm_file(Path(scan), Path(gm_dir))
    out = cache / f"{Path(scan).name.split('.nii')[0]}_GM_prepared.nii.gz"
    gm = load_nifti(src)
    # reference voxel -> template mm -> scan mm (the scan's registration) -> GM-map voxel; redone
    # every time (a fraction of a second), so it always follows the cached registration
    data = resample_to(gm.data, np.linalg.inv(_transform(record)) @ gm.affine, REF_AFFINE, REF_SHAPE)
    save_nifti(out, np.clip(data, 0.0, 1.0), REF_AFFINE)
    tool = "SPM12 c1" if src.name.startswith("c1") else "FSL FAST pve_1"
    return out, f"{tool} GM maps in {gm_dir}"


def adni_pairs(
    root: str | os.PathLike,
    pairs_table: str | os.PathLike,
    cache: str | os.PathLike,
    params: Any = None,
    align: bool = True,
    log: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """The test-retest pairs, both scans prepared (:func:`prepare_file`), the artefact scan rigidly
    aligned onto the clean one. A pair with a scan the chain refuses is left out, with a log line.

    Returns:
        one dict per pair: ``subject_id``, ``clean_image_id``, ``artefact_image_id``, ``clean``
        (:class:`Volume`), ``artefact`` (:class:`Volume` on the clean grid), ``alignment`` (dict).
    """
    out = []
    for pr in resolve_pairs(find_loni_files(root), pairs_table):
        vols = {}
        for role in ("clean", "artefact"):
            vols[role], rec = prepare_file(pr[role]["path"], cache, params)
            if vols[role] is None:
                log(f"pair of {pr['subject_id']} left out: {pr[role]['path']} refused ({rec['prep_error']})")
                break
        else:
            artefact, info = rigid_align(vols["clean"], vols["artefact"]) if align else (vols["artefact"], {})
            out.append(
                {
                    "subject_id": pr["subject_id"],
                    "clean_image_id": pr["clean"]["image_id"],
                    "artefact_image_id": pr["artefact"]["image_id"],
                    "clean": vols["clean"],
                    "artefact": artefact,
                    "alignment": info,
                }
            )
    return out


# ---------------------------------------------------------------------------------------------
# Rigid registration (the SimpleITK bridge is mriqa_lib.prepare.itk)
# ---------------------------------------------------------------------------------------------
def rigid_align(
    fixed: Volume,
    moving: Volume,
    iterations: int = 100,
    sampling: float = 0.25,
    seed: int = 0,
    interpolation: str = "bspline",
) -> tuple[Volume, dict[str, Any]]:
    """Rigidly register ``moving`` to ``fixed`` and resample it onto ``fixed``'s grid.

    SimpleITK: Euler3D transform initialised at the geometric centres, Mattes mutual information
    (32 bins, ``sampling`` fraction of voxels, fixed ``seed``), regular-step gradient descent,
    two resolution levels (shrink 2, 1). The final resampling is cubic B-spline by default
    (``interpolation="linear"`` for trilinear): linear interpolation smooths noise and artefact
    texture, which would lower the aligned scan's uncertainty. Outside the field of view is 0.

    Returns:
        ``(aligned volume, info)``; info: ``rotation_deg`` (3 Euler angles), ``translation_mm``,
        ``metric`` (final MI, lower is better), ``iterations``.
    """
    import SimpleITK as sitk

    from mriqa_lib.prepare.itk import single_itk_thread, sitk_to_volume, volume_to_sitk

    f_img, m_img = volume_to_sitk(fixed), volume_to_sitk(moving)
    init = sitk.CenteredTransformInitializer(
        f_img, m_img, sitk.Euler3DTransform(), sitk.CenteredTransformInitializerFilter.GEOMETRY
    )
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    # SimpleITK reads seed 0 as "seed from the wall clock" (sitkWallClock): shift it to stay reproducible
    reg.SetMetricSamplingPercentage(float(sampling), int(seed) + 1)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(
        learningRate=1.0,
        minStep=1e-4,
        numberOfIterations=int(iterations),
        relaxationFactor=0.6,
        gradientMagnitudeTolerance=1e-6,
    )
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel([2, 1])
    reg.SetSmoothingSigmasPerLevel([1, 0])
    reg.SetInitialTransform(init, inPlace=False)
    try:
        with single_itk_thread():
            transform = reg.Execute(f_img, m_img)
    except RuntimeError as exc:
        raise MriqaInputError(
            f"{moving.path or 'moving image'}: rigid registration to {fixed.path or 'fixed image'} "
            f"failed ({str(exc).splitlines()[-1]})"
        ) from None
    interp = {"bspline": sitk.sitkBSpline, "linear": sitk.sitkLinear}.get(interpolation)
    if interp is None:
        raise ValueError(f"interpolation must be 'bspline' or 'linear', got {interpolation!r}")
    out = sitk.Resample(m_img, f_img, transform, interp, 0.0, sitk.sitkFloat32)
    euler = (
        sitk.Euler3DTransform(sitk.CompositeTransform(transform).GetNthTransform(0))
        if transform.GetName() == "CompositeTransform"
        else sitk.Euler3DTransform(transform)
    )
    params = euler.GetParameters()
    info = {
        "rotation_deg": [float(np.degrees(a)) for a in params[:3]],
        "translation_mm": [float(t) for t in params[3:]],
        "metric": float(reg.GetMetricValue()),
        "iterations": int(reg.GetOptimizerIteration()),
    }
    return sitk_to_volume(out, moving.path, affine=fixed.affine), info
