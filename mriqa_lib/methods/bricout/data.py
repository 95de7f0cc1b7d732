"""Paper 5 data: network grid, the random synthetic-motion pipeline, and the embedded QC cohort.

Every image reaches the network through :func:`to_grid` -> :func:`mriqa_lib.data.preprocess.normalise`
-> (random pipeline, synthesis only) -> :func:`finalize` (centre crop + normalise); the scorer
calls :func:`prepare_volume`, which is the same chain without the random pipeline.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from mriqa_lib import seeds
from mriqa_lib.artifacts.registry import apply_artifact
from mriqa_lib.data.preprocess import conform, crop_or_pad, extra_blur_mm, normalise
from mriqa_lib.data.template import REF_AFFINE, REF_SHAPE, REF_SPACING
from mriqa_lib.io import Volume
from mriqa_lib.methods.bricout.params import (
    AugmentParams,
    DataParams,
    EmbeddedQCParams,
    MotionParams,
)

ARTIFACTS = ("motion", "noise", "ghosting", "bias")


def grid(spacing_mm: float) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Affine and shape of an isotropic MNI grid of ``spacing_mm`` with the reference field of view
    (192 x 224 x 192 mm; 1 mm -> 192 x 224 x 192, cropped to the paper's 160 x 192 x 160)."""
    fov = np.asarray(REF_SHAPE) * REF_SPACING
    shape = tuple(int(round(f / spacing_mm)) for f in fov)
    centre = REF_AFFINE[:3, :3] @ ((np.asarray(REF_SHAPE) - 1) / 2) + REF_AFFINE[:3, 3]
    affine = np.diag([spacing_mm] * 3 + [1.0])
    affine[:3, 3] = centre - (np.asarray(shape) - 1) / 2 * spacing_mm
    return affine, shape  # type: ignore[return-value]


def to_grid(volume: Volume, spacing_mm: float) -> np.ndarray:
    """Resample an MNI-registered volume onto the network grid (anti-aliased when downsampling).

    Args:
        volume: input volume (world frame in mm, MNI-aligned as t1-linear outputs are).
        spacing_mm: target isotropic voxel size (mm).
    """
    src = volume.spacing
    sigma = [extra_blur_mm(spacing_mm, s) / s for s in src]
    data = volume.data
    if max(sigma) > 0.3:  # Gaussian pre-filter to the target resolution (avoids aliasing)
        data = ndimage.gaussian_filter(data.astype(np.float32), sigma, mode="constant")
    affine, shape = grid(spacing_mm)
    return conform(Volume(data, volume.affine, volume.path), affine, shape).data


def finalize(data: np.ndarray, crop: tuple[int, int, int]) -> np.ndarray:
    """Centre crop (or pad) to the network input shape, then intensity-normalise."""
    return normalise(crop_or_pad(np.asarray(data, np.float32), tuple(crop)))


def prepare_volume(volume: Volume, dp: DataParams) -> np.ndarray:
    """What the network sees for a real scan: grid, normalise, crop, normalise (float32)."""
    return finalize(normalise(to_grid(volume, dp.grid_mm)), dp.crop)


def _elastic(image: np.ndarray, spacing: float, rng: np.random.Generator, ap: AugmentParams) -> np.ndarray:
    """TorchIO random elastic deformation, seeded from ``rng`` (torch RNG forked, not touched)."""
    import torch
    import torchio as tio

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(rng.integers(2**31)))
        img = tio.ScalarImage(
            tensor=torch.from_numpy(np.ascontiguousarray(image))[None], affine=np.diag([spacing] * 3 + [1.0])
        )
        tr = tio.RandomElasticDeformation(
            num_control_points=ap.elastic_control_points,
            max_displacement=ap.elastic_max_displacement_mm,
            locked_borders=2,
        )
        return tr(img).data[0].numpy()


def _scale(image: np.ndarray, factor: float) -> np.ndarray:
    """Isotropic scaling by ``factor`` about the grid centre (linear interpolation)."""
    centre = (np.asarray(image.shape) - 1) / 2
    matrix = np.eye(3) / factor
    offset = centre - matrix @ centre
    return ndimage.affine_transform(image, matrix, offset=offset, order=1, mode="constant", cval=0.0)


