"""SimCLR training of paper 1: NT-Xent loss, random-resized-crop augmentation, warm-up + cosine.

No torchvision: the random resized crop is an affine resampling (``affine_grid`` +
``grid_sample``), one random box per image, run on the whole batch at once.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F

from mriqa_lib.models.resnet_simclr import SimCLRNet

from .params import EckerParams


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """Normalised temperature-scaled cross-entropy (SimCLR, Chen et al. 2020).

    For ``2N`` projections (the two views of N images), with ``s_ij = cos(z_i, z_j) / T``::

        l(i, j) = -log( exp(s_ij) / sum_{k != i} exp(s_ik) )

    averaged over the ``2N`` positive pairs ``(i, j)`` = the two views of one image.

    Args:
        z1, z2: ``(N, d)`` projections of view 1 and view 2 (row n of both = same image).
        temperature: T.
    """
    if z1.shape != z2.shape or z1.ndim != 2:
        raise ValueError(f"z1 {tuple(z1.shape)} and z2 {tuple(z2.shape)} must be equal (N, d)")
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = z @ z.T / temperature
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, target)


def nt_xent_across(
    z1: torch.Tensor, z2: torch.Tensor, temperature: float, gather: Callable[[torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """NT-Xent over every process's batch: the negatives of an image are the views of all images
    on all GPUs, as in the authors' code, not only those of this GPU's batch.

    ``gather`` stacks a tensor from every process into ``(world, N, d)`` and passes gradients back
    (Lightning's ``all_gather(t, sync_grads=True)``). Every process then computes the loss of the
    whole batch; DDP's gradient averaging turns the gathered gradients into that loss's gradient.
    """
    return nt_xent(gather(z1).flatten(0, 1), gather(z2).flatten(0, 1), temperature)


def random_resized_crop(
    x: torch.Tensor,
    scale: tuple[float, float] = (0.2, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    generator: torch.Generator | None = None,
    size: int | None = None,
) -> torch.Tensor:
    """Random resized crop of each image of ``x`` ``(B, C, H, W)``, resized to ``(size, size)``
    (default: ``(H, W)``).

    Area fraction ~ U(scale), log aspect ratio ~ U(log ratio), box centre uniform where the box
    fits (as torchvision's RandomResizedCrop, which clips instead of re-drawing).
    """
    b = x.shape[0]
    u = torch.rand(b, 4, generator=generator)
    area = scale[0] + (scale[1] - scale[0]) * u[:, 0]
    logr = math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * u[:, 1]
    r = torch.exp(logr)
    w = torch.sqrt(area * r).clamp(max=1.0)  # fractions of the width / height
    h = torch.sqrt(area / r).clamp(max=1.0)
    cx = (1 - w) * (2 * u[:, 2] - 1)  # centre in [-1, 1] normalised coordinates
    cy = (1 - h) * (2 * u[:, 3] - 1)
    theta = torch.zeros(b, 2, 3, dtype=x.dtype)
    theta[:, 0, 0], theta[:, 0, 2] = w, cx
    theta[:, 1, 1], theta[:, 1, 2] = h, cy
    out_shape = [b, x.shape[1], size or x.shape[2], size or x.shape[3]]
    grid = F.affine_grid(theta.to(x.device), out_shape, align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def warmup_cosine(step: int, warmup: int, total: int) -> float:
    """LR factor: linear warm-up from 1/(warmup+1) to 1 over ``warmup`` steps, then cosine to 0."""
    if step < warmup:
        return (step + 1) / (warmup + 1)
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


class SimCLRModule(L.LightningModule):
    """SimCLR: two random resized crops per slice, NT-Xent on the projections.

    Hyper-parameters (saved, so :meth:`load_from_checkpoint` rebuilds it): the ``ecker`` settings
    as a plain dict and the steps per epoch (which set the warm-up + cosine schedule).

    Args:
        params: ``ecker`` settings (an :class:`EckerParams` or its dict).
        steps_per_epoch: optimiser steps per epoch.
    """

    def __init__(self, params: EckerParams | dict, steps_per_epoch: int) -> None:
        super().__init__()
        p = params if isinstance(params, EckerParams) else EckerParams(**params)
        self.save_hyperparameters({"params": p.model_dump(mode="json"), "steps_per_epoch": int(steps_per_epoch)})
        self.p = p
        self.steps_per_epoch = int(steps_per_epoch)
        self.net = SimCLRNet(1, p.width, p.proj_dim, p.conv1_stride)
        # the crops' own generator: augmentations do not depend on the global torch RNG
        self.gen = torch.Generator().manual_seed(p.seed)

    def training_step(self, batch, _idx):
        x = batch[0]
        v1 = random_resized_crop(x, self.p.crop_scale, self.p.crop_ratio, self.gen, self.p.train_size)
        v2 = random_resized_crop(x, self.p.crop_scale, self.p.crop_ratio, self.gen, self.p.train_size)
        _, z = self.net(torch.cat([v1, v2]))
        z1, z2 = z.chunk(2)
        if self.trainer.world_size > 1:
            loss = nt_xent_across(z1, z2, self.p.temperature, lambda t: self.all_gather(t, sync_grads=True))
        else:
            loss = nt_xent(z1, z2, self.p.temperature)
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=x.shape[0])
        return loss

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.p.lr, weight_decay=self.p.weight_decay)
        warm = self.p.warmup_epochs * self.steps_per_epoch
        total = self.p.epochs * self.steps_per_epoch
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: warmup_cosine(s, warm, total))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def train_simclr(images: np.ndarray, p: EckerParams, trainer_params, ckpt_dir) -> SimCLRNet:
    """Train the SimCLR network on slices ``(n, S, S)``; returns the trained network (eval mode).

    Args:
        images: prepared training slices.
        p: ``ecker`` settings (epochs, batch size, lr, temperature, crops).
        trainer_params: ``trainer`` settings (accelerator, devices, precision, workers).
        ckpt_dir: Lightning checkpoint folder.
    """
    from torch.utils.data import DataLoader, TensorDataset

    from mriqa_lib.training import build_trainer

    data = TensorDataset(torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))[:, None])
    bs = min(p.batch_size, len(data))
    loader = DataLoader(
        data,
        batch_size=bs,
        shuffle=True,
        drop_last=True,
        num_workers=trainer_params.num_workers,
        generator=torch.Generator().manual_seed(p.seed),
    )
    module = SimCLRModule(p, len(loader))
    trainer = build_trainer(trainer_params, ckpt_dir, p.epochs, monitor=None)
    trainer.fit(module, loader)
    return module.net.eval()


@torch.no_grad()
def embed(net: SimCLRNet, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Encoder output (not the projection) of slices ``(n, S, S)`` -> ``(n, h)`` float32."""
    net.eval()
    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
    shape = x.shape[:-2]
    x = x.reshape(-1, 1, *x.shape[-2:])
    out = [net.encode(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
    h = torch.cat(out) if out else torch.zeros(0, net.feature_dim)
    return h.reshape(*shape, -1).numpy().astype(np.float32)


def load_net(model_dir: str | Path) -> tuple[SimCLRNet, EckerParams, dict]:
    """The trained SimCLR network (eval mode), its settings and the stored config of ``model_dir``
    (``simclr.pt`` and ``config.json``, written by the train stage)."""
    from mriqa_lib.io import read_json

    model_dir = Path(model_dir)
    cfg = read_json(model_dir / "config.json")
    q = EckerParams(**cfg["params"])
    net = SimCLRNet(1, q.width, q.proj_dim, q.conv1_stride)
    net.load_state_dict(torch.load(model_dir / "simclr.pt", weights_only=True))
    return net.eval(), q, cfg
