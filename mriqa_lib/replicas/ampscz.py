"""Replica of AMP SCZ as paper 5's authors read it: a Clinica ``t1-linear`` CAPS folder, the QC
file ``AMPSCZ_scores.csv`` and the authors' ``sites.csv`` / ``finetune.csv`` / ``pretrain.csv``.

``ampscz/AMPSCZ-Preproc/subjects/sub-<XX#####>/ses-<yyyymmdd#>/t1_linear/`` holds, per scan,
``sub-..._ses-..._rec-norm_run-1_space-MNI152NLin2009cSym_res-1x1x1_T1w.nii.gz`` (the image the
authors used) and, for some scans, the ``rec-nonorm`` reconstruction (intensities not normalised:
the same image with a smooth gain) and Clinica's ``desc-Crop`` copy; one scan has no ``rec``
entity, one only ``rec-nonorm`` (not rated: the authors' "missing rec-norm scan"). The images are
the embedded cohort's volumes, already in template space as t1-linear outputs are (2 mm voxels: the
names keep Clinica's ``res-1x1x1``). Each cohort site becomes an AMP SCZ site (two-letter code, the
first letters of its subject ids); the last is a QC site (``finetune`` in ``sites.csv``), whose
subjects have three sessions with hidden rigid motion that sets their score (4: none ... 1: 4 mm
RMS), so that the three QC classes (1/2, 3, 4) all occur. ``AMPSCZ_scores.csv`` has the authors'
columns (``sub_id_gs, ses_id_gs, timepoint_gs, score, comment``) and unrated rows (``-``, empty).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mriqa_lib.io import load_nifti, read_tsv, save_nifti

METHOD = "bricout"
DESCRIPTION = (
    "AMP SCZ: Clinica t1-linear CAPS (rec-norm / rec-nonorm) + AMPSCZ_scores.csv (sub_id_gs, ses_id_gs, "
    "score, comment), sites.csv, finetune.csv"
)

#: published AMP SCZ site codes (the authors' sites.csv): synthesis ("pretrain") and QC ("finetune")
PRETRAIN_CODES = ("NC", "CM", "GA", "TE", "GW", "BM")
FINETUNE_CODES = ("IR", "MT", "PA", "PV", "OR", "YA", "SF")
#: hidden motion (RMS, mm) of a QC-site session by its score, and the rater's comment
MOTION_BY_SCORE = {4: 0.0, 3: 1.2, 2: 2.5, 1: 4.0}
COMMENT_BY_SCORE = {
    4: "no notable issues",
    3: "some motion and ringing",
    2: "severe motion",
    1: "severe motion throughout",
}
#: the scores of the three sessions of each QC-site subject, in turn: every subject has the 3 classes
QC_SCORES = ((4, 3, 2), (3, 1, 4), (2, 4, 3), (4, 3, 1))
TIMEPOINTS = ("baseline_arm_1", "month_2_arm_1", "")
SPACE = "space-MNI152NLin2009cSym"
CAPS_NAME = "AMPSCZ-Preproc"

TINY = {
    "bricout.progress": False,
    "bricout.workers": 1,
    "bricout.seeds": [0, 1],
    "bricout.data.grid_mm": 8.0,
    "bricout.data.crop": [16, 16, 16],
    "bricout.data.qc_split": [0.4, 0.2, 0.4],
    "bricout.model.channels": [2, 2],
    "bricout.model.latent": 2,
    "bricout.pretrain.samples_per_volume": 2,
    "bricout.pretrain.max_epochs": 1,
    "bricout.pretrain.batch_size": 4,
    "bricout.transfer.max_epochs": 1,
    "bricout.scratch.max_epochs": 1,
    "bricout.augment.elastic_max_displacement_mm": 4.0,
    "trainer.threads": 1,
}


def t1_name(sub: str, ses: str, rec: str | None = "norm", run: int | None = 1, crop: bool = False) -> str:
    """Clinica t1-linear file name of a scan (BIDS entity order: rec before run)."""
    parts = [f"sub-{sub}", f"ses-{ses}"]
    parts += [f"rec-{rec}"] if rec else []
    parts += [f"run-{run}"] if run else []
    parts += [SPACE] + (["desc-Crop"] if crop else []) + ["res-1x1x1_T1w.nii.gz"]
    return "_".join(parts)


def site_codes(sites: list[str]) -> dict[str, str]:
    """Cohort site -> AMP SCZ code: the last site is a QC site, the others synthesis sites."""
    sites = sorted(sites)
    return {s: (FINETUNE_CODES[0] if i == len(sites) - 1 else PRETRAIN_CODES[i]) for i, s in enumerate(sites)}


def degrade(volume, rms: float, seed: int) -> np.ndarray:
    """The volume with rigid motion of ``rms`` mm RMS (the paper's k-space motion model)."""
    from mriqa_lib.methods.bricout.data import motion_to_rms
    from mriqa_lib.methods.bricout.params import MotionParams

    data = np.asarray(volume.data, np.float32)
    if rms <= 0:
        return data
    out, _ = motion_to_rms(data, float(volume.spacing[0]), rms, seed, MotionParams(tolerance_mm=0.05), "fast")
    return np.clip(out, 0, None)


def write_scan(folder: Path, sub: str, ses: str, data: np.ndarray, affine: np.ndarray, variants: set[str]) -> str:
    """The t1-linear files of one scan; returns the name of the one the authors used.

    ``variants``: "nonorm" (also the rec-nonorm image), "crop" (also desc-Crop copies), "norec"
    (no rec entity: the only image), "nonorm_only" (only rec-nonorm: not rated).
    """
    folder.mkdir(parents=True, exist_ok=True)
    gain = 1.7 + 0.3 * np.linspace(-1, 1, data.shape[1])[None, :, None]  # not intensity-normalised
    if "norec" in variants:
        images = {t1_name(sub, ses, rec=None): data}
    elif "nonorm_only" in variants:
        images = {t1_name(sub, ses, rec="nonorm"): data * gain}
    else:
        images = {t1_name(sub, ses): data}
        if "nonorm" in variants:
            images[t1_name(sub, ses, rec="nonorm")] = data * gain
    for name, image in images.items():
        save_nifti(folder / name, np.round(image), affine, dtype=np.int16)  # as scanners deliver
        if "crop" in variants:  # Clinica's cropped copy: a centred box, origin moved accordingly
            lo = np.asarray(image.shape) // 8
            crop = image[lo[0] : -lo[0], lo[1] : -lo[1], lo[2] : -lo[2]]
            shifted = affine.copy()
            shifted[:3, 3] = affine[:3, :3] @ lo + affine[:3, 3]
            save_nifti(folder / name.replace(SPACE, f"{SPACE}_desc-Crop"), np.round(crop), shifted, dtype=np.int16)
    return t1_name(sub, ses, rec=None) if "norec" in variants else t1_name(sub, ses)


def plan(parts: pd.DataFrame, seed: int) -> pd.DataFrame:
    """One row per scan: sub_id_gs, ses_id_gs, timepoint_gs, score (int or "-"/""), comment, site,
    the source participant, the hidden motion and the file variants."""
    rng = np.random.default_rng(seed)
    codes = site_codes(parts["site"].astype(str).unique().tolist())
    rows, k, n_qc = [], 0, 0
    for pid, site in zip(parts["participant_id"].astype(str), parts["site"].astype(str)):
        code = codes[site]
        sub = f"{code}{int(rng.integers(1, 99999)):05d}"
        qc = code in FINETUNE_CODES
        for j in range(3 if qc else 2):
            ses = f"2023{1 + 4 * j + int(rng.integers(0, 4)):02d}{int(rng.integers(1, 29)):02d}1"  # distinct
            if qc:
                score = QC_SCORES[n_qc % len(QC_SCORES)][j]
                comment = COMMENT_BY_SCORE[score]
            else:  # synthesis sites: mostly clean, some ringing (not eligible), some unrated
                score, comment = [(4, "no notable issues"), (4, ""), (3, "minor ringing"), (4, "some motion")][k % 4]
            variants = {"nonorm"} if k % 2 == 0 else set()
            variants |= {"crop"} if k % 3 == 0 else set()
            variants |= {"norec"} if k == 5 else set()
            rows.append(
                dict(
                    sub=sub,
                    ses=ses,
                    tp=TIMEPOINTS[j],
                    score=score,
                    comment=comment,
                    site=code,
                    pid=pid,
                    rms=MOTION_BY_SCORE[score] if qc else 0.0,
                    variants=variants,
                )
            )
            k += 1
        n_qc += qc
    # one scan with only rec-nonorm, not rated (as "missing rec-norm scan" in the real file)
    last = next(r for r in rows if r["site"] not in FINETUNE_CODES)
    rows.append(
        dict(
            last,
            ses=f"{int(last['ses']) + 1}",
            tp="",
            score="-",
            comment="missing rec-norm scan",
            variants={"nonorm_only"},
        )
    )
    rows.append(dict(last, ses=f"{int(last['ses']) + 2}", tp="", score="", comment="", variants={"nonorm"}))
    return pd.DataFrame(rows)


def authors_scan_list(scans: pd.DataFrame, split: dict[str, str]) -> pd.DataFrame:
    """``finetune.csv`` / ``pretrain.csv`` in the authors' format (index column first)."""
    keywords = ("motion", "moion", "motio", "ringing", "rinin", "ringin")  # the authors' motion keywords
    return pd.DataFrame(
        {
            "sub_id_gs": scans["sub"],
            "ses_id_gs": scans["ses"],
            "timepoint_gs": scans["tp"],
            "score": scans["score"],
            "comment": scans["comment"],
            "sub-ses": scans["sub"] + "-" + scans["ses"],
            "site": scans["site"],
            "motion": [any(w in c.lower() for w in keywords) for c in scans["comment"]],
            "group": scans["sub"].map(split),
            "data": scans["data"],
        }
    )


def subject_split(subjects: list[str]) -> dict[str, str]:
    """Authors-style subject-wise split of a scan list: about 40 / 20 / 40 % train / val / test."""
    subjects = sorted(set(subjects))
    n = len(subjects)
    n_train, n_val = max(1, round(0.4 * n)), max(1, round(0.2 * n))
    return {s: "train" if i < n_train else "val" if i < n_train + n_val else "test" for i, s in enumerate(subjects)}


def build(out: Path, cohort: Path, seed: int) -> dict[str, object]:
    """Write ``out/ampscz/`` (CAPS folder, QC file, sites.csv, finetune.csv, pretrain.csv) from the
    cohort; returns the bricout.data keys (CAPS, QC file and the QC sites of sites.csv)."""
    from mriqa_lib.data.ampscz import qc_sites

    parts = read_tsv(cohort / "participants.tsv", required=("participant_id", "site"))
    root = out / "ampscz"
    caps = root / CAPS_NAME
    scans = plan(parts, seed)
    files = []
    for r in scans.itertuples():
        vol = load_nifti(cohort / r.pid / "anat" / f"{r.pid}_T1w.nii.gz")
        data = degrade(vol, r.rms, seed + len(files))
        folder = caps / "subjects" / f"sub-{r.sub}" / f"ses-{r.ses}" / "t1_linear"
        name = write_scan(folder, r.sub, r.ses, data, vol.affine, r.variants)
        files.append(f"{CAPS_NAME}/subjects/sub-{r.sub}/ses-{r.ses}/t1_linear/{name}")
    scans["data"] = files
    scans["score"] = scans["score"].astype(str)
    cols = {"sub": "sub_id_gs", "ses": "ses_id_gs", "tp": "timepoint_gs", "score": "score", "comment": "comment"}
    scans[list(cols)].rename(columns=cols).to_csv(root / "AMPSCZ_scores.csv", index=False)
    codes = sorted(scans["site"].unique())
    groups = ["finetune" if c in FINETUNE_CODES else "pretrain" for c in codes]
    pd.DataFrame({"site": codes, "group": groups}).to_csv(root / "sites.csv")
    rated = scans[scans["score"].isin(["1", "2", "3", "4"])]
    qc = rated[rated["site"].isin(FINETUNE_CODES)]
    authors_scan_list(qc, subject_split(qc["sub"].tolist())).to_csv(root / "finetune.csv")
    clean = rated[~rated["site"].isin(FINETUNE_CODES) & (rated["score"] == "4")]
    authors_scan_list(clean, subject_split(clean["sub"].tolist())).to_csv(root / "pretrain.csv")
    return {
        "bricout.data.ampscz_caps": str(caps),
        "bricout.data.ampscz_qc": str(root / "AMPSCZ_scores.csv"),
        "bricout.data.qc_sites": qc_sites(root / "sites.csv"),
    }
