"""benchmarks/seeds.py: per-seed runs change only the method's seed, and the table's statistics are right."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def seeds_tool():
    spec = importlib.util.spec_from_file_location("seeds_tool", ROOT / "benchmarks" / "seeds.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_seed_params_changes_only_the_seed(seeds_tool):
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    out = seeds_tool.seed_params(raw, "zuo", 7, threads=1)
    assert out["zuo"]["seed"] == 7 and out["trainer"]["threads"] == 1
    out["zuo"]["seed"], out["trainer"]["threads"] = raw["zuo"]["seed"], raw["trainer"]["threads"]
    assert out == raw  # nothing else moved, and raw itself was not modified
    with pytest.raises(KeyError):
        seeds_tool.seed_params(raw, "nosuch", 1)


def test_runs_each_seed_in_its_own_folder_and_tabulates_claims(seeds_tool, tmp_path, monkeypatch):
    (tmp_path / "data" / "embedded").mkdir(parents=True)
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    monkeypatch.chdir(tmp_path)
    calls = []

    def fake_runner(cmd, cwd):  # stands in for `mriqa stage bricout STEP`: metrics depend on the seed
        calls.append((cmd[-1], cwd.name))
        seed = yaml.safe_load((cwd / "params.yaml").read_text())["bricout"]["seed"]
        assert (cwd / "data" / "embedded").resolve() == (tmp_path / "data" / "embedded").resolve()
        if cmd[-1] == "evaluate":
            (cwd / "metrics").mkdir(exist_ok=True)
            (cwd / "metrics" / "bricout.json").write_text(
                json.dumps(
                    {
                        "synth_test_r2": 0.5 + 0.1 * seed,
                        "transfer_bal_acc_median": 0.4,
                        "scratch_bal_acc_median": 0.3 + seed / 100,
                    }
                )
            )

    table = seeds_tool.main(["bricout", "--seeds", "0", "1", "3", "--work", str(tmp_path / "w")], runner=fake_runner)
    assert calls == [(step, f"seed-{s}") for s in (0, 1, 3) for step in ("synthesize", "train", "evaluate")]
    r2 = np.array([0.5, 0.6, 0.8])
    row = table.loc["synth_test_r2"]
    assert list(row[["seed 0", "seed 1", "seed 3"]]) == pytest.approx(r2)
    assert row["mean"] == pytest.approx(r2.mean()) and row["std"] == pytest.approx(r2.std(ddof=1))
    assert (row["min"], row["max"]) == (pytest.approx(0.5), pytest.approx(0.8))
    diff = table.loc["transfer_bal_acc_median - scratch_bal_acc_median"]
    assert diff["seed 3"] == pytest.approx(0.4 - 0.33)
    assert (tmp_path / "w" / "bricout" / "seeds.tsv").exists()


def test_generalisation_moves_every_methods_seed_and_tabulates_pairs_and_effects(seeds_tool, tmp_path, monkeypatch):
    from mriqa_lib.methods import registry

    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    out = seeds_tool.seed_params(raw, "generalisation", 4)
    for section in [*registry.names(), "generalisation"]:
        assert out[section]["seed"] == 4
        out[section]["seed"] = raw[section]["seed"]
    assert out == raw  # nothing else moved

    (tmp_path / "data" / "embedded").mkdir(parents=True)
    (tmp_path / "models").mkdir()
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    monkeypatch.chdir(tmp_path)
    calls = []

    def fake_stage(cmd, cwd):  # stands in for `mriqa stage generalisation`
        calls.append((cmd[-2:], cwd.name))
        assert (cwd / "models").resolve() == (tmp_path / "models").resolve()  # the in-site way reads models/
        seed = yaml.safe_load((cwd / "params.yaml").read_text())["generalisation"]["seed"]
        (cwd / "metrics").mkdir(exist_ok=True)
        metrics = {
            "siteD_zuo_site_out_pairs_right": 0.1,  # a per-site figure: the mean over sites is tabulated
            "zuo_site_out_pairs_right": 0.8 + seed / 10,
            "zuo_site_out_auroc": 0.7,
            "siteD_zuo_calibration_effect": -0.05 * seed,
            "siteD_zuo_calibration_effect_low": -0.2,
            "sites": ["siteD"],
        }
        (cwd / "metrics" / "generalisation.json").write_text(json.dumps(metrics))

    table = seeds_tool.main(["generalisation", "--seeds", "1", "2", "--work", str(tmp_path / "w")], runner=fake_stage)
    assert calls == [(["stage", "generalisation"], "seed-1"), (["stage", "generalisation"], "seed-2")]
    assert sorted(table.index) == ["siteD_zuo_calibration_effect", "zuo_site_out_pairs_right"]
    assert table.loc["zuo_site_out_pairs_right", "mean"] == pytest.approx(0.95)
    assert table.loc["siteD_zuo_calibration_effect", "seed 2"] == pytest.approx(-0.1)
