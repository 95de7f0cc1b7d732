"""Replica of UK Biobank abdominal Dixon as delivered: field 20201 DICOM zips plus a basket CSV.

``ukb/20201/<eid>_20201_2_0.zip``: per participant two table stations, each with four series
(in-phase, opposed-phase, fat, water; descriptions ``Dixon_BH_17s_{in,opp,F,W}``), one DICOM file
per slice, UKB-like voxels (2.232 x 2.232 x 3 mm; the anatomy is the embedded brain, the stations
overlap by a few slices). ``ukb/ukb_basket.csv``: ``eid``, ``31-0.0`` (sex, 0 female / 1 male),
``12144-2.0`` (height, cm) and ``21002-2.0`` (weight, kg) at the imaging visit, plus a participant
without imaging, as every basket has.

The pipeline reads the converted ``<eid>/wat.nii.gz`` (paper 1's layout), so ``build`` runs the
conversion step a user runs once (``mriqa convert ukb-dixon ukb/20201 --out ukb/nifti``, the same
function) and points ``ecker.ukb_dir`` at its output: converting ~50,000 zips takes hours, so it is
a one-off step before the pipeline, not part of every ``synthesize``.
"""

from __future__ import annotations

import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from mriqa_lib.io import load_nifti, read_tsv

METHOD = "ecker"
DESCRIPTION = "UK Biobank Dixon: field 20201 DICOM zips + basket CSV (31-0.0, 12144-2.0, 21002-2.0) -> <eid>/wat.nii.gz"

#: UKB neck-to-knee Dixon voxel size (mm): in-plane x, y and slice thickness
SPACING = (2.232, 2.232, 3.0)
#: the series of one station: description suffix -> image made from the station's water image
SERIES = ("in", "opp", "F", "W")
#: slices shared by the two stations
OVERLAP = 4

TINY = {
    "ecker.n_test_subjects": 2,
    "ecker.n_slices": 2,
    "ecker.slice_step": 1,
    "ecker.img_size": 16,
    "ecker.train_size": 16,
    "ecker.width": 0.125,
    "ecker.proj_dim": 8,
    "ecker.epochs": 1,
    "ecker.warmup_epochs": 0,
    "ecker.batch_size": 4,
    "ecker.n_test_motion": 8,
    "ecker.n_test_noise": 8,
    "ecker.n_refs": 2,
    "ecker.continuous_levels": [0.0, 2.0, 6.0],
    "ecker.continuous_cases": 1,
    "trainer.threads": 1,
}


def scan_matrix(path: Path) -> np.ndarray:
    """An embedded T1w volume on one matrix for every subject (one protocol, as UKB's Dixon is):
    the cohort's 2 mm grid, every second slice (smaller zips)."""
    from mriqa_lib.data.preprocess import conform

    return conform(load_nifti(path)).data[:, :, ::2]


def _uid(*parts: object) -> str:
    """A deterministic DICOM UID under the UUID-derived root 2.25."""
    return "2.25." + str(zlib.crc32("|".join(map(str, parts)).encode()) * 1_000_003 + 7)


def series_images(water: np.ndarray) -> dict[str, np.ndarray]:
    """The four Dixon images of one station (uint16) from its water image: a stand-in fat image (the
    water image mirrored), in-phase = water + fat, opposed-phase = |water - fat|."""
    w = np.clip(water, 0, None)
    f = 0.5 * w[::-1]
    return {"in": w + f, "opp": np.abs(w - f), "F": f, "W": w}


