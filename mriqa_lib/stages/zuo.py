"""DVC stages of paper 2 (Zuo et al.): contrastive 2-D artifact latent + RealNVP density.

synthesize: data/embedded (or ``zuo.cohort_table`` / ``zuo.cohort_dirs``) -> data/synthetic/zuo
    train_slices.npz (encoder set), density.npz, rated.npz, examples.npz + TSV manifests, and
    subjects.tsv (who trained, who was rated: the cohort's held-out test subjects are only rated)
train:      -> models/zuo (encoder.pt, flow.pt, zuo_model.json, Lightning checkpoints),
               metrics/zuo_train.json
evaluate:   -> results/zuo (density / rated / examples TSV, density grid, thumbnails),
               metrics/zuo.json

The sets are built by :mod:`mriqa_lib.methods.zuo.synthesis`, the models trained by
:mod:`~mriqa_lib.methods.zuo.contrastive` and :mod:`~mriqa_lib.methods.zuo.flow`, the experiments
run by :mod:`mriqa_lib.methods.zuo.experiments`; this module loads, calls them and writes.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

# OpenMP threads that spin while waiting slow torch 10-25x when the cores are oversubscribed
# (measured: 0.56 s vs 0.056 s CPU per encoder step); must be set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import pandas as pd

from mriqa_lib import claims
from mriqa_lib.config import trainer_for
from mriqa_lib.data import splits
from mriqa_lib.io import read_tsv, write_json, write_tsv
from mriqa_lib.stages.common import (
    EMBEDDED,
    MethodPaths,
    seed_everything,
    write_metrics,
)

NAME = "zuo"
PATHS = MethodPaths(NAME)


def _table(p):
    from mriqa_lib.data.multicohort import cohort_sources

    return cohort_sources(p.cohort_table, p.cohort_dirs, p.split, p.seed, EMBEDDED)


def _save_npz(path: Path, **arrays) -> None:
    from mriqa_lib.io import atomic_path

    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    from mriqa_lib.io import MriqaInputError

    if not path.exists():
        raise MriqaInputError(f"{path}: file not found (run `mriqa stage zuo synthesize`)")
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def synthesize(settings) -> None:
    """Prepare the encoder, density, rated and example sets (float16 slices + TSV manifests)."""
    from mriqa_lib.methods.zuo import synthesis as Z
    from mriqa_lib.methods.zuo.data import subject_splits

    p, workers = settings.zuo, settings.trainer.threads
    seed_everything(p.seed, settings.trainer.threads)
    out = PATHS.synthetic
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    table = _table(p)
    print(f"zuo synthesize: {len(table)} volumes ({table['split'].value_counts().to_dict()}) -> {out}/")
    splits.write_manifest(out, subject_splits(table, p))
    bands, centre, train_rows, dens_rows = Z.encoder_and_density_sets(table, p, workers)
    _save_npz(out / "train_slices.npz", **bands)
    _save_npz(out / "density.npz", centre=centre)
    write_tsv(out / "train.tsv", train_rows)
    write_tsv(out / "density.tsv", dens_rows)
    test = Z.rated_subjects(table, p, str(p.cohort_table or ("zuo.cohort_dirs" if p.cohort_dirs else EMBEDDED)))
    counts = {"n_train": len(train_rows), "n_density": len(dens_rows)}
    for name, build in (("rated", Z.rated_set), ("examples", Z.example_set)):
        centre, thumb, rows = build(test, p, workers)
        _save_npz(out / f"{name}.npz", centre=centre, thumb=thumb)
        write_tsv(out / f"{name}.tsv", pd.DataFrame(rows))
        counts[f"n_{name}"] = len(rows)
    # the wall time is printed below, not stored: identical data must hash identically for DVC
    write_json(out / "synthesize.json", counts)
    print(
        f"zuo synthesize: {counts['n_train']} encoder / {counts['n_density']} density / {counts['n_rated']} rated "
        f"volumes, {counts['n_examples']} examples in {time.time() - t0:.1f} s"
    )


def train(settings) -> None:
    """Contrastive encoder (Eq. 1), then the RealNVP flow on volume-level m (Eq. 2)."""
    from mriqa_lib.methods.zuo.contrastive import train_encoder
    from mriqa_lib.methods.zuo.experiments import volume_features
    from mriqa_lib.methods.zuo.flow import fit_flow
    from mriqa_lib.methods.zuo.inference import save_model
    from mriqa_lib.training import CostMonitor

    p = settings.zuo
    seed_everything(p.seed, settings.trainer.threads)
    slices = _load_npz(PATHS.synthetic / "train_slices.npz")
    centre = _load_npz(PATHS.synthetic / "density.npz")["centre"]
    out = PATHS.models
    out.mkdir(parents=True, exist_ok=True)
    print(
        f"zuo train: encoder '{p.encoder}' on {slices['axial'].shape[0]} volumes, {p.steps} steps; "
        f"flow on {len(centre)} volumes -> {out}/"
    )
    with CostMonitor() as cost:
        t_enc = time.time()
        module, enc_loss = train_encoder(slices, p, trainer_for(settings, "zuo", "encoder"), out / "ckpt_encoder")
        t_enc = time.time() - t_enc
        m_density = volume_features(module.encoder, centre)
        t_flow = time.time()
        density = fit_flow(m_density, p)
        t_flow = time.time() - t_flow
        nll = float(-density.log_density(m_density).mean())
        save_model(out, module.encoder, density, p, {"n_density": len(m_density)})
    write_metrics(
        PATHS.train_metrics,
        {
            **cost.result,
            "encoder_seconds": round(t_enc, 2),
            "flow_seconds": round(t_flow, 2),
            "encoder_loss_final_epoch": enc_loss,
            "flow_train_nll": nll,
            "steps": p.steps,
            "flow_steps": p.flow_steps,
        },
    )


def _scored(name: str, encoder, density) -> tuple[pd.DataFrame, np.ndarray, dict[str, np.ndarray]]:
    """The manifest of set ``name`` with its m, log-density and flags; its m; its arrays."""
    from mriqa_lib.methods.zuo.experiments import score_volumes, with_scores

    arrays = _load_npz(PATHS.synthetic / f"{name}.npz")
    m, logp = score_volumes(encoder, density, arrays["centre"])
    return with_scores(read_tsv(PATHS.synthetic / f"{name}.tsv"), m, logp, density), m, arrays


def evaluate(settings) -> None:
    """Densities of the density / rated / example sets, contingency tables, Fig. 3-4 inputs."""
    from mriqa_lib.methods.zuo import experiments as E
    from mriqa_lib.methods.zuo.inference import load_model

    p = settings.zuo
    seed_everything(p.seed, settings.trainer.threads)
    encoder, density, _ = load_model(PATHS.models, p)
    res = PATHS.results
    res.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    dens, m_d, _ = _scored("density", encoder, density)
    dens["z1"], dens["z2"] = density.to_z(m_d).T
    rated, m_r, rz = _scored("rated", encoder, density)
    ex, m_e, ez = _scored("examples", encoder, density)
    for name, frame in (("density", dens), ("rated", rated), ("examples", ex)):
        write_tsv(res / f"{name}.tsv", frame)
    np.savez(
        res / "thumbs.npz",
        examples=ez["thumb"].astype(np.float32),
        rated=rz["thumb"].astype(np.float32),
        letters=np.asarray(ex["letter"], dtype=str),
        rated_ids=np.asarray(rated["id"], dtype=str),
    )
    np.savez(res / "density_grid.npz", **E.density_grid(density, np.concatenate([m_d, m_r, m_e])))
    metrics, contingency = E.rated_metrics(rated, dens, density)
    write_tsv(res / "contingency.tsv", contingency)
    per_type = E.flags_by_type(rated)
    if per_type is not None:
        write_tsv(res / "flag5_by_type.tsv", per_type)
    metrics.update(E.example_metrics(ex, density))
    metrics["seconds"] = round(time.time() - t0, 2)
    write_json(res / "summary.json", metrics)
    write_metrics(PATHS.metrics, metrics)
    for c in (c for c in claims.CLAIMS if c.method == NAME):
        print(f"  {c.metric}: {metrics.get(c.metric)} (paper's claim {c.op} {claims.target(NAME, c.metric)})")
    print(f"zuo evaluate: results -> {res}/ ({metrics['seconds']} s)")
