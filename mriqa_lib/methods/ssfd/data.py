"""Data of paper 4: fastMRI volumes (real, or the embedded cohort written in fastMRI's layout)
turned into (ground truth, 4x zero-filled) slice pairs.

Embedded: each subject's T1w -> ``conform`` (2 mm grid) -> ``normalise`` -> ``slices_per_subject``
axial slices (96 x 112; columns = phase encoding) -> multi-coil k-space with smooth coil
sensitivities (:mod:`mriqa_lib.artifacts.kspace`) -> ``data/synthetic/ssfd/fastmri/<split>/sub-XXX.h5``
with ``kspace``, ``reconstruction_rss`` and an ISMRMRD header. Both sources then go through the
same reader (:func:`mriqa_lib.data.fastmri.read_fastmri`) and :func:`slices_from_file`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mriqa_lib.artifacts.kspace import fft2c, simulate_multicoil
from mriqa_lib.data.fastmri import (
    centre_crop,
    ismrmrd_header,
    jsense_reconstruction,
    read_fastmri,
    rss_reconstruction,
    undersample_kspace,
    write_fastmri,
)
from mriqa_lib.data.preprocess import conform, normalise
from mriqa_lib.io import MriqaInputError, load_nifti
from mriqa_lib.methods.ssfd.params import SsfdParams

SPLITS = ("train", "val", "test")
#: train/val/test fractions of a flat folder of fastMRI files (no delivered split)
FLAT_SPLIT = (0.7, 0.15, 0.15)

#: {split: [(fastMRI file, subject id)]}: the files each split reads
SourceFiles = dict[str, list[tuple[Path, str]]]


def fastmri_source_files(root: str | Path, seed: int) -> SourceFiles:
    """The real fastMRI files of ``root``, by split.

    ``root`` holds ``train/``, ``val/`` and ``test/`` subfolders (fastMRI's delivered split, used
    as is) or flat ``.h5`` files, split by file with :func:`mriqa_lib.data.splits.split_subjects`
    (fractions :data:`FLAT_SPLIT`; a fastMRI file is one volume and carries no subject id). Nothing
    is held out here: the embedded cohort is not in use.

    Raises:
        MriqaInputError: ``root`` is not a folder, or a split gets no file.
    """
    from mriqa_lib.data import splits

    root = Path(root)
    if not root.is_dir():
        raise MriqaInputError(f"{root}: ssfd.fastmri_dir is not a folder")
    out: SourceFiles = {s: [] for s in SPLITS}
    if all((root / s).is_dir() for s in SPLITS):
        for s in SPLITS:
            out[s] = [(f, f.stem) for f in sorted((root / s).glob("*.h5"))]
    else:
        files = sorted(root.glob("*.h5"))
        assignment = splits.split_subjects([f.stem for f in files], FLAT_SPLIT, seed)
        for f in files:
            out[assignment[f.stem]].append((f, f.stem))
    if not all(out.values()):
        raise MriqaInputError(
            f"{root}: need .h5 files for train, val and test (found { {k: len(v) for k, v in out.items()} })"
        )
    return out


def embedded_source_files(embedded: str | Path, out_dir: str | Path, params: SsfdParams) -> SourceFiles:
    """Write each embedded subject as a simulated multi-coil fastMRI file ``out_dir/<split>/<subject>.h5``.

    The split is the cohort's own (``participants.tsv``, made by
    :func:`mriqa_lib.data.splits.cohort_splits`): its held-out test subjects, the benchmark's, are
    SSFD's test subjects and never train or validate. Subject ``k`` (row of the table) simulates its
    coils with seed ``params.seed * 100000 + k``.
    """
    from tqdm import tqdm

    from mriqa_lib.io import read_tsv

    embedded, out_dir = Path(embedded), Path(out_dir)
    table = read_tsv(embedded / "participants.tsv", required=("participant_id", "split"))
    out: SourceFiles = {s: [] for s in SPLITS}
    for k, row in enumerate(tqdm(list(table.itertuples()), desc="embedded -> fastMRI h5")):
        sub = row.participant_id
        slices = embedded_slices(
            embedded / sub / "anat" / f"{sub}_T1w.nii.gz", params.slices_per_subject, params.slice_step
        )
        path = write_embedded_file(
            out_dir / row.split / f"{sub}.h5", slices, params.n_coils, params.seed * 100000 + k, sub
        )
        out[row.split].append((path, sub))
    return out


def slice_set(
    files: list[tuple[Path, str]], params: SsfdParams, split: str
) -> tuple[dict[str, np.ndarray], list[dict]]:
    """Every slice of one split's files (:func:`slices_from_file`, file ``j`` undersampled with seed
    ``params.seed * 7919 + j``).

    Returns:
        arrays ``target``, ``zero_filled`` (float32), ``subject`` (index of the file in ``files``)
        and ``mask`` (the sampling mask of the first file), and one manifest row per slice.
    """
    parts, rows = [], []
    for j, (path, sub) in enumerate(files):
        d = slices_from_file(path, params, seed=params.seed * 7919 + j)
        parts.append(d)
        rows += [
            {"split": split, "subject": sub, "file": str(path), "slice": int(s), "scale": float(c)}
            for s, c in zip(d["slice"], d["scale"])
        ]
    arrays = {
        "target": np.concatenate([d["target"] for d in parts]).astype(np.float32),
        "zero_filled": np.concatenate([d["zero_filled"] for d in parts]).astype(np.float32),
        "subject": np.concatenate([[i] * len(d["target"]) for i, d in enumerate(parts)]).astype(np.int32),
        "mask": parts[0]["mask"],
    }
    return arrays, rows


def embedded_slices(t1_path: Path, n: int, step: int) -> np.ndarray:
    """``n`` axial slices (every ``step``-th around the centre) of a conformed, normalised T1w:
    array (n, 96, 112), rows = x (left-right), columns = y (anterior-posterior, phase encoding)."""
    vol = conform(load_nifti(t1_path))
    data = np.clip(normalise(vol.data), 0, None)
    z0 = data.shape[2] // 2 - (n * step) // 2 + 4  # a little above the centre: more brain per slice
    idx = np.clip(np.arange(z0, z0 + n * step, step), 0, data.shape[2] - 1)
    return np.stack([data[:, :, z] for z in idx]).astype(np.float32)


def write_embedded_file(path: Path, slices: np.ndarray, n_coils: int, seed: int, subject: str) -> Path:
    """Simulate multi-coil k-space of ``slices`` (n, rows, cols) and write a fastMRI-layout file."""
    kspace = np.stack([fft2c(simulate_multicoil(s, n_coils, seed=seed * 1000 + i)) for i, s in enumerate(slices)])
    target = rss_reconstruction(kspace)
    header = ismrmrd_header(slices.shape[-2:], slices.shape[-2:], fov_mm=(192.0, 224.0), n_coils=n_coils)
    return write_fastmri(path, kspace, target, header, attrs={"acquisition": "AXT1_embedded", "patient_id": subject})


def ground_truth(f, params: SsfdParams, crop: tuple[int, int]) -> np.ndarray:
    """The ground-truth images of a fastMRI file as the params ask (rss / esc / jsense)."""
    if params.target == "jsense":
        return jsense_reconstruction(f.kspace, crop)
    if params.target == "esc":
        if f.target_key != "reconstruction_esc":
            raise MriqaInputError(f"{f.path}: ssfd.target 'esc' but the file has no reconstruction_esc")
        return centre_crop(f.target, crop)
    return rss_reconstruction(f.kspace, crop)


def slices_from_file(path: Path, params: SsfdParams, seed: int) -> dict[str, np.ndarray]:
    """Ground truth and 4x zero-filled RSS of every slice of one fastMRI file, scaled together so
    that the zero-filled image's 99th percentile is 1 (the only scale known at inference).

    Returns: dict of ``target``, ``zero_filled`` (n, rows, cols) float32, ``scale`` (n,),
    ``slice`` (n,) indices, ``mask`` (cols,) the sampling mask.
    """
    f = read_fastmri(path, params.max_slices_per_file)
    crop = tuple(params.crop) if params.crop else f.recon
    gt = ground_truth(f, params, crop)
    under, mask = undersample_kspace(f.kspace, params.acceleration, params.center_fraction, params.mask_type, seed)
    zf = rss_reconstruction(under, crop)
    scale = np.percentile(zf.reshape(len(zf), -1), 99, axis=1).astype(np.float32)
    scale = np.maximum(scale, 1e-12)
    return {
        "target": gt / scale[:, None, None],
        "zero_filled": zf / scale[:, None, None],
        "scale": scale,
        "slice": np.arange(len(gt)),
        "mask": mask,
    }


def pad_to_multiple(x: np.ndarray, multiple: int = 16) -> np.ndarray:
    """Zero-pad the last two axes (centred) up to multiples of ``multiple`` (U-Net strides)."""
    rows, cols = x.shape[-2:]
    shape = (-(-rows // multiple) * multiple, -(-cols // multiple) * multiple)
    if shape == (rows, cols):
        return x
    return centre_crop(x, shape)
