"""Notebooks have one source: each `notebooks/NAME.py` (jupytext percent format) is paired with the
committed `notebooks/NAME.ipynb` that papermill runs, and the two must hold the same cells.

After editing a `.py` outside JupyterLab, `jupytext --sync notebooks/NAME.py` brings the `.ipynb` in line
(and the other way round); in JupyterLab with jupytext installed, saving either side rewrites both.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import jupytext
import nbformat
import pytest

from mriqa_lib.claims import CLAIMS
from mriqa_lib.methods import registry

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
IPYNB = sorted(NOTEBOOKS.glob("*.ipynb"))
PAIRED_FORMATS = "ipynb,py:percent"


def cells(nb: nbformat.NotebookNode) -> list[tuple[str, str, list[str]]]:
    """What a pair must agree on: each cell's type, source and tags, in order."""
    return [(c.cell_type, c.source, list(c.metadata.get("tags", []))) for c in nb.cells]


def out_of_sync(ipynb: Path) -> list[str]:
    """Why ``ipynb`` and its paired ``.py`` differ (empty when they hold the same cells)."""
    py = ipynb.with_suffix(".py")
    if not py.exists():
        return [f"{py.name} is missing (pair it: jupytext --set-formats {PAIRED_FORMATS} {ipynb.name})"]
    a, b = cells(nbformat.read(ipynb, as_version=4)), cells(jupytext.read(py))
    problems = [f"{ipynb.name} has {len(a)} cells, {py.name} has {len(b)}"] if len(a) != len(b) else []
    problems += [f"cell {i}: {first_difference(x, y)}" for i, (x, y) in enumerate(zip(a, b)) if x != y]
    return problems


def first_difference(x: tuple[str, str, list[str]], y: tuple[str, str, list[str]]) -> str:
    """The first thing that differs between two cells, .ipynb side first."""
    if x[0] != y[0] or x[2] != y[2]:
        return f"type/tags {x[0]} {x[2]} vs {y[0]} {y[2]}"
    lines = list(zip(x[1].splitlines(), y[1].splitlines()))
    i = next((k for k, (u, v) in enumerate(lines) if u != v), len(lines))
    a, b = (x[1].splitlines() + ["<end>"])[i], (y[1].splitlines() + ["<end>"])[i]
    return f"source line {i + 1}: {a!r} vs {b!r}"


def test_every_notebook_is_paired_and_every_source_has_a_notebook():
    assert IPYNB, "no notebooks found"
    sources = {p.stem for p in NOTEBOOKS.glob("*.py")}
    assert sources == {p.stem for p in IPYNB}, "each notebooks/NAME.py needs notebooks/NAME.ipynb and vice versa"
    for p in IPYNB:
        assert nbformat.read(p, as_version=4).metadata.get("jupytext", {}).get("formats") == PAIRED_FORMATS, p.name
        assert p.with_suffix(".py").read_text().splitlines()[:1] == ["# ---"], f"{p.stem}.py lacks its jupytext header"


@pytest.mark.parametrize("ipynb", IPYNB, ids=lambda p: p.stem)
def test_pair_in_sync(ipynb):
    problems = out_of_sync(ipynb)
    assert not problems, f"run `jupytext --sync notebooks/{ipynb.stem}.py`:\n" + "\n".join(problems)


@pytest.mark.parametrize("ipynb", IPYNB, ids=lambda p: p.stem)
def test_committed_without_outputs(ipynb):
    nb = nbformat.read(ipynb, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.outputs == [] and c.execution_count is None for c in code), f"{ipynb.name} holds outputs"


@pytest.mark.parametrize("ipynb", IPYNB, ids=lambda p: p.stem)
def test_parameters_cell_survives_the_py_and_sets_out_dir(ipynb):
    """papermill injects after the cell tagged `parameters`; `mriqa notebook` always passes out_dir."""
    text = ipynb.with_suffix(".py").read_text()
    assert text.count('# %% tags=["parameters"]') == 1, f"{ipynb.stem}.py: one cell tagged parameters"
    nb = jupytext.read(ipynb.with_suffix(".py"))
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and tagged[0].cell_type == "code"
    names = {getattr(t, "id", None) for node in ast.parse(tagged[0].source).body if isinstance(node, ast.Assign) for t in node.targets}
    assert "out_dir" in names
    # a round trip through the text format keeps the tag (what JupyterLab does on every save)
    back = jupytext.reads(jupytext.writes(nbformat.read(ipynb, as_version=4), fmt="py:percent"), fmt="py:percent")
    assert cells(back) == cells(nbformat.read(ipynb, as_version=4))


def typed_thresholds(source: str, thresholds: set[float]) -> list[str]:
    """Claim thresholds typed as numbers in code: compared with a value, drawn as a line, or printed
    as ``>= 0.8`` in a string. Returns one line per finding."""
    found = []
    for node in ast.walk(ast.parse(source)):
        consts: list[ast.AST] = []
        if isinstance(node, ast.Compare):
            consts = [node.left, *node.comparators]
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") in {"axhline", "axvline", "hlines", "vlines"}:
            consts = list(node.args[:1])
        found += [f"line {c.lineno}: {c.value}" for c in consts
                  if isinstance(c, ast.Constant) and type(c.value) is float and c.value in thresholds]
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            found += [f"line {node.lineno}: '{m.group(0)}'" for m in re.finditer(r"[<>]=?\s*(\d*\.\d+)", node.value)
                      if float(m.group(1)) in thresholds]
    return found


def test_typed_thresholds_finds_what_it_should():
    code = 'ok = x >= 0.85\nax.axhline(0.9)\nprint("target >= 0.8")\nax.plot(a, alpha=0.7)\ny = z < 0.5\n'
    assert len(typed_thresholds(code, {0.7, 0.8, 0.85, 0.9})) == 3


@pytest.mark.parametrize("method", registry.names())
def test_paper_notebooks_read_claim_thresholds_from_claims(method):
    """A claim's threshold is written once, in mriqa_lib/claims.py; notebooks use claims.target()."""
    thresholds = {float(c.target) for c in CLAIMS if not isinstance(c.target, bool) and c.target != 0}
    nb = jupytext.read(NOTEBOOKS / f"{registry.get(method).notebook}.py")
    found = [f"cell {i} {hit}" for i, c in enumerate(nb.cells) if c.cell_type == "code"
             for hit in typed_thresholds(c.source, thresholds)]
    assert not found, f"use `from mriqa_lib.claims import target` instead of typing: {found}"
