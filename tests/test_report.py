"""`mriqa score` HTML report: summary counts, plots, cards worst first, mosaics, table (and Chromium).

Every check compares the page with truth set up here: a hand-made scores table (read back from a
TSV, as `mriqa score` does on resume) over small synthetic volumes whose geometry is known.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mriqa_lib.data.template import REF_AFFINE
from mriqa_lib.io import read_tsv, save_nifti, write_tsv
from mriqa_lib.report import _canonical, mosaic_rows, template_mask_on, write_report
from mriqa_lib.scoring import badness_rank

SHAPE = (40, 48, 40)
SPACING = 4.0
# 4 mm grid centred on the template's brain (MNI), so the template edge lands on the "brain"
AFFINE = np.diag([SPACING, SPACING, SPACING, 1.0])
AFFINE[:3, 3] = np.array([0.0, -18.0, 18.0]) - (np.array(SHAPE) - 1) / 2 * SPACING
ZUO_THRESHOLD = -3.21
PREP_COLS = [
    "prep",
    "prep_brain_cm3",
    "prep_similarity",
    "prep_dice",
    "prep_scale",
    "prep_transform",
    "prep_mask",
    "prep_image",
    "prep_seconds",
]


def _brain(affine: np.ndarray = AFFINE, shape: tuple[int, int, int] = SHAPE) -> tuple[np.ndarray, np.ndarray]:
    """An ellipsoid 'brain' (radii 68 x 86 x 60 mm around MNI (0, -18, 18)) and its mask on a grid."""
    ijk = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), -1).astype(float)
    xyz = ijk @ affine[:3, :3].T + affine[:3, 3]
    r = ((xyz - [0.0, -18.0, 18.0]) / [68.0, 86.0, 60.0]) ** 2
    mask = r.sum(-1) < 1
    img = mask * (100 + 20 * np.cos(xyz[..., 0] / 9.0)) + np.random.default_rng(0).normal(0, 2, shape)
    return img.astype(np.float32), mask


def _lps(data: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The same image stored LPS (x and y axes flipped), as many scanners write it."""
    flip = np.diag([-1.0, -1.0, 1.0, 1.0])
    flip[:2, 3] = [data.shape[0] - 1, data.shape[1] - 1]
    return data[::-1, ::-1].copy(), affine @ flip


@pytest.fixture(scope="module")
def scans(tmp_path_factory):
    """Synthetic inputs, prepared images, masks and a P3 map; returns the folder."""
    d = tmp_path_factory.mktemp("scans")
    img, mask = _brain()
    for name in ("a.nii.gz", "b.nii.gz", "c.nii.gz", "d.nii.gz", "we<ird>&.nii.gz"):
        save_nifti(d / name, img, AFFINE)
    save_nifti(d / "lps.nii.gz", *_lps(img, AFFINE))
    save_nifti(d / "a_mask.nii.gz", mask.astype(np.float32), AFFINE)
    ref_img, _ = _brain(REF_AFFINE, (96, 112, 96))
    save_nifti(d / "a_prepared.nii.gz", ref_img, REF_AFFINE)
    save_nifti(d / "a_sigma.nii.gz", (ref_img > 50) * np.float32(0.05), REF_AFFINE)
    return d


def _rows(d: Path) -> list[dict]:
    """The hand-made table: which method flags which scan is set here (see the expected counts)."""
    nan = float("nan")
    prep_a = {
        "prep": "registered",
        "prep_brain_cm3": 1450.4,
        "prep_similarity": 0.912,
        "prep_dice": 0.93,
        "prep_scale": 1.04,
        "prep_transform": "affine 12 dof",
        "prep_mask": str(d / "a_mask.nii.gz"),
        "prep_image": str(d / "a_prepared.nii.gz"),
        "prep_seconds": 3.2,
    }
    return [
        {
            "path": str(d / "a.nii.gz"),
            "ecker_class": "LQ",
            "ecker_lq_margin": 0.30,
            "zuo_logdensity": -1.0,
            "zuo_flag5": False,
            "zuo_threshold5": nan,
            "bricout_motion_rms": 0.2,
            "bricout_qc_class": 1,
            "shaw_total_sigma": 5.0,
            "shaw_sigma_map": str(d / "a_sigma.nii.gz"),
            "error": "",
            **prep_a,
        },
        {
            "path": str(d / "b.nii.gz"),
            "ecker_class": "HQ",
            "ecker_lq_margin": -0.10,
            "zuo_logdensity": -5.0,
            "zuo_flag5": True,
            "zuo_threshold5": ZUO_THRESHOLD,
            "bricout_motion_rms": 0.9,
            "bricout_qc_class": 0,
            "shaw_total_sigma": 6.0,
            "error": "",
            "prep": "reference space",
            "prep_brain_cm3": 1300.0,
            "prep_mask": str(d / "a_mask.nii.gz"),
        },
        {
            "path": str(d / "c.nii.gz"),
            "ecker_class": "HQ",
            "ecker_lq_margin": -0.20,
            "zuo_logdensity": -2.0,
            "zuo_flag5": False,
            "zuo_threshold5": ZUO_THRESHOLD,
            "error": "",
            "prep": "off",
        },
        {
            "path": str(d / "d.nii.gz"),
            "error": "preparation: field of view cuts the brain (top 30 mm missing)",
            "prep": "failed",
            "prep_brain_cm3": 800.0,
            "prep_similarity": 0.41,
        },
        {"path": str(d / "missing.nii.gz"), "error": f"{d / 'missing.nii.gz'}: file not found"},
        {
            "path": str(d / "we<ird>&.nii.gz"),
            "ecker_class": "LQ",
            "ecker_lq_margin": 0.05,
            "zuo_logdensity": -4.0,
            "zuo_flag5": True,
            "zuo_threshold5": ZUO_THRESHOLD,
            "bricout_motion_rms": 0.4,
            "bricout_qc_class": 1,
            "error": "",
        },
        {
            "path": str(d / "lps.nii.gz"),
            "ecker_class": "HQ",
            "ecker_lq_margin": -0.3,
            "zuo_logdensity": -1.5,
            "zuo_flag5": False,
            "zuo_threshold5": ZUO_THRESHOLD,
            "error": "",
        },
    ]


