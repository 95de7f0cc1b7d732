"""Self-contained HTML report of `mriqa score`, in the spirit of MRIQC's group and individual reports.

The page reads top to bottom: a summary (scans, errors, how many scans each method flags, methods
not run), one strip plot per method (every scan's score, the threshold, flagged scans in red),
one card per scan worst first (verdicts in words, the error, the preparation, a slice mosaic with
the template or brain-mask edge), and last the full numeric table (collapsed; sortable, filterable).
Images are embedded as base64 PNG, so the page is one file that opens anywhere.
"""

from __future__ import annotations

import base64
import functools
import html
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mriqa_lib.io import MriqaInputError, atomic_path, load_nifti
from mriqa_lib.methods import registry
from mriqa_lib.methods.registry import Flag, MethodSpec

FIG_DPI = 75  # mosaics: small, so a 200-scan report stays a few MB
PLOT_DPI = 80
TEMPLATE_EDGE = "#00d8ff"  # cyan: registered template brain edge
MASK_EDGE = "#ffc400"  # amber: the scan's own brain mask
FLAG_RED = "#c62828"

_JS = """
function sortTable(col) {
  const table = document.getElementById('scores');
  const body = table.tBodies[0];
  const rows = Array.from(body.rows);
  const asc = table.dataset.sortCol == col ? table.dataset.sortDir != 'asc' : true;
  rows.sort((a, b) => {
    const x = a.cells[col].dataset.v ?? a.cells[col].textContent;
    const y = b.cells[col].dataset.v ?? b.cells[col].textContent;
    const nx = parseFloat(x), ny = parseFloat(y);
    const c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : String(x).localeCompare(String(y));
    return asc ? c : -c;
  });
  rows.forEach(r => body.appendChild(r));
  table.dataset.sortCol = col; table.dataset.sortDir = asc ? 'asc' : 'desc';
}
function filterRows(text) {
  const needle = text.trim().toLowerCase();
  const rows = document.getElementById('scores').tBodies[0].rows;
  let shown = 0;
  for (const r of rows) {
    const hit = !needle || r.dataset.search.includes(needle);
    r.style.display = hit ? '' : 'none';
    if (hit) shown++;
  }
  document.getElementById('shown').textContent = shown + ' of ' + rows.length + ' rows shown';
}
"""

_CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1200px; padding: 0 1em; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
.muted { color: #666; font-size: 13px; }
#summary .counts { font-size: 18px; margin: 0.4em 0 0.3em; }
#summary .muted { margin-bottom: 0.8em; }
#summary .counts b { font-size: 22px; }
.bad { color: #c62828; }
.tiles { display: flex; flex-wrap: wrap; gap: 10px; }
.tile { border: 1px solid #ddd; border-radius: 6px; padding: 8px 12px; width: 250px; }
.tile .name { font-weight: 600; }
.tile .big { font-size: 22px; font-weight: 600; }
.tile .rule { font-size: 12px; color: #555; }
.tile.notrun { background: #f4f4f4; color: #555; }
.plots { display: flex; flex-wrap: wrap; gap: 12px; }
.plots figure { margin: 0; border: 1px solid #eee; padding: 4px; }
.plots figcaption { font-size: 12px; color: #555; max-width: 370px; }
.card { display: flex; flex-wrap: wrap; gap: 12px; border: 1px solid #ddd; border-left: 6px solid #9e9e9e;
        border-radius: 4px; margin: 10px 0; padding: 8px 10px; }
.card.s-bad { border-left-color: #c62828; } .card.s-ok { border-left-color: #2e7d32; }
.card .info { flex: 1 1 380px; min-width: 300px; font-size: 14px; }
.card .fname { font-weight: 600; font-size: 15px; margin: 0 0 4px; overflow-wrap: anywhere; }
.card .rank { color: #777; font-weight: normal; margin-right: 4px; }
.card p { margin: 4px 0; }
.card img { align-self: flex-start; max-width: 100%; }
.v { display: inline-block; border-radius: 10px; padding: 1px 8px; margin: 2px 3px 2px 0; font-size: 13px; }
.v-pass { background: #e3f4e6; color: #1b5e20; }
.v-flag { background: #fde7e6; color: #b3261e; font-weight: 600; }
.v-none { background: #eee; color: #666; }
.error { background: #fde7e6; border-left: 4px solid #c62828; padding: 4px 8px; color: #8e1c14;
         font-weight: 600; overflow-wrap: anywhere; }
.prep { color: #333; } .prep.failed { color: #b3261e; font-weight: 600; }
.legend { font-size: 12px; color: #555; }
.swatch { display: inline-block; width: 18px; height: 3px; vertical-align: middle; margin: 0 4px; }
details > summary { cursor: pointer; font-size: 18px; font-weight: 600; margin: 1em 0 0.5em; }
#filter { font-size: 14px; padding: 3px 6px; width: 24em; margin-bottom: 6px; }
.tablewrap { overflow-x: auto; max-height: 80vh; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 6px; text-align: right; }
th { background: #f0f0f0; cursor: pointer; position: sticky; top: 0; }
td.text { text-align: left; max-width: 24em; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
td.path { white-space: nowrap; max-width: none; }
tr.err td { background: #fde8e8; }
"""


# ---------------------------------------------------------------- values read back from a TSV


def _missing(value: Any) -> bool:
    """True for None, NaN (float or pandas NA) and empty / whitespace-only strings."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    try:
        return bool(pd.isna(value))  # NaN, NaT and pd.NA
    except (TypeError, ValueError):  # not a scalar
        return False


def _text(value: Any) -> str:
    """The value as stripped text; '' when missing."""
    return "" if _missing(value) else str(value).strip()


def _num(value: Any) -> float | None:
    """The value as a finite float, or None (missing, text, inf)."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _esc(value: Any) -> str:
    """HTML-escaped text (quotes too, so it is safe in attributes)."""
    return html.escape(str(value), quote=True)


def _spec(method: str) -> MethodSpec | None:
    """The registered spec of ``method`` (None for a name the registry does not know)."""
    return registry.methods().get(method)


def _flag(method: str) -> Flag:
    """The method's verdict rule (its spec's ``flag``)."""
    return registry.get(method).flag


def _label(method: str) -> str:
    """'P<n> <name>' label of a method (its name alone when unregistered)."""
    spec = _spec(method)
    return spec.label if spec is not None else method


def _verdict(method: str, rec: dict[str, Any]) -> bool | None:
    """The method's ``flag.flagged`` on one row; None (no verdict) when the row's values cannot be read."""
    try:
        out = _flag(method).flagged(rec)
    except (TypeError, ValueError, KeyError):
        return None
    return None if out is None else bool(out)


def _scored(method: str, rec: dict[str, Any]) -> bool:
    """Whether the row has a value in the method's score column."""
    return _num(rec.get(_flag(method).score)) is not None


def _threshold(frame: Any, method: str) -> float | None:
    """The method's threshold: its number, or the first numeric value in the column it names."""
    thr = _flag(method).threshold
    if thr is None or isinstance(thr, (int, float)):
        return _num(thr)
    if thr not in frame:
        return None
    for value in frame[thr]:
        if _num(value) is not None:
            return _num(value)
    return None


def _errors(frame: Any) -> np.ndarray:
    """Boolean array: the row has a non-empty ``error``."""
    if "error" not in frame:
        return np.zeros(len(frame), bool)
    return np.array([bool(_text(v)) for v in frame["error"]], bool)


def _unreadable(rec: dict[str, Any]) -> bool:
    """An error that starts with the input path: the file itself could not be read."""
    err, path = _text(rec.get("error")), _text(rec.get("path"))
    return bool(err) and bool(path) and err.startswith(path)


def order_worst_first(frame: Any) -> Any:
    """The frame with a ``rank`` column (``badness_rank``, 1 = worst), error rows first, then by rank."""
    from mriqa_lib.scoring import badness_rank

    frame = frame.copy()
    frame.insert(0, "rank", badness_rank(frame).round(2))
    key = np.where(_errors(frame), 0, 1)
    return frame.assign(_err_key=key).sort_values(["_err_key", "rank"], kind="stable").drop(columns="_err_key")


def methods_in(frame: Any) -> list[str]:
    """Registered methods (in paper order) whose score column is in the frame."""
    return [m for m, spec in registry.methods().items() if spec.flag.score in frame]


# ---------------------------------------------------------------- matplotlib helpers


def _pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any, dpi: int) -> str:
    """Close ``fig`` and return it as base64 PNG."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    _pyplot().close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _img(b64: str, alt: str) -> str:
    """An <img> with an embedded PNG."""
    return f'<img alt="{_esc(alt)}" src="data:image/png;base64,{b64}"/>'


# ---------------------------------------------------------------- summary


def _method_counts(records: list[dict[str, Any]], method: str) -> dict[str, int]:
    """How many rows the method scored, flagged, passed, scored without a verdict, and did not score."""
    verdicts = [(_verdict(method, r), _scored(method, r)) for r in records]
    return {
        "scored": sum(s for _, s in verdicts),
        "flagged": sum(v is True for v, _ in verdicts),
        "passed": sum(v is False for v, _ in verdicts),
        "none": sum(v is None and s for v, s in verdicts),
        "unscored": sum(v is None and not s for v, s in verdicts),
    }


def _method_tile(method: str, counts: dict[str, int], n: int) -> str:
    """Summary tile of one method: flagged count (red when > 0), passes, rule."""
    flag = _flag(method)
    if counts["flagged"] or counts["passed"]:
        cls = " bad" if counts["flagged"] else ""
        big = f'<div class="big{cls}" data-flagged="{counts["flagged"]}">{counts["flagged"]} flagged</div>'
        rest = [
            f"{counts['passed']} pass",
            f"{counts['none']} no verdict" if counts["none"] else "",
            f"{counts['unscored']} not scored" if counts["unscored"] else "",
        ]
    else:
        big = '<div class="big muted" data-flagged="0">no verdicts</div>'
        rest = [f"{counts['scored']} of {n} scored"]
    return (
        f'<div class="tile" data-method="{_esc(method)}"><div class="name">{_esc(_label(method))}</div>{big}'
        f"<div>{' &middot; '.join(r for r in rest if r)}</div>"
        f'<div class="rule">{_esc(flag.score)}: {_esc(flag.rule)}</div></div>'
    )


def _prep_counts(frame: Any) -> str:
    """'preparation: 8 registered, 1 failed' from the ``prep`` column ('' when absent)."""
    if "prep" not in frame:
        return ""
    values = [_text(v) or "not recorded" for v in frame["prep"]]
    known = ("registered", "reference space", "off", "failed", "not recorded")
    counts = {v: values.count(v) for v in dict.fromkeys([k for k in known if k in values] + values)}
    parts = [f'<span class="{"bad" if k == "failed" else ""}">{n} {_esc(k)}</span>' for k, n in counts.items()]
    return f'<div class="muted">preparation: {", ".join(parts)}</div>'


def summary_html(frame: Any, records: list[dict[str, Any]], unavailable: dict[str, str]) -> str:
    """Section 1: scans, errors, per-method flagged counts, methods not run."""
    n = len(records)
    errors = [r for r in records if _text(r.get("error"))]
    unreadable = sum(_unreadable(r) for r in errors)
    err_cls = "bad" if errors else ""
    counts = (
        f'<div class="counts"><b id="n-scans">{n}</b> scans &middot; <b id="n-errors" class="{err_cls}">'
        f"{len(errors)}</b> with errors ({unreadable} unreadable)</div>"
    )
    tiles = [_method_tile(m, _method_counts(records, m), n) for m in methods_in(frame)]
    tiles += [
        f'<div class="tile notrun" data-method="{_esc(m)}"><div class="name">{_esc(_label(m))}</div>'
        f"{_esc(m)} not scored: {_esc(why)}</div>"
        for m, why in unavailable.items()
    ]
    return (
        f'<section id="summary"><h2>Summary</h2>{counts}{_prep_counts(frame)}'
        f'<div class="tiles">{"".join(tiles)}</div></section>'
    )


def calibration_html(frame: Any, notes: list[str]) -> str:
    """One line: what the scores are relative to (the ``calibration`` column), and the calibration's notes."""
    said = [_text(v) for v in frame["calibration"]] if "calibration" in frame else []
    said = list(dict.fromkeys(v for v in said if v))
    if not said and not notes:
        return ""
    text = "; ".join(["Scores: " + " / ".join(said) if said else "Calibration"] + list(notes))
    return f'<p id="calibration" class="muted">{_esc(text)}.</p>'


# ---------------------------------------------------------------- strip plots


def _strip_png(method: str, values: np.ndarray, verdicts: list[bool | None], threshold: float | None) -> str:
    """Box plot plus jittered points of one method's scores; flagged red, threshold dashed."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.6, 1.5))
    grey = {"color": "#b0b0b0"}
    ax.boxplot(
        values,
        vert=False,
        widths=0.6,
        showfliers=False,
        medianprops={"color": "#555"},
        boxprops=grey,
        whiskerprops=grey,
        capprops=grey,
    )
    jitter = 1 + np.random.default_rng(0).uniform(-0.22, 0.22, len(values))
    colours = [FLAG_RED if v else ("#2e7d32" if v is False else "#607d8b") for v in verdicts]
    ax.scatter(values, jitter, c=colours, s=30, alpha=0.9, edgecolors="white", linewidths=0.5, zorder=3)
    if threshold is not None:
        ax.axvline(threshold, color=FLAG_RED, ls="--", lw=1.2)
        ax.annotate(
            f"threshold {threshold:.4g}",
            (threshold, 1.42),
            fontsize=7,
            color=FLAG_RED,
            ha="left",
            xytext=(3, 0),
            textcoords="offset points",
        )
    spec = registry.get(method)
    col, sign = spec.badness, spec.badness_sign
    ax.set_xlabel(f"{col}  ({'higher' if sign > 0 else 'lower'} = worse)", fontsize=8)
    ax.set_yticks([])
    ax.set_ylim(0.5, 1.6)
    ax.tick_params(labelsize=7)
    n_verdicts = sum(v is not None for v in verdicts)
    counted = f"{sum(v is True for v in verdicts)} of {len(values)} flagged" if n_verdicts else "no verdicts"
    ax.set_title(f"{_label(method)}: {counted}", fontsize=9, loc="left")
    fig.tight_layout(pad=0.4)
    return _png(fig, PLOT_DPI)


def plots_html(frame: Any, records: list[dict[str, Any]]) -> str:
    """Section 2: one strip plot per method with any score; '' when there is none."""
    figures = []
    for method in methods_in(frame):
        scored = [r for r in records if _scored(method, r)]
        if not scored:
            continue
        flag = _flag(method)
        values = np.array([_num(r[flag.score]) for r in scored])
        thr = _threshold(frame, method)
        png = _strip_png(method, values, [_verdict(method, r) for r in scored], thr)
        where = "no threshold" if thr is None else f"threshold {thr:.4g}"
        src = flag.threshold if isinstance(flag.threshold, str) else None
        where += f" (from {src})" if src and thr is not None else ""
        figures.append(
            f'<figure data-method="{_esc(method)}" data-threshold="{"" if thr is None else f"{thr:.6g}"}">'
            f"{_img(png, method + ' scores')}<figcaption>{_esc(where)}; red: "
            f"{_esc(flag.rule)}</figcaption></figure>"
        )
    if not figures:
        return ""
    return (
        '<section id="plots"><h2>Scores per method</h2><p class="muted">Each dot is a scan: red = flagged, '
        f'green = pass, grey = no verdict.</p><div class="plots">{"".join(figures)}</div></section>'
    )


# ---------------------------------------------------------------- mosaics


@dataclass
class MosaicRow:
    """One row of the mosaic: a volume, an optional outline drawn on it, how to colour it."""

    label: str
    data: np.ndarray
    affine: np.ndarray
    outline: np.ndarray | None = None
    edge: str = TEMPLATE_EDGE
    cmap: str = "gray"
    slices: list[tuple[int, int]] = field(default_factory=list)


def _slice_plan(region: np.ndarray) -> list[tuple[int, int]]:
    """(axis, index): 3 axial slices across the region, 1 coronal and 1 sagittal through its middle."""
    idx = np.argwhere(region)
    lo, hi = (idx.min(0), idx.max(0)) if len(idx) else (np.zeros(3, int), np.array(region.shape) - 1)

    def at(axis: int, fraction: float) -> int:
        return int(np.rint(lo[axis] + fraction * (hi[axis] - lo[axis])))

    return [(2, at(2, 0.3)), (2, at(2, 0.5)), (2, at(2, 0.7)), (1, at(1, 0.5)), (0, at(0, 0.5))]


def _canonical(path: str) -> tuple[np.ndarray, np.ndarray]:
    """Data and affine of a NIfTI reoriented to the closest canonical (RAS) orientation."""
    import nibabel as nib

    vol = load_nifti(path)
    img = nib.as_closest_canonical(nib.Nifti1Image(np.asarray(vol.data, np.float32), vol.affine))
    return np.asarray(img.dataobj, np.float32), np.asarray(img.affine, np.float64)


def _on_grid(mask_path: str, shape: tuple[int, ...], affine: np.ndarray) -> np.ndarray:
    """A mask file as a boolean array on the given grid (resampled by world coordinates if needed)."""
    from mriqa_lib.data.preprocess import resample_to

    vol = load_nifti(mask_path)
    if vol.data.shape == tuple(shape) and np.allclose(vol.affine, affine, atol=1e-3):
        return vol.data > 0.5
    return resample_to(vol.data, vol.affine, affine, shape, order=0) > 0.5


@functools.lru_cache(maxsize=8)
def _template_mask_cached(shape: tuple[int, ...], affine_key: tuple[float, ...]) -> np.ndarray:
    """The ICBM152 brain mask resampled onto a grid given as (shape, flattened 4x4 affine)."""
    from mriqa_lib.data.preprocess import resample_to
    from mriqa_lib.data.template import load_template

    tpl = load_template()
    return resample_to(tpl.mask, tpl.affine, np.array(affine_key).reshape(4, 4), shape, order=1) > 0.5


def template_mask_on(shape: tuple[int, ...], affine: np.ndarray) -> np.ndarray | None:
    """The template brain mask on a grid (cached per grid); None when the template is unavailable."""
    try:
        return _template_mask_cached(tuple(int(s) for s in shape), tuple(np.round(affine, 4).ravel().tolist()))
    except MriqaInputError:
        return None


def _foreground(data: np.ndarray) -> np.ndarray:
    """Voxels above 10 % of the 99th percentile: where to place slices when there is no mask."""
    return data > 0.1 * np.percentile(data[::2, ::2, ::2], 99)


def mosaic_rows(rec: dict[str, Any]) -> list[MosaicRow]:
    """The rows to draw for one scan (prepared image, input with mask, or input with template edge; then
    the voxel map of each method whose spec names a ``map_column``, e.g. P3's uncertainty)."""
    rows = []
    prep_image, prep_mask = _text(rec.get("prep_image")), _text(rec.get("prep_mask"))
    if prep_image:
        data, affine = _canonical(prep_image)
        rows.append(MosaicRow("prepared image + template edge", data, affine, template_mask_on(data.shape, affine)))
    if prep_mask or not prep_image:
        data, affine = _canonical(_text(rec.get("path")))
        if prep_mask:
            rows.append(
                MosaicRow(
                    "input (RAS) + brain mask", data, affine, _on_grid(prep_mask, data.shape, affine), edge=MASK_EDGE
                )
            )
        else:
            rows.append(MosaicRow("input (RAS) + template edge", data, affine, template_mask_on(data.shape, affine)))
    for row in rows:
        region = row.outline if row.outline is not None and row.outline.any() else _foreground(row.data)
        row.slices = _slice_plan(region)
    for spec in registry.methods().values():
        path = _text(rec.get(spec.map_column)) if spec.map_column else ""
        if path:
            rows.append(_map_row(path, f"{spec.paper} {spec.map_label}", rows[0] if prep_image else None))
    return rows


def _map_row(path: str, label: str, prepared: MosaicRow | None) -> MosaicRow:
    """A method's voxel map (e.g. P3's uncertainty) as a heat-map row, titled ``label`` and its range
    (same slices as the prepared image when on its grid)."""
    data, affine = _canonical(path)
    same = prepared is not None and prepared.data.shape == data.shape
    slices = prepared.slices if same else _slice_plan(data > 0)
    vmax = float(np.percentile(data, 99.5))
    return MosaicRow(f"{label} (0\u2013{vmax:.3g})", data, affine, cmap="magma", slices=slices)


def _aspect(affine: np.ndarray, axis: int) -> float:
    """imshow aspect (row spacing / column spacing) of a slice through ``axis`` shown transposed."""
    spacing = np.sqrt((affine[:3, :3] ** 2).sum(0))
    cols, rows = [a for a in range(3) if a != axis]
    return float(spacing[rows] / spacing[cols])


def _draw_row(axes: Any, row: MosaicRow) -> None:
    """Draw one mosaic row's slices (with the outline as a contour) on a row of axes."""
    sample = row.data[::2, ::2, ::2]
    positive = sample[sample > 0]
    vmin = 0.0 if row.cmap != "gray" or not positive.size else float(np.percentile(positive, 0.5))
    vmax = float(np.percentile(positive if positive.size else sample, 99.5)) or 1.0
    for ax, (axis, index) in zip(axes, row.slices):
        ax.imshow(
            np.take(row.data, index, axis=axis).T,
            origin="lower",
            cmap=row.cmap,
            vmin=vmin,
            vmax=vmax,
            aspect=_aspect(row.affine, axis),
            interpolation="nearest",
        )
        if row.outline is not None:
            cut = np.take(row.outline, index, axis=axis).T.astype(float)
            if cut.min() < 0.5 < cut.max():
                ax.contour(cut, levels=[0.5], colors=row.edge, linewidths=0.7)
        ax.set_axis_off()
    axes[0].set_title(row.label, fontsize=8, loc="left")


def mosaic_png(rows: list[MosaicRow]) -> str:
    """Base64 PNG of the mosaic rows (3 axial, 1 coronal, 1 sagittal slice each)."""
    plt = _pyplot()
    fig, axes = plt.subplots(len(rows), 5, figsize=(6.0, 1.35 * len(rows)), squeeze=False)
    for r, row in enumerate(rows):
        _draw_row(axes[r], row)
    fig.subplots_adjust(wspace=0.03, hspace=0.18, left=0.005, right=0.995, top=1 - 0.16 / len(rows), bottom=0.005)
    return _png(fig, FIG_DPI)


# ---------------------------------------------------------------- cards


def _verdict_chip(method: str, rec: dict[str, Any]) -> str:
    """'pass' (green), 'flagged: rule' (red), 'no verdict' or 'not scored' (grey), with the score."""
    flag, verdict = _flag(method), _verdict(method, rec)
    score = _num(rec.get(flag.score))
    value = "" if score is None else f" {score:.4g}"
    if verdict is True:
        cls, words = "v-flag", f"flagged: {flag.rule}"
    elif verdict is False:
        cls, words = "v-pass", "pass"
    else:
        cls, words = "v-none", "no verdict" if score is not None else "not scored"
    title = f"{flag.score}{value}; {flag.rule}"
    z, pct = _num(rec.get(f"{method}_site_z")), _num(rec.get(f"{method}_site_pct"))
    if z is not None and pct is not None:  # relative to the calibration's clean scans (line under the summary)
        value += f" (z {z:+.1f}, pct {pct:.0f})"
        title += "; z-score and percentile of the badness among the calibration's clean scans (larger = worse)"
    return (
        f'<span class="v {cls}" data-method="{_esc(method)}" title="{_esc(title)}">'
        f"{_esc(_label(method))}{_esc(value)}: {_esc(words)}</span>"
    )


def _prep_stats(rec: dict[str, Any]) -> str:
    """'similarity 0.91, Dice 0.93, scale 1.04' from whichever of those the row has."""
    parts = []
    for col, name, fmt in (
        ("prep_similarity", "similarity", ".2f"),
        ("prep_dice", "Dice", ".2f"),
        ("prep_scale", "scale", ".2f"),
    ):
        value = _num(rec.get(col))
        if value is not None:
            parts.append(f"{name} {value:{fmt}}")
    return ", ".join(parts)


def prep_words(rec: dict[str, Any], has_prep: bool) -> tuple[str, str]:
    """One line of words about the preparation, and a CSS class ('failed' when it failed)."""
    if not has_prep:
        return "preparation not recorded (no preparation columns: preparation off)", ""
    state = _text(rec.get("prep"))
    brain = _num(rec.get("prep_brain_cm3"))
    brain_words = f"brain {brain:,.0f} cm\u00b3, " if brain is not None else ""
    stats = _prep_stats(rec)
    seconds = _num(rec.get("prep_seconds"))
    took = f" in {seconds:.1f} s" if seconds is not None else ""
    if state == "registered":
        return f"prepared: {brain_words}registered to the template{took}" + (f" ({stats})" if stats else ""), ""
    if state == "reference space":
        return f"prepared: {brain_words}already in the reference space: used as is", ""
    if state == "off":
        return "preparation off (--no-prepare)", ""
    if state == "failed":
        details = ", ".join(x for x in (brain_words.rstrip(", "), stats) if x)
        return "preparation failed" + (f" ({details})" if details else ""), "failed"
    return (f"preparation: {state}" if state else "preparation: not recorded"), ""


def card_html(i: int, rec: dict[str, Any], methods: list[str], has_prep: bool, mosaic: str) -> str:
    """One scan's card: name, verdicts, error, preparation line and mosaic."""
    path, error = _text(rec.get("path")), _text(rec.get("error"))
    verdicts = [_verdict(m, rec) for m in methods]
    if error or any(v is True for v in verdicts):
        status = "s-bad"
    else:
        status = "s-ok" if any(v is False for v in verdicts) else "s-none"
    rank = _num(rec.get("rank"))
    rank_words = f"#{i + 1}" + (f" (rank {rank:.1f})" if rank is not None else "")
    chips = "".join(_verdict_chip(m, rec) for m in methods)
    entities = " ".join(f"{k} {_esc(_text(rec.get(k)))}" for k in ("subject", "session") if _text(rec.get(k)))
    prep, prep_cls = prep_words(rec, has_prep)
    name = _esc(Path(path).name)
    parts = [
        f'<p class="fname" title="{_esc(path)}"><span class="rank">{rank_words}</span> {name}</p>',
        f'<p class="muted">{entities}</p>' if entities else "",
        f'<p class="error">{_esc(error)}</p>' if error else "",
        f"<p>{chips}</p>" if chips else "",
        f'<p class="prep {prep_cls}" title="{_esc(_text(rec.get("prep_transform")))}">{_esc(prep)}</p>',
    ]
    return (
        f'<div class="card {status}" id="scan-{i}" data-path="{_esc(path)}"><div class="info">{"".join(parts)}'
        f"</div>{mosaic}</div>"
    )


def card_mosaic(rec: dict[str, Any]) -> str:
    """The card's mosaic <img>, or a short note why there is none."""
    if _unreadable(rec):
        return ""
    try:
        rows = mosaic_rows(rec)
        return _img(mosaic_png(rows), Path(_text(rec.get("path"))).name)
    except (MriqaInputError, OSError, ValueError, IndexError) as exc:
        return f'<p class="muted">no mosaic: {_esc(exc)}</p>'


def cards_html(records: list[dict[str, Any]], methods: list[str], has_prep: bool, max_mosaics: int) -> str:
    """Section 3: one card per scan, in the given (worst first) order."""
    cards = []
    for i, rec in enumerate(records):
        mosaic = (
            card_mosaic(rec)
            if i < max_mosaics
            else (f'<p class="muted">mosaic left out (only the first {max_mosaics} scans get one)</p>')
        )
        cards.append(card_html(i, rec, methods, has_prep, mosaic))
    legend = (
        f'<p class="legend">Outlines: <span class="swatch" style="background:{TEMPLATE_EDGE}"></span>'
        f'registered template brain edge, <span class="swatch" style="background:{MASK_EDGE}"></span>'
        "the scan's brain mask. Slices: 3 axial, 1 coronal, 1 sagittal, in RAS orientation (neurological view: "
        "the subject's left is on the left). Hover a name for the full path.</p>"
    )
    return f'<section id="cards"><h2>Scans, worst first</h2>{legend}{"".join(cards)}</section>'


# ---------------------------------------------------------------- table


def _cell(value: Any) -> str:
    """A table cell; numbers carry ``data-v`` for sorting."""
    if _missing(value):
        return '<td data-v="">&ndash;</td>'
    if isinstance(value, (bool, np.bool_)):
        return f"<td>{'yes' if value else 'no'}</td>"
    if isinstance(value, (int, np.integer)):
        return f'<td data-v="{int(value)}">{int(value)}</td>'
    if isinstance(value, (float, np.floating)):
        return f'<td data-v="{float(value):.6g}">{float(value):.4g}</td>'
    return f'<td class="text" title="{_esc(value)}">{_esc(value)}</td>'


def _path_cell(path: str, i: int) -> str:
    """The file name linking to its card, with the whole path on hover (long paths crush the table)."""
    full = _esc(path)
    return f'<td class="text path" data-v="{full}" title="{full}"><a href="#scan-{i}">{_esc(Path(path).name)}</a></td>'


def table_html(frame: Any, records: list[dict[str, Any]]) -> str:
    """Section 4: every column, collapsed in <details>; click a header to sort, type to filter."""
    cols = list(frame.columns)
    head = "".join(f'<th onclick="sortTable({i})" title="click to sort">{_esc(c)}</th>' for i, c in enumerate(cols))
    body = []
    for i, rec in enumerate(records):
        error = _text(rec.get("error"))
        search = _esc(f"{_text(rec.get('path'))} {error}".lower())
        cells = [_path_cell(_text(rec[c]), i) if c == "path" else _cell(rec[c]) for c in cols]
        body.append(f'<tr{" class=err" if error else ""} data-search="{search}">' + "".join(cells) + "</tr>")
    return (
        f'<details id="table-section"><summary>Full table ({len(records)} rows, {len(cols)} columns)</summary>'
        '<input id="filter" type="search" placeholder="filter by file name or error text" '
        'oninput="filterRows(this.value)"/> <span id="shown" class="muted"></span>'
        '<p class="muted">Click a column header to sort.</p><div class="tablewrap">'
        f'<table id="scores"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div></details>'
    )


# ---------------------------------------------------------------- page


def write_report(
    frame: Any,
    out_dir: Path,
    unavailable: dict[str, str] | None = None,
    max_mosaics: int = 200,
    calibration_notes: list[str] | None = None,
) -> Path:
    """Write ``out_dir/report.html`` from the scores table: summary, plots, cards worst first, table.

    ``calibration_notes``: what the site calibration did not cover, said under the summary.
    """
    frame = order_worst_first(frame)
    records = frame.to_dict("records")
    methods = methods_in(frame)
    has_prep = any(c.startswith("prep") for c in frame.columns)
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>mriqa scores</title><style>{_CSS}</style>
<script>{_JS}</script></head><body>
<h1>mriqa image-quality report</h1>
<p class="muted">Scans are ordered worst first: those with errors, then by <code>rank</code> (mean rank over
the methods' scores, 1 = worst).</p>
{summary_html(frame, records, dict(unavailable or {}))}
{calibration_html(frame, list(calibration_notes or []))}
{plots_html(frame, records)}
{cards_html(records, methods, has_prep, max_mosaics)}
{table_html(frame, records)}
</body></html>
"""
    path = Path(out_dir) / "report.html"
    with atomic_path(path) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return path
