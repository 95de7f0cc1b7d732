"""The experiments of paper 5 on the trained models, and the numbers of metrics/bricout.json.

1. Synthetic motion (Fig. 3): R^2, Pearson R^2 and MAE of the predicted RMS on the synthetic
   validation and test sets, and the calibration table (true vs predicted RMS).
2. QC transfer vs scratch (Fig. 4, Table 3): balanced accuracy and F1 per class of every seed's
   classifier on the QC test set, their medians, and the pretrained RMS of the QC test volumes.
3. Split counts (Table 2), parameter counts (Table 1), the pipeline step by step (Fig. 2) and the
   training cost (Table 4).

The hyper-parameter search is :func:`mriqa_lib.methods.bricout.training.search`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mriqa_lib.data.ampscz import CLASS_NAMES
from mriqa_lib.io import load_nifti
from mriqa_lib.methods.bricout.params import BricoutParams
from mriqa_lib.methods.bricout.training import load_split
from mriqa_lib.metrics import balanced_accuracy, f1_per_class, linear_fit_r2, r2_score

KINDS = ("transfer", "scratch")


def load_pretrained(model_dir: Path, bp: BricoutParams):
    """The pretrained SFCN (``model_dir/pretrain/sfcn.pt``) in eval mode."""
    import torch

    from mriqa_lib.models.sfcn import SFCN

    net = SFCN(bp.model.channels, bp.model.latent, bp.model.n_bins, bp.model.dropout)
    net.load_state_dict(torch.load(model_dir / "pretrain" / "sfcn.pt", map_location="cpu", weights_only=True))
    return net.eval()


def predict_rms(net, x, centres, batch_size: int) -> np.ndarray:
    """Predicted motion RMS (mm): the expectation of the bin probabilities, batch by batch."""
    import torch

    from mriqa_lib.methods.bricout.model import expectation

    with torch.no_grad():
        return torch.cat(
            [expectation(net(x[i : i + batch_size]), centres) for i in range(0, len(x), batch_size)]
        ).numpy()


def regression_metrics(true: np.ndarray, pred: np.ndarray, split: str) -> dict[str, Any]:
    """``synth_<split>_r2`` (1 - SSE/SST), ``_pearson_r2`` (of the linear fit), ``_mae_mm`` and ``n_synth_<split>``."""
    return {
        f"synth_{split}_r2": r2_score(true, pred),
        f"synth_{split}_pearson_r2": linear_fit_r2(true, pred),
        f"synth_{split}_mae_mm": float(np.mean(np.abs(true - pred))),
        f"n_synth_{split}": len(true),
    }


def synthetic_calibration(net, manifest: pd.DataFrame, root: Path, centres) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Experiment 1 (Fig. 3): predicted vs true RMS on the synthetic validation and test sets.

    Returns:
        (calibration table: split, subject, rms_true, rms_pred; metrics of :func:`regression_metrics`
        for both splits and ``synth_n_train``).
    """
    cal, metrics = [], {}
    for split in ("val", "test"):
        x, y, sub = load_split(manifest, root, split, "rms")
        pred = predict_rms(net, x, centres, 32)
        cal.append(
            pd.DataFrame({"split": split, "subject": sub.subject.to_numpy(), "rms_true": y.numpy(), "rms_pred": pred})
        )
        metrics.update(regression_metrics(y.numpy(), pred, split))
    metrics["synth_n_train"] = int((manifest.split == "train").sum())
    return pd.concat(cal, ignore_index=True), metrics


def qc_logits(kind: str, state: dict, cfg: dict, in_features: int, bp: BricoutParams, feats, xte):
    """Test logits of one saved QC classifier (transfer: its head on the frozen latents ``feats``;
    scratch: the whole network on the images ``xte``)."""
    import torch

    from mriqa_lib.models.sfcn import SFCNClassifier, SFCNEncoder

    kc = cfg[kind]["config"]
    encoder = SFCNEncoder(bp.model.channels, bp.model.latent)
    head = (kc.get("head", "mlp"), kc.get("dropout_at", "hidden"))  # older runs saved neither
    model = SFCNClassifier(encoder, in_features, kc["hidden"], 3, kc["dropout"], *head)
    with torch.no_grad():
        if kind == "transfer":
            model.head.load_state_dict(state)
            return model.head.eval()(feats)
        model.load_state_dict(state)
        model.eval()
        return torch.cat([model(xte[i : i + 16]) for i in range(0, len(xte), 16)])


