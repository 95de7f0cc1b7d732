"""`mriqa notebook`: execute a paper notebook with papermill (what the figures@ stages call)."""

from __future__ import annotations

import argparse
from pathlib import Path


def figures_dir_for(name: str) -> Path:
    """notebooks/01_ecker.ipynb -> figures/ecker (the part after the number)."""
    stem = Path(name).stem
    return Path("figures") / (stem.split("_", 1)[1] if "_" in stem else stem)


def pair_problems(ipynb: Path) -> list[str]:
    """How ``notebooks/NAME.ipynb`` differs from its source ``notebooks/NAME.py`` (jupytext pair).

    The pair must hold the same cells: type, source and tags (papermill finds the ``parameters``
    cell by its tag). Returns one line per difference; empty when the pair is in sync.
    """
    import jupytext
    import nbformat

    py = ipynb.with_suffix(".py")
    if not py.exists():
        return [f"{py} is missing (pair it: jupytext --set-formats ipynb,py:percent {ipynb})"]

    def cells(nb: nbformat.NotebookNode) -> list[tuple[str, str, list[str]]]:
        return [(c.cell_type, c.source, list(c.metadata.get("tags", []))) for c in nb.cells]

    a, b = cells(nbformat.read(ipynb, as_version=4)), cells(jupytext.read(py))
    problems = [f"{ipynb.name} has {len(a)} cells, {py.name} has {len(b)}"] if len(a) != len(b) else []
    for i, (x, y) in enumerate(zip(a, b)):
        if x[0] != y[0] or x[2] != y[2]:
            problems.append(f"cell {i}: type/tags {x[0]} {x[2]} vs {y[0]} {y[2]}")
        elif x[1] != y[1]:
            lx, ly = x[1].splitlines() + ["<end>"], y[1].splitlines() + ["<end>"]
            k = next((k for k, (u, v) in enumerate(zip(lx, ly)) if u != v), None)
            problems.append(
                f"cell {i}: " + ("line ends differ" if k is None else f"source line {k + 1}: {lx[k]!r} vs {ly[k]!r}")
            )
    return problems


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "notebook",
        help="run a notebook with papermill into figures/<name>/",
        description="Execute notebooks/NAME.ipynb with papermill. The executed copy (with outputs) is "
        "written to figures/<name>/NAME.ipynb beside the figures it draws; the committed notebook stays "
        "clean. Folders are created first (papermill does not). The notebook's source is notebooks/NAME.py "
        "(jupytext pair); a pair that differs is refused: run `jupytext --sync notebooks/NAME.py` first.",
    )
    p.add_argument("name", help="notebook name, e.g. 01_ecker (with or without .ipynb)")
    p.add_argument(
        "--notebooks",
        type=Path,
        default=Path("notebooks"),
        help="folder holding the notebooks (default notebooks/; from a `mriqa replica` workspace: the "
        "repository's notebooks/); figures still go to ./figures/<name>/",
    )
    p.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("KEY", "VALUE"),
        help="notebook parameter (repeatable; values parsed as YAML)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import nbformat
    import papermill
    import yaml

    from mriqa_lib.io import MriqaInputError, atomic_path

    src = Path(args.notebooks) / (Path(args.name).stem + ".ipynb")
    if not src.exists():
        raise MriqaInputError(f"{src}: notebook not found")
    problems = pair_problems(src)
    if problems:  # running the .ipynb would draw from code that its reviewed source no longer holds
        raise MriqaInputError(
            f"{src}: differs from {src.with_suffix('.py')} (run `jupytext --sync "
            f"{src.with_suffix('.py')}`): " + "; ".join(problems[:3])
        )
    out_dir = figures_dir_for(src.name)
    out_dir.mkdir(parents=True, exist_ok=True)
    params = {"out_dir": str(out_dir)}
    params.update({k: yaml.safe_load(v) for k, v in args.parameter})
    print(f"running {src} -> {out_dir}/")
    with atomic_path(out_dir / src.name) as tmp:
        papermill.execute_notebook(
            str(src), str(tmp), parameters=params, progress_bar=False, cwd=str(Path.cwd()), kernel_name="python3"
        )
        # the executed copy is an output, not half of a pair: opened in JupyterLab it must not grow a .py
        executed = nbformat.read(tmp, as_version=4)
        executed.metadata.pop("jupytext", None)
        nbformat.write(executed, tmp)
    return 0
