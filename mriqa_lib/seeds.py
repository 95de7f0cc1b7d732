"""Named random streams: one place that says which part of the project draws from which stream.

Every seeded draw that is keyed by a stream number goes through :func:`sequence` with a name from
:data:`STREAMS`, so two parts never share a stream by accident and a reader can find every draw of,
say, Shaw's training artefacts by searching for ``"shaw.train_artefacts"``. The numbers are the
ones the code used before the streams had names, so named streams reproduce earlier outputs.
"""

from __future__ import annotations

import os
import random

import numpy as np

__all__ = ["STREAMS", "sequence", "rng", "state", "derive", "seed_everything"]

#: stream name -> the fixed key mixed into ``SeedSequence([seed, key, *keys])``
STREAMS: dict[str, int] = {
    "cohort.splits": 999_999,
    "splits.subjects": 3003,
    "shaw.train_artefacts": 1,
    "shaw.val_artefacts": 2,
    "shaw.multitask_extra": 3,
    "shaw.pairs": 5,
    "shaw.sample_order": 77,
    "shaw.epoch_order": 78,
    "shaw.sample_draw": 79,
    "bricout.synthesis": 11,
    "bricout.degradations": 5005,
    "zuo.subject_looks": 7,
}


def _key(name: str) -> int:
    try:
        return STREAMS[name]
    except KeyError:
        raise KeyError(
            f"unknown random stream '{name}'; add it to mriqa_lib.seeds.STREAMS (known: {', '.join(sorted(STREAMS))})"
        ) from None


def sequence(seed: int, name: str, *keys: int) -> np.random.SeedSequence:
    """``SeedSequence([seed, STREAMS[name], *keys])``: the stream ``name`` of run seed ``seed``."""
    return np.random.SeedSequence([int(seed), _key(name), *(int(k) for k in keys)])


def rng(seed: int, name: str, *keys: int) -> np.random.Generator:
    """A NumPy generator on stream ``name`` (see :func:`sequence`)."""
    return np.random.default_rng(sequence(seed, name, *keys))


def state(seed: int, name: str, *keys: int) -> int:
    """The first 32-bit word of stream ``name`` (an integer seed for a library that takes one)."""
    return int(sequence(seed, name, *keys).generate_state(1)[0])


def derive(seed: int, name: str, *keys: int) -> int:
    """A 31-bit integer seed from stream ``name`` (fits ``torch.manual_seed`` and int32 fields)."""
    return state(seed, name, *keys) % (2**31 - 1)


def seed_everything(seed: int, threads: int | None = None) -> None:
    """Seed Python, NumPy and torch (the global generators a training run draws from); optionally set
    torch's CPU thread count, which float sums depend on."""
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if threads:
        torch.set_num_threads(threads)
    os.environ.setdefault("PYTHONHASHSEED", str(seed))
