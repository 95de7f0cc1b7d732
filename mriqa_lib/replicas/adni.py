"""Replica of ADNI as LONI delivers it: a NIfTI download, MRIQUALITY.csv, and a test-retest pairs table.

``ADNI/<PTID>/<description>/<date_time>/I<image>/ADNI_<PTID>_MR_<description>_br_raw_<datetime>_1_S<series>_I<image>.nii``
for four subjects of the source cohort, in a native scanner frame (sagittal, 1.2 x 1 x 1 mm voxels
stored left-right x anterior-posterior x superior-inferior, the head tilted and off the isocentre),
so the preparation chain has work to do. The embedded cohort's volumes are brain-only (no scalp or
skull), and so are these; deepbet and the registration handle that. Subjects (in the cohort's order):

* 1-2: one ``MPRAGE`` each, ``PASS`` 1 (training and validation);
* 3: a back-to-back ``MPRAGE`` (``PASS`` 1) and ``MPRAGE_Repeat`` with simulated motion (``PASS`` 0),
  the test-retest pair of ``adni_test_retest_pairs.csv`` (the authors' kind of selection; ADNI
  ships no such table), so a test subject;
* 4: one ``MPRAGE`` with ghosting, ``PASS`` 0 (never used).

Four scans go through the preparation chain (deepbet + registration, a few seconds each on CPU).

``MRIQUALITY.csv`` rates every file by series id (``LONIUID`` = ``S<series>``) and adds a row of
a subject that was not downloaded, as the real table covers all of ADNI. ``spm12_gm/`` holds what
SPM12 "Segment" writes for each file: ``c1<file>.nii``, its grey-matter probability in the file's
own space (from the cohort's GM map).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mriqa_lib.io import Volume, load_nifti, read_tsv, save_nifti

METHOD = "shaw"
DESCRIPTION = "ADNI: LONI NIfTI download (ADNI/<PTID>/.../ADNI_*_S<series>_I<image>.nii, native space) + MRIQUALITY.csv"

#: native voxel size (mm): sagittal slices (left-right), then anterior-posterior, superior-inferior
SPACING = (1.2, 1.0, 1.0)
#: native matrix: 168 x 224 x 200 mm around the brain
SHAPE = (140, 224, 200)
#: ADNI site numbers given to the cohort's sites (PTID = <site>_S_<RID>)
SITES = ("002", "011", "023")
N_SUBJECTS = 4
PAIR, FAILED = 2, 3  # the pair subject and the QC-failed subject (index in the cohort)

#: MRIQUALITY.csv columns (ADNI's usual CRF columns; the adapter reads RID, VISCODE2, LONIUID, PASS)
QC_COLUMNS = ("Phase", "ID", "RID", "SITEID", "VISCODE", "VISCODE2", "USERDATE", "LONIUID", "PASS", "update_stamp")

TINY = {
    "shaw.grid_mm": 8.0,
    "shaw.features": [2, 4],
    "shaw.patch": 8,
    "shaw.iterations": 4,
    "shaw.multitask_iterations": 4,
    "shaw.val_every": 2,
    "shaw.corruptions_per_volume": 1,
    "shaw.multitask_extra_per_volume": 1,
    "shaw.snr_levels": 3,
    "shaw.map_cases": 1,
    "trainer.threads": 1,
}


def native_grid(rng: np.random.Generator) -> np.ndarray:
    """Voxel -> scanner mm of one acquisition: the sagittal grid centred on the brain, then a random
    head position (rotation 3-10 degrees and shift 30-45 mm per axis, random signs): a scanner's
    frame is nowhere near MNI space, so the preparation chain must register every scan."""
    from scipy.spatial.transform import Rotation

    grid = np.eye(4)
    grid[:3, :3] = np.diag([SPACING[0], -SPACING[1], -SPACING[2]])  # L->R, A->P, S->I
    grid[:3, 3] = np.array([0.0, -18.0, 22.0]) - grid[:3, :3] @ ((np.array(SHAPE) - 1) / 2)
    move = np.eye(4)
    signs = rng.choice([-1.0, 1.0], (2, 3))
    move[:3, :3] = Rotation.from_euler("xyz", signs[0] * rng.uniform(3.0, 10.0, 3), degrees=True).as_matrix()
    move[:3, 3] = signs[1] * rng.uniform(30.0, 45.0, 3)
    return move @ grid, move


def _native(volume: Volume, native: np.ndarray, move: np.ndarray) -> np.ndarray:
    """``volume`` (cohort world = template mm) sampled on the native grid (scanner mm = move @ template mm)."""
    from mriqa_lib.data.preprocess import resample_to

    return resample_to(volume.data, volume.affine, np.linalg.inv(move) @ native, SHAPE)


def _scan(rng: np.random.Generator, ptid: str, desc: str, date: str, series: int, image: int) -> Path:
    """LONI's relative path of one scan."""
    hms = [int(rng.integers(8, 18)), int(rng.integers(0, 60)), int(rng.integers(0, 60))]
    stamp = date.replace("-", "") + "".join(f"{v:02d}" for v in hms) + f"{int(rng.integers(0, 999)):03d}"
    folder = Path("ADNI") / ptid / desc / f"{date}_{stamp[8:10]}_{stamp[10:12]}_{stamp[12:14]}.0" / f"I{image}"
    return folder / f"ADNI_{ptid}_MR_{desc}_br_raw_{stamp}_1_S{series}_I{image}.nii"


