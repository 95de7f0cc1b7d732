"""The data sets of paper 1, built from a subject table: the reference pool and the four test sets.

* reference pool (training subjects): each subject's clean slices (HQ references and SimCLR's
  training data) and the same slices after one simulated acquisition with motion, noise and
  respiration each (LQ references);
* simulated motion / noise tests: balanced HQ/LQ slices of the test subjects;
* NAKO-IQA (real breath-hold vs free-breathing volumes) or, on the embedded cohort, NAKO-like
  volumes of the test subjects with simulated respiratory motion;
* continuous motion sweep: a few slices per test subject under one motion direction of growing range.

Seeds: every simulated acquisition is seeded by :func:`~mriqa_lib.methods.ecker.data.case_seed` of
the run seed, the set and the subject, so a subject's artifact does not depend on who else is in
the table; the balanced case lists draw from ``default_rng(seed + 1)`` (motion) and ``+ 2`` (noise).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mriqa_lib.io import load_nifti

from . import data as D
from .params import EckerParams

__all__ = [
    "ARTIFACTS",
    "COVARIATES",
    "balanced_cases",
    "continuous_set",
    "covariates",
    "load_slices",
    "load_subjects",
    "nako_set",
    "progress",
    "reference_pool",
    "simulated_test_set",
    "split_manifest",
    "subject_table",
]

#: the artifacts of the LQ references (one reference set each)
ARTIFACTS = ("motion", "noise", "respiratory")
#: what reference matching may use (site: optional, with ``ecker.match_site``)
COVARIATES = ("sex", "height", "weight", "site")


def covariates(frame: pd.DataFrame) -> list[str]:
    """The matching covariates present in ``frame``."""
    return [c for c in COVARIATES if c in frame.columns]


def progress(it, desc: str, total: int | None = None):
    """A quiet tqdm progress bar (one line, refreshed every 2 s)."""
    from tqdm import tqdm

    return tqdm(it, desc=desc, total=total, leave=False, mininterval=2.0)


def load_subjects(p: EckerParams) -> tuple[pd.DataFrame, bool]:
    """The subject table (UK Biobank when ``ukb_dir`` is set, else the embedded cohort) and whether
    its volumes are conformed to the 2 mm reference grid first (embedded brains only)."""
    if p.ukb_dir is not None:
        return D.ukb_subjects(p.ukb_dir, p.ukb_table), False
    return D.embedded_subjects(), True


def load_slices(subjects: pd.DataFrame, p: EckerParams, conform_grid: bool) -> tuple[dict, dict]:
    """Full-resolution normalised centre slices and in-plane spacing of every subject, by row position."""
    raw, spacing = {}, {}
    for i in progress(range(len(subjects)), "slices"):
        raw[i], spacing[i] = D.volume_slices(load_nifti(subjects["path"].iloc[i]), p, conform_grid)
    return raw, spacing


def split_manifest(subjects: pd.DataFrame, test_idx: np.ndarray) -> dict[str, str]:
    """``participant_id -> split`` for ``mriqa_lib.data.splits.write_manifest``: ``train`` for the pool
    (SimCLR's training data and the references), ``test`` for the held-out subjects."""
    test = set(np.asarray(test_idx, dtype=int).tolist())
    return {str(pid): "test" if i in test else "train" for i, pid in enumerate(subjects["participant_id"])}


def subject_table(subjects: pd.DataFrame, test_idx: np.ndarray) -> pd.DataFrame:
    """The subject table without paths, with each subject's ``role`` (pool / test) and row ``index``
    (the ``subject`` of the test manifests)."""
    role = np.full(len(subjects), "pool", dtype=object)
    role[test_idx] = "test"
    return subjects.drop(columns=["path"]).assign(role=role, index=np.arange(len(subjects)))


def reference_pool(
    raw: dict, spacing: dict, subjects: pd.DataFrame, pool_idx: np.ndarray, p: EckerParams
) -> dict[str, np.ndarray]:
    """Prepared slices of the pool subjects: ``hq`` and one LQ set per artifact, each ``(n_pool, n_slices, S, S)``."""
    pool: dict[str, list] = {"hq": [], **{k: [] for k in ARTIFACTS}}
    for i in progress(pool_idx, "references"):
        pool["hq"].append(D.prepare_slices(raw[i], p))
        pid = subjects["participant_id"].iloc[i]
        for kind in ARTIFACTS:  # one simulated acquisition per subject and artifact
            lq = D.degrade(raw[i], kind, p, D.case_seed(p.seed, "ref", kind, pid), spacing[i])
            pool[kind].append(D.prepare_slices(lq, p))
    return {k: np.stack(v) for k, v in pool.items()}


def balanced_cases(test_idx: np.ndarray, n_slices: int, n_cases: int, seed: int) -> pd.DataFrame:
    """``n_cases`` (subject, slice, label) triples from held-out subjects; half HQ, half LQ.

    The (subject, slice) pairs are visited in shuffled rounds (``repeat`` counts the rounds), so
    every pair is used before any is used twice.
    """
    rng = np.random.default_rng(seed)
    pairs = np.array([(s, j) for s in test_idx for j in range(n_slices)])
    order = np.concatenate([rng.permutation(len(pairs)) for _ in range(int(np.ceil(n_cases / len(pairs))))])[:n_cases]
    labels = np.where(rng.permutation(n_cases) < n_cases // 2, "HQ", "LQ")
    return pd.DataFrame(
        {
            "subject": pairs[order, 0],
            "slice": pairs[order, 1],
            "label": labels,
            "repeat": np.arange(n_cases) // len(pairs),
        }
    )


def simulated_test_set(
    kind: str, raw: dict, spacing: dict, subjects: pd.DataFrame, test_idx: np.ndarray, p: EckerParams
) -> tuple[np.ndarray, pd.DataFrame]:
    """The simulated ``motion`` or ``noise`` test: prepared slices ``(n, S, S)`` and their cases.

    LQ slices of one subject and round (``repeat``) share one simulated acquisition.
    """
    n_cases = p.n_test_motion if kind == "motion" else p.n_test_noise
    cases = balanced_cases(test_idx, p.n_slices, n_cases, p.seed + (1 if kind == "motion" else 2))
    imgs, cache = [], {}
    for row in progress(cases.itertuples(), f"test {kind}", len(cases)):
        img = raw[row.subject][row.slice]
        if row.label == "LQ":
            key = (row.subject, row.repeat)
            if key not in cache:
                pid = subjects["participant_id"].iloc[row.subject]
                cache[key] = D.degrade(
                    raw[row.subject], kind, p, D.case_seed(p.seed, "test", kind, pid, row.repeat), spacing[row.subject]
                )
            img = cache[key][row.slice]
        imgs.append(img)
    ids = subjects["participant_id"].to_numpy()[cases["subject"]]
    return D.prepare_slices(np.stack(imgs), p), cases.assign(participant_id=ids)


def nako_set(
    raw: dict, spacing: dict, subjects: pd.DataFrame, test_idx: np.ndarray, p: EckerParams
) -> tuple[np.ndarray, pd.DataFrame]:
    """Breath-hold (HQ) vs free-breathing (LQ) volumes: ``(n, n_slices, S, S)`` and one row each.

    NAKO-IQA when ``nako_dir`` is set; else NAKO-like pairs of (up to 20) test subjects, the LQ one
    with simulated respiratory motion (one breathing phase for the whole volume).
    """
    if p.nako_dir is not None:
        nako = D.nako_subjects(p.nako_dir, p.nako_table)
        imgs = [
            D.prepare_slices(D.volume_slices(load_nifti(path), p, False)[0], p)
            for path in progress(nako["path"], "NAKO-IQA")
        ]
        return np.stack(imgs), nako.drop(columns=["path"])
    rows, imgs = [], []
    for i in test_idx[:20]:
        pid = subjects["participant_id"].iloc[i]
        fb = D.degrade(raw[i], "respiratory", p, D.case_seed(p.seed, "nako", pid), spacing[i])
        for label, sl in (("HQ", raw[i]), ("LQ", fb)):
            rows.append({"participant_id": pid, "label": label, **subjects.iloc[i][covariates(subjects)].to_dict()})
            imgs.append(D.prepare_slices(sl, p))
    return np.stack(imgs), pd.DataFrame(rows)


def continuous_set(
    raw: dict, spacing: dict, subjects: pd.DataFrame, test_idx: np.ndarray, p: EckerParams
) -> tuple[np.ndarray, pd.DataFrame]:
    """The continuous motion sweep: ``continuous_cases`` slices per test subject at every rotation
    (deg) = translation (mm) range of ``continuous_levels``, one motion direction per subject."""
    rows, imgs = [], []
    if p.n_slices > 2:
        picks = np.linspace(0, p.n_slices - 1, p.continuous_cases + 2)[1:-1].round().astype(int)
    else:
        picks = np.zeros(p.continuous_cases, int)
    for i in progress(test_idx, "continuous"):
        pid = subjects["participant_id"].iloc[i]
        seed = D.case_seed(p.seed, "continuous", pid)  # one motion direction per subject
        for level in p.continuous_levels:
            moved = D.degrade(raw[i][picks], "motion", p, seed, spacing[i], level=level)
            for j, img in zip(picks, moved):
                imgs.append(img)
                rows.append({"subject": i, "participant_id": pid, "slice": int(j), "level": level})
    return D.prepare_slices(np.stack(imgs), p), pd.DataFrame(rows)
