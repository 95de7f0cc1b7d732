"""`mriqa score` for paper 4: SSFD, SSIM and PSNR of a volume against a reference volume.

Both volumes go through the pipeline's preparation (``conform`` to the 2 mm grid, ``normalise``,
the same centre axial slices as the embedded synthesis); the columns are means over those slices.
SSFD needs a reference, so without one the scorer returns no columns.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mriqa_lib.io import Volume
from mriqa_lib.methods import registry


def prepare_slices(volume: Volume, n: int, step: int) -> np.ndarray:
    """The pipeline's slices of a volume: conform -> normalise -> n axial slices every ``step``."""
    from mriqa_lib.data.preprocess import conform, normalise

    data = np.clip(normalise(conform(volume).data), 0, None)
    z0 = data.shape[2] // 2 - (n * step) // 2 + 4  # as mriqa_lib.methods.ssfd.data.embedded_slices
    idx = np.clip(np.arange(z0, z0 + n * step, step), 0, data.shape[2] - 1)
    return np.stack([data[:, :, z] for z in idx]).astype(np.float32)


@dataclass
class Scorer(registry.Scorer):
    """Scores a volume against a reference with the trained SSFD encoder."""

    encoder: object
    layer: int
    n_slices: int
    step: int

    def score(self, volume: Volume, reference: Volume | None = None, maps_dir: str | Path | None = None) -> dict:
        """Columns ``ssfd_distance`` (mean SSFD at the configured layer), ``ssfd_ssim``, ``ssfd_psnr``
        (data range of each reference slice); ``{}`` when ``reference`` is None. ``maps_dir`` is unused."""
        if reference is None:
            return {}
        from mriqa_lib.methods.ssfd.metric import ssfd
        from mriqa_lib.metrics import psnr, ssim

        ref = prepare_slices(reference, self.n_slices, self.step)
        img = prepare_slices(volume, self.n_slices, self.step)
        d = ssfd(ref, img, self.layer, self.encoder)
        keep = [i for i, r in enumerate(ref) if r.max() > r.min()]
        s = [ssim(ref[i], img[i], data_range=float(ref[i].max() - ref[i].min())) for i in keep]
        p = [psnr(ref[i], img[i], data_range=float(ref[i].max() - ref[i].min())) for i in keep]
        return {
            "ssfd_distance": float(np.mean(d)),
            "ssfd_ssim": float(np.mean(s)) if s else float("nan"),
            "ssfd_psnr": float(np.mean(p)) if p else float("nan"),
        }


def load_scorer(model_dir: Path, settings) -> Scorer:
    """Scorer with the inpainting encoder of ``model_dir`` (``inpaint.pt`` + ``inpaint.json``)."""
    from mriqa_lib.methods.ssfd.metric import load_encoder

    p = settings.ssfd
    return Scorer(load_encoder(model_dir), p.layer, p.slices_per_subject, p.slice_step)
