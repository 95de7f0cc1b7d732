"""The data sets of paper 2, built from a cohort table: encoder, density, rated and example sets.

Each builder returns float16 arrays (the prepared slices) and the rows of their TSV manifest;
the synthesize stage writes them. Volumes are prepared in ``workers`` forked processes
(:func:`parallel_map`), in table order, so the result does not depend on the number of workers.
What each set holds, and why the rated and example subjects are never in the first two, is in
:mod:`mriqa_lib.methods.zuo.data`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mriqa_lib.data.multicohort import ORIENTATIONS
from mriqa_lib.io import MriqaInputError, load_nifti

from .params import EXAMPLES, ZuoParams

__all__ = ["encoder_and_density_sets", "example_set", "parallel_map", "rated_set", "rated_subjects"]


def _prep_job(args):
    """Prepare one volume: (band slices or None, centre slices or None) as float16."""
    from .prep import band_slices, centre_axial, prepare_volume

    path, p, want_band, want_centre = args
    data = prepare_volume(load_nifti(path), p)
    band = {o: a.astype(np.float16) for o, a in band_slices(data, p).items()} if want_band else None
    centre = centre_axial(data, p).astype(np.float16) if want_centre else None
    return band, centre


def _rated_job(args):
    """One rated-set (or example) volume: artifact on the acquired volume, then preparation (the
    examples' order: :func:`~mriqa_lib.methods.zuo.data.prepared_example`).

    Returns the centre slices, the middle one (thumbnail), both float16, and the realised severity.
    """
    from .data import apply_named, prepared_example
    from .prep import centre_axial, prepare_volume

    kind, path, p, item = args
    if kind == "example":
        data, info = prepared_example(item, path, p)
    else:
        if item["artifact"] == "real":
            vol, info = load_nifti(path), {}
        else:
            vol, info = apply_named(load_nifti(path), item["artifact"], item["severity"], item["seed"])
        data = prepare_volume(vol, p)
    c = centre_axial(data, p)
    return c.astype(np.float16), c[len(c) // 2].astype(np.float16), info.get("severity", np.nan)


def parallel_map(func, jobs: list, workers: int, desc: str) -> list:
    """Ordered map with a progress bar, in ``workers`` forked processes when > 1."""
    from tqdm import tqdm

    if workers <= 1:
        return [func(j) for j in tqdm(jobs, desc=desc, unit="vol")]
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(workers, mp_context=mp.get_context("fork")) as pool:
        return list(tqdm(pool.map(func, jobs), total=len(jobs), desc=desc, unit="vol"))


def encoder_and_density_sets(table, p: ZuoParams, workers: int) -> tuple[dict, np.ndarray, Any, Any]:
    """The encoder set (band slices of the ``train`` volumes, per orientation ``(V, K, S, S)``) and the
    density set (centre axial slices of the ``density_splits`` volumes, ``(V, n, S, S)``).

    Returns:
        ``(bands, centre, train_rows, density_rows)``: arrays and their manifest rows.
    """
    keep = table[table["split"].isin(set(p.density_splits) | {"train"})].reset_index(drop=True)
    jobs = [(row.path, p, row.split == "train", row.split in p.density_splits) for row in keep.itertuples()]
    done = parallel_map(_prep_job, jobs, workers, "zuo prepare")
    bands = {o: np.stack([b[o] for b, _ in done if b is not None]) for o in ORIENTATIONS}
    centre = np.stack([c for _, c in done if c is not None])
    train_rows = keep.loc[keep["split"] == "train", ["participant_id", "cohort"]]
    density_rows = keep.loc[keep["split"].isin(p.density_splits), ["participant_id", "cohort", "split"]]
    return bands, centre, train_rows, density_rows


def rated_subjects(table, p: ZuoParams, source: str):
    """The ``rated_splits`` volumes (never seen by the encoder or the flow), renumbered from 0.

    Raises:
        MriqaInputError: none there (``source`` names the table in the message).
    """
    test = table[table["split"].isin(p.rated_splits)].reset_index(drop=True)
    if len(test) == 0:
        raise MriqaInputError(f"{source}: no {'/'.join(p.rated_splits)} volumes for the rated set")
    return test


def rated_set(test, p: ZuoParams, workers: int) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """The rated test set: real ratings when the table has them for every volume, else the
    simulated plan of :func:`~mriqa_lib.methods.zuo.data.rated_plan`.

    Returns:
        ``(centre, thumb, rows)``: centre slices ``(n, k, S, S)``, thumbnails ``(n, S, S)``, manifest rows.
    """
    from .data import rated_plan

    if "rating" in test.columns and test["rating"].notna().all():
        plan = [
            {
                "subject": i,
                "variant": 0,
                "artifact": "real",
                "r": np.nan,
                "severity": np.nan,
                "seed": 0,
                "rating": r,
                "fail": r != "low",
            }
            for i, r in enumerate(test["rating"])
        ]
    else:
        plan = rated_plan(len(test), p)
    done = parallel_map(
        _rated_job, [("rated", test["path"][it["subject"]], p, it) for it in plan], workers, "zuo rated set"
    )
    rows = [
        {
            "id": f"{test['participant_id'][it['subject']]}_v{it['variant']:02d}",
            "participant_id": test["participant_id"][it["subject"]],
            "cohort": test["cohort"][it["subject"]],
            "split": test["split"][it["subject"]],
            **it,
            "realised_severity": sev,
        }
        for it, (_, _, sev) in zip(plan, done)
    ]
    return np.stack([c for c, _, _ in done]), np.stack([t for _, t, _ in done]), rows


def example_set(test, p: ZuoParams, workers: int) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """Held-out examples A-H (Fig. 3b) of one rated-set subject (``example_subject``).

    Returns:
        ``(centre, thumb, rows)`` as :func:`rated_set`, one per letter of ``EXAMPLES``.
    """
    subj = min(p.example_subject, len(test) - 1)
    done = parallel_map(
        _rated_job, [("example", test["path"][subj], p, letter) for letter in EXAMPLES], workers, "zuo examples"
    )
    rows = [
        {"letter": letter, "artifact": name, "participant_id": test["participant_id"][subj], "severity": sev}
        for (letter, name), (_, _, sev) in zip(EXAMPLES.items(), done)
    ]
    return np.stack([c for c, _, _ in done]), np.stack([t for _, t, _ in done]), rows
