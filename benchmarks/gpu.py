"""GPU smoke check: each method's training at the paper's width on whatever GPU is present.

    python benchmarks/gpu.py [--steps 300] [--methods ecker shaw ...] [--precision 16-mixed]

Every method trains its network(s) for ``--steps`` optimiser steps on a small fixed set of random
inputs of the paper's size (settings: params.yaml with the paper profile overlaid), so the loss
can only fall by fitting them. Prints one row per network: steps/s, peak GPU memory, first and
last loss, and whether the loss fell. Without a CUDA GPU it says so and exits with status 2;
``--cpu`` runs the same code on the CPU with the embedded (small) settings, as the tests do.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

NO_GPU = "no CUDA GPU is visible (torch.cuda.is_available() is False): nothing to measure here; run this on a GPU machine, or pass --cpu for the small CPU check"  # noqa: E501


@dataclass
class Case:
    """One network to train: its module and its training (and validation) loaders."""

    name: str
    module: Any
    train: DataLoader
    val: DataLoader | None = None


class _Repeat(Dataset):
    """``n`` items cycling over the first few of ``base`` (a fixed set the network can fit)."""

    def __init__(self, base: Dataset, n: int) -> None:
        self.base, self.n = base, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        return self.base[i % len(self.base)]


def _loader(tensors: list[torch.Tensor], batch: int, steps: int) -> DataLoader:
    return DataLoader(_Repeat(TensorDataset(*tensors), steps * batch), batch_size=batch)


def ecker_cases(s, steps: int, rng: np.random.Generator, small: bool) -> list[Case]:
    from mriqa_lib.methods.ecker.simclr import SimCLRModule

    p = s.ecker
    x = torch.from_numpy(rng.random((p.batch_size, 1, p.img_size, p.img_size), dtype=np.float32))
    return [Case("ecker SimCLR", SimCLRModule(p, steps_per_epoch=steps), _loader([x], p.batch_size, steps))]


def zuo_cases(s, steps: int, rng: np.random.Generator, small: bool) -> list[Case]:
    from mriqa_lib.methods.zuo.contrastive import ContrastiveSampler, EncoderModule

    p = s.zuo.model_copy(update={"steps": steps})
    n = max(2, p.batch_volumes)
    slices = {o: rng.random((n, 2, p.slice_size, p.slice_size), dtype=np.float32) for o in ("axial", "coronal")}
    loader = DataLoader(ContrastiveSampler(slices, p, p.seed), batch_size=None)
    return [Case("zuo encoder", EncoderModule(p), loader)]


def shaw_cases(s, steps: int, rng: np.random.Generator, small: bool) -> list[Case]:
    from mriqa_lib.methods.shaw.data import work_grid
    from mriqa_lib.methods.shaw.lit import ShawModule, loaders

    p = s.shaw
    clean = rng.random((2, *work_grid(p.grid_mm)[1]), dtype=np.float32)
    data = {"inputs": clean, "clean": clean, "gm": (clean > 0.5).astype(np.uint8), "source": np.arange(2)}
    train, val = loaders(p, data, data, iterations=steps)
    return [Case(f"shaw {kind}", ShawModule.from_params(kind, p, steps), train, val) for kind in ("recon", "multitask")]


def ssfd_cases(s, steps: int, rng: np.random.Generator, small: bool) -> list[Case]:
    from mriqa_lib.methods.ssfd.lit import InpaintModule, ReconModule

    p = s.ssfd
    side = 32 if small else 320  # fastMRI knee slices, 320 x 320
    img = torch.from_numpy(rng.random((p.pretext_batch_size, 1, side, side), dtype=np.float32))
    mask = torch.from_numpy(rng.random(img.shape) < p.patch_fraction)
    inpaint = InpaintModule(tuple(p.encoder_channels), p.group_norm_groups, p.pretext_lr)
    recon = ReconModule(tuple(p.recon_channels), p.recon_lr)
    return [
        Case("ssfd inpainting", inpaint, _loader([img * ~mask, img, mask], p.pretext_batch_size, steps)),
        Case(
            "ssfd reconstruction",
            recon,
            _loader([img[: p.recon_batch_size] * 0.5, img[: p.recon_batch_size]], p.recon_batch_size, steps),
        ),
    ]


def bricout_cases(s, steps: int, rng: np.random.Generator, small: bool) -> list[Case]:
    from mriqa_lib.methods.bricout.model import MotionRegressor

    b, m = s.bricout, s.bricout.model
    shape = tuple(b.data.crop)  # the network input (paper: 160 x 192 x 160)
    x = torch.from_numpy(rng.random((b.pretrain.batch_size, 1, *shape), dtype=np.float32))
    y = torch.from_numpy(rng.uniform(0.0, 4.0, b.pretrain.batch_size).astype(np.float32))
    module = MotionRegressor(
        m.channels,
        m.latent,
        m.n_bins,
        m.bin_range,
        m.sigma,
        m.dropout,
        b.pretrain.lr,
        b.pretrain.weight_decay,
        b.pretrain.plateau_factor,
        b.pretrain.plateau_patience,
    )
    loader = _loader([x, y], b.pretrain.batch_size, steps)
    return [Case("bricout SFCN pretraining", module, loader, _loader([x, y], b.pretrain.batch_size, 1))]


CASES: dict[str, Callable[..., list[Case]]] = {
    "ecker": ecker_cases,
    "zuo": zuo_cases,
    "shaw": shaw_cases,
    "ssfd": ssfd_cases,
    "bricout": bricout_cases,
}


class _Losses:
    """A callback collecting each step's training loss."""

    def __init__(self) -> None:
        import lightning as L

        class Hook(L.Callback):
            def on_train_batch_end(inner, trainer, module, outputs, batch, idx) -> None:  # noqa: N805
                loss = outputs["loss"] if isinstance(outputs, dict) else outputs
                self.values.append(float(loss.detach().float().cpu()))

        self.values: list[float] = []
        self.callback = Hook()


