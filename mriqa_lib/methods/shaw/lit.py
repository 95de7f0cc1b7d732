"""Training of paper 3's networks: patch datasets and the LightningModule (Adam, batch 1 by default)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from mriqa_lib import seeds
from mriqa_lib.methods.shaw.losses import hetero_nll, seg_uncertainty_loss

__all__ = ["PatchDataset", "VolumeDataset", "ShawModule", "build_model", "loaders", "multitask_set"]


def build_model(
    kind: str, features: Sequence[int], logvar_range: Sequence[float], norm: str, logvar_init: float = -6.0
) -> torch.nn.Module:
    """``kind`` = "recon" (:class:`HeteroUNet`) or "multitask" (:class:`MultiTaskHeteroUNet`)."""
    from mriqa_lib.models.unet_hetero import HeteroUNet, MultiTaskHeteroUNet

    feats, lv = tuple(features), tuple(logvar_range)
    if kind == "recon":
        return HeteroUNet(feats, logvar_range=lv, norm=norm, logvar_init=logvar_init)
    if kind == "multitask":
        return MultiTaskHeteroUNet(feats, n_classes=2, logvar_range=lv, norm=norm, logvar_init=logvar_init)
    raise ValueError(f"unknown model kind {kind!r}")


class PatchDataset(Dataset):
    """Item ``i`` of ``length``: sample ``i mod N`` (corrupted input, clean target, GM label) and a
    random cubic patch; the crop position comes from ``(seed, i)`` only, so runs are reproducible
    whatever the worker count. ``patch=None`` returns whole volumes."""

    def __init__(
        self,
        inputs: np.ndarray,
        clean: np.ndarray,
        gm: np.ndarray,
        source: np.ndarray,
        length: int,
        patch: int | None,
        seed: int,
    ) -> None:
        self.inputs, self.clean, self.gm, self.source = inputs, clean, gm, source
        self.length, self.patch, self.seed = int(length), patch, int(seed)
        self.order = seeds.rng(seed, "shaw.sample_order").permutation(len(inputs))

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        n = len(self.inputs)
        epoch, j = divmod(int(i), n)
        k = int(seeds.rng(self.seed, "shaw.epoch_order", epoch).permutation(n)[j])
        x = self.inputs[k].astype(np.float32)
        y = self.clean[self.source[k]].astype(np.float32)
        g = self.gm[self.source[k]].astype(np.int64)
        if self.patch is not None:
            rng = seeds.rng(self.seed, "shaw.sample_draw", int(i))
            sl = tuple(
                slice(s, s + self.patch) for s in (int(rng.integers(0, max(1, d - self.patch + 1))) for d in x.shape)
            )
            x, y, g = x[sl], y[sl], g[sl]
        return {
            "x": torch.from_numpy(np.ascontiguousarray(x))[None],
            "y": torch.from_numpy(np.ascontiguousarray(y))[None],
            "gm": torch.from_numpy(np.ascontiguousarray(g)),
        }


class VolumeDataset(PatchDataset):
    """Whole volumes, each once, in order (validation)."""

    def __init__(self, inputs: np.ndarray, clean: np.ndarray, gm: np.ndarray, source: np.ndarray) -> None:
        super().__init__(inputs, clean, gm, source, len(inputs), None, 0)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        x = self.inputs[i].astype(np.float32)
        y = self.clean[self.source[i]].astype(np.float32)
        g = self.gm[self.source[i]].astype(np.int64)
        return {"x": torch.from_numpy(x)[None], "y": torch.from_numpy(y)[None], "gm": torch.from_numpy(g)}


def multitask_set(train: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The multi-task model's training set: the training inputs plus its regional-noise copies (if any)."""
    out = dict(train)
    if "mt_inputs" in train:
        out["inputs"] = np.concatenate([train["inputs"], train["mt_inputs"]])
        out["source"] = np.concatenate([train["source"], train["mt_source"]])
    return out


