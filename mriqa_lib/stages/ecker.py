"""DVC entry points of paper 1 (Ecker et al.): SimCLR zero-shot HQ/LQ classification.

synthesize: slices of the training pool (clean = HQ references and SimCLR training data; the same
            slices with simulated motion / noise / respiration = LQ references), and the test sets
            (simulated motion, simulated noise, NAKO-like breath-hold vs free-breathing, continuous
            motion sweep) from held-out subjects only (the cohort's held-out test subjects always
            among them; ``subjects.tsv`` lists who trained and who tested).
train:      SimCLR on the clean pool slices; saves the network and the reference embeddings.
evaluate:   zero-shot classification of every test case against references matched by sex,
            height and weight (within the test scan's site with ecker.match_site);
            metrics/ecker.json and results/ecker/*.tsv for the notebook.

The data sets are built by :mod:`mriqa_lib.methods.ecker.synthesis`, the experiments run by
:mod:`mriqa_lib.methods.ecker.experiments`; this module loads, calls them and writes.
"""

from __future__ import annotations

import shutil
import time

import numpy as np
import pandas as pd

from mriqa_lib import claims
from mriqa_lib.config import trainer_for
from mriqa_lib.data import splits
from mriqa_lib.io import read_json, write_json, write_tsv
from mriqa_lib.methods.ecker import data as D
from mriqa_lib.methods.ecker import experiments as E
from mriqa_lib.methods.ecker import synthesis as S
from mriqa_lib.methods.ecker.simclr import load_net
from mriqa_lib.stages.common import MethodPaths, seed_everything, write_metrics

NAME = "ecker"
#: the subject table (covariates, role pool/test, row index); ``subjects.tsv`` is the split manifest
SUBJECT_TABLE = "subject_table.tsv"


def _read_tsv(path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", dtype={"participant_id": str})


def synthesize(settings) -> None:
    """Write data/synthetic/ecker: pool.npz (HQ + LQ reference slices = training data), the test
    sets test_{motion,noise,nako,continuous}.npz, their manifests (TSV), the subject table and the
    split manifest ``subjects.tsv``."""
    p = settings.ecker
    out = MethodPaths(NAME).synthetic
    seed_everything(p.seed, settings.trainer.threads)
    t0 = time.perf_counter()
    subjects, conform_grid = S.load_subjects(p)
    pool_idx, test_idx = D.split_subjects(subjects, p.n_test_subjects, p.seed)
    print(
        f"ecker synthesize: {len(subjects)} subjects ({'UK Biobank' if p.ukb_dir else 'embedded'}): "
        f"{len(pool_idx)} training/reference pool, {len(test_idx)} held out -> {out}/"
    )
    raw, spacing = S.load_slices(subjects, p, conform_grid)
    pool = S.reference_pool(raw, spacing, subjects, pool_idx, p)
    out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out / "pool.npz", **pool)
    write_tsv(out / SUBJECT_TABLE, S.subject_table(subjects, test_idx))
    splits.write_manifest(out, S.split_manifest(subjects, test_idx))
    for kind in ("motion", "noise"):
        images, cases = S.simulated_test_set(kind, raw, spacing, subjects, test_idx, p)
        np.savez_compressed(out / f"test_{kind}.npz", images=images)
        write_tsv(out / f"test_{kind}.tsv", cases)
    for name, build in (("nako", S.nako_set), ("continuous", S.continuous_set)):
        images, cases = build(raw, spacing, subjects, test_idx, p)
        np.savez_compressed(out / f"test_{name}.npz", images=images)
        write_tsv(out / f"test_{name}.tsv", cases)
    write_json(
        out / "meta.json",
        {
            "conform_grid": conform_grid,
            "dataset": "ukb" if p.ukb_dir else "embedded",
            "nako": "nako-iqa" if p.nako_dir else "embedded-respiratory",
        },
    )
    # the wall time is printed, not stored: identical data must hash identically for DVC
    print(f"ecker synthesize: done in {time.perf_counter() - t0:.1f} s")


