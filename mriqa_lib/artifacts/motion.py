"""Motion artifacts: rigid k-space motion (TorchIO underneath) and respiratory (periodic) motion.

Rigid motion (:func:`rigid_motion`)
-----------------------------------
TorchIO's :class:`torchio.Motion` (Shaw et al., MIDL 2019) resamples the image once per pose
and fills consecutive segments of k-space from the different poses. Facts of TorchIO 1.2 that
matter here (read from its source):

* the poses are independent of each other (each is relative to the original image, not
  composed); TorchIO builds ``[identity, P1, ..., PN]`` and, although it sets the rotation
  centre on the image centre, it rebuilds each ``Euler3DTransform`` from matrix + translation
  *without* the centre, so every rotation is about the **world origin**. mriqa therefore hands
  TorchIO an affine whose world origin is the geometric centre of the grid: rotations are about
  the image centre;
* the affine given to TorchIO here makes SimpleITK's (LPS) physical frame equal to the array's
  own axes in mm: point ``p = spacing * (index - (shape - 1) / 2)``. Poses, angles and
  translations are recorded in this frame (see :mod:`.rigid` for the pose convention);
* k-space is split along the **last array axis** at ``int(N * time)`` for the sorted ``times``;
  the segment that contains the k-space centre (time 0.5) takes the identity pose and the pose
  that would have been there takes the first segment (``Motion.sort_spectra``);
* the result is the real part of the inverse FFT; out-of-field voxels take the image minimum;
* TorchIO's own 2-D path (``(W, H, 1)`` tensors) splits k-space along the singleton axis, i.e.
  it produces no artifact. mriqa passes 2-D images as ``(1, H, W)``: in-plane rotation is about
  axis 0 (``degrees[:, 0]``), translations along axes 1 and 2 (= the image's axes 0 and 1), and
  the k-space segments run along the image's last axis.

Severity = Jenkinson RMS deviation in mm (:mod:`.rigid`). Two definitions are recorded:
``rms_mm`` (``rms_definition="paper"``, default): mean over the N moved poses of each pose's RMS
from the identity, radius 80 mm; ``rms_successive_mm`` (``"code"``): mean RMS between successive
poses of ``[identity, P1, ..., PN]`` as in the public code of paper 5, radius 82.5 mm.

Respiratory motion (:func:`respiratory_motion`)
-----------------------------------------------
Free-breathing acquisition (paper 1): each phase-encoding line is acquired with the object
translated by ``d(tau) = A sin(2 pi tau / period + phi)`` along a displacement axis; applied
exactly in k-space as the linear phase ``exp(-2 pi i f d(tau))`` of line ``tau``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ._common import (
    as_image,
    check_severity,
    complex_to_real,
    finish,
    identity_result,
    make_rng,
    parse_spacing,
    resolve_axis,
)
from .kspace import fftnc, ifftnc
from .rigid import (
    CODE_RADIUS_MM,
    DEFAULT_RADIUS_MM,
    jenkinson_rms,
    pose_matrices,
    rms_mean_from_reference,
    rms_successive,
)

__all__ = [
    "centered_affine",
    "kspace_segments",
    "sample_times",
    "window_times",
    "sample_motion_for_rms",
    "apply_torchio_motion",
    "rigid_motion",
    "respiratory_motion",
    "motion_scores",
]

FRAME = (
    "mm along the array axes, origin at the grid centre: p = spacing * (index - (shape - 1) / 2); "
    "pose A maps an output point p to the input point A p it samples (SimpleITK convention); "
    "2-D images are handled as (1, H, W)"
)


def centered_affine(shape: Sequence[int], spacing: Sequence[float]) -> np.ndarray:
    """RAS affine handed to TorchIO so that its LPS world frame is the array frame in mm,
    with the origin at the geometric centre of the grid (``(shape - 1) / 2``)."""
    s = np.asarray(spacing, dtype=np.float64)
    c = (np.asarray(shape, dtype=np.float64) - 1) / 2
    aff = np.diag([-s[0], -s[1], s[2], 1.0])
    aff[:3, 3] = [s[0] * c[0], s[1] * c[1], -s[2] * c[2]]
    return aff


def sample_times(num_transforms: int, rng: np.random.Generator, perturbation: float = 0.3) -> np.ndarray:
    """Motion times in (0, 1) as TorchIO's ``RandomMotion``: equispaced ``k / (N + 1)`` plus a
    uniform jitter of +-``perturbation`` of the step (drawn from ``rng``), sorted."""
    step = 1.0 / (num_transforms + 1)
    times = np.arange(1, num_transforms + 1) * step
    times = times + rng.uniform(-step * perturbation, step * perturbation, size=num_transforms)
    return np.sort(times)


def window_times(times: Sequence[float], acquisition_mm: float, grid_mm: float) -> np.ndarray:
    """Motion times of an acquisition at ``acquisition_mm`` as seen on a coarser ``grid_mm`` grid.

    The coarse grid keeps only the central ``acquisition_mm / grid_mm`` of the acquisition's
    k-space along the segment axis, which a linear phase-encoding order fills during the central
    part of the scan: time ``t`` of the acquisition is time ``0.5 + (t - 0.5) * grid / acquisition``
    of the grid's k-space, clipped to [0, 1]. Poses outside the window leave no trace on the grid,
    as they leave none in a real scan that is downsampled. ``acquisition_mm >= grid_mm`` returns
    ``times`` unchanged.
    """
    times = np.asarray(times, dtype=np.float64)
    if acquisition_mm <= 0 or grid_mm <= 0:
        raise ValueError(f"acquisition_mm and grid_mm must be > 0, got {acquisition_mm} and {grid_mm}")
    stretch = max(grid_mm / acquisition_mm, 1.0)
    return np.clip(0.5 + (times - 0.5) * stretch, 0.0, 1.0)


def kspace_segments(times: Sequence[float], n_lines: int) -> list[dict]:
    """Which pose fills which k-space lines in TorchIO's ``Motion`` (along the last axis).

    Returns one dict per segment ``{"pose": p, "start": i, "stop": j}`` where pose 0 is the
    identity and pose k >= 1 is ``times``/``degrees`` row k - 1; lines ``[i, j)`` of the centred
    k-space (index ``n_lines // 2`` is k = 0).
    """
    times = np.asarray(times, dtype=np.float64)
    n = len(times)
    order = list(range(n + 1))  # spectrum index -> pose index
    index = int(np.where(times > 0.5)[0].min()) if np.any(times > 0.5) else n
    order[0], order[index] = order[index], order[0]
    bounds = [int(v) for v in (n_lines * times).astype(int).tolist()] + [n_lines]
    segs, ini = [], 0
    for pose, fin in zip(order, bounds):
        segs.append({"pose": pose, "start": ini, "stop": fin})
        ini = fin
    return segs


def _as_3d(x: np.ndarray, spacing: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if x.ndim == 2:
        return x[None], np.concatenate([[1.0], spacing])
    return x, spacing


def motion_scores(
    degrees: np.ndarray,
    translation: np.ndarray,
    times: np.ndarray,
    n_lines: int,
    radius_mm: float = DEFAULT_RADIUS_MM,
    radius_code_mm: float = CODE_RADIUS_MM,
) -> dict:
    """All RMS scores (mm) of a set of poses (degrees / translation in mm, rotation about the
    grid centre), plus the poses themselves and TorchIO's k-space segments.

    Returns a dict with ``poses`` (N 4x4), ``rms_per_pose_mm``, ``rms_mm`` (paper: mean from
    identity, ``radius_mm``), ``rms_max_mm``, ``rms_successive_mm`` (public code: mean between
    successive poses of [identity, P1..PN], ``radius_code_mm``), ``rms_successive_kspace_mm``
    (same, in k-space acquisition order) and ``kspace_segments``.
    """
    degrees = np.asarray(degrees, dtype=np.float64).reshape(-1, 3)
    translation = np.asarray(translation, dtype=np.float64).reshape(-1, 3)
    poses = pose_matrices(degrees, translation)
    per_pose = jenkinson_rms(poses, None, radius_mm) if len(poses) else np.zeros(0)
    segs = kspace_segments(times, n_lines) if len(poses) else []
    all_poses = np.concatenate([np.eye(4)[None], poses])
    kspace_order = np.stack([all_poses[s["pose"]] for s in segs]) if segs else np.eye(4)[None]
    return {
        "poses": poses,
        "rms_per_pose_mm": per_pose,
        "rms_mm": rms_mean_from_reference(poses, radius_mm),
        "rms_max_mm": float(per_pose.max()) if len(per_pose) else 0.0,
        "rms_successive_mm": rms_successive(poses, radius_code_mm, prepend_identity=True),
        "rms_successive_kspace_mm": rms_successive(kspace_order, radius_code_mm, prepend_identity=False),
        "kspace_segments": segs,
    }


def sample_motion_for_rms(
    target_mm: float,
    rng: np.random.Generator,
    *,
    tolerance_mm: float = 0.02,
    definition: str = "paper",
    radius_mm: float | None = None,
    num_transforms: int | tuple[int, int] = (2, 8),
    rotation_max_deg: float | None = None,
    translation_max_mm: float | None = None,
    is_2d: bool = False,
    max_tries: int = 200_000,
) -> dict:
    """Rejection-sample motion poses whose RMS score is within ``tolerance_mm`` of ``target_mm``.

    Recipe of the public code of paper 5 (Bricout et al.), repeated until accepted:
    ``N ~ U{2..8}``; rotation range ``r ~ U(0, min(target / 3, 1))`` degrees; angles
    ``~ U(-r, r)``, translations ``~ U(-target, target)`` mm per axis and pose (for 2-D: rotation
    about axis 0 only, no translation along axis 0).

    Args:
        target_mm: target RMS (mm) > 0.
        rng: numpy Generator.
        tolerance_mm: acceptance half-width (paper 5: 0.02 mm).
        definition: ``"paper"`` (mean RMS from identity, R = 80 mm) or ``"code"`` (mean RMS between
            successive poses, R = 82.5 mm).
        radius_mm: ball radius; default per definition.
        num_transforms: fixed N, or an inclusive range (default 2..8).
        rotation_max_deg / translation_max_mm: override the ranges above (fixed maxima).
        is_2d: in-plane motion only.
        max_tries: give up with RuntimeError after this many draws.

    Returns:
        dict with ``degrees`` (N, 3), ``translation`` (N, 3), ``num_transforms``, ``rms`` (under the
        chosen definition) and ``n_tries``.
    """
    if definition not in ("paper", "code"):
        raise ValueError(f"rms_definition must be 'paper' or 'code', got {definition!r}")
    radius = (DEFAULT_RADIUS_MM if definition == "paper" else CODE_RADIUS_MM) if radius_mm is None else radius_mm
    lo, hi = (num_transforms, num_transforms) if np.isscalar(num_transforms) else num_transforms
    for tries in range(1, int(max_tries) + 1):
        n = int(rng.integers(int(lo), int(hi) + 1))
        rmax = rng.uniform(0, min(target_mm / 3.0, 1.0)) if rotation_max_deg is None else rotation_max_deg
        tmax = target_mm if translation_max_mm is None else translation_max_mm
        deg = rng.uniform(-1, 1, size=(n, 3)) * rmax
        tr = rng.uniform(-1, 1, size=(n, 3)) * tmax
        if is_2d:
            deg[:, 1:] = 0.0
            tr[:, 0] = 0.0
        poses = pose_matrices(deg, tr)
        if definition == "paper":
            rms = rms_mean_from_reference(poses, radius)
        else:
            rms = rms_successive(poses, radius, prepend_identity=True)
        if abs(rms - target_mm) <= tolerance_mm:
            return {"degrees": deg, "translation": tr, "num_transforms": n, "rms": rms, "n_tries": tries}
    raise RuntimeError(
        f"no motion with RMS {target_mm} +- {tolerance_mm} mm ({definition}) after {max_tries} draws; "
        "widen tolerance_mm or the rotation / translation ranges"
    )


def apply_torchio_motion(
    image: np.ndarray,
    degrees: np.ndarray,
    translation: np.ndarray,
    times: np.ndarray,
    spacing: Sequence[float] | None = None,
    interpolation: str = "linear",
):
    """Apply :class:`torchio.Motion` with explicit poses to a 2-D or 3-D array.

    Args:
        image: 2-D ``(H, W)`` or 3-D array.
        degrees: ``(N, 3)`` Euler angles (degrees, SimpleITK convention, frame of :data:`FRAME`).
        translation: ``(N, 3)`` translations in mm.
        times: ``(N,)`` times in (0, 1) (sorted) at which the poses start.
        spacing: voxel size in mm (default 1).
        interpolation: TorchIO interpolation name for the resampling.

    Returns:
        ``(array, subject)``: the float32 result with the input's shape and the transformed
        :class:`torchio.Subject` (its ``applied_transforms`` / ``get_applied_transforms()`` hold
        TorchIO's own record of the motion). The image key is ``"image"``; for 2-D input the
        subject holds the ``(1, 1, H, W)`` tensor.
    """
    import torch
    import torchio as tio

    x = np.asarray(image, dtype=np.float32)
    sp = parse_spacing(spacing, x.ndim)
    x3, sp3 = _as_3d(x, sp)
    affine = centered_affine(x3.shape, sp3)
    subject = tio.Subject(image=tio.ScalarImage(tensor=torch.from_numpy(np.ascontiguousarray(x3))[None], affine=affine))
    transform = tio.Motion(
        degrees=np.asarray(degrees, dtype=np.float64).reshape(-1, 3),
        translation=np.asarray(translation, dtype=np.float64).reshape(-1, 3),
        times=np.asarray(times, dtype=np.float64).ravel(),
        image_interpolation=interpolation,
    )
    with torch.random.fork_rng(devices=[]):  # TorchIO draws torch.rand(1) for its probability p
        out_subject = transform(subject)
    out = out_subject["image"].data[0].numpy()
    if x.ndim == 2:
        out = out[0]
    return np.ascontiguousarray(out, dtype=np.float32), out_subject


def _history(subject) -> list[dict]:
    hist = []
    for name, args in subject.applied_transforms:
        entry = {"name": name}
        for key in ("degrees", "translation", "times", "image_interpolation"):
            if key in args:
                v = args[key]
                entry[key] = np.asarray(v).tolist() if not isinstance(v, str) else v
        hist.append(entry)
    return hist


def rigid_motion(
    image: np.ndarray,
    severity: float | None = None,
    seed: int = 0,
    *,
    spacing=None,
    degrees: Any = None,
    translation: Any = None,
    times: Any = None,
    num_transforms: int | tuple[int, int] | None = None,
    degrees_range: float | None = None,
    translation_range: float | None = None,
    rms_definition: str = "paper",
    radius_mm: float | None = None,
    radius_code_mm: float = CODE_RADIUS_MM,
    tolerance_mm: float = 0.02,
    interpolation: str = "linear",
    max_tries: int = 200_000,
) -> tuple[np.ndarray, dict]:
    """Rigid head motion during acquisition (TorchIO k-space motion model), scored in mm.

    Three ways to choose the poses (first that applies):

    1. explicit ``degrees`` / ``translation`` (``(N, 3)`` each, degrees and mm; ``times`` optional,
       else TorchIO-like times from ``seed``) -- severity is then the realised RMS;
    2. ``degrees_range`` / ``translation_range`` (TorchIO ``RandomMotion`` style: each angle
       ``~ U(-d, d)`` deg, each translation ``~ U(-t, t)`` mm, ``num_transforms`` poses, default 2;
       paper 1 uses 1 deg / 1 mm) -- severity is the realised RMS;
    3. otherwise ``severity`` is a *target* RMS (mm) reached by rejection sampling
       (:func:`sample_motion_for_rms`, paper 5 recipe, +-``tolerance_mm``).

    See the module docstring for TorchIO's conventions and the two RMS definitions.

    Args:
        image: 2-D or 3-D image.
        severity: target RMS deviation (mm) for mode 3, default 1.0; 0 = no motion.
        seed: random seed (poses, number of poses, times).
        spacing: voxel size (mm); translations and the RMS are in mm.
        degrees, translation, times: explicit poses (mode 1).
        num_transforms: number of poses (int) or inclusive range (mode 3 default 2..8).
        degrees_range, translation_range: maximum |angle| (deg) and |translation| (mm) (mode 2).
        rms_definition: ``"paper"`` (mean RMS from identity, radius ``radius_mm`` = 80) or ``"code"``
            (mean RMS between successive poses, radius ``radius_code_mm`` = 82.5); selects the
            sidecar's ``severity`` and the sampler's target.
        radius_mm: radius for the paper definition (default 80 mm).
        radius_code_mm: radius for the code definition (default 82.5 mm).
        tolerance_mm: acceptance tolerance of the sampler (paper 5: 0.02 mm).
        interpolation: TorchIO resampling interpolation.
        max_tries: sampler limit.

    Returns:
        image (float32, TorchIO's real-part output) and params: ``severity`` (realised RMS under
        ``rms_definition``), ``rms_mm``, ``rms_per_pose_mm``, ``rms_max_mm``, ``rms_successive_mm``,
        ``rms_successive_kspace_mm``, ``degrees``, ``translation_mm``, ``times``, ``poses`` (4x4),
        ``kspace_segments``, ``num_transforms``, ``mode``, ``frame``, ``torchio_history`` and,
        for mode 3, ``target_rms_mm`` / ``tolerance_mm`` / ``n_tries``.
    """
    x = as_image(image)
    sp = parse_spacing(spacing, x.ndim)
    if x.ndim == 3 and sum(n > 1 for n in x.shape) == 2:
        # a 2-D slice stored as 3-D (e.g. (H, W, 1)): TorchIO would split k-space along a singleton
        # axis (no artifact), so treat it as the 2-D image it is and restore the shape afterwards
        keep = [i for i, n in enumerate(x.shape) if n > 1]
        out, params = rigid_motion(
            x.reshape([x.shape[i] for i in keep]),
            severity,
            seed,
            spacing=sp[keep],
            degrees=degrees,
            translation=translation,
            times=times,
            num_transforms=num_transforms,
            degrees_range=degrees_range,
            translation_range=translation_range,
            rms_definition=rms_definition,
            radius_mm=radius_mm,
            radius_code_mm=radius_code_mm,
            tolerance_mm=tolerance_mm,
            interpolation=interpolation,
            max_tries=max_tries,
        )
        params["squeezed_from_shape"] = list(x.shape)
        return out.reshape(x.shape), params
    is_2d = x.ndim == 2
    if rms_definition not in ("paper", "code"):
        raise ValueError(f"rms_definition must be 'paper' or 'code', got {rms_definition!r}")
    radius = DEFAULT_RADIUS_MM if radius_mm is None else float(radius_mm)
    rng = make_rng(seed)
    extra: dict = {}
    if degrees is not None or translation is not None:
        mode = "explicit"
        ref = degrees if degrees is not None else translation
        n = len(np.atleast_2d(np.asarray(ref, dtype=float)))
        deg = np.zeros((n, 3)) if degrees is None else np.atleast_2d(np.asarray(degrees, dtype=float))
        tr = np.zeros((n, 3)) if translation is None else np.atleast_2d(np.asarray(translation, dtype=float))
        if deg.shape != tr.shape or deg.shape[1] != 3:
            raise ValueError(f"degrees {deg.shape} and translation {tr.shape} must both be (N, 3)")
    elif degrees_range is not None or translation_range is not None:
        mode = "ranges"
        n = 2 if num_transforms is None else int(num_transforms)
        deg = rng.uniform(-1, 1, size=(n, 3)) * float(degrees_range or 0.0)
        tr = rng.uniform(-1, 1, size=(n, 3)) * float(translation_range or 0.0)
        if is_2d:
            deg[:, 1:] = 0.0
            tr[:, 0] = 0.0
    else:
        mode = "target_rms"
        target = check_severity(1.0 if severity is None else severity, 0.0, 20.0)
        extra = {"target_rms_mm": target, "tolerance_mm": float(tolerance_mm)}
        if target == 0:
            params = {
                "severity": 0.0,
                "mode": mode,
                **extra,
                "rms_definition": rms_definition,
                "rms_mm": 0.0,
                "rms_successive_mm": 0.0,
                "num_transforms": 0,
                "degrees": [],
                "translation_mm": [],
                "times": [],
                "poses": [],
                "frame": FRAME,
            }
            return identity_result(x, params)
        nt = (2, 8) if num_transforms is None else num_transforms
        draw = sample_motion_for_rms(
            target,
            rng,
            tolerance_mm=tolerance_mm,
            definition=rms_definition,
            radius_mm=radius if rms_definition == "paper" else radius_code_mm,
            num_transforms=nt,
            is_2d=is_2d,
            max_tries=max_tries,
        )
        deg, tr, n = draw["degrees"], draw["translation"], draw["num_transforms"]
        extra["n_tries"] = draw["n_tries"]
    if times is None:
        tms = sample_times(n, rng)
    else:
        tms = np.asarray(times, dtype=float).ravel()
        if len(tms) != n or np.any(tms <= 0) or np.any(tms >= 1) or np.any(np.diff(tms) < 0):
            raise ValueError(f"times must be {n} sorted values in (0, 1), got {tms.tolist()}")
    n_lines = x.shape[-1]
    scores = motion_scores(deg, tr, tms, n_lines, radius, radius_code_mm)
    sev = scores["rms_mm"] if rms_definition == "paper" else scores["rms_successive_mm"]
    base = {
        "severity": sev,
        "mode": mode,
        **extra,
        "rms_definition": rms_definition,
        "radius_mm": radius,
        "radius_code_mm": radius_code_mm,
        **scores,
        "num_transforms": n,
        "degrees": deg,
        "translation_mm": tr,
        "times": tms,
        "spacing_mm": sp,
        "interpolation": interpolation,
        "frame": FRAME,
    }
    if n == 0 or (not np.any(deg) and not np.any(tr)):
        return identity_result(x, base)
    out, subject = apply_torchio_motion(x, deg, tr, tms, sp, interpolation)
    base["torchio_history"] = _history(subject)
    return finish(out, base)


def respiratory_motion(
    image: np.ndarray,
    severity: float | None = None,
    seed: int = 0,
    *,
    spacing=None,
    period_lines: float = 16.0,
    pe_axis: int | None = None,
    direction_axis: int | None = None,
    partition_axis: int | None = None,
    phase: float | None = None,
    output: str = "auto",
) -> tuple[np.ndarray, dict]:
    """Periodic (respiratory) translation applied line by line in k-space (free breathing, paper 1).

    Line ``tau`` of the acquisition sees the object translated by
    ``d(tau) = severity * sin(2 pi tau / period_lines + phase)`` mm along ``direction_axis``;
    k-space line ``tau`` is multiplied by ``exp(-2 pi i f d(tau))`` (f in cycles/mm along the
    displacement axis), which is exactly a (circular) translation of that line's data.
    The acquisition order: ``tau`` = index along ``pe_axis``; for 3-D with a ``partition_axis``,
    ``tau = j_pe + N_pe * j_partition`` (phase-encoding inner loop); without it all partitions of a
    phase-encoding line are acquired together (multi-slice 2-D style).

    Args:
        image: 2-D or 3-D image.
        severity: breathing amplitude in mm (peak displacement); 0 = none. Default 5 mm.
        seed: random seed (draws ``phase`` ~ U(0, 2 pi) when it is None).
        spacing: voxel size (mm).
        period_lines: breathing period in acquired lines (``inf`` gives a constant shift).
        pe_axis: phase-encoding axis (default 0 for 2-D, 1 for 3-D).
        direction_axis: axis of the displacement (default ``pe_axis``).
        partition_axis: 3-D only: second (slower) encoding axis of the line order.
        phase: breathing phase (radians) at line 0.
        output: "auto" | "magnitude" | "real".

    Returns:
        image and params: ``severity`` (= amplitude_mm), ``period_lines``, ``phase_rad``, axes,
        ``displacement_min_mm`` / ``displacement_max_mm`` / ``displacement_rms_mm`` over lines.
    """
    x = as_image(image)
    s = check_severity(5.0 if severity is None else severity, 0.0, 200.0)
    sp = parse_spacing(spacing, x.ndim)
    rng = make_rng(seed)
    pe = resolve_axis((0 if x.ndim == 2 else 1) if pe_axis is None else pe_axis, x.ndim, "pe_axis")
    da = pe if direction_axis is None else resolve_axis(direction_axis, x.ndim, "direction_axis")
    pa = None if partition_axis is None else resolve_axis(partition_axis, x.ndim, "partition_axis")
    if pa is not None and (x.ndim != 3 or pa == pe):
        raise ValueError("partition_axis needs a 3-D image and must differ from pe_axis")
    ph = float(rng.uniform(0, 2 * np.pi)) if phase is None else float(phase)
    period = float(period_lines)
    if not period > 0:
        raise ValueError(f"period_lines must be > 0, got {period_lines}")
    # acquisition time index of every (pe, partition) line, broadcastable to the image
    shape_t = [1] * x.ndim
    shape_t[pe] = x.shape[pe]
    tau = np.arange(x.shape[pe], dtype=np.float64).reshape(shape_t)
    if pa is not None:
        shape_p = [1] * x.ndim
        shape_p[pa] = x.shape[pa]
        tau = tau + x.shape[pe] * np.arange(x.shape[pa], dtype=np.float64).reshape(shape_p)
    d = s * np.sin(2 * np.pi * tau / period + ph) if np.isfinite(period) else s * np.sin(ph) * np.ones_like(tau)
    params = {
        "severity": s,
        "amplitude_mm": s,
        "period_lines": period,
        "phase_rad": ph,
        "pe_axis": pe,
        "direction_axis": da,
        "partition_axis": pa,
        "displacement_min_mm": float(d.min()),
        "displacement_max_mm": float(d.max()),
        "displacement_rms_mm": float(np.sqrt(np.mean(d**2))),
    }
    if s == 0:
        return identity_result(x, params)
    n_dir = x.shape[da]
    shape_f = [1] * x.ndim
    shape_f[da] = n_dir
    freq = (np.arange(n_dir) - n_dir // 2) / (n_dir * sp[da])  # cycles/mm, centred k-space order
    ramp = np.exp(-2j * np.pi * freq.reshape(shape_f) * d).astype(np.complex64)
    k = fftnc(x.astype(np.complex64)) * ramp
    out, mode = complex_to_real(ifftnc(k), output, x)
    params["output"] = mode
    return finish(out, params)
