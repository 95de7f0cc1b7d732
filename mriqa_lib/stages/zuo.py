"""DVC stages of paper 2 (Zuo et al.): contrastive 2-D artifact latent + RealNVP density.

synthesize: data/embedded (or ``zuo.cohort_table``) -> data/synthetic/zuo
    train_slices.npz (encoder set), density.npz, rated.npz, examples.npz + TSV manifests
train:      -> models/zuo (encoder.pt, flow.pt, zuo_model.json, Lightning checkpoints),
               metrics/zuo_train.json
evaluate:   -> results/zuo (density / rated / examples TSV, density grid, thumbnails),
               metrics/zuo.json
"""
from __future__ import annotations

import os
import time
from pathlib import Path

# OpenMP threads that spin while waiting slow torch 10-25x when the cores are oversubscribed
# (measured: 0.56 s vs 0.056 s CPU per encoder step); must be set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402

from mriqa_lib.io import load_nifti, read_tsv, write_json, write_tsv  # noqa: E402
from mriqa_lib.stages.common import EMBEDDED, MethodPaths, seed_everything, write_metrics  # noqa: E402

PATHS = MethodPaths("zuo")


def _table(p):
    from mriqa_lib.data.multicohort import embedded_table, read_cohort_table

    return read_cohort_table(p.cohort_table) if p.cohort_table else embedded_table(EMBEDDED)


def _save_npz(path: Path, **arrays) -> None:
    from mriqa_lib.io import atomic_path

    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)


def _prep_job(args):
    """Prepare one volume: (band slices or None, centre slices or None) as float16."""
    from mriqa_lib.methods.zuo.prep import band_slices, centre_axial, prepare_volume

    path, p, want_band, want_centre = args
    data = prepare_volume(load_nifti(path), p)
    band = {o: a.astype(np.float16) for o, a in band_slices(data, p).items()} if want_band else None
    centre = centre_axial(data, p).astype(np.float16) if want_centre else None
    return band, centre