def augment(
    image: np.ndarray,
    spacing: float,
    seed: int,
    mp: MotionParams,
    ap: AugmentParams,
    crop: tuple[int, int, int],
    return_steps: bool = False,
) -> tuple[np.ndarray, dict[str, Any]]:
    """One pass through the P5 random pipeline (Fig. 2): motion to a target RMS, elastic
    deformation, bias field, gamma contrast, sagittal flip, scaling, crop, in the order ``ap.order``.

    Args:
        image: normalised volume on the network grid (before cropping).
        spacing: its voxel size (mm).
        seed: seed of this pass (all draws derive from it).
        mp, ap: motion and augmentation settings.
        crop: output shape.

    Returns:
        (cropped normalised float32 volume, info) where ``info["rms"]`` is the label (mm);
        with ``return_steps`` ``info["steps"]`` holds the image after each step (Fig. 2).
    """
    rng = np.random.default_rng(seed)
    info: dict[str, Any] = {}
    steps: dict[str, np.ndarray] = {"input": image}
    # all random draws happen in a fixed order whatever ap.order is (same seed, same parameters)
    clean = bool(rng.random() < mp.clean_fraction)
    target = float(rng.uniform(*mp.clean_label)) if clean else float(rng.uniform(*mp.target_range))
    motion_seed = int(rng.integers(2**31))
    do_elastic = bool(rng.random() < ap.elastic_p and ap.elastic_max_displacement_mm > 0)
    elastic_rng = np.random.default_rng(int(rng.integers(2**31)))
    bias_seed = int(rng.integers(2**31))
    log_gamma = float(rng.uniform(-ap.gamma_log, ap.gamma_log))
    flip = bool(rng.random() < ap.flip_p)
    factor = float(rng.uniform(1 - ap.scale_range, 1 + ap.scale_range))
    corrupt = bool(rng.random() < ap.corrupt_p)
    peak = float(rng.uniform(*ap.intensity_max))

    def motion(x):
        if clean:
            info.update(rms=target, target_rms=0.0, n_poses=0)
            return x.astype(np.float32)
        y, p = motion_to_rms(x, spacing, target, motion_seed, mp, mp.backend)
        info.update(target_rms=target, **p)
        return y

    def spatial(x):
        if ap.order == "authors":  # generate.py: the flip comes before the elastic deformation
            x = x[::-1] if flip else x
            steps["flip"] = x
        if do_elastic:
            deform = _elastic if mp.backend == "torchio" else elastic
            x = deform(x, spacing, elastic_rng, ap)
        steps["elastic"] = x
        if ap.order != "authors":
            x = x[::-1] if flip else x
            steps["flip"] = x
        if factor != 1.0:
            x = _scale(np.ascontiguousarray(x, dtype=np.float32), factor)
        steps["scale"] = x
        return x

    out = image
    if ap.order != "motion_first":
        out = spatial(out)
    out = motion(out)
    steps["motion"] = out
    if ap.order == "motion_first":
        out = spatial(out)
    if corrupt:
        out, _ = apply_artifact("bias_field", out, severity=ap.bias_coefficients, seed=bias_seed)
    steps["bias"] = out
    if corrupt:
        out = np.sign(out) * np.abs(out) ** np.exp(log_gamma)  # TorchIO RandomGamma on signed data
    steps["gamma"] = out
    info.update(log_gamma=log_gamma if corrupt else 0.0, flip=flip, scale=factor, intensity_max=peak)
    out = finalize(out, crop)
    if peak != 1.0:
        out = (out * peak).astype(np.float32)
    steps["crop"] = out
    if return_steps:
        info["steps"] = steps
    return out, info


