"""Losses of paper 3: heteroscedastic regression (Eq. 1) and uncertainty-weighted CE (Eq. 2)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["hetero_nll", "seg_uncertainty_loss", "sigma_from_logvar"]


def hetero_nll(
    mean: torch.Tensor,
    logvar: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor | None = None,
    beta: float = 0.0,
) -> torch.Tensor:
    """Eq. 1, averaged over voxels: ``1 / (2 sigma^2) (y - f(x))^2 + 1/2 log sigma^2``.

    Equal to ``torch.nn.GaussianNLLLoss(full=False)(mean, target, exp(logvar))`` whenever
    ``exp(logvar)`` is above that loss's clamp (1e-6). Predicting ``log sigma^2`` keeps sigma > 0.

    ``beta > 0`` is the beta-NLL of Seitzer et al. (ICLR 2022): each voxel's term is weighted by
    ``sigma^(2 beta)``, held constant in the gradient. At ``beta = 1`` the mean gets the gradient of
    half the squared error and ``log sigma^2`` that of ``(sigma^2 - r^2) / 2``, whatever sigma is:
    Eq. 1's ``1 / sigma^2`` weighting no longer lets confident voxels (exactly clean ones) drown
    the rest. ``beta = 0`` is Eq. 1; the minimiser (``sigma^2 = r^2``) is the same for every beta.

    Args:
        mean: predicted clean image ``f(x)``.
        logvar: predicted ``log sigma^2`` (same shape).
        target: clean image ``y``.
        mask: optional weights (same shape) -- the mean is taken over them.
    """
    per_voxel = 0.5 * (torch.exp(-logvar) * (target - mean) ** 2 + logvar)
    if beta:
        per_voxel = per_voxel * torch.exp(beta * logvar).detach()
    if mask is None:
        return per_voxel.mean()
    return (per_voxel * mask).sum() / mask.sum().clamp_min(1)


def seg_uncertainty_loss(logits: torch.Tensor, logvar: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Eq. 2, averaged over voxels: ``CE(y, f(x)) / sigma_s^2 + 1/2 log sigma_s^2``.

    Args:
        logits: ``(B, C, ...)`` class scores.
        logvar: ``(B, 1, ...)`` predicted ``log sigma_s^2`` per voxel.
        target: ``(B, ...)`` integer labels.
    """
    ce = F.cross_entropy(logits, target.long(), reduction="none")
    s = logvar[:, 0]
    return (torch.exp(-s) * ce + 0.5 * s).mean()


def sigma_from_logvar(logvar: torch.Tensor) -> torch.Tensor:
    """Standard deviation ``sigma = exp(logvar / 2)`` (always > 0)."""
    return torch.exp(0.5 * logvar)
