"""Multi-process training on the CPU (gloo, 2 processes): what DDP must leave unchanged."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _nt_xent_rank(rank: int, world: int, port: int, x: torch.Tensor, weight: torch.Tensor, out: dict) -> None:
    """One process: its half of the batch through a shared linear map, NT-Xent across processes, DDP's
    gradient (all-reduce mean)."""
    from torch.distributed.nn.functional import all_gather

    from mriqa_lib.methods.ecker.simclr import nt_xent_across

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    w = weight.clone().requires_grad_(True)
    part = x.chunk(world)[rank]  # (n, 2, d): this process's images, two views each
    z1, z2 = part[:, 0] @ w, part[:, 1] @ w
    loss = nt_xent_across(z1, z2, 0.5, lambda t: torch.stack(all_gather(t)))
    loss.backward()
    dist.all_reduce(w.grad)
    out[rank] = (float(loss), (w.grad / world).clone())
    dist.destroy_process_group()


def test_nt_xent_across_processes_equals_the_single_process_loss_and_gradient():
    from mriqa_lib.methods.ecker.simclr import nt_xent

    torch.manual_seed(0)
    x, weight = torch.randn(8, 2, 6), torch.randn(6, 4)
    w = weight.clone().requires_grad_(True)
    full = nt_xent(x[:, 0] @ w, x[:, 1] @ w, 0.5)
    full.backward()
    # a per-process loss (negatives from the own batch only) differs: the test can tell them apart
    local = nt_xent(x[:4, 0] @ weight, x[:4, 1] @ weight, 0.5)
    assert abs(float(local) - float(full)) > 1e-3

    ctx = mp.get_context("spawn")
    with ctx.Manager() as manager:
        out = manager.dict()
        mp.start_processes(_nt_xent_rank, args=(2, _free_port(), x, weight, out), nprocs=2, start_method="spawn")
        results = dict(out)
    for rank in (0, 1):
        loss, grad = results[rank]
        assert loss == pytest.approx(float(full), rel=1e-5)
        assert torch.allclose(grad, w.grad, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("whole_volume", [False, True])
def test_shaw_makes_its_iterations_as_optimiser_steps_on_every_process(whole_volume):
    """Paper 3 counts iterations as optimiser steps: with 2 processes DDP's sampler gives each process
    half the samples, so the loader must hold twice as many for each to make ``iterations`` steps."""
    import numpy as np
    from torch.utils.data import DataLoader, DistributedSampler

    from mriqa_lib.methods.shaw.lit import loaders
    from mriqa_lib.methods.shaw.params import ShawParams

    p = ShawParams(patch=8, batch_size=3, whole_volume=whole_volume)
    clean = np.random.default_rng(0).random((4, 12, 12, 12)).astype(np.float16)
    data = {"inputs": clean, "clean": clean, "gm": (clean > 0.5).astype(np.uint8), "source": np.arange(4)}
    iterations = 7
    single, _ = loaders(p, data, data, iterations, world_size=1)
    assert len(single) == iterations
    loader, _ = loaders(p, data, data, iterations, world_size=2)
    for rank in (0, 1):  # what Lightning's distributed sampler gives each process
        sampler = DistributedSampler(loader.dataset, num_replicas=2, rank=rank, shuffle=False)
        assert len(DataLoader(loader.dataset, batch_size=p.batch_size, sampler=sampler)) == iterations


def _gather_rank(rank: int, world: int, port: int, out: dict) -> None:
    from mriqa_lib.training import gather_all

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    part = torch.arange(10)[:3] if rank == 0 else torch.arange(10)[3:]  # unequal shares: 3 and 7
    out[rank] = gather_all(part).tolist()
    out[f"{rank} alone"] = gather_all(part, world_size=1).tolist()  # a 1-device trainer after a DDP step
    dist.destroy_process_group()


def test_validation_metrics_see_the_whole_set_on_every_process():
    """gather_all hands every process all validation predictions (unequal shares), in rank order, so a
    whole-set metric such as balanced accuracy is computed once on all of them, not averaged."""
    from mriqa_lib.training import gather_all

    assert gather_all(torch.arange(4)).tolist() == [0, 1, 2, 3]  # no process group: unchanged
    ctx = mp.get_context("spawn")
    with ctx.Manager() as manager:
        out = manager.dict()
        mp.start_processes(_gather_rank, args=(2, _free_port(), out), nprocs=2, start_method="spawn")
        assert dict(out) == {
            0: list(range(10)),
            1: list(range(10)),
            "0 alone": [0, 1, 2],
            "1 alone": list(range(3, 10)),
        }


# ------------------------------------------------------------------ one set of outputs from N processes
CALLS: list[str] = []


def synthesize(settings) -> None:
    CALLS.append("synthesize")


def train(settings) -> None:
    """What a training step does: clear its model folder, read its inputs, write its outputs."""
    import shutil

    CALLS.append("train")
    shutil.rmtree("models/ddptoy", ignore_errors=True)
    Path("models/ddptoy").mkdir(parents=True)
    Path("models/ddptoy/weights.txt").write_text(Path("data/input.txt").read_text() + f" from {os.getcwd()}")


@pytest.fixture()
def ddptoy(tmp_path, monkeypatch):
    from pydantic import BaseModel

    from mriqa_lib.methods import registry

    class ToyParams(BaseModel):
        seed: int = 0

    registry.register(
        registry.MethodSpec(
            name="ddptoy", paper="P9", title="toy", params=ToyParams, load_scorer=lambda d, s: None,
            badness="ddptoy_score", stage_module=__name__, stages=("synthesize", "train"),
        )
    )  # fmt: skip
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "input.txt").write_text("input")
    (tmp_path / "models" / "ddptoy").mkdir(parents=True)
    (tmp_path / "models" / "ddptoy" / "old.txt").write_text("previous run")
    (tmp_path / "params.yaml").write_text((Path(__file__).resolve().parents[1] / "params.yaml").read_text())
    for k in ("RANK", "SLURM_PROCID", "NODE_RANK", "LOCAL_RANK", "JSM_NAMESPACE_RANK"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.chdir(tmp_path)
    CALLS.clear()
    yield tmp_path
    registry.unregister("ddptoy")


@pytest.mark.parametrize("variable", ["RANK", "SLURM_PROCID", "LOCAL_RANK", "NODE_RANK"])
def test_a_process_other_than_rank_zero_trains_but_writes_nothing(ddptoy, monkeypatch, variable):
    from mriqa_lib.cli import main
    from mriqa_lib.training import is_rank_zero

    assert is_rank_zero()
    monkeypatch.setenv(variable, "1")
    assert not is_rank_zero()
    assert main(["stage", "ddptoy", "synthesize"]) == 0 and CALLS == []  # only rank 0 synthesizes
    assert main(["stage", "ddptoy", "train"]) == 0 and CALLS == ["train"]  # every rank trains
    # its rmtree and its writes went to a throwaway folder: rank 0's outputs are untouched
    assert sorted(p.name for p in (ddptoy / "models" / "ddptoy").iterdir()) == ["old.txt"]
    assert Path.cwd() == ddptoy and not list(ddptoy.glob("mriqa-rank-*"))


def test_rank_zero_writes_the_outputs(ddptoy):
    from mriqa_lib.cli import main

    assert main(["stage", "ddptoy", "synthesize"]) == 0 and main(["stage", "ddptoy", "train"]) == 0
    assert CALLS == ["synthesize", "train"]
    weights = ddptoy / "models" / "ddptoy" / "weights.txt"
    assert sorted(p.name for p in weights.parent.iterdir()) == ["weights.txt"]
    assert weights.read_text() == f"input from {ddptoy}"


def _launch(folder: Path, method: str) -> tuple[Any, Path]:
    """`mriqa stage METHOD synthesize` then `train` in ``folder`` (its params.yaml), launched alone
    (no launcher variables), with a private TMPDIR; returns (the train run, that TMPDIR)."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    scratch = folder / "tmp"
    scratch.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch), "PYTHONPATH": str(root)}
    for k in ("RANK", "SLURM_PROCID", "NODE_RANK", "LOCAL_RANK", "JSM_NAMESPACE_RANK", "SLURM_NTASKS"):
        env.pop(k, None)
    for step in ("synthesize", "train"):
        run = subprocess.run([sys.executable, "-m", "mriqa_lib.cli", "stage", method, step], cwd=folder, env=env,
                             capture_output=True, text=True, timeout=300)  # fmt: skip
        assert run.returncode == 0, run.stderr[-3000:]
    return run, scratch


