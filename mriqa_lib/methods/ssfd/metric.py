"""SSFD and the VGG-16 perceptual baseline (paper 4).

``ssfd(reference, image, layer)`` = mean squared difference between the encoder features (level
``layer``, second ReLU) of the two images, each magnitude image first normalised to zero mean and
unit variance on its own (as the public SSFD code). One number per image pair; it is symmetric
and ``ssfd(x, x) == 0``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mriqa_lib.io import MriqaInputError

INPAINT_FILE = "inpaint.pt"
INPAINT_CONFIG = "inpaint.json"
DEFAULT_MODEL_DIR = Path("models/ssfd")


def _as_batch(x) -> torch.Tensor:  # noqa: F821
    """(H, W) or (N, H, W) magnitude (numpy or torch; complex -> magnitude) -> float32 (N, 1, H', W'),
    z-scored per image, then zero-padded to multiples of 16."""
    import torch

    t = torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x)
    if t.is_complex():
        t = t.abs()
    t = t.float()
    if t.ndim == 2:
        t = t[None]
    if t.ndim == 4 and t.shape[1] == 1:
        t = t[:, 0]
    if t.ndim != 3:
        raise ValueError(f"ssfd: expected (H, W) or (N, H, W) images, got shape {tuple(t.shape)}")
    flat = t.reshape(len(t), -1)
    mean = flat.mean(dim=1)[:, None, None]
    std = flat.std(dim=1)[:, None, None].clamp_min(1e-8)
    t = (t - mean) / std
    rows, cols = t.shape[-2:]
    pr, pc = (-rows) % 16, (-cols) % 16
    if pr or pc:  # pad after z-scoring, with the mean (0), so the padding depends on nothing
        t = torch.nn.functional.pad(t, (pc // 2, pc - pc // 2, pr // 2, pr - pr // 2))
    return t[:, None]


def load_encoder(model_dir: str | Path = DEFAULT_MODEL_DIR):
    """The trained inpainting U-Net (``model_dir/inpaint.pt`` + ``inpaint.json``), in eval mode."""
    import torch

    from mriqa_lib.models.ssfd_unet import SsfdUNet

    model_dir = Path(model_dir)
    wpath, cpath = model_dir / INPAINT_FILE, model_dir / INPAINT_CONFIG
    for p in (wpath, cpath):
        if not p.exists():
            raise MriqaInputError(f"{p}: SSFD model not found (run `mriqa stage ssfd train`)")
    cfg = json.loads(cpath.read_text())
    net = SsfdUNet(tuple(cfg["channels"]), int(cfg["groups"]))
    net.load_state_dict(torch.load(wpath, map_location="cpu", weights_only=True))
    return net.eval()


def _check(reference, image, layers) -> list[int]:
    """Same shapes and encoder levels 1-5 (ValueError otherwise); the levels as ints."""
    if np.shape(reference) != np.shape(image):
        raise ValueError(f"ssfd: shapes differ {np.shape(reference)} vs {np.shape(image)}")
    layers = [int(l) for l in layers]
    if not layers or not all(1 <= l <= 5 for l in layers):
        raise ValueError(f"ssfd: layer must be 1-5, got {layers}")
    return layers


def ssfd(reference, image, layer: int = 4, encoder=None, batch_size: int = 64) -> float | np.ndarray:
    """Self-supervised feature distance between ``reference`` and ``image``.

    Args:
        reference, image: magnitude images, (H, W) or (N, H, W) (numpy or torch; same shape);
            any intensity scale (each is z-scored on its own).
        layer: encoder level 1-5 (``block{layer}_relu2`` of the public code; 4 = its default).
        encoder: an :class:`~mriqa_lib.models.ssfd_unet.SsfdUNet` (default: the trained model in
            ``models/ssfd``).
        batch_size: image pairs per forward pass (memory is bounded by it, see :func:`ssfd_layers`).

    Returns:
        float for one pair, else an (N,) array: mean over channels and pixels of the squared
        feature difference.
    """
    _check(reference, image, [layer])
    encoder = load_encoder() if encoder is None else encoder
    d = ssfd_layers(reference, image, [int(layer)], encoder, batch_size)[int(layer)]
    return float(d[0]) if np.ndim(reference) == 2 else d


def ssfd_layers(reference, image, layers, encoder, batch_size: int = 64) -> dict[int, np.ndarray]:
    """SSFD at several encoder levels: ``{layer: (N,) distances}``, streamed.

    Each batch of ``batch_size`` references and the matching images is z-scored, encoded (one
    forward pass each, up to the deepest level), reduced to one distance per pair and level, and
    its features dropped: peak memory is set by ``batch_size``, not by N (the paper's 7,135 slices
    of 320 x 320 hold ~220 GB of level 1-4 features).

    Args:
        reference, image: (H, W) or (N, H, W) magnitude images of the same shape (numpy or torch).
        layers: encoder levels (1-5).
        encoder: an :class:`~mriqa_lib.models.ssfd_unet.SsfdUNet` (its device is used).
        batch_size: image pairs per forward pass.
    """
    import torch

    layers = _check(reference, image, layers)
    if np.ndim(reference) == 2:
        reference, image = reference[None], image[None]
    top, device = max(layers), next(encoder.parameters()).device
    out: dict[int, list] = {l: [] for l in layers}
    with torch.no_grad():
        for i in range(0, len(reference), batch_size):
            _, fa = encoder.encoder(_as_batch(reference[i : i + batch_size]).to(device), upto=top)
            _, fb = encoder.encoder(_as_batch(image[i : i + batch_size]).to(device), upto=top)
            for l in layers:
                out[l].append(((fa[l - 1] - fb[l - 1]) ** 2).flatten(1).mean(dim=1).cpu())
            del fa, fb
    return {l: torch.cat(v).double().numpy() for l, v in out.items()}


# ------------------------------------------------------------------------------------------------
# VGG-16 perceptual distance (baseline; only with a user-supplied weights file)
# ------------------------------------------------------------------------------------------------
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def load_vgg16(path: str | Path):
    """VGG-16 feature stack with weights from ``path`` (a state dict saved by torch; keys
    ``features.N.weight``/``bias`` as torchvision, other keys such as ``classifier.*`` ignored).

    Raises:
        MriqaInputError: missing file, not a state dict, or missing/mis-shaped convolution weights
            (params key ``ssfd.vgg_weights``).
    """
    import torch

    from mriqa_lib.models.ssfd_unet import VGG16Features

    path = Path(path)
    if not path.exists():
        raise MriqaInputError(f"{path}: VGG-16 weights not found (params key ssfd.vgg_weights)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several unpickling error types
        raise MriqaInputError(f"{path}: cannot load VGG-16 weights with weights_only=True ({exc})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise MriqaInputError(f"{path}: expected a state dict, got {type(state).__name__}")
    net = VGG16Features()
    wanted = net.state_dict()
    feats = {k: v for k, v in state.items() if k in wanted}
    missing = [k for k in wanted if k not in feats]
    if missing:
        raise MriqaInputError(
            f"{path}: VGG-16 state dict lacks {len(missing)} keys, e.g. {missing[:3]} "
            "(expected torchvision names features.N.weight)"
        )
    bad = [k for k in wanted if tuple(feats[k].shape) != tuple(wanted[k].shape)]
    if bad:
        raise MriqaInputError(f"{path}: mis-shaped VGG-16 weights, e.g. {bad[0]} {tuple(feats[bad[0]].shape)}")
    net.load_state_dict(feats)
    return net.eval()


def vgg_distance(reference, image, vgg, batch_size: int = 16) -> np.ndarray:
    """VGG-16 perceptual distance: sum over relu1_2, relu2_2, relu3_3, relu4_3 of the mean squared
    feature difference. Images (N, H, W) are scaled to [0, 1] by the reference's range, repeated to
    3 channels and ImageNet-normalised."""
    import torch

    ref = np.asarray(reference, dtype=np.float32)
    img = np.asarray(image, dtype=np.float32)
    if ref.ndim == 2:
        ref, img = ref[None], img[None]
    lo = ref.reshape(len(ref), -1).min(1)[:, None, None]
    hi = ref.reshape(len(ref), -1).max(1)[:, None, None]
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)

    def prep(x: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy((x - lo) / np.maximum(hi - lo, 1e-8))[:, None].repeat(1, 3, 1, 1)
        return (t - mean) / std

    a, b = prep(ref), prep(img)
    out = []
    with torch.no_grad():
        for i in range(0, len(a), batch_size):
            fa, fb = vgg.taps(a[i : i + batch_size]), vgg.taps(b[i : i + batch_size])
            out.append(sum(((x - y) ** 2).flatten(1).mean(1) for x, y in zip(fa, fb)))
    return torch.cat(out).double().numpy()
