"""Paper 3's data sets: clean scans split by subject, artefact training sets, test-retest pairs.

The synthesize stage calls these in order: :func:`embedded_scans` or :func:`adni_clean_scans`,
:func:`subject_splits`, :func:`prepare_scans`, :func:`artefact_set` (train, val),
:func:`multitask_extra`, :func:`embedded_pairs` or :func:`adni_pair_set`. Every draw comes from a
named stream of :mod:`mriqa_lib.seeds`, keyed by the scan's row in the scan table, so a set can be
rebuilt alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mriqa_lib import seeds
from mriqa_lib.data import splits
from mriqa_lib.data.preprocess import conform
from mriqa_lib.io import MriqaInputError, Volume, load_nifti, read_tsv, save_nifti
from mriqa_lib.methods.shaw.data import (
    corrupt,
    corrupt_as_scanned,
    misalign,
    prepare_gm,
    prepare_volume,
    sample_corruption,
    work_grid,
)

__all__ = [
    "embedded_scans",
    "adni_clean_scans",
    "adni_pair_subjects",
    "subject_splits",
    "prepare_scans",
    "artefact_set",
    "multitask_extra",
    "embedded_pairs",
    "adni_pair_set",
]

#: the rigid re-alignment of the embedded pairs (fewer iterations than ADNI's: same grid, small motion)
PAIR_ALIGN = {"iterations": 30, "sampling": 0.1}


def _progress(items, desc: str, unit: str):
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit=unit)


def embedded_scans(root: str | Path) -> list[dict[str, Any]]:
    """One record per subject of the embedded cohort in ``root``: T1w and grey-matter map paths."""
    root = Path(root)
    frame = read_tsv(root / "participants.tsv", required=("participant_id",))
    scans = []
    for pid in frame["participant_id"]:
        anat = root / pid / "anat"
        scans.append(
            {
                "subject_id": pid,
                "image_id": pid,
                "path": anat / f"{pid}_T1w.nii.gz",
                "gm_path": anat / f"{pid}_label-GM_probseg.nii.gz",
            }
        )
    return scans


def adni_clean_scans(p: Any, prep: Any = None, log=print) -> list[dict[str, Any]]:
    """The artefact-free ADNI scans (see :mod:`mriqa_lib.data.adni`), prepared and with GM targets.

    Every downloaded LONI file rated artefact-free by ``p.adni_qc_table`` goes through the shared
    preparation chain (``prep``: the ``preparation`` settings), cached in ``p.adni_prepared_dir``;
    the chain's refusals are left out with a log line. Each record's ``path`` is the prepared volume,
    ``source`` the LONI file, ``gm_path`` its grey-matter target and ``gm_source`` where that came
    from (``p.adni_gm_dir`` maps, or the template stand-in, said once in the log).

    Raises:
        MriqaInputError: fewer than three usable artefact-free scans (nothing to split).
    """
    from mriqa_lib.data.adni import GM_TEMPLATE, adni_scans, gm_target, prepare_file

    frame = adni_scans(p.adni_root, p.adni_qc_table)
    log(
        f"[shaw] ADNI: {len(frame)} LONI files, {int(frame['rated'].sum())} rated by {p.adni_qc_table}, "
        f"{int(frame['artefact_free'].sum())} artefact-free"
    )
    if p.adni_gm_dir is None:
        log(f"[shaw] no shaw.adni_gm_dir: the multi-task model's GM targets are the {GM_TEMPLATE}")
    scans = []
    for r in _progress(frame[frame["artefact_free"]].to_dict("records"), "prepare ADNI", "scan"):
        vol, rec = prepare_file(r["path"], p.adni_prepared_dir, prep)
        if vol is None:
            log(f"[shaw] {r['path']} left out: the preparation chain refused it ({rec['prep_error']})")
            continue
        gm_path, gm_source = gm_target(r["path"], rec, p.adni_gm_dir, p.adni_prepared_dir)
        scans.append(
            {
                "subject_id": r["subject_id"],
                "image_id": r["image_id"],
                "path": Path(rec["prep_image"]),
                "source": Path(r["path"]),
                "gm_path": gm_path,
                "gm_source": gm_source,
            }
        )
    if len(scans) < 3:
        raise MriqaInputError(f"{p.adni_qc_table}: fewer than 3 usable artefact-free scans; cannot split 80/10/10")
    return scans


def adni_pair_subjects(p: Any) -> set[str]:
    """Subjects (PTIDs) of ADNI's test-retest pairs (none without ``p.adni_pairs_table``), read off
    the pair images' files (:func:`~mriqa_lib.data.adni.pair_subjects`), so a pair's clean scan is
    held out whichever way the pairs table names its subject."""
    from mriqa_lib.data.adni import pair_subjects

    if not p.adni_pairs_table:
        return set()
    return pair_subjects(p.adni_root, p.adni_pairs_table)


def subject_splits(scans: list[dict[str, Any]], p: Any, held_out: set[str]) -> dict[str, str]:
    """Subject -> train/val/test with fractions ``p.split``, from :func:`mriqa_lib.data.splits.split_subjects`.

    Args:
        scans: records of :func:`embedded_scans` / :func:`adni_clean_scans`.
        p: ``ShawParams``.
        held_out: subjects forced into the test split: the embedded cohort's held-out test subjects
            (the benchmark's), or on ADNI the subjects of the test-retest pairs (experiment 2 must not
            score a scan of a subject the network was trained on).
    """
    return splits.split_subjects([s["subject_id"] for s in scans], p.split, p.seed, test=held_out)


def prepare_scans(
    scans: list[dict[str, Any]], assignment: dict[str, str], grid_mm: float
) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Every scan on the working grid: clean volumes, grey-matter labels (zeros without a map), scan table.

    Returns:
        ``(clean (N, X, Y, Z) float32, gm (N, X, Y, Z) uint8, table)``; the table has
        ``subject_id``, ``image_id``, ``split``, ``path`` (as delivered), ``prepared`` (the volume
        read), ``has_gm``, one row per scan, in order.
    """
    _, shape = work_grid(grid_mm)
    clean, gm, rows = [], [], []
    for s in _progress(scans, "prepare", "vol"):
        clean.append(prepare_volume(load_nifti(s["path"]), grid_mm).data)
        has_gm = s.get("gm_path") is not None and Path(s["gm_path"]).exists()
        gm.append(prepare_gm(load_nifti(s["gm_path"]), grid_mm) if has_gm else np.zeros(shape, np.uint8))
        rows.append(
            {
                "subject_id": s["subject_id"],
                "image_id": s["image_id"],
                "split": assignment[s["subject_id"]],
                "path": str(s.get("source", s["path"])),
                "prepared": str(s["path"]),
                "has_gm": has_gm,
            }
        )
    return np.stack(clean), np.stack(gm), pd.DataFrame(rows)


