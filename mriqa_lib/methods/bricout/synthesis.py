"""Paper 5 training data: which scans synthesise motion and which carry QC labels, and the volumes.

* :func:`scans_table`: every scan with its role (``synthesis`` or ``qc``, a site-wise split) and its
  subject-wise ``train`` / ``val`` / ``test`` split (from :mod:`mriqa_lib.data.splits`).
* :func:`embedded_qc_rows`: on the embedded cohort, degraded sessions of the QC-site subjects with
  a hidden degradation and the "rater" score derived from it (stand-in for the manual QC table).
* :func:`synthesize_samples`: K random pipeline passes per synthesis volume (resumable, parallel).
* :func:`prepare_qc_volumes`: the QC volumes on the network grid (degraded for the embedded cohort).
* :func:`subject_manifests`: which subject went to which split, for :func:`mriqa_lib.data.splits.write_manifest`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mriqa_lib import seeds
from mriqa_lib.config import Settings
from mriqa_lib.data import splits
from mriqa_lib.data.ampscz import load_dataset, qc_class, synthesis_eligible
from mriqa_lib.io import (
    MriqaInputError,
    load_nifti,
    read_json,
    read_tsv,
    save_nifti,
    write_json,
)
from mriqa_lib.methods.bricout.params import BricoutParams

#: columns of synthetic.tsv taken from each sample's sidecar
SAMPLE_INFO = ("rms", "target_rms", "n_poses", "flip", "scale", "log_gamma")


def progress(iterable, total: int, desc: str, enabled: bool):
    """``iterable`` with a tqdm bar when ``enabled``."""
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, leave=False)


def stamp(settings: Settings) -> str:
    """Hash of everything the synthetic data depend on (a change restarts the resumable stage)."""
    bp = settings.bricout
    keys = {
        "seed": bp.seed,
        "data": bp.data.model_dump(),
        "embedded_qc": bp.embedded_qc.model_dump(),
        "motion": bp.motion.model_dump(),
        "augment": bp.augment.model_dump(),
        "k": bp.pretrain.samples_per_volume,
    }
    if bp.data.ampscz_caps is None:
        keys["cohort"] = settings.cohort.model_dump()
    return hashlib.sha256(json.dumps(keys, sort_keys=True).encode()).hexdigest()[:16]


def real_scans(bp: BricoutParams) -> tuple[pd.DataFrame, pd.Series]:
    """AMP SCZ (and optional HCPEP) scans from their CAPS folders and QC tables.

    Returns:
        (all scans, the AMP SCZ sites: QC sites are drawn among them; HCPEP is synthesis only).
    """
    dp = bp.data
    if dp.ampscz_qc is None:
        raise MriqaInputError("params.yaml: bricout.data.ampscz_qc must be set with bricout.data.ampscz_caps")
    amp = load_dataset(dp.ampscz_caps, dp.ampscz_qc, "AMPSCZ", dp.t1_pattern)
    frames = [amp]
    if dp.hcpep_caps is not None:
        if dp.hcpep_qc is None:
            raise MriqaInputError("params.yaml: bricout.data.hcpep_qc must be set with bricout.data.hcpep_caps")
        frames.append(load_dataset(dp.hcpep_caps, dp.hcpep_qc, "HCPEP", dp.t1_pattern))
    return pd.concat(frames, ignore_index=True), amp.site


def embedded_scans(embedded: Path) -> pd.DataFrame:
    """The embedded cohort's original volumes as scans (score 4, no comment, one session)."""
    parts = read_tsv(embedded / "participants.tsv", required=("participant_id", "site"))
    return pd.DataFrame(
        {
            "dataset": "embedded",
            "subject": parts.participant_id,
            "session": "ses-01",
            "site": parts.site,
            "score": 4,
            "comments": "",
            "path": [str(embedded / s / "anat" / f"{s}_T1w.nii.gz") for s in parts.participant_id],
        }
    )


def subject_key(table: pd.DataFrame) -> pd.Series:
    """The id a subject is split by and listed under in the manifests: the participant id for the
    embedded cohort (as in its participants.tsv), ``<dataset>/<subject>`` for real data (AMP SCZ and
    HCPEP subject labels may collide)."""
    return table.subject.where(table.dataset == "embedded", table.dataset + "/" + table.subject)


