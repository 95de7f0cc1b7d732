"""The `mriqa` command: help texts, cohort sub-command, notebook runner paths."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mriqa_lib.cli import build_parser, main
from mriqa_lib.commands.notebook import figures_dir_for
from mriqa_lib.io import read_tsv


def test_cohort_help_documents_itself():
    proc = subprocess.run(
        [sys.executable, "-m", "mriqa_lib.cli", "cohort", "--help"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0
    for word in ("--out", "--n", "--seed", "ICBM152", "synthetic"):
        assert word in proc.stdout


def test_top_level_lists_contract_commands():
    names = set(build_parser()._subparsers._group_actions[0].choices)
    assert {"cohort", "stage", "notebook", "check", "profile"} <= names


def test_cohort_command_writes_n_subjects(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no params.yaml here: built-in default sites
    assert main(["cohort", "--out", "c", "--n", "2", "--seed", "3", "--workers", "1", "--quiet"]) == 0
    frame = read_tsv(tmp_path / "c" / "participants.tsv")
    assert list(frame.participant_id) == ["sub-001", "sub-002"]


def test_cohort_bad_option_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["cohort", "--out", "c", "--n", "1"]) == 2
    err = capsys.readouterr().err
    assert "n_subjects" in err and err.strip().count("\n") == 0
    assert not (tmp_path / "c").exists()


def test_unknown_stage_is_config_error(capsys):
    assert main(["stage", "nosuchmethod", "train"]) == 2
    assert "unknown stage" in capsys.readouterr().err


@pytest.mark.parametrize("name, folder", [("00_cohort", "figures/cohort"), ("01_ecker.ipynb", "figures/ecker")])
def test_notebook_figures_folder(name, folder):
    assert str(figures_dir_for(name)) == folder