def reference_volume(table: pd.DataFrame, i: int) -> np.ndarray:
    """Scan row ``i`` on the 2 mm reference grid, where its training artefacts are drawn."""
    return conform(load_nifti(table["prepared"].iloc[i])).data


def artefact_set(
    p: Any,
    clean: np.ndarray,
    gm: np.ndarray,
    table: pd.DataFrame,
    split: str,
    per_volume: int,
    allow_clean: bool,
    stream: str,
) -> tuple[dict[str, np.ndarray], pd.DataFrame]:
    """``per_volume`` corrupted copies of each scan of ``split`` (:func:`sample_corruption`).

    Copy ``j`` of scan row ``i`` draws from stream ``stream`` (``shaw.train_artefacts`` or
    ``shaw.val_artefacts``) with keys ``(i, j)``.

    Returns:
        arrays ``inputs`` (float16), ``clean`` (float16), ``gm`` and ``source`` (index of each
        input's clean volume within this split), and the manifest (one row per input).
    """
    idx = np.flatnonzero(table["split"].to_numpy() == split)
    inputs, source, manifest = [], [], []
    for i in _progress(idx, f"{split} artefacts", "vol"):
        reference = reference_volume(table, i)
        for j in range(per_volume):
            rng = np.random.default_rng(seeds.derive(p.seed, stream, int(i), j))
            spec = sample_corruption(p, rng, allow_clean=allow_clean)
            x, info = corrupt_as_scanned(reference, spec, p.grid_mm)
            inputs.append(x.astype(np.float16))
            source.append(int(np.flatnonzero(idx == i)[0]))  # index into this split's clean volumes
            manifest.append(
                {
                    "subject_id": table["subject_id"].iloc[i],
                    "artefact": spec["artefact"],
                    "severity": float(info.get("severity", 0.0)),
                    "snr_db": info.get("snr_db"),
                    "seed": spec["seed"],
                }
            )
    arrays = {
        "inputs": np.stack(inputs),
        "clean": clean[idx].astype(np.float16),
        "gm": gm[idx],
        "source": np.asarray(source, np.int64),
    }
    return arrays, pd.DataFrame(manifest)


def multitask_extra(p: Any, table: pd.DataFrame) -> dict[str, np.ndarray]:
    """Regional-noise copies of the training scans, seen by the multi-task model only.

    Copy ``j`` of scan row ``i`` draws from stream ``shaw.multitask_extra`` with keys ``(i, j)``;
    the SNR is uniform in ``p.noise_snr_db``.

    Returns:
        ``mt_inputs`` (float16) and ``mt_source`` (index into the training split's clean volumes).
    """
    idx = np.flatnonzero(table["split"].to_numpy() == "train")
    extra, extra_src = [], []
    for k, i in enumerate(idx):
        reference = reference_volume(table, i)
        for j in range(p.multitask_extra_per_volume):
            rng = np.random.default_rng(seeds.derive(p.seed, "shaw.multitask_extra", int(i), j))
            u = float(rng.uniform())
            lo, hi = p.noise_snr_db
            spec = {
                "artefact": "regional_noise",
                "severity": float(10 ** (-(hi - u * (hi - lo)) / 20)),
                "seed": int(rng.integers(0, 2**31 - 1)),
                "kwargs": {},
            }
            extra.append(corrupt_as_scanned(reference, spec, p.grid_mm)[0].astype(np.float16))
            extra_src.append(k)
    return {"mt_inputs": np.stack(extra), "mt_source": np.asarray(extra_src, np.int64)}


