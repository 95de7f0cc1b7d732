"""DVC stages of paper 3 (Shaw et al.): heteroscedastic reconstruction uncertainty as image quality.

* ``synthesize``: clean scans (embedded cohort or ADNI artefact-free scans) split 80/10/10 by
  :mod:`mriqa_lib.data.splits` (the cohort's held-out test subjects, or ADNI's pair subjects, are
  test subjects), prepared on the working grid; training/validation inputs with simulated k-space
  artefacts; test scans; test-retest pairs of test subjects (embedded: the clean scan and the same
  subject misaligned, with a random artefact, rigidly re-aligned by SimpleITK; ADNI: the labelled
  pairs) -> ``data/synthetic/shaw``, with ``subjects.tsv`` naming every subject's split.
* ``train``: the residual heteroscedastic U-Net (Eq. 1) and the multi-task U-Net (Eq. 1 + Eq. 2)
  -> ``models/shaw/{recon,multitask}.pt`` and ``metrics/shaw_train.json``.
* ``evaluate``: experiment 1 (41 Rician levels: median sigma vs reconstruction error, R^2 per
  volume), experiment 2 (total uncertainty, artefact vs clean scans of the pairs), experiment 3
  (partial noise: reconstruction vs segmentation sigma) -> ``results/shaw`` (tables and NIfTI
  maps) and ``metrics/shaw.json``.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from mriqa_lib.config import Settings, trainer_for
from mriqa_lib.io import MriqaInputError, read_json, read_tsv, write_json, write_tsv
from mriqa_lib.stages.common import EMBEDDED, MethodPaths, seed_everything, write_metrics

PATHS = MethodPaths("shaw")


def _log(msg: str) -> None:
    print(f"[shaw] {msg}", flush=True)


# ---------------------------------------------------------------------------------------------
# synthesize
# ---------------------------------------------------------------------------------------------
def _staging(out: Path) -> Path:
    """An empty ``.<name>.partial`` folder beside ``out`` (renamed onto it when complete)."""
    staging = out.parent / f".{out.name}.partial"
    if staging.exists():
        shutil.rmtree(staging)
    (staging / "pairs").mkdir(parents=True)
    return staging


def _clean_scans(p, prep) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The clean scans and their subject -> split (held-out subjects forced into test); ADNI's
    native-space scans go through the preparation chain (``prep``)."""
    from mriqa_lib.data import splits
    from mriqa_lib.methods.shaw import synthesis as S

    if p.adni_root is not None:
        scans, held = S.adni_clean_scans(p, prep), S.adni_pair_subjects(p)
    else:
        scans, held = S.embedded_scans(EMBEDDED), splits.held_out(EMBEDDED / "participants.tsv")
    return scans, S.subject_splits(scans, p, held)


def _write_training_sets(p, clean: np.ndarray, gm: np.ndarray, table, staging: Path) -> None:
    """train.npz (+ the multi-task model's regional-noise copies), val.npz, test.npz and their tables."""
    from mriqa_lib.methods.shaw import synthesis as S

    arrays, manifest = S.artefact_set(
        p, clean, gm, table, "train", p.corruptions_per_volume, True, "shaw.train_artefacts"
    )
    if p.multitask_extra_per_volume:
        arrays.update(S.multitask_extra(p, table))
    np.savez(staging / "train.npz", **arrays)
    write_tsv(staging / "train.tsv", manifest)
    arrays, manifest = S.artefact_set(p, clean, gm, table, "val", 1, False, "shaw.val_artefacts")
    np.savez(staging / "val.npz", **arrays)
    write_tsv(staging / "val.tsv", manifest)
    test_idx = np.flatnonzero(table["split"].to_numpy() == "test")
    np.savez(staging / "test.npz", clean=clean[test_idx], gm=gm[test_idx])
    write_tsv(staging / "test.tsv", table.iloc[test_idx])


def _write_grid(staging: Path, grid_mm: float, source: str, table, n_pairs: int, gm_source: str) -> None:
    """grid.json: the working grid and what the sets hold, the grey-matter targets' source (no
    timing: same data, same bytes)."""
    from mriqa_lib.methods.shaw.data import work_grid

    affine, shape = work_grid(grid_mm)
    n_scans = {k: int(v) for k, v in table["split"].value_counts().items()}
    write_json(
        staging / "grid.json",
        {
            "grid_mm": grid_mm,
            "shape": list(shape),
            "affine": affine,
            "source": source,
            "n_scans": n_scans,
            "n_pairs": n_pairs,
            "gm_source": gm_source,
        },
    )


