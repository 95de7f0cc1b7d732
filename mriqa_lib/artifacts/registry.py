"""Registry of artifacts: name -> function, severity meaning, unit, default, valid range, dims."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import geometry, intensity, kspace, masks, motion, noise
from ._common import as_image, parse_spacing

__all__ = ["ArtifactSpec", "REGISTRY", "apply_artifact", "list_artifacts", "format_artifact_table", "get_artifact"]


@dataclass(frozen=True)
class ArtifactSpec:
    """One registered artifact.

    Attributes:
        name: registry key (used by ``mriqa corrupt --artifact``).
        func: ``func(image, severity=None, seed=0, *, spacing=None, **params) -> (image, params)``.
        severity: what the severity knob means.
        unit: its unit.
        default: default severity.
        valid_range: inclusive ``(low, high)`` of accepted severities.
        dims: supported image dimensionalities.
        papers: papers that use it (1-5, see PAPERS.md).
        description: one line.
    """

    name: str
    func: Callable[..., tuple[np.ndarray, dict]]
    severity: str
    unit: str
    default: float
    valid_range: tuple[float, float]
    dims: tuple[int, ...] = (2, 3)
    papers: tuple[int, ...] = ()
    description: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def parameters(self) -> list[str]:
        """Names of the keyword parameters the function accepts besides severity/seed/spacing."""
        sig = inspect.signature(self.func)
        return [p for p in sig.parameters if p not in ("image", "severity", "seed", "spacing")]


_SPECS = [
    ArtifactSpec(
        "motion",
        motion.rigid_motion,
        "Jenkinson RMS deviation of the motion poses (mean over poses "
        "from the reference pose, radius 80 mm; rms_definition='code' for paper 5's successive-pose "
        "variant, radius 82.5 mm)",
        "mm",
        1.0,
        (0.0, 20.0),
        (2, 3),
        (1, 2, 3, 5),
        "rigid k-space motion (TorchIO Motion), target RMS reached by rejection sampling",
    ),
    ArtifactSpec(
        "respiratory",
        motion.respiratory_motion,
        "amplitude of the periodic displacement",
        "mm",
        5.0,
        (0.0, 200.0),
        (2, 3),
        (1,),
        "free-breathing motion: sinusoidal translation per phase-encoding line in k-space",
    ),
    ArtifactSpec(
        "gaussian_noise",
        noise.gaussian_noise,
        "noise standard deviation relative to the image range (max - min)",
        "fraction of range",
        0.25,
        (0.0, 100.0),
        (2, 3),
        (1, 2, 4),
        "additive Gaussian noise (paper 1: N(0, 0.25) on [0, 1] images)",
    ),
    ArtifactSpec(
        "rician_noise",
        noise.rician_noise,
        "sigma / mean foreground signal = 10^(-SNR_dB/20) (0.316 = 10 dB, 1 = 0 dB, 3.16 = -10 dB); or pass snr_db",
        "fraction of mean foreground signal",
        0.316227766,
        (0.0, 1000.0),
        (2, 3),
        (2, 3),
        "Rician noise at a target SNR",
    ),
    ArtifactSpec(
        "regional_noise",
        noise.regional_noise,
        "sigma / mean foreground signal inside the region (box or mask)",
        "fraction of mean foreground signal",
        1.0,
        (0.0, 1000.0),
        (2, 3),
        (3,),
        "partial noise in a box (default: 1/3 of each axis, on the foreground) or a mask",
    ),
    ArtifactSpec(
        "ghosting",
        kspace.ghosting,
        "attenuation of every n-th k-space line (ghost intensity)",
        "fraction (0-1)",
        0.5,
        (0.0, 1.0),
        (2, 3),
        (2, 3, 5),
        "phase-encoding ghosts (TorchIO model)",
    ),
    ArtifactSpec(
        "spike",
        kspace.spike,
        "spike amplitude relative to the k-space maximum",
        "fraction of max|k|",
        0.5,
        (0.0, 100.0),
        (2, 3),
        (3,),
        "k-space spike (stripes / herringbone)",
    ),
    ArtifactSpec(
        "bias_field",
        intensity.bias_field,
        "maximum |coefficient| of the cubic log-field polynomial (TorchIO RandomBiasField)",
        "log-intensity",
        0.5,
        (0.0, 10.0),
        (2, 3),
        (2, 5),
        "smooth multiplicative intensity non-uniformity",
    ),
    ArtifactSpec(
        "blur", intensity.blur, "Gaussian standard deviation", "mm", 1.0, (0.0, 100.0), (2, 3), (4,), "Gaussian blur"
    ),
    ArtifactSpec(
        "wrap_around",
        geometry.wrap_around,
        "fraction of the FOV removed along the aliasing axis",
        "fraction of FOV",
        0.2,
        (0.0, 0.9),
        (2, 3),
        (2,),
        "FOV aliasing: tissue outside the FOV folds in",
    ),
    ArtifactSpec(
        "non_t1w_contrast",
        intensity.non_t1w_contrast,
        "blend weight towards inverted (T2w-like) contrast",
        "fraction (0-1)",
        1.0,
        (0.0, 1.0),
        (2, 3),
        (2,),
        "non-T1w (T2w-like) contrast",
    ),
    ArtifactSpec(
        "gamma",
        intensity.gamma_contrast,
        "|log gamma| of the intensity power law",
        "log-gamma",
        0.3,
        (0.0, 5.0),
        (2, 3),
        (5,),
        "gamma contrast change (TorchIO RandomGamma)",
    ),
    ArtifactSpec(
        "remove_side",
        geometry.remove_side,
        "fraction of the head extent removed from one side",
        "fraction of head extent",
        0.3,
        (0.0, 1.0),
        (2, 3),
        (2,),
        "one side of the head removed",
    ),
    ArtifactSpec(
        "registration_error",
        geometry.registration_error,
        "Jenkinson RMS deviation of the rigid misalignment (radius 80 mm)",
        "mm",
        4.0,
        (0.0, 96.0),
        (2, 3),
        (2,),
        "affine misalignment (registration error)",
    ),
    ArtifactSpec(
        "undersample",
        kspace.undersample,
        "fraction of phase-encoding lines skipped, 1 - 1/R (0.75 = 4x); or pass acceleration",
        "fraction of lines",
        0.75,
        (0.0, 0.99),
        (2, 3),
        (4,),
        "fastMRI-style Cartesian undersampling, zero-filled (optionally multi-coil RSS)",
    ),
    ArtifactSpec(
        "pixel_shift",
        geometry.pixel_shift,
        "translation length",
        "pixels",
        1.0,
        (0.0, 1e4),
        (2, 3),
        (4,),
        "band-limited (Fourier) image shift",
    ),
    ArtifactSpec(
        "patch_dropout",
        masks.patch_dropout,
        "fraction of the image zero-filled by 16x16 patches (Poisson-disc placed)",
        "fraction of pixels",
        0.25,
        (0.0, 0.5),
        (2, 3),
        (4,),
        "inpainting pretext corruption (3-D: same mask on every slice)",
    ),
]

REGISTRY: dict[str, ArtifactSpec] = {s.name: s for s in _SPECS}
"""All artifacts by name."""


def get_artifact(name: str) -> ArtifactSpec:
    """The spec of artifact ``name``; KeyError listing the valid names otherwise."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown artifact {name!r}; choose one of: {', '.join(REGISTRY)}") from None


