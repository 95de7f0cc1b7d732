"""DVC stages of paper 5 (Bricout et al.): synthetic-motion SFCN pretraining and QC transfer.

* ``synthesize``: scans table (AMP SCZ / HCPEP from params, or the embedded cohort with hidden
  QC degradations), site-wise split synthesis / QC, subject-wise train/val/test split, K random
  pipeline passes per synthesis volume (resumable), prepared QC volumes -> ``data/synthetic/bricout``.
* ``train``: SFCN regression of the motion RMS, then transfer (frozen encoder + MLP) and scratch
  QC classifiers for every seed -> ``models/bricout``, ``metrics/bricout_train.json`` (cost, Table 4).
* ``evaluate``: synthetic test R^2, calibration, QC balanced accuracy / F1 per seed ->
  ``results/bricout``, ``metrics/bricout.json``.
"""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mriqa_lib.config import Settings
from mriqa_lib.data.ampscz import (CLASS_NAMES, load_dataset, qc_class, split_sites, split_subjects,
                                   synthesis_eligible)
from mriqa_lib.io import MriqaInputError, load_nifti, read_json, read_tsv, save_nifti, write_json, write_tsv
from mriqa_lib.stages.common import EMBEDDED, MethodPaths, seed_everything, write_metrics

PATHS = MethodPaths("bricout")
log = logging.getLogger("mriqa.bricout")


def _progress(iterable, total: int, desc: str, enabled: bool):
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, leave=False)


def _quiet_lightning() -> None:
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*number of training batches.*")
    warnings.filterwarnings("ignore", ".*LeafSpec.*")
    warnings.filterwarnings("ignore", ".*exists and is not empty.*")
    warnings.filterwarnings("ignore", ".*treespec.*")
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)


# ----------------------------------------------------------------------------------- synthesize
def _stamp(settings: Settings) -> str:
    """Hash of everything the synthetic data depend on (a change restarts the resumable stage)."""
    bp = settings.bricout
    keys = {"seed": bp.seed, "data": bp.data.model_dump(), "embedded_qc": bp.embedded_qc.model_dump(),
            "motion": bp.motion.model_dump(), "augment": bp.augment.model_dump(),
            "k": bp.pretrain.samples_per_volume}
    if bp.data.ampscz_caps is None:
        keys["cohort"] = settings.cohort.model_dump()
    return hashlib.sha256(json.dumps(keys, sort_keys=True).encode()).hexdigest()[:16]


def scans_table(settings: Settings) -> pd.DataFrame:
    """All scans with ``dataset, subject, session, site, score, comments, path, role, eligible, split``.

    Real data (``bricout.data.ampscz_caps`` set): AMP SCZ sites are split into synthesis / QC
    sites; HCPEP (optional) is synthesis only. Embedded: the cohort's original volumes (score 4,
    no comment); the QC-site subjects get degraded sessions later (:func:`_embedded_qc_rows`).
    """
    bp = settings.bricout
    dp = bp.data
    if dp.ampscz_caps is not None:
        if dp.ampscz_qc is None:
            raise MriqaInputError("params.yaml: bricout.data.ampscz_qc must be set with bricout.data.ampscz_caps")
        amp = load_dataset(dp.ampscz_caps, dp.ampscz_qc, "AMPSCZ", dp.t1_pattern)
        frames = [amp]
        if dp.hcpep_caps is not None:
            if dp.hcpep_qc is None:
                raise MriqaInputError("params.yaml: bricout.data.hcpep_qc must be set with bricout.data.hcpep_caps")
            frames.append(load_dataset(dp.hcpep_caps, dp.hcpep_qc, "HCPEP", dp.t1_pattern))
        table = pd.concat(frames, ignore_index=True)
        _, qc_sites = split_sites(amp.site, dp.qc_sites, dp.n_qc_sites, bp.seed)
    else:
        parts = read_tsv(EMBEDDED / "participants.tsv", required=("participant_id", "site"))
        table = pd.DataFrame({
            "dataset": "embedded", "subject": parts.participant_id, "session": "ses-01", "site": parts.site,
            "score": 4, "comments": "",
            "path": [str(EMBEDDED / s / "anat" / f"{s}_T1w.nii.gz") for s in parts.participant_id]})
        _, qc_sites = split_sites(table.site, dp.qc_sites, dp.n_qc_sites, bp.seed)
    table["role"] = np.where((table.dataset != "HCPEP") & table.site.isin(qc_sites), "qc", "synthesis")
    table["eligible"] = synthesis_eligible(table, dp.motion_regex) & (table.role == "synthesis")
    table["split"] = ""
    # subject-wise splits, separately for synthesis (eligible scans) and QC scans
    key = table.dataset + "/" + table.subject
    syn = table.eligible
    table.loc[syn, "split"] = key[syn].map(split_subjects(key[syn], dp.synth_split, bp.seed))
    qc = table.role == "qc"
    table.loc[qc, "split"] = key[qc].map(split_subjects(key[qc], dp.qc_split, bp.seed + 1))
    return table