def synthesize(settings: Settings) -> None:
    """Write the training / validation / test sets and the test-retest pairs to data/synthetic/shaw."""
    import pandas as pd

    from mriqa_lib.data import splits
    from mriqa_lib.methods.shaw import synthesis as S

    p = settings.shaw
    start = time.perf_counter()
    seed_everything(p.seed, settings.trainer.threads)
    out, real = PATHS.synthetic, p.adni_root is not None
    staging = _staging(out)
    scans, assignment = _clean_scans(p, settings.preparation)
    _log(f"{len(scans)} clean scans from {'ADNI ' + str(p.adni_root) if real else EMBEDDED}; grid {p.grid_mm} mm")
    clean, gm, table = S.prepare_scans(scans, assignment, p.grid_mm)
    write_tsv(staging / "scans.tsv", table)
    _write_training_sets(p, clean, gm, table, staging)
    if real:
        pair_rows = S.adni_pair_set(p, staging / "pairs", settings.preparation) if p.adni_pairs_table else []
    else:
        pair_rows = S.embedded_pairs(p, clean, table, staging / "pairs")
    if pair_rows:
        write_tsv(staging / "pairs.tsv", pd.DataFrame(pair_rows))
    # every subject used: the split's, and ADNI pair subjects without an artefact-free scan (test only)
    splits.write_manifest(staging, {**{r["subject_id"]: "test" for r in pair_rows}, **assignment})
    gm_source = "; ".join(sorted({str(s.get("gm_source", "embedded cohort GM maps")) for s in scans}))
    _log(f"grey-matter targets: {gm_source}")
    _write_grid(staging, p.grid_mm, "adni" if real else "embedded", table, len(pair_rows), gm_source)
    if out.exists():
        shutil.rmtree(out)
    staging.rename(out)
    _log(f"synthesize done in {time.perf_counter() - start:.1f} s -> {out}")


# ---------------------------------------------------------------------------------------------
# train
# ---------------------------------------------------------------------------------------------
def _fit(
    kind: str, settings: Settings, train: dict, val: dict, iterations: int, init: dict | None = None
) -> tuple[Any, dict]:
    """Train one model (``iterations`` steps, last weights kept); returns (network, cost and last logs)."""
    from mriqa_lib.methods.shaw.lit import ShawModule, loaders
    from mriqa_lib.training import CostMonitor, build_trainer, load_state

    p = settings.shaw
    seed_everything(p.seed, settings.trainer.threads)
    module = ShawModule.from_params(kind, p, iterations)
    if init is not None:
        module.start_from(init)
        _log(f"{kind}: encoder and reconstruction decoder start from the reconstruction model")
    ckpt = PATHS.models / f"ckpt_{kind}"
    if ckpt.exists():
        shutil.rmtree(ckpt)
    tp = trainer_for(settings, "shaw", kind)
    trainer = build_trainer(
        tp,
        ckpt,
        max_epochs=1,
        max_steps=iterations,
        monitor="val_loss" if p.checkpoint == "best_val" else None,
        val_check_interval=min(p.val_every, iterations),
        num_sanity_val_steps=0,
        enable_progress_bar=True,
        gradient_clip_val=p.grad_clip or None,
    )
    _log(
        f"training the {kind} model: {iterations} steps, patch {None if p.whole_volume else p.patch}, "
        f"lr {p.lr}, features {p.features}"
    )
    loader, val_loader = loaders(p, train, val, iterations, tp.num_workers, trainer.world_size)
    with CostMonitor() as cost:
        trainer.fit(module, loader, val_loader)
    logged = {k: float(v) for k, v in trainer.callback_metrics.items()}
    if p.checkpoint == "best_val":
        load_state(module, trainer.checkpoint_callback.best_model_path)
    # the kept checkpoint stays in ckpt/checkpoints (ShawModule.load_from_checkpoint reloads it); the
    # scorer reads the kept weights, the plain state dict models/shaw/<kind>.pt
    return module.net, {**cost.result, "iterations": iterations, "last_logged": logged}


def train(settings: Settings) -> None:
    """Train the reconstruction and the multi-task models; write models/shaw and metrics/shaw_train.json."""
    from mriqa_lib.methods.shaw.inference import save_model
    from mriqa_lib.methods.shaw.lit import multitask_set

    p = settings.shaw
    start = time.perf_counter()
    train_set, val_set = PATHS.load_split("train"), PATHS.load_split("val")
    PATHS.models.mkdir(parents=True, exist_ok=True)
    grid = read_json(PATHS.synthetic / "grid.json")
    metrics: dict[str, Any] = {
        "data_source": grid["source"],
        "gm_source": grid.get("gm_source", ""),
        "n_train_samples": int(len(train_set["inputs"])),
        "n_val": int(len(val_set["inputs"])),
    }
    net, metrics["recon"] = _fit("recon", settings, train_set, val_set, p.iterations)
    save_model(net, "recon", p, PATHS.models / "recon.pt")
    if not train_set["gm"].any():  # every source has GM targets (maps or the template): never skip silently
        raise MriqaInputError(
            f"{PATHS.synthetic / 'train.npz'}: no grey-matter label in the training scans "
            f"(GM source: {metrics['gm_source']}); the multi-task model needs them"
        )
    init = net.state_dict() if p.multitask_from_recon else None
    net, metrics["multitask"] = _fit(
        "multitask", settings, multitask_set(train_set), val_set, p.multitask_iterations, init
    )
    save_model(net, "multitask", p, PATHS.models / "multitask.pt")
    metrics["wall_seconds"] = round(time.perf_counter() - start, 2)
    write_metrics(PATHS.train_metrics, metrics)
    _log(f"train done in {metrics['wall_seconds']} s -> {PATHS.models}")


