"""Benchmark summary: AUROC / Spearman per method x artifact, and the generated README block."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mriqa_lib.benchmark import (
    README_BEGIN,
    README_END,
    readme_section,
    summarise,
    update_readme,
)


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
    from mriqa_lib.benchmark import benchmark_design

    subjects, names, levels = ["s1", "s2", "s3"], ["a", "b"], [0.5, 1.0]
    rot = benchmark_design(subjects, names, levels, "rotate")
    assert sorted((a, k) for _, a, k, _ in rot) == [("a", 1), ("a", 2), ("b", 1), ("b", 2)]
    assert [s for s, *_ in rot] == ["s1", "s2", "s3", "s1"]
    full = benchmark_design(subjects, names, levels, "full")
    assert len(full) == 12 and len(set(full)) == 12


def test_readme_check_ignores_only_timing(tmp_path):
    from mriqa_lib.cli import main
    from mriqa_lib.commands.readme import CLAIMS_BEGIN, CLAIMS_END, claims_section

    table = summarise(_scores(), ["zuo", "shaw"])
    section = readme_section(table)
    readme, stored = tmp_path / "README.md", tmp_path / "section.md"
    readme.write_text(f"x\n{README_BEGIN}\n{README_END}\n{CLAIMS_BEGIN}\n{CLAIMS_END}\n")
    stored.write_text(section)
    update_readme(readme, section)
    update_readme(readme, claims_section(tmp_path / "metrics"), CLAIMS_BEGIN, CLAIMS_END)
    args = [
        "readme",
        "--check",
        "--readme",
        str(readme),
        "--section",
        str(stored),
        "--metrics",
        str(tmp_path / "metrics"),
    ]
    assert main(args) == 0
    stored.write_text(section.replace("| seconds / volume | 0.25", "| seconds / volume | 9.99"))
    assert main(args) == 0
    stored.write_text(section.replace("**1.00**", "**0.99**", 1))
    assert main(args) == 1


def _write_metrics(folder, **per_method):
    folder.mkdir(parents=True, exist_ok=True)
    for method, values in per_method.items():
        (folder / f"{method}.json").write_text(json.dumps(values))


def test_claims_read_metrics_and_judge_targets(tmp_path):
    from mriqa_lib.claims import CLAIMS, evaluate_claims

    metrics = tmp_path / "metrics"
    _write_metrics(
        metrics,
        bricout={"synth_test_r2": 0.7, "transfer_bal_acc_median": 0.40, "scratch_bal_acc_median": 0.45},
        shaw={"exp3_recon_sigma_rise": 0.3, "exp3_seg_sigma_rise": 0.1, "exp1_r2_mean": 0.79},
        zuo={"examples_all_as_expected_tau5": True},
    )
    rows = {(r["claim"].method, r["claim"].metric): r for r in evaluate_claims(metrics)}
    assert len(rows) == len(CLAIMS)
    assert rows[("bricout", "synth_test_r2")]["holds"] is True  # >= at the boundary
    diff = rows[("bricout", "transfer_bal_acc_median - scratch_bal_acc_median")]
    assert diff["value"] == pytest.approx(-0.05) and diff["holds"] is False
    assert rows[("shaw", "exp3_recon_sigma_rise - exp3_seg_sigma_rise")]["holds"] is True
    assert rows[("shaw", "exp1_r2_mean")]["holds"] is False
    assert rows[("zuo", "examples_all_as_expected_tau5")]["holds"] is True
    missing = rows[("zuo", "sensitivity_tau5")]
    assert missing["value"] is None and missing["holds"] is None
    assert rows[("ecker", "motion_accuracy")]["holds"] is None  # no ecker.json at all


def test_readme_command_writes_and_checks_the_claims_table(tmp_path, monkeypatch, capsys):
    from mriqa_lib.cli import main
    from mriqa_lib.commands.readme import CLAIMS_BEGIN, CLAIMS_END

    table = summarise(_scores(), ["zuo", "shaw"])
    section = tmp_path / "section.md"
    section.write_text(readme_section(table))
    readme = tmp_path / "README.md"
    readme.write_text(f"x\n{README_BEGIN}\n{README_END}\ny\n{CLAIMS_BEGIN}\n{CLAIMS_END}\nz\n")
    metrics = tmp_path / "metrics"
    _write_metrics(metrics, bricout={"synth_test_r2": 0.5})
    args = ["readme", "--readme", str(readme), "--section", str(section), "--metrics", str(metrics)]
    assert main(args + ["--check"]) == 1
    assert main(args) == 0
    text = readme.read_text()
    assert "| P5 | bricout | R^2, synthetic-motion test set | >= 0.7 | 0.500 | **no** |" in text
    assert text.startswith("x\n") and text.endswith("z\n")
    assert main(args + ["--check"]) == 0
    _write_metrics(metrics, bricout={"synth_test_r2": 0.75})
    assert main(args + ["--check"]) == 1  # new metrics, stale README


def test_a_failing_scorer_is_recorded_and_the_others_go_on():
    from mriqa_lib.benchmark import Job, benchmark_jobs, score_jobs
    from mriqa_lib.io import Volume

    class Broken:
        def score(self, volume, reference=None, maps_dir=None):
            raise ValueError("no model")

    class Maximum:
        def score(self, volume, reference=None, maps_dir=None):
            return {"shaw_total_sigma": float(volume.data.max())}

    jobs = benchmark_jobs(["s1"], ["blur"], [1.0], "rotate")
    assert jobs == [Job("s1", "clean", 0, 0.0), Job("s1", "blur", 1, 1.0)]
    volume = Volume(np.pad(np.ones((4, 4, 4), np.float32), 4), np.eye(4))
    scores = score_jobs(jobs, {"zuo": Broken(), "shaw": Maximum()}, lambda s: volume, seed=0, progress=False)
    assert list(scores.zuo_error) == ["ValueError: no model"] * 2
    assert scores.shaw_total_sigma[0] == 1.0 and scores.shaw_total_sigma[1] < 1.0  # blur lowers the peak
    assert scores.severity[0] == 0.0 and scores.severity[1] > 0.0
    assert (scores.zuo_seconds >= 0).all() and (scores.shaw_seconds >= 0).all()


def test_scoring_a_subset_of_subjects_gives_the_same_volumes_as_the_whole_list():
    """The held-out-site evaluation scores each calibration fold's subjects apart; their corrupted
    copies must be the very volumes the whole list would score (same seeds)."""
    from mriqa_lib.benchmark import benchmark_jobs, score_jobs
    from mriqa_lib.io import Volume

    class Total:
        def score(self, volume, reference=None, maps_dir=None):
            return {"shaw_total_sigma": float(volume.data.sum())}

    rng = np.random.default_rng(0)
    volumes = {s: Volume(np.pad(rng.uniform(1, 2, (6, 6, 6)).astype(np.float32), 3), np.eye(4)) for s in "abc"}
    jobs = benchmark_jobs(list("abc"), ["rician_noise", "blur"], [0.5, 1.0], "rotate")
    whole = score_jobs(jobs, {"shaw": Total()}, volumes.__getitem__, seed=3, progress=False)
    part = score_jobs(jobs, {"shaw": Total()}, volumes.__getitem__, seed=3, progress=False, subjects={"b", "c"})
    expected = whole[whole.subject.isin(["b", "c"])].reset_index(drop=True)
    assert len(part) == len(expected) > 2 and set(part.subject) == {"b", "c"}
    assert np.array_equal(part.shaw_total_sigma.to_numpy(), expected.shaw_total_sigma.to_numpy())
    assert part.artifact.tolist() == expected.artifact.tolist()
