"""Encoding slices and volumes; loading and saving the trained encoder + flow (models/zuo)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from mriqa_lib.io import MriqaInputError, read_json, write_json
from mriqa_lib.methods.zuo.flow import DensityModel, build_flow
from mriqa_lib.methods.zuo.params import ZuoParams
from mriqa_lib.models.artifact_encoder import build_encoder

__all__ = ["encode_slices", "load_model", "save_model", "volume_m"]

MODEL_JSON = "zuo_model.json"
# params that fix the architecture and the preprocessing: stored with the weights
_FROZEN = (
    "encoder",
    "width",
    "slice_size",
    "n_centre_slices",
    "template_spacing",
    "n4",
    "registration",
    "brain_only",
    "flow_transforms",
    "flow_hidden",
    "taus",
)


@torch.no_grad()
def encode_slices(encoder: torch.nn.Module, slices: np.ndarray, batch: int = 64) -> np.ndarray:
    """m for each slice: (n, S, S) -> (n, 2) float64 (encoder in eval mode)."""
    encoder.eval()
    x = torch.as_tensor(np.asarray(slices, dtype=np.float32)).unsqueeze(1)
    return torch.cat([encoder(x[i : i + batch]) for i in range(0, len(x), batch)]).double().numpy()


def volume_m(encoder: torch.nn.Module, centre: np.ndarray) -> np.ndarray:
    """Volume-level m = mean of m over the centre axial slices (paper: 20), shape (2,)."""
    return encode_slices(encoder, centre).mean(axis=0)


def save_model(
    out: Path, encoder: torch.nn.Module, density: DensityModel, p: ZuoParams, extra: dict | None = None
) -> None:
    """encoder.pt and flow.pt (state dicts, loadable with weights_only=True) + zuo_model.json."""
    from mriqa_lib.io import atomic_path

    out.mkdir(parents=True, exist_ok=True)
    for name, module in (("encoder.pt", encoder), ("flow.pt", density.flow)):
        with atomic_path(out / name) as tmp:
            torch.save(module.state_dict(), tmp)
    frozen = {k: getattr(p, k) for k in _FROZEN}
    write_json(out / MODEL_JSON, {"params": frozen, **density.state(), **(extra or {})})


def load_model(model_dir: str | Path, p: ZuoParams | None = None) -> tuple[torch.nn.Module, DensityModel, ZuoParams]:
    """Encoder, density model and the params they were trained with (architecture and
    preprocessing keys come from zuo_model.json, the rest from ``p``)."""
    model_dir = Path(model_dir)
    meta = read_json(model_dir / MODEL_JSON)
    base = (p or ZuoParams()).model_dump()
    base.update(meta["params"])
    q = ZuoParams(**base)
    encoder = build_encoder(q.encoder, q.width)
    flow = build_flow(q)
    for name, module in (("encoder.pt", encoder), ("flow.pt", flow)):
        path = model_dir / name
        if not path.exists():
            raise MriqaInputError(f"{path}: file not found (run `mriqa stage zuo train`)")
        module.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    encoder.eval()
    return encoder, DensityModel(flow, meta["mean"], meta["std"], meta["thresholds"]), q