def _embedded_qc_rows(table: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    """Degraded sessions of the embedded QC-site subjects with their hidden degradation and score."""
    from mriqa_lib.methods.bricout.data import draw_degradations

    bp = settings.bricout
    base = table[table.role == "qc"].reset_index(drop=True)
    n_ses = bp.embedded_qc.sessions
    rows = draw_degradations(len(base) * n_ses, bp.seed, bp.embedded_qc)
    out = []
    for i, scan in base.iterrows():
        for j in range(n_ses):
            r = rows[i * n_ses + j]
            out.append({**scan.to_dict(), "session": f"ses-{j + 1:02d}", "score": r["score"],
                        "comments": r["comments"], **{f"hidden_{k}": v for k, v in r.items()
                                                      if k not in ("score", "comments")}})
    return pd.DataFrame(out)


def _grid_volume(path: str, grid_mm: float) -> np.ndarray:
    from mriqa_lib.methods.bricout.data import normalise, to_grid

    return normalise(to_grid(load_nifti(path), grid_mm))


def _synth_job(args: tuple) -> list[dict[str, Any]]:
    """All K samples of one volume (skips samples already written)."""
    import torch

    from mriqa_lib.methods.bricout.data import augment

    torch.set_num_threads(1)
    path, stem, seeds, out_dir, grid_mm, mp, ap, crop = args
    image = None
    infos = []
    for k, seed in enumerate(seeds):
        nii, side = out_dir / f"{stem}_s{k:03d}.nii.gz", out_dir / f"{stem}_s{k:03d}.json"
        if nii.exists() and side.exists():
            infos.append(read_json(side))
            continue
        if image is None:
            image = _grid_volume(path, grid_mm)
        data, info = augment(image, grid_mm, seed, mp, ap, crop)
        info = {"file": nii.name, "sample": k, "seed": seed, **info}
        save_nifti(nii, data, np.diag([grid_mm] * 3 + [1.0]))
        write_json(side, info)
        infos.append(info)
    return infos


def _qc_job(args: tuple) -> dict[str, Any]:
    """One prepared QC volume (degraded for the embedded cohort); skipped when written."""
    import torch

    from mriqa_lib.methods.bricout.data import degrade, finalize

    torch.set_num_threads(1)
    path, nii, row, grid_mm, mp, crop = args
    if not nii.exists():
        image = _grid_volume(path, grid_mm)
        if row is not None:
            image = degrade(image, grid_mm, row, mp)
        save_nifti(nii, finalize(image, crop), np.diag([grid_mm] * 3 + [1.0]))
    return {"file": nii.name}


def _run_jobs(func, jobs: list, workers: int, desc: str, progress: bool) -> list:
    if workers <= 1 or len(jobs) <= 1:
        return [func(j) for j in _progress(jobs, len(jobs), desc, progress)]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(_progress(pool.map(func, jobs), len(jobs), desc, progress))


def synthesize(settings: Settings) -> None:
    """Stage ``synthesize@bricout``: writes ``data/synthetic/bricout/{samples,qc}`` + manifests."""
    bp = settings.bricout
    t0 = time.perf_counter()
    out = PATHS.synthetic
    stamp = _stamp(settings)
    stamp_file = out / "stamp.json"
    if out.exists() and (not stamp_file.exists() or read_json(stamp_file).get("stamp") != stamp):
        print(f"bricout synthesize: settings changed, clearing {out}")
        shutil.rmtree(out)
    (out / "samples").mkdir(parents=True, exist_ok=True)
    (out / "qc").mkdir(parents=True, exist_ok=True)
    write_json(stamp_file, {"stamp": stamp})
    table = scans_table(settings)
    real = bp.data.ampscz_caps is not None
    qc_rows = table[table.role == "qc"].copy() if real else _embedded_qc_rows(table, settings)
    write_tsv(out / "scans.tsv", table)

    syn = table[table.eligible].reset_index(drop=True)
    k = bp.pretrain.samples_per_volume
    dp = bp.data
    jobs = []
    for i, scan in syn.iterrows():
        stem = f"{scan.dataset}_{scan.subject}_{scan.session}"
        seeds = [int(np.random.SeedSequence([bp.seed, 11, i, j]).generate_state(1)[0]) for j in range(k)]
        jobs.append((scan.path, stem, seeds, out / "samples", dp.grid_mm, bp.motion, bp.augment, dp.crop))
    print(f"bricout synthesize: {len(syn)} synthesis volumes x {k} samples -> {out / 'samples'}")
    results = _run_jobs(_synth_job, jobs, bp.workers, "synthetic motion", bp.progress)
    manifest = []
    for (_, scan), infos in zip(syn.iterrows(), results):
        for info in infos:
            manifest.append({"file": f"samples/{info['file']}", "dataset": scan.dataset, "subject": scan.subject,
                             "session": scan.session, "site": scan.site, "split": scan.split,
                             "rms": info["rms"], "target_rms": info["target_rms"], "n_poses": info["n_poses"],
                             "flip": info["flip"], "scale": info["scale"], "log_gamma": info["log_gamma"]})
    write_tsv(out / "synthetic.tsv", pd.DataFrame(manifest))

    qc_rows = qc_rows.reset_index(drop=True)
    qc_rows["file"] = [f"qc/{d}_{s}_{v}.nii.gz" for d, s, v in zip(qc_rows.dataset, qc_rows.subject, qc_rows.session)]
    qc_rows["qc_class"] = qc_class(qc_rows.score.to_numpy())
    hidden = [c for c in qc_rows.columns if c.startswith("hidden_")]
    qjobs = []
    for _, r in qc_rows.iterrows():
        row = {c[len("hidden_"):]: r[c] for c in hidden} if hidden else None
        qjobs.append((r.path, out / r.file, row, dp.grid_mm, bp.motion, dp.crop))
    print(f"bricout synthesize: {len(qc_rows)} QC volumes -> {out / 'qc'}")
    _run_jobs(_qc_job, qjobs, bp.workers, "QC volumes", bp.progress)
    write_tsv(out / "qc.tsv", qc_rows)
    print(f"bricout synthesize: done in {time.perf_counter() - t0:.1f} s")


# ----------------------------------------------------------------------------------- train
def load_split(manifest: pd.DataFrame, root: Path, split: str, label: str):
    """Stack the volumes of one split as a (N, 1, X, Y, Z) tensor with their labels."""
    import torch

    sub = manifest[manifest.split == split]
    if len(sub) == 0:
        return torch.zeros((0, 1, 1, 1, 1)), torch.zeros(0), sub
    x = np.stack([load_nifti(root / f).data for f in sub.file])[:, None]
    y = torch.as_tensor(np.array(sub[label].to_numpy()))
    return torch.from_numpy(x), y, sub


def _loader(x, y, batch_size: int, shuffle: bool, settings: Settings, seed: int):
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    gen = torch.Generator().manual_seed(seed)
    return DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=shuffle, generator=gen,
                      num_workers=settings.trainer.num_workers, drop_last=shuffle and len(y) > batch_size)


