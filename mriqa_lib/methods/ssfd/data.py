"""Data of paper 4: fastMRI volumes (real, or the embedded cohort written in fastMRI's layout)
turned into (ground truth, 4x zero-filled) slice pairs.

Real: fastMRI brain multi-coil as delivered (:func:`fastmri_source_files`): ``multicoil_train/``
-> SSFD train / val (by patient), ``multicoil_val/`` -> SSFD test; the already undersampled
``multicoil_test/`` / ``multicoil_challenge/`` are never read as ground truth.

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
#: share of multicoil_train's patients that validate: paper 4's val / (train + val) slices (6,968 / 34,742)
VAL_FRACTION = 6968 / (27774 + 6968)
#: fastMRI's delivered folders (``brain_multicoil_<name>.tar.xz`` unpacks to ``multicoil_<name>/``)
OFFICIAL = ("train", "val", "test", "challenge")
#: delivered folders of already undersampled files (``mask``, no ``reconstruction_rss``): never truth
UNDERSAMPLED = ("test", "challenge")

#: {split: [(fastMRI file, subject id)]}: the files each split reads
SourceFiles = dict[str, list[tuple[Path, str]]]


def official_folders(root: Path) -> dict[str, Path]:
    """fastMRI's delivered folders under ``root``: ``{"train": root/multicoil_train, ...}``.

    The tarballs ``brain_multicoil_{train,val,test}`` unpack to ``multicoil_<name>/``; a folder
    named after the tarball (``brain_multicoil_<name>/``) is accepted too, but not both at once.

    Raises:
        MriqaInputError: both names of one folder exist (naming both).
    """
    out = {}
    for name in OFFICIAL:
        found = [d for d in (root / f"multicoil_{name}", root / f"brain_multicoil_{name}") if d.is_dir()]
        if len(found) > 1:
            raise MriqaInputError(f"{root}: two folders for fastMRI's {name} set: {found[0]} and {found[1]}; keep one")
        if found:
            out[name] = found[0]
    return out


def fully_sampled(files: list[Path]) -> list[Path]:
    """``files``, each checked to be a fully sampled multi-coil file (``reconstruction_rss``, no ``mask``).

    Raises:
        MriqaInputError: an undersampled (test / challenge) file among them, naming it: it has no
            ground truth and must not be undersampled again.
    """
    from mriqa_lib.data.fastmri import undersampled_reason

    for f in files:
        reason = undersampled_reason(f)
        if reason:
            raise MriqaInputError(f"{f}: {reason}; it cannot be fully sampled ground truth (move it out of {f.parent})")
    return files


def patient_ids(files: list[Path]) -> list[str]:
    """The ``patient_id`` attribute of each file (the file stem when it has none)."""
    import h5py

    out = []
    for f in files:
        with h5py.File(f, "r") as h:
            pid = h.attrs.get("patient_id")
        out.append(pid.decode() if isinstance(pid, bytes) else str(pid) if pid is not None else f.stem)
    return out


def fastmri_source_files(root: str | Path, seed: int, val_fraction: float = VAL_FRACTION) -> SourceFiles:
    """The real fastMRI (brain, multi-coil) files of ``root``, by SSFD split.

    As delivered, ``root`` holds ``multicoil_train/`` and ``multicoil_val/`` (and optionally
    ``multicoil_test/``, ``multicoil_challenge/``). SSFD's test set (paper 4: 199 volumes) comes
    from the official ``multicoil_val`` (the fully sampled held-out set) and its train / val sets from the official
    ``multicoil_train``, split by ``patient_id`` (``val_fraction`` of the patients validate,
    :data:`VAL_FRACTION` as in paper 4). ``multicoil_test`` / ``multicoil_challenge`` are already undersampled
    (``mask``, no ``reconstruction_rss``) and are skipped, with a message naming them. A flat folder
    of ``.h5`` files is split by file with :data:`FLAT_SPLIT`. Every file used is checked to be
    fully sampled.

    Raises:
        MriqaInputError: ``root`` is not a folder; only one of ``multicoil_train`` /
            ``multicoil_val``; an undersampled file where ground truth is read; a split gets no file.
    """
    root = Path(root)
    if not root.is_dir():
        raise MriqaInputError(f"{root}: ssfd.fastmri_dir is not a folder")
    folders = official_folders(root)
    for name in UNDERSAMPLED:
        if name in folders:
            report_skipped(folders[name])
    if "train" in folders or "val" in folders:
        out = _official_split(root, folders, seed, val_fraction)
    elif folders:  # only multicoil_test / multicoil_challenge: nothing fully sampled is left
        raise MriqaInputError(
            f"{root}: only already undersampled fastMRI folders ({', '.join(p.name for p in folders.values())}: "
            "'mask', no 'reconstruction_rss'); SSFD needs the fully sampled multicoil_train/ and multicoil_val/"
        )
    elif any((root / s).is_dir() for s in SPLITS):
        raise MriqaInputError(
            f"{root}: expected fastMRI's delivered folders multicoil_train/ and multicoil_val/ "
            f"(found {sorted(p.name for p in root.iterdir() if p.is_dir())})"
        )
    else:
        out = _flat_split(root, seed)
    if not all(out.values()):
        raise MriqaInputError(
            f"{root}: need .h5 files for train, val and test (found { {k: len(v) for k, v in out.items()} })"
        )
    return out


def report_skipped(folder: Path, shown: int = 5) -> list[Path]:
    """Print which files of an already undersampled folder (multicoil_test / _challenge) are skipped."""
    files = sorted(folder.glob("*.h5"))
    more = f", ... ({len(files) - shown} more)" if len(files) > shown else ""
    names = ", ".join(f.name for f in files[:shown]) + more
    print(
        f"fastMRI: skipping {len(files)} file(s) of {folder} (already undersampled: 'mask', no "
        f"'reconstruction_rss'; never used as ground truth): {names or 'none'}"
    )
    return files


def _official_split(root: Path, folders: dict[str, Path], seed: int, val_fraction: float) -> SourceFiles:
    """multicoil_train -> SSFD train / val by patient, multicoil_val -> SSFD test."""
    from mriqa_lib.data import splits

    missing = [f"multicoil_{n}" for n in ("train", "val") if n not in folders]
    if missing:
        raise MriqaInputError(f"{root}: {missing[0]}/ is missing (fastMRI delivers multicoil_train/, multicoil_val/)")
    train = fully_sampled(sorted(folders["train"].glob("*.h5")))
    test = fully_sampled(sorted(folders["val"].glob("*.h5")))
    patients = patient_ids(train)
    assignment = splits.split_subjects(patients, (1 - val_fraction, val_fraction), seed, names=("train", "val"))
    out: SourceFiles = {s: [] for s in SPLITS}
    for f, pid in zip(train, patients):
        out[assignment[pid]].append((f, f.stem))
    out["test"] = [(f, f.stem) for f in test]
    return out


def _flat_split(root: Path, seed: int) -> SourceFiles:
    """A flat folder of fastMRI files split by file (a fastMRI file is one volume)."""
    from mriqa_lib.data import splits

    files = fully_sampled(sorted(root.glob("*.h5")))
    assignment = splits.split_subjects([f.stem for f in files], FLAT_SPLIT, seed)
    out: SourceFiles = {s: [] for s in SPLITS}
    for f in files:
        out[assignment[f.stem]].append((f, f.stem))
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
        if parts and d["target"].shape[1:] != parts[0]["target"].shape[1:]:
            raise MriqaInputError(
                f"{path}: images of {d['target'].shape[1:]} but {files[0][0]} gives {parts[0]['target'].shape[1:]} "
                "(different reconSpace sizes); set ssfd.crop to one (rows, cols)"
            )
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
    if f.undersampled:
        raise MriqaInputError(
            f"{path}: already undersampled ('mask' dataset or no 'reconstruction_rss': a fastMRI test / "
            "challenge file); it cannot be fully sampled ground truth"
        )
    crop = tuple(params.crop) if params.crop else f.recon
    gt = ground_truth(f, params, crop)
    under, mask = undersample_kspace(f.kspace, params.acceleration, params.center_fraction, params.mask_type, seed)
    if f.padding is not None:  # columns outside the acquired range were never sampled (fastMRI's VarNet transform)
        left, right = f.padding
        mask[: max(left, 0)] = False
        mask[max(right, 0) :] = False
        under = under * mask
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
