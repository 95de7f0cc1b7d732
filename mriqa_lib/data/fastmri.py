"""fastMRI HDF5 files: reader, writer, and the reconstructions a method needs.

Layout of a fastMRI file (one volume, https://fastmri.org/dataset):

* ``kspace``: complex64, ``(slices, coils, rows, cols)`` (multi-coil) or ``(slices, rows, cols)``
  (single-coil); rows = readout (frequency encoding), cols = phase encoding;
* ``reconstruction_rss`` (multi-coil) / ``reconstruction_esc`` (single-coil): float32
  ``(slices, rx, ry)``, the ground truth cropped to the header's reconSpace matrix;
* ``ismrmrd_header``: the ISMRMRD XML header (bytes), from which the ``encodedSpace`` and
  ``reconSpace`` matrix sizes and the ``encodingLimits/kspace_encoding_step_1`` centre and maximum
  (the acquired phase-encoding columns: fastMRI's ``padding_left`` / ``padding_right``) are read;
* attributes ``acquisition``, ``max``, ``norm``, ``patient_id``;
* test and challenge files (``multicoil_test/``, ``multicoil_challenge/``) are already undersampled:
  they hold a ``mask`` dataset (the sampled columns) and no ``reconstruction_rss``
  (:attr:`FastMRIFile.undersampled`); they can never serve as fully sampled ground truth.

Keys, attributes and header fields as fastMRI's own reader uses them
(facebookresearch/fastMRI ``fastmri/data/mri_data.py``, ``SliceDataset``).

The embedded default writes its simulated multi-coil slices in the same layout, so one reader
serves the real data set and the embedded one. k-space uses the centred orthonormal FFT of
:mod:`mriqa_lib.artifacts.kspace` (fastMRI's ``fft2c`` convention).
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mriqa_lib.artifacts.kspace import ifft2c, line_mask, rss
from mriqa_lib.io import MriqaInputError, atomic_path

ISMRMRD_NS = "http://www.ismrm.org/ISMRMRD"

__all__ = [
    "FastMRIFile",
    "read_fastmri",
    "undersampled_reason",
    "write_fastmri",
    "ismrmrd_header",
    "parse_header",
    "rss_reconstruction",
    "jsense_reconstruction",
    "undersample_kspace",
    "centre_crop",
]


@dataclass
class FastMRIFile:
    """The contents of one fastMRI file.

    ``kspace`` is always 4-D ``(slices, coils, rows, cols)`` (single-coil files get coils = 1;
    ``multicoil`` says which it was). ``target`` is ``reconstruction_rss`` or
    ``reconstruction_esc`` when present. ``encoded`` / ``recon`` are the (rows, cols) matrix
    sizes from the ISMRMRD header, ``padding`` the acquired phase-encoding columns ``[left, right)``
    (fastMRI's ``padding_left`` / ``padding_right``), ``mask`` the ``mask`` dataset of an already
    undersampled (test / challenge) file.
    """

    path: Path | None
    kspace: np.ndarray
    multicoil: bool
    target: np.ndarray | None
    target_key: str | None
    encoded: tuple[int, int]
    recon: tuple[int, int]
    attrs: dict[str, Any] = field(default_factory=dict)
    padding: tuple[int, int] | None = None
    mask: np.ndarray | None = None

    @property
    def undersampled(self) -> bool:
        """True for a test / challenge file: a ``mask`` dataset, or multi-coil without ``reconstruction_rss``
        (the test fastMRI's ``SliceDataset`` applies)."""
        return self.mask is not None or (self.multicoil and self.target_key != "reconstruction_rss")


def ismrmrd_header(
    encoded: tuple[int, int],
    recon: tuple[int, int],
    fov_mm: tuple[float, float] = (240.0, 240.0),
    n_coils: int = 1,
    system: str = "mriqa embedded simulation",
    limits: tuple[int, int] | None = None,
    recon_fov_mm: tuple[float, float] | None = None,
) -> bytes:
    """A minimal ISMRMRD XML header with the fields fastMRI readers use (matrix sizes, FOV, coils,
    phase-encoding limits).

    ``limits`` = (centre, maximum) of ``kspace_encoding_step_1`` (default: every column acquired,
    centre ``cols // 2``); ``recon_fov_mm`` defaults to ``fov_mm``.
    """
    centre, maximum = limits if limits is not None else (encoded[1] // 2, encoded[1] - 1)

    def space(tag: str, matrix: tuple[int, int], fov: tuple[float, float]) -> str:
        return (
            f"<{tag}><matrixSize><x>{matrix[0]}</x><y>{matrix[1]}</y><z>1</z></matrixSize>"
            f"<fieldOfView_mm><x>{fov[0]}</x><y>{fov[1]}</y><z>1</z></fieldOfView_mm></{tag}>"
        )

    xml = (
        f'<?xml version="1.0" encoding="utf-8"?><ismrmrdHeader xmlns="{ISMRMRD_NS}">'
        f"<acquisitionSystemInformation><systemModel>{system}</systemModel>"
        f"<receiverChannels>{int(n_coils)}</receiverChannels></acquisitionSystemInformation>"
        f"<encoding>{space('encodedSpace', encoded, fov_mm)}{space('reconSpace', recon, recon_fov_mm or fov_mm)}"
        f"<encodingLimits><kspace_encoding_step_1><minimum>0</minimum><maximum>{maximum}</maximum>"
        f"<center>{centre}</center></kspace_encoding_step_1></encodingLimits>"
        f"<trajectory>cartesian</trajectory></encoding></ismrmrdHeader>"
    )
    return xml.encode("utf-8")


def parse_header(header: bytes | str, where: str = "ismrmrd_header") -> dict[str, tuple[int, int]]:
    """``{"encoded": (rows, cols), "recon": (rows, cols), "padding": (left, right)}`` from an ISMRMRD
    XML header, as fastMRI's ``SliceDataset`` reads it: ``padding`` is the acquired phase-encoding
    column range, ``left = encoded_cols // 2 - limits.center``, ``right = left + limits.maximum + 1``
    (absent when the header has no ``encodingLimits/kspace_encoding_step_1``)."""
    text = header.decode("utf-8") if isinstance(header, (bytes, np.bytes_)) else str(header)
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise MriqaInputError(f"{where}: invalid ISMRMRD XML header ({exc})") from None
    ns = {"i": ISMRMRD_NS}
    out = {}
    for key, tag in (("encoded", "encodedSpace"), ("recon", "reconSpace")):
        node = root.find(f"i:encoding/i:{tag}/i:matrixSize", ns)
        if node is None:
            raise MriqaInputError(f"{where}: ISMRMRD header has no encoding/{tag}/matrixSize")
        out[key] = (_int(node, "x", where, tag), _int(node, "y", where, tag))
    lims = root.find("i:encoding/i:encodingLimits/i:kspace_encoding_step_1", ns)
    if lims is not None and lims.find("i:center", ns) is not None:
        left = out["encoded"][1] // 2 - _int(lims, "center", where, "encodingLimits")
        out["padding"] = (left, left + _int(lims, "maximum", where, "encodingLimits") + 1)
    return out


def _int(node: ET.Element, name: str, where: str, tag: str) -> int:
    """The integer text of ``node``'s child ``name`` (ISMRMRD namespace); MriqaInputError when absent."""
    text = node.findtext(f"i:{name}", namespaces={"i": ISMRMRD_NS})
    try:
        return int(text)
    except (TypeError, ValueError):
        raise MriqaInputError(f"{where}: ISMRMRD header {tag}/{name} is not an integer ({text!r})") from None


def write_fastmri(
    path: str | os.PathLike,
    kspace: np.ndarray,
    target: np.ndarray | None = None,
    header: bytes | None = None,
    attrs: dict[str, Any] | None = None,
    target_key: str | None = None,
    mask: np.ndarray | None = None,
) -> Path:
    """Write a fastMRI-layout HDF5 file atomically.

    Args:
        path: destination ``.h5``.
        kspace: complex ``(slices, coils, rows, cols)`` (multi-coil) or ``(slices, rows, cols)``.
        target: float ``(slices, rx, ry)`` ground truth (optional).
        header: ISMRMRD XML (default: encoded = recon = (rows, cols)).
        attrs: file attributes (``acquisition``, ``patient_id`` ...); ``max`` / ``norm`` of the
            target are added when a target is given.
        target_key: dataset name of the target (default ``reconstruction_rss`` for multi-coil,
            ``reconstruction_esc`` for single-coil).
        mask: the sampled columns of an already undersampled file (a test / challenge file's
            ``mask`` dataset; such files carry no target).
    """
    import h5py

    kspace = np.asarray(kspace)
    if kspace.ndim not in (3, 4) or not np.iscomplexobj(kspace):
        raise ValueError(f"{path}: kspace must be complex 3-D or 4-D, got {kspace.dtype} {kspace.shape}")
    multicoil = kspace.ndim == 4
    if header is None:
        header = ismrmrd_header(kspace.shape[-2:], kspace.shape[-2:], n_coils=kspace.shape[1] if multicoil else 1)
    attrs = dict(attrs or {})
    path = Path(path)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("kspace", data=kspace.astype(np.complex64))
            f.create_dataset("ismrmrd_header", data=np.bytes_(header))
            if mask is not None:
                f.create_dataset("mask", data=np.asarray(mask))
            if target is not None:
                key = target_key or ("reconstruction_rss" if multicoil else "reconstruction_esc")
                target = np.asarray(target, dtype=np.float32)
                f.create_dataset(key, data=target)
                attrs.setdefault("max", float(target.max()))
                attrs.setdefault("norm", float(np.linalg.norm(target)))
            for k, v in attrs.items():
                f.attrs[k] = v
    return path


def read_fastmri(path: str | os.PathLike, max_slices: int = 0) -> FastMRIFile:
    """Read a fastMRI HDF5 file (single- or multi-coil).

    Args:
        path: the ``.h5`` file.
        max_slices: read only the centre ``max_slices`` slices (0 = all).

    Raises:
        MriqaInputError: missing file, not HDF5 (or truncated), no ``kspace``, wrong shapes, bad header.
    """
    import h5py

    path = Path(path)
    where = str(path)
    if not path.exists():
        raise MriqaInputError(f"{where}: file not found")
    try:
        with h5py.File(path, "r") as f:
            if "kspace" not in f:
                raise MriqaInputError(f"{where}: no 'kspace' dataset (found {sorted(f.keys())})")
            n = f["kspace"].shape[0]
            sl = slice(None)
            if max_slices and n > max_slices:
                a = n // 2 - max_slices // 2
                sl = slice(a, a + max_slices)
            kspace = np.asarray(f["kspace"][sl])
            target_key = next((k for k in ("reconstruction_rss", "reconstruction_esc") if k in f), None)
            target = np.asarray(f[target_key][sl], dtype=np.float32) if target_key else None
            header = f["ismrmrd_header"][()] if "ismrmrd_header" in f else None
            mask = np.asarray(f["mask"]) if "mask" in f else None
            attrs = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in f.attrs.items()}
    except MriqaInputError:
        raise
    except (OSError, KeyError, ValueError) as exc:
        raise MriqaInputError(f"{where}: cannot read fastMRI HDF5 ({type(exc).__name__}: {exc})") from None
    if not np.iscomplexobj(kspace) or kspace.ndim not in (3, 4):
        raise MriqaInputError(f"{where}: 'kspace' must be complex 3-D or 4-D, got {kspace.dtype} {kspace.shape}")
    multicoil = kspace.ndim == 4
    if not multicoil:
        kspace = kspace[:, None]
    if header is not None:
        sizes = parse_header(header, where)
    else:
        sizes = {"encoded": tuple(kspace.shape[-2:]), "recon": tuple(kspace.shape[-2:])}
    if target is not None and target.shape[0] != kspace.shape[0]:
        raise MriqaInputError(f"{where}: {target_key} has {target.shape[0]} slices, kspace {kspace.shape[0]}")
    return FastMRIFile(
        path=path,
        kspace=kspace,
        multicoil=multicoil,
        target=target,
        target_key=target_key,
        encoded=sizes["encoded"],
        recon=sizes["recon"],
        attrs=attrs,
        padding=sizes.get("padding"),
        mask=mask,
    )


def undersampled_reason(path: str | os.PathLike) -> str | None:
    """Why ``path`` is an already undersampled (test / challenge) file, or None for a fully sampled
    multi-coil file; reads the keys only (no k-space), as fastMRI's ``SliceDataset`` tells them apart.

    Raises:
        MriqaInputError: missing, unreadable or truncated HDF5, or no ``kspace`` (naming the file).
    """
    import h5py

    path = Path(path)
    if not path.exists():
        raise MriqaInputError(f"{path}: file not found")
    try:
        with h5py.File(path, "r") as f:
            keys = set(f.keys())
    except OSError as exc:
        raise MriqaInputError(f"{path}: cannot read fastMRI HDF5 ({type(exc).__name__}: {exc})") from None
    if "kspace" not in keys:
        raise MriqaInputError(f"{path}: no 'kspace' dataset (found {sorted(keys)})")
    if "mask" in keys:
        return "has a 'mask' dataset (already undersampled: a test / challenge file)"
    if "reconstruction_rss" not in keys:
        return "has no 'reconstruction_rss' (a test / challenge file, or not multi-coil)"
    return None


def centre_crop(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Centre crop (or zero-pad) the last two axes to ``shape`` (fastMRI's ``center_crop``)."""
    rows, cols = image.shape[-2:]
    out_r, out_c = int(shape[0]), int(shape[1])
    if out_r <= rows and out_c <= cols:
        r0, c0 = (rows - out_r) // 2, (cols - out_c) // 2
        return image[..., r0 : r0 + out_r, c0 : c0 + out_c]
    from mriqa_lib.data.preprocess import crop_or_pad

    lead = image.shape[:-2]
    return crop_or_pad(image, (*lead, out_r, out_c))


def rss_reconstruction(kspace: np.ndarray, crop: tuple[int, int] | None = None) -> np.ndarray:
    """Root-sum-of-squares of the coil images of ``kspace`` ``(..., coils, rows, cols)``, optionally
    centre-cropped to ``crop``. For one coil this is the magnitude image."""
    img = rss(ifft2c(kspace), axis=-3).astype(np.float32)
    return centre_crop(img, crop) if crop is not None else img


def jsense_reconstruction(
    kspace: np.ndarray, crop: tuple[int, int] | None = None, ksp_calib_width: int = 24, mps_ker_width: int = 12
) -> np.ndarray:
    """Coil-combined magnitude with JSENSE sensitivity maps (sigpy), as the paper's ground truth.

    ``x = |sum_c conj(S_c) y_c| / sum_c |S_c|^2`` per slice, where ``y_c`` are the coil images of the
    fully sampled ``kspace`` ``(slices, coils, rows, cols)`` and ``S`` the JSENSE maps.

    Raises:
        ImportError: sigpy is not installed (``pip install sigpy``); use ``target: rss`` instead.
    """
    try:
        from sigpy.mri.app import JsenseRecon
    except ImportError as exc:
        raise ImportError("ssfd.target 'jsense' needs sigpy (pip install sigpy); or set ssfd.target: rss") from exc
    kspace = np.asarray(kspace)
    out = []
    for ksl in kspace:
        maps = JsenseRecon(ksl, ksp_calib_width=ksp_calib_width, mps_ker_width=mps_ker_width, show_pbar=False).run()
        maps = np.asarray(maps)
        coil = ifft2c(ksl)
        num = (np.conj(maps) * coil).sum(axis=0)
        den = (np.abs(maps) ** 2).sum(axis=0)
        out.append(np.abs(num) / np.maximum(den, 1e-6))
    img = np.stack(out).astype(np.float32)
    return centre_crop(img, crop) if crop is not None else img


def undersample_kspace(
    kspace: np.ndarray,
    acceleration: float = 4.0,
    center_fraction: float = 0.08,
    kind: str = "equispaced",
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Mask the phase-encoding columns (last axis) of ``kspace`` with a fastMRI mask.

    Returns:
        (masked k-space, boolean column mask of length ``cols``).
    """
    mask = line_mask(
        kspace.shape, axis=-1, kind=kind, acceleration=acceleration, center_fraction=center_fraction, seed=seed
    )
    return (kspace * mask).astype(np.complex64), mask.ravel().astype(bool)
