"""How much does a method's embedded result move with its seed?

Runs one method's synthesize -> train -> evaluate once per seed, each in its own scratch folder
(`params.yaml` with only `<method>.seed` changed, the repository's `data/embedded` linked in),
and tabulates that method's claims (its registration's ``claims``, see mriqa_lib/claims.py) per seed
with their mean and spread.
The seed changes the method's own splits, simulated data and initialisation; the cohort stays.
Run after `dvc repro prepare` from the repository root, e.g.:

    python benchmarks/seeds.py METHOD --seeds 0 1 2 3 [--work /tmp/mriqa_seeds] [--threads 2]

METHOD is a registered method with claims (`python benchmarks/seeds.py --help` lists them), or
``generalisation``: the held-out-site stage with every method's seed and ``generalisation.seed``
changed (the site-out trainings and the corrupted copies), tabulating pairs ranked right per method
and way and calibration's paired effect (after `dvc repro`: the in-site way reads ``models/``;
about ten minutes per seed on 2 cores).

A setting is better than another only if it wins over several seeds: on the embedded default
single-seed differences of about 0.1 are common for papers 1 and 2.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from mriqa_lib.claims import claims
from mriqa_lib.config import read_yaml
from mriqa_lib.methods import registry

#: the held-out-site evaluation: every method trained again, so every method's seed moves with it
GENERALISATION = "generalisation"


def seeded_sections(method: str) -> list[str]:
    """The params sections whose ``seed`` a run of ``method`` changes."""
    return [*registry.names(), GENERALISATION] if method == GENERALISATION else [method]


def seed_params(raw: dict[str, Any], method: str, seed: int, threads: int | None = None) -> dict[str, Any]:
    """``raw`` params with the ``seed`` of :func:`seeded_sections` (and optionally ``trainer.threads``) replaced."""
    out = json.loads(json.dumps(raw))  # deep copy of plain YAML data
    for section in seeded_sections(method):
        if section not in out:
            raise KeyError(f"params have no section '{section}'")
        out[section]["seed"] = int(seed)
    if threads:
        out.setdefault("trainer", {})["threads"] = int(threads)
    return out


def claim_values(method: str, metrics: dict[str, Any]) -> dict[str, float]:
    """The method's claim metrics (a key, or ``a - b`` of two keys) as numbers."""
    out = {}
    for c in claims():
        if c.method == method:
            v = c.value(metrics)
            if v is not None:
                out[c.metric] = float(v)
    return out


def generalisation_values(metrics: dict[str, Any]) -> dict[str, float]:
    """Pairs ranked right per method and way (mean over the held-out sites) and calibration's paired
    effect per site, from ``metrics/generalisation.json``."""
    sites = tuple(f"{s}_" for s in metrics.get("sites", []))
    return {
        k: float(v)
        for k, v in metrics.items()
        if (k.endswith("_pairs_right") and not k.startswith(sites)) or k.endswith("_calibration_effect")
    }


def summarise(per_seed: dict[int, dict[str, float]]) -> pd.DataFrame:
    """Rows: metrics; columns: one per seed, then mean, std (ddof 1), min, max."""
    frame = pd.DataFrame({f"seed {s}": v for s, v in per_seed.items()})
    stats = frame.agg(["mean", "std", "min", "max"], axis=1)
    return pd.concat([frame, stats], axis=1)


def run_seed(
    method: str,
    seed: int,
    raw: dict[str, Any],
    work: Path,
    threads: int | None,
    runner: Callable[[list[str], Path], None],
) -> dict[str, float]:
    """One seed in ``work/seed-N``: write params, link the cohort (and, for the held-out-site stage,
    the in-site ``models``), run the method's stage steps."""
    import yaml

    folder = work / f"seed-{seed}"
    (folder / "data").mkdir(parents=True, exist_ok=True)
    links = {folder / "data" / "embedded": Path("data/embedded")}
    if method == GENERALISATION:
        links[folder / "models"] = Path("models")
    for link, target in links.items():
        if not link.is_symlink():
            link.symlink_to(target.resolve())
    (folder / "params.yaml").write_text(yaml.safe_dump(seed_params(raw, method, seed, threads), sort_keys=False))
    cli = [sys.executable, "-m", "mriqa_lib.cli", "stage"]
    if method == GENERALISATION:
        runner([*cli, GENERALISATION], folder)
        return generalisation_values(json.loads((folder / "metrics" / f"{GENERALISATION}.json").read_text()))
    for step in registry.get(method).stages:
        runner([*cli, method, step], folder)
    return claim_values(method, json.loads((folder / "metrics" / f"{method}.json").read_text()))


def _subprocess(cmd: list[str], cwd: Path) -> None:
    subprocess.run(cmd, cwd=cwd, check=True)


def main(argv: list[str] | None = None, runner: Callable[[list[str], Path], None] = _subprocess) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("method", choices=sorted({c.method for c in claims()} | {GENERALISATION}))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--work", type=Path, default=Path("/tmp/mriqa_seeds"))
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--threads", type=int, default=None, help="trainer.threads for every run (default: params)")
    args = parser.parse_args(argv)
    if not Path("data/embedded").is_dir():
        raise SystemExit("data/embedded not found: run `dvc repro prepare` from the repository root first")
    if args.method == GENERALISATION and not Path("models").is_dir():
        raise SystemExit("models/ not found: the held-out-site stage scores the in-site models; run `dvc repro` first")
    raw = read_yaml(args.params)
    per_seed = {}
    for seed in args.seeds:
        print(f"== {args.method}, seed {seed}", flush=True)
        per_seed[seed] = run_seed(args.method, seed, raw, args.work / args.method, args.threads, runner)
    table = summarise(per_seed)
    out = args.work / args.method / "seeds.tsv"
    table.to_csv(out, sep="\t")
    print(table.round(3).to_string())
    print(f"-> {out}")
    return table


if __name__ == "__main__":
    main()