def _fit_classifier(settings: Settings, cfg: dict, frozen: bool, data: dict, seed: int, ckpt_dir: Path,
                    in_features: int, encoder_state: dict | None = None) -> tuple[Any, dict]:
    """Train one QC classifier; returns (best module, {"val_bal_acc", "epochs"})."""
    from lightning.pytorch.callbacks import EarlyStopping

    from mriqa_lib.methods.bricout.model import QCClassifier, load_state
    from mriqa_lib.training import build_trainer

    bp = settings.bricout
    seed_everything(seed, settings.trainer.threads)
    ytr = data["ytr"]
    weights = None
    if cfg["class_weights"]:
        counts = np.bincount(ytr.numpy(), minlength=3).astype(float)
        weights = (counts.sum() / (3 * np.maximum(counts, 1))).tolist()
    module = QCClassifier(bp.model.channels, bp.model.latent, in_features, cfg["hidden"], cfg["dropout"],
                          cfg["lr"], cfg["weight_decay"], frozen, weights)
    if encoder_state is not None:
        module.net.encoder.load_state_dict(encoder_state)
    if ckpt_dir.exists():
        shutil.rmtree(ckpt_dir)
    extra = [EarlyStopping(monitor="val_loss", mode="min", patience=cfg["patience"])] if cfg["patience"] else []
    trainer = build_trainer(settings.trainer, ckpt_dir, cfg["max_epochs"], monitor="val_bal_acc", mode="max",
                            patience=None, callbacks=extra, enable_progress_bar=False)
    trainer.fit(module, _loader(data["xtr"], ytr, cfg["batch_size"], True, settings, seed),
                _loader(data["xva"], data["yva"], 64, False, settings, seed))
    best = Path(trainer.checkpoint_callback.best_model_path)
    load_state(module, best)
    score = trainer.checkpoint_callback.best_model_score
    return module.eval(), {"val_bal_acc": float(score) if score is not None else float("nan"),
                           "epochs": int(trainer.current_epoch), "checkpoint": str(best)}