EXPECTED_FLAGGED = {"ecker": 2, "zuo": 2, "bricout": 1, "shaw": 0}  # from the rows above
N_MOSAICS = 6  # every scan but the unreadable one
N_PLOTS = 4  # ecker, zuo, shaw, bricout have scores; ssfd is not in the table


@pytest.fixture(scope="module")
def frame(scans):
    """The table as `mriqa score` reads it back: through a TSV (booleans as text, NaN for blanks)."""
    tsv = scans / "scores.tsv"
    write_tsv(tsv, pd.DataFrame(_rows(scans)))
    return read_tsv(tsv)


@pytest.fixture(scope="module")
def page(frame, scans, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    return write_report(frame, out, {"ssfd": "needs --reference"}).read_text()


def _cards(page: str) -> list[tuple[str, str]]:
    """(escaped path, card html) per card, in page order."""
    starts = [m for m in re.finditer(r'<div class="card [^"]*" id="scan-\d+" data-path="([^"]*)">', page)]
    ends = [m.start() for m in starts[1:]] + [page.index("</section>", starts[-1].start())]
    return [(m.group(1), page[m.start() : e]) for m, e in zip(starts, ends, strict=True)]


def test_summary_counts_flagged_per_method(page, frame):
    tiles = dict(re.findall(r'<div class="tile" data-method="(\w+)">.*?data-flagged="(\d+)"', page))
    assert {m: int(n) for m, n in tiles.items()} == EXPECTED_FLAGGED
    assert re.search(r'id="n-scans">7<', page) and re.search(r'id="n-errors"[^>]*>2<', page)
    assert "1 unreadable" in page
    assert "ssfd not scored: needs --reference" in page
    assert page.index('id="summary"') < page.index('id="plots"') < page.index('id="cards"') < page.index("<details")


def test_cards_worst_first_in_badness_rank_order(page, frame):
    rank = badness_rank(frame).fillna(np.inf).to_numpy()
    error = frame["error"].fillna("").astype(str).str.len().to_numpy() > 0
    order = sorted(range(len(frame)), key=lambda i: (not error[i], rank[i], i))
    expected = [html.escape(frame["path"][i], quote=True) for i in order]
    assert [p for p, _ in _cards(page)] == expected
    assert expected[:2] == [html.escape(frame["path"][i]) for i in (3, 4)]  # the two error rows lead


def test_card_words_error_verdicts_and_preparation(page, scans):
    cards = {html.unescape(p): c for p, c in _cards(page)}
    d_card = cards[str(scans / "d.nii.gz")]
    assert 'class="error">preparation: field of view cuts the brain (top 30 mm missing)' in d_card
    assert "preparation failed (brain 800 cm³, similarity 0.41)" in d_card
    a_card = cards[str(scans / "a.nii.gz")]
    assert (
        "prepared: brain 1,450 cm³, registered to the template in 3.2 s (similarity 0.91, Dice 0.93, scale 1.04)"
        in a_card
    )
    assert "P1 ecker 0.3: flagged: LQ" in a_card and "P2 zuo -1: pass" in a_card and "P5 bricout 0.2: pass" in a_card
    assert "P3 shaw 5: no verdict" in a_card
    b_card = cards[str(scans / "b.nii.gz")]
    assert "already in the reference space: used as is" in b_card
    assert "P2 zuo -5: flagged: log-density below the 5 % tau threshold" in b_card
    c_card = cards[str(scans / "c.nii.gz")]
    assert "preparation off (--no-prepare)" in c_card and "P5 bricout: not scored" in c_card
    assert "preparation: not recorded" in cards[str(scans / "lps.nii.gz")]
    missing = cards[str(scans / "missing.nii.gz")]
    assert "file not found" in missing and "data:image/png" not in missing  # unreadable: no mosaic
    assert sum("data:image/png" in c for c in cards.values()) == N_MOSAICS


def test_zuo_threshold_from_column_and_plots(page):
    assert re.search(rf'<figure data-method="zuo" data-threshold="{ZUO_THRESHOLD}"', page)
    assert "(from zuo_threshold5)" in page
    assert re.search(r'<figure data-method="ecker" data-threshold="0"', page)
    assert re.search(r'<figure data-method="shaw" data-threshold=""', page)
    assert page.count("data:image/png;base64") == N_PLOTS + N_MOSAICS


def test_table_collapsed_sortable_filterable(page, scans):
    details = page[page.index("<details") : page.index("</details>")]
    assert '<table id="scores">' in details and details.count("<tr") == 1 + 7
    assert 'onclick="sortTable(0)"' in details and 'oninput="filterRows(this.value)"' in details
    assert page.count("<tr") == 1 + 7  # no other table on the page
    search = html.escape(f"{scans / 'd.nii.gz'} preparation: field of view".lower())
    assert f'data-search="{search}' in details  # the filter box matches file names and error text


def test_paths_escaped(page):
    assert "we<ird>" not in page and "we&lt;ird&gt;&amp;.nii.gz" in page


def test_frame_without_prep_columns_renders(frame, tmp_path):
    bare = frame.drop(columns=[c for c in frame.columns if c.startswith("prep")] + ["shaw_sigma_map"])
    page = write_report(bare, tmp_path, max_mosaics=3).read_text()
    assert page.count("preparation not recorded (no preparation columns: preparation off)") == 7
    # the first 3 cards are the two error rows (one unreadable: no mosaic) and the worst scored scan
    assert page.count("data:image/png;base64") == N_PLOTS + 2
    assert page.count("mosaic left out (only the first 3 scans get one)") == 4


def test_mosaic_rows_pick_what_the_preparation_left(frame):
    recs = {Path(r["path"]).name: r for r in frame.to_dict("records")}

    def labels(name: str) -> list[str]:
        return [r.label.split(" (0")[0] for r in mosaic_rows(recs[name])]

    assert labels("a.nii.gz") == ["prepared image + template edge", "input (RAS) + brain mask", "P3 uncertainty σ"]
    assert labels("b.nii.gz") == ["input (RAS) + brain mask"]
    assert labels("c.nii.gz") == ["input (RAS) + template edge"]
    mask_row = mosaic_rows(recs["b.nii.gz"])[0]
    assert mask_row.outline.sum() == _brain()[1].sum()  # the mask file, on the input's grid


def test_input_shown_in_canonical_orientation(scans):
    data, affine = _canonical(str(scans / "lps.nii.gz"))
    assert np.allclose(affine, AFFINE) and np.allclose(data, _brain()[0])


def test_template_edge_lands_on_the_brain_by_world_coordinates():
    _, truth = _brain()
    tpl = template_mask_on(SHAPE, AFFINE)
    dice = 2 * (tpl & truth).sum() / (tpl.sum() + truth.sum())
    assert dice > 0.75
    shifted = AFFINE.copy()
    shifted[:3, 3] += 60.0  # the same grid 6 cm away: the template edge must move off the brain
    assert 2 * (template_mask_on(SHAPE, shifted) & truth).sum() / (tpl.sum() + truth.sum()) < dice - 0.3


CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian chromium not installed")
def test_report_renders_in_headless_chromium(frame, tmp_path):
    """Screenshot (set MRIQA_REPORT_SCREENSHOT=path to keep it) and the DOM after Chromium ran the page."""
    from PIL import Image

    page = write_report(frame, tmp_path, {"ssfd": "needs --reference"})
    flags = [*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,1600"]
    shot = tmp_path / "shot.png"
    subprocess.run(
        ["chromium", *flags, f"--screenshot={shot}", page.as_uri()], check=True, timeout=90, capture_output=True
    )
    if os.environ.get("MRIQA_REPORT_SCREENSHOT"):
        shutil.copy(shot, os.environ["MRIQA_REPORT_SCREENSHOT"])
    rgb = np.asarray(Image.open(shot).convert("RGB"), dtype=float)
    assert rgb.shape[0] > 1000 and rgb.std() > 10  # not a blank page
    red = (rgb[..., 0] > 150) & (rgb[..., 1] < 90) & (rgb[..., 2] < 90)
    assert red.sum() > 50  # flagged scans and the error are drawn in red
    dom = subprocess.run(
        ["chromium", *flags, "--dump-dom", page.as_uri()], check=True, timeout=90, capture_output=True, text=True
    ).stdout
    assert 'id="summary"' in dom and len(re.findall(r'class="tile( notrun)?"', dom)) == 5
    assert len(re.findall(r'<div class="card ', dom)) == 7 and dom.count("<tr") == 1 + 7
    assert dom.count("data:image/png;base64") == N_PLOTS + N_MOSAICS