def scans_table(settings: Settings, embedded: Path) -> pd.DataFrame:
    """All scans with ``dataset, subject, session, site, score, comments, path, role, eligible, split``.

    Real data (``bricout.data.ampscz_caps`` set): AMP SCZ sites are split into synthesis / QC
    sites; HCPEP (optional) is synthesis only. Embedded (``embedded`` folder): the cohort's original
    volumes; the QC-site subjects get degraded sessions later (:func:`embedded_qc_rows`).
    Subject-wise splits (:func:`mriqa_lib.data.splits.split_subjects`) are drawn separately for the
    synthesis (eligible) scans and the QC scans; the embedded cohort's held-out test subjects are
    forced into the test split of both, so they are in no training or validation data.
    """
    bp = settings.bricout
    dp = bp.data
    if dp.ampscz_caps is not None:
        table, sites = real_scans(bp)
        held: set[str] = set()  # real data: no benchmark subjects to hold out
    else:
        table = embedded_scans(embedded)
        sites, held = table.site, splits.held_out(embedded / "participants.tsv")
    _, qc_sites = splits.split_sites(sites, dp.qc_sites, dp.n_qc_sites, bp.seed, key="bricout.data.qc_sites")
    table["role"] = np.where((table.dataset != "HCPEP") & table.site.isin(qc_sites), "qc", "synthesis")
    table["eligible"] = synthesis_eligible(table, dp.motion_regex) & (table.role == "synthesis")
    given = table.pop("given_split") if "given_split" in table else pd.Series(None, index=table.index, dtype=object)
    table["split"] = ""
    key = subject_key(table)
    table.loc[table.eligible, "split"] = role_splits(key, table.eligible, given, dp.synth_split, bp.seed, held)
    qc = table.role == "qc"
    table.loc[qc, "split"] = role_splits(key, qc, given, dp.qc_split, bp.seed + 1, held)
    return table


def role_splits(key: pd.Series, rows: pd.Series, given: pd.Series, fractions, seed: int, held: set[str]) -> pd.Series:
    """The split of each of ``rows``: the authors' own (``given``, their scan lists' ``group``) where
    they gave one, else drawn subject-wise by :func:`mriqa_lib.data.splits.split_subjects`."""
    out = given[rows].copy()
    draw = rows & given.isna()
    if draw.any():
        out.loc[key[draw].index] = key[draw].map(splits.split_subjects(key[draw], fractions, seed, test=held))
    return out


def subject_manifests(table: pd.DataFrame) -> dict[str, dict[str, str]]:
    """Which subject went to which split, per folder of the synthetic data (for
    :func:`mriqa_lib.data.splits.write_manifest`).

    Returns:
        ``{"samples": synthesis subjects, "qc": QC subjects, ".": every subject}``, each a
        ``{subject_key: split}``. A subject used in both roles (real data: scanned at a synthesis
        and a QC site) is listed in ``"."`` under its earliest split of train, val, test, the one
        that matters for the held-out rule.
    """
    key = subject_key(table)
    samples = dict(zip(key[table.eligible], table.split[table.eligible]))
    qc = dict(zip(key[table.role == "qc"], table.split[table.role == "qc"]))
    both = {s: min((m[s] for m in (samples, qc) if s in m), key=splits.SPLITS.index) for s in {*samples, *qc}}
    return {"samples": samples, "qc": qc, ".": both}


def embedded_qc_rows(table: pd.DataFrame, bp: BricoutParams) -> pd.DataFrame:
    """Degraded sessions of the embedded QC-site subjects with their hidden degradation and score.

    Each QC-site subject gets ``embedded_qc.sessions`` sessions; the degradations are drawn for all
    sessions at once (:func:`mriqa_lib.methods.bricout.data.draw_degradations`) so that the score
    fractions hold over the whole QC set. Hidden parameters are columns ``hidden_*``.
    """
    from mriqa_lib.methods.bricout.data import draw_degradations

    base = table[table.role == "qc"].reset_index(drop=True)
    n_ses = bp.embedded_qc.sessions
    rows = draw_degradations(len(base) * n_ses, bp.seed, bp.embedded_qc)
    out = []
    for i, scan in base.iterrows():
        for j in range(n_ses):
            r = rows[i * n_ses + j]
            out.append(
                {
                    **scan.to_dict(),
                    "session": f"ses-{j + 1:02d}",
                    "score": r["score"],
                    "comments": r["comments"],
                    **{f"hidden_{k}": v for k, v in r.items() if k not in ("score", "comments")},
                }
            )
    return pd.DataFrame(out)


def grid_volume(path: str, grid_mm: float) -> np.ndarray:
    """A scan on the network grid, intensity-normalised (before the random pipeline and the crop)."""
    from mriqa_lib.methods.bricout.data import normalise, to_grid

    return normalise(to_grid(load_nifti(path), grid_mm))


