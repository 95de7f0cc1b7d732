"""DVC stages of paper 5 (Bricout et al.): synthetic-motion SFCN pretraining and QC transfer.

* ``synthesize``: scans table (AMP SCZ / HCPEP from params, or the embedded cohort with hidden
  QC degradations), site-wise split synthesis / QC, subject-wise train/val/test split from
  :mod:`mriqa_lib.data.splits` (the embedded cohort's held-out test subjects only in test), K random
  pipeline passes per synthesis volume (resumable), prepared QC volumes -> ``data/synthetic/bricout``,
  with ``subjects.tsv`` manifests there (all subjects), in ``samples/`` (synthesis) and ``qc/``.
* ``train``: SFCN regression of the motion RMS, then transfer (frozen encoder + MLP) and scratch
  QC classifiers for every seed -> ``models/bricout``, ``metrics/bricout_train.json`` (cost, Table 4).
* ``evaluate``: synthetic test R^2, calibration, QC balanced accuracy / F1 per seed ->
  ``results/bricout``, ``metrics/bricout.json``.

The science is in :mod:`mriqa_lib.methods.bricout` (``synthesis``, ``training``, ``experiments``);
these functions load, call it and write.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from mriqa_lib.config import Settings
from mriqa_lib.data import splits
from mriqa_lib.data.ampscz import CLASS_NAMES
from mriqa_lib.io import read_json, read_tsv, write_json, write_tsv
from mriqa_lib.methods.bricout import experiments, synthesis, training
from mriqa_lib.stages.common import (
    EMBEDDED,
    MethodPaths,
    seed_everything,
    write_metrics,
)

PATHS = MethodPaths("bricout")


# ----------------------------------------------------------------------------------- synthesize
def _restart_if_changed(out: Path, stamp: str) -> None:
    """Clear ``out`` when it was synthesised with other settings (the stage resumes otherwise)."""
    stamp_file = out / "stamp.json"
    if out.exists() and (not stamp_file.exists() or read_json(stamp_file).get("stamp") != stamp):
        print(f"bricout synthesize: settings changed, clearing {out}")
        shutil.rmtree(out)
    (out / "samples").mkdir(parents=True, exist_ok=True)
    (out / "qc").mkdir(parents=True, exist_ok=True)
    write_json(stamp_file, {"stamp": stamp})


def synthesize(settings: Settings) -> None:
    """Stage ``synthesize@bricout``: writes ``data/synthetic/bricout/{samples,qc}`` + manifests."""
    bp = settings.bricout
    t0 = time.perf_counter()
    out = PATHS.synthetic
    _restart_if_changed(out, synthesis.stamp(settings))
    table = synthesis.scans_table(settings, EMBEDDED)
    real = bp.data.ampscz_caps is not None
    qc_rows = table[table.role == "qc"].copy() if real else synthesis.embedded_qc_rows(table, bp)
    write_tsv(out / "scans.tsv", table)
    write_tsv(out / "synthetic.tsv", synthesis.synthesize_samples(table, bp, out))
    write_tsv(out / "qc.tsv", synthesis.prepare_qc_volumes(qc_rows, bp, out))
    for folder, assignment in synthesis.subject_manifests(table).items():
        splits.write_manifest(out / folder, assignment)
    print(f"bricout synthesize: done in {time.perf_counter() - t0:.1f} s")


# ----------------------------------------------------------------------------------- train
def train(settings: Settings) -> None:
    """Stage ``train@bricout``: pretrain (motion regression), transfer and scratch QC models."""
    import torch

    training.quiet_lightning()
    bp = settings.bricout
    root, models = PATHS.synthetic, PATHS.models
    models.mkdir(parents=True, exist_ok=True)
    seed_everything(bp.seed, settings.trainer.threads)
    manifest = read_tsv(root / "synthetic.tsv", required=("file", "split", "rms"))
    module, pretrain_cost = training.pretrain(settings, manifest, root, models / "pretrain")
    cost = {"pretrain": pretrain_cost}
    torch.save(module.net.state_dict(), models / "pretrain" / "sfcn.pt")
    data_img = training.qc_data(read_tsv(root / "qc.tsv", required=("file", "split", "qc_class")), root)
    encoder, in_features = training.frozen_encoder(module, settings)
    print(f"bricout train: QC classes (1/2, 3, 4) per split {training.class_counts(data_img)}")
    selected: dict[str, Any] = {}
    for kind in experiments.KINDS:
        selected[kind], cost[kind] = training.train_qc(settings, kind, data_img, encoder, in_features, models / kind)
    write_json(
        models / "config.json",
        {
            "model": bp.model.model_dump(),
            "data": bp.data.model_dump(),
            "in_features": in_features,
            "classes": list(CLASS_NAMES),
            **selected,
        },
    )
    write_json(models / "cost.json", cost)
    write_metrics(PATHS.train_metrics, experiments.flat_cost(cost))


# ----------------------------------------------------------------------------------- evaluate
def _evaluate_qc(settings: Settings, net, cfg: dict, centres, res: Path) -> tuple[dict[str, Any], Any]:
    """Experiment 2 (Fig. 4, Table 3) and the pretrained RMS of the QC test volumes; returns metrics and qc.tsv."""
    root = PATHS.synthetic
    qc = read_tsv(root / "qc.tsv", required=("file", "split", "qc_class"))
    xte, yte, sub = training.load_split(qc, root, "test", "qc_class")
    feats = training.encode(net.encoder, xte)
    rms_qc = experiments.predict_rms(net, xte, centres, 16)
    per_seed, preds = experiments.qc_transfer_vs_scratch(cfg, PATHS.models, settings.bricout, feats, xte, yte, sub)
    write_tsv(res / "qc_per_seed.tsv", per_seed)
    write_tsv(res / "qc_predictions.tsv", preds)
    qc_rms, rms_metrics = experiments.qc_rms_table(sub, yte.numpy(), rms_qc)
    write_tsv(res / "qc_rms.tsv", qc_rms)
    return {**experiments.qc_metrics(per_seed), **rms_metrics}, qc


def _write_tables(settings: Settings, qc, manifest, cfg: dict, res: Path) -> None:
    """Tables 1 and 2 and the pipeline examples of Fig. 2."""
    bp = settings.bricout
    qc_counts, syn_counts = experiments.split_counts(qc, manifest)
    write_tsv(res / "qc_split_counts.tsv", qc_counts)
    write_tsv(res / "synthetic_split_counts.tsv", syn_counts)
    write_tsv(
        res / "parameters.tsv", experiments.parameter_table(bp, cfg["in_features"], cfg["transfer"]["config"]["hidden"])
    )
    scans = read_tsv(PATHS.synthetic / "scans.tsv", required=("path", "split", "eligible"))
    slices, labels = experiments.pipeline_examples(scans, bp)
    np.savez_compressed(res / "pipeline_examples.npz", **slices)
    write_json(res / "pipeline_examples.json", labels)


def evaluate(settings: Settings) -> None:
    """Stage ``evaluate@bricout``: synthetic R^2, calibration, QC metrics per seed, tables."""
    import torch

    from mriqa_lib.methods.bricout.model import bin_centres

    bp = settings.bricout
    seed_everything(bp.seed, settings.trainer.threads)
    root, res = PATHS.synthetic, PATHS.results
    res.mkdir(parents=True, exist_ok=True)
    net = experiments.load_pretrained(PATHS.models, bp)
    cfg = read_json(PATHS.models / "config.json")
    centres = torch.from_numpy(bin_centres(bp.model.bin_range, bp.model.n_bins)).float()
    manifest = read_tsv(root / "synthetic.tsv", required=("file", "split", "rms"))
    calibration, metrics = experiments.synthetic_calibration(net, manifest, root, centres)
    write_tsv(res / "calibration.tsv", calibration)
    qc_metrics, qc = _evaluate_qc(settings, net, cfg, centres, res)
    metrics.update(qc_metrics)
    _write_tables(settings, qc, manifest, cfg, res)
    cost = read_json(PATHS.models / "cost.json")
    write_json(res / "cost.json", cost)
    metrics.update(experiments.cost_metrics(cost))
    write_json(res / "summary.json", metrics)
    write_metrics(PATHS.metrics, metrics)
