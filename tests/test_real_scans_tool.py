"""benchmarks/real_scans.py: pairs-right fraction, motion Spearman, P5 table and README block,
on hand-built score tables whose answers are known by construction (no models, no subprocess)."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tool():
    spec = importlib.util.spec_from_file_location("real_scans_tool", ROOT / "benchmarks" / "real_scans.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _table(tool, scans=("a",)) -> pd.DataFrame:
    """The planned copies of each scan; ``injected`` = requested severity (a stand-in for the sidecar);
    ``badness``: the injected RMS for clean (0) and motion, the row number (10-14, all above) for the rest."""
    rows = []
    for scan in scans:
        for c in tool.plan_copies():
            rows.append(
                {
                    "scan": scan,
                    "file": c.file,
                    "artifact": c.artifact,
                    "severity": c.severity,
                    "seed": c.seed,
                    "injected": c.severity,
                    "injected_p5": c.severity,
                }
            )
    f = pd.DataFrame(rows)
    other = (f.artifact != "clean") & (f.artifact != "motion")
    f["badness"] = np.where(other, f.groupby("scan").cumcount(), f.injected)
    return f


def test_plan_has_clean_motion_seeds_and_others(tool):
    copies = tool.plan_copies()
    assert copies[0].artifact == "clean"
    motion = [c for c in copies if c.artifact == "motion"]
    assert len(motion) == len(tool.MOTION_MM) * len(tool.MOTION_SEEDS) >= 9
    assert {c.severity for c in motion} == {1.0, 2.0, 4.0}
    assert len({c.file for c in copies}) == len(copies)  # distinct file names
    assert 15 <= len(copies) <= 20


def test_score_equal_to_severity_ranks_all_pairs_right(tool):
    f = _table(tool)
    f["ecker_lq_margin"] = f.badness  # sign +1: larger = worse
    f["zuo_logdensity"] = -f.badness  # sign -1: smaller = worse, same ranking
    assert tool.pairs_right(f, "ecker_lq_margin", 1.0) == (1.0, 14)
    assert tool.pairs_right(f, "zuo_logdensity", -1.0) == (1.0, 14)
    assert tool.pairs_right(f, "ecker_lq_margin", 1.0, "motion") == (1.0, 9)
    assert tool.motion_spearman(f, "ecker_lq_margin", 1.0) == pytest.approx(1.0)
    assert tool.motion_spearman(f, "zuo_logdensity", -1.0) == pytest.approx(1.0)


def test_reversed_score_ranks_all_pairs_wrong(tool):
    f = _table(tool)
    f["shaw_total_sigma"] = -f.badness
    assert tool.pairs_right(f, "shaw_total_sigma", 1.0) == (0.0, 14)
    assert tool.motion_spearman(f, "shaw_total_sigma", 1.0) == pytest.approx(-1.0)


def test_ties_count_half_and_missing_scores_are_dropped(tool):
    f = _table(tool)
    f["s"] = 0.0  # every corrupted copy ties with the clean one
    assert tool.pairs_right(f, "s", 1.0) == (0.5, 14)
    assert np.isnan(tool.motion_spearman(f, "s", 1.0))  # constant badness: undefined
    # ties in the severity get average ranks: three seeds per severity, score = severity -> still 1
    f["s"] = f.injected
    f.loc[f.file == "motion_4mm_seed0.nii.gz", "s"] = np.nan  # a failed volume is left out
    assert tool.pairs_right(f, "s", 1.0, "motion") == (1.0, 8)
    assert tool.motion_spearman(f, "s", 1.0) == pytest.approx(1.0)
    f.loc[f.artifact == "clean", "s"] = np.nan  # no clean score: no pair at all
    frac, n = tool.pairs_right(f, "s", 1.0)
    assert n == 0 and np.isnan(frac)
    assert tool.pairs_right(f, "no_such_column", 1.0)[1] == 0


def test_pairs_are_within_a_scan_and_spearman_pools_scans(tool):
    f = _table(tool, scans=("a", "b"))
    # scan b's scores are all 100 higher: across scans its clean copy beats scan a's worst copy,
    # but each corrupted copy is only compared with its own scan's clean copy
    f["s"] = f.badness + np.where(f.scan == "b", 100.0, 0.0)
    assert tool.pairs_right(f, "s", 1.0) == (1.0, 28)
    assert tool.motion_spearman(f[f.scan == "a"], "s", 1.0) == pytest.approx(1.0)
    assert tool.motion_spearman(f, "s", 1.0) < 1.0  # pooled over scans, the offset costs rank agreement
    # one pair wrong in scan a (bias field below clean) -> 27 of 28
    f.loc[(f.scan == "a") & (f.artifact == "bias_field"), "s"] = -1.0
    frac, n = tool.pairs_right(f, "s", 1.0)
    assert n == 28 and frac == pytest.approx(27 / 28)
    assert tool.pairs_right(f, "s", 1.0, "bias_field") == (0.5, 2)


def test_method_table_and_p5_table(tool):
    f = _table(tool)
    f["ecker_lq_margin"] = f.badness
    f["bricout_motion_rms"] = np.where(f.artifact == "motion", f.injected * 0.5, 0.0)  # half the injected RMS
    badness = {
        "ecker": ("ecker_lq_margin", 1.0),
        "zuo": ("zuo_logdensity", -1.0),
        "bricout": ("bricout_motion_rms", 1.0),
    }
    table = tool.method_table(f, badness)
    assert list(table.index) == ["ecker", "bricout"]  # zuo did not score: left out
    assert table.loc["ecker", "all"] == 1.0 and table.loc["ecker", "pairs"] == 14
    assert table.loc["bricout", "motion"] == 1.0
    assert table.loc["bricout", "blur"] == 0.5  # P5 gives blur the clean copy's 0: a tie
    assert table.loc["bricout", "all"] == pytest.approx((9 + 5 * 0.5) / 14)
    assert table.loc["bricout", "spearman_motion"] == pytest.approx(1.0)
    p5 = tool.p5_rms_table(f)
    assert list(p5.index) == [0.0, 1.0, 2.0, 4.0]
    assert list(p5.n) == [1, 3, 3, 3]
    assert list(p5.predicted) == pytest.approx([0.0, 0.5, 1.0, 2.0])
    text = tool.format_method_table(table) + tool.format_p5_table(p5)
    assert "ecker" in text and "bricout" in text
    md = tool.markdown_section(table, p5, ["a"], True, "note")
    assert md.startswith(tool.README_BEGIN) and md.endswith(tool.README_END)
    assert "| ecker | " in md and "| 4 | 3 |" in md


def test_injected_rms_recomputed_in_either_definition(tool):
    from mriqa_lib.artifacts import apply_artifact

    img = np.zeros((24, 24, 24), np.float32)
    img[6:18, 6:18, 6:18] = 1.0
    for definition in ("paper", "code"):
        _, realised = apply_artifact("motion", img, severity=2.0, seed=3, rms_definition=definition)
        realised = json.loads(json.dumps(realised, default=lambda o: np.asarray(o).tolist()))  # as in a sidecar
        assert tool.rms_in_definition(realised, "paper") == pytest.approx(realised["rms_mm"])
        assert tool.rms_in_definition(realised, "code") == pytest.approx(realised["rms_successive_mm"])
        assert tool.rms_in_definition(realised, definition) == pytest.approx(realised["severity"])
    assert tool.rms_in_definition({"degrees": [], "translation_mm": []}, "paper") == 0.0
    with pytest.raises(ValueError):
        tool.rms_in_definition(realised, "other")


def test_readme_section_replaced_rest_byte_identical(tool, tmp_path):
    head = "# Title\n\nsome text with unicode: \u00b5m, \u00b1\r\n\n"
    tail = "\n\n## After\nmore text\n"
    old = f"{tool.README_BEGIN}\nold table\n{tool.README_END}"
    readme = tmp_path / "README.md"
    readme.write_bytes((head + old + tail).encode("utf-8"))
    section = f"{tool.README_BEGIN}\n| new | table |\n{tool.README_END}"
    assert tool.replace_section(head + old + tail, section) == head + section + tail
    assert tool.update_readme(readme, section) is True
    assert readme.read_bytes() == (head + section + tail).encode("utf-8")
    assert tool.update_readme(readme, section) is False  # unchanged the second time
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md"]  # no temporary file left


def test_readme_without_markers_is_an_error_and_untouched(tool, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# Title\nno markers here\n")
    section = f"{tool.README_BEGIN}\nx\n{tool.README_END}"
    with pytest.raises(ValueError, match="markers"):
        tool.update_readme(readme, section)
    assert readme.read_text() == "# Title\nno markers here\n"
    with pytest.raises(ValueError):  # only one marker, or in the wrong order
        tool.replace_section(f"a {tool.README_BEGIN} b", section)
    with pytest.raises(ValueError):
        tool.replace_section(f"{tool.README_END} a {tool.README_BEGIN}", section)


def test_missing_scan_skips_with_status_0(tool, tmp_path, capsys):
    assert tool.main(["--scan", str(tmp_path / "absent.nii.gz"), "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("skip:") and "absent.nii.gz" in out and out.count("\n") == 1


def test_missing_models_is_a_clear_error(tool, tmp_path, capsys):
    scan = tmp_path / "scan.nii.gz"
    scan.write_bytes(b"")
    assert tool.main(["--scan", str(scan), "--checkpoints", str(tmp_path / "models")]) == 1
    assert "no trained models" in capsys.readouterr().out


def test_scan_names_are_unique(tool):
    names = tool.scan_names([Path("/x/ch2.nii.gz"), Path("/y/ch2.nii.gz"), Path("/z/t1.nii")])
    assert names == ["ch2", "ch2-2", "t1"]


def test_failed_volumes_are_listed(tool):
    f = _table(tool)
    f["error"] = ""
    f.loc[f.file == "blur_1.5.nii.gz", "error"] = "preparation: refused"
    failed = tool.failed_volumes(f)
    assert list(failed.file) == ["blur_1.5.nii.gz"] and list(failed.error) == ["preparation: refused"]
    assert tool.failed_volumes(f.drop(columns="error")).empty
    f["s"] = np.where(f.file == "blur_1.5.nii.gz", np.nan, f.badness)
    text = tool.report(f, {"ecker": ("s", 1.0)}, "note", "scan a")
    assert "not scored: a/blur_1.5.nii.gz: preparation: refused" in text
