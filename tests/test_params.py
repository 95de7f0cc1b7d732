"""One source of defaults: params.yaml lists every setting of every section, each with the value the
pydantic model holds as its default (the models are the source; params.yaml is the embedded profile)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field

from mriqa_lib.config import DEFAULT_SITES, CohortParams, SiteParams, load_settings, read_yaml, settings_model
from mriqa_lib.methods import registry
from mriqa_lib.validation import Section

ROOT = Path(__file__).resolve().parents[1]


def default_settings() -> BaseModel:
    """``Settings`` with every default: the fixed sections and one section per registered method."""
    return settings_model()()


def mismatches(defaults: BaseModel, loaded: BaseModel, raw: Any, prefix: str = "") -> list[str]:
    """Every setting of ``defaults`` that the raw params mapping lacks or ``loaded`` holds otherwise.

    Walks the models' fields (not the YAML), so a field with a default that params.yaml lacks is
    found; a nested model is walked key by key; any other value (list, dict, list of sites) is
    compared whole after validation.
    """
    out = []
    for name in type(defaults).model_fields:
        key = f"{prefix}{name}"
        want, got = getattr(defaults, name), getattr(loaded, name)
        if not isinstance(raw, dict) or name not in raw:
            out.append(f"{key}: missing from params.yaml (default {want!r})")
        elif isinstance(want, BaseModel):
            out += mismatches(want, got, raw[name], key + ".")
        elif want != got:
            out.append(f"{key}: default {want!r}, params.yaml {got!r}")
    return out


def params_mismatches(path: Path) -> list[str]:
    """What params file ``path`` lists differently from the model defaults (empty: they agree)."""
    return mismatches(default_settings(), load_settings(path), read_yaml(path))


def test_every_method_has_a_section():
    fields = list(settings_model().model_fields)
    assert registry.names(), "no method registered"
    assert fields == ["cohort", "trainer", *registry.names(), "benchmark", "generalisation", "preparation"]


def test_params_yaml_lists_every_default_with_the_same_value():
    problems = params_mismatches(ROOT / "params.yaml")
    assert not problems, "params.yaml and the model defaults differ:\n" + "\n".join(problems)


def test_a_changed_value_and_a_removed_key_are_named(tmp_path):
    raw = read_yaml(ROOT / "params.yaml")
    raw["trainer"]["threads"] += 1
    del raw["preparation"]["min_dice"]
    broken = tmp_path / "params.yaml"
    broken.write_text(yaml.safe_dump(raw))
    assert params_mismatches(broken) == [
        "trainer.threads: default 2, params.yaml 3",
        "preparation.min_dice: missing from params.yaml (default 0.85)",
    ]


def test_a_new_field_missing_from_params_yaml_is_named(tmp_path):
    """A method registered with a setting params.yaml lacks fails the comparison, naming the key."""

    class ToyParams(Section):
        seed: int = 0
        inner: CohortParams = Field(default_factory=lambda: CohortParams(n_subjects=3))

    raw = read_yaml(ROOT / "params.yaml")
    raw["toy"] = {"inner": {**raw["cohort"], "n_subjects": 3}}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    spec = registry.MethodSpec(
        name="toy",
        paper="P9",
        title="toy",
        params=ToyParams,
        load_scorer=lambda model_dir, settings: None,
        badness="toy_score",
    )
    registry.register(spec)
    try:
        assert params_mismatches(path) == ["toy.seed: missing from params.yaml (default 0)"]
        raw["toy"]["seed"] = 0
        raw["toy"]["inner"]["n_subjects"] = 4
        path.write_text(yaml.safe_dump(raw))
        assert params_mismatches(path) == ["toy.inner.n_subjects: default 3, params.yaml 4"]
    finally:
        registry.unregister("toy")


def test_cohort_defaults_are_the_embedded_sites():
    """``CohortParams()`` works: its sites default to the embedded cohort's six sites."""
    assert CohortParams().sites == [SiteParams(**s) for s in DEFAULT_SITES]
    assert default_settings().cohort == load_settings(ROOT / "params.yaml").cohort
