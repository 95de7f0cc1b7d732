"""Rigid-body maths: Euler angles -> 4x4 poses, and Jenkinson's RMS deviation.

Pose convention (the one SimpleITK and TorchIO use for resampling): a pose is a 4x4 matrix
``A = [[R, t], [0, 1]]`` in mm that maps a point ``p`` of the *output* grid to the point
``R p + t`` of the input image that it samples. Rotation angles are in degrees and follow
SimpleITK's ``Euler3DTransform`` (``ComputeZYX`` off): ``R = Rz(gamma) @ Rx(alpha) @ Ry(beta)``
for ``degrees = (alpha, beta, gamma)`` about the first, second and third axis.

Jenkinson's RMS deviation (M. Jenkinson, "Measuring transformation error by RMS deviation",
FMRIB TR99MJ1): for two affine transforms ``T1``, ``T2`` the RMS of ``|T1 x - T2 x|`` over a
ball of radius ``R`` centred at ``c`` is::

    RMS = sqrt( R^2 / 5 * tr(M^T M) + (t + M c)^T (t + M c) )

with ``[[M + I, t], [0, 1]] = T1 @ inv(T2)`` (``M = A - I`` of the relative transform ``A``).
The formula is exact for any affine ``A`` (it uses E[x x^T] = R^2/5 I over the ball); the
result is in mm when ``R``, ``c`` and the translations are in mm. It is symmetric in the two
transforms for rigid motion when ``c`` is the rotation centre.

Two motion scores are built on it (see :mod:`mriqa_lib.artifacts.motion`):

* ``rms_mean_from_reference`` (paper definition used by mriqa): mean over the moved poses of each
  pose's RMS from the reference (identity) pose, radius 80 mm (Jenkinson's default);
* ``rms_successive`` (public code of Bricout et al. / Pollak et al.): mean RMS between successive
  poses of the sequence ``[identity, P1, ..., PN]``, radius 82.5 mm.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "euler_to_matrix",
    "pose_matrix",
    "pose_matrices",
    "jenkinson_rms",
    "rms_mean_from_reference",
    "rms_successive",
    "rotation_angle_deg",
    "DEFAULT_RADIUS_MM",
    "CODE_RADIUS_MM",
]

DEFAULT_RADIUS_MM = 80.0
"""Jenkinson's default head radius (mm)."""

CODE_RADIUS_MM = 82.5
"""Head radius used by the public code of paper 5 (mm)."""


def euler_to_matrix(degrees: Sequence[float] | np.ndarray) -> np.ndarray:
    """Rotation matrix (or stack) from Euler angles in degrees, SimpleITK convention.

    Args:
        degrees: ``(3,)`` or ``(N, 3)`` angles ``(alpha, beta, gamma)`` about axes 0, 1, 2.

    Returns:
        ``(3, 3)`` or ``(N, 3, 3)`` rotation matrices ``Rz(gamma) @ Rx(alpha) @ Ry(beta)``.
    """
    d = np.radians(np.asarray(degrees, dtype=np.float64))
    single = d.ndim == 1
    d = np.atleast_2d(d)
    if d.shape[-1] != 3:
        raise ValueError(f"degrees must have 3 components per pose, got shape {d.shape}")
    a, b, g = d[:, 0], d[:, 1], d[:, 2]
    ca, sa, cb, sb, cg, sg = np.cos(a), np.sin(a), np.cos(b), np.sin(b), np.cos(g), np.sin(g)
    n = d.shape[0]
    one, zero = np.ones(n), np.zeros(n)
    rx = np.stack([one, zero, zero, zero, ca, -sa, zero, sa, ca], -1).reshape(n, 3, 3)
    ry = np.stack([cb, zero, sb, zero, one, zero, -sb, zero, cb], -1).reshape(n, 3, 3)
    rz = np.stack([cg, -sg, zero, sg, cg, zero, zero, zero, one], -1).reshape(n, 3, 3)
    r = rz @ rx @ ry
    return r[0] if single else r


def pose_matrix(
    degrees: Sequence[float], translation: Sequence[float], center: Sequence[float] = (0.0, 0.0, 0.0)
) -> np.ndarray:
    """4x4 pose: rotation by ``degrees`` about ``center`` (mm), then translation (mm).

    ``A p = R (p - c) + c + t``.
    """
    return pose_matrices(np.asarray(degrees, float)[None], np.asarray(translation, float)[None], center)[0]


