# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Paper 5 — Bricout et al.: synthetic-motion SFCN pretraining and QC transfer
#
# Regenerates Table 1 (parameter counts), Fig. 2 (pipeline examples), Table 2 (QC split counts), Fig. 3
# (calibration on synthetic motion, R²), Fig. 4 (test balanced accuracy per seed, transfer vs scratch),
# Table 3 (median balanced accuracy and F1 per class) and Table 4 (training cost) from `results/bricout/`
# (written by `mriqa stage bricout evaluate`). Nothing here is typed in: every number is read from the
# pipeline's results.
#
# **Embedded default, not the paper's data.** AMP SCZ / HCPEP need data-use agreements; the embedded
# default uses the synthetic cohort (6 sites, 2 of them held out for QC) on a 4 mm grid with a narrow
# SFCN and a few CPU epochs. Its QC "scores" come from a hidden per-session degradation (motion, noise,
# ghosting, bias) plus rater noise, scored by quantiles so that classes are as unbalanced as the paper's
# Table 2. The numbers below are therefore a functional check of the method on a small problem, not a
# reproduction of the paper's values (paper: validation R² 0.89, median balanced accuracy 0.41 transfer
# vs 0.35 scratch).

# %% tags=["parameters"]
out_dir = "figures/bricout"
results_dir = "results/bricout"

# %%
import datetime
import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import display

from mriqa_lib.plots import PALETTE, save_table, savefig, style

style()
res = Path(results_dir)
summary = json.loads((res / "summary.json").read_text())


def read(name):
    return pd.read_csv(res / name, sep="\t")


# %% [markdown]
# ## Table 1 — number of parameters
# Paper: encoder 2,950,336; SFCN classifier 2,600; transfer QC 96,083. The paper-width row is computed from the same code at the paper's width and input size.

# %%
t1 = read("parameters.tsv")
save_table(t1, out_dir, "table1_parameters")
t1

# %% [markdown]
# The encoder count of the paper is reproduced exactly. The classifier (1x1x1 conv from 64 channels to
# 50 bins) has 64·50 + 50 = 3,250 parameters; the paper's 2,600 = 64·40 + 40 corresponds to 40 bins, which
# the text (50 bins) does not state. The transfer MLP on the flattened 64x5x6x5 latent with 10 hidden units
# has 96,063 parameters, or 96,083 when BatchNorm's running mean and variance are counted as in the paper.

# %% [markdown]
# ## Fig. 2 — the synthetic-motion pipeline (centre axial slices, one test volume)
#
# The paper lists motion first, then elastic deformation, flip, scaling, bias and gamma (the paper profile keeps
# that order). The embedded default moves elastic, flip and scaling before the motion (`bricout.augment.order:
# spatial_first`): on its 4 mm grid their interpolation blurred the k-space motion artifact and its label no
# longer matched the image. The panels follow the order actually run.

# %%
ex = np.load(res / "pipeline_examples.npz")
info = json.loads((res / "pipeline_examples.json").read_text())
steps = [k[len("ex0_") :] for k in ex.files if k.startswith("ex0_")]  # in pipeline order
n_ex = len(info["examples"])
fig, axes = plt.subplots(n_ex, len(steps), figsize=(1.4 * len(steps), 1.6 * n_ex))
for i in range(n_ex):
    lab = info["examples"][f"ex{i}"]
    for j, s in enumerate(steps):
        ax = axes[i, j]
        img = ex[f"ex{i}_{s}"]
        ax.imshow(img.T, origin="lower", vmin=0, vmax=np.percentile(img, 99.5))
        ax.set_axis_off()
        if i == 0:
            ax.set_title(s)
    axes[i, 0].text(
        -0.1, 0.5, f"RMS {lab['rms']:.2f} mm", transform=axes[i, 0].transAxes, rotation=90, va="center", ha="right"
    )
savefig(fig, out_dir, "fig2_pipeline")

# %% [markdown]
# ## Table 2 — QC data split (classes 1/2, 3, 4)
# Paper: train 7 / 38 / 70, validation 1 / 12 / 26, test 9 / 90 / 125.

# %%
t2 = read("qc_split_counts.tsv")
save_table(t2, out_dir, "table2_qc_split")
syn = read("synthetic_split_counts.tsv")
save_table(syn, out_dir, "table2b_synthetic_split")
display(t2)
syn

# %% [markdown]
# ## Fig. 3 — calibration of the motion estimate on synthetic data