def list_artifacts() -> list[ArtifactSpec]:
    """All registered artifact specs, in registry order."""
    return list(REGISTRY.values())


def apply_artifact(
    name: str, image: Any, severity: float | None = None, seed: int = 0, **params: Any
) -> tuple[np.ndarray, dict]:
    """Apply artifact ``name`` to a 2-D or 3-D image.

    Args:
        name: registry name (see :func:`list_artifacts`).
        image: 2-D or 3-D real array.
        severity: the artifact's severity (unit in its spec; 0 = identity; None = default).
        seed: random seed (int); the same seed gives the same bytes.
        **params: artifact-specific keyword parameters (e.g. ``spacing`` in mm, ``snr_db``).

    Returns:
        ``(image float32, params)`` where params holds the realised parameters, the scalar
        ``severity``, and ``artifact``, ``seed``, ``unit``.

    Raises:
        KeyError: unknown name. ValueError: unsupported dimensionality, severity outside the
        valid range, or bad parameters. TypeError: unknown parameter names.
    """
    spec = get_artifact(name)
    x = as_image(image, dims=spec.dims)
    if severity is not None:
        lo, hi = spec.valid_range
        s = float(severity)
        if not np.isfinite(s) or s < lo or s > hi:
            raise ValueError(f"{name}: severity {severity} outside the valid range [{lo}, {hi}] ({spec.unit})")
    unknown = [p for p in params if p not in spec.parameters and p != "spacing"]
    if unknown:
        raise TypeError(f"{name}: unknown parameter(s) {unknown}; accepted: {spec.parameters + ['spacing']}")
    if "spacing" in params and params["spacing"] is not None:
        params["spacing"] = parse_spacing(params["spacing"], x.ndim).tolist()
    out, realised = spec.func(x, severity, seed, **params)
    realised = {"artifact": name, "seed": int(seed), "unit": spec.unit, **realised}
    return out, realised


def format_artifact_table() -> str:
    """Plain-text table of all artifacts: name, dims, default, range, unit and severity meaning."""
    rows = [("name", "dims", "default", "range", "unit", "severity means")]
    for s in list_artifacts():
        rows.append(
            (
                s.name,
                "/".join(f"{d}D" for d in s.dims),
                f"{s.default:g}",
                f"[{s.valid_range[0]:g}, {s.valid_range[1]:g}]",
                s.unit,
                s.severity,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r[:5], widths)) + "  " + r[5] for r in rows]
    return "\n".join(lines)
