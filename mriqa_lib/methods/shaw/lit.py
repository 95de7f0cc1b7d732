"""Training of paper 3's networks: patch datasets and the LightningModule (Adam, batch 1 by default)."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from mriqa_lib.methods.shaw.losses import hetero_nll, seg_uncertainty_loss

__all__ = ["PatchDataset", "VolumeDataset", "ShawModule", "build_model"]


def build_model(kind: str, p: Any) -> torch.nn.Module:
    """``kind`` = "recon" (:class:`HeteroUNet`) or "multitask" (:class:`MultiTaskHeteroUNet`)."""
    from mriqa_lib.models.unet_hetero import HeteroUNet, MultiTaskHeteroUNet

    feats = tuple(p.features)
    if kind == "recon":
        return HeteroUNet(feats, logvar_range=tuple(p.logvar_range), norm=p.norm)
    if kind == "multitask":
        return MultiTaskHeteroUNet(feats, n_classes=2, logvar_range=tuple(p.logvar_range), norm=p.norm)
    raise ValueError(f"unknown model kind {kind!r}")


class PatchDataset(Dataset):
    """Item ``i`` of ``length``: sample ``i mod N`` (corrupted input, clean target, GM label) and a
    random cubic patch; the crop position comes from ``(seed, i)`` only, so runs are reproducible
    whatever the worker count. ``patch=None`` returns whole volumes."""

    def __init__(self, inputs: np.ndarray, clean: np.ndarray, gm: np.ndarray, source: np.ndarray,
                 length: int, patch: int | None, seed: int) -> None:
        self.inputs, self.clean, self.gm, self.source = inputs, clean, gm, source
        self.length, self.patch, self.seed = int(length), patch, int(seed)
        self.order = np.random.default_rng(np.random.SeedSequence([seed, 77])).permutation(len(inputs))

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        n = len(self.inputs)
        epoch, j = divmod(int(i), n)
        k = int(np.random.default_rng(np.random.SeedSequence([self.seed, 78, epoch])).permutation(n)[j])
        x = self.inputs[k].astype(np.float32)
        y = self.clean[self.source[k]].astype(np.float32)
        g = self.gm[self.source[k]].astype(np.int64)
        if self.patch is not None:
            rng = np.random.default_rng(np.random.SeedSequence([self.seed, 79, int(i)]))
            sl = tuple(slice(s, s + self.patch) for s in
                       (int(rng.integers(0, max(1, d - self.patch + 1))) for d in x.shape))
            x, y, g = x[sl], y[sl], g[sl]
        return {"x": torch.from_numpy(np.ascontiguousarray(x))[None], "y": torch.from_numpy(np.ascontiguousarray(y))[None],
                "gm": torch.from_numpy(np.ascontiguousarray(g))}


class VolumeDataset(PatchDataset):
    """Whole volumes, each once, in order (validation)."""

    def __init__(self, inputs: np.ndarray, clean: np.ndarray, gm: np.ndarray, source: np.ndarray) -> None:
        super().__init__(inputs, clean, gm, source, len(inputs), None, 0)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        x = self.inputs[i].astype(np.float32)
        y = self.clean[self.source[i]].astype(np.float32)
        g = self.gm[self.source[i]].astype(np.int64)
        return {"x": torch.from_numpy(x)[None], "y": torch.from_numpy(y)[None], "gm": torch.from_numpy(g)}


def _pad_to(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, ...]]:
    shape = x.shape[-3:]
    pads = [(-n) % multiple for n in shape]
    if not any(pads):
        return x, tuple(shape)
    return torch.nn.functional.pad(x, (0, pads[2], 0, pads[1], 0, pads[0])), tuple(shape)


class ShawModule:
    """Factory for the LightningModule (imported lazily so that plain inference needs no Lightning)."""

    def __new__(cls, kind: str, p: Any, total_steps: int | None = None):
        import lightning as L

        class _Module(L.LightningModule):
            def __init__(self) -> None:
                super().__init__()
                self.kind = kind
                self.lr = float(p.lr)
                self.net = build_model(kind, p)
                self.multiple = 2 ** (len(p.features) - 1)

            def losses(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
                x, y, g = batch["x"], batch["y"], batch["gm"]
                x, shape = _pad_to(x, self.multiple)
                out = self.net(x)
                crop = (Ellipsis, slice(0, shape[0]), slice(0, shape[1]), slice(0, shape[2]))
                out = tuple(o[crop] for o in out)
                reg = hetero_nll(out[0], out[1], y)
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
                self.log_dict({f"val_{k}": v for k, v in ls.items()}, prog_bar=False, batch_size=1)

            def configure_optimizers(self):
                opt = torch.optim.Adam(self.parameters(), lr=self.lr)
                if p.lr_schedule == "constant" or not total_steps:
                    return opt
                # cosine decay to 1 % : a short run otherwise ends mid-oscillation of the sigma floor
                sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=int(total_steps), eta_min=self.lr * 0.01)
                return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

        return _Module()
