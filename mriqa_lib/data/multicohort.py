"""Multi-cohort T1w adapter (IXI / OASIS-3 / BLSA style) and the preprocessing of paper 2.

A cohort table is a TSV with one row per T1w volume::

    participant_id  cohort  path                          [split]  [rating]
    IXI002          IXI     IXI/IXI002-Guys-0828-T1.nii.gz  train
    OAS30001_d0129  OASIS3  oasis/sub-OAS30001_T1w.nii.gz   test     low

``path`` is absolute or relative to the table's folder. ``split`` is train / val / test (default
train); ``rating`` (low / medium / high) is only needed for the rated test set.
:func:`embedded_table` gives the same table for the embedded cohort (``data/embedded``).

Public cohorts can also be read as they are downloaded, without a table (:func:`folder_table`):

- ``ixi``: the IXI-T1 tarball unpacked, ``IXI<nnn>-<site>-<nnnn>-T1.nii.gz`` (cohort ``IXI-<site>``:
  Guys, HH and IOP are different scanners);
- ``bids``: a BIDS data set, e.g. OASIS-3 converted with its ``BIDS`` scripts,
  ``sub-<id>/[ses-<ses>/]anat/sub-<id>[_ses-<ses>]_T1w.nii.gz``. Two T1w files of one session
  (``run-1``/``run-2``, ``acq-``) are an error naming both: which run was rated cannot be guessed.

Their subjects are split by the split owner (:func:`mriqa_lib.data.splits.split_subjects`).

Preprocessing (paper 2, Sec. 3.1): N4 inhomogeneity correction (SimpleITK ``N4BiasField``), affine
registration to the template (SimpleITK, Mattes mutual information), resampling onto the
template grid, intensity scaling, and axial / coronal / sagittal slices padded to a square
(288 x 288 at 0.8 mm in the paper; 112 x 112 at 2 mm for the embedded default, whose volumes are
already in template space, so N4 and registration are off there).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from mriqa_lib.io import MriqaInputError, Volume, load_nifti, read_tsv

__all__ = [
    "ORIENTATIONS",
    "read_cohort_table",
    "embedded_table",
    "folder_table",
    "cohort_sources",
    "n4_correct",
    "register_affine",
    "template_volume",
    "preprocess_t1w",
    "orientation_slices",
]

ORIENTATIONS = ("axial", "coronal", "sagittal")
_AXIS = {"axial": 2, "coronal": 1, "sagittal": 0}


def read_cohort_table(path: str | os.PathLike) -> object:
    """Read and validate a cohort table; return a DataFrame with absolute ``path`` values.

    Raises:
        MriqaInputError: missing columns, unknown split / rating values, missing image files,
            duplicated participant ids (the message names the table and the row).
    """
    path = Path(path)
    frame = read_tsv(path, required=("participant_id", "cohort", "path"))
    if frame["participant_id"].duplicated().any():
        dup = frame.loc[frame["participant_id"].duplicated(), "participant_id"].tolist()
        raise MriqaInputError(f"{path}: duplicated participant_id {dup[:5]}")
    if "split" not in frame.columns:
        frame["split"] = "train"
    bad = sorted(set(frame["split"].astype(str)) - {"train", "val", "test"})
    if bad:
        raise MriqaInputError(f"{path}: column 'split' has unknown value(s) {bad}; allowed: train, val, test")
    if "rating" in frame.columns:
        ratings = frame["rating"].dropna().astype(str)
        bad = sorted(set(ratings) - {"low", "medium", "high"})
        if bad:
            raise MriqaInputError(f"{path}: column 'rating' has unknown value(s) {bad}; allowed: low, medium, high")
    paths = []
    for i, p in enumerate(frame["path"].astype(str)):
        full = Path(p) if Path(p).is_absolute() else path.parent / p
        if not full.exists():
            raise MriqaInputError(f"{path}: row {i + 1} ({frame['participant_id'].iloc[i]}): image {full} not found")
        paths.append(str(full))
    frame["path"] = paths
    return frame


def embedded_table(root: str | os.PathLike = "data/embedded") -> object:
    """The embedded cohort as a cohort table (cohort = site; splits from participants.tsv)."""
    root = Path(root)
    parts = read_tsv(root / "participants.tsv", required=("participant_id", "site", "split"))
    frame = parts[["participant_id", "site", "split"]].rename(columns={"site": "cohort"}).copy()
    frame["path"] = [str(root / pid / "anat" / f"{pid}_T1w.nii.gz") for pid in frame["participant_id"]]
    missing = [p for p in frame["path"] if not Path(p).exists()]
    if missing:
        raise MriqaInputError(f"{missing[0]}: file not found ({len(missing)} T1w images missing in {root})")
    return frame


_IXI = re.compile(r"^(IXI\d{3})-([A-Za-z]+)-\d+-T1\.nii(\.gz)?$")
_BIDS = re.compile(r"^(sub-[A-Za-z0-9]+)(_ses-[A-Za-z0-9]+)?(_[a-z]+-[A-Za-z0-9]+)*_T1w\.nii(\.gz)?$")


def ixi_rows(root: Path) -> list[dict[str, str]]:
    """IXI-T1 as unpacked: one row per ``IXI<nnn>-<site>-<nnnn>-T1.nii.gz`` (cohort IXI-<site>)."""
    rows = []
    for path in sorted(root.rglob("IXI*-T1.nii*")):
        match = _IXI.match(path.name)
        if match:
            rows.append({"participant_id": match[1], "cohort": f"IXI-{match[2]}", "path": str(path)})
    return rows


def bids_rows(root: Path, cohort: str) -> list[dict[str, str]]:
    """A BIDS data set: one row per session's T1w; two T1w files of one session are an error."""
    found: dict[str, list[Path]] = {}
    for path in sorted(root.rglob("sub-*_T1w.nii*")):
        match = _BIDS.match(path.name)
        if match and path.parent.name == "anat":
            found.setdefault(match[1] + (match[2] or ""), []).append(path)
    for key, paths in found.items():
        if len(paths) > 1:
            raise MriqaInputError(
                f"{root}: {key} has {len(paths)} T1w files ({paths[0].name} and {paths[1].name}); "
                "keep one, or list the chosen one in a cohort table (zuo.cohort_table)"
            )
    return [{"participant_id": key, "cohort": cohort, "path": str(paths[0])} for key, paths in found.items()]


