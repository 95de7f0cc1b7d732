"""Brain extraction with deepbet (Fisch et al. 2024; MIT). Its TorchScript weights ship inside the
PyPI wheel and are loaded with ``torch.jit.load`` by deepbet itself: nothing is downloaded or
unpickled."""

from __future__ import annotations

import functools

import numpy as np

from mriqa_lib.io import Volume


class BrainExtractionError(ValueError):
    """deepbet found no brain in the image."""


@functools.lru_cache(maxsize=1)
def _extractor():
    import torch
    from deepbet import BrainExtraction

    return BrainExtraction(no_gpu=not torch.cuda.is_available())


def brain_mask(volume: Volume, threshold: float = 0.5) -> np.ndarray:
    """deepbet's brain mask (bool, same grid) of a volume in canonical (RAS) orientation.

    deepbet's own post-processing is applied: the largest connected component, holes filled.

    Raises:
        BrainExtractionError: the network found no brain (deepbet cannot even place its box).
    """
    import torch

    bet = _extractor()
    with torch.no_grad():
        try:
            prob = bet.run_model(np.ascontiguousarray(volume.data, dtype=np.float32))
            mask = bet.postprocess(prob > threshold)
        except (AssertionError, ValueError) as exc:  # deepbet asserts on an empty bounding box
            raise BrainExtractionError(f"brain extraction found no brain ({exc or 'empty mask'})") from None
    return np.asarray(mask, dtype=bool)
