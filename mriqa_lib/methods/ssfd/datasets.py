"""Datasets and inference helpers of paper 4 (no Lightning import, so evaluation and tests stay light)."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from mriqa_lib.artifacts.masks import inpainting_mask


def zscore_images(x: np.ndarray) -> np.ndarray:
    """Per-image zero mean, unit variance (the SSFD input normalisation), (N, H, W) float32."""
    flat = x.reshape(len(x), -1)
    mean = flat.mean(1)[:, None, None]
    std = flat.std(1, ddof=1)[:, None, None]
    return ((x - mean) / np.maximum(std, 1e-8)).astype(np.float32)


class InpaintDataset(Dataset):
    """Z-scored images with Poisson-disc patch masks (:func:`mriqa_lib.artifacts.masks.inpainting_mask`)
    zero-filled. A pool of ``pool`` masks is drawn once (Poisson-disc sampling costs ~10 ms a mask);
    each access takes a random one from a private generator (``fixed``: mask ``i % pool``)."""

    def __init__(
        self, images: np.ndarray, patch: int, fraction: float, seed: int, fixed: bool = False, pool: int = 64
    ) -> None:
        self.images = zscore_images(images)
        self.masks = np.stack(
            [inpainting_mask(self.images.shape[1:], patch, fraction, seed=seed * 10007 + k)[0] for k in range(pool)]
        )
        self.rng = np.random.default_rng(seed)
        self.fixed = fixed
        self._worker: tuple[int, np.random.Generator] | None = None

    def __len__(self) -> int:
        return len(self.images)

    def _generator(self) -> np.random.Generator:
        """The seeded generator in the main process; in a DataLoader worker, one seeded by the worker's
        torch seed (distinct per worker and per epoch, set by the loader's generator): each worker holds
        a copy of ``self.rng``, so drawing from it would repeat the same masks in every worker."""
        info = torch.utils.data.get_worker_info()
        if info is None:
            return self.rng
        if self._worker is None or self._worker[0] != info.seed:
            self._worker = (info.seed, np.random.default_rng(info.seed))
        return self._worker[1]

    def __getitem__(self, i: int):
        mask = self.masks[i % len(self.masks) if self.fixed else int(self._generator().integers(len(self.masks)))]
        x = self.images[i]
        inp = np.where(mask, 0.0, x).astype(np.float32)
        return torch.from_numpy(inp)[None], torch.from_numpy(x)[None], torch.from_numpy(mask)[None]


class PairDataset(Dataset):
    """(input, target) image pairs (N, H, W) -> (1, H, W) tensors."""

    def __init__(self, inputs: np.ndarray, targets: np.ndarray) -> None:
        self.x = torch.from_numpy(np.ascontiguousarray(inputs, dtype=np.float32))[:, None]
        self.y = torch.from_numpy(np.ascontiguousarray(targets, dtype=np.float32))[:, None]

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int):
        return self.x[i], self.y[i]


def predict(net: torch.nn.Module, x: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """Run ``net`` on (N, H, W) images without gradients -> (N, H, W) float32."""
    net.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            batch = torch.from_numpy(np.ascontiguousarray(x[i : i + batch_size], dtype=np.float32))[:, None]
            out.append(net(batch)[:, 0])
    return torch.cat(out).numpy()
