"""Site calibration of paper 2 (Zuo et al.): the density of m and its tau thresholds, refitted on
the latents of a site's own artifact-free scans.

The paper sets the threshold tau on the training densities and names "tau may vary from dataset to
dataset" as its limitation; `mriqa calibrate` refits both on the site. With many scans the
pipeline's RealNVP is refitted (:func:`.flow.fit_flow`: same architecture, steps, jitter and
empirical percentile thresholds). With few scans that fit is not sound, so a 2-D Gaussian with
Ledoit-Wolf shrinkage is fitted instead; its thresholds are closed form: for k-dimensional m,
``log p(m) = c - d2 / 2`` with ``d2`` (squared Mahalanobis distance) ~ chi2(k), so the threshold
below which a fraction tau of the site's scans falls is ``c - chi2.ppf(1 - tau, k) / 2``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mriqa_lib.io import MriqaInputError, Volume, atomic_path, read_json, write_json, write_tsv

__all__ = [
    "DENSITY_JSON",
    "FLOW_MIN_SCANS",
    "FLOW_WEIGHTS",
    "MIN_SCANS",
    "GaussianDensity",
    "calibrate",
    "fit_density",
    "fit_gaussian",
    "gaussian_thresholds",
    "load_density",
    "site_latents",
]

#: Below this many scans the Gaussian fallback replaces the RealNVP. The flow's thresholds are
#: empirical percentiles of its own training scans: under 50 scans fewer than 2.5 lie below the
#: 5 % threshold (1.5 below the 3 %), so one or two scans set it (the realised fraction's standard
#: error sqrt(tau (1 - tau) / n) is >= 3 percentage points at tau = 5 %), and a 6-coupling flow with
#: thousands of weights can wrap itself around that many points. The Gaussian has 5 parameters,
#: shrunk towards a scaled identity, and its thresholds follow from the fit in closed form.
FLOW_MIN_SCANS = 50
#: a covariance of 2-D m needs at least 3 scans that are not collinear
MIN_SCANS = 3
DENSITY_JSON = "density.json"
FLOW_WEIGHTS = "flow.pt"
LATENTS_TSV = "latents.tsv"


def gaussian_thresholds(covariance: np.ndarray, taus: list[float]) -> dict[str, float]:
    """Closed-form log-density thresholds of N(mean, covariance), keyed ``"5"``, ``"3"``, ...

    A fraction tau (in percent) of the Gaussian's own samples has a log-density below its threshold
    ``c - chi2.ppf(1 - tau / 100, k) / 2``, with ``c = -(k log(2 pi) + log det covariance) / 2``.
    """
    from scipy.stats import chi2

    k = covariance.shape[0]
    c = -0.5 * (k * np.log(2 * np.pi) + np.linalg.slogdet(covariance)[1])
    return {f"{t:g}": float(c - chi2.ppf(1 - t / 100, k) / 2) for t in taus}


class GaussianDensity:
    """N(mean, covariance) of m with tau thresholds: the interface of :class:`.flow.DensityModel`
    that the scorer uses (``log_density``, ``thresholds``, ``flags``, ``state``)."""

    kind = "gaussian_ledoit_wolf"

    def __init__(
        self, mean: np.ndarray, covariance: np.ndarray, thresholds: dict[str, float], shrinkage: float = 0.0
    ) -> None:
        self.mean = np.asarray(mean, dtype=np.float64)
        self.covariance = np.asarray(covariance, dtype=np.float64)
        self.thresholds, self.shrinkage = dict(thresholds), float(shrinkage)
        if self.covariance.shape != (len(self.mean), len(self.mean)):
            raise ValueError(f"covariance {self.covariance.shape} does not fit a mean of {len(self.mean)} values")
        self._chol = np.linalg.cholesky(self.covariance)  # raises LinAlgError when not positive definite

    def log_density(self, m: np.ndarray) -> np.ndarray:
        """log p(m) for (n, k) features (natural log, density per unit volume of m) -> (n,)."""
        d = np.atleast_2d(np.asarray(m, dtype=np.float64)) - self.mean
        w = np.linalg.solve(self._chol, d.T)  # whitened: d2 = |w|^2
        k = len(self.mean)
        log_det = 2 * np.log(np.diag(self._chol)).sum()
        return -0.5 * (k * np.log(2 * np.pi) + log_det + (w**2).sum(0))

    def flags(self, m: np.ndarray) -> dict[str, np.ndarray]:
        """tau -> boolean flags (log-density below the tau threshold)."""
        logp = self.log_density(m)
        return {t: logp < thr for t, thr in self.thresholds.items()}

    def state(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "mean": self.mean.tolist(),
            "covariance": self.covariance.tolist(),
            "shrinkage": self.shrinkage,
            "thresholds": self.thresholds,
        }


def fit_gaussian(m: np.ndarray, taus: list[float]) -> GaussianDensity:
    """Gaussian of (n, k) features with the Ledoit-Wolf shrunk covariance and closed-form thresholds.

    Raises:
        MriqaInputError: fewer than :data:`MIN_SCANS` scans, or latents without spread.
    """
    from sklearn.covariance import LedoitWolf

    m = np.asarray(m, dtype=np.float64)
    if len(m) < MIN_SCANS:
        raise MriqaInputError(f"zuo calibration needs at least {MIN_SCANS} scans, got {len(m)}")
    lw = LedoitWolf().fit(m)
    cov = lw.covariance_
    if np.linalg.eigvalsh(cov).min() <= 1e-12 * max(np.trace(cov), 1e-300):
        raise MriqaInputError(f"zuo calibration: the {len(m)} scans' latents have no spread (identical scans?)")
    return GaussianDensity(lw.location_, cov, gaussian_thresholds(cov, taus), lw.shrinkage_)


def fit_density(m: np.ndarray, p, flow_min_scans: int = FLOW_MIN_SCANS) -> tuple[Any, str]:
    """The site's density of m ``(n, 2)`` and why it is that kind.

    Args:
        m: the site's volume-level features.
        p: the scorer's ``zuo`` params (flow architecture, steps, seed, taus).
        flow_min_scans: scans needed to refit the RealNVP; fewer get the Gaussian fallback.

    Returns:
        a :class:`GaussianDensity` or a refitted :class:`.flow.DensityModel`, and the reason.
    """
    from .flow import fit_flow

    n = len(m)
    if n < MIN_SCANS:
        raise MriqaInputError(f"zuo calibration needs at least {MIN_SCANS} scans, got {n}")
    if n < flow_min_scans:
        reason = (
            f"{n} scans < {flow_min_scans}: a {p.flow_transforms}-layer RealNVP and empirical tau percentiles "
            "are not sound on so few scans; Gaussian with Ledoit-Wolf shrinkage, closed-form thresholds"
        )
        return fit_gaussian(m, p.taus), reason
    reason = f"{n} scans >= {flow_min_scans}: RealNVP refitted as in the pipeline, empirical tau percentiles"
    return fit_flow(m, p), reason


def site_latents(scorer, volumes: list[Volume]) -> np.ndarray:
    """m ``(n, 2)`` of each scan, prepared and encoded exactly as :meth:`.score.Scorer.score` does."""
    return np.stack([scorer.latent(v) for v in volumes])


def _save(out_dir: Path, density, n: int, reason: str) -> list[str]:
    """Write ``density.json`` (and ``flow.pt`` for a flow); returns the file names."""
    import torch

    if isinstance(density, GaussianDensity):
        write_json(out_dir / DENSITY_JSON, {**density.state(), "n": n, "reason": reason})
        return [DENSITY_JSON]
    with atomic_path(out_dir / FLOW_WEIGHTS) as tmp:
        torch.save(density.flow.state_dict(), tmp)
    state = {"kind": "realnvp", **density.state(), "weights": FLOW_WEIGHTS, "n": n, "reason": reason}
    write_json(out_dir / DENSITY_JSON, state)
    return [DENSITY_JSON, FLOW_WEIGHTS]


def calibrate(
    scorer, volumes: list[Volume], out_dir: Path, settings, *, flow_min_scans: int = FLOW_MIN_SCANS
) -> dict[str, Any]:
    """`mriqa calibrate` hook of paper 2: refit the density of m and its tau thresholds on a site.

    Args:
        scorer: the loaded :class:`.score.Scorer` (encoder, params ``scorer.p``).
        volumes: artifact-free scans of one site, prepared as `mriqa score` prepares an input.
        out_dir: existing folder; receives ``density.json`` (``flow.pt`` too for a flow) and
            ``latents.tsv`` (each scan's m and log-density under the new density).
        settings: the project settings (unused: the scorer's params already hold ``zuo``'s).
        flow_min_scans: scans needed to refit the RealNVP (default :data:`FLOW_MIN_SCANS`).

    Returns:
        a JSON-able summary: density kind, why, scans, thresholds.
    """
    import pandas as pd

    out_dir = Path(out_dir)
    m = site_latents(scorer, volumes)
    density, reason = fit_density(m, scorer.p, flow_min_scans)
    files = _save(out_dir, density, len(m), reason)
    logp = density.log_density(m)
    scans = [str(v.path) for v in volumes]
    write_tsv(out_dir / LATENTS_TSV, pd.DataFrame({"scan": scans, "m1": m[:, 0], "m2": m[:, 1], "logdensity": logp}))
    return {
        "method": "zuo",
        "fitted": "density of the artifact latent m and its tau thresholds",
        "n_scans": len(m),
        "density": getattr(density, "kind", "realnvp"),
        "reason": reason,
        "thresholds": density.thresholds,
        "flagged_at_tau": {t: int(f.sum()) for t, f in density.flags(m).items()},
        "files": [*files, LATENTS_TSV],
    }


def _flow(folder: Path, state: dict, p):
    """The refitted flow of a calibration folder as a :class:`.flow.DensityModel`."""
    import torch

    from .flow import DensityModel, build_flow

    path = folder / str(state.get("weights", FLOW_WEIGHTS))
    if not path.exists():
        raise MriqaInputError(f"{path}: file not found (run `mriqa calibrate`)")
    flow = build_flow(p)
    try:
        flow.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    except Exception as exc:  # unpickling or shape errors: a damaged file or another architecture
        raise MriqaInputError(f"{path}: cannot load the calibrated flow ({type(exc).__name__}: {exc})") from None
    return DensityModel(flow, state["mean"], state["std"], state["thresholds"])


def load_density(folder: Path, p) -> Any:
    """The density :func:`calibrate` wrote into ``folder``: a :class:`GaussianDensity` or a flow.

    Args:
        folder: the calibration folder.
        p: the scorer's ``zuo`` params (flow architecture).

    Raises:
        MriqaInputError: a file is missing, damaged or incomplete (names the file).
    """
    path = Path(folder) / DENSITY_JSON
    state = read_json(path)  # names the file when missing or not JSON
    need = {GaussianDensity.kind: ("mean", "covariance", "thresholds"), "realnvp": ("mean", "std", "thresholds")}
    kind = state.get("kind") if isinstance(state, dict) else None
    if kind not in need or any(k not in state for k in need[kind]):
        raise MriqaInputError(f"{path}: not a calibrated density (kind one of {sorted(need)} with {need.get(kind)})")
    if kind == "realnvp":
        return _flow(Path(folder), state, p)
    try:
        return GaussianDensity(state["mean"], state["covariance"], state["thresholds"], state.get("shrinkage", 0.0))
    except (ValueError, np.linalg.LinAlgError) as exc:
        raise MriqaInputError(f"{path}: invalid Gaussian density ({exc})") from None
