"""Lightning modules of paper 4: the inpainting pretext and the 4x reconstruction U-Net, their training
loop (:func:`fit_module`) and the files they are saved to (:func:`save_models`).

Both modules are top-level and call ``save_hyperparameters()``: a Lightning checkpoint reloads with
``ReconModule.load_from_checkpoint(path)`` / ``InpaintModule.load_from_checkpoint(path)``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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


def fit_module(
    module: L.LightningModule,
    train_ds,
    val_ds,
    trainer_params: Any,
    ckpt_dir: Path,
    epochs: int,
    batch_size: int,
    seed: int,
) -> float:
    """Train ``module`` (training batches shuffled by a generator seeded with ``seed``) and load the
    weights of the epoch with the lowest ``val_loss``; returns that loss (NaN when none was logged)."""
    from torch.utils.data import DataLoader

    from mriqa_lib.training import build_trainer, load_state

    g = torch.Generator().manual_seed(seed)
    tl = DataLoader(train_ds, batch_size=batch_size, shuffle=True, generator=g, num_workers=trainer_params.num_workers)
    vl = DataLoader(val_ds, batch_size=batch_size, shuffle=False, num_workers=trainer_params.num_workers)
    trainer = build_trainer(
        trainer_params, ckpt_dir, max_epochs=epochs, monitor="val_loss", mode="min", enable_progress_bar=True
    )
    trainer.fit(module, tl, vl)
    best = trainer.checkpoint_callback.best_model_path
    if best:
        load_state(module, best)
    return float(trainer.checkpoint_callback.best_model_score or float("nan"))


def save_models(recon: ReconModule, inpaint: InpaintModule, params: Any, out: Path) -> None:
    """State dicts (``torch.load(..., weights_only=True)``) and JSON configs of both networks in ``out``:
    ``recon.pt``/``recon.json`` and the inpainting U-Net that SSFD's encoder is read from."""
    from mriqa_lib.methods.ssfd.metric import INPAINT_CONFIG, INPAINT_FILE

    out = Path(out)
    torch.save(recon.net.state_dict(), out / "recon.pt")
    (out / "recon.json").write_text(json.dumps({"channels": list(params.recon_channels)}) + "\n")
    torch.save(inpaint.net.state_dict(), out / INPAINT_FILE)
    (out / INPAINT_CONFIG).write_text(
        json.dumps(
            {
                "channels": list(params.encoder_channels),
                "groups": params.group_norm_groups,
                "patch_size": params.patch_size,
                "patch_fraction": params.patch_fraction,
            }
        )
        + "\n"
    )
