"""params.yaml validation: unknown key, wrong type, out-of-range value -> one line naming the key."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mriqa_lib.cli import main
from mriqa_lib.config import ConfigError, load_settings, parse_settings, read_yaml

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def raw() -> dict:
    return read_yaml(ROOT / "params.yaml")


def test_repository_params_are_valid(raw):
    settings = parse_settings(raw)
    assert settings.cohort.n_subjects == raw["cohort"]["n_subjects"]
    assert settings.trainer.accelerator == raw["trainer"]["accelerator"]


@pytest.mark.parametrize("section, key, value, pattern", [
    ("cohort", "n_subjekts", 3, r"unknown key 'cohort.n_subjekts'; allowed here: n_subjects, seed"),
    ("cohort", "n_subjects", "many", r"bad value for 'cohort.n_subjects': .*integer"),
    ("cohort", "n_subjects", -5, r"bad value for 'cohort.n_subjects': .*greater than or equal to 2 \(got -5\)"),
    ("cohort", "split", [0.5, 0.5, 0.5], r"'cohort.split': .*sum to 1"),
    ("cohort", "split", [0.0, 0.5, 0.5], r"'cohort.split': .*non-empty train part"),
    ("shaw", "split", [0.9, 0.2, -0.1], r"'shaw.split': .*>= 0 and sum to 1"),
    ("trainer", "precision", "8-bit", r"'trainer.precision': .*'16-mixed'"),
    ("trainer", "colour", "red", r"unknown key 'trainer.colour'; allowed here: accelerator"),
])
def test_bad_values_name_the_key(raw, section, key, value, pattern):
    raw[section][key] = value
    with pytest.raises(ConfigError, match=pattern) as info:
        parse_settings(raw, "params.yaml")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("key, value", [("qc_split", [0.0, 0.5, 0.5]), ("synth_split", [0.7, 0.2, 0.2])])
def test_bricout_splits_share_the_split_rule(raw, key, value):
    raw["bricout"]["data"][key] = value
    with pytest.raises(ConfigError, match=rf"'bricout.data.{key}': "):
        parse_settings(raw)


def test_bad_site_value_names_nested_key(raw):
    raw["cohort"]["sites"][1]["noise"] = 3.0
    with pytest.raises(ConfigError, match=r"'cohort.sites.1.noise': .*less than or equal to 0.5"):
        parse_settings(raw)


def test_unknown_section(raw):
    raw["ekcer"] = {"seed": 1}
    with pytest.raises(ConfigError, match="unknown key 'ekcer'; allowed here: cohort, trainer, ecker"):
        parse_settings(raw)


def test_invalid_yaml_names_line(tmp_path):
    bad = tmp_path / "params.yaml"
    bad.write_text("cohort:\n  n_subjects: 3\n   seed: [\n")
    with pytest.raises(ConfigError, match=r"params.yaml: invalid YAML at line"):
        load_settings(bad)


def test_cli_exit_status_and_one_line(tmp_path, raw, capsys):
    raw["cohort"]["n_subjects"] = 0
    bad = tmp_path / "params.yaml"
    bad.write_text(yaml.safe_dump(raw))
    assert main(["check", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "cohort.n_subjects" in err and "Traceback" not in err
    assert main(["check", str(ROOT / "params.yaml")]) == 0


def test_stage_exits_nonzero_on_bad_params(tmp_path, raw):
    raw["cohort"]["workers"] = "two"
    bad = tmp_path / "params.yaml"
    bad.write_text(yaml.safe_dump(raw))
    proc = subprocess.run([sys.executable, "-m", "mriqa_lib.cli", "stage", "prepare", "--params", str(bad)],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2
    assert "cohort.workers" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "data").exists()  # nothing written


def test_paper_profiles_validate(raw):
    """Every paper profile merges into valid settings, and each value it sets is what validation keeps."""
    from mriqa_lib.commands.profile import PROFILES, merged_profile

    files = sorted((ROOT / PROFILES).glob("*.paper.yaml"))
    assert len(files) == 5, files
    import os

    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        settings = parse_settings(merged_profile(raw, "paper"), "paper profile")
    finally:
        os.chdir(cwd)
    dumped = settings.model_dump(mode="json")

    def leaves(tree, prefix=()):
        for key, value in tree.items():
            if isinstance(value, dict):
                yield from leaves(value, prefix + (key,))
            else:
                yield prefix + (key,), value

    for path in files:
        for keys, value in leaves(read_yaml(path)):
            got = dumped
            for k in keys:
                got = got[k]
            expect = list(value) if isinstance(value, tuple) else value
            assert got == expect or (isinstance(got, list) and got == list(expect)), (path.name, keys, got, value)


def test_profile_command_keeps_comments_and_matches_the_plain_merge(tmp_path, monkeypatch):
    """`mriqa profile paper` writes the same settings as the plain merge, keeps params.yaml's own
    comments and carries each profile value's source comment along."""
    import shutil

    from ruamel.yaml import YAML

    from mriqa_lib.commands.profile import merged_profile

    shutil.copytree(ROOT / "profiles", tmp_path / "profiles")
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    monkeypatch.chdir(tmp_path)
    before = (tmp_path / "params.yaml").read_text()
    expected = merged_profile(read_yaml("params.yaml"), "paper")
    assert main(["profile", "paper"]) == 0
    after = (tmp_path / "params.yaml").read_text()
    assert read_yaml("params.yaml") == yaml.safe_load(yaml.safe_dump(expected))
    assert (tmp_path / "params.yaml.bak").read_text() == before
    # a comment of params.yaml on a key no profile sets survives
    own = [ln for ln in before.splitlines() if ln.lstrip().startswith("warp_mm:")][0]
    assert own.strip() in after
    # every end-of-line comment of a profile's top-level section keys arrives with its value
    prof = YAML().load((ROOT / "profiles" / "bricout.paper.yaml").read_text())["bricout"]["pretrain"]
    for key, tokens in prof.ca.items.items():
        comment = next(t for t in tokens if t is not None).value.strip()
        assert comment in after, (key, comment)


def test_profile_command_names_a_broken_params_file_and_leaves_it(tmp_path, monkeypatch, capsys):
    import shutil

    shutil.copytree(ROOT / "profiles", tmp_path / "profiles")
    bad = tmp_path / "params.yaml"
    bad.write_text("cohort:\n  n_subjects: [\n")
    monkeypatch.chdir(tmp_path)
    assert main(["profile", "paper"]) == 2
    assert "params.yaml: invalid YAML at line" in capsys.readouterr().err
    assert bad.read_text() == "cohort:\n  n_subjects: [\n" and not (tmp_path / "params.yaml.bak").exists()