def _search(settings: Settings, base: dict, frozen: bool, data: dict, in_features: int, ckpt_root: Path,
            encoder_state: dict | None) -> tuple[dict, list[dict]]:
    """Random search over lr / dropout / hidden / weight decay on validation balanced accuracy."""
    sp = settings.bricout.search
    rng = np.random.default_rng(settings.bricout.seed + 77)
    trials = []
    for t in range(sp.n_trials):
        cfg = dict(base, lr=float(np.exp(rng.uniform(np.log(sp.lr[0]), np.log(sp.lr[1])))),
                   dropout=float(rng.uniform(*sp.dropout)), hidden=int(rng.choice(sp.hidden)),
                   weight_decay=float(rng.uniform(*sp.weight_decay)))
        _, res = _fit_classifier(settings, cfg, frozen, data, settings.bricout.seed, ckpt_root / f"trial{t}",
                                 in_features, encoder_state)
        trials.append({**{k: cfg[k] for k in ("lr", "dropout", "hidden", "weight_decay")}, **res})
    shutil.rmtree(ckpt_root, ignore_errors=True)
    best = max(trials, key=lambda r: r["val_bal_acc"])
    return dict(base, **{k: best[k] for k in ("lr", "dropout", "hidden", "weight_decay")}), trials


def encode(encoder, x, batch_size: int = 16):
    """Latents of the frozen encoder (eval mode), flattened to (N, features)."""
    import torch

    encoder.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            out.append(encoder(x[i:i + batch_size].float()).flatten(1))
    return torch.cat(out) if out else torch.zeros((0, 0))


