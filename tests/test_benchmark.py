"""Benchmark summary: AUROC / Spearman per method x artifact, and the generated README block."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mriqa_lib.stages.benchmark import README_BEGIN, README_END, readme_section, summarise, update_readme


def _scores() -> pd.DataFrame:
    rows = []
    rng = np.random.default_rng(0)
    for s in range(4):
        rows.append({"subject": s, "artifact": "clean", "severity_level": 0})
        for lvl in (1, 2, 3):
            rows.append({"subject": s, "artifact": "noise", "severity_level": lvl})
            rows.append({"subject": s, "artifact": "blur", "severity_level": lvl})
    f = pd.DataFrame(rows)
    # shaw: badness grows with noise severity only; blind to blur (random)
    f["shaw_total_sigma"] = np.where(f.artifact == "noise", f.severity_level * 10.0, 0.0) + rng.random(len(f))
    # zuo: log-density falls (badness rises) with blur severity only
    f["zuo_logdensity"] = -np.where(f.artifact == "blur", f.severity_level * 10.0, 0.0) + rng.random(len(f))
    f["shaw_seconds"], f["zuo_seconds"] = 0.5, 0.25
    return f


def test_summary_auroc_and_spearman():
    t = summarise(_scores(), ["zuo", "shaw"]).set_index(["method", "artifact"])
    assert t.loc[("shaw", "noise"), "auroc"] == 1.0 and t.loc[("zuo", "blur"), "auroc"] == 1.0
    assert t.loc[("shaw", "noise"), "spearman"] > 0.9
    assert abs(t.loc[("shaw", "blur"), "auroc"] - 0.5) < 0.35  # blind: near chance
    assert t.loc[("zuo", "noise"), "seconds_per_volume"] == 0.25


def test_readme_section_marks_best_and_replaces_block(tmp_path):
    table = summarise(_scores(), ["zuo", "shaw"])
    section = readme_section(table)
    assert "| blur | **1.00** |" in section and section.splitlines()[-1] == README_END
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{README_BEGIN}\nSTALE-TABLE\n{README_END}\noutro\n")
    assert update_readme(readme, section)
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("\noutro\n") and "STALE-TABLE" not in text
    assert not update_readme(readme, section)  # idempotent


def test_missing_markers_raise(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("no markers")
    with pytest.raises(ValueError, match="markers"):
        update_readme(readme, "x")


def test_rotating_design_covers_every_artifact_level_once():
    from mriqa_lib.stages.benchmark import benchmark_design

    subjects, names, levels = ["s1", "s2", "s3"], ["a", "b"], [0.5, 1.0]
    rot = benchmark_design(subjects, names, levels, "rotate")
    assert sorted((a, k) for _, a, k, _ in rot) == [("a", 1), ("a", 2), ("b", 1), ("b", 2)]
    assert [s for s, *_ in rot] == ["s1", "s2", "s3", "s1"]
    full = benchmark_design(subjects, names, levels, "full")
    assert len(full) == 12 and len(set(full)) == 12


def test_readme_check_ignores_only_timing(tmp_path):
    from mriqa_lib.cli import main

    table = summarise(_scores(), ["zuo", "shaw"])
    section = readme_section(table)
    readme, stored = tmp_path / "README.md", tmp_path / "section.md"
    readme.write_text(f"x\n{README_BEGIN}\n{README_END}\n")
    stored.write_text(section)
    update_readme(readme, section)
    args = ["readme", "--check", "--readme", str(readme), "--section", str(stored)]
    assert main(args) == 0
    stored.write_text(section.replace("| seconds / volume | 0.25", "| seconds / volume | 9.99"))
    assert main(args) == 0
    stored.write_text(section.replace("**1.00**", "**0.99**", 1))
    assert main(args) == 1
