"""Shared fixtures: a tiny embedded cohort built once per test session."""

from __future__ import annotations

import pytest

from mriqa_lib.config import CohortParams, default_cohort_params


@pytest.fixture(scope="session")
def tiny_cohort_params() -> CohortParams:
    base = default_cohort_params()
    return base.model_copy(update={"n_subjects": 4, "workers": 1, "sites": base.sites[:2]})


@pytest.fixture(scope="session")
def tiny_cohort(tmp_path_factory, tiny_cohort_params):
    from mriqa_lib.data.cohort import build_cohort

    out = tmp_path_factory.mktemp("cohort") / "embedded"
    summary = build_cohort(out, tiny_cohort_params, progress=False, log=lambda s: None)
    return out, summary


@pytest.fixture(scope="session")
def stage_cohort(tmp_path_factory):
    """The 6-subject, 2-site cohort of the stage tests (tests/stage_runs.py), built once."""
    from stage_runs import build_tiny_cohort

    return build_tiny_cohort(tmp_path_factory.mktemp("stage_cohort"))
