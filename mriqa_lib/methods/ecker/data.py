"""Data of paper 1: UK Biobank / NAKO-IQA adapters, their embedded equivalents, slice preparation,
simulated artifacts and reference matching.

One preparation path for everything (training, references, tests, ``mriqa score``)::

    volume --(conform, embedded brains only)--> normalise to [0, 1] --> centre axial slices
           --(artifact, on the full-resolution slice)--> pad to square, centre crop, resize
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from mriqa_lib.data.preprocess import centre_slices, conform, crop_or_pad, normalise
from mriqa_lib.io import MriqaInputError, Volume, read_tsv

from .params import EckerParams

#: NAKO-IQA water images as paper 1's authors read them (st166250/MA simclr/dataset.py, NakoIQADataset;
#: QualityControlExperiments/inference_global_IQA.py): ``<id>/dixon/dicom_3D_GRE_TRA_<suffix>.nii``,
#: breath-hold ``bh_W_COMPOSED`` (HQ) and deep free-breathing ``fb_deep_W_COMPOSED`` (LQ)
NAKO_FILES = {"HQ": "dicom_3D_GRE_TRA_bh_W_COMPOSED", "LQ": "dicom_3D_GRE_TRA_fb_deep_W_COMPOSED"}

#: subject-table columns: the literal name, then UK Biobank field 31 (sex, 0 female / 1 male), 12144
#: (height, cm) and 21002 (weight, kg) at instance 2 (the first imaging visit, the Dixon zips' visit),
#: as a basket CSV (``ukbconv``: ``31-0.0``), an R export (``f.31.0.0``) or a UKB-RAP table (``p31``) names them
COLUMNS = {
    "sex": ("sex", "31-0.0", "f.31.0.0", "p31"),
    "height": ("height", "12144-2.0", "f.12144.2.0", "p12144_i2"),
    "weight": ("weight", "21002-2.0", "f.21002.2.0", "p21002_i2"),
}
ID_COLUMNS = ("participant_id", "eid", "f.eid", "id", "subject")


# --------------------------------------------------------------------------------------------
# subject tables (adapters)
# --------------------------------------------------------------------------------------------
def _sex_code(values: pd.Series, where: str) -> pd.Series:
    """M/F from UKB codes (1 = male, 0 = female) or strings; blank = unknown (None)."""
    mapping = {"1": "M", "0": "F", "m": "M", "f": "F", "male": "M", "female": "F"}
    text = values.fillna("").astype(str).str.strip().str.lower().str.replace(r"\.0$", "", regex=True)
    out = text.map(mapping)
    bad = out.isna() & (text != "")
    if bad.any():
        raise MriqaInputError(f"{where}: unknown sex value {values[bad].iloc[0]!r} (use M/F or UKB codes 1/0)")
    return out.astype(object).where(out.notna(), None)


def _column(columns, names: tuple[str, ...], what: str, path: Path) -> str:
    """The one column of ``columns`` among ``names``; none or two is an error naming them."""
    hits = [c for c in names if c in columns]
    if len(hits) > 1:
        raise MriqaInputError(f"{path}: two {what} columns {hits}; keep one")
    if not hits:
        raise MriqaInputError(f"{path}: missing {what} column (one of {list(names)}); found {list(columns)[:20]}")
    return hits[0]


def read_table(path: str | Path, id_columns: tuple[str, ...] = ID_COLUMNS) -> pd.DataFrame:
    """A subject table (TSV, or CSV by suffix): an id column, sex, height (cm), weight (kg), each under
    its literal name or its UK Biobank field id (:data:`COLUMNS`; a basket of many fields is fine, only
    these columns are read), and an optional ``site`` column (acquisition site or protocol, used by
    ``ecker.match_site``). Blank values are unknown (None / NaN); non-numeric heights or weights are
    an error."""
    path = Path(path)
    if not path.exists():
        raise MriqaInputError(f"{path}: file not found")
    sep = "," if path.suffix.lower() == ".csv" else "\t"
    try:
        header = pd.read_csv(path, sep=sep, nrows=0).columns
        id_col = next((c for c in id_columns if c in header), None)
        if id_col is None:
            raise MriqaInputError(f"{path}: needs an id column (one of {list(id_columns)}); found {list(header)[:20]}")
        cols = {k: _column(header, names, k, path) for k, names in COLUMNS.items()}
        wanted = {id_col, *cols.values(), *(["site"] if "site" in header else [])}
        frame = pd.read_csv(path, sep=sep, dtype=str, usecols=lambda c: c in wanted)
    except MriqaInputError:
        raise
    except Exception as exc:
        raise MriqaInputError(f"{path}: cannot parse table ({exc})") from None
    out = pd.DataFrame({"participant_id": frame[id_col].astype(str).str.strip()})
    out["sex"] = _sex_code(frame[cols["sex"]], f"{path} column '{cols['sex']}'")
    if "site" in frame.columns:  # optional: acquisition site / protocol (ecker.match_site)
        out["site"] = frame["site"].str.strip().replace("", np.nan)  # blank = unknown site
    for key in ("height", "weight"):
        raw = frame[cols[key]].fillna("").str.strip()
        out[key] = pd.to_numeric(raw.replace("", np.nan), errors="coerce")
        if (out[key].isna() & (raw != "")).any():
            raise MriqaInputError(f"{path}: column '{cols[key]}' ({key}) has non-numeric values")
    return out


def embedded_subjects(root: str | Path = "data/embedded") -> pd.DataFrame:
    """Embedded cohort: participant_id, sex, height, weight, site, split, path (T1w), dataset."""
    root = Path(root)
    frame = read_tsv(root / "participants.tsv", required=("participant_id", "sex", "height", "weight"))
    frame = frame.copy()
    frame["path"] = [str(root / p / "anat" / f"{p}_T1w.nii.gz") for p in frame["participant_id"]]
    if "split" not in frame.columns:
        frame["split"] = "train"
    frame["dataset"] = "embedded"
    if "site" not in frame.columns:
        frame["site"] = None
    return frame[["participant_id", "sex", "height", "weight", "site", "split", "path", "dataset"]]


def _one_file(folder: Path, stem: str) -> Path | None:
    """``folder/stem.nii.gz`` or ``folder/stem.nii``; None if neither, an error naming both if both."""
    found = [folder / f"{stem}{ext}" for ext in (".nii.gz", ".nii") if (folder / f"{stem}{ext}").exists()]
    if len(found) > 1:
        raise MriqaInputError(f"two images of one scan: {found[0]} and {found[1]}; keep one")
    return found[0] if found else None


def ukb_subjects(root: str | Path, table: str | Path) -> pd.DataFrame:
    """UK Biobank abdominal Dixon, paper 1's layout: ``root/<eid>/wat.nii.gz`` (the water image,
    converted from the field 20201 DICOM zips by ``mriqa convert ukb-dixon``) and ``table`` (eid, sex,
    height, weight: literal names or UKB field ids ``31-0.0``, ``12144-2.0``, ``21002-2.0``).

    The subjects are the eid folders of ``root`` (a basket table lists every participant, most without
    imaging); each must be in ``table``. Unknown covariates (blank cells) stay unknown (NaN).
    """
    root = Path(root)
    if not root.is_dir():
        raise MriqaInputError(f"{root}: UK Biobank Dixon folder not found (params key ecker.ukb_dir)")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        zips = sorted(root.glob("*_20201_*.zip"))
        hint = (
            f"; it holds field 20201 zips ({zips[0].name}, ...): run `mriqa convert ukb-dixon {root} --out DIR`"
            " and set ecker.ukb_dir to DIR"
            if zips
            else ""
        )
        raise MriqaInputError(f"{root}: no <eid>/wat.nii.gz folders{hint}")
    paths = {}
    for folder in folders:
        path = _one_file(folder, "wat")
        if path is None:
            raise MriqaInputError(f"{folder / 'wat.nii.gz'}: file not found (every eid folder needs its water image)")
        paths[folder.name] = str(path)
    subjects = read_table(table).drop_duplicates("participant_id").set_index("participant_id")
    unlisted = [e for e in paths if e not in subjects.index]
    if unlisted:
        raise MriqaInputError(f"{table}: no row for eid {unlisted[0]} ({len(unlisted)} of {len(paths)} image folders)")
    frame = subjects.loc[list(paths)].reset_index()
    frame["path"] = list(paths.values())
    frame["split"] = "train"
    frame["dataset"] = "ukb"
    return frame


def nako_subjects(root: str | Path, table: str | Path | None = None) -> pd.DataFrame:
    """NAKO-IQA as paper 1's authors read it: ``root/<id>/dixon/dicom_3D_GRE_TRA_bh_W_COMPOSED.nii``
    (breath-hold, HQ) and ``..._fb_deep_W_COMPOSED.nii`` (deep free breathing, LQ); ``.nii.gz`` too.
    Returns one row per volume: participant_id, label, path, and sex, height, weight from the
    optional ``table`` (else unknown: every reference subject is then used)."""
    root = Path(root)
    if not root.is_dir():
        raise MriqaInputError(f"{root}: NAKO-IQA folder not found (params key ecker.nako_dir)")
    rows = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for label, stem in NAKO_FILES.items():
            path = _one_file(folder / "dixon", stem)
            if path is None:
                raise MriqaInputError(f"{folder / 'dixon' / stem}.nii: file not found")
            rows.append({"participant_id": folder.name, "label": label, "path": str(path)})
    if not rows:
        raise MriqaInputError(f"{root}: no subject folders")
    frame = pd.DataFrame(rows)
    if table is not None:
        frame = frame.merge(read_table(table).drop_duplicates("participant_id"), on="participant_id", how="left")
    else:
        frame["sex"], frame["height"], frame["weight"] = None, np.nan, np.nan
    return frame


def split_subjects(frame: pd.DataFrame, n_test: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions of (pool, test) subjects of a subject table (``split`` column: the cohort's split).

    Test subjects (never trained on, never references) are the cohort's held-out ``test`` subjects
    (all of them, even beyond ``n_test``), then its ``val`` subjects, then a seeded draw from the
    rest: :func:`mriqa_lib.data.splits.held_out_first`.
    """
    from mriqa_lib.data.splits import held_out_first

    n_held = int((frame["split"].to_numpy() == "test").sum())
    if max(n_test, n_held) >= len(frame) - 1:
        raise MriqaInputError(
            f"ecker.n_test_subjects={n_test} ({n_held} held-out test subjects) leaves fewer "
            f"than 2 of {len(frame)} subjects for training"
        )
    return held_out_first(frame["split"].to_numpy(), n_test, seed)


