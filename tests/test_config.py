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


@pytest.mark.parametrize(
    "section, key, value, pattern",
    [
        ("cohort", "n_subjekts", 3, r"unknown key 'cohort.n_subjekts'; allowed here: n_subjects, seed"),
        ("cohort", "n_subjects", "many", r"bad value for 'cohort.n_subjects': .*integer"),
        ("cohort", "n_subjects", -5, r"bad value for 'cohort.n_subjects': .*greater than or equal to 2 \(got -5\)"),
        ("cohort", "split", [0.5, 0.5, 0.5], r"'cohort.split': .*sum to 1"),
        ("cohort", "split", [0.0, 0.5, 0.5], r"'cohort.split': .*non-empty train part"),
        ("shaw", "split", [0.9, 0.2, -0.1], r"'shaw.split': .*>= 0 and sum to 1"),
        ("trainer", "precision", "8-bit", r"'trainer.precision': .*'16-mixed'"),
        ("trainer", "colour", "red", r"unknown key 'trainer.colour'; allowed here: accelerator"),
    ],
)
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
    proc = subprocess.run(
        [sys.executable, "-m", "mriqa_lib.cli", "stage", "prepare", "--params", str(bad)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode == 2
    assert "cohort.workers" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "data").exists()  # nothing written


def _leaves(tree, prefix=()):
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from _leaves(value, prefix + (key,))
        else:
            yield prefix + (key,), value


def _profile_cases():
    from mriqa_lib.commands.profile import profile_files, profile_names

    for name in profile_names(ROOT / "profiles"):
        yield name, None
        for path in profile_files(name, ROOT / "profiles"):
            yield name, [path.name.split(".")[0]]


def test_there_are_five_paper_profiles():
    from mriqa_lib.commands.profile import profile_files

    assert len(profile_files("paper", ROOT / "profiles")) == 5


@pytest.mark.parametrize("name, methods", list(_profile_cases()))
def test_profiles_validate_over_params(name, methods):
    """params.yaml with a profile merged in by the function `mriqa profile` uses validates (all of a
    profile's files at once and each alone), and each value the profile sets is what validation keeps."""
    from mriqa_lib.commands.profile import apply_profile, profile_files

    _, settings = apply_profile(ROOT / "params.yaml", name, methods, profiles=ROOT / "profiles")
    dumped = settings.model_dump(mode="json")
    files = [f for f in profile_files(name, ROOT / "profiles") if not methods or f.name.split(".")[0] in methods]
    for path in files:
        for keys, value in _leaves(read_yaml(path)):
            got = dumped
            for k in keys:
                got = got[k]
            expect = list(value) if isinstance(value, tuple) else value
            assert got == expect, (path.name, keys, got, value)
    # the plain-dict merge gives the same settings
    from mriqa_lib.commands.profile import merged_profile

    plain = parse_settings(merged_profile(read_yaml(ROOT / "params.yaml"), name, methods, ROOT / "profiles"))
    assert plain == settings


def test_settings_has_one_section_per_registered_method():
    """Settings is built from the registry: a method's section is its params model, default its defaults."""
    from mriqa_lib.config import Settings, settings_model
    from mriqa_lib.methods.registry import methods

    assert Settings is settings_model() and Settings.__name__ == "Settings"
    specs = methods()
    assert specs, "no method registered"
    settings = Settings()
    for name, spec in specs.items():
        assert Settings.model_fields[name].annotation is spec.params
        assert getattr(settings, name) == spec.params()


def test_settings_keyword_construction_and_attribute_access(raw):
    from mriqa_lib.config import Settings, default_cohort_params
    from mriqa_lib.methods.registry import methods

    name, spec = next(iter(methods().items()))
    section = spec.params(seed=7)
    settings = Settings(cohort=default_cohort_params(), **{name: section})
    assert getattr(settings, name) is not None and getattr(settings, name).seed == 7
    with pytest.raises(ConfigError, match=rf"unknown key '{name}.foo'; allowed here: trainer, seed"):
        raw[name]["foo"] = 1
        parse_settings(raw)


def test_a_registered_toy_method_gets_a_validated_section(raw):
    from pydantic import Field

    from mriqa_lib.config import settings_model
    from mriqa_lib.methods import registry
    from mriqa_lib.validation import Section

    class ToyParams(Section):
        seed: int = 0
        size: int = Field(3, ge=1)

    before = settings_model()
    registry.register(
        registry.MethodSpec(
            name="toy",
            paper="P9",
            title="toy",
            params=ToyParams,
            load_scorer=lambda model_dir, settings: None,
            badness="toy_score",
        )
    )
    try:
        assert list(settings_model().model_fields)[-4:] == ["toy", "benchmark", "generalisation", "preparation"]
        assert parse_settings(raw).toy == ToyParams()
        assert parse_settings({**raw, "toy": {"size": 5}}).toy.size == 5
        with pytest.raises(ConfigError, match=r"unknown key 'toy.foo'; allowed here: seed, size"):
            parse_settings({**raw, "toy": {"foo": 1}})
        with pytest.raises(ConfigError, match=r"bad value for 'toy.size'"):
            parse_settings({**raw, "toy": {"size": 0}})
    finally:
        registry.unregister("toy")
    assert settings_model() is before
    with pytest.raises(ConfigError, match=r"unknown key 'toy'"):
        parse_settings({**raw, "toy": {}})


def test_config_names_no_method():
    """config.py takes the method sections from the registry: it imports and names no method."""
    import re

    from mriqa_lib.methods.registry import names

    source = (ROOT / "mriqa_lib" / "config.py").read_text()
    imported = re.findall(r"^\s*(?:from|import)\s+(mriqa_lib\.methods\S*)", source, re.MULTILINE)
    assert imported == ["mriqa_lib.methods"]  # `from mriqa_lib.methods import registry`
    for name in names():
        assert not re.search(rf"\b{name}\b", source, re.IGNORECASE), name


def test_duplicate_site_names_are_refused(raw):
    raw["cohort"]["sites"][1]["name"] = raw["cohort"]["sites"][0]["name"]
    with pytest.raises(ConfigError, match=r"'cohort.sites': .*site names must be unique"):
        parse_settings(raw)


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
    own = next(ln for ln in before.splitlines() if ln.lstrip().startswith("warp_mm:"))
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


@pytest.mark.parametrize("method", ["ecker", "zuo", "shaw", "ssfd", "bricout"])
def test_profile_dry_run_of_one_method_validates_and_changes_only_its_section(method, capsys, monkeypatch):
    """`mriqa profile paper --methods m --dry-run` prints settings that validate, and every other
    section (the shared trainer section included) is params.yaml's."""

    monkeypatch.chdir(ROOT)
    assert main(["profile", "paper", "--methods", method, "--dry-run"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    parse_settings(printed, f"dry run of {method}")
    base = read_yaml(ROOT / "params.yaml")
    assert set(printed) == set(base)
    changed = {name for name in base if printed[name] != base[name]}
    assert changed == {method}


def test_a_profile_file_that_sets_another_section_is_refused(tmp_path):
    from mriqa_lib.commands.profile import apply_profile, merged_profile

    (tmp_path / "bricout.paper.yaml").write_text("trainer:\n  devices: 4\nbricout:\n  seed: 1\n")
    with pytest.raises(ConfigError, match=r"bricout.paper.yaml: sets section\(s\) \['trainer'\].*bricout.trainer"):
        apply_profile(ROOT / "params.yaml", "paper", profiles=tmp_path)
    with pytest.raises(ConfigError, match="may only set 'bricout'"):
        merged_profile(read_yaml(ROOT / "params.yaml"), "paper", profiles=tmp_path)


def test_a_method_step_trainer_overlays_the_method_and_the_shared_trainer():
    """trainer section < method `all` < method step; keys left unset inherit; other methods untouched."""
    from mriqa_lib.config import trainer_for

    settings = parse_settings(
        {
            "trainer": {"precision": "bf16-mixed", "num_workers": 3},
            "bricout": {"trainer": {"all": {"accelerator": "gpu", "num_workers": 8}, "pretrain": {"devices": 4}}},
        }
    )
    pre, qc = trainer_for(settings, "bricout", "pretrain"), trainer_for(settings, "bricout", "transfer")
    assert (pre.accelerator, pre.devices, pre.num_workers, pre.precision) == ("gpu", 4, 8, "bf16-mixed")
    assert (qc.accelerator, qc.devices, qc.num_workers) == ("gpu", 1, 8)
    assert trainer_for(settings, "ecker", "simclr") == settings.trainer
    with pytest.raises(ConfigError, match=r"bricout.trainer.*unknown training step\(s\) \['qc'\]"):
        parse_settings({"bricout": {"trainer": {"qc": {"devices": 1}}}})
    with pytest.raises(ConfigError, match="num_nodes"):
        parse_settings({"shaw": {"trainer": {"recon": {"num_nodes": 0}}}})


def test_paper_profile_trains_paper5_pretraining_on_four_gpus_and_qc_on_one():
    from mriqa_lib.commands.profile import apply_profile
    from mriqa_lib.config import trainer_for

    _, settings = apply_profile(ROOT / "params.yaml", "paper", profiles=ROOT / "profiles")
    pre = trainer_for(settings, "bricout", "pretrain")
    assert (pre.accelerator, pre.devices, pre.strategy) == ("gpu", 4, "ddp")
    for step in ("transfer", "scratch"):
        assert trainer_for(settings, "bricout", step).devices == 1
    assert settings.trainer == parse_settings({}).trainer  # no paper touches the shared section
