"""Self-contained HTML report of `mriqa score`: sortable table, a mosaic per volume, worst first.

Images are embedded as base64 PNG, so the page is one file that opens anywhere.
"""
from __future__ import annotations

import base64
import html
import io
import math
from pathlib import Path
from typing import Any

import numpy as np

from mriqa_lib.io import MriqaInputError, atomic_path, load_nifti

_SORT_JS = """
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
"""

_CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 6px; text-align: right; }
th { background: #f0f0f0; cursor: pointer; position: sticky; top: 0; }
td.text { text-align: left; max-width: 28em; overflow-wrap: anywhere; }
td.path { white-space: nowrap; max-width: none; }
tr.err td { background: #fde8e8; }
.vol { display: inline-block; margin: 6px; vertical-align: top; border: 1px solid #ddd; padding: 4px; }
.vol p { margin: 2px; font-size: 12px; max-width: 420px; overflow-wrap: anywhere; }
.note { color: #a33; }
"""


def mosaic_png(path: Path, extra: dict[str, Path] | None = None) -> str:
    """Base64 PNG with axial, coronal and sagittal mid-slices of ``path`` (and of ``extra`` maps)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    vols = {"image": load_nifti(path).data}
    for name, p in (extra or {}).items():
        try:
            vols[name] = load_nifti(p).data
        except MriqaInputError:
            pass
    fig, axes = plt.subplots(len(vols), 3, figsize=(4.2, 1.45 * len(vols)), squeeze=False)
    for r, (name, v) in enumerate(vols.items()):
        vmax = np.percentile(v, 99.5)
        for c, axis in enumerate((2, 1, 0)):
            ax = axes[r, c]
            ax.imshow(np.take(v, v.shape[axis] // 2, axis=axis).T, origin="lower", cmap="gray" if r == 0 else "magma",
                      vmin=0 if r == 0 else None, vmax=vmax)
            ax.set_axis_off()
        axes[r, 0].set_title(name, fontsize=7, loc="left")
    fig.subplots_adjust(wspace=0.02, hspace=0.15, left=0, right=1, top=0.92, bottom=0)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return '<td data-v="">&ndash;</td>'
    if isinstance(value, (float, np.floating)):
        return f'<td data-v="{float(value):.6g}">{float(value):.4g}</td>'
    if isinstance(value, (bool, np.bool_)):
        return f"<td>{'yes' if value else 'no'}</td>"
    if isinstance(value, (int, np.integer)):
        return f'<td data-v="{int(value)}">{int(value)}</td>'
    return f'<td class="text">{html.escape(str(value))}</td>'


def _path_cell(path: str) -> str:
    """The file name, with the whole path on hover (long absolute paths crush the table)."""
    full = html.escape(str(path))
    return f'<td class="text path" data-v="{full}" title="{full}">{html.escape(Path(str(path)).name)}</td>'


def write_report(frame: "Any", out_dir: Path, unavailable: dict[str, str] | None = None,
                 max_mosaics: int = 200) -> Path:
    """Write ``out_dir/report.html`` from the scores table; volumes ordered worst first."""
    from mriqa_lib.scoring import badness_rank

    frame = frame.copy()
    frame.insert(0, "rank", badness_rank(frame).round(2))
    frame = frame.sort_values("rank", kind="stable")
    errors = frame["error"].fillna("").astype(str).str.len() > 0 if "error" in frame else np.zeros(len(frame), bool)
    cols = list(frame.columns)
    head = "".join(f'<th onclick="sortTable({i})" title="click to sort">{html.escape(c)}</th>' for i, c in enumerate(cols))
    body = []
    for (_, rec), bad in zip(frame.iterrows(), errors):
        cls = ' class="err"' if bad else ""
        cells = [_path_cell(rec[c]) if c == "path" else _cell(rec[c]) for c in cols]
        body.append(f"<tr{cls}>" + "".join(cells) + "</tr>")
    mosaics = []
    for (_, rec), bad in list(zip(frame.iterrows(), errors))[:max_mosaics]:
        if bad and "error" in rec and str(rec["error"]).startswith(str(rec["path"])):
            continue  # unreadable file: nothing to show
        extra = {}
        if isinstance(rec.get("shaw_sigma_map"), str) and rec["shaw_sigma_map"]:
            extra["P3 sigma"] = Path(rec["shaw_sigma_map"])
        try:
            img = mosaic_png(Path(rec["path"]), extra)
        except MriqaInputError:
            continue
        caption = html.escape(str(rec["path"]))
        mosaics.append(f'<div class="vol"><img alt="{caption}" src="data:image/png;base64,{img}"/>'
                       f'<p>#{rec["rank"]:.1f} {caption}</p></div>')
    notes = "".join(f'<li class="note">{html.escape(m)} not scored: {html.escape(w)}</li>'
                    for m, w in (unavailable or {}).items())
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>mriqa scores</title><style>{_CSS}</style>
<script>{_SORT_JS}</script></head><body>
<h1>mriqa image-quality scores</h1>
<p>{len(frame)} volume(s), {int(np.sum(errors))} with errors. Ordered worst first (<code>rank</code>: mean
rank over methods, 1 = worst). Click a column header to sort.</p>
<ul>{notes}</ul>
<table id="scores"><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>
<h2>Volumes, worst first</h2>
{''.join(mosaics)}
</body></html>
"""
    path = out_dir / "report.html"
    with atomic_path(path) as tmp:
        tmp.write_text(page)
    return path
