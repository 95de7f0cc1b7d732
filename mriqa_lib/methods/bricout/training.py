"""Paper 5 training: SFCN motion regression on synthetic data, then QC classifiers per seed.

* :func:`pretrain`: the SFCN regresses the synthetic motion RMS (soft labels, KL loss; paper Sec. 2.3).
* :func:`fit_classifier`: one 3-class QC classifier, transfer (frozen pretrained encoder + MLP head
  on its latents) or scratch (the same network trained end to end).
* :func:`search`: the paper's hyper-parameter search (random, on validation balanced accuracy).
* :func:`train_qc`: search (optional), then one classifier per seed (paper Fig. 4: five seeds).

Every fit seeds Python, NumPy and torch first, so a seed gives the same model on the CPU.
"""

from __future__ import annotations

import logging
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mriqa_lib.config import Settings, trainer_for
from mriqa_lib.io import MriqaInputError, load_nifti
from mriqa_lib.methods.bricout.synthesis import progress

SPLIT_KEYS = (("train", "tr"), ("val", "va"), ("test", "te"))
SEARCHED = ("lr", "dropout", "hidden", "weight_decay")


def quiet_lightning() -> None:
    """Silence Lightning's warnings about tiny data sets and its info logs."""
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*number of training batches.*")
    warnings.filterwarnings("ignore", ".*LeafSpec.*")
    warnings.filterwarnings("ignore", ".*exists and is not empty.*")
    warnings.filterwarnings("ignore", ".*treespec.*")
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)


def load_split(manifest: pd.DataFrame, root: Path, split: str, label: str):
    """Stack the volumes of one split as a ``(N, 1, X, Y, Z)`` tensor with their labels.

    Args:
        manifest: synthetic.tsv or qc.tsv (``file`` relative to ``root``, ``split``, ``label``).
        root: the synthetic-data folder.
        split: "train", "val" or "test".
        label: column holding the target.

    Returns:
        (images, labels, the manifest rows of the split); empty tensors when the split is empty.
    """
    import torch

    sub = manifest[manifest.split == split]
    if len(sub) == 0:
        return torch.zeros((0, 1, 1, 1, 1)), torch.zeros(0), sub
    x = np.stack([load_nifti(root / f).data for f in sub.file])[:, None]
    y = torch.as_tensor(np.array(sub[label].to_numpy()))
    return torch.from_numpy(x), y, sub


def loader(x, y, batch_size: int, shuffle: bool, workers: int, seed: int):
    """A DataLoader over ``(x, y)``; shuffled by a generator seeded with ``seed``; drops a last
    incomplete training batch (BatchNorm cannot train on one volume)."""
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    gen = torch.Generator().manual_seed(seed)
    return DataLoader(
        TensorDataset(x, y),
        batch_size=batch_size,
        shuffle=shuffle,
        generator=gen,
        num_workers=workers,
        drop_last=shuffle and len(y) > batch_size,
    )


def pretrain(settings: Settings, manifest: pd.DataFrame, root: Path, out: Path) -> tuple[Any, dict[str, Any]]:
    """Train the SFCN to regress the motion RMS of the synthetic samples (best val R^2 kept).

    Args:
        settings: ``bricout.model``, ``bricout.pretrain`` and the trainer section are used.
        manifest: synthetic.tsv; its ``train`` and ``val`` samples are used.
        root: the synthetic-data folder.
        out: training folder (cleared first); the best checkpoint goes to ``out/checkpoints``.

    Returns:
        (the :class:`~mriqa_lib.methods.bricout.model.MotionRegressor` at its best epoch, cost entry).
    """
    from lightning.pytorch.callbacks import EarlyStopping

    from mriqa_lib.methods.bricout.model import MotionRegressor, PreciseBN
    from mriqa_lib.training import CostMonitor, build_trainer, load_state

    bp, pt = settings.bricout, settings.bricout.pretrain
    tp = trainer_for(settings, "bricout", "pretrain")
    xtr, ytr, _ = load_split(manifest, root, "train", "rms")
    xva, yva, _ = load_split(manifest, root, "val", "rms")
    if len(ytr) == 0 or len(yva) == 0:
        raise MriqaInputError(f"{root / 'synthetic.tsv'}: the synthetic train and val splits must not be empty")
    print(f"bricout train: pretraining SFCN on {len(ytr)} synthetic volumes (val {len(yva)}) -> {out}")
    module = MotionRegressor(
        bp.model.channels,
        bp.model.latent,
        bp.model.n_bins,
        bp.model.bin_range,
        bp.model.sigma,
        bp.model.dropout,
        pt.lr,
        pt.weight_decay,
        pt.plateau_factor,
        pt.plateau_patience,
    )
    shutil.rmtree(out, ignore_errors=True)
    with CostMonitor() as mon:
        trainer = build_trainer(
            tp,
            out,
            pt.max_epochs,
            monitor="val_r2",
            mode="max",
            patience=None,
            callbacks=[EarlyStopping(monitor="val_loss", patience=pt.patience), PreciseBN(pt.precise_bn)],
            enable_progress_bar=bp.progress,
        )
        trainer.fit(
            module,
            loader(xtr, ytr.float(), pt.batch_size, True, tp.num_workers, bp.seed),
            loader(xva, yva.float(), 32, False, tp.num_workers, bp.seed),
        )
    load_state(module, Path(trainer.checkpoint_callback.best_model_path))
    cost = {
        **mon.result,
        "epochs": int(trainer.current_epoch),
        "best_val_r2": float(trainer.checkpoint_callback.best_model_score),
        "world_size": int(trainer.world_size),
    }
    return module, cost


