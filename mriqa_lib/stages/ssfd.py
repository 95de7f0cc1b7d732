"""DVC stages of paper 4 (SSFD, Adamson et al.): synthesize, train, evaluate.

* synthesize: fastMRI files (``ssfd.fastmri_dir``) or the embedded cohort written as fastMRI files
  (the cohort's own split: its held-out test subjects test only) -> ``data/synthetic/ssfd/{train,val,test}.npz``
  (ground truth + 4x equispaced zero-filled RSS), ``manifest.tsv`` (slices) and ``subjects.tsv``.
* train: the supervised reconstruction U-Net and the inpainting U-Net -> ``models/ssfd/``
  (``recon.pt``, ``inpaint.pt`` state dicts + JSON configs), ``metrics/ssfd_train.json``.
* evaluate: perturbation sweeps, encoder-layer comparison, reconstruction scatter ->
  ``results/ssfd/``, ``metrics/ssfd.json``.
"""

from __future__ import annotations

import time

import numpy as np

from mriqa_lib.config import Settings, trainer_for
from mriqa_lib.io import write_json, write_tsv
from mriqa_lib.stages.common import EMBEDDED, MethodPaths, seed_everything, write_metrics

PATHS = MethodPaths("ssfd")


def _write_npz(path, arrays: dict[str, np.ndarray]) -> None:
    from mriqa_lib.io import atomic_path

    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)


def synthesize(settings: Settings) -> None:
    """Slice sets of every split -> data/synthetic/ssfd (npz, slice manifest, subjects manifest, summary)."""
    import pandas as pd

    from mriqa_lib.data import splits
    from mriqa_lib.methods.ssfd.data import SPLITS, embedded_source_files, fastmri_source_files, slice_set

    t0, c0 = time.perf_counter(), time.process_time()
    p = settings.ssfd
    seed_everything(p.seed, settings.trainer.threads)
    files = (
        fastmri_source_files(p.fastmri_dir, p.seed)
        if p.fastmri_dir
        else embedded_source_files(EMBEDDED, PATHS.synthetic / "fastmri", p)
    )
    rows = []
    for split in SPLITS:
        arrays, split_rows = slice_set(files[split], p, split)
        rows += split_rows
        _write_npz(PATHS.synthetic / f"{split}.npz", arrays)
        print(f"{split}: {len(arrays['target'])} slices {arrays['target'].shape[1:]} -> {PATHS.synthetic / split}.npz")
    write_tsv(PATHS.synthetic / "manifest.tsv", pd.DataFrame(rows))
    splits.write_manifest(PATHS.synthetic, {sub: split for split in SPLITS for _, sub in files[split]})
    write_json(
        PATHS.synthetic / "summary.json",
        {
            "source": p.fastmri_dir or "embedded cohort (simulated multi-coil fastMRI files)",
            "n_slices": {s: int(sum(r["split"] == s for r in rows)) for s in SPLITS},
            "acceleration": p.acceleration,
            "center_fraction": p.center_fraction,
            "mask_type": p.mask_type,
            "target": p.target,
            "n_coils": p.n_coils if not p.fastmri_dir else "from files",
        },
    )
    # timings printed, not stored: identical data must hash identically so DVC skips retraining
    print(f"synthesize done in {time.perf_counter() - t0:.1f} s ({time.process_time() - c0:.1f} s CPU)")


def _train_recon(settings: Settings, tr: dict, va: dict):
    """The supervised 4x reconstruction U-Net; returns (module, best validation L1)."""
    from mriqa_lib.methods.ssfd.datasets import PairDataset
    from mriqa_lib.methods.ssfd.lit import ReconModule, fit_module

    p = settings.ssfd
    print(f"training the reconstruction U-Net ({p.recon_epochs} epochs) -> {PATHS.models}/recon.pt")
    recon = ReconModule(tuple(p.recon_channels), p.recon_lr)
    val = fit_module(
        recon,
        PairDataset(tr["zero_filled"], tr["target"]),
        PairDataset(va["zero_filled"], va["target"]),
        trainer_for(settings, "ssfd", "recon"),
        PATHS.models / "recon_ckpt",
        p.recon_epochs,
        p.recon_batch_size,
        p.seed,
    )
    return recon, val