def test_a_two_process_ddp_training_leaves_one_set_of_outputs(stage_cohort, tmp_path):
    """`mriqa stage ssfd train` with 2 CPU processes (Lightning's DDP launcher re-runs the command for
    rank 1): both train, rank 0 writes models/ssfd, rank 1's copies vanish with its scratch folder."""
    import shutil

    import yaml

    root = Path(__file__).resolve().parents[1]
    shutil.copytree(stage_cohort, tmp_path / "data" / "embedded")
    raw = yaml.safe_load((root / "params.yaml").read_text())
    raw["ssfd"].update(
        slices_per_subject=2, n_coils=2, encoder_channels=[4] * 5, group_norm_groups=2, pretext_epochs=1,
        recon_epochs=1, recon_channels=[4, 4], pretext_batch_size=4, recon_batch_size=4,
    )  # fmt: skip
    raw["trainer"].update(accelerator="cpu", devices=2, strategy="ddp", threads=1)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    run, scratch = _launch(tmp_path, "ssfd")
    assert run.stdout.count("metrics -> metrics/ssfd_train.json") == 2  # both processes ran the whole step
    assert {"inpaint.pt", "recon.pt"} <= {p.name for p in (tmp_path / "models" / "ssfd").iterdir()}
    assert (tmp_path / "metrics" / "ssfd_train.json").exists()
    assert not list(scratch.glob("mriqa-rank-*"))  # rank 1's outputs went and were removed