def train(settings: Settings) -> None:
    """Stage ``train@bricout``: pretrain (motion regression), transfer and scratch QC models."""
    import torch
    from lightning.pytorch.callbacks import EarlyStopping

    from mriqa_lib.methods.bricout.model import MotionRegressor, PreciseBN, load_state
    from mriqa_lib.models.sfcn import SFCNEncoder
    from mriqa_lib.training import CostMonitor, build_trainer

    _quiet_lightning()
    bp = settings.bricout
    root = PATHS.synthetic
    models = PATHS.models
    models.mkdir(parents=True, exist_ok=True)
    seed_everything(bp.seed, settings.trainer.threads)
    manifest = read_tsv(root / "synthetic.tsv", required=("file", "split", "rms"))
    xtr, ytr, _ = load_split(manifest, root, "train", "rms")
    xva, yva, _ = load_split(manifest, root, "val", "rms")
    if len(ytr) == 0 or len(yva) == 0:
        raise MriqaInputError(f"{root / 'synthetic.tsv'}: the synthetic train and val splits must not be empty")
    print(f"bricout train: pretraining SFCN on {len(ytr)} synthetic volumes (val {len(yva)}) -> {models / 'pretrain'}")
    pt = bp.pretrain
    module = MotionRegressor(bp.model.channels, bp.model.latent, bp.model.n_bins, bp.model.bin_range,
                             bp.model.sigma, bp.model.dropout, pt.lr, pt.weight_decay, pt.plateau_factor,
                             pt.plateau_patience)
    if (models / "pretrain").exists():
        shutil.rmtree(models / "pretrain")
    cost: dict[str, Any] = {}
    with CostMonitor() as mon:
        trainer = build_trainer(settings.trainer, models / "pretrain", pt.max_epochs, monitor="val_r2", mode="max",
                                patience=None, callbacks=[EarlyStopping(monitor="val_loss", patience=pt.patience),
                                                          PreciseBN(pt.precise_bn)],
                                enable_progress_bar=bp.progress)
        trainer.fit(module, _loader(xtr, ytr.float(), pt.batch_size, True, settings, bp.seed),
                    _loader(xva, yva.float(), 32, False, settings, bp.seed))
    best = Path(trainer.checkpoint_callback.best_model_path)
    load_state(module, best)
    cost["pretrain"] = {**mon.result, "epochs": int(trainer.current_epoch),
                        "best_val_r2": float(trainer.checkpoint_callback.best_model_score)}
    torch.save(module.net.state_dict(), models / "pretrain" / "sfcn.pt")
    del xtr, ytr, xva, yva

    # ---- QC transfer and scratch
    qc = read_tsv(root / "qc.tsv", required=("file", "split", "qc_class"))
    data_img = {}
    for split, key in (("train", "tr"), ("val", "va"), ("test", "te")):
        x, y, _ = load_split(qc, root, split, "qc_class")
        data_img["x" + key], data_img["y" + key] = x, y.long()
    encoder = SFCNEncoder(bp.model.channels, bp.model.latent)
    encoder.load_state_dict(module.net.encoder.state_dict())
    crop = tuple(bp.data.crop)
    in_features = int(np.prod(encoder.latent_shape(crop)))
    counts = {s: np.bincount(data_img["y" + k].numpy(), minlength=3).tolist() for s, k in
              (("train", "tr"), ("val", "va"), ("test", "te"))}
    print(f"bricout train: QC classes (1/2, 3, 4) per split {counts}")
    selected: dict[str, Any] = {}
    for kind in ("transfer", "scratch"):
        cp = getattr(bp, kind)
        cfg = cp.model_dump()
        frozen = kind == "transfer"
        with CostMonitor() as mon:
            if frozen:  # latents of the frozen pretrained encoder are computed once
                data = {"x" + k: encode(encoder, data_img["x" + k]) for k in ("tr", "va", "te")}
                data.update({"y" + k: data_img["y" + k] for k in ("tr", "va", "te")})
                enc_state = None
            else:
                data, enc_state = data_img, None
            trials: list[dict] = []
            if bp.search.enabled:
                print(f"bricout train: {kind}: random search, {bp.search.n_trials} trials")
                cfg, trials = _search(settings, cfg, frozen, data, in_features, models / kind / "search", enc_state)
            runs = []
            for seed in _progress(bp.seeds, len(bp.seeds), f"{kind} seeds", bp.progress):
                mod, res = _fit_classifier(settings, cfg, frozen, data, seed, models / kind / f"seed{seed}",
                                           in_features, enc_state)
                state = mod.net.head.state_dict() if frozen else mod.net.state_dict()
                torch.save(state, models / kind / f"seed{seed}" / "model.pt")
                runs.append({"seed": seed, **res})
        cost[kind] = {**mon.result, "n_seeds": len(bp.seeds),
                      "wall_seconds_per_seed": round(mon.result["wall_seconds"] / len(bp.seeds), 2)}
        best_run = max(runs, key=lambda r: r["val_bal_acc"])
        selected[kind] = {"config": cfg, "runs": runs, "search_trials": trials, "selected_seed": best_run["seed"]}
        print(f"bricout train: {kind}: val balanced accuracy per seed "
              f"{[round(r['val_bal_acc'], 3) for r in runs]}")
    write_json(models / "config.json", {"model": bp.model.model_dump(), "data": bp.data.model_dump(),
                                        "in_features": in_features, "classes": list(CLASS_NAMES), **selected})
    write_json(models / "cost.json", cost)
    flat = {}
    for kind, res in cost.items():
        for k, v in res.items():
            flat[f"{kind}_{k}"] = v
    write_metrics(PATHS.train_metrics, flat)


# ----------------------------------------------------------------------------------- evaluate
def _load_models(settings: Settings):
    import torch

    from mriqa_lib.models.sfcn import SFCN

    bp = settings.bricout
    cfg = read_json(PATHS.models / "config.json")
    net = SFCN(bp.model.channels, bp.model.latent, bp.model.n_bins, bp.model.dropout)
    net.load_state_dict(torch.load(PATHS.models / "pretrain" / "sfcn.pt", map_location="cpu", weights_only=True))
    return net.eval(), cfg


