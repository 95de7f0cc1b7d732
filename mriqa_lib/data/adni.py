"""ADNI reader (paper 3): MPRAGE NIfTI files with a QC table, test-retest pairs, rigid alignment.

ADNI cannot be downloaded here (data-use agreement); this adapter reads it in the form LONI
delivers it, from paths in params.yaml (``shaw.adni_root``, ``shaw.adni_qc_table``,
``shaw.adni_pairs_table``):

* NIfTI files anywhere below ``adni_root``; LONI names end with the image id
  (``ADNI_002_S_0295_MR_MPRAGE_..._S13408_I13722.nii``). A ``path`` column in the QC table
  (relative to ``adni_root`` or absolute) overrides the search.
* QC table (CSV or TSV), one row per scan. Columns (first alias found is used):
  image id: ``image_id`` / ``ImageUID`` / ``LONIUID`` / ``Image Data ID`` (a leading ``I`` is ignored);
  subject: ``subject_id`` / ``PTID`` / ``Subject``;
  artefact-free flag: ``artefact_free`` / ``artifact_free`` / ``qc_pass`` / ``PASS`` (1/0, true/false, yes/no);
  optional ``gm_path``: a cortical grey-matter map for the multi-task model.
* pairs table (CSV or TSV): ``subject_id``, ``clean_image_id``, ``artefact_image_id`` -- the
  test-retest pairs in which one scan was labelled "containing artefacts".

Subjects are split by :mod:`mriqa_lib.data.splits` (the one owner of splits); paper 3 forces the
subjects of the test-retest pairs (:func:`pair_subjects`: the pairs table's subject ids and the QC
table's subject of every pair image) into its test split (:mod:`mriqa_lib.methods.shaw.synthesis`).

The scans must already be affinely registered to MNI space (e.g. Clinica ``t1-linear``), as
:func:`mriqa_lib.data.preprocess.conform` assumes. Pairs are aligned rigidly (SimpleITK, Mattes
mutual information) by :func:`rigid_align`, the artefact scan onto the clean scan's grid.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from mriqa_lib.io import MriqaInputError, Volume, load_nifti

__all__ = [
    "read_table",
    "read_qc_table",
    "read_pairs_table",
    "pair_subjects",
    "find_images",
    "adni_scans",
    "adni_pairs",
    "rigid_align",
]

_ID = ("image_id", "ImageUID", "LONIUID", "Image Data ID", "image_uid")
_SUBJECT = ("subject_id", "PTID", "Subject", "subject")
_FLAG = ("artefact_free", "artifact_free", "qc_pass", "PASS", "passed")
_TRUE = {"1", "true", "yes", "y", "pass", "passed", "t"}
_FALSE = {"0", "false", "no", "n", "fail", "failed", "f"}


def read_table(path: str | os.PathLike) -> Any:
    """A CSV or TSV (chosen by content: tab in the header line) as strings; clear error if unreadable."""
    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise MriqaInputError(f"{path}: file not found")
    try:
        header = path.read_text(errors="replace").splitlines()[0]
        sep = "\t" if "\t" in header else ","
        return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
    except Exception as exc:  # pandas raises many parser error types
        raise MriqaInputError(f"{path}: cannot parse table ({exc})") from None


def _pick(frame, names: tuple[str, ...], path: Path, what: str) -> str:
    for n in names:
        if n in frame.columns:
            return n
    raise MriqaInputError(f"{path}: no {what} column (expected one of {list(names)}); found {list(frame.columns)}")


def _clean_id(value: str) -> str:
    v = str(value).strip()
    return v[1:] if re.fullmatch(r"[Ii]\d+", v) else v


def read_qc_table(path: str | os.PathLike) -> Any:
    """QC table -> DataFrame with ``image_id``, ``subject_id``, ``artefact_free`` (bool) and,
    when present, ``path`` and ``gm_path``."""
    path = Path(path)
    raw = read_table(path)
    cid, csub, cflag = (
        _pick(raw, _ID, path, "image id"),
        _pick(raw, _SUBJECT, path, "subject"),
        _pick(raw, _FLAG, path, "artefact-free flag"),
    )
    out = raw.copy()
    out["image_id"] = raw[cid].map(_clean_id)
    out["subject_id"] = raw[csub].astype(str).str.strip()
    flags = []
    for i, v in enumerate(raw[cflag].astype(str).str.strip().str.lower()):
        if v in _TRUE:
            flags.append(True)
        elif v in _FALSE:
            flags.append(False)
        else:
            raise MriqaInputError(
                f"{path}: row {i + 2}: artefact-free flag {raw[cflag].iloc[i]!r} is not 1/0/true/false"
            )
    out["artefact_free"] = flags
    if out["image_id"].duplicated().any():
        dup = out["image_id"][out["image_id"].duplicated()].iloc[0]
        raise MriqaInputError(f"{path}: image id {dup} appears more than once")
    return out


def read_pairs_table(path: str | os.PathLike) -> Any:
    """Pairs table -> DataFrame with ``subject_id``, ``clean_image_id``, ``artefact_image_id``."""
    path = Path(path)
    raw = read_table(path)
    for col in ("subject_id", "clean_image_id", "artefact_image_id"):
        if col not in raw.columns:
            raise MriqaInputError(f"{path}: missing column {col!r}; found {list(raw.columns)}")
    out = raw.copy()
    out["subject_id"] = raw["subject_id"].astype(str).str.strip()
    out["clean_image_id"] = raw["clean_image_id"].map(_clean_id)
    out["artefact_image_id"] = raw["artefact_image_id"].map(_clean_id)
    return out


def pair_subjects(pairs_table: str | os.PathLike, qc_table: str | os.PathLike | None = None) -> set[str]:
    """Every subject of the test-retest pairs: the pairs table's ``subject_id`` and, through the QC
    table, the subject each pair's clean and artefact image is filed under there.

    The second set matters when the two tables name a subject differently (e.g. RID ``295`` vs
    PTID ``002_S_0295``): the pair's clean scan is then still recognised as that subject's, so
    neither it nor any other scan of the subject can reach training or validation.
    """
    pairs = read_pairs_table(pairs_table)
    out = set(pairs["subject_id"])
    if qc_table is not None:
        qc = read_qc_table(qc_table)
        images = set(pairs["clean_image_id"]) | set(pairs["artefact_image_id"])
        out |= set(qc.loc[qc["image_id"].isin(images), "subject_id"])
    return out


def find_images(root: str | os.PathLike) -> dict[str, Path]:
    """Image id -> NIfTI path for every file below ``root`` whose name ends in ``_I<id>`` / ``I<id>``
    (LONI naming) or is ``<id>.nii[.gz]``."""
    root = Path(root)
    if not root.is_dir():
        raise MriqaInputError(f"{root}: ADNI folder not found (params shaw.adni_root)")
    index: dict[str, Path] = {}
    for p in sorted(root.rglob("*.nii*")):
        stem = p.name.split(".nii")[0]
        m = re.search(r"(?:^|_)I?(\d+)$", stem)
        key = m.group(1) if m else stem
        index.setdefault(key, p)
    return index


def adni_scans(root: str | os.PathLike, qc_table: str | os.PathLike) -> Any:
    """The QC table with a resolved ``path`` per scan (and ``gm_path`` made absolute when given).

    Raises:
        MriqaInputError: a scan of the table has no file (names the table and the image id).
    """
    root = Path(root)
    frame = read_qc_table(qc_table)
    index = None
    paths = []
    for rec in frame.to_dict("records"):
        given = str(rec.get("path", "") or "").strip()
        if given:
            p = Path(given) if Path(given).is_absolute() else root / given
        else:
            index = find_images(root) if index is None else index
            p = index.get(rec["image_id"])
        if p is None or not Path(p).exists():
            raise MriqaInputError(
                f"{qc_table}: image {rec['image_id']} (subject {rec['subject_id']}) has no NIfTI file below {root}"
            )
        paths.append(Path(p))
    frame["path"] = paths
    if "gm_path" in frame.columns:
        frame["gm_path"] = [
            (Path(g) if Path(g).is_absolute() else root / g) if str(g).strip() else None for g in frame["gm_path"]
        ]
    return frame


def adni_pairs(
    root: str | os.PathLike,
    pairs_table: str | os.PathLike,
    qc_table: str | os.PathLike | None = None,
    align: bool = True,
) -> list[dict[str, Any]]:
    """Load the test-retest pairs; the artefact scan is rigidly aligned onto the clean scan's grid.

    Returns:
        one dict per pair: ``subject_id``, ``clean_image_id``, ``artefact_image_id``, ``clean``
        (:class:`Volume`), ``artefact`` (:class:`Volume` on the clean grid), ``alignment`` (dict).
    """
    root = Path(root)
    pairs = read_pairs_table(pairs_table)
    index = find_images(root)
    if qc_table is not None:
        qc = adni_scans(root, qc_table)
        index.update({rec["image_id"]: Path(rec["path"]) for rec in qc.to_dict("records")})
    out = []
    for rec in pairs.to_dict("records"):
        vols = {}
        for role in ("clean", "artefact"):
            iid = rec[f"{role}_image_id"]
            if iid not in index:
                raise MriqaInputError(
                    f"{pairs_table}: {role} image {iid} (subject {rec['subject_id']}) has no NIfTI file below {root}"
                )
            vols[role] = load_nifti(index[iid])
        info: dict[str, Any] = {}
        artefact = vols["artefact"]
        if align:
            artefact, info = rigid_align(vols["clean"], artefact)
        out.append(
            {
                **{k: rec[k] for k in ("subject_id", "clean_image_id", "artefact_image_id")},
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
