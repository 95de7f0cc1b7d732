"""`mriqa score` framework: input discovery, error rows, resume, report (rendering: test_report.py).

The methods' own scorers are exercised by the pipeline; here a transparent stand-in scorer (the
robust noise estimate of the image, whose truth is known) checks the framework itself.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from mriqa_lib.cli import main
from mriqa_lib.io import read_tsv, save_nifti
from mriqa_lib.scoring import InputItem, ScoreRun, discover_inputs, score_inputs


class NoiseScorer:
    """Median absolute deviation of the first difference along x / 0.6745 / sqrt(2): sigma of white noise."""

    calls = 0

    def score(self, volume, reference=None, maps_dir=None):  # the registry.Scorer interface
        NoiseScorer.calls += 1
        d = np.diff(volume.data, axis=0)
        return {"bricout_motion_rms": float(np.median(np.abs(d - np.median(d))) / 0.6745 / np.sqrt(2))}


def _phantom(sigma: float, seed: int = 0) -> np.ndarray:
    x, y, z = np.meshgrid(*[np.linspace(-1, 1, 24)] * 3, indexing="ij")
    ball = (x**2 + y**2 + z**2 < 0.6).astype(np.float32) * 100
    return ball + np.random.default_rng(seed).normal(0, sigma, ball.shape).astype(np.float32)


@pytest.fixture()
def inputs(tmp_path):
    d = tmp_path / "in"
    save_nifti(d / "clean.nii.gz", _phantom(1.0), np.eye(4))
    save_nifti(d / "noisy.nii.gz", _phantom(8.0, 1), np.eye(4))
    trunc = d / "truncated.nii.gz"
    save_nifti(trunc, _phantom(1.0), np.eye(4))
    trunc.write_bytes(trunc.read_bytes()[:300])
    (d / "corrupt.nii.gz").write_bytes(gzip.compress(b"garbage" * 50))
    nib.save(nib.Nifti1Image(np.ones((8, 8), np.float32), np.eye(4)), str(d / "flat2d.nii"))
    nib.save(nib.Nifti1Image(np.full((6, 6, 6), np.nan, np.float32), np.eye(4)), str(d / "nan.nii"))
    nib.save(nib.Nifti1Image(np.zeros((6, 0, 6), np.float32), np.eye(4)), str(d / "empty.nii"))
    (d / "notes.txt").write_text("not an image")
    return d


def test_discover_bids_takes_only_t1w(tmp_path):
    bids = tmp_path / "bids"
    (bids / "dataset_description.json").parent.mkdir(parents=True)
    (bids / "dataset_description.json").write_text("{}")
    for rel in (
        "sub-01/ses-1/anat/sub-01_ses-1_T1w.nii.gz",
        "sub-02/anat/sub-02_T1w.nii.gz",
        "sub-02/anat/sub-02_label-GM_probseg.nii.gz",
        "derivatives/x/sub-01/anat/sub-01_T1w.nii.gz",
    ):
        save_nifti(bids / rel, _phantom(1.0), np.eye(4))
    items = discover_inputs([bids])
    assert [(i.subject, i.session) for i in items] == [("01", "1"), ("02", "")]


def test_bad_files_get_error_rows_others_scored(tmp_path, inputs):
    items = discover_inputs([inputs])
    assert len(items) == 7  # notes.txt ignored
    frame = score_inputs(items, ScoreRun(scorers={"bricout": NoiseScorer()}), tmp_path / "out", progress=False)
    by_name = {Path(p).name: r for p, r in zip(frame.path, frame.to_dict("records"))}
    for bad, why in [
        ("truncated.nii.gz", "cannot read"),
        ("corrupt.nii.gz", "cannot read"),
        ("flat2d.nii", "2-D"),
        ("nan.nii", "NaN"),
        ("empty.nii", "empty"),
    ]:
        assert why in by_name[bad]["error"] and bad in by_name[bad]["error"]
    assert by_name["clean.nii.gz"]["error"] == ""
    # the stand-in estimates the noise it was given
    assert abs(by_name["clean.nii.gz"]["bricout_motion_rms"] - 1.0) < 0.15
    assert abs(by_name["noisy.nii.gz"]["bricout_motion_rms"] - 8.0) < 1.0
    on_disk = read_tsv(tmp_path / "out" / "scores.tsv")
    assert len(on_disk) == 7 and "runtime_s" in on_disk and "bricout_seconds" in on_disk


def test_rerun_skips_scored_unless_force(tmp_path, inputs):
    items = [InputItem(inputs / "clean.nii.gz"), InputItem(inputs / "noisy.nii.gz")]
    run = ScoreRun(scorers={"bricout": NoiseScorer()})
    score_inputs(items, run, tmp_path / "out", progress=False)
    before = NoiseScorer.calls
    score_inputs(items + [InputItem(inputs / "nan.nii")], run, tmp_path / "out", progress=False)
    assert NoiseScorer.calls == before  # only the new (bad) file was opened
    score_inputs(items, run, tmp_path / "out", force=True, progress=False)
    assert NoiseScorer.calls == before + 2


def test_cli_exit_status_and_report(tmp_path, inputs, monkeypatch):
    from mriqa_lib import scoring

    monkeypatch.setattr(
        scoring,
        "load_scorers",
        lambda methods, ckpt, settings: ScoreRun(
            scorers={"bricout": NoiseScorer()}, unavailable={"zuo": "no trained model"}
        ),
    )
    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "out"
    opts = ["--out", str(out), "--methods", "bricout", "--params", str(root / "params.yaml"), "--quiet", "--no-prepare"]
    status = main(["score", str(inputs / "clean.nii.gz"), str(inputs / "noisy.nii.gz"), *opts])
    assert status == 0
    assert main(["score", str(inputs), *opts]) == 1
    page = (out / "report.html").read_text()
    assert page.count("<tr") == 1 + 7 and "zuo not scored" in page
    # worst first: the noisy volume's mosaic comes before the clean one's
    assert page.index("noisy.nii.gz</p>") < page.index("clean.nii.gz</p>")