# ---------------------------------------------------------------------------------------------
# evaluate
# ---------------------------------------------------------------------------------------------
def _fresh_results() -> Path:
    """An empty results/shaw (with maps/)."""
    res = PATHS.results
    if res.exists():
        shutil.rmtree(res)
    (res / "maps").mkdir(parents=True)
    return res


def _exp1(p, model, test: dict, subjects: list[str], res: Path, affine: np.ndarray) -> dict[str, Any]:
    from mriqa_lib.methods.shaw import experiments as E

    exp1, r2, m = E.exp1_noise_levels(p, model, test, subjects, res / "maps", affine)
    write_tsv(res / "exp1_noise_levels.tsv", exp1)
    write_tsv(res / "exp1_r2.tsv", r2)
    _log(
        f"exp1: mean R^2 {m['exp1_r2_mean']:.3f} (min {m['exp1_r2_min']:.3f}, max {m['exp1_r2_max']:.3f}) "
        f"over {len(subjects)} volumes"
    )
    return m


def _exp2(p, model, res: Path) -> dict[str, Any]:
    from mriqa_lib.methods.shaw import experiments as E

    pairs = E.read_pairs(PATHS.synthetic)
    if pairs is None or not len(pairs):
        return {}
    exp2, m = E.exp2_pairs(p, model, pairs, PATHS.synthetic / "pairs", res / "maps" / "pairs")
    write_tsv(res / "exp2_pairs.tsv", exp2)
    _log(f"exp2: artefact total sigma above clean in {m['exp2_frac_artefact_above_clean']:.0%} of {len(exp2)} pairs")
    return m


def _exp3(p, test: dict, subjects: list[str], res: Path, affine: np.ndarray, device) -> dict[str, Any]:
    from mriqa_lib.methods.shaw import experiments as E
    from mriqa_lib.methods.shaw.inference import load_model

    if not (PATHS.models / "multitask.pt").exists():
        return {}
    model, _ = load_model(PATHS.models / "multitask.pt", device)
    exp3, m = E.exp3_partial_noise(p, model, test, subjects, res / "maps", affine)
    write_tsv(res / "exp3_partial_noise.tsv", exp3)
    _log(
        f"exp3: relative rise of total sigma: reconstruction {m['exp3_recon_sigma_rise']:+.2f}, "
        f"segmentation {m['exp3_seg_sigma_rise']:+.2f}"
    )
    return m


def evaluate(settings: Settings) -> None:
    """Experiments 1-3 -> results/shaw (TSV, JSON, NIfTI maps) and metrics/shaw.json."""
    from mriqa_lib.methods.shaw import synthesis as S
    from mriqa_lib.methods.shaw.experiments import claim_checks
    from mriqa_lib.methods.shaw.inference import load_model
    from mriqa_lib.training import inference_device

    p = settings.shaw
    start = time.perf_counter()
    seed_everything(p.seed, settings.trainer.threads)
    grid = read_json(PATHS.synthetic / "grid.json")
    affine = np.asarray(grid["affine"])
    res = _fresh_results()
    test = PATHS.load_split("test")
    n_test = len(test["clean"]) if not p.max_test else min(p.max_test, len(test["clean"]))
    table = read_tsv(PATHS.synthetic / "test.tsv", required=("subject_id", "prepared"))
    subjects = list(table["subject_id"].iloc[:n_test])
    test["reference"] = [S.reference_volume(table, i) for i in range(n_test)]  # 2 mm: experiments 1 and 3 draw there
    device = inference_device(trainer_for(settings, "shaw", "recon"))
    recon_model, _ = load_model(PATHS.models / "recon.pt", device)
    metrics: dict[str, Any] = {"data_source": grid["source"], "gm_source": grid.get("gm_source", ""), "n_test": n_test}
    metrics.update(_exp1(p, recon_model, test, subjects, res, affine))
    metrics.update(_exp2(p, recon_model, res))
    metrics.update(_exp3(p, test, subjects, res, affine, device))
    metrics.update(claim_checks(metrics))
    metrics["evaluate_seconds"] = round(time.perf_counter() - start, 1)
    write_json(res / "summary.json", metrics)
    write_metrics(PATHS.metrics, metrics)
    _log(f"evaluate done in {metrics['evaluate_seconds']} s -> {res}")
