"""Paper 5 training logic: soft-label binning, KL loss, the regression and QC LightningModules."""

from __future__ import annotations

from collections.abc import Sequence

import lightning as L
import numpy as np
import torch
from torch import nn

from mriqa_lib.metrics import balanced_accuracy, r2_score
from mriqa_lib.models.sfcn import SFCN, SFCNClassifier, SFCNEncoder
from mriqa_lib.training import gather_all


def bin_centres(bin_range: Sequence[float] = (-0.8, 4.8), n_bins: int = 50) -> np.ndarray:
    """Centres of ``n_bins`` equal bins covering ``bin_range`` (paper: 50 bins on [-0.8, 4.8] mm)."""
    lo, hi = bin_range
    width = (hi - lo) / n_bins
    return lo + width * (np.arange(n_bins) + 0.5)


def soft_labels(
    targets: Sequence[float] | np.ndarray | torch.Tensor,
    bin_range: Sequence[float] = (-0.8, 4.8),
    n_bins: int = 50,
    sigma: float = 0.168,
) -> torch.Tensor:
    """Gaussian soft labels (Peng et al.'s ``num2vect``): probability mass of N(target, sigma^2)
    in each bin, renormalised to sum to 1 over the bins.

    Args:
        targets: ``(B,)`` regression targets (mm).
        bin_range, n_bins: the bins. sigma: Gaussian std (mm; paper 0.168).

    Returns:
        ``(B, n_bins)`` float32 tensor; rows sum to 1.
    """
    t = torch.as_tensor(np.asarray(targets, dtype=np.float64)).reshape(-1, 1)
    lo, hi = bin_range
    edges = torch.linspace(lo, hi, n_bins + 1, dtype=torch.float64)
    cdf = torch.special.ndtr((edges[None] - t) / sigma)
    mass = (cdf[:, 1:] - cdf[:, :-1]).clamp_min(0)
    return (mass / mass.sum(1, keepdim=True).clamp_min(1e-300)).float()


