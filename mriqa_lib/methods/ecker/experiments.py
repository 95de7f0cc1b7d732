"""The experiments of paper 1 on the test sets, and the numbers of metrics/ecker.json.

Every test case is classified zero-shot: its encoder embedding is compared (cosine) with the
embeddings of matched HQ references and of their LQ versions (same slice positions); the nearer
set decides (:mod:`mriqa_lib.methods.ecker.inference`).

1. Simulated motion and simulated noise: balanced HQ/LQ slices; accuracy (bootstrap CI),
   balanced accuracy, sensitivity/specificity, AUROC.
2. NAKO-IQA or NAKO-like volumes (breath-hold vs free-breathing): the same metrics with the
   configured LQ references (``nako_lq``), and accuracy/AUROC with motion and respiratory ones.
3. Continuous motion: Spearman correlation of the motion range with the similarity to the LQ
   references (over all cases, over level means, and within each case).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import data as D
from .params import EckerParams
from .synthesis import ARTIFACTS, covariates

__all__ = [
    "binary_metrics",
    "classify",
    "continuous_experiment",
    "nako_experiment",
    "reference_bank",
    "simulated_experiment",
    "with_covariates",
]


def reference_bank(net, pool: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Encoder embeddings ``(n_pool, n_slices, h)`` of the pool's HQ slices and of each LQ set."""
    from .simclr import embed

    return {k: embed(net, pool[k]) for k in ("hq", *ARTIFACTS)}