def qc_data(qc: pd.DataFrame, root: Path) -> dict[str, Any]:
    """QC images and classes of every split: keys ``xtr, ytr, xva, yva, xte, yte``."""
    data = {}
    for split, key in SPLIT_KEYS:
        x, y, _ = load_split(qc, root, split, "qc_class")
        data["x" + key], data["y" + key] = x, y.long()
    return data


def class_counts(data: dict[str, Any]) -> dict[str, list[int]]:
    """Number of QC volumes of each class (1/2, 3, 4) per split."""
    return {s: np.bincount(data["y" + k].numpy(), minlength=3).tolist() for s, k in SPLIT_KEYS}


def encode(encoder, x, batch_size: int = 16):
    """Latents of the frozen encoder (eval mode), flattened to ``(N, features)``."""
    import torch

    encoder.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            out.append(encoder(x[i : i + batch_size].float()).flatten(1))
    return torch.cat(out) if out else torch.zeros((0, 0))


def frozen_encoder(module, settings: Settings) -> tuple[Any, int]:
    """A copy of the pretrained encoder and the size of its flattened latent at the crop size."""
    from mriqa_lib.models.sfcn import SFCNEncoder

    bp = settings.bricout
    encoder = SFCNEncoder(bp.model.channels, bp.model.latent)
    encoder.load_state_dict(module.net.encoder.state_dict())
    return encoder, int(np.prod(encoder.latent_shape(tuple(bp.data.crop))))


def _class_weights(y) -> list[float]:
    """Inverse class frequency weights (balanced: a class's weights sum to N / 3)."""
    counts = np.bincount(y.numpy(), minlength=3).astype(float)
    return (counts.sum() / (3 * np.maximum(counts, 1))).tolist()


def fit_classifier(
    settings: Settings,
    cfg: dict,
    frozen: bool,
    data: dict,
    seed: int,
    ckpt_dir: Path,
    in_features: int,
    encoder_state: dict | None = None,
) -> tuple[Any, dict]:
    """Train one QC classifier and keep its best epoch on validation balanced accuracy.

    Args:
        settings: the trainer section is used.
        cfg: a ``bricout.transfer`` / ``bricout.scratch`` section as a dict (lr, dropout, hidden, ...).
        frozen: transfer (inputs are latents, only the head trains) or scratch (inputs are images).
        data: ``xtr, ytr, xva, yva`` (see :func:`qc_data`; latents from :func:`encode` when frozen).
        seed: seeds Python, NumPy, torch and the shuffling.
        ckpt_dir: training folder (cleared first).
        in_features: size of the flattened latent.
        encoder_state: encoder weights to start from (None: fresh initialisation).

    Returns:
        (best module in eval mode, ``{"val_bal_acc", "epochs", "checkpoint"}``).
    """
    from lightning.pytorch.callbacks import EarlyStopping

    from mriqa_lib.methods.bricout.model import QCClassifier
    from mriqa_lib.seeds import seed_everything
    from mriqa_lib.training import build_trainer, load_state

    bp = settings.bricout
    seed_everything(seed, settings.trainer.threads)
    weights = _class_weights(data["ytr"]) if cfg["class_weights"] else None
    module = QCClassifier(
        bp.model.channels,
        bp.model.latent,
        in_features,
        cfg["hidden"],
        cfg["dropout"],
        cfg["lr"],
        cfg["weight_decay"],
        frozen,
        weights,
        cfg["head"],
        cfg["dropout_at"],
    )
    if encoder_state is not None:
        module.net.encoder.load_state_dict(encoder_state)
    shutil.rmtree(ckpt_dir, ignore_errors=True)
    extra = [EarlyStopping(monitor="val_loss", mode="min", patience=cfg["patience"])] if cfg["patience"] else []
    tp = trainer_for(settings, "bricout", "transfer" if frozen else "scratch")
    trainer = build_trainer(
        tp,
        ckpt_dir,
        cfg["max_epochs"],
        monitor="val_bal_acc",
        mode="max",
        patience=None,
        callbacks=extra,
        enable_progress_bar=False,
    )
    trainer.fit(
        module,
        loader(data["xtr"], data["ytr"], cfg["batch_size"], True, tp.num_workers, seed),
        loader(data["xva"], data["yva"], 64, False, tp.num_workers, seed),
    )
    best = Path(trainer.checkpoint_callback.best_model_path)
    load_state(module, best)
    score = trainer.checkpoint_callback.best_model_score
    return module.eval(), {
        "val_bal_acc": float(score) if score is not None else float("nan"),
        "epochs": int(trainer.current_epoch),
        "checkpoint": str(best),
        "world_size": int(trainer.world_size),
    }


