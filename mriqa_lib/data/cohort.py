"""The embedded default cohort: synthetic subjects built from the ICBM152 2009a template.

Each subject is the template seen through a random smooth diffeomorphic warp and a random
affine (head size +- ``scale_range``), applied to the tissue maps, from which the contrast is
re-synthesised with per-site tissue intensities; then the site's voxel size (partial volume),
bias field and Rician noise. Everything about a subject is drawn from
``SeedSequence([seed, index])``, so subject *i* is the same whatever the cohort size, and the
same seed gives the same bytes.

Domain randomisation widens each site's look per subject, because the template is an average
brain and a model trained only on it took a real brain's sharper anatomy for an artifact: tissue
borders sharpened by a random exponent (``tissue_sharpness``), tissue intensities jittered
(``contrast_jitter``), slices thicker along a random axis (``slice_thickness_mm``) and the noise
level scaled (``noise_scale``). These extra draws come from ``SeedSequence([seed, index, 1])``,
so sharpness and noise ranges [1, 1], thickness [0, 0] and a jitter of 0.03 give the cohort as it was
before them.

All metadata (sex, age, height, weight) are SYNTHETIC: drawn from simple distributions so
that methods that match references by sex/height/weight (paper 1) have something to match.

Layout written (BIDS-like)::

    DIR/participants.tsv                    participant_id site split sex age height weight ...
    DIR/dataset_description.json
    DIR/sub-001/anat/sub-001_T1w.nii.gz     int16, site voxel size, MNI-like world frame
    DIR/sub-001/anat/sub-001_T1w.json       realised generation parameters
    DIR/sub-001/anat/sub-001_label-{GM,WM,CSF}_probseg.nii.gz
    DIR/sub-001/anat/sub-001_T2w.nii.gz     only when contrasts include T2w (PD likewise)
    DIR/sub-001/anat/slices/...             only when slices > 0 (2-D NIfTI, axial)
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from mriqa_lib.config import CohortParams, SiteParams
from mriqa_lib.data.preprocess import extra_blur_mm
from mriqa_lib.data.splits import cohort_splits
from mriqa_lib.data.template import REF_AFFINE, REF_SHAPE, REF_SPACING, load_template
from mriqa_lib.io import atomic_dir, atomic_path, save_nifti, write_json, write_tsv

# Relative tissue intensities (WM, GM, CSF) of the non-T1w looks, scaled by the site's WM value.
CONTRAST_TISSUE = {"T2w": (0.45, 0.6, 1.0), "PD": (0.7, 0.85, 0.95)}
FOV_MM = np.array(REF_SHAPE) * REF_SPACING
TISSUES = ("GM", "WM", "CSF")


def site_grid(spacing: tuple[float, float, float]) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Affine and shape of a site's acquisition grid: same field of view as the reference grid."""
    spacing_a = np.asarray(spacing, dtype=float)
    shape = tuple(int(round(f / s)) for f, s in zip(FOV_MM, spacing_a))
    centre = REF_AFFINE[:3, :3] @ ((np.array(REF_SHAPE) - 1) / 2) + REF_AFFINE[:3, 3]
    affine = np.diag([*spacing_a, 1.0])
    affine[:3, 3] = centre - (np.array(shape) - 1) / 2 * spacing_a
    return affine, shape  # type: ignore[return-value]