def synth_job(args: tuple) -> list[dict[str, Any]]:
    """All K samples of one volume (skips samples already written); returns their sidecars."""
    import torch

    from mriqa_lib.methods.bricout.data import augment

    torch.set_num_threads(1)
    path, stem, pass_seeds, out_dir, grid_mm, mp, ap, crop = args
    image = None
    infos = []
    for k, seed in enumerate(pass_seeds):
        nii, side = out_dir / f"{stem}_s{k:03d}.nii.gz", out_dir / f"{stem}_s{k:03d}.json"
        if nii.exists() and side.exists():
            infos.append(read_json(side))
            continue
        if image is None:
            image = grid_volume(path, grid_mm)
        data, info = augment(image, grid_mm, seed, mp, ap, crop)
        info = {"file": nii.name, "sample": k, "seed": seed, **info}
        save_nifti(nii, data, np.diag([grid_mm] * 3 + [1.0]))
        write_json(side, info)
        infos.append(info)
    return infos


def qc_job(args: tuple) -> dict[str, Any]:
    """One prepared QC volume (degraded when ``row`` holds a hidden degradation); skipped when written."""
    import torch

    from mriqa_lib.methods.bricout.data import degrade, finalize

    torch.set_num_threads(1)
    path, nii, row, grid_mm, mp, crop = args
    if not nii.exists():
        image = grid_volume(path, grid_mm)
        if row is not None:
            image = degrade(image, grid_mm, row, mp)
        save_nifti(nii, finalize(image, crop), np.diag([grid_mm] * 3 + [1.0]))
    return {"file": nii.name}


def run_jobs(func: Callable, jobs: list, workers: int, desc: str, show: bool) -> list:
    """``[func(j) for j in jobs]``, in ``workers`` processes when there is more than one job."""
    if workers <= 1 or len(jobs) <= 1:
        return [func(j) for j in progress(jobs, len(jobs), desc, show)]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(progress(pool.map(func, jobs), len(jobs), desc, show))


def sample_seeds(seed: int, volume: int, k: int) -> list[int]:
    """Seeds of the K pipeline passes of synthesis volume number ``volume`` (stream ``bricout.synthesis``)."""
    return [seeds.state(seed, "bricout.synthesis", volume, j) for j in range(k)]


def synthesize_samples(table: pd.DataFrame, bp: BricoutParams, out: Path) -> pd.DataFrame:
    """K random pipeline passes of every eligible scan into ``out/samples``; returns synthetic.tsv.

    Args:
        table: :func:`scans_table`; the ``eligible`` scans are used, each in its subject's split.
        bp: settings (grid, crop, motion and augmentation, ``pretrain.samples_per_volume``, workers).
        out: the synthetic-data folder; samples already written there are kept (resumable).

    Returns:
        One row per sample: file (relative to ``out``), dataset, subject, session, site, split and
        the realised pipeline parameters (``rms`` is the regression label, mm).
    """
    syn = table[table.eligible].reset_index(drop=True)
    dp, k = bp.data, bp.pretrain.samples_per_volume
    jobs = [
        (
            scan.path,
            f"{scan.dataset}_{scan.subject}_{scan.session}",
            sample_seeds(bp.seed, i, k),
            out / "samples",
            dp.grid_mm,
            bp.motion,
            bp.augment,
            dp.crop,
        )
        for i, scan in syn.iterrows()
    ]
    print(f"bricout synthesize: {len(syn)} synthesis volumes x {k} samples -> {out / 'samples'}")
    results = run_jobs(synth_job, jobs, bp.workers, "synthetic motion", bp.progress)
    rows = [
        {
            "file": f"samples/{info['file']}",
            "dataset": scan.dataset,
            "subject": scan.subject,
            "session": scan.session,
            "site": scan.site,
            "split": scan.split,
            **{c: info[c] for c in SAMPLE_INFO},
        }
        for (_, scan), infos in zip(syn.iterrows(), results)
        for info in infos
    ]
    return pd.DataFrame(rows)


def prepare_qc_volumes(qc_rows: pd.DataFrame, bp: BricoutParams, out: Path) -> pd.DataFrame:
    """QC volumes on the network grid into ``out/qc`` (with their hidden degradation when given).

    Returns:
        ``qc_rows`` with ``file`` (relative to ``out``) and ``qc_class`` (0 = scores 1/2, 1 = 3, 2 = 4).
    """
    dp = bp.data
    qc_rows = qc_rows.reset_index(drop=True)
    qc_rows["file"] = [f"qc/{d}_{s}_{v}.nii.gz" for d, s, v in zip(qc_rows.dataset, qc_rows.subject, qc_rows.session)]
    qc_rows["qc_class"] = qc_class(qc_rows.score.to_numpy())
    hidden = [c for c in qc_rows.columns if c.startswith("hidden_")]
    jobs = []
    for _, r in qc_rows.iterrows():
        row = {c[len("hidden_") :]: r[c] for c in hidden} if hidden else None
        jobs.append((r.path, out / r.file, row, dp.grid_mm, bp.motion, dp.crop))
    print(f"bricout synthesize: {len(qc_rows)} QC volumes -> {out / 'qc'}")
    run_jobs(qc_job, jobs, bp.workers, "QC volumes", bp.progress)
    return qc_rows
