"""benchmarks/gpu.py: a clear message and status 2 without a GPU; with --cpu every network trains."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def gpu_tool():
    spec = importlib.util.spec_from_file_location("gpu_tool", ROOT / "benchmarks" / "gpu.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_without_a_gpu_it_says_so_and_exits_2(gpu_tool, monkeypatch, capsys):
    monkeypatch.setattr(gpu_tool.torch.cuda, "is_available", lambda: False)
    assert gpu_tool.main(["--steps", "1"]) == 2
    err = capsys.readouterr().err
    assert "no CUDA GPU is visible" in err and "--cpu" in err


def test_every_method_has_a_case_and_cpu_runs_train(gpu_tool, monkeypatch, capsys):
    from mriqa_lib.methods import registry

    assert sorted(gpu_tool.CASES) == sorted(registry.names())
    monkeypatch.chdir(ROOT)  # params.yaml
    assert gpu_tool.main(["--cpu", "--steps", "3", "--methods", "shaw", "ssfd", "bricout"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[2:]]
    names = [" ".join(r[:-6]) for r in rows]
    assert names == [
        "shaw recon",
        "shaw multitask",
        "ssfd inpainting",
        "ssfd reconstruction",
        "bricout SFCN pretraining",
    ]
    assert all(int(r[-6]) == 3 for r in rows)  # three optimiser steps each, losses recorded per step
