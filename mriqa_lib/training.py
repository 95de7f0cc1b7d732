"""Shared Lightning plumbing: one trainer factory and the cost monitor (time, memory, power).

``trainer`` settings from params.yaml go straight to ``lightning.Trainer``, so DDP, SLURM and
mixed precision are configuration only. Checkpoints are written to the folder given (never
under the logger), and the best one is what the stages keep.
"""

from __future__ import annotations

import contextlib
import os
import resource
import sys
import threading
import time
from pathlib import Path
from typing import Any

from mriqa_lib.config import TrainerParams


def peak_rss_mb() -> float:
    """Peak resident memory of this process (MiB)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 if sys.platform != "darwin" else peak / 2**20


class CostMonitor:
    """Measures wall time, peak memory (accelerator when present, else process RSS) and, when
    NVML is available, mean and peak GPU power and energy. Use as a context manager; ``result``
    holds the numbers for a metrics JSON (paper 5, Table 4).

    Every visible GPU is measured: this process's peak allocation on each (``torch.cuda``) and, with
    NVML, each device's peak used memory (all processes, so the other DDP ranks too) and the power
    summed over the devices.
    """

    def __init__(self, poll_s: float = 0.5) -> None:
        self.poll_s = poll_s
        self.result: dict[str, Any] = {}
        self._power: list[float] = []
        self._used_mb: list[float] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._nvml = None
        self._n_gpus = 0

    def _poll(self) -> None:
        nvml = self._nvml
        handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(self._n_gpus)]  # type: ignore[union-attr]
        self._used_mb = [0.0] * len(handles)
        while not self._stop.wait(self.poll_s):
            try:
                self._power.append(sum(nvml.nvmlDeviceGetPowerUsage(h) for h in handles) / 1000.0)  # type: ignore[union-attr]
                for i, h in enumerate(handles):
                    used = nvml.nvmlDeviceGetMemoryInfo(h).used / 2**20  # type: ignore[union-attr]
                    self._used_mb[i] = max(self._used_mb[i], used)
            except Exception:
                return

    def __enter__(self) -> CostMonitor:
        import torch

        self._n_gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
        for i in range(self._n_gpus):
            torch.cuda.reset_peak_memory_stats(i)
        if self._n_gpus:
            try:
                import pynvml

                pynvml.nvmlInit()
                self._nvml = pynvml
                self._thread = threading.Thread(target=self._poll, daemon=True)
                self._thread.start()
            except Exception:
                self._nvml = None
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        import torch

        seconds = time.perf_counter() - self._t0
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=2)
        self.result = {"wall_seconds": round(seconds, 2), "peak_cpu_rss_mb": round(peak_rss_mb(), 1)}
        if self._n_gpus:
            gpus = range(self._n_gpus)
            peaks = [round(torch.cuda.max_memory_allocated(i) / 2**20, 1) for i in gpus]
            self.result.update(
                device=torch.cuda.get_device_name(0),
                n_gpus=self._n_gpus,
                peak_gpu_memory_mb=max(peaks),
                peak_gpu_memory_mb_per_device=peaks,
            )
            if any(self._used_mb):
                self.result["peak_gpu_used_mb_per_device"] = [round(m, 1) for m in self._used_mb]
        else:
            self.result["device"] = "cpu"
        if self._power:
            mean_w = sum(self._power) / len(self._power)
            self.result.update(
                mean_power_w=round(mean_w, 1),
                peak_power_w=round(max(self._power), 1),
                energy_wh=round(mean_w * seconds / 3600, 3),
            )
        else:
            self.result["power"] = "not measured (no NVML)"


def _devices(params: TrainerParams) -> Any:
    """``params.devices``, except for a one-GPU step inside a multi-process launch (paper 5's QC after
    its 4-GPU pretraining, under srun): each process then takes its own GPU, not all of them GPU 0."""
    import torch

    local = os.environ.get("SLURM_LOCALID") or os.environ.get("LOCAL_RANK")
    one = str(params.devices) == "1" and params.num_nodes == 1
    gpu = params.accelerator in ("gpu", "cuda") or (params.accelerator == "auto" and torch.cuda.is_available())
    if one and gpu and local is not None and int(local) < torch.cuda.device_count():
        return [int(local)]
    return params.devices


def build_trainer(
    params: TrainerParams,
    ckpt_dir: str | os.PathLike,
    max_epochs: int,
    monitor: str | None = None,
    mode: str = "min",
    patience: int | None = None,
    log_dir: str | os.PathLike | None = None,
    callbacks: list | None = None,
    **overrides: Any,
):
    """A ``lightning.Trainer`` configured from params.

    Args:
        params: the ``trainer`` section (accelerator, devices, strategy, num_nodes, precision).
        ckpt_dir: training folder: the best checkpoint goes to ``ckpt_dir/checkpoints/best.ckpt``
            (a subfolder, so the CSV logs beside it do not trip Lightning's "checkpoint directory
            exists and is not empty" warning).
        max_epochs: epochs to train.
        monitor: logged metric that selects the best checkpoint (and early stopping); None keeps
            the last epoch only.
        mode: "min" or "max" for ``monitor``.
        patience: early-stopping patience in epochs (None: no early stopping).
        log_dir: CSV logs (default ``ckpt_dir/logs``).
        overrides: further ``lightning.Trainer`` arguments.
    """
    import lightning as L
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger

    ckpt_dir = Path(ckpt_dir)
    cbs = list(callbacks or [])
    cbs.append(
        ModelCheckpoint(
            dirpath=ckpt_dir / "checkpoints",
            filename="best",
            monitor=monitor,
            mode=mode,
            save_top_k=1,
            save_last=False,
            enable_version_counter=False,
            # a monitored metric is a validation one: choose after every validation. Left to Lightning,
            # val_check_interval=1 (every step) equals 1.0 (once per epoch) and only the epoch end is kept
            save_on_train_epoch_end=False if monitor else None,
        )
    )
    if monitor and patience:
        cbs.append(EarlyStopping(monitor=monitor, mode=mode, patience=patience))
    kwargs: dict[str, Any] = dict(
        accelerator=params.accelerator,
        devices=_devices(params),
        strategy=params.strategy,
        num_nodes=params.num_nodes,
        precision=params.precision,
        max_epochs=max_epochs,
        deterministic=params.deterministic if params.accelerator == "cpu" else False,
        callbacks=cbs,
        logger=CSVLogger(str(log_dir or ckpt_dir / "logs"), name="", version=""),
        enable_model_summary=False,
        log_every_n_steps=1,
    )
    kwargs.update(overrides)
    return L.Trainer(**kwargs)


def inference_device(params: TrainerParams) -> Any:
    """The torch device evaluation runs on for the ``trainer`` settings ``params``: the first GPU when
    the accelerator asks for one (``auto``: when one is visible), else the CPU.

    Raises:
        ConfigError: ``gpu``/``cuda``/``mps`` is configured and no such device is visible.
    """
    import torch

    from mriqa_lib.config import ConfigError

    acc = params.accelerator
    if acc in ("gpu", "cuda", "auto") and torch.cuda.is_available():
        return torch.device("cuda", 0)
    if acc == "mps" and torch.backends.mps.is_available():
        return torch.device("mps")
    if acc in ("gpu", "cuda", "mps"):
        raise ConfigError(f"trainer.accelerator is '{acc}' but no such device is visible (use cpu or auto)")
    return torch.device("cpu")


def load_state(module: Any, ckpt_path: str | os.PathLike, prefix: str = "") -> Any:
    """Load a Lightning checkpoint's ``state_dict`` (``weights_only=True``) into ``module`` (the keys
    under ``prefix`` only, with the prefix removed, when one is given); returns ``module``."""
    import torch

    state = torch.load(ckpt_path, map_location="cpu", weights_only=True)["state_dict"]
    if prefix:
        state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    module.load_state_dict(state)
    return module


def gather_all(t: Any, world_size: int | None = None) -> Any:
    """The tensor ``t`` of every DDP process, concatenated along dim 0 in rank order (``t`` itself
    when no process group runs). Sizes may differ between processes, so that a metric of the whole
    validation set (R^2, balanced accuracy) is computed on all of it, not averaged over processes.

    ``world_size`` is the calling trainer's: 1 returns ``t`` even when an earlier multi-process step
    of the same run left its process group alive (paper 5 pretrains on 4 GPUs, then trains QC on 1).
    """
    import torch
    import torch.distributed as dist

    if world_size == 1 or not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return t
    parts: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(parts, t.detach().cpu())
    return torch.cat(parts)


#: what multi-process launchers (torchrun, SLURM's srun, Lightning's own DDP launcher) set per process
RANK_VARIABLES = ("RANK", "SLURM_PROCID", "NODE_RANK", "LOCAL_RANK", "JSM_NAMESPACE_RANK")
#: what a stage writes (relative to the repository root); everything else at the root is input
OUTPUT_FOLDERS = ("models", "metrics", "results", "figures")


def is_rank_zero() -> bool:
    """True unless this process is a DDP/SLURM process other than the first (global rank 0 has every
    launcher rank variable unset or 0; a run launched alone has none)."""
    return all(int(os.environ.get(k) or 0) == 0 for k in RANK_VARIABLES)


@contextlib.contextmanager
def scratch_outputs(root: str | os.PathLike = "."):
    """Run the body in a throwaway copy of ``root`` whose inputs are links to ``root``'s and whose
    output folders (``OUTPUT_FOLDERS``) are empty: what a DDP process other than rank 0 writes (its
    ``rmtree`` included) lands there and is deleted, so the ranks leave one set of outputs."""
    import tempfile

    root = Path(root).resolve()
    previous = Path.cwd()
    with tempfile.TemporaryDirectory(prefix="mriqa-rank-") as tmp:
        for entry in root.iterdir():
            if entry.name not in OUTPUT_FOLDERS:
                (Path(tmp) / entry.name).symlink_to(entry)
        os.chdir(tmp)
        try:
            yield Path(tmp)
        finally:
            os.chdir(previous)