def folder_table(folders: dict[str, str], fractions: tuple[float, ...] = (0.8, 0.1, 0.1), seed: int = 0) -> object:
    """A cohort table from downloaded folders, ``{cohort name: folder}``; the name ``IXI`` (any case)
    reads the IXI layout, any other name a BIDS data set. Subjects (not sessions) are split by the
    split owner, so the sessions of one subject stay together.

    Raises:
        MriqaInputError: a missing folder, a folder with no T1w image, ambiguous BIDS runs, or one
            participant id in two cohorts.
    """
    import pandas as pd

    from mriqa_lib.data.splits import split_subjects

    rows: list[dict[str, str]] = []
    for name, folder in folders.items():
        root = Path(folder)
        if not root.is_dir():
            raise MriqaInputError(f"{root}: cohort folder of '{name}' not found (params key zuo.cohort_dirs)")
        found = ixi_rows(root) if name.lower() == "ixi" else bids_rows(root, name)
        if not found:
            layout = "IXI<nnn>-<site>-<nnnn>-T1.nii.gz" if name.lower() == "ixi" else "sub-*/[ses-*/]anat/*_T1w.nii.gz"
            raise MriqaInputError(f"{root}: no T1w image in the {layout} layout (cohort '{name}')")
        rows.extend(found)
    frame = pd.DataFrame(rows)
    if frame["participant_id"].duplicated().any():
        dup = frame.loc[frame["participant_id"].duplicated(), "participant_id"].tolist()
        raise MriqaInputError(f"zuo.cohort_dirs: participant id(s) {dup[:5]} appear in two folders")
    subject = frame["participant_id"].str.split("_ses-").str[0]
    split = split_subjects(subject, fractions, seed)
    frame["split"] = [split[s] for s in subject]
    return frame


def cohort_sources(
    table: str | None, folders: dict[str, str], fractions: tuple[float, ...], seed: int, embedded: str | os.PathLike
) -> object:
    """Paper 2's volumes: the cohort table's rows plus the downloaded folders' (``zuo.cohort_table``,
    ``zuo.cohort_dirs``), or the embedded cohort when neither is set."""
    import pandas as pd

    if not table and not folders:
        return embedded_table(embedded)
    parts = [read_cohort_table(table)] if table else []
    parts += [folder_table(folders, fractions, seed)] if folders else []
    frame = pd.concat(parts, ignore_index=True)
    if frame["participant_id"].duplicated().any():
        dup = frame.loc[frame["participant_id"].duplicated(), "participant_id"].tolist()
        raise MriqaInputError(f"{table}: participant id(s) {dup[:5]} also come from zuo.cohort_dirs")
    return frame


def n4_correct(volume: Volume, shrink: int = 2, iterations: tuple[int, ...] = (50, 50, 30, 20)) -> Volume:
    """N4 bias-field correction (Tustison et al. 2010) inside an Otsu foreground mask.

    Args:
        volume: T1w volume (any intensity scale, non-negative).
        shrink: down-sampling factor for fitting the field (the field is applied at full size).
        iterations: maximum iterations per fitting level.
    """
    import SimpleITK as sitk

    from mriqa_lib.prepare.itk import sitk_to_volume, volume_to_sitk

    img = volume_to_sitk(volume)
    mask = sitk.OtsuThreshold(img, 0, 1, 200)
    small = sitk.Shrink(img, [shrink] * 3) if shrink > 1 else img
    small_mask = sitk.Shrink(mask, [shrink] * 3) if shrink > 1 else mask
    n4 = sitk.N4BiasFieldCorrectionImageFilter()
    n4.SetMaximumNumberOfIterations(list(iterations))
    n4.Execute(small, small_mask)
    log_field = n4.GetLogBiasFieldAsImage(img)
    corrected = img / sitk.Exp(log_field)
    return sitk_to_volume(sitk.Cast(corrected, sitk.sitkFloat32), volume.path)