def train(settings) -> None:
    """SimCLR on the clean pool slices -> models/ecker/{simclr.pt, config.json, references.npz}."""
    import torch

    from mriqa_lib.methods.ecker.simclr import train_simclr
    from mriqa_lib.training import CostMonitor

    p = settings.ecker
    paths = MethodPaths(NAME)
    seed_everything(p.seed, settings.trainer.threads)
    pool = np.load(paths.synthetic / "pool.npz")
    hq = pool["hq"]
    images = hq.reshape(-1, *hq.shape[-2:])
    print(f"ecker train: SimCLR on {len(images)} slices {hq.shape[-2:]} for {p.epochs} epochs -> {paths.models}/")
    shutil.rmtree(paths.models / "lightning", ignore_errors=True)  # no stale checkpoints or logs
    with CostMonitor() as cost:
        net = train_simclr(images, p, trainer_for(settings, "ecker", "simclr"), paths.models / "lightning")
    torch.save(net.state_dict(), paths.models / "simclr.pt")
    meta = read_json(paths.synthetic / "meta.json")
    write_json(
        paths.models / "config.json",
        {"params": p.model_dump(mode="json"), "feature_dim": net.feature_dim, "conform_grid": meta["conform_grid"]},
    )
    # reference bank for `mriqa score`: encoder embeddings of the pool (HQ and every LQ kind)
    subjects = _read_tsv(paths.synthetic / SUBJECT_TABLE)
    refs = subjects[subjects["role"] == "pool"]
    np.savez_compressed(
        paths.models / "references.npz",
        **E.reference_bank(net, pool),
        participant_id=refs["participant_id"].to_numpy(str),
        sex=refs["sex"].to_numpy(str),
        height=refs["height"].to_numpy(float),
        weight=refs["weight"].to_numpy(float),
    )
    log = paths.models / "lightning" / "logs" / "metrics.csv"
    final_loss = float(pd.read_csv(log)["train_loss"].dropna().iloc[-1]) if log.exists() else float("nan")
    write_metrics(
        paths.train_metrics,
        {**cost.result, "epochs": p.epochs, "n_train_slices": len(images), "final_train_loss": final_loss},
    )


def _pool(syn) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The subject table and its reference pool; refuses a pool holding a held-out subject."""
    subjects = _read_tsv(syn / SUBJECT_TABLE)
    pool_tab = subjects[subjects["role"] == "pool"].reset_index(drop=True)
    held_out = set(subjects.loc[subjects["role"] == "test", "participant_id"])
    if held_out & set(pool_tab["participant_id"]):  # never happens by construction; guards edits
        raise RuntimeError("ecker: a held-out test subject is in the training/reference pool")
    return subjects, pool_tab


def _test_set(syn, name: str, subjects: pd.DataFrame) -> tuple[np.ndarray, pd.DataFrame]:
    """Images and cases of ``test_<name>``, the cases with their subject's covariates."""
    return np.load(syn / f"test_{name}.npz")["images"], E.with_covariates(_read_tsv(syn / f"test_{name}.tsv"), subjects)


def _experiment(net, kind: str, test_set: tuple, pool_tab, bank, p) -> tuple[dict, dict, dict]:
    """Paper 1's experiment ``kind`` on its test set: ({table name: rows}, metrics, examples)."""
    if kind == "nako":
        return E.nako_experiment(net, *test_set, pool_tab, bank, p)
    if kind == "continuous":
        res, m, ex = E.continuous_experiment(net, *test_set, pool_tab, bank, p)
    else:
        res, m, ex = E.simulated_experiment(net, kind, *test_set, pool_tab, bank, p)
    return {kind: res}, m, ex


def evaluate(settings) -> None:
    """Classify every test case; write results/ecker/*.tsv, examples.npz and metrics/ecker.json."""
    p = settings.ecker
    paths = MethodPaths(NAME)
    seed_everything(p.seed, settings.trainer.threads)
    t0 = time.perf_counter()
    net, _, _ = load_net(paths.models)
    syn, out = paths.synthetic, paths.results
    subjects, pool_tab = _pool(syn)
    bank = E.reference_bank(net, np.load(syn / "pool.npz"))  # (n_pool, n_slices, h)
    out.mkdir(parents=True, exist_ok=True)
    where = " of its own site" if p.match_site else ""
    print(
        f"ecker evaluate: {len(pool_tab)} reference subjects, up to {p.n_refs}{where} matched per test subject "
        f"-> {out}/"
    )
    metrics, examples = {}, {}
    for kind in ("motion", "noise", "nako", "continuous"):
        tables, m, ex = _experiment(net, kind, _test_set(syn, kind, subjects), pool_tab, bank, p)
        for name, res in tables.items():  # nako.tsv: with the configured LQ references (ecker.nako_lq)
            write_tsv(out / f"{name}.tsv", res)
        metrics.update(m)
        examples.update(ex)
    np.savez_compressed(out / "examples.npz", **examples)
    metrics.update(
        {
            "n_references": p.n_refs,
            "n_pool_subjects": len(pool_tab),
            "n_test_subjects": int((subjects["role"] == "test").sum()),
            "evaluate_seconds": round(time.perf_counter() - t0, 1),
        }
    )
    write_json(out / "summary.json", metrics)
    write_metrics(paths.metrics, metrics)
    for c in (c for c in claims.CLAIMS if c.method == NAME):
        print(f"  {c.metric}: {metrics[c.metric]:.3f} (paper's claim {c.op} {claims.target(NAME, c.metric)})")
