"""Density of the volume-level artifact features m (paper 2, Sec. 2.2): zuko RealNVP.

The flow is fitted on standardised m, ``u = (m - mean) / std``; densities are reported for m
itself: ``log p_M(m) = log p_U(u) - sum(log std)`` (Eq. 2 plus the constant Jacobian of the
standardisation). Flags: ``log p_M(m) <`` the ``tau`` percentile of the training log-densities.
"""

from __future__ import annotations

import lightning as L
import numpy as np
import torch
import zuko

from mriqa_lib.methods.zuo.params import ZuoParams

__all__ = ["DensityModel", "FlowModule", "build_flow", "fit_flow", "percentile_thresholds"]


def build_flow(p: ZuoParams) -> zuko.flows.RealNVP:
    """RealNVP with ``flow_transforms`` affine couplings on 2-D m (paper: 6)."""
    return zuko.flows.RealNVP(features=2, context=0, transforms=p.flow_transforms, hidden_features=tuple(p.flow_hidden))


class _FullBatch(torch.utils.data.Dataset):
    def __init__(self, u: np.ndarray, steps: int) -> None:
        self.u, self.steps = torch.as_tensor(u, dtype=torch.float32), steps

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.u


class FlowModule(L.LightningModule):
    """Maximum likelihood (Eq. 2: loss = -log p(m)) on the full set of training features,
    with optional Gaussian jitter (``flow_jitter`` std units) as a smoothing regulariser.

    The flow is built here (:func:`build_flow`, from the global torch RNG); the jitter draws from
    its own generator (``seed + 1``). The settings are saved as hyper-parameters, so
    :meth:`load_from_checkpoint` rebuilds the module.

    Args:
        params: ``zuo`` settings (a :class:`ZuoParams` or its dict).
    """

    def __init__(self, params: ZuoParams | dict) -> None:
        super().__init__()
        p = params if isinstance(params, ZuoParams) else ZuoParams(**params)
        self.save_hyperparameters({"params": p.model_dump(mode="json")})
        self.flow, self.p = build_flow(p), p
        self.gen = torch.Generator().manual_seed(p.seed + 1)

    def training_step(self, u: torch.Tensor, _: int) -> torch.Tensor:
        loss = _nll(self, u)
        self.log("nll", loss, prog_bar=True, on_step=True, on_epoch=False)
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.flow.parameters(), lr=self.p.flow_lr)


def percentile_thresholds(train_logp: np.ndarray, taus: list[float]) -> dict[str, float]:
    """Log-density thresholds at the ``tau`` percentiles of the training log-densities
    (linear interpolation, numpy's default), keyed ``"5"``, ``"3"``, ..."""
    return {f"{t:g}": float(np.percentile(np.asarray(train_logp, dtype=np.float64), t)) for t in taus}


class DensityModel:
    """A fitted flow + standardisation + thresholds: log p_M(m), z = f(m), flags."""

    def __init__(
        self, flow: zuko.flows.RealNVP, mean: np.ndarray, std: np.ndarray, thresholds: dict[str, float] | None = None
    ) -> None:
        self.flow = flow.eval()
        self.mean, self.std = np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)
        self.thresholds = dict(thresholds or {})

    def _u(self, m: np.ndarray) -> torch.Tensor:
        return torch.as_tensor((np.atleast_2d(m) - self.mean) / self.std, dtype=torch.float32)

    @torch.no_grad()
    def log_density(self, m: np.ndarray) -> np.ndarray:
        """log p_M(m) for (n, 2) features (natural log, density per unit area of m)."""
        return self.flow().log_prob(self._u(m)).double().numpy() - np.log(self.std).sum()

    @torch.no_grad()
    def to_z(self, m: np.ndarray) -> np.ndarray:
        """z = f(m), ideally N(0, I) for the training features (Fig. 3a)."""
        return self.flow().transform(self._u(m)).numpy()

    def flags(self, m: np.ndarray) -> dict[str, np.ndarray]:
        """tau -> boolean flags (log-density below the tau threshold)."""
        logp = self.log_density(m)
        return {t: logp < thr for t, thr in self.thresholds.items()}

    def state(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist(), "thresholds": self.thresholds}


def fit_flow(m_train: np.ndarray, p: ZuoParams, trainer=None) -> DensityModel:
    """Fit the flow on training features and set the tau thresholds.

    Args:
        m_train: (n, 2) volume-level features.
        p: params (flow_*, taus, seed).
        trainer: a Lightning Trainer to run :class:`FlowModule` with; None runs the same
            full-batch Adam loop directly (the default: for a 2-D full-batch fit, Lightning's
            per-step overhead costs more than the fit itself).
    """
    m_train = np.asarray(m_train, dtype=np.float64)
    mean, std = m_train.mean(0), m_train.std(0) + 1e-8
    torch.manual_seed(p.seed)
    module = FlowModule(p)
    flow = module.flow
    u = (m_train - mean) / std
    if trainer is not None:
        loader = torch.utils.data.DataLoader(_FullBatch(u, p.flow_steps), batch_size=None, shuffle=False, num_workers=0)
        trainer.fit(module, loader)
    else:
        opt = module.configure_optimizers()
        ut = torch.as_tensor(u, dtype=torch.float32)
        for _ in range(p.flow_steps):
            opt.zero_grad()
            loss = _nll(module, ut)
            loss.backward()
            opt.step()
    model = DensityModel(flow, mean, std)
    model.thresholds = percentile_thresholds(model.log_density(m_train), p.taus)
    return model


def _nll(module: FlowModule, u: torch.Tensor) -> torch.Tensor:
    """The loss of :meth:`FlowModule.training_step` without Lightning's logging."""
    if module.p.flow_jitter > 0:
        u = u + module.p.flow_jitter * torch.randn(u.shape, generator=module.gen)
    return -module.flow().log_prob(u).mean()
