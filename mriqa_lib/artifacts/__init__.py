"""Artifact simulation: every degradation used by the five papers, with realised parameters.

Every artifact is a function ``f(image, severity=None, seed=0, *, spacing=None, **params)``
returning ``(float32 image, dict of realised parameters)``; the dict always holds a scalar
``severity`` (0 = the input unchanged). See ``_common`` for the shared conventions and
``REGISTRY`` / ``list_artifacts()`` for names, severity meanings and units.

    >>> from mriqa_lib.artifacts import apply_artifact
    >>> out, info = apply_artifact("rician_noise", volume, snr_db=0.0, seed=1)
    >>> out, info = apply_artifact("motion", volume, severity=2.0, seed=3, spacing=(2, 2, 2))

Modules (import them directly for the helpers): ``rigid`` (poses, Jenkinson RMS), ``motion``,
``noise``, ``kspace`` (FFTs, masks, coils), ``intensity``, ``geometry``, ``masks`` (inpainting).
"""

from __future__ import annotations

from . import geometry, intensity, kspace, masks, motion, noise, rigid
from .geometry import pixel_shift, registration_error, remove_side, wrap_around
from .intensity import bias_field, blur, gamma_contrast, non_t1w_contrast
from .kspace import (
    coil_sensitivities,
    equispaced_mask,
    fft2c,
    fftnc,
    ghosting,
    ifft2c,
    ifftnc,
    random_mask,
    rss,
    simulate_multicoil,
    spike,
    undersample,
    zero_filled,
)
from .masks import inpainting_mask, patch_dropout
from .motion import respiratory_motion, rigid_motion, sample_motion_for_rms
from .noise import gaussian_noise, regional_noise, rician_noise, snr_levels_db
from .registry import REGISTRY, ArtifactSpec, apply_artifact, format_artifact_table, get_artifact, list_artifacts
from .rigid import jenkinson_rms, rms_mean_from_reference, rms_successive

__all__ = [
    "REGISTRY",
    "ArtifactSpec",
    "apply_artifact",
    "list_artifacts",
    "get_artifact",
    "format_artifact_table",
    "rigid_motion",
    "respiratory_motion",
    "sample_motion_for_rms",
    "jenkinson_rms",
    "rms_mean_from_reference",
    "rms_successive",
    "gaussian_noise",
    "rician_noise",
    "regional_noise",
    "snr_levels_db",
    "ghosting",
    "spike",
    "bias_field",
    "blur",
    "non_t1w_contrast",
    "gamma_contrast",
    "wrap_around",
    "remove_side",
    "registration_error",
    "pixel_shift",
    "fftnc",
    "ifftnc",
    "fft2c",
    "ifft2c",
    "random_mask",
    "equispaced_mask",
    "zero_filled",
    "coil_sensitivities",
    "simulate_multicoil",
    "rss",
    "undersample",
    "inpainting_mask",
    "patch_dropout",
    "geometry",
    "intensity",
    "kspace",
    "masks",
    "motion",
    "noise",
    "rigid",
]