def pair_scans(table: pd.DataFrame) -> list[int]:
    """Scan rows that the embedded test-retest pairs are made from: the test subjects' scans.

    Raises:
        MriqaInputError: no test scan.
    """
    rows = [int(i) for i in np.flatnonzero(table["split"].to_numpy() == "test")]
    if not rows:
        raise MriqaInputError("no test subject to build test-retest pairs from (shaw.split gives the test split none)")
    return rows


def _embedded_pair(p: Any, fixed: Volume, k: int, folder: Path) -> dict[str, Any]:
    """Pair ``k`` of a clean scan: an artefact acquisition and a clean one, each in its own head
    position and rigidly re-aligned (stream ``shaw.pairs``, key ``k``); writes both NIfTI files."""
    from mriqa_lib.data.adni import rigid_align

    rng = np.random.default_rng(seeds.derive(p.seed, "shaw.pairs", k))
    moved, mis = misalign(fixed, rng, p.pair_rotation_deg, p.pair_translation_mm)
    spec = sample_corruption(p, rng, scale=tuple(p.pair_severity_scale), allow_clean=False, weighted=False)
    art, info = corrupt(moved.data, spec, p.grid_mm)
    aligned, reg = rigid_align(fixed, Volume(art, fixed.affine), seed=p.seed, **PAIR_ALIGN)
    # the clean partner is a separate acquisition too: its own head position, realigned the
    # same way, so both scans carry the same interpolation smoothing (which lowers sigma)
    moved_clean, _ = misalign(fixed, rng, p.pair_rotation_deg, p.pair_translation_mm)
    clean, _ = rigid_align(fixed, moved_clean, seed=p.seed, **PAIR_ALIGN)
    names = {r: folder / f"pair-{k:03d}_{r}.nii.gz" for r in ("clean", "artefact")}
    save_nifti(names["clean"], clean.data, fixed.affine)
    save_nifti(names["artefact"], aligned.data, fixed.affine)
    return {
        "pair": f"pair-{k:03d}",
        "artefact": spec["artefact"],
        "severity": float(info.get("severity", 0.0)),
        "snr_db": info.get("snr_db"),
        **{f"{r}_file": n.name for r, n in names.items()},
        "misalign_deg": str(mis["misalign_deg"]),
        "misalign_mm": str(mis["misalign_mm"]),
        "align_rotation_deg": str(np.round(reg["rotation_deg"], 3).tolist()),
        "align_translation_mm": str(np.round(reg["translation_mm"], 3).tolist()),
    }


def embedded_pairs(p: Any, clean: np.ndarray, table: pd.DataFrame, folder: str | Path) -> list[dict[str, Any]]:
    """``p.n_pairs`` embedded test-retest pairs (experiment 2), cycling over :func:`pair_scans`.

    Returns:
        one row per pair (``pair``, ``subject_id``, ``artefact``, ``severity``, file names, the
        misalignment and the recovered alignment); the NIfTI files are in ``folder``.
    """
    affine, _ = work_grid(p.grid_mm)
    rows = pair_scans(table)
    out = []
    for k in _progress(range(p.n_pairs), "pairs", "pair"):
        i = rows[k % len(rows)]
        row = _embedded_pair(p, Volume(clean[i], affine), k, Path(folder))
        out.append({"pair": row.pop("pair"), "subject_id": table["subject_id"].iloc[i], **row})
    return out


def adni_pair_set(p: Any, folder: str | Path, prep: Any = None) -> list[dict[str, Any]]:
    """ADNI's labelled test-retest pairs, prepared (``prep``: the ``preparation`` settings; cached in
    ``p.adni_prepared_dir``), on the working grid (artefact scan aligned onto the clean one)."""
    from mriqa_lib.data.adni import adni_pairs

    affine, _ = work_grid(p.grid_mm)
    out = []
    pairs = adni_pairs(p.adni_root, p.adni_pairs_table, p.adni_prepared_dir, prep, log=lambda m: print(f"[shaw] {m}"))
    for k, pr in enumerate(_progress(pairs, "pairs", "pair")):
        c, a = prepare_volume(pr["clean"], p.grid_mm), prepare_volume(pr["artefact"], p.grid_mm)
        names = {r: Path(folder) / f"pair-{k:03d}_{r}.nii.gz" for r in ("clean", "artefact")}
        save_nifti(names["clean"], c.data, affine)
        save_nifti(names["artefact"], a.data, affine)
        out.append(
            {
                "pair": f"pair-{k:03d}",
                "subject_id": pr["subject_id"],
                "clean_image_id": pr["clean_image_id"],
                "artefact_image_id": pr["artefact_image_id"],
                "artefact": "real",
                "severity": np.nan,
                **{f"{r}_file": n.name for r, n in names.items()},
                **{f"align_{key}": str(v) for key, v in pr["alignment"].items()},
            }
        )
    return out
