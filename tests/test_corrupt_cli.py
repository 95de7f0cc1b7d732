"""`mriqa corrupt`: writes OUT + sidecar, `--list`, clear errors on bad input."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from mriqa_lib.artifacts import REGISTRY
from mriqa_lib.commands import corrupt
from mriqa_lib.io import load_nifti, save_nifti


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="mriqa")
    sub = parser.add_subparsers(dest="command")
    corrupt.add_parser(sub)
    args = parser.parse_args(["corrupt", *argv])
    return args.func(args)


@pytest.fixture()
def volume(tmp_path):
    g = np.meshgrid(*[np.linspace(-1, 1, n) for n in (30, 36, 32)], indexing="ij")
    x = (np.sqrt(sum(gi**2 for gi in g)) < 0.8).astype(np.float32) * 100
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    path = tmp_path / "sub-01_T1w.nii.gz"
    save_nifti(path, x, affine)
    return path, x, affine


def test_corrupt_writes_output_and_sidecar(volume, tmp_path, capsys):
    path, x, affine = volume
    out = tmp_path / "out" / "motion.nii.gz"
    assert run_cli([str(path), str(out), "--artifact", "motion", "--severity", "1.5", "--seed", "3"]) == 0
    side = tmp_path / "out" / "motion.json"
    assert out.exists() and side.exists()
    vol = load_nifti(out)
    assert vol.data.shape == x.shape and np.allclose(vol.affine, affine)
    meta = json.loads(side.read_text())
    assert meta["artifact"] == "motion" and meta["severity_unit"] == "mm"
    assert abs(meta["severity"] - 1.5) <= 0.02 and meta["realised"]["rms_mm"] == meta["severity"]
    assert meta["realised"]["spacing_mm"] == [2.0, 2.0, 2.0] and len(meta["realised"]["poses"]) >= 2
    # deterministic: same args -> same voxels
    out2 = tmp_path / "motion2.nii"
    assert run_cli([str(path), str(out2), "-a", "motion", "-s", "1.5", "--seed", "3"]) == 0
    assert np.array_equal(load_nifti(out2).data, vol.data)
    assert (tmp_path / "motion2.json").exists()


def test_corrupt_params_and_noise_sidecar(volume, tmp_path):
    path, x, _ = volume
    out = tmp_path / "noisy.nii.gz"
    assert run_cli([str(path), str(out), "-a", "rician_noise", "--param", "snr_db=0"]) == 0
    meta = json.loads((tmp_path / "noisy.json").read_text())
    assert meta["realised"]["snr_db"] == pytest.approx(0.0) and abs(meta["realised"]["snr_db_measured"]) < 0.5


def test_corrupt_2d_slice(tmp_path):
    x = np.zeros((40, 48, 1), np.float32)
    x[10:30, 12:36] = 1.0
    path = tmp_path / "slice.nii.gz"
    save_nifti(path, x, np.diag([1.5, 1.5, 3.0, 1.0]))
    out = tmp_path / "slice_motion.nii.gz"
    assert run_cli([str(path), str(out), "-a", "motion", "-s", "2"]) == 0
    res = load_nifti(out).data
    assert res.shape == (40, 48, 1) and not np.allclose(res, x)  # a real artifact, not TorchIO's 2-D no-op
    meta = json.loads((tmp_path / "slice_motion.json").read_text())
    assert meta["input_shape"] == [40, 48, 1] and meta["processed_shape"] == [40, 48]
    assert meta["realised"]["spacing_mm"] == [1.5, 1.5]


def test_corrupt_list(capsys):
    assert run_cli(["--list"]) == 0
    text = capsys.readouterr().out
    for name, spec in REGISTRY.items():
        assert name in text and spec.unit in text


def test_corrupt_bad_input(tmp_path, capsys):
    bad = tmp_path / "broken.nii.gz"
    bad.write_bytes(b"this is not a nifti file")
    assert run_cli([str(bad), str(tmp_path / "o.nii.gz"), "-a", "blur"]) == 1
    err = capsys.readouterr().err
    assert "broken.nii.gz" in err and "cannot read NIfTI" in err
    assert run_cli([str(tmp_path / "missing.nii.gz"), str(tmp_path / "o.nii.gz"), "-a", "blur"]) == 1
    assert "file not found" in capsys.readouterr().err
    assert not (tmp_path / "o.nii.gz").exists()


def test_corrupt_usage_errors(volume, tmp_path, capsys):
    path, _, _ = volume
    assert run_cli([str(path), str(tmp_path / "o.nii.gz"), "-a", "nope"]) == 2
    assert "unknown artifact" in capsys.readouterr().err
    assert run_cli([str(path), str(tmp_path / "o.nii.gz")]) == 2
    assert run_cli([str(path), str(tmp_path / "o.nii.gz"), "-a", "ghosting", "-s", "5"]) == 2
    assert "valid range" in capsys.readouterr().err
    assert run_cli([str(path), str(tmp_path / "o.png"), "-a", "blur"]) == 2
    assert corrupt.sidecar_path("a/b.nii.gz").as_posix() == "a/b.json"
    assert corrupt.sidecar_path("b.nii").as_posix() == "b.json"


def test_corrupt_via_main_cli(volume, tmp_path):
    cli = pytest.importorskip("mriqa_lib.cli")
    path, _, _ = volume
    out = tmp_path / "b.nii.gz"
    try:
        code = cli.main(["corrupt", str(path), str(out), "--artifact", "blur", "--severity", "2"])
    except SystemExit as exc:  # pragma: no cover - lead's CLI not wired yet
        pytest.skip(f"mriqa_lib.cli not ready: {exc}")
    assert code == 0 and out.exists() and (tmp_path / "b.json").exists()
