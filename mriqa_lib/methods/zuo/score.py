"""Scorer for `mriqa score`: log-density of the volume's artifact features and the tau flags."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mriqa_lib.io import Volume
from mriqa_lib.methods import registry
from mriqa_lib.methods.zuo.inference import load_model, volume_m
from mriqa_lib.methods.zuo.prep import centre_axial, prepare_volume

__all__ = ["Scorer", "load_scorer"]


class Scorer(registry.Scorer):
    """Scores a 3-D T1w volume with the trained encoder + flow (same preparation as the pipeline)."""

    def __init__(self, model_dir: str | Path, settings=None) -> None:
        import torch

        p = getattr(settings, "zuo", None)
        trainer = getattr(settings, "trainer", None)
        if trainer is not None:
            torch.set_num_threads(trainer.threads)
        self.encoder, self.density, self.p = load_model(model_dir, p)

    def latent(self, volume: Volume) -> np.ndarray:
        """The volume-level artifact feature m, shape (2,), prepared and encoded as in the pipeline
        (centre slices stored as float16 there)."""
        return self.latent_of_prepared(prepare_volume(volume, self.p))

    def latent_of_prepared(self, data: np.ndarray) -> np.ndarray:
        """m of a volume already through :func:`~mriqa_lib.methods.zuo.prep.prepare_volume`."""
        return volume_m(self.encoder, centre_axial(data, self.p).astype(np.float16).astype(np.float32))

    def use_calibration(self, folder: str | Path) -> None:
        """Score with the site's encoder, density and tau thresholds that ``mriqa calibrate`` wrote
        into ``folder`` (``density.json``, plus ``flow.pt`` for a refitted flow and ``encoder.pt``
        for a fine-tuned encoder) from now on.

        Raises:
            MriqaInputError: a file is missing, damaged or does not fit the model (names the file).
        """
        from .calibrate import load_density, load_encoder

        density = load_density(Path(folder), self.p)
        load_encoder(Path(folder), self)
        self.density = density

    def score(self, volume: Volume, reference: Volume | None = None, maps_dir: str | Path | None = None) -> dict:
        """Columns ``zuo_logdensity`` (natural log of p_M(m)), ``zuo_flag5`` / ``zuo_flag3`` (True:
        density below the 5 % / 3 % percentile of the training densities), ``zuo_threshold5`` /
        ``zuo_threshold3`` (those log-density thresholds), ``zuo_m1``, ``zuo_m2``.
        ``reference`` and ``maps_dir`` are unused (the method needs no reference and makes no map)."""
        m = self.latent(volume)
        logp = float(self.density.log_density(m)[0])
        out = {"zuo_logdensity": logp, "zuo_m1": float(m[0]), "zuo_m2": float(m[1])}
        for tau, thr in self.density.thresholds.items():
            out[f"zuo_flag{tau}"] = bool(logp < thr)
            out[f"zuo_threshold{tau}"] = float(thr)
        return out


def load_scorer(model_dir: Path, settings) -> Scorer:
    """The `mriqa score` entry point (see CONTRIBUTING)."""
    return Scorer(model_dir, settings)
