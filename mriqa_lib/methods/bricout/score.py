"""Scorer for ``mriqa score``: motion RMS estimate and 3-class QC of one volume (paper 5).

Columns: ``bricout_motion_rms`` (mm, expectation over the SFCN's bins), ``bricout_qc_class``
(0 = scores 1/2, 1 = score 3, 2 = score 4), ``bricout_qc_label`` and the three class
probabilities. The volume is prepared with :func:`mriqa_lib.methods.bricout.data.prepare_volume`,
the same chain as the pipeline (network grid, normalise, crop, normalise).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mriqa_lib.data.ampscz import CLASS_NAMES
from mriqa_lib.io import MriqaInputError, Volume, read_json
from mriqa_lib.methods import registry


@dataclass
class BricoutScorer(registry.Scorer):
    """The pretrained SFCN (motion RMS head) and the transfer QC head of one seed."""

    net: object
    head: object
    centres: object
    data_params: object

    def score(self, volume: Volume, reference: Volume | None = None, maps_dir: str | Path | None = None) -> dict:
        """Score one volume (``reference`` and ``maps_dir`` are unused: the method is reference-free and
        makes no map)."""
        import torch

        from mriqa_lib.methods.bricout.data import prepare_volume
        from mriqa_lib.methods.bricout.model import expectation

        x = torch.from_numpy(prepare_volume(volume, self.data_params))[None, None]
        with torch.no_grad():
            z = self.net.encoder(x)
            rms = float(expectation(self.net.head(z), self.centres)[0])
            prob = torch.softmax(self.head(z.flatten(1)), 1)[0].numpy()
        cls = int(np.argmax(prob))
        out = {"bricout_motion_rms": rms, "bricout_qc_class": cls, "bricout_qc_label": CLASS_NAMES[cls]}
        out.update({f"bricout_qc_p{c.replace('/', '_')}": float(p) for c, p in zip(CLASS_NAMES, prob)})
        return out


def load_scorer(model_dir: Path, settings) -> BricoutScorer:
    """Load the pretrained SFCN and the transfer head of the seed with the best validation
    balanced accuracy from ``model_dir`` (``models/bricout``)."""
    import torch

    from mriqa_lib.methods.bricout.model import bin_centres
    from mriqa_lib.models.sfcn import SFCN, QCHead

    model_dir = Path(model_dir)
    bp = settings.bricout
    for f in (model_dir / "config.json", model_dir / "pretrain" / "sfcn.pt"):
        if not f.exists():
            raise MriqaInputError(f"{f}: not found; run `mriqa stage bricout train` first")
    cfg = read_json(model_dir / "config.json")
    net = SFCN(bp.model.channels, bp.model.latent, bp.model.n_bins, bp.model.dropout)
    try:
        net.load_state_dict(torch.load(model_dir / "pretrain" / "sfcn.pt", map_location="cpu", weights_only=True))
    except RuntimeError as exc:
        raise MriqaInputError(
            f"{model_dir / 'pretrain' / 'sfcn.pt'}: does not match params bricout.model ({exc})"
        ) from None
    tc = cfg["transfer"]
    seed = tc["selected_seed"]
    kc = tc["config"]
    head = QCHead(cfg["in_features"], kc["hidden"], 3, kc["dropout"], kc.get("dropout_at", "hidden"))
    head_file = model_dir / "transfer" / f"seed{seed}" / "model.pt"
    head.load_state_dict(torch.load(head_file, map_location="cpu", weights_only=True))
    centres = torch.from_numpy(bin_centres(bp.model.bin_range, bp.model.n_bins)).float()
    return BricoutScorer(net.eval(), head.eval(), centres, bp.data)
