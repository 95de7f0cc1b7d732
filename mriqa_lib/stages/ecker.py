"""DVC entry points of paper 1 (Ecker et al.): SimCLR zero-shot HQ/LQ classification.

synthesize: slices of the training pool (clean = HQ references and SimCLR training data; the same
            slices with simulated motion / noise / respiration = LQ references), and the test sets
            (simulated motion, simulated noise, NAKO-like breath-hold vs free-breathing, continuous
            motion sweep) from held-out subjects only.
train:      SimCLR on the clean pool slices; saves the network and the reference embeddings.
evaluate:   zero-shot classification of every test case against references matched by sex,
            height and weight (within the test scan's site with ecker.match_site);
            metrics/ecker.json and results/ecker/*.tsv for the notebook.
"""
from __future__ import annotations

import shutil
import time

import numpy as np
import pandas as pd

from mriqa_lib.io import load_nifti, read_json, write_json, write_tsv
from mriqa_lib.methods.ecker import data as D
from mriqa_lib.stages.common import MethodPaths, seed_everything, write_metrics

NAME = "ecker"
ARTIFACTS = ("motion", "noise", "respiratory")
COVARIATES = ("sex", "height", "weight", "site")  # what reference matching may use (site: optional)


def _covariates(frame: pd.DataFrame) -> list[str]:
    return [c for c in COVARIATES if c in frame.columns]


def _progress(it, desc: str, total: int | None = None):
    from tqdm import tqdm

    return tqdm(it, desc=desc, total=total, leave=False, mininterval=2.0)


def _subjects(p):
    if p.ukb_dir is not None:
        return D.ukb_subjects(p.ukb_dir, p.ukb_table), False
    return D.embedded_subjects(), True