def register_affine(
    volume: Volume, template: Volume, iterations: int = 200, seed: int = 0
) -> tuple[Volume, np.ndarray]:
    """Affine registration of ``volume`` to ``template`` (Mattes MI, multi-resolution) and
    resampling onto the template grid.

    Returns:
        the registered volume (template grid) and the 4x4 ITK transform matrix (LPS, mm; maps a
        template point to the moving point it samples).
    """
    import SimpleITK as sitk

    from mriqa_lib.prepare.itk import single_itk_thread, sitk_to_volume, volume_to_sitk
    from mriqa_lib.prepare.register import registration_method

    fixed, moving = volume_to_sitk(template), volume_to_sitk(volume)
    init = sitk.CenteredTransformInitializer(
        fixed, moving, sitk.AffineTransform(3), sitk.CenteredTransformInitializerFilter.MOMENTS
    )
    # ITK's default relaxation factor (0.5), as this registration always used
    reg = registration_method(iterations, seed, [4, 2, 1], [2.0, 1.0, 0.0], sampling=0.25, relaxation=0.5)
    reg.SetInitialTransform(init, inPlace=False)
    with single_itk_thread():
        transform = reg.Execute(fixed, moving)
    out = sitk.Resample(moving, fixed, transform, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    affine_t = sitk.AffineTransform(3)
    # flatten the composite to one matrix for the record
    try:
        inner = transform.GetBackTransform() if hasattr(transform, "GetBackTransform") else transform
        affine_t = sitk.AffineTransform(inner)
    except Exception:  # composite transforms keep their own form; the matrix is informative only
        pass
    mat = np.eye(4)
    mat[:3, :3] = np.asarray(affine_t.GetMatrix()).reshape(3, 3)
    mat[:3, 3] = affine_t.GetTranslation()
    return sitk_to_volume(out, volume.path), mat


def template_volume(spacing: float = 2.0) -> Volume:
    """The ICBM152 2009a T1 (shipped in nilearn) on an isotropic grid of ``spacing`` mm covering the
    reference field of view (2 mm -> exactly the 96 x 112 x 96 reference grid)."""
    from mriqa_lib.data.preprocess import resample_to
    from mriqa_lib.data.template import REF_AFFINE, REF_SHAPE, load_template

    tpl = load_template()
    fov = np.asarray(REF_SHAPE) * 2.0
    shape = tuple(int(round(f / spacing)) for f in fov)
    centre = REF_AFFINE[:3, :3] @ ((np.asarray(REF_SHAPE) - 1) / 2) + REF_AFFINE[:3, 3]
    affine = np.diag([spacing, spacing, spacing, 1.0])
    affine[:3, 3] = centre - (np.asarray(shape) - 1) / 2 * spacing
    data = resample_to(tpl.t1 * tpl.mask, tpl.affine, affine, shape)
    return Volume(data, affine, None)


def preprocess_t1w(
    volume: Volume, template: Volume | None = None, n4: bool = False, register: bool = False, spacing: float = 2.0
) -> Volume:
    """Paper 2 preprocessing up to the template grid: [N4] -> [affine registration] -> template grid.

    Args:
        volume: T1w volume (world frame in mm).
        template: template on the target grid (default :func:`template_volume` at ``spacing``).
        n4: apply N4 bias correction first.
        register: affinely register to the template; otherwise the volume is assumed to be in
            template space already and is only resampled (``conform``).
        spacing: template voxel size (mm) when ``template`` is None.
    """
    from mriqa_lib.data.preprocess import conform

    template = template if template is not None else template_volume(spacing)
    if n4:
        volume = n4_correct(volume)
    if register:
        return register_affine(volume, template)[0]
    return conform(volume, template.affine, tuple(template.data.shape))


def orientation_slices(data: np.ndarray, orientation: str, indices: np.ndarray | list[int], size: int) -> np.ndarray:
    """Slices of a RAS volume in one orientation, zero-padded / centre-cropped to ``size`` x ``size``.

    Args:
        data: 3-D array (x, y, z) on the template grid.
        orientation: "axial" (z), "coronal" (y) or "sagittal" (x).
        indices: slice indices along that axis.
        size: output square size (pixels).

    Returns:
        float32 array (len(indices), size, size).
    """
    from mriqa_lib.data.preprocess import crop_or_pad

    if orientation not in _AXIS:
        raise ValueError(f"orientation must be one of {ORIENTATIONS}, got {orientation!r}")
    stack = np.moveaxis(np.take(data, np.asarray(indices, dtype=int), axis=_AXIS[orientation]), _AXIS[orientation], 0)
    return np.stack([crop_or_pad(s.astype(np.float32), (size, size)) for s in stack])


def load_t1w(path: str | os.PathLike) -> Volume:
    """Read one cohort-table image (clear error naming the file)."""
    return load_nifti(path)
