"""Same-format replicas of the papers' restricted data sets (`mriqa replica DATASET --out DIR`).

A replica is a tiny copy of a data set *in the layout it is delivered in* (real file names, real
column names, real HDF5 keys), built from a tiny embedded cohort, so that the real adapters run
anywhere, in CI included. Each data set has one module here exposing:

- ``METHOD``: the method (registry name) whose adapter reads it;
- ``DESCRIPTION``: one line for ``mriqa replica --list``;
- ``build(out: Path, cohort: Path, seed: int) -> dict[str, object]``: write the replica under
  ``out`` from the embedded cohort in ``cohort`` and return the params keys (dotted, e.g.
  ``"ecker.ukb_dir"``) that point the adapter at it;
- ``TINY: dict[str, object]``: dotted params keys that make the method's pipeline run in well under
  a minute on 2 CPU cores (the replica is for checking the path, not for results).

:func:`write_workspace` turns a replica into a workspace: ``DIR/params.yaml`` (the defaults with
those keys), ``DIR/data/embedded`` (the source cohort) and ``DIR/raw/...`` (the replica), so that
``cd DIR && mriqa stage METHOD STEP`` runs the method's pipeline through the real adapter.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import Any

# data set -> module under mriqa_lib.replicas (one per data set of PAPERS.md)
DATASETS = ("ukb", "nako", "multicohort", "adni", "fastmri", "ampscz", "hcpep")

# the embedded source cohort: enough subjects for every split the methods make (3 sites x 4)
N_SUBJECTS = 12
N_SITES = 3


def module(dataset: str) -> ModuleType:
    """The replica module of ``dataset``; an unknown name is a ConfigError naming the known ones."""
    from mriqa_lib.config import ConfigError

    if dataset not in DATASETS:
        raise ConfigError(f"unknown data set '{dataset}'; one of {', '.join(DATASETS)}")
    return importlib.import_module(f"{__name__}.{dataset}")


def build_source_cohort(out: Path, seed: int = 0, n_subjects: int = N_SUBJECTS) -> Path:
    """A tiny embedded cohort in ``out`` (the replicas' images come from it)."""
    from mriqa_lib.config import default_cohort_params
    from mriqa_lib.data.cohort import build_cohort

    base = default_cohort_params()
    params = base.model_copy(
        update={"n_subjects": n_subjects, "seed": seed, "workers": 1, "sites": base.sites[:N_SITES]}
    )
    build_cohort(out, params, progress=False, log=lambda s: None)
    return out


def workspace_params(base: dict, keys: dict[str, Any]) -> dict:
    """``base`` params with the dotted ``keys`` set (validated: a bad key is a ConfigError)."""
    import yaml

    from mriqa_lib.config import apply_overrides, parse_settings

    raw = apply_overrides(base, [f"{k}={yaml.safe_dump(v, default_flow_style=True).strip()}" for k, v in keys.items()])
    parse_settings(raw, "replica params")
    return raw


def _relative(value: Any, root: Path) -> Any:
    """A path under ``root`` as a path relative to it (the workspace can be moved), else unchanged;
    mappings and lists are walked."""
    if isinstance(value, dict):
        return {k: _relative(v, root) for k, v in value.items()}
    if isinstance(value, list):
        return [_relative(v, root) for v in value]
    if isinstance(value, (str, Path)) and Path(value).is_absolute() and Path(value).is_relative_to(root.resolve()):
        return str(Path(value).relative_to(root.resolve()))
    return str(value) if isinstance(value, Path) else value


def write_workspace(dataset: str, out: Path, base_params: dict, seed: int = 0, tiny: bool = True) -> dict[str, Any]:
    """Write ``dataset``'s replica and a workspace around it in ``out``; return the params keys set.

    ``out/data/embedded`` holds the source cohort (the embedded default's place, which some stages
    also read), ``out/raw`` the replica in its delivered layout, ``out/params.yaml`` ``base_params``
    with the replica's keys (and the tiny settings unless ``tiny`` is false).
    """
    import yaml

    mod = module(dataset)
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    cohort = build_source_cohort(out / "data" / "embedded", seed)
    keys = {k: _relative(v, out) for k, v in mod.build(out / "raw", cohort, seed).items()}
    if tiny:
        keys = {**mod.TINY, **keys}
    params = workspace_params(base_params, keys)
    (out / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return keys