def _balanced_cases(test_idx: np.ndarray, n_slices: int, n_cases: int, seed: int) -> pd.DataFrame:
    """``n_cases`` (subject, slice, label) triples from held-out subjects; half HQ, half LQ."""
    rng = np.random.default_rng(seed)
    pairs = np.array([(s, j) for s in test_idx for j in range(n_slices)])
    order = np.concatenate([rng.permutation(len(pairs)) for _ in range(int(np.ceil(n_cases / len(pairs))))])[:n_cases]
    labels = np.where(rng.permutation(n_cases) < n_cases // 2, "HQ", "LQ")
    return pd.DataFrame({"subject": pairs[order, 0], "slice": pairs[order, 1], "label": labels,
                         "repeat": np.arange(n_cases) // len(pairs)})


def synthesize(settings) -> None:
    """Write data/synthetic/ecker: pool.npz (HQ + LQ reference slices = training data), the test
    sets test_{motion,noise,nako,continuous}.npz, and their manifests (TSV)."""
    p = settings.ecker
    paths = MethodPaths(NAME)
    seed_everything(p.seed, settings.trainer.threads)
    t0 = time.perf_counter()
    subjects, conform_grid = _subjects(p)
    pool_idx, test_idx = D.split_subjects(subjects, p.n_test_subjects, p.seed)
    print(f"ecker synthesize: {len(subjects)} subjects ({'UK Biobank' if p.ukb_dir else 'embedded'}): "
          f"{len(pool_idx)} training/reference pool, {len(test_idx)} held out -> {paths.synthetic}/")
    raw, spacing = {}, {}
    for i in _progress(range(len(subjects)), "slices"):
        raw[i], spacing[i] = D.volume_slices(load_nifti(subjects["path"].iloc[i]), p, conform_grid)

    # pool: clean slices (HQ references, SimCLR training data) and their LQ versions
    pool = {"hq": [], **{k: [] for k in ARTIFACTS}}
    for i in _progress(pool_idx, "references"):
        pool["hq"].append(D.prepare_slices(raw[i], p))
        pid = subjects["participant_id"].iloc[i]
        for kind in ARTIFACTS:  # one simulated acquisition per subject and artifact
            lq = D.degrade(raw[i], kind, p, D.case_seed(p.seed, "ref", kind, pid), spacing[i])
            pool[kind].append(D.prepare_slices(lq, p))
    out = paths.synthetic
    out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out / "pool.npz", **{k: np.stack(v) for k, v in pool.items()})
    role = np.full(len(subjects), "pool", dtype=object)
    role[test_idx] = "test"
    table = subjects.drop(columns=["path"]).assign(role=role, index=np.arange(len(subjects)))
    write_tsv(out / "subjects.tsv", table)

    # simulated motion / noise tests (held-out subjects only)
    for kind, n_cases in (("motion", p.n_test_motion), ("noise", p.n_test_noise)):
        cases = _balanced_cases(test_idx, p.n_slices, n_cases, p.seed + (1 if kind == "motion" else 2))
        imgs, cache = [], {}
        for row in _progress(cases.itertuples(), f"test {kind}", len(cases)):
            img = raw[row.subject][row.slice]
            if row.label == "LQ":  # one simulated acquisition per subject (and repeat)
                key = (row.subject, row.repeat)
                if key not in cache:
                    pid = subjects["participant_id"].iloc[row.subject]
                    cache[key] = D.degrade(raw[row.subject], kind, p, D.case_seed(p.seed, "test", kind, pid, row.repeat),
                                           spacing[row.subject])
                img = cache[key][row.slice]
            imgs.append(img)
        np.savez_compressed(out / f"test_{kind}.npz", images=D.prepare_slices(np.stack(imgs), p))
        write_tsv(out / f"test_{kind}.tsv", cases.assign(participant_id=subjects["participant_id"].to_numpy()[cases["subject"]]))

    # NAKO-IQA (real) or NAKO-like: breath-hold (clean) vs free-breathing (respiratory motion)
    if p.nako_dir is not None:
        nako = D.nako_subjects(p.nako_dir, p.nako_table)
        imgs = [D.prepare_slices(D.volume_slices(load_nifti(path), p, False)[0], p) for path in _progress(nako["path"], "NAKO-IQA")]
        nako = nako.drop(columns=["path"])
    else:
        rows, imgs = [], []
        for i in test_idx[:20]:
            pid = subjects["participant_id"].iloc[i]
            seed = D.case_seed(p.seed, "nako", pid)  # one breathing phase for the whole volume
            fb = D.degrade(raw[i], "respiratory", p, seed, spacing[i])
            for label, sl in (("HQ", raw[i]), ("LQ", fb)):
                rows.append({"participant_id": pid, "label": label, **subjects.iloc[i][_covariates(subjects)].to_dict()})
                imgs.append(D.prepare_slices(sl, p))
        nako = pd.DataFrame(rows)
    np.savez_compressed(out / "test_nako.npz", images=np.stack(imgs))
    write_tsv(out / "test_nako.tsv", nako)

    # continuous: increasing rotation (deg) and translation (mm) ranges, one motion direction per case
    rows, imgs = [], []
    picks = np.linspace(0, p.n_slices - 1, p.continuous_cases + 2)[1:-1].round().astype(int) if p.n_slices > 2 else np.zeros(p.continuous_cases, int)
    for i in _progress(test_idx, "continuous"):
        pid = subjects["participant_id"].iloc[i]
        seed = D.case_seed(p.seed, "continuous", pid)  # one motion direction per subject
        for level in p.continuous_levels:
            moved = D.degrade(raw[i][picks], "motion", p, seed, spacing[i], level=level)
            for j, img in zip(picks, moved):
                imgs.append(img)
                rows.append({"subject": i, "participant_id": pid, "slice": int(j), "level": level})
    np.savez_compressed(out / "test_continuous.npz", images=D.prepare_slices(np.stack(imgs), p))
    write_tsv(out / "test_continuous.tsv", pd.DataFrame(rows))
    write_json(out / "meta.json", {"conform_grid": conform_grid, "dataset": "ukb" if p.ukb_dir else "embedded",
                                   "nako": "nako-iqa" if p.nako_dir else "embedded-respiratory"})
    # the wall time is printed, not stored: identical data must hash identically for DVC
    print(f"ecker synthesize: done in {time.perf_counter() - t0:.1f} s")


def train(settings) -> None:
    """SimCLR on the clean pool slices -> models/ecker/{simclr.pt, config.json, references.npz}."""
    import torch

    from mriqa_lib.methods.ecker.simclr import embed, train_simclr
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
        net = train_simclr(images, p, settings.trainer, paths.models / "lightning")
    torch.save(net.state_dict(), paths.models / "simclr.pt")
    meta = read_json(paths.synthetic / "meta.json")
    write_json(paths.models / "config.json", {"params": p.model_dump(mode="json"), "feature_dim": net.feature_dim,
                                              "conform_grid": meta["conform_grid"]})
    # reference bank for `mriqa score`: encoder embeddings of the pool (HQ and every LQ kind)
    subjects = pd.read_csv(paths.synthetic / "subjects.tsv", sep="\t", dtype={"participant_id": str})
    refs = subjects[subjects["role"] == "pool"]
    bank = {k: embed(net, pool[k]) for k in ("hq", *ARTIFACTS)}
    np.savez_compressed(paths.models / "references.npz", **bank, participant_id=refs["participant_id"].to_numpy(str),
                        sex=refs["sex"].to_numpy(str), height=refs["height"].to_numpy(float),
                        weight=refs["weight"].to_numpy(float))
    log = paths.models / "lightning" / "logs" / "metrics.csv"
    final_loss = float(pd.read_csv(log)["train_loss"].dropna().iloc[-1]) if log.exists() else float("nan")
    write_metrics(paths.train_metrics, {**cost.result, "epochs": p.epochs, "n_train_slices": int(len(images)),
                                        "final_train_loss": final_loss})


def load_net(model_dir, p=None):
    """The trained SimCLR network (eval mode) and the stored config of ``model_dir``."""
    import torch

    from mriqa_lib.methods.ecker.params import EckerParams
    from mriqa_lib.models.resnet_simclr import SimCLRNet

    cfg = read_json(model_dir / "config.json")
    q = EckerParams(**cfg["params"])
    net = SimCLRNet(1, q.width, q.proj_dim, q.conv1_stride)
    net.load_state_dict(torch.load(model_dir / "simclr.pt", weights_only=True))
    return net.eval(), q, cfg


def _classify(emb: np.ndarray, frame: pd.DataFrame, pool: pd.DataFrame, bank: dict, lq: str, p) -> pd.DataFrame:
    """Zero-shot class, SIM and mean similarities for every case (one slice, or a stack of slices
    of one volume: then similarities are averaged over slices, each against the same position)."""
    from mriqa_lib.methods.ecker.inference import decide, mean_similarities

    hq_all, lq_all = bank["hq"], bank[lq]
    out = []
    for k, row in enumerate(frame.itertuples()):
        refs = D.match_references(pool, getattr(row, "sex", None), getattr(row, "height", None),
                                  getattr(row, "weight", None), p.n_refs, p.match_sex,
                                  getattr(row, "site", None), p.match_site)
        if emb.ndim == 2:  # one slice at position row.slice
            s_hq, s_lq = mean_similarities(emb[k], hq_all[refs, row.slice], lq_all[refs, row.slice])
        else:  # a volume: slices (s, d) vs references (s, m, d)
            s_hq, s_lq = mean_similarities(emb[k], hq_all[refs].transpose(1, 0, 2), lq_all[refs].transpose(1, 0, 2))
        out.append((s_hq, s_lq, ",".join(pool["participant_id"].iloc[refs])))
    res = frame.copy()
    res["sim_hq"] = [o[0] for o in out]
    res["sim_lq"] = [o[1] for o in out]
    res["references"] = [o[2] for o in out]
    res["pred"], res["sim"] = decide(res["sim_hq"].to_numpy(), res["sim_lq"].to_numpy())
    return res


def _binary_metrics(res: pd.DataFrame, prefix: str) -> dict:
    from mriqa_lib import metrics as M

    y, pred = res["label"].to_numpy(), res["pred"].to_numpy()
    sens, spec = M.sensitivity_specificity(y == "LQ", pred == "LQ")
    acc, lo, hi = M.bootstrap_ci((y == pred).astype(float), n_boot=1000)
    return {f"{prefix}_accuracy": acc, f"{prefix}_accuracy_ci95": [lo, hi],
            f"{prefix}_balanced_accuracy": M.balanced_accuracy(y, pred),
            f"{prefix}_sensitivity_lq": sens, f"{prefix}_specificity_hq": spec,
            f"{prefix}_auroc": M.auroc(y == "LQ", res["sim_lq"] - res["sim_hq"]), f"{prefix}_n": int(len(res))}


def evaluate(settings) -> None:
    """Classify every test case; write results/ecker/*.tsv, examples.npz and metrics/ecker.json."""
    from mriqa_lib import metrics as M
    from mriqa_lib.methods.ecker.simclr import embed

    p = settings.ecker
    paths = MethodPaths(NAME)
    seed_everything(p.seed, settings.trainer.threads)
    t0 = time.perf_counter()
    net, _, _ = load_net(paths.models)
    syn = paths.synthetic
    subjects = pd.read_csv(syn / "subjects.tsv", sep="\t", dtype={"participant_id": str})
    pool_tab = subjects[subjects["role"] == "pool"].reset_index(drop=True)
    held_out = set(subjects.loc[subjects["role"] == "test", "participant_id"])
    if held_out & set(pool_tab["participant_id"]):  # never happens by construction; guards edits
        raise RuntimeError("ecker: a held-out test subject is in the training/reference pool")
    pool = np.load(syn / "pool.npz")
    bank = {k: embed(net, pool[k]) for k in ("hq", *ARTIFACTS)}  # (n_pool, n_slices, h)
    out = paths.results
    out.mkdir(parents=True, exist_ok=True)
    where = " of its own site" if p.match_site else ""
    print(f"ecker evaluate: {len(pool_tab)} reference subjects, up to {p.n_refs}{where} matched per test subject -> {out}/")
    metrics: dict = {}
    examples: dict = {}
    meta = subjects.set_index("index")[_covariates(subjects)]

    def with_meta(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.join(meta, on="subject") if "subject" in frame.columns else frame

    for kind in ("motion", "noise"):
        frame = with_meta(pd.read_csv(syn / f"test_{kind}.tsv", sep="\t", dtype={"participant_id": str}))
        imgs = np.load(syn / f"test_{kind}.npz")["images"]
        res = _classify(embed(net, imgs), frame, pool_tab, bank, kind, p)
        write_tsv(out / f"{kind}.tsv", res)
        metrics.update(_binary_metrics(res, kind))
        examples[f"{kind}_hq"] = imgs[np.flatnonzero(res["label"] == "HQ")[:4]]
        examples[f"{kind}_lq"] = imgs[np.flatnonzero(res["label"] == "LQ")[:4]]
    frame = pd.read_csv(syn / "test_nako.tsv", sep="\t", dtype={"participant_id": str})
    imgs = np.load(syn / "test_nako.npz")["images"]  # (cases, slices, S, S)
    res = _classify(embed(net, imgs), frame, pool_tab, bank, p.nako_lq, p)
    write_tsv(out / "nako.tsv", res)  # with the configured LQ references (ecker.nako_lq)
    metrics.update(_binary_metrics(res, "nako"))
    metrics["nako_lq_references"] = p.nako_lq
    nako_emb = embed(net, imgs)
    for lq in ("motion", "respiratory"):  # both reference types, for transparency
        alt = _classify(nako_emb, frame, pool_tab, bank, lq, p)
        write_tsv(out / f"nako_refs-{lq}.tsv", alt)
        metrics.update({k: v for k, v in _binary_metrics(alt, f"nako_refs_{lq}").items()
                        if k.endswith(("_accuracy", "_auroc"))})
    mid = imgs.shape[1] // 2
    examples["nako_hq"] = imgs[np.flatnonzero(res["label"] == "HQ")[:4], mid]
    examples["nako_lq"] = imgs[np.flatnonzero(res["label"] == "LQ")[:4], mid]

    frame = with_meta(pd.read_csv(syn / "test_continuous.tsv", sep="\t", dtype={"participant_id": str}))
    imgs = np.load(syn / "test_continuous.npz")["images"]
    res = _classify(embed(net, imgs), frame, pool_tab, bank, "motion", p)
    write_tsv(out / "continuous.tsv", res)
    per_level = res.groupby("level")[["sim_lq", "sim_hq"]].mean().reset_index()
    metrics["continuous_spearman_level_vs_sim_lq"] = M.spearman(res["level"], res["sim_lq"])
    metrics["continuous_spearman_level_vs_sim_lq_levelmeans"] = M.spearman(per_level["level"], per_level["sim_lq"])
    within = [M.spearman(g["level"], g["sim_lq"]) for _, g in res.groupby(["subject", "slice"])]
    metrics["continuous_spearman_within_case_mean"] = float(np.nanmean(within))
    metrics["continuous_n"] = int(len(res))
    first = res.index[(res["subject"] == res["subject"].iloc[0]) & (res["slice"] == res["slice"].iloc[0])]
    examples["continuous"] = imgs[first]
    examples["continuous_levels"] = res.loc[first, "level"].to_numpy(float)
    np.savez_compressed(out / "examples.npz", **examples)
    metrics.update({"n_references": p.n_refs, "n_pool_subjects": int(len(pool_tab)),
                    "n_test_subjects": int((subjects["role"] == "test").sum()),
                    "evaluate_seconds": round(time.perf_counter() - t0, 1)})
    write_json(out / "summary.json", metrics)
    write_metrics(paths.metrics, metrics)
    for k in ("motion_accuracy", "noise_accuracy", "nako_accuracy", "continuous_spearman_level_vs_sim_lq"):
        print(f"  {k}: {metrics[k]:.3f}")
