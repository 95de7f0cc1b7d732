"""Zero-shot HQ/LQ decision of paper 1: cosine similarity to matched HQ and LQ references."""

from __future__ import annotations

import numpy as np


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of ``a`` ``(..., d)`` with each row of ``b`` ``(m, d)`` -> ``(..., m)``."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    an = a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), 1e-12)
    bn = b / np.maximum(np.linalg.norm(b, axis=-1, keepdims=True), 1e-12)
    return an @ bn.T


def decide(sim_hq: np.ndarray | float, sim_lq: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """Class and SIM score from the mean similarities to the HQ and LQ references.

    class = HQ where ``sim_hq >= sim_lq`` (ties go to HQ), else LQ;
    SIM = ``sim_hq`` for HQ, ``1 - sim_lq`` for LQ (paper 1).

    Returns:
        ``(labels, sim)``: arrays of "HQ"/"LQ" strings and SIM scores.
    """
    hq = np.asarray(sim_hq, dtype=np.float64)
    lq = np.asarray(sim_lq, dtype=np.float64)
    is_hq = hq >= lq
    return np.where(is_hq, "HQ", "LQ"), np.where(is_hq, hq, 1.0 - lq)


def mean_similarities(h: np.ndarray, refs_hq: np.ndarray, refs_lq: np.ndarray) -> tuple[float, float]:
    """Mean cosine similarity of one embedding (or several slices ``(s, d)`` with references
    ``(s, m, d)`` of the same slice positions) to the HQ and to the LQ references."""
    h = np.asarray(h)
    if h.ndim == 1:
        return float(cosine(h, refs_hq).mean()), float(cosine(h, refs_lq).mean())
    hq = np.mean([cosine(h[i], refs_hq[i]).mean() for i in range(len(h))])
    lq = np.mean([cosine(h[i], refs_lq[i]).mean() for i in range(len(h))])
    return float(hq), float(lq)
