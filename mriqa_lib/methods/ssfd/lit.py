"""Lightning modules of paper 4: the inpainting pretext and the 4x reconstruction U-Net."""
from __future__ import annotations

import lightning as L
import torch
from torch.nn import functional as F

from mriqa_lib.models.ssfd_unet import ReconUNet, SsfdUNet


class InpaintModule(L.LightningModule):
    """Inpainting pretext: L1 over the image, holes weighted x4 (what the encoder must learn)."""

    def __init__(self, channels: tuple[int, ...], groups: int, lr: float) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = SsfdUNet(tuple(channels), groups)
        self.lr = lr

    def _loss(self, batch) -> torch.Tensor:
        inp, target, mask = batch
        err = (self.net(inp) - target).abs()
        w = 1.0 + 3.0 * mask.float()
        return (err * w).mean()

    def training_step(self, batch, _):
        loss = self._loss(batch)
        self.log("train_loss", loss, prog_bar=True, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, _):
        self.log("val_loss", self._loss(batch), prog_bar=True)

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.lr)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, self.trainer.max_epochs))
        return [opt], [sched]


class ReconModule(L.LightningModule):
    """Supervised 4x reconstruction: L1 between U-Net(zero-filled) and the ground truth."""

    def __init__(self, channels: tuple[int, ...], lr: float) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = ReconUNet(tuple(channels))
        self.lr = lr

    def training_step(self, batch, _):
        x, y = batch
        loss = F.l1_loss(self.net(x), y)
        self.log("train_loss", loss, prog_bar=True, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, _):
        x, y = batch
        self.log("val_loss", F.l1_loss(self.net(x), y), prog_bar=True)

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.lr)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, self.trainer.max_epochs))
        return [opt], [sched]