def expectation(log_probs: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """Regression value: sum over bins of probability x bin centre."""
    return (log_probs.exp() * centres.to(log_probs)).sum(1)


def kl_loss(log_probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """KL(target || prediction) averaged over the batch (0 for equal distributions)."""
    return torch.nn.functional.kl_div(log_probs, target, reduction="batchmean")


class MotionRegressor(L.LightningModule):
    """SFCN trained on synthetic motion: soft labels, KL loss, expectation as prediction.

    AdamW + ReduceLROnPlateau (on the validation loss); logs ``val_loss`` and ``val_r2``.
    """

    def __init__(
        self,
        channels: Sequence[int],
        latent: int,
        n_bins: int,
        bin_range: Sequence[float],
        sigma: float,
        dropout: float,
        lr: float,
        weight_decay: float,
        plateau_factor: float,
        plateau_patience: int,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = SFCN(list(channels), latent, n_bins, dropout)
        self.register_buffer("centres", torch.from_numpy(bin_centres(bin_range, n_bins)).float())
        self._val: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Log-probabilities over the bins."""
        return self.net(x)

    def predict_rms(self, x: torch.Tensor) -> torch.Tensor:
        return expectation(self(x), self.centres)

    def _loss(self, batch):
        x, y = batch
        logp = self(x)
        target = soft_labels(y.detach().cpu(), self.hparams.bin_range, self.hparams.n_bins, self.hparams.sigma).to(logp)
        return kl_loss(logp, target), logp

    def training_step(self, batch, batch_idx):
        loss, _ = self._loss(batch)
        self.log("train_loss", loss, on_epoch=True, on_step=False, prog_bar=True, batch_size=len(batch[1]))
        return loss

    def validation_step(self, batch, batch_idx):
        loss, logp = self._loss(batch)
        self.log("val_loss", loss, on_epoch=True, prog_bar=True, batch_size=len(batch[1]), sync_dist=True)
        self._val.append((expectation(logp.float(), self.centres).detach().cpu(), batch[1].detach().cpu()))

    def on_validation_epoch_end(self) -> None:
        if self._val:
            pred = gather_all(
                torch.cat([p for p, _ in self._val]), self.trainer.world_size
            ).numpy()  # the whole validation set
            true = gather_all(torch.cat([t for _, t in self._val]), self.trainer.world_size).numpy()
            self.log("val_r2", r2_score(true, pred), prog_bar=True)
        self._val = []

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, mode="min", factor=self.hparams.plateau_factor, patience=self.hparams.plateau_patience
        )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "val_loss"}}


class QCClassifier(L.LightningModule):
    """3-class QC: an MLP head on an SFCN encoder. With ``frozen=True`` the input is the
    (precomputed) latent of the frozen pretrained encoder and only the head is trained (transfer);
    otherwise the encoder is trained from scratch with the head. Logs ``val_loss``, ``val_bal_acc``."""

    def __init__(
        self,
        channels: Sequence[int],
        latent: int,
        in_features: int,
        hidden: int,
        dropout: float,
        lr: float,
        weight_decay: float,
        frozen: bool,
        class_weights: Sequence[float] | None = None,
        head: str = "mlp",
        dropout_at: str = "hidden",
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        encoder = SFCNEncoder(list(channels), latent)
        self.net = SFCNClassifier(encoder, in_features, hidden, 3, dropout, head, dropout_at)
        w = torch.tensor(class_weights, dtype=torch.float32) if class_weights is not None else torch.ones(3)
        self.register_buffer("class_weights", w)
        self._val: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits; ``x`` is the latent when frozen, else the image."""
        return self.net.head(x) if self.hparams.frozen else self.net(x)

    def _loss(self, batch):
        x, y = batch
        logits = self(x)
        return torch.nn.functional.cross_entropy(logits, y, weight=self.class_weights.to(logits)), logits

    def training_step(self, batch, batch_idx):
        loss, _ = self._loss(batch)
        self.log("train_loss", loss, on_epoch=True, on_step=False, batch_size=len(batch[1]))
        return loss

    def validation_step(self, batch, batch_idx):
        loss, logits = self._loss(batch)
        self.log("val_loss", loss, on_epoch=True, batch_size=len(batch[1]), sync_dist=True)
        self._val.append((logits.argmax(1).detach().cpu(), batch[1].detach().cpu()))

    def on_validation_epoch_end(self) -> None:
        if self._val:
            pred = gather_all(
                torch.cat([p for p, _ in self._val]), self.trainer.world_size
            ).numpy()  # the whole validation set
            true = gather_all(torch.cat([t for _, t in self._val]), self.trainer.world_size).numpy()
            self.log("val_bal_acc", balanced_accuracy(true, pred), prog_bar=True)
        self._val = []

    def configure_optimizers(self):
        params = self.net.head.parameters() if self.hparams.frozen else self.parameters()
        return torch.optim.AdamW(params, lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)


class PreciseBN(L.Callback):
    """Recompute BatchNorm running statistics as a cumulative average over ``n_samples`` training
    volumes before every validation during fit (Wu & Johnson, "Rethinking batch in BatchNorm",
    2021). With small batches the exponential running averages follow the last few batches and
    the validation R^2 swings from epoch to epoch; precise statistics make validation, checkpoint
    selection and inference stable. ``n_samples = 0`` disables it (the paper does not use it)."""

    def __init__(self, n_samples: int = 160, batch_size: int = 16) -> None:
        self.n_samples, self.batch_size = n_samples, batch_size

    def on_validation_start(self, trainer, pl_module) -> None:
        # Lightning validates before on_train_epoch_end, so the statistics are refreshed here
        if self.n_samples <= 0 or trainer.sanity_checking or trainer.train_dataloader is None:
            return
        bns = [m for m in pl_module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        if not bns:
            return
        data = trainer.train_dataloader.dataset
        n = min(self.n_samples, len(data))
        # spread over the whole training set: it is stored volume by volume (K samples each), so the
        # first n samples would cover only n / K subjects
        idx = np.linspace(0, len(data) - 1, n).round().astype(int).tolist() if n else []
        momenta = [b.momentum for b in bns]
        for b in bns:
            b.reset_running_stats()
            b.momentum = None  # cumulative average
        was_training = pl_module.training
        pl_module.train()
        with torch.no_grad():
            for i in range(0, n, self.batch_size):
                x = torch.stack([data[j][0] for j in idx[i : i + self.batch_size]]).to(pl_module.device)
                pl_module(x)
        for b, mom in zip(bns, momenta):
            b.momentum = mom
        pl_module.train(was_training)