def write_station_series(folder: Path, data: np.ndarray, z0: int, station: int, eid: str, series: int) -> None:
    """One station's four series as single-slice DICOM files in ``folder`` (SimpleITK's GDCM writer).

    ``data`` is the station's water image (x, y, z); ``z0`` its first slice's index in the volume.
    """
    import SimpleITK as sitk

    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()  # keep the series/instance UIDs set below
    for k, (suffix, image) in enumerate(series_images(data).items()):
        vol = sitk.GetImageFromArray(np.round(image).astype(np.uint16).transpose(2, 1, 0))
        vol.SetSpacing(SPACING)
        vol.SetOrigin((-100.0, -80.0, -300.0 + z0 * SPACING[2]))
        number = series + 10 * station + k
        tags = {
            "0008|0060": "MR",
            "0008|103e": f"Dixon_BH_17s_{suffix}",
            "0010|0020": eid,
            "0020|000d": _uid(eid, "study"),
            "0020|000e": _uid(eid, "series", number),
            "0020|0011": str(number),
            "0020|0037": "1\\0\\0\\0\\1\\0",  # axial
            "0018|0050": str(SPACING[2]),
        }
        for z in range(vol.GetDepth()):
            sl = vol[:, :, z]
            for tag, value in tags.items():
                sl.SetMetaData(tag, value)
            sl.SetMetaData("0020|0032", "\\".join(f"{c:.3f}" for c in vol.TransformIndexToPhysicalPoint((0, 0, z))))
            sl.SetMetaData("0020|0013", str(z + 1))
            sl.SetMetaData("0008|0018", _uid(eid, "image", number, z))
            writer.SetFileName(str(folder / f"{number:04d}_{z + 1:03d}.dcm"))
            writer.Execute(sl)


def write_zip(path: Path, data: np.ndarray, eid: str) -> None:
    """``<eid>_20201_2_0.zip``: two overlapping stations of ``data`` (x, y, z), four series each."""
    half = data.shape[2] // 2
    stations = ((0, half + OVERLAP // 2), (half - OVERLAP // 2, data.shape[2]))
    from mriqa_lib.prepare.itk import kept_locale

    with tempfile.TemporaryDirectory(prefix="ukb_replica_") as tmp, kept_locale():
        for s, (a, b) in enumerate(stations):
            write_station_series(Path(tmp), data[:, :, a:b], a, s + 1, eid, series=1)
        path.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            for f in sorted(Path(tmp).iterdir()):
                zf.write(f, f.name)


def basket(parts: pd.DataFrame, eids: list[str], rng: np.random.Generator) -> pd.DataFrame:
    """The basket table: field-id columns, the imaged participants and one without imaging."""
    sex = parts["sex"].astype(str).str.upper().map({"M": "1", "F": "0"}).tolist()
    rows = {
        "eid": [*eids, str(int(eids[-1]) + 17)],
        "31-0.0": [*sex, "0"],
        "12144-2.0": [*parts["height"].round(0).astype(int).astype(str), ""],  # not imaged: no visit-2 values
        "21002-2.0": [*parts["weight"].round(1).astype(str), ""],
    }
    frame = pd.DataFrame(rows)
    frame.insert(2, "34-0.0", rng.integers(1940, 1970, len(frame)).astype(str))  # year of birth: an unused field
    return frame


def build(out: Path, cohort: Path, seed: int) -> dict[str, object]:
    """``out/ukb/20201/*.zip`` and ``out/ukb/ukb_basket.csv`` from the cohort's T1w volumes, then the
    conversion to ``out/ukb/nifti/<eid>/wat.nii.gz``; returns ecker.ukb_dir / ecker.ukb_table."""
    from mriqa_lib.data.ukb import convert_dixon

    rng = np.random.default_rng(seed)
    parts = read_tsv(cohort / "participants.tsv", required=("participant_id", "sex", "height", "weight"))
    eids = [str(e) for e in sorted(rng.choice(np.arange(1_000_000, 6_000_000), len(parts), replace=False))]
    root = out / "ukb"
    for pid, eid in zip(parts["participant_id"].astype(str), eids):
        data = scan_matrix(cohort / pid / "anat" / f"{pid}_T1w.nii.gz")
        write_zip(root / "20201" / f"{eid}_20201_2_0.zip", data, eid)
    root.mkdir(parents=True, exist_ok=True)
    basket(parts, eids, rng).to_csv(root / "ukb_basket.csv", index=False)
    convert_dixon(root / "20201", root / "nifti", log=lambda s: None)
    return {"ecker.ukb_dir": str(root / "nifti"), "ecker.ukb_table": str(root / "ukb_basket.csv")}
