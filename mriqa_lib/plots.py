"""One figure style for every notebook, and an atomic PNG + PDF saver."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from mriqa_lib.io import atomic_path  # noqa: E402

PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]


def style() -> None:
    """Apply the project style (colour-blind-safe palette, readable fonts, no top/right spines)."""
    plt.rcParams.update(
        {
            "figure.dpi": 110,
            "savefig.dpi": 150,
            "savefig.bbox": "tight",
            "font.size": 9,
            "axes.titlesize": 10,
            "axes.labelsize": 9,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.prop_cycle": matplotlib.cycler(color=PALETTE),
            "legend.frameon": False,
            "image.cmap": "gray",
            "image.interpolation": "nearest",
        }
    )


def savefig(fig: plt.Figure, out_dir: str | os.PathLike, name: str, close: bool = False) -> list[Path]:
    """Save ``fig`` as out_dir/name.png and .pdf (atomically); return the paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in ("png", "pdf"):
        path = out_dir / f"{name}.{ext}"
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=ext)
        paths.append(path)
    if close:
        plt.close(fig)
    return paths


def show_slice(
    ax: plt.Axes,
    volume: np.ndarray,
    axis: int = 2,
    index: int | None = None,
    title: str | None = None,
    vmax_pct: float = 99.5,
    spacing: Sequence[float] | None = None,
    **kw,
) -> None:
    """Show one slice of a 3-D volume (neurological view: first in-plane axis to the right,
    second up). ``spacing`` (mm per array axis) gives the true aspect for anisotropic voxels."""
    index = volume.shape[axis] // 2 if index is None else index
    sl = np.take(volume, index, axis=axis)
    vmax = np.percentile(volume, vmax_pct) if "vmax" not in kw else kw.pop("vmax")
    if spacing is not None:
        horiz, vert = [s for i, s in enumerate(spacing) if i != axis]
        kw.setdefault("aspect", vert / horiz)
    ax.imshow(sl.T, origin="lower", vmin=kw.pop("vmin", 0), vmax=vmax, **kw)
    ax.set_axis_off()
    if title:
        ax.set_title(title)


def flat_columns(frame):
    """``frame`` with multi-level column names joined by ", " (empty levels dropped), so a pivot
    table's header reads "pairs_right, site-out" rather than a Python tuple."""
    if frame.columns.nlevels == 1:
        return frame
    names = [", ".join(str(level) for level in col if str(level)) for col in frame.columns]
    return frame.set_axis(names, axis=1)


def save_table(frame, out_dir: str | os.PathLike, name: str) -> list[Path]:
    """Write a pandas table as CSV and Markdown (atomically; multi-level column names flattened)."""
    frame = flat_columns(frame)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    csv, md = out_dir / f"{name}.csv", out_dir / f"{name}.md"
    with atomic_path(csv) as tmp:
        frame.to_csv(tmp, index=False)
    with atomic_path(md) as tmp:
        tmp.write_text(frame.to_markdown(index=False) + "\n")
    return [csv, md]