def with_covariates(frame: pd.DataFrame, subjects: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with the matching covariates of its ``subject`` (row index of ``subjects``)."""
    meta = subjects.set_index("index")[covariates(subjects)]
    return frame.join(meta, on="subject") if "subject" in frame.columns else frame


def classify(
    emb: np.ndarray, frame: pd.DataFrame, pool: pd.DataFrame, bank: dict, lq: str, p: EckerParams
) -> pd.DataFrame:
    """Zero-shot class, SIM and mean similarities for every case.

    Args:
        emb: one embedding per case: ``(n, h)`` for a slice at position ``frame.slice``, or
            ``(n, s, h)`` for a stack of slices of one volume (similarities then averaged over
            slices, each against the references at the same position).
        frame: the cases (covariates ``sex``, ``height``, ``weight``, ``site`` where known).
        pool: the reference subjects (rows of ``bank``).
        bank: :func:`reference_bank`.
        lq: which LQ reference set to compare with.
        p: settings (``n_refs``, ``match_sex``, ``match_site``).

    Returns:
        ``frame`` with ``sim_hq``, ``sim_lq``, ``references``, ``pred`` and ``sim``.
    """
    from .inference import decide, mean_similarities

    hq_all, lq_all = bank["hq"], bank[lq]
    out = []
    for k, row in enumerate(frame.itertuples()):
        refs = D.match_references(
            pool,
            getattr(row, "sex", None),
            getattr(row, "height", None),
            getattr(row, "weight", None),
            p.n_refs,
            p.match_sex,
            getattr(row, "site", None),
            p.match_site,
        )
        if emb.ndim == 2:  # one slice at position row.slice
            s_hq, s_lq = mean_similarities(emb[k], hq_all[refs, row.slice], lq_all[refs, row.slice])
        else:  # a volume: slices (s, d) vs references (s, m, d)
            s_hq, s_lq = mean_similarities(emb[k], hq_all[refs].transpose(1, 0, 2), lq_all[refs].transpose(1, 0, 2))
        out.append((s_hq, s_lq, ",".join(pool["participant_id"].iloc[refs])))
    res = frame.copy()
    res["sim_hq"] = [o[0] for o in out]
    res["sim_lq"] = [o[1] for o in out]
    res["references"] = [o[2] for o in out]
    res["pred"], res["sim"] = decide(res["sim_hq"].to_numpy(), res["sim_lq"].to_numpy())
    return res


def binary_metrics(res: pd.DataFrame, prefix: str) -> dict:
    """HQ/LQ metrics of classified cases (LQ is the positive class), keys ``<prefix>_...``."""
    from mriqa_lib import metrics as M

    y, pred = res["label"].to_numpy(), res["pred"].to_numpy()
    sens, spec = M.sensitivity_specificity(y == "LQ", pred == "LQ")
    acc, lo, hi = M.bootstrap_ci((y == pred).astype(float), n_boot=1000)
    return {
        f"{prefix}_accuracy": acc,
        f"{prefix}_accuracy_ci95": [lo, hi],
        f"{prefix}_balanced_accuracy": M.balanced_accuracy(y, pred),
        f"{prefix}_sensitivity_lq": sens,
        f"{prefix}_specificity_hq": spec,
        f"{prefix}_auroc": M.auroc(y == "LQ", res["sim_lq"] - res["sim_hq"]),
        f"{prefix}_n": len(res),
    }


def simulated_experiment(
    net, kind: str, images: np.ndarray, frame: pd.DataFrame, pool: pd.DataFrame, bank: dict, p: EckerParams
) -> tuple[pd.DataFrame, dict, dict]:
    """Experiment 1 on the simulated ``kind`` (motion / noise) test slices ``(n, S, S)``.

    Returns:
        the classified cases, their metrics (``<kind>_...``) and up to 4 example slices per class.
    """
    from .simclr import embed

    res = classify(embed(net, images), frame, pool, bank, kind, p)
    examples = {f"{kind}_{c.lower()}": images[np.flatnonzero(res["label"] == c)[:4]] for c in ("HQ", "LQ")}
    return res, binary_metrics(res, kind), examples


def nako_experiment(
    net, images: np.ndarray, frame: pd.DataFrame, pool: pd.DataFrame, bank: dict, p: EckerParams
) -> tuple[dict[str, pd.DataFrame], dict, dict]:
    """Experiment 2 on breath-hold / free-breathing volumes ``(n, s, S, S)``.

    Returns:
        classified cases keyed ``nako`` (the ``nako_lq`` references) and ``nako_refs-<lq>`` (motion and
        respiratory references, for transparency), the metrics, and up to 4 middle slices per class.
    """
    from .simclr import embed

    emb = embed(net, images)
    res = {"nako": classify(emb, frame, pool, bank, p.nako_lq, p)}
    metrics = {**binary_metrics(res["nako"], "nako"), "nako_lq_references": p.nako_lq}
    for lq in ("motion", "respiratory"):
        alt = res[f"nako_refs-{lq}"] = classify(emb, frame, pool, bank, lq, p)
        metrics.update(
            {k: v for k, v in binary_metrics(alt, f"nako_refs_{lq}").items() if k.endswith(("_accuracy", "_auroc"))}
        )
    mid = images.shape[1] // 2
    examples = {f"nako_{c.lower()}": images[np.flatnonzero(res["nako"]["label"] == c)[:4], mid] for c in ("HQ", "LQ")}
    return res, metrics, examples


def continuous_experiment(
    net, images: np.ndarray, frame: pd.DataFrame, pool: pd.DataFrame, bank: dict, p: EckerParams
) -> tuple[pd.DataFrame, dict, dict]:
    """Experiment 3: how the similarity to the motion references follows the motion range.

    Returns:
        the classified cases, the Spearman correlations (``continuous_...``) and the sweep of the
        first case (``continuous`` slices and ``continuous_levels``).
    """
    from mriqa_lib import metrics as M

    from .simclr import embed

    res = classify(embed(net, images), frame, pool, bank, "motion", p)
    per_level = res.groupby("level")[["sim_lq", "sim_hq"]].mean().reset_index()
    within = [M.spearman(g["level"], g["sim_lq"]) for _, g in res.groupby(["subject", "slice"])]
    metrics = {
        "continuous_spearman_level_vs_sim_lq": M.spearman(res["level"], res["sim_lq"]),
        "continuous_spearman_level_vs_sim_lq_levelmeans": M.spearman(per_level["level"], per_level["sim_lq"]),
        "continuous_spearman_within_case_mean": float(np.nanmean(within)),
        "continuous_n": len(res),
    }
    first = res.index[(res["subject"] == res["subject"].iloc[0]) & (res["slice"] == res["slice"].iloc[0])]
    examples = {"continuous": images[first], "continuous_levels": res.loc[first, "level"].to_numpy(float)}
    return res, metrics, examples
