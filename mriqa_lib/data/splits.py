"""The one owner of subject splits.

Every adapter and stage asks this module which subjects train, validate and test. One rule holds
for all of them: the embedded cohort's held-out test subjects (``split == "test"`` in
``participants.tsv``, assigned once by :func:`cohort_splits` when the cohort is built) are never in
any method's training or validation data. Methods may evaluate on more subjects than those (their
own test fraction), but the benchmark subjects are always among a method's test subjects.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from mriqa_lib import seeds
from mriqa_lib.io import MriqaInputError

__all__ = ["SPLITS", "cohort_splits", "held_out", "held_out_first", "split_subjects", "split_sites"]

SPLITS = ("train", "val", "test")


def _counts(n: int, fractions: Sequence[float]) -> list[int]:
    """Subjects per split: rounded fractions, at least one for each positive fraction when possible."""
    counts = [int(round(f * n)) for f in fractions]
    if n >= len(fractions):
        counts = [max(c, 1) if f > 0 else c for c, f in zip(counts, fractions)]
    while sum(counts) > n:
        counts[int(np.argmax(counts))] -= 1
    counts[0] += n - sum(counts)
    return counts


def cohort_splits(sites: Sequence[str], fractions: Sequence[float], seed: int) -> list[str]:
    """The embedded cohort's own train/val/test labels, stratified by site (built once, with the cohort).

    Every site with three or more subjects gets at least one test and one validation subject, so
    each site is represented in the held-out test set.
    """
    rng = seeds.rng(seed, "cohort.splits")
    labels = [""] * len(sites)
    for site in dict.fromkeys(sites):
        idx = [i for i, s in enumerate(sites) if s == site]
        rng.shuffle(idx)
        n = len(idx)
        n_test, n_val = int(round(fractions[2] * n)), int(round(fractions[1] * n))
        if n >= 3:
            n_test, n_val = max(n_test, 1), max(n_val, 1)
        for j, i in enumerate(idx):
            labels[i] = "test" if j < n_test else "val" if j < n_test + n_val else "train"
    return labels


def held_out(participants: str | Path | None = None) -> set[str]:
    """The embedded cohort's held-out test subjects (the benchmark's subjects are drawn from them).

    ``participants`` is the cohort's ``participants.tsv`` (default: ``data/embedded``'s). A missing
    file means there is no embedded cohort in use, hence nothing held out.
    """
    from mriqa_lib.io import read_tsv

    path = Path(participants) if participants is not None else Path("data/embedded/participants.tsv")
    if not path.exists():
        return set()
    frame = read_tsv(path, required=("participant_id", "split"))
    return set(frame.loc[frame["split"] == "test", "participant_id"].astype(str))


def split_subjects(
    subjects: Iterable[str],
    fractions: Sequence[float],
    seed: int,
    *,
    test: Iterable[str] = (),
    names: Sequence[str] = SPLITS,
) -> dict[str, str]:
    """Subject -> split name, all scans of a subject in one split.

    Args:
        subjects: subject ids (repeats allowed: one entry per scan).
        fractions: one fraction per name (summing to 1); each positive fraction gets at least one
            subject when there are as many subjects as splits.
        seed: the run seed (stream ``splits.subjects``).
        test: subjects that must land in the last split (the cohort's held-out subjects, see
            :func:`held_out`); they count towards its size, and fill it first.
        names: split names, the held-out one last.

    Raises:
        MriqaInputError: when the forced test subjects leave no subject for the first split.
    """
    uniq = sorted(dict.fromkeys(map(str, subjects)))
    forced = sorted(set(map(str, test)) & set(uniq))
    rest = [s for s in uniq if s not in set(forced)]
    counts = _counts(len(uniq), fractions)
    n_last = max(counts[-1], len(forced))
    order = [rest[i] for i in seeds.rng(seed, "splits.subjects").permutation(len(rest))]
    free = order[: n_last - len(forced)]
    remaining = order[n_last - len(forced) :]
    if uniq and not remaining and len(names) > 1:
        raise MriqaInputError(f"{len(forced)} held-out test subject(s) leave no subject to train on among {len(uniq)}")
    inner = (
        _counts(len(remaining), [f / max(sum(fractions[:-1]), 1e-12) for f in fractions[:-1]]) if len(names) > 1 else []
    )
    out = {s: names[-1] for s in forced + free}
    start = 0
    for name, c in zip(names[:-1], inner):
        for s in remaining[start : start + c]:
            out[s] = name
        start += c
    return out


def split_sites(
    sites: Iterable[str], chosen: Sequence[str] | None, n_chosen: int, seed: int, key: str = "sites"
) -> tuple[list[str], list[str]]:
    """Site-wise split: (other sites, chosen sites), e.g. paper 5's synthesis and QC sites.

    ``chosen`` names the sites explicitly (each must exist; ``key`` names the setting in the error),
    or None to draw ``n_chosen`` of them with ``seed``.
    """
    all_sites = sorted(set(map(str, sites)))
    if chosen is not None:
        unknown = sorted(set(chosen) - set(all_sites))
        if unknown:
            raise MriqaInputError(f"{key}: unknown site(s) {unknown}; sites present: {all_sites}")
        picked = sorted(set(chosen))
    else:
        if n_chosen >= len(all_sites):
            raise MriqaInputError(f"{key}: drawing {n_chosen} of {len(all_sites)} sites leaves none for the rest")
        picked = sorted(np.random.default_rng(seed).choice(all_sites, size=n_chosen, replace=False).tolist())
    return [s for s in all_sites if s not in picked], picked


#: every method's synthesize step writes this file beside its synthetic data (one row per subject)
MANIFEST = "subjects.tsv"


def write_manifest(folder: str | Path, assignment: dict[str, str]) -> Path:
    """Write ``folder/subjects.tsv`` (``participant_id``, ``split``): which subject a method used where.

    The split test reads it to check that no held-out subject reached training or validation.
    """
    import pandas as pd

    from mriqa_lib.io import write_tsv

    frame = pd.DataFrame(sorted(assignment.items()), columns=["participant_id", "split"])
    return write_tsv(Path(folder) / MANIFEST, frame)


def read_manifest(folder: str | Path) -> dict[str, str]:
    """``participant_id -> split`` from ``folder/subjects.tsv`` (see :func:`write_manifest`)."""
    from mriqa_lib.io import read_tsv

    frame = read_tsv(Path(folder) / MANIFEST, required=("participant_id", "split"))
    return dict(zip(frame["participant_id"].astype(str), frame["split"].astype(str)))


def held_out_first(cohort_split: Sequence[str], n_test: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions of (training, test) subjects when a method tests on ``n_test`` subjects of a table.

    Test subjects are the cohort's held-out ``test`` subjects first (all of them, even beyond
    ``n_test``: they never train), then its ``val`` subjects, then a seeded draw from the rest
    (paper 1's selection, whose numbers it keeps). Each group is shuffled with one generator of
    ``seed`` (plain ``default_rng(seed)``, not a named stream: the numbers the method used).

    Args:
        cohort_split: each subject's split in its cohort (``train``/``val``/``test``; one per subject).
        n_test: test subjects wanted.
        seed: the method's seed.

    Returns:
        sorted positions of the training subjects and of the test subjects.

    Raises:
        MriqaInputError: when fewer than 2 subjects are left to train on.
    """
    labels = np.asarray(cohort_split, dtype=object)
    n_test = max(int(n_test), int((labels == "test").sum()))
    if n_test >= len(labels) - 1:
        raise MriqaInputError(
            f"testing on {n_test} subjects (held-out ones included) leaves fewer than 2 of "
            f"{len(labels)} subjects for training"
        )
    rng = np.random.default_rng(seed)
    order: list[int] = []
    for split in ("test", "val"):
        order.extend(rng.permutation(np.flatnonzero(labels == split)).tolist())
    order.extend(rng.permutation(np.setdiff1d(np.arange(len(labels)), order)).tolist())
    test = np.sort(np.array(order[:n_test], dtype=int))
    return np.setdiff1d(np.arange(len(labels)), test), test