def pose_matrices(
    degrees: np.ndarray, translation: np.ndarray, center: Sequence[float] = (0.0, 0.0, 0.0)
) -> np.ndarray:
    """Stack of 4x4 poses from ``(N, 3)`` degrees and ``(N, 3)`` translations in mm."""
    degrees = np.atleast_2d(np.asarray(degrees, dtype=np.float64))
    translation = np.atleast_2d(np.asarray(translation, dtype=np.float64))
    if degrees.shape != translation.shape or degrees.shape[-1] != 3:
        raise ValueError(f"degrees {degrees.shape} and translation {translation.shape} must both be (N, 3)")
    c = np.asarray(center, dtype=np.float64)
    r = euler_to_matrix(degrees)
    out = np.tile(np.eye(4), (len(degrees), 1, 1))
    out[:, :3, :3] = r
    out[:, :3, 3] = translation + c - r @ c
    return out


def jenkinson_rms(
    a: np.ndarray,
    b: np.ndarray | None = None,
    radius: float = DEFAULT_RADIUS_MM,
    center: Sequence[float] = (0.0, 0.0, 0.0),
) -> np.ndarray | float:
    """Jenkinson RMS deviation (mm) between 4x4 affine(s) ``a`` and ``b`` (default identity).

    Args:
        a: ``(4, 4)`` or ``(N, 4, 4)`` affine(s), mm.
        b: same shape as ``a`` or None (identity).
        radius: radius R of the ball (mm) over which the deviation is averaged.
        center: centre c of the ball (mm) in the coordinates of the matrices.

    Returns:
        float for a single matrix, else an ``(N,)`` array.
    """
    a = np.asarray(a, dtype=np.float64)
    single = a.ndim == 2
    a = a[None] if single else a
    if b is not None:
        b = np.asarray(b, dtype=np.float64)
        b = b[None] if b.ndim == 2 else b
        a = a @ np.linalg.inv(b)
    m = a[:, :3, :3] - np.eye(3)
    t = a[:, :3, 3]
    c = np.asarray(center, dtype=np.float64)
    tc = t + m @ c
    val = radius**2 / 5.0 * np.einsum("nij,nij->n", m, m) + np.einsum("ni,ni->n", tc, tc)
    rms = np.sqrt(np.maximum(val, 0.0))
    return float(rms[0]) if single else rms


def rms_mean_from_reference(
    poses: np.ndarray, radius: float = DEFAULT_RADIUS_MM, center: Sequence[float] = (0.0, 0.0, 0.0)
) -> float:
    """Mean Jenkinson RMS (mm) of ``(N, 4, 4)`` poses from the identity (reference) pose.

    This is mriqa's "paper" motion score (Bricout et al.: "RMS deviation from all affine
    matrices used"); 0 when there are no poses.
    """
    poses = np.asarray(poses, dtype=np.float64).reshape(-1, 4, 4)
    if len(poses) == 0:
        return 0.0
    return float(np.mean(jenkinson_rms(poses, None, radius, center)))


def rms_successive(
    poses: np.ndarray, radius: float = 82.5, center: Sequence[float] = (0.0, 0.0, 0.0), prepend_identity: bool = True
) -> float:
    """Mean Jenkinson RMS (mm) between successive poses (public code of paper 5).

    Args:
        poses: ``(N, 4, 4)`` poses in their temporal order.
        radius: ball radius (mm); the public code uses 82.5 mm.
        center: ball centre (mm).
        prepend_identity: start the sequence with the identity (TorchIO's list of transforms
            starts with it: ``[identity, P1, ..., PN]``).
    """
    poses = np.asarray(poses, dtype=np.float64).reshape(-1, 4, 4)
    if prepend_identity:
        poses = np.concatenate([np.eye(4)[None], poses])
    if len(poses) < 2:
        return 0.0
    return float(np.mean(jenkinson_rms(poses[1:], poses[:-1], radius, center)))


def rotation_angle_deg(a: np.ndarray) -> float:
    """Total rotation angle (degrees) of a 4x4 or 3x3 rigid matrix (axis-angle magnitude)."""
    r = np.asarray(a, dtype=np.float64)[:3, :3]
    return float(np.degrees(np.arccos(np.clip((np.trace(r) - 1) / 2, -1.0, 1.0))))
