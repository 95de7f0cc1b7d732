"""Data of paper 3: the working grid, volume preparation, simulated artefacts, embedded pairs.

Every volume (training scan, test scan, test-retest pair, a user's scan in ``mriqa score``) goes
through :func:`prepare_volume`: ``conform`` to the 2 mm reference grid, block-average to
``grid_mm``, scale with ``normalise`` (0.5 / 99.5 percentiles of the foreground -> 0 / 1).
Artefacts are applied to the prepared clean image, so input and target share one scale.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mriqa_lib.artifacts import apply_artifact
from mriqa_lib.data.preprocess import conform, normalise
from mriqa_lib.data.template import REF_AFFINE, REF_SHAPE, REF_SPACING
from mriqa_lib.io import Volume

__all__ = [
    "corrupt_as_scanned",
    "grid_factor",
    "work_grid",
    "block_mean",
    "prepare_volume",
    "prepare_gm",
    "sample_seed",
    "sample_corruption",
    "corrupt",
    "misalign",
]


def grid_factor(grid_mm: float) -> int:
    """Block size (in 2 mm reference voxels) of the working grid."""
    return int(round(grid_mm / 2.0))


def work_grid(grid_mm: float) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Affine and shape of the working grid: the reference grid block-averaged by ``grid_mm / 2``.

    Block ``i`` covers reference voxels ``f i .. f i + f - 1``; its centre is at reference index
    ``f i + (f - 1) / 2``.
    """
    f = grid_factor(grid_mm)
    scale = np.diag([f, f, f, 1.0]).astype(np.float64)
    scale[:3, 3] = (f - 1) / 2.0
    shape = tuple(int(n // f) for n in REF_SHAPE)
    return REF_AFFINE @ scale, shape  # type: ignore[return-value]


def block_mean(data: np.ndarray, f: int) -> np.ndarray:
    """Mean over ``f x f x f`` blocks (trailing voxels that do not fill a block are dropped)."""
    if f == 1:
        return np.asarray(data, np.float32)
    s = [n // f for n in data.shape]
    d = np.asarray(data, np.float32)[: s[0] * f, : s[1] * f, : s[2] * f]
    return d.reshape(s[0], f, s[1], f, s[2], f).mean(axis=(1, 3, 5)).astype(np.float32)


def prepare_volume(volume: Volume, grid_mm: float) -> Volume:
    """Conform to the reference grid, block-average to ``grid_mm``, normalise to about [0, 1].

    Args:
        volume: a T1w volume in (or affinely registered to) MNI space.
        grid_mm: working voxel size in mm (multiple of 2).
    """
    ref = conform(volume)
    affine, _ = work_grid(grid_mm)
    return Volume(normalise(block_mean(ref.data, grid_factor(grid_mm))), affine, volume.path)


def prepare_gm(gm: Volume, grid_mm: float) -> np.ndarray:
    """Binary grey-matter label on the working grid (probability > 0.5 after block averaging)."""
    ref = conform(gm)
    return (block_mean(ref.data, grid_factor(grid_mm)) > 0.5).astype(np.uint8)


def sample_seed(*keys: int) -> int:
    """A 31-bit seed derived from integer keys (independent streams per key tuple)."""
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1)[0] % (2**31 - 1))


def _range_value(p: Any, name: str, u: float) -> tuple[float, dict[str, Any]]:
    """Severity at position ``u`` in [0, 1] of artefact ``name``'s training range (0 = mildest)."""
    if name == "motion":
        lo, hi = p.motion_rms_mm
    elif name == "ghosting":
        lo, hi = p.ghosting_range
    elif name == "spike":
        lo, hi = p.spike_range
    elif name == "rician_noise":
        lo, hi = p.noise_snr_db
        return 0.0, {"snr_db": float(hi - u * (hi - lo))}  # high SNR = mild
    elif name == "regional_noise":  # a random box (1/3 of each axis) of Rician noise: teaches local noise
        lo, hi = p.noise_snr_db
        return float(10 ** (-(hi - u * (hi - lo)) / 20)), {}
    else:
        raise ValueError(f"unknown artefact {name!r}")
    return float(lo + u * (hi - lo)), {}


def sample_corruption(
    p: Any,
    rng: np.random.Generator,
    scale: tuple[float, float] = (0.0, 1.0),
    allow_clean: bool = True,
    weighted: bool = True,
) -> dict[str, Any]:
    """Draw an artefact name, severity and seed from the ``shaw`` params.

    Args:
        p: ``ShawParams``.
        rng: generator.
        scale: the severity is drawn uniformly in this sub-interval of the training range.
        allow_clean: with probability ``p.clean_fraction`` return ``{"artefact": "none"}``.
        weighted: draw the artefact with ``p.artefact_weights`` (training); False = equally often,
            without ``regional_noise`` (the embedded test-retest pairs).
    """
    if allow_clean and rng.random() < p.clean_fraction:
        return {"artefact": "none", "severity": 0.0, "seed": 0, "kwargs": {}}
    if weighted:
        names = list(p.artefacts)
        w = np.asarray(p.artefact_weights, float) if p.artefact_weights else np.ones(len(names))
    else:  # test-retest stand-ins: whole-image acquisition artefacts, equally often
        names = [a for a in p.artefacts if a != "regional_noise"] or list(p.artefacts)
        w = np.ones(len(names))
    name = names[int(rng.choice(len(names), p=w / w.sum()))]
    u = float(rng.uniform(*scale))
    sev, kw = _range_value(p, name, u)
    return {"artefact": name, "severity": sev, "seed": int(rng.integers(0, 2**31 - 1)), "kwargs": kw}


def corrupt(image: np.ndarray, spec: dict[str, Any], spacing: float) -> tuple[np.ndarray, dict[str, Any]]:
    """Apply a corruption drawn by :func:`sample_corruption` (``"none"`` returns a copy)."""
    if spec["artefact"] == "none":
        return np.array(image, np.float32, copy=True), {"artefact": "none", "severity": 0.0}
    kw = dict(spec.get("kwargs", {}))
    sev = None if "snr_db" in kw else spec["severity"]
    out, info = apply_artifact(spec["artefact"], image, sev, seed=spec["seed"], spacing=(spacing,) * 3, **kw)
    return out, info


def corrupt_as_scanned(
    reference: np.ndarray, spec: dict[str, Any], grid_mm: float
) -> tuple[np.ndarray, dict[str, Any]]:
    """A training input made the way a scored scan is prepared: the corruption on the 2 mm reference
    grid (``conform``-ed clean scan), then :func:`prepare_volume`'s block mean and normalisation.

    A coarser working grid then sees an artefact as it sees one in a scanned volume: a 4 mm block
    mean keeps about a third of a 2 mm scan's noise and the central k-space of its motion, while an
    artefact drawn on the 4 mm grid itself is several times stronger than any scored scan shows.
    """
    out, info = corrupt(reference, spec, float(REF_SPACING))
    return normalise(block_mean(out, grid_factor(grid_mm))), info


def misalign(volume: Volume, rng: np.random.Generator, max_deg: float, max_mm: float) -> tuple[Volume, dict[str, Any]]:
    """The same scan in a slightly different head position (rigid, about the grid centre).

    Angles uniform in ``[-max_deg, max_deg]`` and translations in ``[-max_mm, max_mm]`` per axis;
    resampled on the same grid with linear interpolation.
    """
    from scipy import ndimage

    from mriqa_lib.artifacts.rigid import euler_to_matrix

    deg = rng.uniform(-max_deg, max_deg, 3)
    mm = rng.uniform(-max_mm, max_mm, 3)
    spacing = volume.spacing
    r = euler_to_matrix(deg)
    centre = (np.array(volume.shape) - 1) / 2.0
    # output voxel v samples input voxel  S^-1 R S (v - c) + c + S^-1 t
    s = np.diag(spacing)
    m = np.linalg.inv(s) @ r @ s
    offset = centre - m @ centre + mm / spacing
    data = ndimage.affine_transform(volume.data, m, offset=offset, order=1, mode="constant", cval=0.0)
    return Volume(data.astype(np.float32), volume.affine, volume.path), {
        "misalign_deg": deg.round(3).tolist(),
        "misalign_mm": mm.round(3).tolist(),
    }
