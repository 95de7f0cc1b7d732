"""`mriqa score` scorer of paper 1: zero-shot HQ/LQ class and SIM score of a 3-D volume.

The volume is prepared exactly as the training data (``data.volume_slices`` then
``data.prepare_slices``: conform for embedded-trained models, normalise, centre axial slices,
pad/crop/resize); each slice is compared with the reference slices at the same position
(HQ references and their simulated-motion LQ versions, stored by the train stage in
``models/ecker/references.npz``); the mean similarities are averaged over slices.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mriqa_lib.io import MriqaInputError, Volume
from mriqa_lib.methods import registry

from . import data as D
from .inference import decide, mean_similarities


class Scorer(registry.Scorer):
    """Zero-shot SimCLR quality scorer (Ecker et al.)."""

    def __init__(self, net, params, refs: dict, conform_grid: bool, lq: tuple[str, ...] = ("motion", "noise")) -> None:
        self.net, self.p, self.conform_grid = net, params, conform_grid
        self._set_bank(refs, lq)

    def _set_bank(self, refs: dict, lq: tuple[str, ...]) -> None:
        """Use the reference bank ``refs`` (keys of ``references.npz``), comparing with the ``lq`` sets."""
        self.pool = pd.DataFrame(
            {
                "participant_id": refs["participant_id"],
                "sex": refs["sex"],
                "height": refs["height"],
                "weight": refs["weight"],
            }
        )
        missing = [k for k in lq if k not in refs]
        if missing:
            raise MriqaInputError(f"reference bank has no {missing} LQ references; has {sorted(refs)}")
        # A user's scan may carry either artifact of the paper: compare with each LQ set and keep
        # the one it resembles most (the paper's test sets each used one kind).
        self.hq, self.lq_banks = refs["hq"], {k: refs[k] for k in lq}

    def use_calibration(self, folder: Path) -> None:
        """Score against the site's reference bank that ``mriqa calibrate`` wrote into ``folder``
        (``references.npz``: HQ = the site's scans, LQ = their simulated versions) from now on.

        Raises:
            MriqaInputError: the bank is missing, damaged or made with another model (names the file).
        """
        from .calibrate import load_bank

        lq = tuple(self.lq_banks)
        self._set_bank(load_bank(Path(folder), self.net.feature_dim, self.p.n_slices, lq), lq)

    def score(
        self,
        volume: Volume,
        reference: Volume | None = None,
        maps_dir: str | Path | None = None,
        *,
        sex: str | None = None,
        height: float | None = None,
        weight: float | None = None,
    ) -> dict:
        """Columns ``ecker_class`` (HQ/LQ), ``ecker_sim``, ``ecker_sim_hq``, ``ecker_sim_lq`` (the LQ
        set the scan resembles most, named in ``ecker_lq_kind``) and ``ecker_lq_margin`` =
        sim_lq - sim_hq (> 0 exactly when the class is LQ; a continuous badness).

        Args:
            volume: the 3-D image to assess.
            reference: unused (the method needs no reference scan of the same subject).
            maps_dir: unused (the method makes no voxel map).
            sex, height (cm), weight (kg): used to match the references when given; otherwise
                all reference subjects are used.
        """
        from .simclr import embed

        if volume.data.ndim != 3:
            raise MriqaInputError(f"{volume.path}: ecker needs a 3-D volume, got shape {volume.shape}")
        slices, _ = D.volume_slices(volume, self.p, self.conform_grid)
        h = embed(self.net, D.prepare_slices(slices, self.p))  # (s, d)
        n = len(self.pool) if (height is None and sex is None) else self.p.n_refs
        refs = D.match_references(self.pool, sex, height, weight, n, self.p.match_sex)
        per_kind = {
            k: mean_similarities(h, self.hq[refs].transpose(1, 0, 2), bank[refs].transpose(1, 0, 2))
            for k, bank in self.lq_banks.items()
        }
        kind = max(per_kind, key=lambda k: per_kind[k][1])
        s_hq, s_lq = per_kind[kind]
        label, sim = decide(s_hq, s_lq)
        return {
            "ecker_class": str(label),
            "ecker_sim": float(sim),
            "ecker_sim_hq": s_hq,
            "ecker_sim_lq": s_lq,
            "ecker_lq_kind": kind,
            "ecker_lq_margin": float(s_lq - s_hq),
        }


def load_scorer(model_dir: Path, settings=None) -> Scorer:
    """The scorer of a trained ``models/ecker`` folder (network, config and reference bank).

    Args:
        model_dir: folder written by ``mriqa stage ecker train``.
        settings: unused (the stored training config defines the preprocessing).
    """
    from mriqa_lib.methods.ecker.simclr import load_net

    model_dir = Path(model_dir)
    for name in ("simclr.pt", "config.json", "references.npz"):
        if not (model_dir / name).exists():
            raise MriqaInputError(f"{model_dir / name}: file not found (run `mriqa stage ecker train`)")
    net, params, cfg = load_net(model_dir)
    with np.load(model_dir / "references.npz", allow_pickle=False) as f:
        refs = {k: f[k] for k in f.files}
    return Scorer(net, params, refs, bool(cfg["conform_grid"]))
