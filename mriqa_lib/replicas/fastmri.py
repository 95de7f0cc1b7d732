"""Replica of fastMRI brain multi-coil as delivered: ``multicoil_{train,val,test}/file_brain_*.h5``.

The tarballs ``brain_multicoil_{train,val,test}`` unpack to ``multicoil_train/``,
``multicoil_val/`` and ``multicoil_test/``; each volume is one HDF5 file named
``file_brain_<acquisition>_<site>_<id>.h5`` with ``kspace`` (slices, coils, rows, cols) complex64,
``reconstruction_rss`` (slices, recon rows, recon cols), an ``ismrmrd_header`` XML and the attributes
``acquisition``, ``max``, ``norm``, ``patient_id`` (facebookresearch/fastMRI README and
``fastmri/data/mri_data.py``). The replica mimics them from the embedded cohort: axial slices of each
subject's T1w, the readout zero-padded to twice the image (fastMRI brain's 2x readout oversampling:
encoded 640 x 320, recon 320 x 320), a few smooth coil sensitivity maps, the centred orthonormal FFT
(fastMRI's ``fft2c``), the outer phase-encoding columns left unacquired (the header's
``encodingLimits``), and ``reconstruction_rss`` the RSS of the coil images cropped to the
reconSpace matrix, as fastMRI computed it. ``multicoil_test/`` files are already undersampled
(4x equispaced ``mask``, no ``reconstruction_rss``, attributes ``acceleration`` and
``num_low_frequency``) and must never be used as ground truth.

The cohort's train and val subjects go to ``multicoil_train/`` (the first one with a second,
AXT2 volume under the same ``patient_id``), its test subjects to ``multicoil_val/`` (paper 4's
test set), and two val subjects, rescanned, to ``multicoil_test/``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from mriqa_lib.artifacts.kspace import fft2c, simulate_multicoil
from mriqa_lib.data.fastmri import ismrmrd_header, rss_reconstruction, undersample_kspace, write_fastmri
from mriqa_lib.io import read_tsv

METHOD = "ssfd"
DESCRIPTION = "fastMRI brain multi-coil: multicoil_{train,val,test}/file_brain_*.h5 (kspace, reconstruction_rss)"

#: slices per volume, step between them (voxels of the 2 mm conformed T1w)
N_SLICES, SLICE_STEP = 4, 3
#: receive coils of the replica's files
N_COILS = 4
#: readout oversampling of fastMRI brain (encoded rows = 2 x recon rows)
OVERSAMPLING = 2
#: phase-encoding columns left unacquired at each edge (the header's encodingLimits say so)
UNACQUIRED = 4
#: voxel size (mm) of the slices (the conformed grid)
VOXEL_MM = 2.0

TINY: dict[str, object] = {
    "ssfd.encoder_channels": [4, 4, 4, 4, 4],
    "ssfd.group_norm_groups": 2,
    "ssfd.pretext_epochs": 1,
    "ssfd.recon_epochs": 1,
    "ssfd.recon_channels": [4, 4],
    "ssfd.pretext_batch_size": 4,
    "ssfd.recon_batch_size": 4,
    "ssfd.n_boot": 100,
    "ssfd.shift_px": [0, 0.5, 1],
    "ssfd.blur_sigma_px": [0, 0.5, 1],
    "ssfd.noise_std": [0, 0.02, 0.04],
}


def file_name(acquisition: str, site: int, number: int) -> str:
    """fastMRI brain's file name, e.g. ``file_brain_AXT1POST_201_6002780.h5``."""
    return f"file_brain_{acquisition}_{site}_{number}.h5"


def patient_hash(participant_id: str, seed: int) -> str:
    """An opaque ``patient_id`` attribute (fastMRI's are anonymised hashes)."""
    return hashlib.sha256(f"{seed}:{participant_id}".encode()).hexdigest()[:32]