def test_paper5_pretrains_on_two_processes_and_trains_qc_on_one(stage_cohort, tmp_path):
    """The paper profile's shape on the CPU: ``bricout.trainer.pretrain`` on 2 DDP processes, the QC
    transfer and scratch steps on 1 device. Lightning's launcher re-runs the command for rank 1, which
    pretrains with rank 0 and then trains its own QC models into its throwaway folder; rank 0 writes
    one set of outputs, and the training cost records the world size of each step."""
    import shutil

    import yaml

    root = Path(__file__).resolve().parents[1]
    shutil.copytree(stage_cohort, tmp_path / "data" / "embedded")
    raw = yaml.safe_load((root / "params.yaml").read_text())
    bp = raw["bricout"]
    bp.update(progress=False, workers=1, seeds=[0])
    bp["data"].update(n_qc_sites=1, grid_mm=8.0, crop=[16, 16, 16], qc_split=[0.4, 0.2, 0.4])
    bp["embedded_qc"]["sessions"] = 4
    bp["model"].update(channels=[2, 2], latent=2)
    bp["pretrain"].update(samples_per_volume=2, max_epochs=1, batch_size=2, precise_bn=0)
    bp["transfer"]["max_epochs"] = bp["scratch"]["max_epochs"] = 1
    bp["augment"]["elastic_max_displacement_mm"] = 4.0
    bp["trainer"] = {"pretrain": {"devices": 2, "strategy": "ddp"}}
    raw["trainer"].update(threads=1)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    _, scratch = _launch(tmp_path, "bricout")
    models = tmp_path / "models" / "bricout"
    assert (models / "transfer" / "seed0" / "model.pt").exists() and (
        models / "scratch" / "seed0" / "model.pt"
    ).exists()
    cost = json.loads((models / "cost.json").read_text())
    assert cost["pretrain"]["world_size"] == 2
    assert cost["transfer"]["world_size"] == cost["scratch"]["world_size"] == 1
    assert not list(scratch.glob("mriqa-rank-*"))
