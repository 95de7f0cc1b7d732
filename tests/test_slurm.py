"""slurm/train.sbatch: its directives and its srun line give Lightning a consistent SLURM run."""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "slurm" / "train.sbatch"


def parse_sbatch(path: Path) -> tuple[dict[str, str], list[str]]:
    """(#SBATCH options, the srun command's words with line continuations joined)."""
    text = path.read_text()
    options = dict(re.findall(r"^#SBATCH --([\w-]+)=(\S+)", text, flags=re.M))
    srun = re.search(r"^srun .*?(?<!\\)$", text.replace("\\\n", " "), flags=re.M)
    assert srun, f"{path}: no srun line"
    return options, shlex.split(srun.group(0))


def slurm_env(options: dict[str, str], procid: int) -> dict[str, str]:
    """The variables SLURM sets in task ``procid`` of this allocation (ranks fill node by node)."""
    nodes, per_node = int(options["nodes"]), int(options["ntasks-per-node"])
    return {
        "SLURM_JOB_NAME": options["job-name"], "SLURM_JOB_ID": "4242", "SLURM_NODELIST": "gpu[01-02]",
        "SLURM_NTASKS": str(nodes * per_node), "SLURM_NTASKS_PER_NODE": str(per_node),
        "SLURM_JOB_NUM_NODES": str(nodes), "SLURM_NNODES": str(nodes),
        "SLURM_CPUS_PER_TASK": options["cpus-per-task"], "SLURM_PROCID": str(procid),
        "SLURM_LOCALID": str(procid % per_node), "SLURM_NODEID": str(procid // per_node),
    }  # fmt: skip


def test_the_script_trains_one_method_with_srun():
    options, words = parse_sbatch(SCRIPT)
    assert words[:5] == ["srun", "mriqa", "stage", "$METHOD", "train"]
    assert options["gpus-per-node"] == options["ntasks-per-node"]  # one task per GPU


@pytest.mark.parametrize("procid", [0, 5])
def test_lightning_reads_the_allocation_and_only_rank_zero_writes(procid, monkeypatch, tmp_path):
    from lightning.fabric.plugins.environments import SLURMEnvironment
    from lightning.fabric.utilities import rank_zero as fabric_rank_zero
    from lightning.pytorch.utilities import rank_zero

    from mriqa_lib.config import load_settings
    from mriqa_lib.training import build_trainer, is_rank_zero

    # the Trainer sets the process-wide rank; restore it, or later tests' loggers stay silent
    monkeypatch.setattr(rank_zero.rank_zero_only, "rank", rank_zero.rank_zero_only.rank)
    monkeypatch.setattr(fabric_rank_zero.rank_zero_only, "rank", fabric_rank_zero.rank_zero_only.rank)
    options, words = parse_sbatch(SCRIPT)
    env = slurm_env(options, procid)
    for k in ("RANK", "LOCAL_RANK", "NODE_RANK", "WORLD_SIZE"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    overrides = [os.path.expandvars(words[i + 1]) for i, w in enumerate(words) if w == "--set"]
    # the script asks for GPUs; this machine builds the same trainer on the CPU
    overrides = [o if not o.startswith("trainer.accelerator=") else "trainer.accelerator=cpu" for o in overrides]
    settings = load_settings(ROOT / "params.yaml", overrides)
    assert (settings.trainer.devices, settings.trainer.num_nodes) == (4, 2)
    assert settings.trainer.num_workers == int(options["cpus-per-task"])
    trainer = build_trainer(settings.trainer, tmp_path, max_epochs=1)
    assert isinstance(trainer.strategy.cluster_environment, SLURMEnvironment)
    per_node = int(options["ntasks-per-node"])
    assert trainer.world_size == int(env["SLURM_NTASKS"])
    assert (trainer.global_rank, trainer.local_rank, trainer.node_rank) == (
        procid,
        procid % per_node,
        procid // per_node,
    )
    assert is_rank_zero() == (procid == 0)


def test_set_overrides_are_validated(tmp_path):
    from mriqa_lib.config import ConfigError, load_settings

    with pytest.raises(ConfigError, match="trainer.devices=4"):
        load_settings(ROOT / "params.yaml", ["devices=4"])
    with pytest.raises(ConfigError, match="num_nodes"):
        load_settings(ROOT / "params.yaml", ["trainer.num_nodes=0"])
    trainer = load_settings(ROOT / "params.yaml", ["trainer.devices=auto", "trainer.num_nodes=3"]).trainer
    assert (trainer.devices, trainer.num_nodes) == ("auto", 3)  # values read as YAML
    assert load_settings(ROOT / "params.yaml").trainer.num_nodes == 1  # the file itself is untouched


def test_a_one_gpu_step_under_srun_takes_the_task_gpu(monkeypatch):
    """Paper 5's QC steps (1 GPU) run inside the same srun as its 4-GPU pretraining: each task trains
    on its own GPU (SLURM_LOCALID), not every task on GPU 0; multi-device steps keep their settings."""
    import torch

    from mriqa_lib.config import TrainerParams
    from mriqa_lib.training import _devices

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setenv("SLURM_LOCALID", "2")
    assert _devices(TrainerParams(accelerator="gpu", devices=1)) == [2]
    assert _devices(TrainerParams(accelerator="gpu", devices=4, num_nodes=2)) == 4
    assert _devices(TrainerParams(accelerator="cpu", devices=1)) == 1
    monkeypatch.setenv("SLURM_LOCALID", "5")  # one GPU per task visible: its own is GPU 0
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert _devices(TrainerParams(accelerator="gpu", devices=1)) == 1
    monkeypatch.delenv("SLURM_LOCALID")
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert _devices(TrainerParams(accelerator="gpu", devices=1)) == 1
