"""`mriqa notebook`: execute a paper notebook with papermill (what the figures@ stages call)."""
from __future__ import annotations

import argparse
from pathlib import Path


def figures_dir_for(name: str) -> Path:
    """notebooks/01_ecker.ipynb -> figures/ecker (the part after the number)."""
    stem = Path(name).stem
    return Path("figures") / (stem.split("_", 1)[1] if "_" in stem else stem)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "notebook", help="run a notebook with papermill into figures/<name>/",
        description="Execute notebooks/NAME.ipynb with papermill. The executed copy (with outputs) is "
        "written to figures/<name>/NAME.ipynb beside the figures it draws; the committed notebook stays "
        "clean. Folders are created first (papermill does not).",
    )
    p.add_argument("name", help="notebook name, e.g. 01_ecker (with or without .ipynb)")
    p.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("KEY", "VALUE"),
                   help="notebook parameter (repeatable; values parsed as YAML)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import papermill
    import yaml

    from mriqa_lib.io import MriqaInputError, atomic_path

    src = Path("notebooks") / (Path(args.name).stem + ".ipynb")
    if not src.exists():
        raise MriqaInputError(f"{src}: notebook not found")
    out_dir = figures_dir_for(src.name)
    out_dir.mkdir(parents=True, exist_ok=True)
    params = {"out_dir": str(out_dir)}
    params.update({k: yaml.safe_load(v) for k, v in args.parameter})
    print(f"running {src} -> {out_dir}/")
    with atomic_path(out_dir / src.name) as tmp:
        papermill.execute_notebook(str(src), str(tmp), parameters=params, progress_bar=False,
                                   cwd=str(Path.cwd()), kernel_name="python3")
    return 0
