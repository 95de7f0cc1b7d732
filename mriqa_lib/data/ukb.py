"""UK Biobank abdominal Dixon (bulk field 20201) as delivered -> ``<eid>/wat.nii.gz`` (paper 1's layout).

UK Biobank delivers field 20201 ("Dixon technique for internal fat") as one zip of DICOM files per
participant and imaging visit, named ``<eid>_20201_<instance>_<array>.zip`` (instance 2: the first
imaging visit, the one whose height and weight ``12144-2.0`` / ``21002-2.0`` describe). For every
table station a zip holds four series: in-phase, opposed-phase, fat and water, whose series
descriptions end in ``_in``, ``_opp``, ``_F`` and ``_W``. Paper 1's authors trained on
``<eid>/wat.nii.gz``, the water image of all stations in one volume (st166250/MA
``simclr/dataset.py``; the wat/fat/inp/opp names are those of the Tuebingen group's extraction,
BioMedIA/UKBB-GNC-Abdominal-Segmentation ``extract_ukbb.py``). Their conversion is not published;
:func:`convert_dixon` does the small, documented equivalent:

1. read the zip's DICOM files with SimpleITK (GDCM), one 3-D image per series;
2. keep the water series (last ``_``-separated word of the description is ``W``): one per station;
3. put the stations on one grid (the first station's orientation and voxel size, spanning all
   stations), each station resampled onto it linearly; slices where stations overlap are averaged
   (no intensity matching or seam blending, unlike the authors' stitching tools);
4. write ``OUT/<eid>/wat.nii.gz`` atomically (float32).
"""

from __future__ import annotations

import re
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from mriqa_lib.io import MriqaInputError, atomic_path

FIELD = "20201"
#: ``<eid>_20201_<instance>_<array>.zip``
ZIP_NAME = re.compile(rf"^(?P<eid>\d+)_{FIELD}_(?P<instance>\d+)_(?P<array>\d+)\.zip$")
#: DICOM tag of the series description
DESCRIPTION_TAG = "0008|103e"


def dixon_zips(zip_dir: str | Path, instance: int = 2) -> dict[str, Path]:
    """``eid -> zip`` of field 20201 at ``instance`` in ``zip_dir`` (other files are ignored).

    Raises:
        MriqaInputError: missing folder, no such zip, or two zips of one participant and visit.
    """
    zip_dir = Path(zip_dir)
    if not zip_dir.is_dir():
        raise MriqaInputError(f"{zip_dir}: folder of UK Biobank field {FIELD} zips not found")
    found: dict[str, Path] = {}
    for path in sorted(zip_dir.iterdir()):
        m = ZIP_NAME.match(path.name)
        if m is None or int(m["instance"]) != instance:
            continue
        if m["eid"] in found:
            raise MriqaInputError(f"two field {FIELD} zips of participant {m['eid']}: {found[m['eid']]} and {path}")
        found[m["eid"]] = path
    if not found:
        raise MriqaInputError(f"{zip_dir}: no <eid>_{FIELD}_{instance}_<array>.zip files")
    return found


def is_water(description: str) -> bool:
    """Whether a UKB Dixon series description names the water image (``..._W``)."""
    return description.strip().rsplit("_", 1)[-1] == "W"


def _series(folder: Path) -> list[tuple[str, list[str]]]:
    """(description, sorted file names) of every DICOM series in ``folder``."""
    import SimpleITK as sitk

    out = []
    for uid in sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)):
        files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), uid)
        reader = sitk.ImageFileReader()
        reader.SetFileName(files[0])
        reader.ReadImageInformation()
        desc = reader.GetMetaData(DESCRIPTION_TAG) if reader.HasMetaDataKey(DESCRIPTION_TAG) else ""
        out.append((desc, list(files)))
    return out