def loaders(
    p: Any,
    train: dict[str, np.ndarray],
    val: dict[str, np.ndarray],
    iterations: int,
    num_workers: int = 0,
    world_size: int = 1,
) -> tuple[DataLoader, DataLoader]:
    """Training loader (``iterations`` batches of patches, or whole volumes with ``p.whole_volume``,
    for each of ``world_size`` processes: DDP's sampler splits the samples between them, and the
    paper's iterations are optimiser steps) and validation loader (each validation volume once)."""
    patch = None if p.whole_volume else p.patch
    length = iterations * p.batch_size * world_size
    ds = PatchDataset(train["inputs"], train["clean"], train["gm"], train["source"], length, patch, p.seed)
    loader = DataLoader(ds, batch_size=p.batch_size, shuffle=False, num_workers=num_workers)
    val_loader = DataLoader(
        VolumeDataset(val["inputs"], val["clean"], val["gm"], val["source"]), batch_size=1, num_workers=num_workers
    )
    return loader, val_loader


def _pad_to(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, ...]]:
    shape = x.shape[-3:]
    pads = [(-n) % multiple for n in shape]
    if not any(pads):
        return x, tuple(shape)
    return torch.nn.functional.pad(x, (0, pads[2], 0, pads[1], 0, pads[0])), tuple(shape)


class ShawModule(L.LightningModule):
    """Paper 3's training: Eq. 1 (heteroscedastic reconstruction) for ``kind="recon"``, plus Eq. 2
    (segmentation uncertainty) for ``kind="multitask"``; Adam, cosine decay unless constant.

    Every argument is a plain value, saved by ``save_hyperparameters()``, so a checkpoint reloads
    with ``ShawModule.load_from_checkpoint(path)``. :meth:`from_params` builds it from ``ShawParams``.
    """

    def __init__(
        self,
        kind: str,
        features: Sequence[int],
        logvar_range: Sequence[float],
        norm: str,
        lr: float,
        lr_schedule: str = "cosine",
        total_steps: int | None = None,
        nll_beta: float = 0.0,
        logvar_init: float = -6.0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.kind = kind
        self.lr = float(lr)
        self.nll_beta = float(nll_beta)
        self.net = build_model(kind, features, logvar_range, norm, float(logvar_init))
        self.multiple = 2 ** (len(features) - 1)

    def start_from(self, state: dict[str, torch.Tensor]) -> None:
        """Load a reconstruction model's weights into the multi-task network (its ``seg_`` heads stay new)."""
        missing, unexpected = self.net.load_state_dict(state, strict=False)
        if unexpected or not all(k.startswith("seg_") for k in missing):
            raise ValueError(
                f"not a reconstruction model of this architecture: missing {missing}, unexpected {unexpected}"
            )

    @classmethod
    def from_params(cls, kind: str, p: Any, total_steps: int | None = None) -> ShawModule:
        """The module of ``kind`` with the network and optimiser settings of ``p`` (``ShawParams``)."""
        return cls(
            kind,
            [int(c) for c in p.features],
            [float(v) for v in p.logvar_range],
            str(p.norm),
            float(p.lr),
            str(p.lr_schedule),
            None if total_steps is None else int(total_steps),
            float(p.nll_beta),
            float(p.logvar_init),
        )

    def losses(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Eq. 1 (and Eq. 2 for the multi-task model) on a batch padded to the U-Net's stride."""
        x, y, g = batch["x"], batch["y"], batch["gm"]
        x, shape = _pad_to(x, self.multiple)
        out = self.net(x)
        crop = (Ellipsis, slice(0, shape[0]), slice(0, shape[1]), slice(0, shape[2]))
        out = tuple(o[crop] for o in out)
        reg = hetero_nll(out[0], out[1], y, beta=self.nll_beta)
        if self.kind == "recon":
            return {"loss": reg, "reg": reg}
        seg = seg_uncertainty_loss(out[2], out[3], g)
        return {"loss": reg + seg, "reg": reg, "seg": seg}  # Eq. 3: total = sum

    def training_step(self, batch, _):
        ls = self.losses(batch)
        self.log_dict({f"train_{k}": v for k, v in ls.items()}, prog_bar=True, batch_size=1)
        return ls["loss"]

    def validation_step(self, batch, _):
        ls = self.losses(batch)
        self.log_dict({f"val_{k}": v for k, v in ls.items()}, prog_bar=False, batch_size=1, sync_dist=True)

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.lr)
        total = self.hparams.total_steps
        if self.hparams.lr_schedule == "constant" or not total:
            return opt
        # cosine decay to 1 % : a short run otherwise ends mid-oscillation of the sigma floor
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=int(total), eta_min=self.lr * 0.01)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
