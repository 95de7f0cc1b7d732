"""Site calibration of paper 2 (Zuo et al.): the encoder fine-tuned on a site's own artifact-free
scans, then the density of m and its tau thresholds refitted on their latents.

A density refit alone cannot teach the latent what an artifact looks like on this site's scans, so
first the encoder is fine-tuned (``zuo.finetune_steps``; 0 = skip) with the paper's own contrastive
loss: query and positive are two orientations of one site scan, negatives are that scan with
simulated artifacts (noise, motion and ``extra_negatives``). The other site scans are not used as
negatives: they are clean like the query, and pushing them apart would teach the latent who the
subject is, not how good the scan is.

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
    "ENCODER_WEIGHTS",
    "FLOW_MIN_SCANS",
    "FLOW_WEIGHTS",
    "MIN_SCANS",
    "GaussianDensity",
    "calibrate",
    "fit_density",
    "finetune_encoder",
    "fit_gaussian",
    "gaussian_thresholds",
    "load_density",
    "load_encoder",
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
ENCODER_WEIGHTS = "encoder.pt"
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


def finetune_encoder(
    scorer, volumes: list[Volume], settings, work_dir: Path, prepared: list[np.ndarray] | None = None
) -> dict[str, Any]:
    """Fine-tune ``scorer.encoder`` in place on the site's scans (see the module docstring).

    Args:
        scorer: the loaded scorer (its encoder and params ``scorer.p``; ``finetune_steps`` > 0).
        volumes: the site's clean scans (at least 2).
        settings: project settings (``trainer``: device, threads); without them the defaults.
        work_dir: a scratch folder for Lightning's checkpoint and logs.
        prepared: ``volumes`` already through ``prepare_volume`` (prepared here when None).

    Returns:
        steps, seconds and the final loss.
    """
    import time

    from mriqa_lib.config import trainer_for
    from mriqa_lib.validation import TrainerParams

    from .contrastive import train_encoder
    from .prep import band_slices, prepare_volume

    start, p = time.perf_counter(), scorer.p
    prepared = prepared if prepared is not None else [prepare_volume(v, p) for v in volumes]
    per_volume = [band_slices(data, p) for data in prepared]
    slices = {o: np.stack([s[o] for s in per_volume]) for o in per_volume[0]}
    p_site = p.model_copy(
        update={"steps": p.finetune_steps, "n_negatives_volume": 0, "batch_volumes": min(p.batch_volumes, len(volumes))}
    )
    own = isinstance(getattr(settings, "trainer", None), TrainerParams)
    trainer = trainer_for(settings, "zuo", "encoder") if own else TrainerParams()
    module, loss = train_encoder(slices, p_site, trainer, work_dir, init=scorer.encoder.state_dict())
    scorer.encoder = module.encoder.cpu().eval()
    return {"steps": p.finetune_steps, "seconds": round(time.perf_counter() - start, 1), "loss": round(loss, 4)}


def load_encoder(folder: Path, scorer) -> None:
    """Replace ``scorer.encoder``'s weights by the fine-tuned ones of a calibration folder, if it has them.

    Raises:
        MriqaInputError: the file cannot be read or does not fit the encoder (names the file).
    """
    import torch

    path = Path(folder) / ENCODER_WEIGHTS
    if not path.exists():
        return
    try:
        scorer.encoder.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    except Exception as exc:  # unpickling or shape errors: a damaged file or another architecture
        raise MriqaInputError(f"{path}: cannot load the fine-tuned encoder ({type(exc).__name__}: {exc})") from None
    scorer.encoder.eval()


def site_latents(scorer, volumes: list[Volume], prepared: list[np.ndarray] | None = None) -> np.ndarray:
    """m ``(n, 2)`` of each scan, prepared and encoded exactly as :meth:`.score.Scorer.score` does
    (``prepared``: the scans already through ``prepare_volume``)."""
    if prepared is None:
        return np.stack([scorer.latent(v) for v in volumes])
    return np.stack([scorer.latent_of_prepared(data) for data in prepared])


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
        out_dir: existing folder; receives ``density.json`` (``flow.pt`` too for a flow),
            ``encoder.pt`` (the fine-tuned encoder, when ``finetune_steps`` > 0) and ``latents.tsv``
            (each scan's m, by the fine-tuned encoder, and log-density under the new density).
        settings: the project settings (``trainer`` for the fine-tuning; the scorer's params hold ``zuo``'s).
        flow_min_scans: scans needed to refit the RealNVP (default :data:`FLOW_MIN_SCANS`).

    Returns:
        a JSON-able summary: density kind, why, scans, thresholds.
    """
    import tempfile

    import pandas as pd
    import torch

    out_dir = Path(out_dir)
    if len(volumes) < MIN_SCANS:
        raise MriqaInputError(f"zuo calibration needs at least {MIN_SCANS} scans, got {len(volumes)}")
    from .prep import prepare_volume

    finetuned, files = None, []
    prepared = [prepare_volume(v, scorer.p) for v in volumes]  # once: the fine-tuning and the latents share it
    if scorer.p.finetune_steps:
        with tempfile.TemporaryDirectory(prefix="zuo_finetune_") as work:
            finetuned = finetune_encoder(scorer, volumes, settings, Path(work), prepared)
        with atomic_path(out_dir / ENCODER_WEIGHTS) as tmp:
            torch.save(scorer.encoder.state_dict(), tmp)
        files.append(ENCODER_WEIGHTS)
    m = site_latents(scorer, volumes, prepared)
    density, reason = fit_density(m, scorer.p, flow_min_scans)
    files = _save(out_dir, density, len(m), reason) + files
    logp = density.log_density(m)
    scans = [str(v.path) for v in volumes]
    write_tsv(out_dir / LATENTS_TSV, pd.DataFrame({"scan": scans, "m1": m[:, 0], "m2": m[:, 1], "logdensity": logp}))
    return {
        "method": "zuo",
        "fitted": "density of the artifact latent m and its tau thresholds"
        + (", after fine-tuning the encoder on the site's scans" if finetuned else ""),
        "finetuned": finetuned,
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