def _rated_job(args):
    """One rated-set (or example) volume: artifact on the acquired volume, then preparation."""
    from mriqa_lib.methods.zuo.data import apply_named, make_example
    from mriqa_lib.methods.zuo.prep import centre_axial, prepare_volume

    kind, path, p, item = args
    if kind == "example":
        vol, info = make_example(item, path, p)
    elif item["artifact"] == "real":
        vol, info = load_nifti(path), {}
    else:
        vol, info = apply_named(load_nifti(path), item["artifact"], item["severity"], item["seed"])
    c = centre_axial(prepare_volume(vol, p), p)
    return c.astype(np.float16), c[len(c) // 2].astype(np.float16), info.get("severity", np.nan)


def _map(func, jobs, workers: int, desc: str):
    """Ordered map with a progress bar, in ``workers`` forked processes when > 1."""
    from tqdm import tqdm

    if workers <= 1:
        return [func(j) for j in tqdm(jobs, desc=desc, unit="vol")]
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(workers, mp_context=mp.get_context("fork")) as pool:
        return list(tqdm(pool.map(func, jobs), total=len(jobs), desc=desc, unit="vol"))


def synthesize(settings) -> None:
    """Prepare the encoder, density, rated and example sets (float16 slices + TSV manifests)."""
    import pandas as pd

    from mriqa_lib.methods.zuo.data import rated_plan
    from mriqa_lib.methods.zuo.params import EXAMPLES

    p = settings.zuo
    seed_everything(p.seed, settings.trainer.threads)
    out = PATHS.synthetic
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    table = _table(p)
    print(f"zuo synthesize: {len(table)} volumes ({table['split'].value_counts().to_dict()}) -> {out}/")
    workers = settings.trainer.threads
    # encoder (train split) and density (density_splits) sets
    keep = table[table["split"].isin(set(p.density_splits) | {"train"})].reset_index(drop=True)
    jobs = [(row.path, p, row.split == "train", row.split in p.density_splits) for row in keep.itertuples()]
    done = _map(_prep_job, jobs, workers, "zuo prepare")
    bands = {o: np.stack([b[o] for b, _ in done if b is not None]) for o in ("axial", "coronal", "sagittal")}
    _save_npz(out / "train_slices.npz", **bands)
    _save_npz(out / "density.npz", centre=np.stack([c for _, c in done if c is not None]))
    train_rows = keep.loc[keep["split"] == "train", ["participant_id", "cohort"]]
    dens_rows = keep.loc[keep["split"].isin(p.density_splits), ["participant_id", "cohort", "split"]]
    write_tsv(out / "train.tsv", train_rows)
    write_tsv(out / "density.tsv", dens_rows)

    # rated test set: real ratings when the table has them, else simulated artifacts
    test = table[table["split"].isin(p.rated_splits)].reset_index(drop=True)
    if len(test) == 0:
        from mriqa_lib.io import MriqaInputError

        raise MriqaInputError(f"{p.cohort_table or EMBEDDED}: no {'/'.join(p.rated_splits)} volumes for the rated set")
    if "rating" in test.columns and test["rating"].notna().all():
        plan = [{"subject": i, "variant": 0, "artifact": "real", "r": np.nan, "severity": np.nan, "seed": 0,
                 "rating": r, "fail": r != "low"} for i, r in enumerate(test["rating"])]
    else:
        plan = rated_plan(len(test), p)
    done = _map(_rated_job, [("rated", test["path"][it["subject"]], p, it) for it in plan], workers, "zuo rated set")
    rated_rows = [{"id": f"{test['participant_id'][it['subject']]}_v{it['variant']:02d}",
                   "participant_id": test["participant_id"][it["subject"]], "cohort": test["cohort"][it["subject"]],
                   "split": test["split"][it["subject"]], **it, "realised_severity": sev}
                  for it, (_, _, sev) in zip(plan, done)]
    _save_npz(out / "rated.npz", centre=np.stack([c for c, _, _ in done]), thumb=np.stack([t for _, t, _ in done]))
    write_tsv(out / "rated.tsv", pd.DataFrame(rated_rows))

    # held-out examples A-H from one rated-set subject (never in the encoder or density sets)
    subj = min(p.example_subject, len(test) - 1)
    done = _map(_rated_job, [("example", test["path"][subj], p, letter) for letter in EXAMPLES], workers, "zuo examples")
    ex_rows = [{"letter": letter, "artifact": name, "participant_id": test["participant_id"][subj], "severity": sev}
               for (letter, name), (_, _, sev) in zip(EXAMPLES.items(), done)]
    _save_npz(out / "examples.npz", centre=np.stack([c for c, _, _ in done]), thumb=np.stack([t for _, t, _ in done]))
    write_tsv(out / "examples.tsv", pd.DataFrame(ex_rows))
    # the wall time is printed below, not stored: identical data must hash identically for DVC
    write_json(out / "synthesize.json", {"n_train": len(train_rows),
                                         "n_density": len(dens_rows), "n_rated": len(rated_rows),
                                         "n_examples": len(ex_rows)})
    print(f"zuo synthesize: {len(train_rows)} encoder / {len(dens_rows)} density / {len(rated_rows)} rated "
          f"volumes, {len(ex_rows)} examples in {time.time() - t0:.1f} s")


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    from mriqa_lib.io import MriqaInputError

    if not path.exists():
        raise MriqaInputError(f"{path}: file not found (run `mriqa stage zuo synthesize`)")
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def train(settings) -> None:
    """Contrastive encoder (Eq. 1), then the RealNVP flow on volume-level m (Eq. 2)."""
    import torch
    from torch.utils.data import DataLoader

    from mriqa_lib.methods.zuo.contrastive import ContrastiveSampler, EncoderModule
    from mriqa_lib.methods.zuo.flow import fit_flow
    from mriqa_lib.methods.zuo.inference import save_model, volume_m
    from mriqa_lib.models.artifact_encoder import build_encoder
    from mriqa_lib.training import CostMonitor, build_trainer

    p = settings.zuo
    seed_everything(p.seed, settings.trainer.threads)
    slices = _load_npz(PATHS.synthetic / "train_slices.npz")
    centre = _load_npz(PATHS.synthetic / "density.npz")["centre"]
    out = PATHS.models
    out.mkdir(parents=True, exist_ok=True)
    print(f"zuo train: encoder '{p.encoder}' on {slices['axial'].shape[0]} volumes, {p.steps} steps; "
          f"flow on {len(centre)} volumes -> {out}/")
    with CostMonitor() as cost:
        torch.manual_seed(p.seed)
        encoder = build_encoder(p.encoder, p.width)
        module = EncoderModule(encoder, p)
        loader = DataLoader(ContrastiveSampler(slices, p, p.seed), batch_size=None, shuffle=False,
                            num_workers=settings.trainer.num_workers)
        t_enc = time.time()
        trainer = build_trainer(settings.trainer, out / "ckpt_encoder", max_epochs=1, monitor=None,
                                enable_progress_bar=True)
        trainer.fit(module, loader)
        enc_loss = float(trainer.callback_metrics.get("loss_epoch", torch.tensor(np.nan)))
        t_enc = time.time() - t_enc
        encoder.eval()
        m_density = np.stack([volume_m(encoder, c.astype(np.float32)) for c in centre])
        t_flow = time.time()
        density = fit_flow(m_density, p)
        t_flow = time.time() - t_flow
        nll = float(-density.log_density(m_density).mean())
        save_model(out, encoder, density, p, {"n_density": int(len(m_density))})
    write_metrics(PATHS.train_metrics, {**cost.result, "encoder_seconds": round(t_enc, 2),
                                        "flow_seconds": round(t_flow, 2), "encoder_loss_final_epoch": enc_loss,
                                        "flow_train_nll": nll, "steps": p.steps, "flow_steps": p.flow_steps})


def evaluate(settings) -> None:
    """Densities of the density / rated / example sets, contingency tables, Fig. 3-4 inputs."""
    import pandas as pd

    from mriqa_lib.methods.zuo.inference import load_model, volume_m
    from mriqa_lib.metrics import auroc, sensitivity_specificity

    p = settings.zuo
    seed_everything(p.seed, settings.trainer.threads)
    encoder, density, _ = load_model(PATHS.models, p)
    res = PATHS.results
    res.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    taus = list(density.thresholds)

    def score(centre: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        m = np.stack([volume_m(encoder, c.astype(np.float32)) for c in centre])
        return m, density.log_density(m)

    def columns(frame, m, logp):
        frame = frame.copy()
        frame["m1"], frame["m2"], frame["logp"] = m[:, 0], m[:, 1], logp
        for t in taus:
            frame[f"flag{t}"] = logp < density.thresholds[t]
        return frame

    dens = read_tsv(PATHS.synthetic / "density.tsv")
    m_d, lp_d = score(_load_npz(PATHS.synthetic / "density.npz")["centre"])
    z = density.to_z(m_d)
    dens = columns(dens, m_d, lp_d)
    dens["z1"], dens["z2"] = z[:, 0], z[:, 1]
    write_tsv(res / "density.tsv", dens)

    rated = read_tsv(PATHS.synthetic / "rated.tsv")
    rz = _load_npz(PATHS.synthetic / "rated.npz")
    m_r, lp_r = score(rz["centre"])
    rated = columns(rated, m_r, lp_r)
    write_tsv(res / "rated.tsv", rated)

    ex = read_tsv(PATHS.synthetic / "examples.tsv")
    ez = _load_npz(PATHS.synthetic / "examples.npz")
    m_e, lp_e = score(ez["centre"])
    ex = columns(ex, m_e, lp_e)
    write_tsv(res / "examples.tsv", ex)
    np.savez(res / "thumbs.npz", examples=ez["thumb"].astype(np.float32), rated=rz["thumb"].astype(np.float32),
             letters=np.asarray(ex["letter"], dtype=str), rated_ids=np.asarray(rated["id"], dtype=str))

    # density grid (Fig. 3b, 4a contours)
    allm = np.concatenate([m_d, m_r, m_e])
    lo, hi = allm.min(0), allm.max(0)
    pad = 0.15 * (hi - lo) + 1e-6
    g1 = np.linspace(lo[0] - pad[0], hi[0] + pad[0], 120)
    g2 = np.linspace(lo[1] - pad[1], hi[1] + pad[1], 120)
    mesh = np.stack(np.meshgrid(g1, g2, indexing="xy"), -1).reshape(-1, 2)
    grid = density.log_density(mesh).reshape(len(g2), len(g1))
    np.savez(res / "density_grid.npz", m1=g1, m2=g2, logp=grid,
             taus=np.asarray([float(t) for t in taus]), thresholds=np.asarray([density.thresholds[t] for t in taus]))

    metrics: dict = {"n_density": int(len(dens)), "n_rated": int(len(rated)),
                     "n_rated_fail": int(rated["fail"].sum()), "n_rated_pass": int((~rated["fail"].astype(bool)).sum())}
    fail = rated["fail"].astype(bool).to_numpy()
    tables = []
    for t in taus:
        flag = rated[f"flag{t}"].astype(bool).to_numpy()
        sens, spec = sensitivity_specificity(fail, flag)
        metrics[f"sensitivity_tau{t}"] = round(float(sens), 4)
        metrics[f"specificity_tau{t}"] = round(float(spec), 4)
        metrics[f"threshold_logp_tau{t}"] = round(float(density.thresholds[t]), 4)
        metrics[f"density_set_flagged_fraction_tau{t}"] = round(float(dens[f"flag{t}"].mean()), 4)
        for rating in ("low", "medium", "high"):
            sel = rated["rating"] == rating
            tables.append({"tau": float(t), "rating": rating, "flagged": int(flag[sel].sum()),
                           "passed": int((~flag[sel]).sum())})
            metrics[f"flagged_fraction_{rating}_tau{t}"] = round(float(flag[sel].mean()), 4) if sel.any() else None
    write_tsv(res / "contingency.tsv", pd.DataFrame(tables))
    metrics["auroc_neg_logp_vs_fail"] = round(float(auroc(fail, -lp_r)), 4)
    per_type = rated.groupby(["artifact", "rating"])["flag5"].mean().unstack() if "flag5" in rated else None
    if per_type is not None:
        write_tsv(res / "flag5_by_type.tsv", per_type.reset_index())
    t5 = taus[0]
    thr5 = density.thresholds[t5]
    for row in ex.itertuples():
        metrics[f"example_{row.letter}_logp_minus_thr_tau{t5}"] = round(float(row.logp - thr5), 4)
    a_above = bool(ex.loc[ex.letter == "A", "logp"].iloc[0] >= thr5)
    below = [bool(v < thr5) for v in ex.loc[ex.letter != "A", "logp"]]
    metrics[f"example_A_above_tau{t5}"] = a_above
    metrics[f"examples_BH_below_tau{t5}"] = int(sum(below))
    metrics[f"examples_all_as_expected_tau{t5}"] = bool(a_above and all(below))
    metrics["seconds"] = round(time.time() - t0, 2)
    write_json(res / "summary.json", metrics)
    write_metrics(PATHS.metrics, metrics)
    print(f"zuo evaluate: results -> {res}/ ({metrics['seconds']} s)")