def evaluate(settings: Settings) -> None:
    """Stage ``evaluate@bricout``: synthetic R^2, calibration, QC metrics per seed, tables."""
    import torch

    from mriqa_lib.methods.bricout.data import augment, normalise, to_grid
    from mriqa_lib.methods.bricout.model import bin_centres, expectation
    from mriqa_lib.metrics import balanced_accuracy, f1_per_class, linear_fit_r2, r2_score
    from mriqa_lib.models.sfcn import SFCN, SFCNClassifier, SFCNEncoder, n_parameters

    bp = settings.bricout
    seed_everything(bp.seed, settings.trainer.threads)
    root, res = PATHS.synthetic, PATHS.results
    res.mkdir(parents=True, exist_ok=True)
    net, cfg = _load_models(settings)
    centres = torch.from_numpy(bin_centres(bp.model.bin_range, bp.model.n_bins)).float()
    metrics: dict[str, Any] = {}

    # Fig 3: calibration on the synthetic validation and test sets
    manifest = read_tsv(root / "synthetic.tsv", required=("file", "split", "rms"))
    cal = []
    for split in ("val", "test"):
        x, y, sub = load_split(manifest, root, split, "rms")
        with torch.no_grad():
            pred = torch.cat([expectation(net(x[i:i + 32]), centres) for i in range(0, len(x), 32)]).numpy()
        cal.append(pd.DataFrame({"split": split, "subject": sub.subject.to_numpy(), "rms_true": y.numpy(),
                                 "rms_pred": pred}))
        metrics[f"synth_{split}_r2"] = r2_score(y.numpy(), pred)
        metrics[f"synth_{split}_pearson_r2"] = linear_fit_r2(y.numpy(), pred)
        metrics[f"synth_{split}_mae_mm"] = float(np.mean(np.abs(y.numpy() - pred)))
        metrics[f"n_synth_{split}"] = int(len(y))
    write_tsv(res / "calibration.tsv", pd.concat(cal, ignore_index=True))
    metrics["synth_n_train"] = int((manifest.split == "train").sum())

    # Fig 4 / Table 3: QC test predictions of every seed
    qc = read_tsv(root / "qc.tsv", required=("file", "split", "qc_class"))
    xte, yte, sub = load_split(qc, root, "test", "qc_class")
    in_features = cfg["in_features"]
    encoder = net.encoder
    with torch.no_grad():
        feats = torch.cat([encoder(xte[i:i + 16]).flatten(1) for i in range(0, len(xte), 16)])
        rms_qc = torch.cat([expectation(net(xte[i:i + 16]), centres) for i in range(0, len(xte), 16)]).numpy()
    preds, rows = [], []
    for kind in ("transfer", "scratch"):
        kc = cfg[kind]["config"]
        for run in cfg[kind]["runs"]:
            seed = run["seed"]
            model = SFCNClassifier(SFCNEncoder(bp.model.channels, bp.model.latent), in_features, kc["hidden"], 3,
                                   kc["dropout"])
            state = torch.load(PATHS.models / kind / f"seed{seed}" / "model.pt", map_location="cpu", weights_only=True)
            with torch.no_grad():
                if kind == "transfer":
                    model.head.load_state_dict(state)
                    logits = model.head.eval()(feats)
                else:
                    model.load_state_dict(state)
                    model.eval()
                    logits = torch.cat([model(xte[i:i + 16]) for i in range(0, len(xte), 16)])
            pred = logits.argmax(1).numpy()
            y = yte.numpy()
            f1 = f1_per_class(y, pred, [0, 1, 2])
            rows.append({"model": kind, "seed": seed, "bal_acc": balanced_accuracy(y, pred),
                         "accuracy": float(np.mean(pred == y)), "val_bal_acc": run["val_bal_acc"],
                         "epochs": run["epochs"], **{f"f1_{CLASS_NAMES[c]}": f1[c] for c in range(3)},
                         **{f"n_pred_{CLASS_NAMES[c]}": int((pred == c).sum()) for c in range(3)}})
            preds.append(pd.DataFrame({"model": kind, "seed": seed, "subject": sub.subject.to_numpy(),
                                       "session": sub.session.to_numpy(), "qc_class": y, "pred": pred}))
    per_seed = pd.DataFrame(rows)
    write_tsv(res / "qc_per_seed.tsv", per_seed)
    write_tsv(res / "qc_predictions.tsv", pd.concat(preds, ignore_index=True))
    qc_rms = pd.DataFrame({"subject": sub.subject.to_numpy(), "session": sub.session.to_numpy(),
                           "score": sub.score.to_numpy(), "qc_class": yte.numpy(), "rms_pred": rms_qc})
    for c in [c for c in sub.columns if c.startswith("hidden_")]:
        qc_rms[c] = sub[c].to_numpy()
    write_tsv(res / "qc_rms.tsv", qc_rms)
    for kind in ("transfer", "scratch"):
        ks = per_seed[per_seed.model == kind]
        for _, r in ks.iterrows():
            metrics[f"{kind}_bal_acc_seed{int(r.seed)}"] = float(r.bal_acc)
        metrics[f"{kind}_bal_acc_median"] = float(ks.bal_acc.median())
        for c in CLASS_NAMES:
            metrics[f"{kind}_f1_{c.replace('/', '_')}_median"] = float(ks[f"f1_{c}"].median())
    metrics["n_qc_test"] = int(len(yte))
    metrics["qc_test_spearman_rms_vs_class"] = float(pd.Series(rms_qc).corr(pd.Series(yte.numpy()), method="spearman"))

    # Table 2: split counts
    counts = []
    for split in ("train", "val", "test"):
        s = qc[qc.split == split]
        counts.append({"split": split, **{CLASS_NAMES[c]: int((s.qc_class == c).sum()) for c in range(3)},
                       "subjects": int(s.subject.nunique()), "sites": ",".join(sorted(s.site.unique()))})
    write_tsv(res / "qc_split_counts.tsv", pd.DataFrame(counts))
    syn_counts = manifest.groupby("split").agg(volumes=("file", "size"), subjects=("subject", "nunique")).reset_index()
    write_tsv(res / "synthetic_split_counts.tsv", syn_counts)

    # Table 1: parameter counts, paper width and the configured width
    latent_paper = SFCNEncoder().latent_shape((160, 192, 160))
    paper = SFCN()
    emb = SFCN(bp.model.channels, bp.model.latent, bp.model.n_bins)
    from mriqa_lib.models.sfcn import QCHead
    t1 = [{"setting": "paper width (input 160x192x160)", "encoder": n_parameters(paper.encoder),
           "classifier": n_parameters(paper.head), "transfer_qc": n_parameters(QCHead(int(np.prod(latent_paper)), 10)),
           "latent": "x".join(map(str, latent_paper))},
          {"setting": f"configured ({'x'.join(map(str, bp.data.crop))} at {bp.data.grid_mm:g} mm)",
           "encoder": n_parameters(emb.encoder), "classifier": n_parameters(emb.head),
           "transfer_qc": n_parameters(QCHead(in_features, cfg["transfer"]["config"]["hidden"])),
           "latent": "x".join(map(str, emb.encoder.latent_shape(bp.data.crop)))}]
    write_tsv(res / "parameters.tsv", pd.DataFrame(t1))

    # Fig 2: the pipeline step by step on one test volume (centre slices)
    scans = read_tsv(root / "scans.tsv", required=("path", "split", "eligible"))
    test_scans = scans[scans.eligible & (scans.split == "test")]
    ex = (test_scans if len(test_scans) else scans[scans.eligible]).iloc[0]
    image = normalise(to_grid(load_nifti(ex.path), bp.data.grid_mm))
    mp = bp.motion.model_copy(update={"clean_fraction": 0.0})
    slices, labels = {}, {}
    for i, seed in enumerate((3, 4, 5)):
        _, info = augment(image, bp.data.grid_mm, seed, mp, bp.augment, bp.data.crop, return_steps=True)
        for name, vol in info["steps"].items():  # insertion order = pipeline order
            slices[f"ex{i}_{name}"] = np.asarray(vol)[:, :, vol.shape[2] // 2]
        labels[f"ex{i}"] = {k: v for k, v in info.items() if k != "steps"}
    np.savez_compressed(res / "pipeline_examples.npz", **slices)
    write_json(res / "pipeline_examples.json", {"subject": ex.subject, "examples": labels})

    # Table 4: training cost
    cost = read_json(PATHS.models / "cost.json")
    write_json(res / "cost.json", cost)
    metrics.update({f"cost_{k}_wall_seconds": v["wall_seconds"] for k, v in cost.items()})
    write_json(res / "summary.json", metrics)
    write_metrics(PATHS.metrics, metrics)