# %%
cal = read("calibration.tsv")
fig, axes = plt.subplots(1, 2, figsize=(7, 3.3), sharex=True, sharey=True)
for ax, split in zip(axes, ["val", "test"]):
    d = cal[cal.split == split]
    ax.scatter(d.rms_true, d.rms_pred, s=6, alpha=0.6, color=PALETTE[0])
    lim = [min(d.rms_true.min(), d.rms_pred.min()) - 0.1, max(d.rms_true.max(), d.rms_pred.max()) + 0.1]
    ax.plot(lim, lim, "k--", lw=0.8)
    ax.set_title(f"{split}: R² = {summary[f'synth_{split}_r2']:.2f} (n = {len(d)})")
    ax.set_xlabel("true RMS (mm)")
axes[0].set_ylabel("predicted RMS (mm)")
savefig(fig, out_dir, "fig3_calibration")

# %% [markdown]
# ## Fig. 4 — QC test balanced accuracy per seed, transfer vs scratch

# %%
per_seed = read("qc_per_seed.tsv")
fig, ax = plt.subplots(figsize=(4.5, 3.2))
for k, (kind, grp) in enumerate(per_seed.groupby("model", sort=False)):
    ax.plot(grp.seed, grp.bal_acc, "o-", label=f"{kind} (median {grp.bal_acc.median():.2f})", color=PALETTE[k])
ax.axhline(1 / 3, color="grey", lw=0.8, ls=":", label="chance")
ax.set_xlabel("seed")
ax.set_ylabel("test balanced accuracy")
ax.set_ylim(0, 1)
ax.legend()
savefig(fig, out_dir, "fig4_seeds")
per_seed

# %% [markdown]
# ## Table 3 — median balanced accuracy and F1 per class over seeds
# Paper: pretrained 0.41 (F1 0.13 / 0.34 / 0.68), scratch 0.35 (F1 0.00 / 0.20 / 0.70).

# %%
cols = ["bal_acc", "f1_1/2", "f1_3", "f1_4"]
t3 = per_seed.groupby("model", sort=False)[cols].median().reset_index()
t3.insert(1, "n_seeds", per_seed.groupby("model", sort=False).size().to_numpy())
save_table(t3.round(3), out_dir, "table3_median_scores")
t3.round(3)

# %% [markdown]
# ## Table 4 — training cost (pretrain / transfer / scratch)
# Paper (A100): pretrain 39.54 GB, 403.94 W, 25:28:56; transfer 2.50 GB, 76.79 W, 00:03:02; scratch 37.41 GB, 373.29 W, 00:19:29. Memory is the accelerator's peak when one was used, else the process's peak RSS; power is reported only when NVML is present. Transfer and scratch durations are for all seeds (per seed in the last column).

# %%
cost = json.loads((res / "cost.json").read_text())
rows = []
for kind, c in cost.items():
    mem = c.get("peak_gpu_memory_mb", c.get("peak_cpu_rss_mb"))
    rows.append(
        {
            "stage": kind,
            "device": c.get("device"),
            "max memory (GB)": round(mem / 1024, 3) if mem is not None else None,
            "memory kind": "accelerator" if "peak_gpu_memory_mb" in c else "process RSS",
            "max power (W)": c.get("peak_power_w", "n/a"),
            "duration": str(datetime.timedelta(seconds=round(c["wall_seconds"]))),
            "duration per seed (s)": c.get("wall_seconds_per_seed", c["wall_seconds"]),
        }
    )
t4 = pd.DataFrame(rows)
if {"transfer", "scratch"} <= set(cost):
    dec = 1 - cost["transfer"]["wall_seconds"] / cost["scratch"]["wall_seconds"]
    print(f"duration decrease transfer vs scratch: {100 * dec:.1f} % (paper 94.00 %)")
save_table(t4, out_dir, "table4_cost")
t4

# %% [markdown]
# **What the embedded run can and cannot show.** The CPU setting trains for a few epochs on a few hundred
# 4 mm volumes, so the pretraining R² and the QC accuracies are those of a small model on a small synthetic
# problem; Table 4's memory is process RSS (no accelerator, no NVML power). The relative claims of the paper
# (transfer ≥ scratch, transfer much cheaper than pretraining and scratch) are what the embedded run checks;
# the measured values are printed above.
# The values are one run with the default seed, and they move a lot between seeds: with the cohort's
# held-out subjects kept out of the synthesis training (the split fix), seeds 0, 1 and 2 gave a
# synthetic-motion R² of 0.42, 0.76 and 0.62 and a transfer-minus-scratch median balanced accuracy of
# -0.05, 0.17 and 0.21 (`python benchmarks/seeds.py bricout --seeds 0 1 2`), so the default seed is the
# weakest of the three and one seed decides neither claim. Those three runs predate the per-subject
# randomisation of the embedded cohort (sharper tissue borders, contrast, slice thickness, noise); with
# it the default seed gives the values printed above, and its seed spread was not measured again.
