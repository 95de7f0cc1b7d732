"""The experiments of paper 2 on the density, rated and example sets, and the numbers of metrics/zuo.json.

Every volume is reduced to its volume-level artifact feature m (mean encoder output over the
centre axial slices) and its log-density under the fitted flow; a volume is flagged at ``tau``
when its log-density is below the ``tau`` percentile of the training densities.

1. Density set (Fig. 3a): m, z = f(m) and the flagged fraction (about tau by construction).
2. Rated set (Table 1): sensitivity / specificity of the flags for ``fail`` (medium or high
   rating), flagged fractions per rating, AUROC of -log p; the density grid for the contours.
3. Held-out examples A-H (Fig. 3b): A (clean) above the 5 % threshold, B-H below it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .flow import DensityModel

__all__ = [
    "density_grid",
    "example_metrics",
    "flags_by_type",
    "rated_metrics",
    "score_volumes",
    "volume_features",
    "with_scores",
]


def volume_features(encoder, centre: np.ndarray) -> np.ndarray:
    """Volume-level m ``(n, 2)`` of centre slices ``(n, k, S, S)`` (stored as float16; encoded as float32)."""
    from .inference import volume_m

    return np.stack([volume_m(encoder, c.astype(np.float32)) for c in centre])


def score_volumes(encoder, density: DensityModel, centre: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Volume-level m ``(n, 2)`` and log-density ``(n,)`` of centre slices ``(n, k, S, S)``."""
    m = volume_features(encoder, centre)
    return m, density.log_density(m)


def with_scores(frame: pd.DataFrame, m: np.ndarray, logp: np.ndarray, density: DensityModel) -> pd.DataFrame:
    """``frame`` with ``m1``, ``m2``, ``logp`` and one ``flag<tau>`` column per threshold."""
    frame = frame.copy()
    frame["m1"], frame["m2"], frame["logp"] = m[:, 0], m[:, 1], logp
    for t, thr in density.thresholds.items():
        frame[f"flag{t}"] = logp < thr
    return frame


def density_grid(density: DensityModel, m: np.ndarray, n: int = 120) -> dict[str, np.ndarray]:
    """log p on an ``n`` x ``n`` grid covering the features ``m`` with a 15 % margin (Fig. 3b, 4a contours).

    Returns:
        ``m1``, ``m2`` (grid axes), ``logp`` ``(n, n)`` (rows along m2), ``taus`` and their ``thresholds``.
    """
    lo, hi = m.min(0), m.max(0)
    pad = 0.15 * (hi - lo) + 1e-6
    g1 = np.linspace(lo[0] - pad[0], hi[0] + pad[0], n)
    g2 = np.linspace(lo[1] - pad[1], hi[1] + pad[1], n)
    mesh = np.stack(np.meshgrid(g1, g2, indexing="xy"), -1).reshape(-1, 2)
    taus = list(density.thresholds)
    return {
        "m1": g1,
        "m2": g2,
        "logp": density.log_density(mesh).reshape(len(g2), len(g1)),
        "taus": np.asarray([float(t) for t in taus]),
        "thresholds": np.asarray([density.thresholds[t] for t in taus]),
    }


def rated_metrics(rated: pd.DataFrame, dens: pd.DataFrame, density: DensityModel) -> tuple[dict, pd.DataFrame]:
    """Experiment 2 on scored rated volumes (:func:`with_scores`; ``fail`` and ``rating`` columns).

    Returns:
        the metrics (counts; per tau: sensitivity, specificity, threshold, the density set's
        flagged fraction, the flagged fraction per rating; AUROC of -log p) and the contingency
        table (tau x rating: flagged, passed).
    """
    from mriqa_lib.metrics import auroc, sensitivity_specificity

    fail = rated["fail"].astype(bool).to_numpy()
    metrics: dict = {
        "n_density": len(dens),
        "n_rated": len(rated),
        "n_rated_fail": int(rated["fail"].sum()),
        "n_rated_pass": int((~rated["fail"].astype(bool)).sum()),
    }
    tables = []
    for t, thr in density.thresholds.items():
        flag = rated[f"flag{t}"].astype(bool).to_numpy()
        sens, spec = sensitivity_specificity(fail, flag)
        metrics[f"sensitivity_tau{t}"] = round(float(sens), 4)
        metrics[f"specificity_tau{t}"] = round(float(spec), 4)
        metrics[f"threshold_logp_tau{t}"] = round(float(thr), 4)
        metrics[f"density_set_flagged_fraction_tau{t}"] = round(float(dens[f"flag{t}"].mean()), 4)
        for rating in ("low", "medium", "high"):
            sel = rated["rating"] == rating
            tables.append(
                {"tau": float(t), "rating": rating, "flagged": int(flag[sel].sum()), "passed": int((~flag[sel]).sum())}
            )
            metrics[f"flagged_fraction_{rating}_tau{t}"] = round(float(flag[sel].mean()), 4) if sel.any() else None
    metrics["auroc_neg_logp_vs_fail"] = round(float(auroc(fail, -rated["logp"].to_numpy())), 4)
    return metrics, pd.DataFrame(tables)


def flags_by_type(rated: pd.DataFrame) -> pd.DataFrame | None:
    """Flagged fraction at tau 5 % per artifact (rows) and rating (columns); None without a 5 % flag."""
    if "flag5" not in rated:
        return None
    return rated.groupby(["artifact", "rating"])["flag5"].mean().unstack().reset_index()


def example_metrics(ex: pd.DataFrame, density: DensityModel) -> dict:
    """Experiment 3 on scored examples A-H: each one's log p minus the first (5 %) threshold, and
    whether A is above it and B-H below it (``examples_all_as_expected_tau<t>``)."""
    t = next(iter(density.thresholds))
    thr = density.thresholds[t]
    metrics = {
        f"example_{row.letter}_logp_minus_thr_tau{t}": round(float(row.logp - thr), 4) for row in ex.itertuples()
    }
    a_above = bool(ex.loc[ex.letter == "A", "logp"].iloc[0] >= thr)
    below = [bool(v < thr) for v in ex.loc[ex.letter != "A", "logp"]]
    metrics[f"example_A_above_tau{t}"] = a_above
    metrics[f"examples_BH_below_tau{t}"] = int(sum(below))
    metrics[f"examples_all_as_expected_tau{t}"] = bool(a_above and all(below))
    return metrics
