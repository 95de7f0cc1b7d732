"""Multi-process training on the CPU (gloo, 2 processes): what DDP must leave unchanged."""

from __future__ import annotations

import os
import socket

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
        assert dict(out) == {0: list(range(10)), 1: list(range(10))}