# --------------------------------------------------------------------------------------------
# preparation
# --------------------------------------------------------------------------------------------
def volume_slices(volume: Volume, p: EckerParams, conform_grid: bool) -> tuple[np.ndarray, np.ndarray]:
    """Full-resolution normalised centre axial slices ``(n, X, Y)`` and their in-plane spacing (mm).

    Args:
        volume: the 3-D image.
        p: settings (``n_slices``, ``slice_step``).
        conform_grid: resample to the 2 mm reference grid first (embedded brains).
    """
    if conform_grid:
        volume = conform(volume)
    data = normalise(volume.data)
    n = p.n_slices
    if n * p.slice_step > data.shape[2]:
        raise MriqaInputError(
            f"{volume.path}: {data.shape[2]} axial slices, fewer than ecker.n_slices * "
            f"ecker.slice_step = {n * p.slice_step}"
        )
    return centre_slices(data, axis=2, n=n, step=p.slice_step), volume.spacing[:2].copy()


def prepare_slices(slices: np.ndarray, p: EckerParams) -> np.ndarray:
    """Network input ``(n, S, S)`` from full-resolution slices ``(n, X, Y)`` (or one ``(X, Y)``):
    zero-pad to a square, keep the central ``p.crop`` fraction, resize (antialiased) to
    ``p.img_size``."""
    import torch
    import torch.nn.functional as F

    x = np.asarray(slices, dtype=np.float32)
    single = x.ndim == 2
    x = x[None] if single else x
    side = max(x.shape[1:])
    x = np.stack([crop_or_pad(s, (side, side)) for s in x])
    keep = max(1, int(round(side * p.crop)))
    x = np.stack([crop_or_pad(s, (keep, keep)) for s in x])
    t = torch.from_numpy(x)[:, None]
    t = F.interpolate(t, size=(p.img_size, p.img_size), mode="bilinear", antialias=True, align_corners=False)
    out = t[:, 0].numpy().astype(np.float32)
    return out[0] if single else out


