"""DVC stages of paper 4 (SSFD, Adamson et al.): synthesize, train, evaluate.

* synthesize: fastMRI files (``ssfd.fastmri_dir``) or the embedded cohort written as fastMRI files
  -> ``data/synthetic/ssfd/{train,val,test}.npz`` (ground truth + 4x equispaced zero-filled RSS)
  and ``manifest.tsv``.
* train: the supervised reconstruction U-Net and the inpainting U-Net -> ``models/ssfd/``
  (``recon.pt``, ``inpaint.pt`` state dicts + JSON configs), ``metrics/ssfd_train.json``.
* evaluate: perturbation sweeps, encoder-layer comparison, reconstruction scatter ->
  ``results/ssfd/``, ``metrics/ssfd.json``.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from mriqa_lib.config import Settings
from mriqa_lib.io import MriqaInputError, read_tsv, write_json, write_tsv
from mriqa_lib.stages.common import EMBEDDED, MethodPaths, seed_everything, write_metrics

PATHS = MethodPaths("ssfd")


def _source_files(settings: Settings) -> dict[str, list[tuple[Path, str]]]:
    """{split: [(fastMRI file, subject id)]}; writes the embedded files first when no real data."""
    from mriqa_lib.methods.ssfd.data import SPLITS, embedded_slices, write_embedded_file

    p = settings.ssfd
    out: dict[str, list[tuple[Path, str]]] = {s: [] for s in SPLITS}
    if p.fastmri_dir:
        root = Path(p.fastmri_dir)
        if not root.is_dir():
            raise MriqaInputError(f"{root}: ssfd.fastmri_dir is not a folder")
        if all((root / s).is_dir() for s in SPLITS):
            for s in SPLITS:
                out[s] = [(f, f.stem) for f in sorted((root / s).glob("*.h5"))]
        else:
            files = sorted(root.glob("*.h5"))
            order = np.random.default_rng(p.seed).permutation(len(files))
            n_tr, n_va = int(0.7 * len(files)), int(0.15 * len(files))
            for rank, i in enumerate(order):
                s = "train" if rank < n_tr else "val" if rank < n_tr + n_va else "test"
                out[s].append((files[i], files[i].stem))
        if not all(out.values()):
            raise MriqaInputError(f"{root}: need .h5 files for train, val and test (found "
                                  f"{ {k: len(v) for k, v in out.items()} })")
        return out
    table = read_tsv(EMBEDDED / "participants.tsv", required=("participant_id", "split"))
    h5_dir = PATHS.synthetic / "fastmri"
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        def tqdm(x, **_):  # type: ignore[no-redef]
            return x
    for k, row in enumerate(tqdm(list(table.itertuples()), desc="embedded -> fastMRI h5")):
        sub = row.participant_id
        t1 = EMBEDDED / sub / "anat" / f"{sub}_T1w.nii.gz"
        slices = embedded_slices(t1, p.slices_per_subject, p.slice_step)
        path = write_embedded_file(h5_dir / row.split / f"{sub}.h5", slices, p.n_coils, p.seed * 100000 + k, sub)
        out[row.split].append((path, sub))
    return out


def synthesize(settings: Settings) -> None:
    from mriqa_lib.io import atomic_path
    from mriqa_lib.methods.ssfd.data import SPLITS, slices_from_file

    import pandas as pd

    t0, c0 = time.perf_counter(), time.process_time()
    p = settings.ssfd
    seed_everything(p.seed, settings.trainer.threads)
    files = _source_files(settings)
    rows = []
    for split in SPLITS:
        parts = []
        for j, (path, sub) in enumerate(files[split]):
            d = slices_from_file(path, p, seed=p.seed * 7919 + j)
            parts.append(d)
            rows += [{"split": split, "subject": sub, "file": str(path), "slice": int(s), "scale": float(c)}
                     for s, c in zip(d["slice"], d["scale"])]
        target = np.concatenate([d["target"] for d in parts]).astype(np.float32)
        zf = np.concatenate([d["zero_filled"] for d in parts]).astype(np.float32)
        subj = np.concatenate([[i] * len(d["target"]) for i, d in enumerate(parts)]).astype(np.int32)
        out = PATHS.synthetic / f"{split}.npz"
        with atomic_path(out) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, target=target, zero_filled=zf, subject=subj, mask=parts[0]["mask"])
        print(f"{split}: {len(target)} slices {target.shape[1:]} -> {out}")
    write_tsv(PATHS.synthetic / "manifest.tsv", pd.DataFrame(rows))
    write_json(PATHS.synthetic / "summary.json", {
        "source": p.fastmri_dir or "embedded cohort (simulated multi-coil fastMRI files)",
        "n_slices": {s: int(sum(r["split"] == s for r in rows)) for s in SPLITS},
        "acceleration": p.acceleration, "center_fraction": p.center_fraction, "mask_type": p.mask_type,
        "target": p.target, "n_coils": p.n_coils if not p.fastmri_dir else "from files"})
    # timings printed, not stored: identical data must hash identically so DVC skips retraining
    print(f"synthesize done in {time.perf_counter() - t0:.1f} s ({time.process_time() - c0:.1f} s CPU)")


def _fit(module, train_ds, val_ds, settings: Settings, ckpt_dir: Path, epochs: int, batch_size: int, seed: int):
    import torch
    from torch.utils.data import DataLoader

    from mriqa_lib.training import build_trainer

    g = torch.Generator().manual_seed(seed)
    tl = DataLoader(train_ds, batch_size=batch_size, shuffle=True, generator=g,
                    num_workers=settings.trainer.num_workers)
    vl = DataLoader(val_ds, batch_size=batch_size, shuffle=False, num_workers=settings.trainer.num_workers)
    trainer = build_trainer(settings.trainer, ckpt_dir, max_epochs=epochs, monitor="val_loss", mode="min",
                            enable_progress_bar=True)
    trainer.fit(module, tl, vl)
    best = trainer.checkpoint_callback.best_model_path
    if best:
        state = torch.load(best, map_location="cpu", weights_only=True)["state_dict"]
        module.load_state_dict(state)
    return float(trainer.checkpoint_callback.best_model_score or float("nan"))


def train(settings: Settings) -> None:
    import torch

    from mriqa_lib.methods.ssfd.datasets import InpaintDataset, PairDataset
    from mriqa_lib.methods.ssfd.lit import InpaintModule, ReconModule
    from mriqa_lib.methods.ssfd.metric import INPAINT_CONFIG, INPAINT_FILE
    from mriqa_lib.training import CostMonitor

    p = settings.ssfd
    seed_everything(p.seed, settings.trainer.threads)
    tr, va = PATHS.load_split("train"), PATHS.load_split("val")
    out = PATHS.models
    out.mkdir(parents=True, exist_ok=True)
    c0 = time.process_time()
    with CostMonitor() as cost:
        t0 = time.perf_counter()
        print(f"training the reconstruction U-Net ({p.recon_epochs} epochs) -> {out}/recon.pt")
        recon = ReconModule(tuple(p.recon_channels), p.recon_lr)
        recon_val = _fit(recon, PairDataset(tr["zero_filled"], tr["target"]),
                         PairDataset(va["zero_filled"], va["target"]), settings, out / "recon_ckpt",
                         p.recon_epochs, p.recon_batch_size, p.seed)
        t_recon = time.perf_counter() - t0
        seed_everything(p.seed + 1, settings.trainer.threads)
        print(f"training the inpainting U-Net ({p.pretext_epochs} epochs) -> {out}/{INPAINT_FILE}")
        inpaint = InpaintModule(tuple(p.encoder_channels), p.group_norm_groups, p.pretext_lr)
        inpaint_val = _fit(inpaint, InpaintDataset(tr["target"], p.patch_size, p.patch_fraction, p.seed),
                           InpaintDataset(va["target"], p.patch_size, p.patch_fraction, p.seed + 1, fixed=True),
                           settings, out / "inpaint_ckpt", p.pretext_epochs, p.pretext_batch_size, p.seed)
        t_inpaint = time.perf_counter() - t0 - t_recon
    torch.save(recon.net.state_dict(), out / "recon.pt")
    (out / "recon.json").write_text(json.dumps({"channels": list(p.recon_channels)}) + "\n")
    torch.save(inpaint.net.state_dict(), out / INPAINT_FILE)
    (out / INPAINT_CONFIG).write_text(json.dumps({"channels": list(p.encoder_channels),
                                                   "groups": p.group_norm_groups,
                                                   "patch_size": p.patch_size,
                                                   "patch_fraction": p.patch_fraction}) + "\n")
    write_metrics(PATHS.train_metrics, {**cost.result, "cpu_seconds": round(time.process_time() - c0, 2),
                                        "threads": settings.trainer.threads, "recon_seconds": round(t_recon, 2),
                                        "inpaint_seconds": round(t_inpaint, 2),
                                        "recon_best_val_l1": recon_val, "inpaint_best_val_loss": inpaint_val,
                                        "n_train_slices": int(len(tr["target"])),
                                        "n_val_slices": int(len(va["target"]))})


def evaluate(settings: Settings) -> None:
    from mriqa_lib.methods.ssfd.experiments import run_evaluation

    p = settings.ssfd
    seed_everything(p.seed, settings.trainer.threads)
    t0, c0 = time.perf_counter(), time.process_time()
    metrics = run_evaluation(p, PATHS.load_split("test"), PATHS.models, PATHS.results)
    metrics["evaluate_seconds"] = round(time.perf_counter() - t0, 2)
    metrics["evaluate_cpu_seconds"] = round(time.process_time() - c0, 2)
    write_json(PATHS.results / "metrics.json", metrics)  # the notebook reads results/ only
    write_metrics(PATHS.metrics, metrics)