def water_stations(zip_path: str | Path) -> list:
    """The water series of one zip, one ``SimpleITK.Image`` (float32) per table station."""
    import SimpleITK as sitk

    zip_path = Path(zip_path)
    with tempfile.TemporaryDirectory(prefix="ukb_dixon_") as tmp:
        try:
            with zipfile.ZipFile(zip_path) as zf:
                zf.extractall(tmp)
        except (zipfile.BadZipFile, OSError) as exc:
            raise MriqaInputError(f"{zip_path}: cannot unzip ({exc})") from None
        folders = sorted({p.parent for p in Path(tmp).rglob("*") if p.is_file()})
        series = [s for folder in folders for s in _series(folder)]
        water = [files for desc, files in series if is_water(desc)]
        if not water:
            names = sorted({desc for desc, _ in series}) or ["no DICOM series"]
            raise MriqaInputError(f"{zip_path}: no water series (description ending '_W'); found {names}")
        return [sitk.Cast(sitk.ReadImage(files), sitk.sitkFloat32) for files in water]


def stack_stations(stations: list):
    """One image of all stations: the first station's orientation and spacing, spanning every
    station; overlapping voxels are averaged.

    Raises:
        MriqaInputError: stations of different orientation (not one axial stack).
    """
    import SimpleITK as sitk

    ref = stations[0]
    for st in stations[1:]:
        if not np.allclose(st.GetDirection(), ref.GetDirection(), atol=1e-4):
            raise MriqaInputError("Dixon stations of different orientation; cannot stack them into one volume")
    corners = []
    for st in stations:  # every station's corner voxels, as continuous indices of the first station
        for ijk in np.ndindex(2, 2, 2):
            idx = [float(c * (n - 1)) for c, n in zip(ijk, st.GetSize())]
            corners.append(ref.TransformPhysicalPointToContinuousIndex(st.TransformContinuousIndexToPhysicalPoint(idx)))
    lo = np.floor(np.min(corners, axis=0) + 1e-3)
    hi = np.ceil(np.max(corners, axis=0) - 1e-3)
    grid = sitk.Image([int(n) for n in hi - lo + 1], sitk.sitkFloat32)
    grid.SetSpacing(ref.GetSpacing())
    grid.SetDirection(ref.GetDirection())
    grid.SetOrigin(ref.TransformContinuousIndexToPhysicalPoint([float(v) for v in lo]))
    total = np.zeros(sitk.GetArrayViewFromImage(grid).shape, np.float64)
    count = np.zeros_like(total)
    for st in stations:
        ones = sitk.Image(st.GetSize(), sitk.sitkFloat32) + 1.0
        ones.CopyInformation(st)
        total += sitk.GetArrayFromImage(sitk.Resample(st, grid, sitk.Transform(), sitk.sitkLinear, 0.0))
        count += sitk.GetArrayFromImage(sitk.Resample(ones, grid, sitk.Transform(), sitk.sitkNearestNeighbor, 0.0))
    out = sitk.GetImageFromArray(np.where(count > 0, total / np.maximum(count, 1), 0.0).astype(np.float32))
    out.CopyInformation(grid)
    return out


def convert_zip(zip_path: str | Path, target: str | Path) -> Path:
    """The stacked water image of one zip, written atomically to ``target`` (``.nii.gz``)."""
    import SimpleITK as sitk

    image = stack_stations(water_stations(zip_path))
    with atomic_path(target) as tmp:
        sitk.WriteImage(image, str(tmp))
    return Path(target)


def convert_dixon(
    zip_dir: str | Path,
    out: str | Path,
    instance: int = 2,
    overwrite: bool = False,
    log: Callable[[str], None] = print,
) -> list[Path]:
    """Convert every field 20201 zip of ``zip_dir`` to ``out/<eid>/wat.nii.gz``.

    Participants whose ``wat.nii.gz`` exists are skipped unless ``overwrite`` (so a long
    conversion can be resumed). Returns the written or kept files, in eid order.
    """
    zips = dixon_zips(zip_dir, instance)
    out = Path(out)
    done = []
    for k, (eid, path) in enumerate(zips.items()):
        target = out / eid / "wat.nii.gz"
        if overwrite or not target.exists():
            convert_zip(path, target)
        done.append(target)
        if (k + 1) % 100 == 0 or k + 1 == len(zips):
            log(f"ukb-dixon: {k + 1}/{len(zips)} participants -> {out}/<eid>/wat.nii.gz")
    return done