def case_seed(*parts: object) -> int:
    """A stable seed from strings/ints (crc32), independent of Python's hash randomisation."""
    return zlib.crc32("|".join(map(str, parts)).encode()) & 0x7FFFFFFF


def _artifact(name: str, image: np.ndarray, seed: int, spacing, **kw) -> np.ndarray:
    """Apply an artifact of the shared library (``mriqa_lib.artifacts.apply_artifact``)."""
    from mriqa_lib.artifacts import apply_artifact

    registry_name = {"motion": "motion", "noise": "gaussian_noise", "respiratory": "respiratory"}[name]
    out, _ = apply_artifact(registry_name, image, seed=seed, spacing=spacing, **kw)
    return out


def degrade(
    slices: np.ndarray, kind: str, p: EckerParams, seed: int, spacing, level: float | None = None
) -> np.ndarray:
    """The simulated LQ version of normalised slices ``(n, X, Y)`` (or one ``(X, Y)``) of one scan.

    All slices of one call share one acquisition: the same motion poses, the same breathing
    phase (as a multi-slice scan whose slices are read out together). The phase-encoding (and
    k-space segment) axis is the last one (Y, anterior-posterior in the axial slices).

    Args:
        slices: normalised slices ([0, 1] scale).
        kind: ``motion`` (rigid, TorchIO k-space model of ``mriqa_lib.artifacts``,
            ``motion_transforms`` poses, in-plane angle within +-``motion_degrees`` deg and each
            in-plane translation within +-``motion_translation_mm``), ``noise`` (additive
            N(0, ``noise_sigma``)) or ``respiratory`` (periodic translation along the
            phase-encoding axis, amplitude ``resp_amplitude_mm``, period ``resp_period_lines``).
        p: settings.
        seed: random seed.
        spacing: in-plane voxel size (mm), 2 values.
        level: motion only: overrides both ranges (continuous experiment); a fixed seed then
            moves along one random direction as the level grows.
    """
    x = np.asarray(slices, dtype=np.float32)
    single = x.ndim == 2
    x = x[None] if single else x
    sp = (1.0, *np.broadcast_to(np.asarray(spacing, float), (2,)))
    if kind == "motion":
        deg_r = p.motion_degrees if level is None else level
        tr_r = p.motion_translation_mm if level is None else level
        rng = np.random.default_rng(seed)
        n = p.motion_transforms
        deg = np.zeros((n, 3))
        tr = np.zeros((n, 3))
        deg[:, 0] = rng.uniform(-1, 1, n) * deg_r  # in-plane rotation (about the slice axis)
        tr[:, 1:] = rng.uniform(-1, 1, (n, 2)) * tr_r  # in-plane translation
        if deg_r == 0 and tr_r == 0:
            out = x.copy()
        else:
            out = _artifact("motion", x, seed, sp, degrees=deg, translation=tr)
    elif kind == "noise":
        out = _artifact("noise", x, seed, sp, severity=p.noise_sigma, reference="absolute")
    elif kind == "respiratory":
        out = _artifact(
            "respiratory", x, seed, sp, severity=p.resp_amplitude_mm, period_lines=p.resp_period_lines, pe_axis=2
        )
    else:
        raise ValueError(f"unknown artifact kind {kind!r}")
    return out[0] if single else out