def draw_degradations(n: int, seed: int, qp: EmbeddedQCParams) -> list[dict[str, Any]]:
    """Hidden degradation of ``n`` embedded QC sessions and the "rater" score derived from it.

    Every session has some motion; one dominant degradation (motion, noise, ghosting or bias) is
    drawn with ``artifact_probs`` and a skewed severity u ~ Beta(1, 2.5). The hidden badness is
    the sum of the normalised severities; the rater sees it with Gaussian noise and scores by
    quantiles so the score fractions match ``score_fractions`` (unbalanced as paper Table 2).
    """
    rng = seeds.rng(seed, "bricout.degradations")
    rows = []
    for _ in range(n):
        kind = ARTIFACTS[int(rng.choice(4, p=qp.artifact_probs))]
        u = float(rng.beta(1.0, 2.5))
        row: dict[str, Any] = {"dominant": kind, "u": u, "seed": int(rng.integers(2**31))}
        row["motion_rms"] = (
            u * qp.max_motion_mm if kind == "motion" else float(rng.uniform(0.0, 0.1 * qp.max_motion_mm))
        )
        row["noise"] = 0.02 + (0.25 * u if kind == "noise" else 0.0)
        row["ghosting"] = 0.8 * u if kind == "ghosting" else 0.0
        row["bias"] = 0.15 + (1.0 * u if kind == "bias" else 0.0)
        row["badness"] = (
            row["motion_rms"] / qp.max_motion_mm
            + (row["noise"] - 0.02) / 0.25
            + row["ghosting"] / 0.8
            + 0.6 * (row["bias"] - 0.15)
        )
        rows.append(row)
    bad = np.array([r["badness"] for r in rows])
    seen = bad + rng.normal(0, qp.rater_noise * (bad.std() + 1e-9), n)
    # rank by what the rater sees: the worst fraction -> score 1, ..., the best -> score 4
    ranks = np.argsort(np.argsort(-seen))  # 0 = worst
    edges = np.round(np.cumsum(qp.score_fractions) * n).astype(int)
    for r, rank, s in zip(rows, ranks, seen):
        r["rater_badness"] = float(s)
        r["score"] = int(np.searchsorted(edges, rank, side="right") + 1)
        worst = r["score"] <= 3 and r["u"] > 0.3
        r["comments"] = (
            {"motion": "motion", "noise": "noisy", "ghosting": "ghosting", "bias": "inhomogeneity"}[r["dominant"]]
            if worst
            else ""
        )
    return rows


def degrade(image: np.ndarray, spacing: float, row: dict[str, Any], mp: MotionParams) -> np.ndarray:
    """Apply one hidden degradation (see :func:`draw_degradations`) to a normalised grid volume."""
    rng = np.random.default_rng(row["seed"])
    out = image
    if row["motion_rms"] > 0.02:
        out, _ = motion_to_rms(out, spacing, row["motion_rms"], int(rng.integers(2**31)), mp, mp.backend)
    if row["ghosting"] > 0:
        out, _ = apply_artifact("ghosting", out, severity=row["ghosting"], seed=int(rng.integers(2**31)), axis=1)
    out, _ = apply_artifact("bias_field", out, severity=row["bias"], seed=int(rng.integers(2**31)))
    out, _ = apply_artifact("rician_noise", np.clip(out, 0, None), severity=row["noise"], seed=int(rng.integers(2**31)))
    return out


def fast_motion(
    image: np.ndarray, spacing: float, degrees: np.ndarray, translation: np.ndarray, times: np.ndarray
) -> np.ndarray:
    """TorchIO's k-space motion model, batched in torch (the embedded CPU default).

    Same model and conventions as :func:`mriqa_lib.artifacts.motion.apply_torchio_motion`
    (poses map output points to input points, rotation about the grid centre, k-space segments
    along the last axis from :func:`mriqa_lib.artifacts.motion.kspace_segments`, real part of the
    inverse FFT) but all poses are resampled in one ``grid_sample`` call (about 10x faster on
    small CPU volumes). Out-of-field voxels are 0 (TorchIO: the image minimum; 0 for brains).

    Args:
        image: 3-D volume; spacing: isotropic voxel size (mm).
        degrees, translation: ``(N, 3)`` Euler angles (deg) and translations (mm).
        times: ``(N,)`` sorted times in [0, 1].
    """
    import torch

    from mriqa_lib.artifacts.motion import kspace_segments
    from mriqa_lib.artifacts.rigid import pose_matrices

    x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))
    poses = pose_matrices(np.asarray(degrees, float).reshape(-1, 3), np.asarray(translation, float).reshape(-1, 3))
    half = (np.asarray(image.shape, float) - 1) / 2  # centre (voxels) = normalisation of align_corners=True
    scale = np.diag(spacing * half)  # normalised -> mm
    inv = np.linalg.inv(scale)
    rev = np.eye(3)[::-1]  # grid_sample's (x, y, z) = array axes (2, 1, 0)
    theta = np.zeros((len(poses), 3, 4))
    for k, pose in enumerate(poses):
        theta[k, :, :3] = rev @ inv @ pose[:3, :3] @ scale @ rev
        theta[k, :, 3] = rev @ inv @ pose[:3, 3]
    th = torch.from_numpy(theta).float()
    grid_ = torch.nn.functional.affine_grid(th, [len(poses), 1, *image.shape], align_corners=True)
    moved = torch.nn.functional.grid_sample(
        x[None, None].expand(len(poses), 1, *image.shape),
        grid_,
        mode="bilinear",
        padding_mode="zeros",
        align_corners=True,
    )[:, 0]
    stack = torch.cat([x[None], moved])  # pose 0 = identity
    spectra = torch.fft.fftshift(torch.fft.fftn(stack, dim=(1, 2, 3)), dim=(1, 2, 3))
    out = torch.empty_like(spectra[0])
    for seg in kspace_segments(times, image.shape[-1]):
        out[..., seg["start"] : seg["stop"]] = spectra[seg["pose"], ..., seg["start"] : seg["stop"]]
    res = torch.fft.ifftn(torch.fft.ifftshift(out, dim=(0, 1, 2)), dim=(0, 1, 2)).real
    return res.numpy().astype(np.float32)


