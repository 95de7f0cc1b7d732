"""Classification and agreement metrics with bootstrap confidence intervals.

Thin, documented wrappers so every paper slice computes a number the same way. Image-quality
metrics (SSIM, PSNR) live at the end of this file.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np


def confusion(y_true: Sequence[int], y_pred: Sequence[int], labels: Sequence[int]) -> np.ndarray:
    """Confusion matrix C[i, j] = count(true == labels[i] and pred == labels[j])."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return np.array([[int(np.sum((y_true == a) & (y_pred == b))) for b in labels] for a in labels])


def sensitivity_specificity(y_true: Sequence[bool], y_flag: Sequence[bool]) -> tuple[float, float]:
    """Sensitivity = flagged among positives; specificity = unflagged among negatives (NaN if none)."""
    t, f = np.asarray(y_true, bool), np.asarray(y_flag, bool)
    sens = float((t & f).sum() / t.sum()) if t.any() else float("nan")
    spec = float((~t & ~f).sum() / (~t).sum()) if (~t).any() else float("nan")
    return sens, spec


def accuracy(y_true: Sequence, y_pred: Sequence) -> float:
    return float(np.mean(np.asarray(y_true) == np.asarray(y_pred)))


def balanced_accuracy(y_true: Sequence, y_pred: Sequence) -> float:
    """Mean per-class recall over the classes present in ``y_true``."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return float(np.mean([np.mean(y_pred[y_true == c] == c) for c in np.unique(y_true)]))


def f1_per_class(y_true: Sequence, y_pred: Sequence, labels: Sequence) -> dict:
    """F1 of each class in ``labels`` (0 when the class is never predicted nor present)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    out = {}
    for c in labels:
        tp = np.sum((y_pred == c) & (y_true == c))
        fp = np.sum((y_pred == c) & (y_true != c))
        fn = np.sum((y_pred != c) & (y_true == c))
        out[c] = float(2 * tp / (2 * tp + fp + fn)) if (2 * tp + fp + fn) else 0.0
    return out


def r2_score(y_true: Sequence[float], y_pred: Sequence[float]) -> float:
    """Coefficient of determination 1 - SS_res / SS_tot."""
    y_true, y_pred = np.asarray(y_true, float), np.asarray(y_pred, float)
    ss_tot = np.sum((y_true - y_true.mean()) ** 2)
    return float(1 - np.sum((y_true - y_pred) ** 2) / ss_tot) if ss_tot > 0 else float("nan")


def linear_fit_r2(x: Sequence[float], y: Sequence[float]) -> float:
    """R^2 of the least-squares line y ~ a x + b (squared Pearson correlation)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if x.std() == 0 or y.std() == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1] ** 2)


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman rank correlation."""
    from scipy.stats import spearmanr

    return float(spearmanr(x, y).statistic)


def auroc(y_true: Sequence[bool], score: Sequence[float]) -> float:
    """Area under the ROC curve, higher score = positive (Mann-Whitney; ties count one half)."""
    y, s = np.asarray(y_true, bool), np.asarray(score, float)
    pos, neg = s[y], s[~y]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    diff = pos[:, None] - neg[None, :]
    return float(((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size)


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    statistic: Callable[[np.ndarray], float] = np.mean,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Statistic and percentile bootstrap CI over the first axis: (value, low, high)."""
    values = np.asarray(values)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(values), size=(n_boot, len(values)))
    stats = np.array([statistic(values[i]) for i in idx])
    alpha = (1 - level) / 2
    return float(statistic(values)), float(np.quantile(stats, alpha)), float(np.quantile(stats, 1 - alpha))


# --------------------------------------------------------------------------------------------
# image quality (reference-based): SSIM, PSNR
# --------------------------------------------------------------------------------------------
def ssim(
    reference: np.ndarray,
    image: np.ndarray,
    data_range: float | None = None,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
    truncate: float = 3.5,
) -> float:
    """Structural similarity of two 2-D (or n-D) images with a Gaussian window (Wang et al. 2004).

    Matches ``skimage.metrics.structural_similarity(..., gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=...)``: Gaussian window of std ``sigma`` pixels
    truncated at ``truncate`` std (11 x 11 for 1.5), reflect padding, mean over the map without
    the border of half a window.

    Args:
        reference: ground-truth image.
        image: image to compare (same shape).
        data_range: intensity range (default ``reference.max() - reference.min()``).
        sigma: Gaussian window std (pixels).
        k1, k2: stabilising constants.
        truncate: window half-width in std.
    """
    from scipy import ndimage

    x = np.asarray(reference, dtype=np.float64)
    y = np.asarray(image, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"ssim: shapes differ {x.shape} vs {y.shape}")
    if data_range is None:
        data_range = float(x.max() - x.min())
    if not data_range > 0:
        raise ValueError(f"ssim: data_range must be > 0, got {data_range}")

    def filt(a: np.ndarray) -> np.ndarray:
        return ndimage.gaussian_filter(a, sigma=sigma, truncate=truncate, mode="reflect")

    ux, uy = filt(x), filt(y)
    vx = filt(x * x) - ux * ux
    vy = filt(y * y) - uy * uy
    vxy = filt(x * y) - ux * uy
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    smap = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    pad = (2 * int(truncate * sigma + 0.5)) // 2
    inner = tuple(slice(pad, n - pad) for n in smap.shape)
    return float(smap[inner].mean())


def psnr(reference: np.ndarray, image: np.ndarray, data_range: float | None = None) -> float:
    """Peak signal-to-noise ratio in dB: ``10 log10(data_range^2 / MSE)`` (inf when identical).

    Args:
        reference, image: same-shape arrays.
        data_range: peak value (default ``reference.max() - reference.min()``).
    """
    x = np.asarray(reference, dtype=np.float64)
    y = np.asarray(image, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"psnr: shapes differ {x.shape} vs {y.shape}")
    if data_range is None:
        data_range = float(x.max() - x.min())
    mse = float(np.mean((x - y) ** 2))
    return float("inf") if mse == 0 else float(10 * np.log10(data_range**2 / mse))