# --------------------------------------------------------------------------------------------
# reference matching
# --------------------------------------------------------------------------------------------
def match_references(
    pool: pd.DataFrame,
    sex: str | None,
    height: float | None,
    weight: float | None,
    n_refs: int,
    match_sex: bool = True,
    site: str | None = None,
    match_site: bool = False,
) -> np.ndarray:
    """Row positions of the ``n_refs`` pool subjects most similar to a test subject.

    With ``match_site``, a known ``site`` and pool subjects of that site (``pool["site"]``), only
    those are candidates (fewer than ``n_refs`` if the site has fewer): references from another
    protocol differ in noise and contrast more than motion changes a slice. Then same sex first
    (when ``match_sex`` and the sex is known; other-sex subjects only fill up a too small same-sex
    pool), then the smallest Euclidean distance of height and weight, each divided by its
    standard deviation in the pool; ties are broken by pool order; pool subjects of unknown height
    or weight come after those known. Unknown height/weight: every subject of the (same-sex) pool
    is equally close. Nothing to match on (sex unknown or not matched, height/weight unknown, as for
    NAKO-IQA without a subject table): every pool subject, not an arbitrary first ``n_refs``.
    """
    if match_site and site is not None and not pd.isna(site) and "site" in pool.columns:
        same = np.flatnonzero(pool["site"].astype(str).to_numpy() == str(site))
        if len(same):
            sub = pool.iloc[same].reset_index(drop=True)
            return same[match_references(sub, sex, height, weight, n_refs, match_sex)]
    n = len(pool)
    known = not (height is None or weight is None or not np.isfinite(height) or not np.isfinite(weight))
    by_sex = match_sex and sex in ("M", "F")
    if not known and not by_sex:
        return np.arange(n)
    dist = np.zeros(n)
    if known:
        hs, ws = pool["height"].to_numpy(float), pool["weight"].to_numpy(float)
        dist = np.hypot((hs - height) / _scale(hs), (ws - weight) / _scale(ws))
        dist = np.where(np.isfinite(dist), dist, 1e3)  # unknown covariates: after every known subject
    if by_sex:
        dist = dist + np.where(pool["sex"].to_numpy() == sex, 0.0, 1e6)
    return np.argsort(dist, kind="stable")[: min(n_refs, n)]


def _scale(values: np.ndarray) -> float:
    """Standard deviation of the known values (1 when it is 0 or nothing is known)."""
    known = values[np.isfinite(values)]
    sd = float(np.std(known)) if len(known) else 0.0
    return sd if sd > 0 else 1.0
