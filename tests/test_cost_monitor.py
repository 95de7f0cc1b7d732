"""The cost monitor measures every visible GPU, and evaluation runs on the configured accelerator.

No GPU here: torch.cuda and NVML are replaced by fakes that report known per-device numbers."""

import sys
import time
import types

import pytest
import torch

from mriqa_lib.config import ConfigError, TrainerParams
from mriqa_lib.training import CostMonitor, inference_device


def _fake_gpus(monkeypatch, allocated_mb, power_mw, used_mb):
    n = len(allocated_mb)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: n)
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda i=None: None)
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda i=None: allocated_mb[i] * 2**20)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=None: "FakeGPU")
    nvml = types.SimpleNamespace(
        nvmlInit=lambda: None,
        nvmlDeviceGetHandleByIndex=lambda i: i,
        nvmlDeviceGetPowerUsage=lambda h: power_mw[h],
        nvmlDeviceGetMemoryInfo=lambda h: types.SimpleNamespace(used=used_mb[h] * 2**20),
    )
    monkeypatch.setitem(sys.modules, "pynvml", nvml)


def test_every_visible_gpu_is_measured(monkeypatch):
    _fake_gpus(monkeypatch, allocated_mb=[100.0, 300.0], power_mw=[50_000, 70_000], used_mb=[900.0, 1200.0])
    with CostMonitor(poll_s=0.01) as mon:
        time.sleep(0.1)
    r = mon.result
    assert r["n_gpus"] == 2 and r["device"] == "FakeGPU"
    assert r["peak_gpu_memory_mb_per_device"] == [100.0, 300.0] and r["peak_gpu_memory_mb"] == 300.0
    assert r["peak_gpu_used_mb_per_device"] == [900.0, 1200.0]
    assert r["mean_power_w"] == pytest.approx(120.0) and r["peak_power_w"] == pytest.approx(120.0)
    assert r["energy_wh"] == pytest.approx(120.0 * r["wall_seconds"] / 3600, abs=1e-3)


def test_without_a_gpu_the_monitor_reports_the_cpu():
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    with CostMonitor() as mon:
        pass
    assert mon.result["device"] == "cpu" and mon.result["power"].startswith("not measured")


def test_inference_device_follows_the_trainer_accelerator(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert inference_device(TrainerParams(accelerator="cpu")).type == "cpu"
    assert inference_device(TrainerParams(accelerator="auto")).type == "cpu"
    with pytest.raises(ConfigError, match="trainer.accelerator is 'gpu'"):
        inference_device(TrainerParams(accelerator="gpu"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert inference_device(TrainerParams(accelerator="gpu")) == torch.device("cuda", 0)
    assert inference_device(TrainerParams(accelerator="cpu")).type == "cpu"
