"""Site calibration (`mriqa calibrate`, `mriqa score --calibration`) with toy methods whose truth is known.

``toyc`` scores a volume by its mean (larger = worse) and has no hook; ``toyhook`` scores
``offset - mean`` (smaller = worse) where its hook sets ``offset`` to the clean scans' mean of means;
``toyfr`` is full-reference (never calibrated). No trained model and no preparation chain are needed.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import BaseModel
from scipy.stats import percentileofscore

from mriqa_lib import calibration as cal
from mriqa_lib.cli import main
from mriqa_lib.config import load_settings
from mriqa_lib.io import MriqaInputError, save_nifti
from mriqa_lib.methods import registry
from mriqa_lib.methods.registry import MethodSpec
from mriqa_lib.scoring import discover_inputs, load_scorers

ROOT = Path(__file__).resolve().parents[1]
HOOK_CALLS: list[int] = []


class ToyParams(BaseModel):
    unused: float = 0.0


class MeanScorer:
    def score(self, volume, reference=None, maps_dir=None):
        return {"toyc_mean": float(np.mean(volume.data))}


class OffsetScorer:
    """``offset - mean``: 0 until a calibration sets the offset."""

    offset = 0.0

    def score(self, volume, reference=None, maps_dir=None):
        return {"toyhook_sim": self.offset - float(np.mean(volume.data))}

    def use_calibration(self, folder: Path) -> None:
        self.offset = float((folder / "offset.txt").read_text())


class RefScorer:
    def score(self, volume, reference=None, maps_dir=None):
        return {} if reference is None else {"toyfr_diff": float(np.mean(volume.data) - np.mean(reference.data))}


def _hook(scorer, volumes, out_dir, settings):
    HOOK_CALLS.append(len(volumes))
    offset = float(np.mean([np.mean(v.data) for v in volumes]))
    (out_dir / "offset.txt").write_text(repr(offset))
    return {"offset": offset}


def _spec(name, scorer, badness, sign=1.0, **kw):
    return MethodSpec(name, "P9", name, ToyParams, lambda d, s: scorer(), badness, sign, **kw)


@pytest.fixture()
def toys(tmp_path):
    """The three toy methods registered, each with a small model folder under tmp/models."""
    specs = [
        _spec("toyc", MeanScorer, "toyc_mean"),
        _spec("toyhook", OffsetScorer, "toyhook_sim", -1.0, calibrate=_hook),
        _spec("toyfr", RefScorer, "toyfr_diff", full_reference=True),
    ]
    for spec in specs:
        registry.register(spec)
        (tmp_path / "models" / spec.name).mkdir(parents=True)
        (tmp_path / "models" / spec.name / "weights.bin").write_bytes(spec.name.encode() * 50)
    HOOK_CALLS.clear()
    yield tmp_path / "models"
    for spec in specs:
        registry.unregister(spec.name)


def _scans(folder: Path, levels: list[float], seed: int = 0) -> list[Path]:
    """Noisy constant cubes of the given mean levels."""
    rng = np.random.default_rng(seed)
    paths = []
    for i, level in enumerate(levels):
        data = (level + rng.normal(0, 1, (8, 8, 8))).astype(np.float32)
        paths.append(save_nifti(folder / f"scan{i}.nii.gz", data, np.eye(4)))
    return paths


def _means(paths: list[Path]) -> list[float]:
    from mriqa_lib.io import load_nifti

    return [float(np.mean(load_nifti(p).data)) for p in paths]


def _calibrate(models: Path, scans: list[Path], out: Path, **kw) -> dict:
    settings = load_settings(ROOT / "params.yaml")
    run = load_scorers(["toyc", "toyhook", "toyfr"], models, settings, log=lambda s: None)
    return cal.calibrate(discover_inputs(scans), run, out, settings, models, progress=False, log=lambda s: None, **kw)


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()
    }


def _score(scans, out: Path, models: Path, *extra: str) -> pd.DataFrame:
    opts = ["--checkpoints", str(models), "--params", str(ROOT / "params.yaml"), "--no-prepare", "--quiet"]
    assert main(["score", *map(str, scans), "--out", str(out), *opts, "--methods", "toyc,toyhook", *extra]) == 0
    return pd.read_csv(out / "scores.tsv", sep="\t")


# ------------------------------------------------------------------------------------ (1)
def test_z_and_percentile_match_the_closed_form():
    rng = np.random.default_rng(3)
    clean = rng.normal(5, 2, 7).tolist()
    for value in (*clean[:2], 1.0, 9.5):
        for sign in (1.0, -1.0):
            z = sign * (value - np.mean(clean)) / np.std(clean, ddof=1)
            assert cal.site_z(value, clean, sign) == pytest.approx(z)
            pct = percentileofscore(sign * np.array(clean), sign * value, kind="mean")
            assert cal.site_percentile(value, clean, sign) == pytest.approx(pct)
    # ties count half; identical clean scores use the sd floor instead of dividing by zero
    assert cal.site_percentile(2.0, [1.0, 2.0, 2.0, 3.0], 1.0) == 50.0
    assert cal.site_z(4.1, [4.0, 4.0], 1.0) == pytest.approx(0.1 / (cal.SD_FLOOR * 4.0))


# ------------------------------------------------------------------------------------ (2)
def test_a_calibration_refuses_another_models_files(toys, tmp_path):
    scans = _scans(tmp_path / "clean", [10, 11, 12])
    _calibrate(toys, scans, tmp_path / "cal")
    before = cal.model_fingerprint(toys / "toyc")
    weights = toys / "toyc" / "weights.bin"
    data = bytearray(weights.read_bytes())
    data[7] ^= 1
    weights.write_bytes(bytes(data))
    after = cal.model_fingerprint(toys / "toyc")
    with pytest.raises(MriqaInputError) as err:
        cal.load_calibration(tmp_path / "cal", {"toyc": toys / "toyc", "toyhook": toys / "toyhook"})
    message = str(err.value)
    assert "calibration.json" in message and "toyc" in message and before[:16] in message and after[:16] in message
    assert main(["score", str(scans[0]), "--out", str(tmp_path / "qc"), "--calibration", str(tmp_path / "cal"),
                 "--checkpoints", str(toys), "--params", str(ROOT / "params.yaml"), "--no-prepare", "--quiet",
                 "--methods", "toyc"]) == 1  # fmt: skip


# ------------------------------------------------------------------------------------ (3), (4)
def test_a_sites_calibration_changes_only_that_sites_scores(toys, tmp_path):
    clean_a, clean_b = _scans(tmp_path / "a", [10, 11, 13], 1), _scans(tmp_path / "b", [50, 52, 57, 60], 2)
    scans = _scans(tmp_path / "new", [9, 12, 30, 55], 3)
    models_before = _digest(toys)
    man_a = _calibrate(toys, clean_a, tmp_path / "cal_a")
    a_before = _digest(tmp_path / "cal_a")
    man_b = _calibrate(toys, clean_b, tmp_path / "cal_b")
    assert _digest(toys) == models_before and _digest(tmp_path / "cal_a") == a_before
    assert HOOK_CALLS == [3, 4] and (tmp_path / "cal_a" / "toyhook" / "offset.txt").exists()
    assert man_a["skipped"] == {"toyfr": "full-reference: nothing to calibrate without a reference"}

    raw = _score(scans, tmp_path / "qc_none", toys, "--no-report")
    with_a = _score(scans, tmp_path / "qc_a", toys, "--no-report", "--calibration", str(tmp_path / "cal_a"))
    with_b = _score(scans, tmp_path / "qc_b", toys, "--no-report", "--calibration", str(tmp_path / "cal_b"))
    # the method without a hook: raw scores identical whatever the calibration
    assert list(raw.toyc_mean) == list(with_a.toyc_mean) == list(with_b.toyc_mean)
    assert not any("_site_" in c for c in raw) and set(raw.calibration) == {cal.NO_CALIBRATION}
    means = _means(scans)
    for frame, man, clean in ((with_a, man_a, clean_a), (with_b, man_b, clean_b)):
        offset = float(np.mean(_means(clean)))
        assert man["methods"]["toyhook"]["calibrated"] == {"offset": pytest.approx(offset)}
        assert list(frame.toyhook_sim) == pytest.approx([offset - m for m in means], abs=1e-4)  # hook applied
        ref = np.array(_means(clean))
        assert man["methods"]["toyc"]["clean_badness"] == pytest.approx(ref.tolist())
        z = (np.array(means) - ref.mean()) / ref.std(ddof=1)
        assert list(frame.toyc_site_z) == pytest.approx(z.tolist(), rel=1e-4)
        assert list(frame.toyc_site_pct) == pytest.approx(
            [percentileofscore(ref, m, kind="mean") for m in means], rel=1e-5
        )
        # toyhook's clean values were measured with its own calibration: -(offset - mean) is mean - offset
        assert list(frame.toyhook_site_z) == pytest.approx(z.tolist(), rel=1e-4)
        assert frame.calibration.str.startswith("relative to the site calibration").all()
    assert list(with_a.toyhook_sim) != pytest.approx(list(with_b.toyhook_sim))


# ------------------------------------------------------------------------------------ (5)
def test_failures_are_clear_and_leave_nothing_half_written(toys, tmp_path):
    scans = _scans(tmp_path / "clean", [10, 11, 12])
    with pytest.raises(MriqaInputError, match="at least 2 clean scans"):
        _calibrate(toys, scans[:1], tmp_path / "one")
    bad = tmp_path / "bad" / "broken.nii.gz"
    bad.parent.mkdir()
    bad.write_bytes(b"not a nifti")
    with pytest.raises(MriqaInputError, match="broken.nii.gz"):
        _calibrate(toys, [*scans, bad], tmp_path / "failed")
    assert not (tmp_path / "failed").exists() and not list(tmp_path.glob(".failed*"))

    out = tmp_path / "cal"
    _calibrate(toys, scans, out)
    kept = _digest(out)
    with pytest.raises(MriqaInputError, match="--force"):
        _calibrate(toys, scans[:2], out)
    with pytest.raises(MriqaInputError, match="broken.nii.gz"):
        _calibrate(toys, [*scans, bad], out, force=True)
    assert _digest(out) == kept and [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    assert _calibrate(toys, scans[:2], out, force=True)["n_scans"] == 2

    dirs = {"toyc": toys / "toyc"}
    manifest = json.loads((out / "calibration.json").read_text())
    (out / "calibration.json").write_text(json.dumps({**manifest, "version": 99}))
    with pytest.raises(MriqaInputError, match="version 99"):
        cal.load_calibration(out, dirs)
    (out / "calibration.json").write_text('{"version": 1, "methods": {')
    with pytest.raises(MriqaInputError, match="calibration.json: invalid JSON"):
        cal.load_calibration(out, dirs)
    with pytest.raises(MriqaInputError, match="file not found"):
        cal.load_calibration(tmp_path / "nowhere", dirs)


def test_a_scan_the_preparation_refuses_stops_the_calibration(toys, tmp_path):
    scans = _scans(tmp_path / "clean", [10, 11])  # 8 mm cubes: far too small a field of view for a head
    settings = load_settings(ROOT / "params.yaml")
    with pytest.raises(MriqaInputError, match="scan0.nii.gz: refused by the preparation"):
        _calibrate(toys, scans, tmp_path / "cal", prepare=settings.preparation)
    assert not (tmp_path / "cal").exists()


# ------------------------------------------------------------------------------------ (6)
def test_cli_round_trip_report_and_embedded_calibration(toys, tmp_path, capsys):
    clean, scans = _scans(tmp_path / "clean", [10, 11]), _scans(tmp_path / "new", [10, 40], 5)
    opts = ["--checkpoints", str(toys), "--params", str(ROOT / "params.yaml"), "--no-prepare", "--quiet"]
    site = tmp_path / "site"
    assert main(["calibrate", str(tmp_path / "clean"), "--out", str(site), "--methods", "toyc", *opts]) == 0
    assert "calibrated toyc on 2 scans" in capsys.readouterr().out
    assert main(["calibrate", *map(str, clean), "--out", str(site), *opts]) == 1  # exists: --force needed
    frame = _score(scans, tmp_path / "qc", toys, "--calibration", str(site))
    assert "toyc_site_z" in frame and "toyhook_site_z" not in frame  # toyhook: not in this calibration
    page = (tmp_path / "qc" / "report.html").read_text()
    assert f"relative to the site calibration {site} (2 scans" in page and "toyhook: not in the calibration" in page
    assert "only 2 calibration scans" in page and "(z +" in page and "pct 100)" in page

    # the embedded calibration: the held-out subjects of an embedded cohort, used without --calibration
    data = tmp_path / "embedded"
    rows = ["participant_id\tsplit"]
    for i, (sub, split) in enumerate((("sub-001", "test"), ("sub-002", "train"), ("sub-003", "test"))):
        rows.append(f"{sub}\t{split}")
        save_nifti(
            data / sub / "anat" / f"{sub}_T1w.nii.gz",
            (20.0 + i + np.linspace(-1, 1, 512).reshape(8, 8, 8)).astype(np.float32),
            np.eye(4),
        )
    (data / "participants.tsv").write_text("\n".join(rows) + "\n")
    settings = load_settings(ROOT / "params.yaml")
    manifest = cal.embedded_calibration(settings, toys / "calibration", data, toys, progress=False)
    assert manifest["kind"] == "embedded" and manifest["scans"][0].endswith("sub-001_T1w.nii.gz")
    assert manifest["methods"]["toyc"]["clean_badness"] == pytest.approx([20.0, 22.0]) and HOOK_CALLS == []  # no hooks
    frame = _score(scans, tmp_path / "qc_embedded", toys)
    assert set(frame.calibration) == {"relative to the synthetic embedded cohort (no site calibration)"}
    assert list(frame.toyhook_sim) == pytest.approx([-m for m in _means(scans)], abs=1e-4)  # raw: no hook used
    assert "relative to the synthetic embedded cohort" in (tmp_path / "qc_embedded" / "report.html").read_text()
    # a stale embedded calibration (the model changed since) is not used, and the report says so
    (toys / "toyc" / "weights.bin").write_bytes(b"retrained")
    frame = _score(scans, tmp_path / "qc_stale", toys, "--force")
    assert set(frame.calibration) == {cal.NO_CALIBRATION} and "toyc_site_z" not in frame
    assert "embedded calibration not used" in (tmp_path / "qc_stale" / "report.html").read_text()