def qc_scores(y: np.ndarray, pred: np.ndarray) -> dict[str, Any]:
    """Balanced accuracy, accuracy, F1 and predicted count of each class (1/2, 3, 4)."""
    f1 = f1_per_class(y, pred, [0, 1, 2])
    return {
        "bal_acc": balanced_accuracy(y, pred),
        "accuracy": float(np.mean(pred == y)),
        **{f"f1_{CLASS_NAMES[c]}": f1[c] for c in range(3)},
        **{f"n_pred_{CLASS_NAMES[c]}": int((pred == c).sum()) for c in range(3)},
    }


def qc_transfer_vs_scratch(
    cfg: dict, model_dir: Path, bp: BricoutParams, feats, xte, yte, sub: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Experiment 2 (Fig. 4, Table 3): every seed's transfer and scratch classifier on the QC test set.

    Args:
        cfg: models/bricout/config.json (``in_features`` and, per kind, ``config`` and ``runs``).
        model_dir: where ``<kind>/seed<s>/model.pt`` are.
        feats: latents of the QC test volumes (frozen pretrained encoder); xte, yte: images, classes.
        sub: qc.tsv rows of the test volumes.

    Returns:
        (one row per model and seed with :func:`qc_scores`, val_bal_acc and epochs;
        one row per model, seed and test volume with its prediction).
    """
    import torch

    rows, preds = [], []
    y = yte.numpy()
    for kind in KINDS:
        for run in cfg[kind]["runs"]:
            seed = run["seed"]
            state = torch.load(model_dir / kind / f"seed{seed}" / "model.pt", map_location="cpu", weights_only=True)
            pred = qc_logits(kind, state, cfg, cfg["in_features"], bp, feats, xte).argmax(1).numpy()
            scores = qc_scores(y, pred)
            rows.append(
                {
                    "model": kind,
                    "seed": seed,
                    "bal_acc": scores.pop("bal_acc"),
                    "accuracy": scores.pop("accuracy"),
                    "val_bal_acc": run["val_bal_acc"],
                    "epochs": run["epochs"],
                    **scores,
                }
            )
            preds.append(
                pd.DataFrame(
                    {
                        "model": kind,
                        "seed": seed,
                        "subject": sub.subject.to_numpy(),
                        "session": sub.session.to_numpy(),
                        "qc_class": y,
                        "pred": pred,
                    }
                )
            )
    return pd.DataFrame(rows), pd.concat(preds, ignore_index=True)


def qc_metrics(per_seed: pd.DataFrame) -> dict[str, float]:
    """Per seed balanced accuracy and, per model, the medians over seeds (the transfer claim)."""
    metrics = {}
    for kind in KINDS:
        ks = per_seed[per_seed.model == kind]
        for _, r in ks.iterrows():
            metrics[f"{kind}_bal_acc_seed{int(r.seed)}"] = float(r.bal_acc)
        metrics[f"{kind}_bal_acc_median"] = float(ks.bal_acc.median())
        for c in CLASS_NAMES:
            metrics[f"{kind}_f1_{c.replace('/', '_')}_median"] = float(ks[f"f1_{c}"].median())
    return metrics


def qc_rms_table(sub: pd.DataFrame, y: np.ndarray, rms: np.ndarray) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Pretrained RMS of the QC test volumes beside their class (and hidden degradation, embedded).

    Returns:
        (the table, ``n_qc_test`` and ``qc_test_spearman_rms_vs_class``).
    """
    table = pd.DataFrame(
        {
            "subject": sub.subject.to_numpy(),
            "session": sub.session.to_numpy(),
            "score": sub.score.to_numpy(),
            "qc_class": y,
            "rms_pred": rms,
        }
    )
    for c in [c for c in sub.columns if c.startswith("hidden_")]:
        table[c] = sub[c].to_numpy()
    rho = float(pd.Series(rms).corr(pd.Series(y), method="spearman"))
    return table, {"n_qc_test": len(y), "qc_test_spearman_rms_vs_class": rho}


def split_counts(qc: pd.DataFrame, manifest: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Table 2: QC volumes of each class, subjects and sites per split; synthetic volumes and subjects per split."""
    counts = []
    for split in ("train", "val", "test"):
        s = qc[qc.split == split]
        counts.append(
            {
                "split": split,
                **{CLASS_NAMES[c]: int((s.qc_class == c).sum()) for c in range(3)},
                "subjects": int(s.subject.nunique()),
                "sites": ",".join(sorted(s.site.unique())),
            }
        )
    syn = manifest.groupby("split").agg(volumes=("file", "size"), subjects=("subject", "nunique")).reset_index()
    return pd.DataFrame(counts), syn


def parameter_table(bp: BricoutParams, in_features: int, hidden: int) -> pd.DataFrame:
    """Table 1: parameters of the encoder, bin classifier and transfer head, at the paper's width
    (input 160 x 192 x 160) and at the configured width and crop."""
    from mriqa_lib.models.sfcn import SFCN, QCHead, SFCNEncoder, n_parameters

    latent_paper = SFCNEncoder().latent_shape((160, 192, 160))
    paper = SFCN()
    emb = SFCN(bp.model.channels, bp.model.latent, bp.model.n_bins)
    rows = [
        {
            "setting": "paper width (input 160x192x160)",
            "encoder": n_parameters(paper.encoder),
            "classifier": n_parameters(paper.head),
            "transfer_qc": n_parameters(QCHead(int(np.prod(latent_paper)), 10)),
            "latent": "x".join(map(str, latent_paper)),
        },
        {
            "setting": f"configured ({'x'.join(map(str, bp.data.crop))} at {bp.data.grid_mm:g} mm)",
            "encoder": n_parameters(emb.encoder),
            "classifier": n_parameters(emb.head),
            "transfer_qc": n_parameters(QCHead(in_features, hidden)),
            "latent": "x".join(map(str, emb.encoder.latent_shape(bp.data.crop))),
        },
    ]
    return pd.DataFrame(rows)


def pipeline_examples(
    scans: pd.DataFrame, bp: BricoutParams, example_seeds=(3, 4, 5)
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Fig. 2: the random pipeline step by step on one synthesis test volume (its centre slices).

    Motion is always applied (no clean pass). Returns (``ex<i>_<step>`` -> 2-D slice, in pipeline
    order; ``{"subject", "examples": {ex<i>: realised parameters}}``).
    """
    from mriqa_lib.methods.bricout.data import augment, normalise, to_grid

    test_scans = scans[scans.eligible & (scans.split == "test")]
    ex = (test_scans if len(test_scans) else scans[scans.eligible]).iloc[0]
    image = normalise(to_grid(load_nifti(ex.path), bp.data.grid_mm))
    mp = bp.motion.model_copy(update={"clean_fraction": 0.0})
    slices, labels = {}, {}
    for i, seed in enumerate(example_seeds):
        _, info = augment(image, bp.data.grid_mm, seed, mp, bp.augment, bp.data.crop, return_steps=True)
        for name, vol in info["steps"].items():  # insertion order = pipeline order
            slices[f"ex{i}_{name}"] = np.asarray(vol)[:, :, vol.shape[2] // 2]
        labels[f"ex{i}"] = {k: v for k, v in info.items() if k != "steps"}
    return slices, {"subject": ex.subject, "examples": labels}


def cost_metrics(cost: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Table 4: ``cost_<part>_wall_seconds`` of pretraining, transfer and scratch training."""
    return {f"cost_{k}_wall_seconds": v["wall_seconds"] for k, v in cost.items()}


def flat_cost(cost: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """metrics/bricout_train.json: ``<part>_<key>`` for every entry of models/bricout/cost.json."""
    return {f"{kind}_{k}": v for kind, res in cost.items() for k, v in res.items()}
