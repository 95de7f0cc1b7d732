"""Notebooks have one source: each `notebooks/NAME.py` (jupytext percent format) is paired with the
committed `notebooks/NAME.ipynb` that papermill runs, and the two must hold the same cells.

After editing a `.py` outside JupyterLab, `jupytext --sync notebooks/NAME.py` brings the `.ipynb` in line
(and the other way round); in JupyterLab with jupytext installed, saving either side rewrites both.
"""

from __future__ import annotations

import argparse
import ast
import re
import shutil
from pathlib import Path

import jupytext
import nbformat
import pytest

from mriqa_lib.claims import CLAIMS
from mriqa_lib.commands.notebook import pair_problems, run
from mriqa_lib.io import MriqaInputError
from mriqa_lib.methods import registry

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
IPYNB = sorted(NOTEBOOKS.glob("*.ipynb"))
PAIRED_FORMATS = "ipynb,py:percent"
LINE_CALLS = {"axhline", "axvline", "hlines", "vlines"}  # a threshold drawn as a target line


def cells(nb: nbformat.NotebookNode) -> list[tuple[str, str, list[str]]]:
    """What a pair must agree on: each cell's type, source and tags, in order."""
    return [(c.cell_type, c.source, list(c.metadata.get("tags", []))) for c in nb.cells]


def test_every_notebook_is_paired_and_every_source_has_a_notebook():
    assert IPYNB, "no notebooks found"
    sources = {p.stem for p in NOTEBOOKS.glob("*.py")}
    assert sources == {p.stem for p in IPYNB}, "each notebooks/NAME.py needs notebooks/NAME.ipynb and vice versa"
    for p in IPYNB:
        assert nbformat.read(p, as_version=4).metadata.get("jupytext", {}).get("formats") == PAIRED_FORMATS, p.name
        assert p.with_suffix(".py").read_text().splitlines()[:1] == ["# ---"], f"{p.stem}.py lacks its jupytext header"


@pytest.mark.parametrize("ipynb", IPYNB, ids=lambda p: p.stem)
def test_pair_in_sync(ipynb):
    problems = pair_problems(ipynb)
    assert not problems, f"run `jupytext --sync notebooks/{ipynb.stem}.py`:\n" + "\n".join(problems)


@pytest.fixture
def pair(tmp_path, monkeypatch):
    """A copy of one pair under tmp_path/notebooks (the working directory), in sync to begin with."""
    (tmp_path / "notebooks").mkdir()
    for suffix in (".ipynb", ".py"):
        shutil.copy(NOTEBOOKS / f"01_ecker{suffix}", tmp_path / "notebooks")
    monkeypatch.chdir(tmp_path)
    assert pair_problems(Path("notebooks/01_ecker.ipynb")) == []
    return Path("notebooks/01_ecker.ipynb"), Path("notebooks/01_ecker.py")


def edit_ipynb(path: Path, change) -> None:
    nb = nbformat.read(path, as_version=4)
    change(nb)
    nbformat.write(nb, path)


@pytest.mark.parametrize("side", ["py source", "ipynb source", "py tag", "ipynb tag", "ipynb cell added", "no py"])
def test_a_pair_edited_on_one_side_is_reported(pair, side):
    ipynb, py = pair
    if side == "py source":
        py.write_text(py.read_text().replace("style()\n", "style()  # edited here only\n", 1))
    elif side == "py tag":
        py.write_text(py.read_text().replace('# %% tags=["parameters"]', "# %%", 1))
    elif side == "ipynb source":
        edit_ipynb(ipynb, lambda nb: setattr(nb.cells[2], "source", nb.cells[2].source + "\nx = 1"))
    elif side == "ipynb tag":
        edit_ipynb(ipynb, lambda nb: nb.cells[1].metadata.pop("tags"))
    elif side == "ipynb cell added":
        edit_ipynb(ipynb, lambda nb: nb.cells.append(nbformat.v4.new_markdown_cell("new")))
    else:
        py.unlink()
    assert pair_problems(ipynb), side


def test_mriqa_notebook_refuses_a_pair_out_of_sync(pair):
    """dvc runs the .ipynb: it must not draw from code that the reviewed .py no longer holds."""
    py = pair[1]
    py.write_text(py.read_text().replace("style()\n", "style()  # edited here only\n", 1))
    with pytest.raises(MriqaInputError, match="jupytext --sync"):
        run(argparse.Namespace(name="01_ecker", parameter=[], notebooks=Path("notebooks")))
    assert not Path("figures").exists()  # refused before anything ran or was written


def test_mriqa_notebook_runs_a_pair_and_its_executed_copy_is_unpaired(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notebooks").mkdir()
    Path("notebooks/07_toy.py").write_text(
        '# %% tags=["parameters"]\nout_dir = "nowhere"\n\n# %%\nfrom pathlib import Path\n\n'
        'Path(out_dir, "drawn.txt").write_text("ok")\n'
    )
    jupytext.write(jupytext.read("notebooks/07_toy.py"), "notebooks/07_toy.ipynb", fmt="ipynb")
    edit_ipynb(
        Path("notebooks/07_toy.ipynb"),
        lambda nb: nb.metadata.update(
            jupytext={"formats": PAIRED_FORMATS},
            kernelspec={"name": "python3", "display_name": "Python 3", "language": "python"},
        ),
    )
    assert pair_problems(Path("notebooks/07_toy.ipynb")) == []
    assert run(argparse.Namespace(name="07_toy", parameter=[], notebooks=Path("notebooks"))) == 0
    assert Path("figures/toy/drawn.txt").read_text() == "ok"  # papermill injected out_dir = figures/toy
    executed = nbformat.read("figures/toy/07_toy.ipynb", as_version=4)
    assert "jupytext" not in executed.metadata
    assert executed.metadata["papermill"]["parameters"] == {"out_dir": "figures/toy"}


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
    assigns = [node for node in ast.parse(tagged[0].source).body if isinstance(node, ast.Assign)]
    names = {getattr(t, "id", None) for node in assigns for t in node.targets}
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
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") in LINE_CALLS:
            consts = list(node.args[:1])
        found += [
            f"line {c.lineno}: {c.value}"
            for c in consts
            if isinstance(c, ast.Constant) and type(c.value) is float and c.value in thresholds
        ]
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            found += [
                f"line {node.lineno}: '{m.group(0)}'"
                for m in re.finditer(r"[<>]=?\s*(\d*\.\d+)", node.value)
                if float(m.group(1)) in thresholds
            ]
    return found


def test_typed_thresholds_finds_what_it_should():
    code = 'ok = x >= 0.85\nax.axhline(0.9)\nprint("target >= 0.8")\nax.plot(a, alpha=0.7)\ny = z < 0.5\n'
    assert len(typed_thresholds(code, {0.7, 0.8, 0.85, 0.9})) == 3


@pytest.mark.parametrize("method", registry.names())
def test_paper_notebooks_read_claim_thresholds_from_claims(method):
    """A claim's threshold is written once, in mriqa_lib/claims.py; notebooks use claims.target()."""
    thresholds = {float(c.target) for c in CLAIMS if not isinstance(c.target, bool) and c.target != 0}
    nb = jupytext.read(NOTEBOOKS / f"{registry.get(method).notebook}.py")
    found = [
        f"cell {i} {hit}"
        for i, c in enumerate(nb.cells)
        if c.cell_type == "code"
        for hit in typed_thresholds(c.source, thresholds)
    ]
    assert not found, f"use `from mriqa_lib.claims import target` instead of typing: {found}"