def multicoil_kspace(slices: np.ndarray, seed: int) -> np.ndarray:
    """(slices, coils, 2 x rows, cols) centred k-space of ``slices`` (n, rows, cols): readout
    zero-padded (oversampled), coil images through smooth sensitivities, the outer columns unacquired."""
    n, rows, cols = slices.shape
    pad = (OVERSAMPLING - 1) * rows // 2
    wide = np.pad(slices, ((0, 0), (pad, (OVERSAMPLING - 1) * rows - pad), (0, 0)))
    kspace = np.stack([fft2c(simulate_multicoil(s, N_COILS, seed=seed * 1000 + i)) for i, s in enumerate(wide)])
    kspace[..., :UNACQUIRED] = 0
    kspace[..., cols - UNACQUIRED :] = 0
    return kspace.astype(np.complex64)


def header(rows: int, cols: int) -> bytes:
    """ISMRMRD header: encoded (2 x rows, cols), recon (rows, cols), acquired columns
    ``[UNACQUIRED, cols - UNACQUIRED)``."""
    acquired = cols - 2 * UNACQUIRED
    # fastMRI: padding_left = cols // 2 - centre; choose the centre so that padding_left = UNACQUIRED
    limits = (cols // 2 - UNACQUIRED, acquired - 1)
    return ismrmrd_header(
        (OVERSAMPLING * rows, cols),
        (rows, cols),
        fov_mm=(OVERSAMPLING * rows * VOXEL_MM, cols * VOXEL_MM),
        recon_fov_mm=(rows * VOXEL_MM, cols * VOXEL_MM),
        n_coils=N_COILS,
        system="mriqa replica (embedded cohort)",
        limits=limits,
    )


def write_volume(path: Path, slices: np.ndarray, seed: int, acquisition: str, patient: str) -> Path:
    """One fully sampled volume: kspace, reconstruction_rss (RSS cropped to reconSpace), header, attributes."""
    kspace = multicoil_kspace(slices, seed)
    target = rss_reconstruction(kspace, slices.shape[-2:])
    attrs = {"acquisition": acquisition, "patient_id": patient}
    return write_fastmri(path, kspace, target, header(*slices.shape[-2:]), attrs)


def write_test_volume(path: Path, slices: np.ndarray, seed: int, acquisition: str, patient: str) -> Path:
    """One already undersampled volume as in ``multicoil_test/``: masked kspace, ``mask``, no target."""
    full = multicoil_kspace(slices, seed)
    kspace, mask = undersample_kspace(full, 4.0, 0.08, "equispaced", seed)
    attrs = {"acquisition": acquisition, "patient_id": patient, "acceleration": 4, "num_low_frequency": 9}
    return write_fastmri(path, kspace, None, header(*slices.shape[-2:]), attrs, mask=mask)


def build(out: Path, cohort: Path, seed: int) -> dict[str, object]:
    """``out/fastmri/multicoil_{train,val,test}/file_brain_*.h5`` from ``cohort``; returns ssfd.fastmri_dir."""
    from mriqa_lib.methods.ssfd.data import embedded_slices

    parts = read_tsv(cohort / "participants.tsv", required=("participant_id", "site", "split"))
    sites = {s: 200 + i for i, s in enumerate(sorted(parts["site"].astype(str).unique()))}
    root = Path(out) / "fastmri"
    folder = {"train": "multicoil_train", "val": "multicoil_train", "test": "multicoil_val"}
    rescanned = parts.loc[parts["split"] == "val", "participant_id"].astype(str).tolist()[:2]
    two_contrasts = str(parts.loc[parts["split"] == "train", "participant_id"].iloc[0])
    for k, row in enumerate(parts.itertuples()):
        pid, site = str(row.participant_id), sites[str(row.site)]
        slices = embedded_slices(cohort / pid / "anat" / f"{pid}_T1w.nii.gz", N_SLICES, SLICE_STEP)
        patient, number, where = patient_hash(pid, seed), 6000000 + 1000 * seed + 10 * k, root / folder[row.split]
        write_volume(where / file_name("AXT1POST", site, number), slices, seed + k, "AXT1POST", patient)
        if pid == two_contrasts:  # a second contrast of one patient: both volumes must land in one split
            write_volume(where / file_name("AXT2", site, number + 1), slices, seed + 500, "AXT2", patient)
        if pid in rescanned:
            path = root / "multicoil_test" / file_name("AXT1POST", site, number + 2)
            write_test_volume(path, slices, seed + 900 + k, "AXT1POST", patient_hash(pid + "-rescan", seed))
    return {"ssfd.fastmri_dir": str(root)}