def motion_to_rms(
    image: np.ndarray, spacing: float, target: float, seed: int, mp: MotionParams, backend: str = "fast"
) -> tuple[np.ndarray, dict[str, Any]]:
    """Rigid motion whose RMS (``mp.rms_definition``) is within ``mp.tolerance_mm`` of ``target``.

    Poses and times come from the artifact library's rejection sampler (paper 5 public-code
    recipe); ``backend`` "torchio" applies them with TorchIO, "fast" with :func:`fast_motion`.
    With ``mp.acquisition_mm`` the motion happens in an acquisition of a voxel size drawn
    log-uniformly from that range, of which the grid (``spacing``) sees the central k-space
    (:func:`mriqa_lib.artifacts.motion.window_times`); the label stays the RMS of every pose.
    """
    if backend == "torchio" and mp.acquisition_mm is None:
        out, p = apply_artifact(
            "motion",
            image,
            severity=target,
            seed=seed,
            spacing=[spacing] * 3,
            rms_definition=mp.rms_definition,
            tolerance_mm=mp.tolerance_mm,
            num_transforms=tuple(mp.num_transforms),
        )
        return out, {"rms": float(p["severity"]), "n_poses": int(p["num_transforms"])}
    from mriqa_lib.artifacts.motion import apply_torchio_motion, sample_motion_for_rms, sample_times, window_times

    rng = np.random.default_rng(seed)
    draw = sample_motion_for_rms(
        target, rng, tolerance_mm=mp.tolerance_mm, definition=mp.rms_definition, num_transforms=tuple(mp.num_transforms)
    )
    times = sample_times(draw["num_transforms"], rng)
    info = {"rms": float(draw["rms"]), "n_poses": int(draw["num_transforms"])}
    if mp.acquisition_mm is not None:
        low, high = np.log(mp.acquisition_mm)
        info["acquisition_mm"] = float(np.exp(rng.uniform(low, high)))
        times = window_times(times, info["acquisition_mm"], spacing)
    if backend == "torchio":
        out, _ = apply_torchio_motion(image, draw["degrees"], draw["translation"], times, spacing=[spacing] * 3)
    else:
        out = fast_motion(image, spacing, draw["degrees"], draw["translation"], times)
    return out, info


def elastic(image: np.ndarray, spacing: float, rng: np.random.Generator, ap: AugmentParams) -> np.ndarray:
    """Random elastic deformation (TorchIO-like): displacements ~ U(-max, max) mm on a coarse
    ``control_points``^3 grid with fixed borders, trilinearly upsampled, applied with linear
    interpolation."""
    import torch

    n = ap.elastic_control_points
    disp = rng.uniform(-1, 1, size=(3, n, n, n)) * ap.elastic_max_displacement_mm / spacing  # voxels
    disp[:, [0, -1]] = 0
    disp[:, :, [0, -1]] = 0
    disp[:, :, :, [0, -1]] = 0
    d = torch.nn.functional.interpolate(
        torch.from_numpy(disp).float()[None], size=image.shape, mode="trilinear", align_corners=True
    )[0].numpy()
    coords = np.indices(image.shape, dtype=np.float32) + d
    return ndimage.map_coordinates(image, coords, order=1, mode="constant", cval=0.0).astype(np.float32)