def _train_inpaint(settings: Settings, tr: dict, va: dict):
    """The inpainting pretext U-Net (SSFD's encoder); returns (module, best validation loss)."""
    from mriqa_lib.methods.ssfd.datasets import InpaintDataset
    from mriqa_lib.methods.ssfd.lit import InpaintModule, fit_module
    from mriqa_lib.methods.ssfd.metric import INPAINT_FILE

    p = settings.ssfd
    seed_everything(p.seed + 1, settings.trainer.threads)
    print(f"training the inpainting U-Net ({p.pretext_epochs} epochs) -> {PATHS.models}/{INPAINT_FILE}")
    inpaint = InpaintModule(tuple(p.encoder_channels), p.group_norm_groups, p.pretext_lr)
    val = fit_module(
        inpaint,
        InpaintDataset(tr["target"], p.patch_size, p.patch_fraction, p.seed),
        InpaintDataset(va["target"], p.patch_size, p.patch_fraction, p.seed + 1, fixed=True),
        trainer_for(settings, "ssfd", "inpaint"),
        PATHS.models / "inpaint_ckpt",
        p.pretext_epochs,
        p.pretext_batch_size,
        p.seed,
    )
    return inpaint, val


def train(settings: Settings) -> None:
    """Both networks -> models/ssfd (state dicts + JSON configs) and metrics/ssfd_train.json."""
    from mriqa_lib.methods.ssfd.lit import save_models
    from mriqa_lib.training import CostMonitor

    p = settings.ssfd
    seed_everything(p.seed, settings.trainer.threads)
    tr, va = PATHS.load_split("train"), PATHS.load_split("val")
    PATHS.models.mkdir(parents=True, exist_ok=True)
    c0 = time.process_time()
    with CostMonitor() as cost:
        t0 = time.perf_counter()
        recon, recon_val = _train_recon(settings, tr, va)
        t_recon = time.perf_counter() - t0
        inpaint, inpaint_val = _train_inpaint(settings, tr, va)
        t_inpaint = time.perf_counter() - t0 - t_recon
    save_models(recon, inpaint, p, PATHS.models)
    write_metrics(
        PATHS.train_metrics,
        {
            **cost.result,
            "cpu_seconds": round(time.process_time() - c0, 2),
            "threads": settings.trainer.threads,
            "recon_seconds": round(t_recon, 2),
            "inpaint_seconds": round(t_inpaint, 2),
            "recon_best_val_l1": recon_val,
            "inpaint_best_val_loss": inpaint_val,
            "n_train_slices": int(len(tr["target"])),
            "n_val_slices": int(len(va["target"])),
        },
    )


def evaluate(settings: Settings) -> None:
    """The three experiments -> results/ssfd and metrics/ssfd.json."""
    from mriqa_lib.methods.ssfd.experiments import run_evaluation
    from mriqa_lib.training import inference_device

    p = settings.ssfd
    seed_everything(p.seed, settings.trainer.threads)
    t0, c0 = time.perf_counter(), time.process_time()
    device = inference_device(trainer_for(settings, "ssfd", "inpaint"))
    metrics = run_evaluation(p, PATHS.load_split("test"), PATHS.models, PATHS.results, device)
    metrics["evaluate_seconds"] = round(time.perf_counter() - t0, 2)
    metrics["evaluate_cpu_seconds"] = round(time.process_time() - c0, 2)
    write_json(PATHS.results / "metrics.json", metrics)  # the notebook reads results/ only
    write_metrics(PATHS.metrics, metrics)