def _plan(parts: pd.DataFrame, rng: np.random.Generator) -> list[dict]:
    """The scans to write: subject, PTID, RID, description, artefact, PASS, ids."""
    sites = sorted(parts["site"].astype(str).unique())
    rids = rng.choice(np.arange(100, 1500), N_SUBJECTS, replace=False)
    series, image = int(rng.integers(10000, 20000)), int(rng.integers(20000, 30000))
    plan = []
    for k, (pid, site) in enumerate(zip(parts["participant_id"][:N_SUBJECTS], parts["site"][:N_SUBJECTS])):
        ptid = f"{SITES[sites.index(str(site)) % len(SITES)]}_S_{int(rids[k]):04d}"
        date = f"20{6 + k % 3:02d}-0{1 + k % 9}-1{k % 10}"
        kinds = [("MPRAGE", "none", 1)]
        if k == PAIR:
            kinds.append(("MPRAGE_Repeat", "motion", 0))
        if k == FAILED:
            kinds = [("MPRAGE", "ghosting", 0)]
        for desc, artefact, passed in kinds:
            series, image = series + int(rng.integers(1, 50)), image + int(rng.integers(1, 50))
            plan.append(
                {"participant_id": pid, "ptid": ptid, "rid": int(rids[k]), "desc": desc, "date": date,
                 "artefact": artefact, "pass": passed, "series": series, "image": image}
            )  # fmt: skip
    return plan


def _artefact(data: np.ndarray, kind: str, seed: int) -> np.ndarray:
    from mriqa_lib.artifacts import apply_artifact

    if kind == "none":
        return data
    severity = {"motion": 4.0, "ghosting": 0.6}[kind]
    return apply_artifact(kind, data, severity, seed=seed, spacing=SPACING)[0]


def _write_scan(out: Path, cohort: Path, s: dict, rng: np.random.Generator, seed: int) -> Path:
    pid = s["participant_id"]
    native, move = native_grid(rng)
    t1 = _native(load_nifti(cohort / pid / "anat" / f"{pid}_T1w.nii.gz"), native, move)
    t1 = np.clip(_artefact(t1, s["artefact"], seed + s["image"]), 0, None)
    rel = _scan(rng, s["ptid"], s["desc"], s["date"], s["series"], s["image"])
    save_nifti(out / rel, np.round(t1), native, np.int16)
    gm = _native(load_nifti(cohort / pid / "anat" / f"{pid}_label-GM_probseg.nii.gz"), native, move)
    _save_c1(out / "spm12_gm" / f"c1{rel.name}", gm, native)
    return rel


def _save_c1(path: Path, prob: np.ndarray, affine: np.ndarray) -> None:
    """A probability map as SPM12 writes c1: uint8 with scale factor 1/255."""
    import nibabel as nib

    img = nib.Nifti1Image(np.round(np.clip(prob, 0, 1) * 255).astype(np.uint8), affine)
    img.header.set_slope_inter(1 / 255, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, str(path))


def _qc_rows(plan: list[dict], rng: np.random.Generator) -> pd.DataFrame:
    rows = [
        {"Phase": "ADNI1", "ID": 1000 + i, "RID": s["rid"], "SITEID": int(s["ptid"][:3]), "VISCODE": "bl",
         "VISCODE2": "bl", "USERDATE": s["date"], "LONIUID": f"S{s['series']}", "PASS": s["pass"],
         "update_stamp": f"{s['date']} 00:00:00.0"}
        for i, s in enumerate(plan)
    ]  # fmt: skip
    # a subject that was not downloaded: the real table covers all of ADNI
    rows.append({**rows[0], "ID": 999, "RID": 1999, "SITEID": 2, "LONIUID": f"S{int(rng.integers(90000, 99999))}"})
    return pd.DataFrame(rows, columns=list(QC_COLUMNS))


def build(out: Path, cohort: Path, seed: int) -> dict[str, object]:
    """Write the LONI tree, ``MRIQUALITY.csv``, ``adni_test_retest_pairs.csv`` and ``spm12_gm/`` under ``out``."""
    rng = np.random.default_rng(seed)
    parts = read_tsv(cohort / "participants.tsv", required=("participant_id", "site"))
    if len(parts) < N_SUBJECTS:
        raise ValueError(f"{cohort}: the ADNI replica needs {N_SUBJECTS} subjects, found {len(parts)}")
    plan = _plan(parts, rng)
    out.mkdir(parents=True, exist_ok=True)
    for s in plan:
        s["file"] = str(_write_scan(out, cohort, s, rng, seed))
    _qc_rows(plan, rng).to_csv(out / "MRIQUALITY.csv", index=False)
    clean, art = (next(s for s in plan if s["desc"] == d and s["participant_id"] == parts["participant_id"].iloc[PAIR])
                  for d in ("MPRAGE", "MPRAGE_Repeat"))  # fmt: skip
    pd.DataFrame(
        [{"subject_id": clean["ptid"], "clean_image_id": f"I{clean['image']}", "artefact_image_id": f"I{art['image']}"}]
    ).to_csv(out / "adni_test_retest_pairs.csv", index=False)
    pd.DataFrame(plan).to_csv(out / "replica_truth.csv", index=False)  # what was written (for tests)
    return {
        "shaw.adni_root": str(out / "ADNI"),
        "shaw.adni_qc_table": str(out / "MRIQUALITY.csv"),
        "shaw.adni_pairs_table": str(out / "adni_test_retest_pairs.csv"),
        "shaw.adni_gm_dir": str(out / "spm12_gm"),
    }