@functools.lru_cache(maxsize=16)
def _smoothed_maps(spacing: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Template GM/WM/CSF blurred to the site's voxel size (partial-volume model, 1 mm source)."""
    tpl = load_template()
    sigma = [extra_blur_mm(s, 1.0) for s in spacing]  # 1 mm voxels: mm = voxels
    return tuple(ndimage.gaussian_filter(m, sigma, mode="constant") for m in (tpl.gm, tpl.wm, tpl.csf))  # type: ignore[return-value]


def random_warp(
    rng: np.random.Generator,
    shape: tuple[int, int, int],
    spacing: np.ndarray,
    std_mm: float,
    control_mm: float = 8.0,
    steps: int = 6,
) -> np.ndarray:
    """A smooth diffeomorphic displacement field (mm), shape (3, *shape).

    A stationary velocity field drawn on a coarse control grid is integrated by scaling and
    squaring (``steps`` squarings), which yields an invertible map when the scaled velocity
    is small, then interpolated to the target grid.
    """
    coarse = tuple(int(np.ceil(n * s / control_mm)) + 1 for n, s in zip(shape, spacing))
    if std_mm == 0:
        return np.zeros((3, *shape), dtype=np.float32)
    vel = rng.standard_normal((3, *coarse))
    vel = np.stack([ndimage.gaussian_filter(v, 1.0, mode="nearest") for v in vel])
    vel *= std_mm / (vel.std() + 1e-12)
    disp = vel / 2**steps / control_mm  # in coarse-voxel units
    grid = np.stack(np.meshgrid(*[np.arange(n, dtype=float) for n in coarse], indexing="ij"))
    for _ in range(steps):  # phi <- phi o phi
        coords = grid + disp
        disp = disp + np.stack([ndimage.map_coordinates(d, coords, order=1, mode="nearest") for d in disp])
    # sample onto the fine grid: fine voxel i sits at i * spacing / control_mm coarse voxels
    fine = np.stack(np.meshgrid(*[np.arange(n) * s / control_mm for n, s in zip(shape, spacing)], indexing="ij"))
    return np.stack([ndimage.map_coordinates(d, fine, order=1, mode="nearest") * control_mm for d in disp]).astype(
        np.float32
    )


def random_affine(rng: np.random.Generator, params: CohortParams) -> tuple[np.ndarray, dict[str, Any]]:
    """World->world affine mapping subject space to template space, and its parameters."""
    scale = 1.0 + params.scale_range * float(np.clip(rng.normal(0, 0.5), -1, 1))
    aniso = 1.0 + rng.uniform(-0.02, 0.02, 3)
    angles = np.deg2rad(rng.uniform(-params.rotation_deg, params.rotation_deg, 3))
    trans = rng.uniform(-params.translation_mm, params.translation_mm, 3)
    cx, cy, cz = np.cos(angles)
    sx, sy, sz = np.sin(angles)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    linear = rz @ ry @ rx @ np.diag(scale * aniso)  # subject -> world, head scaled by `scale`
    to_template = np.eye(4)
    to_template[:3, :3] = np.linalg.inv(linear)
    to_template[:3, 3] = -np.linalg.inv(linear) @ trans
    info = {"head_scale": scale, "anisotropy": aniso, "rotation_deg": np.rad2deg(angles), "translation_mm": trans}
    return to_template, info


def bias_field(rng: np.random.Generator, shape: tuple[int, ...], strength: float) -> tuple[np.ndarray, np.ndarray]:
    """Smooth multiplicative field exp(sum of random polynomial terms up to degree 2)."""
    coords = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    x, y, z = coords
    terms = [x, y, z, x * y, x * z, y * z, x * x, y * y, z * z]
    coef = rng.normal(0, 1, len(terms)) * strength / np.sqrt(len(terms))
    log_field = sum(c * t for c, t in zip(coef, terms))
    return np.exp(log_field).astype(np.float32), coef


def synthesize_contrast(
    gm: np.ndarray, wm: np.ndarray, csf: np.ndarray, tissue: tuple[float, float, float]
) -> np.ndarray:
    """Image from tissue probability maps and (WM, GM, CSF) intensities."""
    w, g, c = tissue
    return (w * wm + g * gm + c * csf).astype(np.float32)


def sharpen_tissues(
    gm: np.ndarray, wm: np.ndarray, csf: np.ndarray, exponent: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tissue probabilities raised to ``exponent`` and renormalised:
    1 keeps them, larger values move each voxel towards its most likely tissue. The template is
    an average of 152 brains, so its tissue borders are blurrier than any one brain's."""
    if exponent == 1.0:
        return gm, wm, csf
    top = np.maximum(np.maximum(gm, wm), np.maximum(csf, 1e-12))
    powered = [np.power(m / top, exponent) for m in (gm, wm, csf)]  # over the largest: no underflow
    total = np.maximum(sum(powered), 1e-12)  # 0 only outside the brain, where `inside` is 0
    # the brain's outline keeps its partial volume; only the split between tissues sharpens
    inside = np.clip(gm + wm + csf, 0.0, 1.0)
    return tuple((inside * m / total).astype(np.float32) for m in powered)  # type: ignore[return-value]


def thick_slices(
    maps: tuple[np.ndarray, ...], spacing: tuple[float, float, float], axis: int, thickness: float
) -> tuple[np.ndarray, ...]:
    """Maps seen through slices ``thickness`` mm thick along ``axis`` (a Gaussian slice profile of
    that FWHM, beyond the voxel's own); no change when the slices are no thicker than the voxel."""
    extra = extra_blur_mm(thickness, spacing[axis]) / spacing[axis]
    if extra < 0.05:
        return maps
    return tuple(ndimage.gaussian_filter1d(m, extra, axis=axis, mode="constant").astype(np.float32) for m in maps)


def rician(rng: np.random.Generator, image: np.ndarray, sigma: float) -> np.ndarray:
    """Magnitude of a complex signal with Gaussian noise of ``sigma`` in both channels."""
    if sigma == 0:
        return image
    re = image + rng.normal(0, sigma, image.shape)
    im = rng.normal(0, sigma, image.shape)
    return np.sqrt(re * re + im * im).astype(np.float32)


def make_subject(index: int, site: SiteParams, params: CohortParams) -> dict[str, Any]:
    """Generate one subject's images (in memory) and realised parameters."""
    rng = np.random.default_rng(np.random.SeedSequence([params.seed, index]))
    sex = "F" if rng.random() < 0.5 else "M"
    age = float(np.round(rng.uniform(45, 80), 1))
    height = float(np.round(rng.normal(176 if sex == "M" else 163, 7), 1))
    weight = float(np.round(rng.normal(26, 3.5) * (height / 100) ** 2, 1))

    tpl = load_template()
    affine, shape = site_grid(site.spacing)
    to_template, aff_info = random_affine(rng, params)
    warp = random_warp(rng, shape, np.asarray(site.spacing), params.warp_mm)
    vox = np.stack(np.meshgrid(*[np.arange(n, dtype=np.float32) for n in shape], indexing="ij"))
    world = np.einsum("ij,j...->i...", affine[:3, :3], vox) + affine[:3, 3, None, None, None]
    world = world + warp
    tpl_world = np.einsum("ij,j...->i...", to_template[:3, :3], world) + to_template[:3, 3, None, None, None]
    tpl_vox = (
        np.einsum("ij,j...->i...", np.linalg.inv(tpl.affine)[:3, :3], tpl_world)
        + np.linalg.inv(tpl.affine)[:3, 3, None, None, None]
    )
    maps = [
        ndimage.map_coordinates(m, tpl_vox, order=1, mode="constant", cval=0.0).astype(np.float32)
        for m in _smoothed_maps(tuple(site.spacing))
    ]
    gm, wm, csf = (np.clip(m, 0, 1) for m in maps)
    # drawn apart from `rng`, so that the default ranges leave every other draw as it was
    extra = np.random.default_rng(np.random.SeedSequence([params.seed, index, 1]))
    sharpness = float(extra.uniform(*params.tissue_sharpness))
    gm, wm, csf = sharpen_tissues(gm, wm, csf, sharpness)
    thickness, axis = float(extra.uniform(*params.slice_thickness_mm)), int(extra.integers(3))
    gm, wm, csf = thick_slices((gm, wm, csf), site.spacing, axis, thickness)

    jitter = 1 + rng.uniform(-params.contrast_jitter, params.contrast_jitter, 3)
    field, bias_coef = bias_field(rng, shape, site.bias)
    sigma = site.noise * site.wm * float(extra.uniform(*params.noise_scale))
    images = {}
    for contrast in params.contrasts:
        if contrast == "T1w":
            tissue = (site.wm * jitter[0], site.gm * jitter[1], site.csf * jitter[2])
        else:
            rel = CONTRAST_TISSUE[contrast]
            tissue = tuple(site.wm * r * j for r, j in zip(rel, jitter))
        clean = synthesize_contrast(gm, wm, csf, tissue) * field
        images[contrast] = np.clip(np.round(rician(rng, clean, sigma)), 0, 32767).astype(np.int16)
    return {
        "participant_id": f"sub-{index + 1:03d}",
        "site": site.name,
        "sex": sex,
        "age": age,
        "height": height,
        "weight": weight,
        "affine": affine,
        "images": images,
        "tissues": {"GM": gm, "WM": wm, "CSF": csf},
        "realised": {
            "site": site.name,
            "spacing_mm": list(site.spacing),
            "tissue_intensity_wm_gm_csf": [site.wm * jitter[0], site.gm * jitter[1], site.csf * jitter[2]],
            "noise_sigma": sigma,
            "tissue_sharpness": sharpness,
            "slice_thickness_mm": thickness,
            "slice_axis": axis,
            "bias_coefficients": bias_coef,
            "warp_std_mm": params.warp_mm,
            "max_warp_mm": float(np.abs(warp).max()),
            **aff_info,
        },
    }


def _save_probseg(path: Path, prob: np.ndarray, affine: np.ndarray) -> None:
    """Tissue probabilities as uint8 with slope 1/255 (exact enough, and small on disk)."""
    import nibabel as nib

    img = nib.Nifti1Image(np.round(np.clip(prob, 0, 1) * 255).astype(np.uint8), affine)
    img.header.set_slope_inter(1 / 255, 0)
    img.header.set_xyzt_units("mm", "sec")
    with atomic_path(path) as tmp:
        nib.save(img, str(tmp))


def write_subject(out: Path, subj: dict[str, Any], n_slices: int = 0) -> None:
    pid = subj["participant_id"]
    anat = out / pid / "anat"
    anat.mkdir(parents=True, exist_ok=True)
    for contrast, image in subj["images"].items():
        save_nifti(anat / f"{pid}_{contrast}.nii.gz", image, subj["affine"], dtype=np.int16)
    for tissue, prob in subj["tissues"].items():
        _save_probseg(anat / f"{pid}_label-{tissue}_probseg.nii.gz", prob, subj["affine"])
    write_json(anat / f"{pid}_T1w.json", {"Synthetic": True, "Generator": "mriqa embedded cohort", **subj["realised"]})
    if n_slices:
        image = subj["images"]["T1w"]
        z0 = image.shape[2] // 2 - n_slices // 2
        for z in range(z0, z0 + n_slices):
            aff = subj["affine"].copy()
            aff[:3, 3] = aff[:3, 3] + aff[:3, 2] * z
            save_nifti(anat / "slices" / f"{pid}_T1w_axial-{z:03d}.nii.gz", image[:, :, z], aff, dtype=np.int16)


def _job(args: tuple[int, SiteParams, CohortParams, str]) -> dict[str, Any]:
    index, site, params, out = args
    subj = make_subject(index, site, params)
    write_subject(Path(out), subj, params.slices)
    t1, wm, gm, csf = (subj["images"]["T1w"], subj["tissues"]["WM"], subj["tissues"]["GM"], subj["tissues"]["CSF"])
    means = {
        f"mean_{k}": float(t1[m > 0.9].mean()) if (m > 0.9).any() else float("nan")
        for k, m in (("wm", wm), ("gm", gm), ("csf", csf))
    }
    row = {k: subj[k] for k in ("participant_id", "site", "sex", "age", "height", "weight")}
    row["head_scale"] = float(subj["realised"]["head_scale"])
    return {"row": row, "means": means}


def build_cohort(
    out: str | os.PathLike, params: CohortParams, progress: bool = True, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """Write the cohort to ``out`` and return a summary (the `prepare` stage's metrics).

    The cohort is written to a temporary sibling folder and moved into place at the end, so a
    failure never leaves ``out`` half-written and never destroys a previous cohort there.
    """
    import pandas as pd
    from tqdm import tqdm

    out = Path(out)
    start = time.time()
    load_template()  # load once in the parent so forked workers share it
    with atomic_dir(out) as staging:  # a failure never leaves out half-written nor loses a previous cohort
        sites = [params.sites[i % len(params.sites)] for i in range(params.n_subjects)]
        jobs = [(i, sites[i], params, str(staging)) for i in range(params.n_subjects)]
        log(f"building {params.n_subjects} subjects at {len(params.sites)} sites -> {out} ({params.workers} workers)")
        results: list[dict[str, Any]] = []
        if params.workers > 1:
            import multiprocessing as mp

            with ProcessPoolExecutor(params.workers, mp_context=mp.get_context("fork")) as pool:
                it = pool.map(_job, jobs)
                results = list(tqdm(it, total=len(jobs), desc="cohort", unit="subj", disable=not progress))
        else:
            results = [_job(j) for j in tqdm(jobs, desc="cohort", unit="subj", disable=not progress)]
        frame = pd.DataFrame([r["row"] for r in results])
        frame.insert(2, "split", cohort_splits(list(frame["site"]), params.split, params.seed))
        write_tsv(staging / "participants.tsv", frame)
        write_json(
            staging / "dataset_description.json",
            {
                "Name": "mriqa embedded cohort (synthetic, from ICBM152 2009a)",
                "BIDSVersion": "1.9.0",
                "DatasetType": "derivative",
                "GeneratedBy": [
                    {
                        "Name": "mriqa",
                        "Description": "synthetic subjects: random diffeomorphic warp + affine of the ICBM152 2009a "
                        "tissue maps; metadata (sex, age, height, weight) are synthetic",
                    }
                ],
                "Seed": params.seed,
            },
        )
    means = pd.DataFrame([r["means"] for r in results])
    summary = {
        "n_subjects": int(len(frame)),
        "n_sites": int(frame["site"].nunique()),
        "subjects_per_site": {k: int(v) for k, v in frame["site"].value_counts().sort_index().items()},
        "subjects_per_split": {k: int(v) for k, v in frame["split"].value_counts().sort_index().items()},
        "wm_gt_gm_gt_csf_fraction": float(((means.mean_wm > means.mean_gm) & (means.mean_gm > means.mean_csf)).mean()),
        "mean_wm_over_gm": float((means.mean_wm / means.mean_gm).mean()),
        "head_scale_range": [float(frame.head_scale.min()), float(frame.head_scale.max())],
        "seconds": round(time.time() - start, 1),
    }
    log(f"cohort written to {out} in {summary['seconds']} s")
    return summary