def run_case(case: Case, steps: int, accelerator: str, precision: str) -> dict[str, Any]:
    """Train ``case`` for ``steps`` steps; its speed, peak memory and whether the loss fell."""
    import lightning as L

    losses = _Losses()
    trainer = L.Trainer(
        accelerator=accelerator,
        devices=1,
        precision=precision,
        max_steps=steps,
        max_epochs=-1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=1,
        callbacks=[losses.callback],
    )
    if accelerator == "gpu":
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    trainer.fit(case.module, case.train, case.val)
    seconds = time.perf_counter() - start
    v = losses.values
    k = max(1, len(v) // 10)
    first, last = float(np.mean(v[:k])), float(np.mean(v[-k:]))
    memory = torch.cuda.max_memory_allocated() / 2**30 if accelerator == "gpu" else float("nan")
    return {
        "network": case.name,
        "steps": len(v),
        "steps_per_s": len(v) / seconds,
        "peak_gib": memory,
        "loss_first": first,
        "loss_last": last,
        "loss_fell": last < first,
    }


def paper_settings(cpu: bool):
    """params.yaml with the paper profile overlaid (GPU), or params.yaml alone (the small CPU check)."""
    from mriqa_lib.commands.profile import merged_profile
    from mriqa_lib.config import PARAMS_FILE, parse_settings, read_yaml

    base = read_yaml(PARAMS_FILE)
    return parse_settings(base if cpu else merged_profile(base, "paper"), "params.yaml + paper profile")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--methods", nargs="+", choices=sorted(CASES), default=list(CASES))
    ap.add_argument("--precision", default="16-mixed")
    ap.add_argument("--cpu", action="store_true", help="run on the CPU with the embedded settings (32-bit)")
    args = ap.parse_args(argv)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)  # one table, not Lightning's notes
    if not args.cpu and not torch.cuda.is_available():
        print(NO_GPU, file=sys.stderr)
        return 2
    accelerator, precision = ("cpu", "32-true") if args.cpu else ("gpu", args.precision)
    settings, rng = paper_settings(args.cpu), np.random.default_rng(0)
    device = "CPU" if args.cpu else torch.cuda.get_device_name(0)
    print(f"{device}, {precision}, {args.steps} steps per network")
    print(f"{'network':26} {'steps':>5} {'steps/s':>8} {'peak GiB':>8} {'loss first':>10} {'last':>10}  fell")
    rows = []
    for name in args.methods:
        torch.manual_seed(0)
        for case in CASES[name](settings, args.steps, rng, args.cpu):
            r = run_case(case, args.steps, accelerator, precision)
            rows.append(r)
            print(
                f"{r['network']:26} {r['steps']:5d} {r['steps_per_s']:8.2f} {r['peak_gib']:8.2f} "
                f"{r['loss_first']:10.4f} {r['loss_last']:10.4f}  {'yes' if r['loss_fell'] else 'NO'}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
