"""`mriqa replica`: a tiny copy of a real data set in its delivered layout, as a runnable workspace."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    from mriqa_lib.replicas import DATASETS

    p = sub.add_parser(
        "replica",
        help="write a tiny same-format copy of a real data set (to try its adapter first)",
        description="Write a tiny copy of DATASET in the layout it is delivered in (real file, column and "
        "HDF5 key names), built from a small embedded cohort, into a workspace: DIR/raw/ (the replica), "
        "DIR/data/embedded/ (the source cohort) and DIR/params.yaml (params.yaml with the data set's keys "
        "pointing at DIR/raw and tiny training settings). Then `cd DIR && mriqa stage METHOD STEP` runs "
        f"that paper's pipeline through the real adapter. DATASET is one of {', '.join(DATASETS)}.",
    )
    p.add_argument("dataset", nargs="?", help="data set name (see --list)")
    p.add_argument("--out", type=Path, help="workspace folder to write (created; the replica goes in DIR/raw)")
    p.add_argument("--seed", type=int, default=0, help="seed of the source cohort and the replica (default 0)")
    p.add_argument("--params", type=Path, default=Path("params.yaml"), help="base params (default params.yaml)")
    p.add_argument("--full", action="store_true", help="keep the base params' training settings (not tiny)")
    p.add_argument("--list", action="store_true", help="list the data sets and the method reading each")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mriqa_lib.config import ConfigError, read_yaml
    from mriqa_lib.replicas import DATASETS, module, write_workspace

    if args.list:
        for name in DATASETS:
            mod = module(name)
            print(f"{name:12s} {mod.METHOD:8s} {mod.DESCRIPTION}")
        return 0
    if not args.dataset or args.out is None:
        raise ConfigError("mriqa replica: give DATASET and --out DIR (or --list)")
    mod = module(args.dataset)
    base = read_yaml(args.params) if args.params.exists() else {}
    print(f"writing the {args.dataset} replica and its workspace to {args.out}/ ...")
    keys = write_workspace(args.dataset, args.out, base or {}, seed=args.seed, tiny=not args.full)
    print(f"{args.out}/params.yaml sets:")
    for k, v in keys.items():
        print(f"  {k}: {v}")
    from mriqa_lib.methods import registry

    steps = " && ".join(f"mriqa stage {mod.METHOD} {s}" for s in registry.methods()[mod.METHOD].stages)
    print(f"next: cd {args.out} && {steps}")
    return 0
