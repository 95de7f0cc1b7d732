"""Validated NIfTI / JSON / TSV input-output with atomic writes.

Every reader raises :class:`MriqaInputError` whose message names the offending file, so a
pipeline stage or ``mriqa score`` can report one clear line instead of a traceback.
Every writer goes through a temporary file in the destination folder followed by
``os.replace``: a crash mid-write never leaves a half-written file, and never destroys the
previous version of the output.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "MriqaInputError",
    "Volume",
    "load_nifti",
    "save_nifti",
    "atomic_path",
    "write_json",
    "read_json",
    "write_tsv",
    "read_tsv",
]


class MriqaInputError(ValueError):
    """Bad input data; the message names the file and what is wrong with it."""


@dataclass
class Volume:
    """A validated image: float32 array, 4x4 voxel-to-world affine (mm) and its source path.

    ``data`` is 3-D (x, y, z) for volumes. 4-D files are only accepted when the caller asks
    for it (``allow_4d``); a 4-D file whose last axis has length 1 is squeezed to 3-D.
    """

    data: np.ndarray
    affine: np.ndarray
    path: Path | None = None

    @property
    def spacing(self) -> np.ndarray:
        """Voxel size in mm along each array axis."""
        return np.sqrt((self.affine[:3, :3] ** 2).sum(axis=0))

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)


def _check_affine(affine: np.ndarray, where: str) -> None:
    if affine.shape != (4, 4) or not np.all(np.isfinite(affine)):
        raise MriqaInputError(f"{where}: affine is not a finite 4x4 matrix")
    det = np.linalg.det(affine[:3, :3])
    if abs(det) < 1e-6:
        raise MriqaInputError(f"{where}: affine is singular (voxel volume {det:.3g} mm^3)")
    spacing = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    if np.any(spacing > 50) or np.any(spacing < 0.01):
        raise MriqaInputError(f"{where}: implausible voxel size {np.round(spacing, 4).tolist()} mm (allowed 0.01-50)")


def validate_array(data: np.ndarray, where: str, ndim: tuple[int, ...] = (3,)) -> np.ndarray:
    """Check dimensionality, finiteness and non-emptiness; return float32 data.

    Args:
        data: the image array.
        where: file name or description used in error messages.
        ndim: accepted numbers of dimensions.
    """
    if data.ndim not in ndim:
        raise MriqaInputError(
            f"{where}: expected a {' or '.join(f'{n}-D' for n in ndim)} image, got {data.ndim}-D "
            f"with shape {tuple(data.shape)}"
        )
    if data.size == 0 or min(data.shape) == 0:
        raise MriqaInputError(f"{where}: image is empty (shape {tuple(data.shape)})")
    data = np.asarray(data, dtype=np.float32)
    finite = np.isfinite(data)
    if not finite.all():
        n_bad = int((~finite).sum())
        raise MriqaInputError(f"{where}: {n_bad} of {data.size} voxels are NaN or Inf")
    if float(data.max()) == float(data.min()):
        raise MriqaInputError(f"{where}: image is constant ({float(data.min())}); nothing to assess")
    return data


def load_nifti(path: str | os.PathLike, allow_4d: bool = False, allow_2d: bool = False) -> Volume:
    """Read and validate a NIfTI file (.nii or .nii.gz).

    Args:
        path: file to read.
        allow_4d: accept 4-D data (returned as is); otherwise a 4-D file is accepted only when
            its 4th axis has length 1, and is squeezed to 3-D.
        allow_2d: accept 2-D images (slices); the affine then still is the file's 4x4.

    Raises:
        MriqaInputError: missing, truncated or corrupt file; wrong dimensionality; NaN/Inf;
            empty or constant image; singular or implausible affine.
    """
    import nibabel as nib

    path = Path(path)
    where = str(path)
    if not path.exists():
        raise MriqaInputError(f"{where}: file not found")
    try:
        img = nib.load(str(path))
        data = np.asanyarray(img.dataobj)
        affine = np.asarray(img.affine, dtype=np.float64)
    except (EOFError, OSError, zlib.error, gzip.BadGzipFile, ValueError, nib.filebasedimages.ImageFileError) as exc:
        raise MriqaInputError(f"{where}: cannot read NIfTI ({type(exc).__name__}: {exc})") from None
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    ndim = (3,) + ((4,) if allow_4d else ()) + ((2,) if allow_2d else ())
    data = validate_array(data, where, ndim)
    _check_affine(affine, where)
    return Volume(data=data, affine=affine, path=path)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` atomically.

    The temporary file keeps the destination's suffixes (``.nii.gz``), so libraries that pick
    the format from the name write the right thing. On error the temporary file is removed and
    the previous ``path`` (if any) is left untouched. The file gets the permissions a plain
    ``open()`` would give (0666 less the umask), not the temporary file's private 0600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = suffix if suffix is not None else "".join(path.suffixes)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh empty folder beside ``path`` to fill; on success it replaces ``path``.

    The previous ``path`` is removed only once the new one is in place; on error the new folder
    is removed and ``path`` is left untouched. The folder gets the permissions of a plain
    ``mkdir`` (0777 less the umask), not the temporary folder's private 0700.
    """
    import shutil

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)
    old = tmp.with_suffix(".old")
    if path.exists():
        os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)


def save_nifti(path: str | os.PathLike, data: np.ndarray, affine: np.ndarray, dtype: Any = np.float32) -> Path:
    """Write ``data`` with ``affine`` to ``path`` atomically (gzip level chosen for speed)."""
    import nibabel as nib

    path = Path(path)
    img = nib.Nifti1Image(np.asarray(data, dtype=dtype), np.asarray(affine, dtype=np.float64))
    img.header.set_xyzt_units("mm", "sec")
    with atomic_path(path) as tmp:
        nib.save(img, str(tmp))
    return path


def output_stem(path: str | os.PathLike | None) -> str:
    """A file-name stem for outputs derived from ``path``: its name without the NIfTI suffix plus a
    short hash of the absolute path, so that equal names in different folders (sessions) never
    overwrite each other."""
    import hashlib

    if path is None:
        return "volume_0"
    name = Path(path).name.split(".nii")[0]
    return f"{name}_{hashlib.sha1(str(Path(path).resolve()).encode()).hexdigest()[:8]}"


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write JSON atomically (numpy scalars and arrays converted)."""

    def default(o: Any) -> Any:
        if isinstance(o, np.ndarray):
            return o.tolist()
        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, Path):
            return str(o)
        raise TypeError(f"not JSON serialisable: {type(o).__name__}")

    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, default=default, sort_keys=False) + "\n")
    return path


def read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise MriqaInputError(f"{path}: file not found") from None
    except json.JSONDecodeError as exc:
        raise MriqaInputError(f"{path}: invalid JSON ({exc})") from None


def write_tsv(path: str | os.PathLike, frame: Any) -> Path:
    """Write a pandas DataFrame as TSV atomically (no index column)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, sep="\t", index=False, float_format="%.6g")
    return path


def read_tsv(path: str | os.PathLike, required: tuple[str, ...] = ()) -> Any:
    """Read a TSV into a DataFrame, checking that ``required`` columns exist."""
    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise MriqaInputError(f"{path}: file not found")
    try:
        frame = pd.read_csv(path, sep="\t", dtype={"participant_id": str, "session_id": str})
    except Exception as exc:  # pandas raises many parser error types
        raise MriqaInputError(f"{path}: cannot parse TSV ({exc})") from None
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise MriqaInputError(f"{path}: missing column(s) {missing}; found {list(frame.columns)}")
    return frame
