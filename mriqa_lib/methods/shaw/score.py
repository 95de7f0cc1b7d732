"""Scorer for `mriqa score`: reconstruction uncertainty of a T1w volume (paper 3).

The volume is prepared exactly as in the pipeline (:func:`mriqa_lib.methods.shaw.data.prepare_volume`),
the residual heteroscedastic U-Net predicts a sigma map, and the scorer reports its total (over
the field of view, x mL) and its median over the foreground. With an output folder the sigma map
is written as NIfTI on the *input's* grid (resampled back), so it overlays the scan in any viewer.
"""

from __future__ import annotations

from pathlib import Path

from mriqa_lib.io import Volume, output_stem, save_nifti
from mriqa_lib.methods import registry

__all__ = ["Scorer", "load_scorer"]


class Scorer(registry.Scorer):
    """Loads ``model_dir/recon.pt`` (and ``multitask.pt`` when present). The spec's ``map_column``
    (``shaw_sigma_map``) tells `mriqa score` to pass ``maps_dir``."""

    def __init__(self, model_dir: str | Path, settings=None) -> None:
        from mriqa_lib.methods.shaw.inference import load_model
        from mriqa_lib.methods.shaw.params import ShawParams

        self.p = getattr(settings, "shaw", None) or ShawParams()
        threads = getattr(getattr(settings, "trainer", None), "threads", None)
        if threads:
            import torch

            torch.set_num_threads(int(threads))
        model_dir = Path(model_dir)
        self.model, meta = load_model(model_dir / "recon.pt")
        self.grid_mm = float(meta.get("grid_mm", self.p.grid_mm))
        mt = model_dir / "multitask.pt"
        self.multitask = load_model(mt)[0] if mt.exists() else None

    def score(self, volume: Volume, reference: Volume | None = None, maps_dir: str | Path | None = None) -> dict:
        """Columns ``shaw_total_sigma`` (sum of sigma x voxel volume in mL, normalised intensity
        units; higher = worse), ``shaw_median_sigma`` (median over the foreground) and, with the
        multi-task model, ``shaw_seg_total_sigma`` (grey-matter segmentation uncertainty, foreground).
        ``reference`` is unused. ``maps_dir``: write ``<name>_shaw_sigma.nii.gz`` there."""
        from mriqa_lib.data.preprocess import resample_to
        from mriqa_lib.methods.shaw.data import prepare_volume
        from mriqa_lib.methods.shaw.inference import predict, summarise

        prep = prepare_volume(volume, self.grid_mm)
        pred = predict(self.model, prep.data)
        fg = prep.data > self.p.fg_fraction * float(prep.data.max())
        s = summarise(pred["sigma"], fg, self.grid_mm**3 / 1000.0)
        out = {"shaw_total_sigma": s["sigma_total"], "shaw_median_sigma": s["sigma_median"]}
        if self.multitask is not None:
            mt = predict(self.multitask, prep.data)
            out["shaw_seg_total_sigma"] = float(mt["seg_sigma"][fg].sum() * self.grid_mm**3 / 1000.0)
        if maps_dir is not None:
            native = resample_to(pred["sigma"], prep.affine, volume.affine, volume.shape, order=1)
            path = save_nifti(Path(maps_dir) / f"{output_stem(volume.path)}_shaw_sigma.nii.gz", native, volume.affine)
            out["shaw_sigma_map"] = str(path)
        return out


def load_scorer(model_dir: Path, settings) -> Scorer:
    """The `mriqa score` entry point (see CONTRIBUTING)."""
    return Scorer(model_dir, settings)
