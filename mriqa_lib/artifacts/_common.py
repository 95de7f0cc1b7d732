"""Shared helpers of the artifact modules (input checks, seeds, spacing, foreground, output).

Conventions used by every artifact function in this package:

* signature ``f(image, severity=None, seed=0, *, spacing=None, **params) -> (image, params)``;
* ``image`` is a 2-D ``(H, W)`` or 3-D ``(X, Y, Z)`` real array (any float/int dtype);
  the result is a new float32 array of the same shape (the input is never modified);
* ``severity`` is a continuous knob, ``0`` returns an exact copy of the input, larger is worse;
  ``None`` means the function's documented default;
* ``seed`` (int) feeds a private :func:`numpy.random.default_rng`; the global numpy / torch
  random states are never used or changed, so the same seed gives the same bytes;
* random draws are made at unit scale and multiplied by the severity where possible, so
  sweeping the severity with a fixed seed moves continuously along one random direction;
* ``spacing`` is the voxel size in mm per array axis (default 1 mm) and is used wherever a
  parameter has a physical unit (mm);
* the returned dict is JSON-serialisable (numbers, strings, lists) and always holds one scalar
  ``severity`` (the realised value, in the unit listed by the registry).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "as_image",
    "make_rng",
    "parse_spacing",
    "foreground_mask",
    "finish",
    "identity_result",
    "jsonable",
    "resolve_axis",
]


def as_image(image: Any, dims: Sequence[int] = (2, 3), name: str = "image") -> np.ndarray:
    """Return ``image`` as a float32 array, checking dimensionality and finiteness.

    Args:
        image: array-like 2-D or 3-D image.
        dims: accepted numbers of dimensions.
        name: used in error messages.

    Raises:
        ValueError: wrong dimensionality, empty, or non-finite values.
    """
    arr = np.asarray(image)
    if np.iscomplexobj(arr):
        raise ValueError(f"{name}: expected a real image, got complex dtype {arr.dtype}")
    if arr.ndim not in tuple(dims):
        raise ValueError(f"{name}: expected a {' or '.join(f'{d}-D' for d in dims)} image, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name}: empty image")
    arr = arr.astype(np.float32, copy=False)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: contains NaN or Inf")
    return arr


def make_rng(seed: int | np.integer) -> np.random.Generator:
    """A private generator for ``seed`` (an int); never touches global random state."""
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    return np.random.default_rng(int(seed))


def parse_spacing(spacing: Any, ndim: int) -> np.ndarray:
    """Voxel size in mm per axis as a float64 array of length ``ndim`` (default 1 mm)."""
    if spacing is None:
        return np.ones(ndim)
    sp = np.asarray(spacing, dtype=np.float64).ravel()
    if sp.size == 1:
        sp = np.repeat(sp, ndim)
    if sp.size != ndim or np.any(~np.isfinite(sp)) or np.any(sp <= 0):
        raise ValueError(f"spacing must be {ndim} positive numbers (mm), got {spacing!r}")
    return sp


def resolve_axis(axis: int, ndim: int, name: str = "axis") -> int:
    """Normalise a possibly negative axis index, with a clear error when out of range."""
    axis = int(axis)
    if not -ndim <= axis < ndim:
        raise ValueError(f"{name}={axis} is out of range for a {ndim}-D image")
    return axis % ndim


def foreground_mask(image: np.ndarray, fraction: float = 0.1) -> np.ndarray:
    """Boolean foreground: voxels above ``min + fraction * (max - min)``.

    For the usual magnitude images (background ~ 0) this is ``image > fraction * max``.
    """
    lo, hi = float(image.min()), float(image.max())
    return image > lo + fraction * (hi - lo)


def check_severity(severity: float, low: float = 0.0, high: float = np.inf, name: str = "severity") -> float:
    """Return ``severity`` as float, raising ValueError outside ``[low, high]`` or non-finite."""
    s = float(severity)
    if not np.isfinite(s) or s < low or s > high:
        raise ValueError(f"{name}={severity!r} is outside the valid range [{low}, {high}]")
    return s


def jsonable(obj: Any) -> Any:
    """Recursively convert numpy scalars / arrays / tuples into JSON-friendly Python objects."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    return obj


def finish(out: np.ndarray, params: dict) -> tuple[np.ndarray, dict]:
    """Cast the result to float32 (C-contiguous) and make the params JSON-friendly."""
    out = np.ascontiguousarray(out, dtype=np.float32)
    params = jsonable(params)
    params["severity"] = float(params["severity"])
    return out, params


def identity_result(image: np.ndarray, params: dict) -> tuple[np.ndarray, dict]:
    """Exact copy of the input (severity 0) with its params."""
    return finish(np.array(image, dtype=np.float32, copy=True), params)


def complex_to_real(z: np.ndarray, output: str, image: np.ndarray) -> tuple[np.ndarray, str]:
    """Turn a complex k-space-derived image back into a real image.

    ``output="magnitude"`` takes ``|z|`` (what a scanner shows); ``"real"`` takes the real part
    (TorchIO's choice); ``"auto"`` uses magnitude when the input image is non-negative (magnitude
    images) and the real part otherwise (e.g. z-scored images), so that small severities stay
    close to the input in both cases.
    """
    if output == "auto":
        output = "magnitude" if float(image.min()) >= 0 else "real"
    if output == "magnitude":
        return np.abs(z), output
    if output == "real":
        return z.real, output
    raise ValueError(f"output must be 'auto', 'magnitude' or 'real', got {output!r}")