def search(
    settings: Settings,
    base: dict,
    frozen: bool,
    data: dict,
    in_features: int,
    ckpt_root: Path,
    encoder_state: dict | None,
) -> tuple[dict, list[dict]]:
    """Random search over lr (log-uniform), dropout, hidden units and weight decay (``bricout.search``).

    Every trial trains with the run seed; the trial with the highest validation balanced accuracy
    wins (the first one on ties). Trial folders under ``ckpt_root`` are removed afterwards.

    Returns:
        (``base`` with the winning values, one dict per trial: its values and :func:`fit_classifier`'s result).
    """
    sp = settings.bricout.search
    rng = np.random.default_rng(settings.bricout.seed + 77)
    trials = []
    for t in range(sp.n_trials):
        cfg = dict(
            base,
            lr=float(np.exp(rng.uniform(np.log(sp.lr[0]), np.log(sp.lr[1])))),
            dropout=float(rng.uniform(*sp.dropout)),
            hidden=int(rng.choice(sp.hidden)),
            weight_decay=float(rng.uniform(*sp.weight_decay)),
        )
        _, res = fit_classifier(
            settings, cfg, frozen, data, settings.bricout.seed, ckpt_root / f"trial{t}", in_features, encoder_state
        )
        trials.append({**{k: cfg[k] for k in SEARCHED}, **res})
    shutil.rmtree(ckpt_root, ignore_errors=True)
    best = max(trials, key=lambda r: r["val_bal_acc"])
    return dict(base, **{k: best[k] for k in SEARCHED}), trials


def train_qc(
    settings: Settings, kind: str, data_img: dict, encoder, in_features: int, out: Path
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Transfer or scratch QC classifiers, one per seed of ``bricout.seeds`` (paper Fig. 4).

    Transfer trains the head on the frozen encoder's latents (computed once); scratch trains the
    whole network from a fresh initialisation. Each seed's weights go to ``out/seed<s>/model.pt``
    (the head only for transfer).

    Returns:
        (``{"config", "runs", "search_trials", "selected_seed"}``, cost entry).
    """
    import torch

    from mriqa_lib.training import CostMonitor

    bp = settings.bricout
    cfg, frozen = getattr(bp, kind).model_dump(), kind == "transfer"
    with CostMonitor() as mon:
        data = data_img
        if frozen:  # latents of the frozen pretrained encoder are computed once
            data = {"x" + k: encode(encoder, data_img["x" + k]) for _, k in SPLIT_KEYS}
            data.update({"y" + k: data_img["y" + k] for _, k in SPLIT_KEYS})
        trials: list[dict] = []
        if bp.search.enabled:
            print(f"bricout train: {kind}: random search, {bp.search.n_trials} trials")
            cfg, trials = search(settings, cfg, frozen, data, in_features, out / "search", None)
        runs = []
        for seed in progress(bp.seeds, len(bp.seeds), f"{kind} seeds", bp.progress):
            mod, res = fit_classifier(settings, cfg, frozen, data, seed, out / f"seed{seed}", in_features, None)
            torch.save(mod.net.head.state_dict() if frozen else mod.net.state_dict(), out / f"seed{seed}" / "model.pt")
            runs.append({"seed": seed, **res})
    cost = {
        **mon.result,
        "n_seeds": len(bp.seeds),
        "wall_seconds_per_seed": round(mon.result["wall_seconds"] / len(bp.seeds), 2),
        "world_size": runs[0]["world_size"],
    }
    best_run = max(runs, key=lambda r: r["val_bal_acc"])
    print(f"bricout train: {kind}: val balanced accuracy per seed {[round(r['val_bal_acc'], 3) for r in runs]}")
    return {"config": cfg, "runs": runs, "search_trials": trials, "selected_seed": best_run["seed"]}, cost
