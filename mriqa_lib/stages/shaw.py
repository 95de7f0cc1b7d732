"""DVC stages of paper 3 (Shaw et al.): heteroscedastic reconstruction uncertainty as image quality.

* ``synthesize``: clean scans (embedded cohort or ADNI artefact-free scans) split 80/10/10, prepared
  on the working grid; training/validation inputs with simulated k-space artefacts; test scans;
  test-retest pairs (embedded: the clean scan and the same subject misaligned, with a random
  artefact, rigidly re-aligned by SimpleITK; ADNI: the labelled pairs) -> ``data/synthetic/shaw``.
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

from mriqa_lib.config import Settings
from mriqa_lib.io import MriqaInputError, Volume, load_nifti, read_json, read_tsv, save_nifti, write_json, write_tsv
from mriqa_lib.stages.common import EMBEDDED, MethodPaths, seed_everything, write_metrics

PATHS = MethodPaths("shaw")


def _log(msg: str) -> None:
    print(f"[shaw] {msg}", flush=True)


# ---------------------------------------------------------------------------------------------
# synthesize
# ---------------------------------------------------------------------------------------------
def _embedded_scans(p) -> list[dict[str, Any]]:
    frame = read_tsv(EMBEDDED / "participants.tsv", required=("participant_id",))
    scans = []
    for pid in frame["participant_id"]:
        anat = EMBEDDED / pid / "anat"
        scans.append({"subject_id": pid, "image_id": pid, "path": anat / f"{pid}_T1w.nii.gz",
                      "gm_path": anat / f"{pid}_label-GM_probseg.nii.gz"})
    return scans


def _adni_scans(p) -> list[dict[str, Any]]:
    from mriqa_lib.data.adni import adni_scans

    frame = adni_scans(p.adni_root, p.adni_qc_table)
    frame = frame[frame["artefact_free"]]
    if len(frame) < 3:
        raise MriqaInputError(f"{p.adni_qc_table}: fewer than 3 artefact-free scans; cannot split 80/10/10")
    return [{"subject_id": r["subject_id"], "image_id": r["image_id"], "path": Path(r["path"]),
             "gm_path": r.get("gm_path")} for r in frame.to_dict("records")]


def synthesize(settings: Settings) -> None:
    """Write the training / validation / test sets and the test-retest pairs to data/synthetic/shaw."""
    import pandas as pd
    from tqdm import tqdm

    from mriqa_lib.data.adni import adni_pairs, rigid_align, split_subjects
    from mriqa_lib.methods.shaw.data import (corrupt, misalign, prepare_gm, prepare_volume, sample_corruption,
                                             sample_seed, work_grid)

    p = settings.shaw
    start = time.perf_counter()
    seed_everything(p.seed, settings.trainer.threads)
    out = PATHS.synthetic
    staging = out.parent / f".{out.name}.partial"
    if staging.exists():
        shutil.rmtree(staging)
    (staging / "pairs").mkdir(parents=True)
    real = p.adni_root is not None
    scans = _adni_scans(p) if real else _embedded_scans(p)
    _log(f"{len(scans)} clean scans from {'ADNI ' + str(p.adni_root) if real else EMBEDDED}; grid {p.grid_mm} mm")
    splits = split_subjects([s["subject_id"] for s in scans], p.split, p.seed)
    affine, shape = work_grid(p.grid_mm)
    clean, gm, rows = [], [], []
    for s in tqdm(scans, desc="prepare", unit="vol"):
        vol = prepare_volume(load_nifti(s["path"]), p.grid_mm)
        clean.append(vol.data)
        has_gm = s.get("gm_path") is not None and Path(s["gm_path"]).exists()
        gm.append(prepare_gm(load_nifti(s["gm_path"]), p.grid_mm) if has_gm else np.zeros(shape, np.uint8))
        rows.append({"subject_id": s["subject_id"], "image_id": s["image_id"], "split": splits[s["subject_id"]],
                     "path": str(s["path"]), "has_gm": has_gm})
    clean_arr, gm_arr = np.stack(clean), np.stack(gm)
    scans_frame = pd.DataFrame(rows)
    write_tsv(staging / "scans.tsv", scans_frame)

    def subset(split: str, per_volume: int, allow_clean: bool, stream: int) -> None:
        idx = np.flatnonzero(scans_frame["split"].to_numpy() == split)
        inputs, source, manifest = [], [], []
        for i in tqdm(idx, desc=f"{split} artefacts", unit="vol"):
            for j in range(per_volume):
                rng = np.random.default_rng(sample_seed(p.seed, stream, int(i), j))
                spec = sample_corruption(p, rng, allow_clean=allow_clean)
                x, info = corrupt(clean_arr[i], spec, p.grid_mm)
                inputs.append(x.astype(np.float16))
                source.append(int(np.flatnonzero(idx == i)[0]))  # index into this split's clean volumes
                manifest.append({"subject_id": scans_frame["subject_id"].iloc[i], "artefact": spec["artefact"],
                                 "severity": float(info.get("severity", 0.0)), "snr_db": info.get("snr_db"),
                                 "seed": spec["seed"]})
        np.savez(staging / f"{split}.npz", inputs=np.stack(inputs), clean=clean_arr[idx].astype(np.float16),
                 gm=gm_arr[idx], source=np.asarray(source, np.int64))
        write_tsv(staging / f"{split}.tsv", pd.DataFrame(manifest))

    subset("train", p.corruptions_per_volume, True, 1)
    if p.multitask_extra_per_volume:  # regional noise for the multi-task model only (own seed stream)
        idx = np.flatnonzero(scans_frame["split"].to_numpy() == "train")
        extra, extra_src = [], []
        for k, i in enumerate(idx):
            for j in range(p.multitask_extra_per_volume):
                rng = np.random.default_rng(sample_seed(p.seed, 3, int(i), j))
                u = float(rng.uniform())
                lo, hi = p.noise_snr_db
                spec = {"artefact": "regional_noise", "severity": float(10 ** (-(hi - u * (hi - lo)) / 20)),
                        "seed": int(rng.integers(0, 2**31 - 1)), "kwargs": {}}
                extra.append(corrupt(clean_arr[i], spec, p.grid_mm)[0].astype(np.float16))
                extra_src.append(k)
        with np.load(staging / "train.npz") as z:
            arrays = {key: z[key] for key in z.files}
        np.savez(staging / "train.npz", **arrays, mt_inputs=np.stack(extra), mt_source=np.asarray(extra_src, np.int64))
    subset("val", 1, False, 2)
    test_idx = np.flatnonzero(scans_frame["split"].to_numpy() == "test")
    np.savez(staging / "test.npz", clean=clean_arr[test_idx], gm=gm_arr[test_idx])
    write_tsv(staging / "test.tsv", scans_frame.iloc[test_idx])

    # test-retest pairs (experiment 2)
    pair_rows = []
    if real and p.adni_pairs_table:
        pairs = adni_pairs(p.adni_root, p.adni_pairs_table, p.adni_qc_table)
        for k, pr in enumerate(tqdm(pairs, desc="pairs", unit="pair")):
            c, a = prepare_volume(pr["clean"], p.grid_mm), prepare_volume(pr["artefact"], p.grid_mm)
            names = {r: staging / "pairs" / f"pair-{k:03d}_{r}.nii.gz" for r in ("clean", "artefact")}
            save_nifti(names["clean"], c.data, affine)
            save_nifti(names["artefact"], a.data, affine)
            pair_rows.append({"pair": f"pair-{k:03d}", "subject_id": pr["subject_id"], "artefact": "real",
                              "severity": np.nan, **{f"{r}_file": n.name for r, n in names.items()},
                              **{f"align_{key}": str(v) for key, v in pr["alignment"].items()}})
    elif not real:
        held = [int(i) for i in np.flatnonzero(scans_frame["split"].isin(["test", "val"]).to_numpy())]
        held.sort(key=lambda i: (scans_frame["split"].iloc[i] != "test", i))  # test subjects first
        for k in tqdm(range(p.n_pairs), desc="pairs", unit="pair"):
            i = held[k % len(held)]
            rng = np.random.default_rng(sample_seed(p.seed, 5, k))
            fixed = Volume(clean_arr[i], affine)
            moved, mis = misalign(fixed, rng, p.pair_rotation_deg, p.pair_translation_mm)
            spec = sample_corruption(p, rng, scale=tuple(p.pair_severity_scale), allow_clean=False, weighted=False)
            art, info = corrupt(moved.data, spec, p.grid_mm)
            aligned, reg = rigid_align(fixed, Volume(art, affine), iterations=30, sampling=0.1, seed=p.seed)
            # the clean partner is a separate acquisition too: its own head position, realigned the
            # same way, so both scans carry the same interpolation smoothing (which lowers sigma)
            moved_clean, _ = misalign(fixed, rng, p.pair_rotation_deg, p.pair_translation_mm)
            clean, _ = rigid_align(fixed, moved_clean, iterations=30, sampling=0.1, seed=p.seed)
            names = {r: staging / "pairs" / f"pair-{k:03d}_{r}.nii.gz" for r in ("clean", "artefact")}
            save_nifti(names["clean"], clean.data, affine)
            save_nifti(names["artefact"], aligned.data, affine)
            pair_rows.append({"pair": f"pair-{k:03d}", "subject_id": scans_frame["subject_id"].iloc[i],
                              "artefact": spec["artefact"], "severity": float(info.get("severity", 0.0)),
                              "snr_db": info.get("snr_db"), **{f"{r}_file": n.name for r, n in names.items()},
                              "misalign_deg": str(mis["misalign_deg"]), "misalign_mm": str(mis["misalign_mm"]),
                              "align_rotation_deg": str(np.round(reg["rotation_deg"], 3).tolist()),
                              "align_translation_mm": str(np.round(reg["translation_mm"], 3).tolist())})
    if pair_rows:
        write_tsv(staging / "pairs.tsv", pd.DataFrame(pair_rows))
    write_json(staging / "grid.json", {"grid_mm": p.grid_mm, "shape": list(shape), "affine": affine,
                                       "source": "adni" if real else "embedded",
                                       "n_scans": {k: int(v) for k, v in scans_frame["split"].value_counts().items()},
                                       "n_pairs": len(pair_rows)})  # no timing: same data, same bytes
    if out.exists():
        shutil.rmtree(out)
    staging.rename(out)
    _log(f"synthesize done in {time.perf_counter() - start:.1f} s -> {out}")


# ---------------------------------------------------------------------------------------------
# train
# ---------------------------------------------------------------------------------------------
def _fit(kind: str, settings: Settings, train: dict, val: dict, iterations: int,
         init: dict | None = None) -> tuple[Any, dict]:
    from torch.utils.data import DataLoader

    from mriqa_lib.methods.shaw.lit import PatchDataset, ShawModule, VolumeDataset
    from mriqa_lib.training import CostMonitor, build_trainer

    p = settings.shaw
    seed_everything(p.seed, settings.trainer.threads)
    module = ShawModule(kind, p, iterations)
    if init is not None:
        missing, unexpected = module.net.load_state_dict(init, strict=False)
        assert not unexpected and all(k.startswith("seg_") for k in missing), (missing, unexpected)
        _log(f"{kind}: encoder and reconstruction decoder start from the reconstruction model")
    patch = None if p.whole_volume else p.patch
    ds = PatchDataset(train["inputs"], train["clean"], train["gm"], train["source"], iterations * p.batch_size,
                      patch, p.seed)
    loader = DataLoader(ds, batch_size=p.batch_size, shuffle=False, num_workers=settings.trainer.num_workers)
    val_loader = DataLoader(VolumeDataset(val["inputs"], val["clean"], val["gm"], val["source"]), batch_size=1,
                            num_workers=settings.trainer.num_workers)
    ckpt = PATHS.models / f"ckpt_{kind}"
    if ckpt.exists():
        shutil.rmtree(ckpt)
    # the validation loss (5 volumes, one artefact each) is too noisy to pick a checkpoint: keep the last
    trainer = build_trainer(settings.trainer, ckpt, max_epochs=1, monitor=None,
                            val_check_interval=min(p.val_every, iterations), num_sanity_val_steps=0,
                            enable_progress_bar=True, gradient_clip_val=p.grad_clip or None)
    _log(f"training the {kind} model: {iterations} steps, patch {patch}, lr {p.lr}, features {p.features}")
    with CostMonitor() as cost:
        trainer.fit(module, loader, val_loader)
    logged = {k: float(v) for k, v in trainer.callback_metrics.items()}
    info = {**cost.result, "iterations": iterations, "last_logged": logged}
    for ckpt_file in ckpt.glob("*.ckpt"):  # the weights live on in models/shaw/<kind>.pt
        ckpt_file.unlink()
    return module.net, info


def train(settings: Settings) -> None:
    """Train the reconstruction and the multi-task models; write models/shaw and metrics/shaw_train.json."""
    from mriqa_lib.methods.shaw.inference import save_model

    p = settings.shaw
    start = time.perf_counter()
    train_set, val_set = PATHS.load_split("train"), PATHS.load_split("val")
    PATHS.models.mkdir(parents=True, exist_ok=True)
    metrics: dict[str, Any] = {"n_train_samples": int(len(train_set["inputs"])), "n_val": int(len(val_set["inputs"]))}
    net, info = _fit("recon", settings, train_set, val_set, p.iterations)
    save_model(net, "recon", p, PATHS.models / "recon.pt")
    metrics["recon"] = info
    if train_set["gm"].any():
        init = net.state_dict() if p.multitask_from_recon else None
        mt_set = dict(train_set)
        if "mt_inputs" in train_set:
            mt_set["inputs"] = np.concatenate([train_set["inputs"], train_set["mt_inputs"]])
            mt_set["source"] = np.concatenate([train_set["source"], train_set["mt_source"]])
        net, info = _fit("multitask", settings, mt_set, val_set, p.multitask_iterations, init)
        save_model(net, "multitask", p, PATHS.models / "multitask.pt")
        metrics["multitask"] = info
    else:
        _log("no grey-matter labels (gm_path) in the training scans: multi-task model skipped")
    metrics["wall_seconds"] = round(time.perf_counter() - start, 2)
    write_metrics(PATHS.train_metrics, metrics)
    _log(f"train done in {metrics['wall_seconds']} s -> {PATHS.models}")


# ---------------------------------------------------------------------------------------------
# evaluate
# ---------------------------------------------------------------------------------------------
def _fg(clean: np.ndarray, frac: float) -> np.ndarray:
    return clean > frac * float(clean.max())


def evaluate(settings: Settings) -> None:
    """Experiments 1-3 -> results/shaw (TSV, JSON, NIfTI maps) and metrics/shaw.json."""
    import pandas as pd
    from tqdm import tqdm

    from mriqa_lib.artifacts import apply_artifact, snr_levels_db
    from mriqa_lib.methods.shaw.data import sample_seed
    from mriqa_lib.methods.shaw.inference import load_model, predict, summarise
    from mriqa_lib.metrics import auroc, linear_fit_r2

    p = settings.shaw
    start = time.perf_counter()
    seed_everything(p.seed, settings.trainer.threads)
    grid = read_json(PATHS.synthetic / "grid.json")
    affine = np.asarray(grid["affine"])
    voxel_ml = float(p.grid_mm) ** 3 / 1000.0
    res = PATHS.results
    if res.exists():
        shutil.rmtree(res)
    (res / "maps").mkdir(parents=True)
    test = PATHS.load_split("test")
    test_rows = read_tsv(PATHS.synthetic / "test.tsv", required=("subject_id",))
    n_test = len(test["clean"]) if not p.max_test else min(p.max_test, len(test["clean"]))
    recon_model, _ = load_model(PATHS.models / "recon.pt")
    metrics: dict[str, Any] = {"n_test": n_test}

    # --- experiment 1: Rician noise levels -------------------------------------------------------
    levels = snr_levels_db(p.snr_levels, p.snr_high_db, p.snr_low_db)
    map_levels = {float(levels[0]), float(levels[len(levels) // 2]), float(levels[-1])}
    rows = []
    for t in tqdm(range(n_test), desc="exp1 noise levels", unit="vol"):
        clean = test["clean"][t].astype(np.float32)
        sid = test_rows["subject_id"].iloc[t]
        fg = _fg(clean, p.fg_fraction)
        noisy = np.stack([apply_artifact("rician_noise", clean, None, seed=sample_seed(p.seed, 11, t, k),
                                         snr_db=float(db))[0] for k, db in enumerate(levels)])
        pred = predict(recon_model, noisy)
        for k, db in enumerate(levels):
            err = (pred["recon"][k] - clean) ** 2
            rows.append({"subject_id": sid, "snr_db": float(db), "error_fg": float(err[fg].sum()),
                         "error_all": float(err.sum()), "input_error_fg": float(((noisy[k] - clean) ** 2)[fg].sum()),
                         **summarise(pred["sigma"][k], fg, voxel_ml)})
            if t < p.map_cases and float(db) in map_levels:
                tag = f"{sid}_snr{db:+.1f}dB"
                for name, arr in (("input", noisy[k]), ("recon", pred["recon"][k]), ("sigma", pred["sigma"][k])):
                    save_nifti(res / "maps" / "exp1" / f"{tag}_{name}.nii.gz", arr, affine)
        if t < p.map_cases:
            save_nifti(res / "maps" / "exp1" / f"{sid}_clean.nii.gz", clean, affine)
    exp1 = pd.DataFrame(rows)
    write_tsv(res / "exp1_noise_levels.tsv", exp1)
    r2 = exp1.groupby("subject_id", sort=False).apply(
        lambda g: pd.Series({"r2": linear_fit_r2(g["error_fg"], g["sigma_median"]),
                             "r2_all": linear_fit_r2(g["error_all"], g["sigma_median"])}),
        include_groups=False).reset_index()
    write_tsv(res / "exp1_r2.tsv", r2)
    metrics.update(exp1_r2_mean=float(r2["r2"].mean()), exp1_r2_min=float(r2["r2"].min()),
                   exp1_r2_max=float(r2["r2"].max()), exp1_r2_example=float(r2["r2"].iloc[0]),
                   exp1_r2_all_voxels_mean=float(r2["r2_all"].mean()), exp1_levels=int(len(levels)))
    _log(f"exp1: mean R^2 {metrics['exp1_r2_mean']:.3f} (min {metrics['exp1_r2_min']:.3f}, "
         f"max {metrics['exp1_r2_max']:.3f}) over {n_test} volumes")

    # --- experiment 2: test-retest pairs ------------------------------------------------------------
    pairs = read_tsv(PATHS.synthetic / "pairs.tsv") if (PATHS.synthetic / "pairs.tsv").exists() else None
    if pairs is not None and len(pairs):
        prow = []
        for k, rec in enumerate(tqdm(pairs.to_dict("records"), desc="exp2 pairs", unit="pair")):
            vols = {r: load_nifti(PATHS.synthetic / "pairs" / rec[f"{r}_file"]) for r in ("clean", "artefact")}
            pred = predict(recon_model, np.stack([vols["clean"].data, vols["artefact"].data]))
            fg = _fg(vols["clean"].data, p.fg_fraction)
            out = {"pair": rec["pair"], "subject_id": rec["subject_id"], "artefact": rec["artefact"],
                   "severity": rec.get("severity")}
            for j, r in enumerate(("clean", "artefact")):
                s = summarise(pred["sigma"][j], fg, voxel_ml)
                out.update({f"{r}_total_sigma": s["sigma_total"], f"{r}_median_sigma": s["sigma_median"]})
                if k < max(p.map_cases, 4):
                    stem = rec[f"{r}_file"].replace(".nii.gz", "")
                    save_nifti(res / "maps" / "pairs" / f"{stem}_sigma.nii.gz", pred["sigma"][j], vols[r].affine)
                    save_nifti(res / "maps" / "pairs" / f"{stem}_recon.nii.gz", pred["recon"][j], vols[r].affine)
                    shutil.copyfile(PATHS.synthetic / "pairs" / rec[f"{r}_file"],
                                    res / "maps" / "pairs" / rec[f"{r}_file"])
            prow.append(out)
        exp2 = pd.DataFrame(prow)
        exp2["artefact_above_clean"] = exp2["artefact_total_sigma"] > exp2["clean_total_sigma"]
        write_tsv(res / "exp2_pairs.tsv", exp2)
        labels = [False] * len(exp2) + [True] * len(exp2)
        metrics.update(exp2_n_pairs=int(len(exp2)),
                       exp2_frac_artefact_above_clean=float(exp2["artefact_above_clean"].mean()),
                       exp2_total_sigma_clean_mean=float(exp2["clean_total_sigma"].mean()),
                       exp2_total_sigma_artefact_mean=float(exp2["artefact_total_sigma"].mean()),
                       exp2_auroc=auroc(labels, list(exp2["clean_total_sigma"]) + list(exp2["artefact_total_sigma"])))
        for name, g in exp2.groupby("artefact"):
            metrics[f"exp2_frac_above_{name}"] = float(g["artefact_above_clean"].mean())
        _log(f"exp2: artefact total sigma above clean in {metrics['exp2_frac_artefact_above_clean']:.0%} of "
             f"{len(exp2)} pairs")

    # --- experiment 3: multi-task model, partial noise ------------------------------------------------
    mt_path = PATHS.models / "multitask.pt"
    if mt_path.exists():
        mt_model, _ = load_model(mt_path)
        rel = 10.0 ** (-p.regional_snr_db / 20.0)
        rows3 = []
        for t in tqdm(range(n_test), desc="exp3 partial noise", unit="vol"):
            clean = test["clean"][t].astype(np.float32)
            gm = test["gm"][t].astype(bool)
            sid = test_rows["subject_id"].iloc[t]
            noisy, info = apply_artifact("regional_noise", clean, rel, seed=sample_seed(p.seed, 13, t),
                                         box_fraction=p.regional_box_fraction)
            pred = predict(mt_model, np.stack([clean, noisy]))
            fg = _fg(clean, p.fg_fraction)
            region = np.zeros(clean.shape, bool)
            region[tuple(slice(a, b) for a, b in info["box"])] = True
            for j, cond in enumerate(("clean", "partial_noise")):
                seg = pred["seg_prob"][j] > 0.5
                dice = 2 * (seg & gm).sum() / max(1, seg.sum() + gm.sum())
                rows3.append({"subject_id": sid, "condition": cond,
                              "recon_total_sigma": float(pred["sigma"][j][fg].sum() * voxel_ml),
                              "seg_total_sigma": float(pred["seg_sigma"][j][fg].sum() * voxel_ml),
                              "recon_sigma_in_box": float(pred["sigma"][j][region & fg].mean()),
                              "seg_sigma_in_box": float(pred["seg_sigma"][j][region & fg].mean()),
                              "gm_dice": float(dice), "box": str(info["box"])})
                if t < p.map_cases:
                    base = res / "maps" / "exp3" / f"{sid}_{cond}"
                    for name, arr in (("input", [clean, noisy][j]), ("recon", pred["recon"][j]),
                                      ("sigma", pred["sigma"][j]), ("seg", pred["seg_prob"][j]),
                                      ("segsigma", pred["seg_sigma"][j])):
                        save_nifti(f"{base}_{name}.nii.gz", arr, affine)
        exp3 = pd.DataFrame(rows3)
        write_tsv(res / "exp3_partial_noise.tsv", exp3)
        wide = exp3.pivot(index="subject_id", columns="condition", values=["recon_total_sigma", "seg_total_sigma"])
        rise_r = wide["recon_total_sigma"]["partial_noise"] / wide["recon_total_sigma"]["clean"] - 1
        rise_s = wide["seg_total_sigma"]["partial_noise"] / wide["seg_total_sigma"]["clean"] - 1
        dice = exp3.groupby("condition")["gm_dice"].mean()
        metrics.update(exp3_recon_sigma_rise=float(rise_r.mean()), exp3_seg_sigma_rise=float(rise_s.mean()),
                       exp3_frac_recon_rise_above_seg=float((rise_r > rise_s).mean()),
                       exp3_gm_dice_clean=float(dice["clean"]), exp3_gm_dice_partial_noise=float(dice["partial_noise"]))
        _log(f"exp3: relative rise of total sigma: reconstruction {metrics['exp3_recon_sigma_rise']:+.2f}, "
             f"segmentation {metrics['exp3_seg_sigma_rise']:+.2f}")

    metrics["done_r2_ge_0_8"] = bool(metrics["exp1_r2_mean"] >= 0.8)
    if "exp2_frac_artefact_above_clean" in metrics:
        metrics["done_pairs_ge_90pct"] = bool(metrics["exp2_frac_artefact_above_clean"] >= 0.9)
    if "exp3_recon_sigma_rise" in metrics:
        metrics["done_recon_rise_gt_seg_rise"] = bool(metrics["exp3_recon_sigma_rise"] > metrics["exp3_seg_sigma_rise"])
    metrics["evaluate_seconds"] = round(time.perf_counter() - start, 1)
    write_json(res / "summary.json", metrics)
    write_metrics(PATHS.metrics, metrics)
    _log(f"evaluate done in {metrics['evaluate_seconds']} s -> {res}")
