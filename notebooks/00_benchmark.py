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
# # Cross-method benchmark: all five methods on one test set
#
# What no single paper shows: the five methods side by side on the same held-out embedded subjects, each clean and with every artifact of the library at three severities. Everything here is read from `results/benchmark/` (written by `mriqa stage benchmark`).
#
# Caveats, plainly: the test set is small (a handful of synthetic subjects), every method was trained on the embedded default for minutes on a CPU, and P4 (SSFD) is a full-reference metric that sees the clean scan; its column is not comparable with the others.

# %% tags=["parameters"]
results_dir = "results/benchmark"
out_dir = "figures/benchmark"

# %%
import os

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from mriqa_lib.methods import registry
from mriqa_lib.plots import save_table, savefig, style

style()
os.makedirs(out_dir, exist_ok=True)
scores = pd.read_csv(f"{results_dir}/scores.tsv", sep="\t")
summary = pd.read_csv(f"{results_dir}/summary.tsv", sep="\t")
methods = list(dict.fromkeys(summary.method))
artifacts = sorted(summary.artifact.unique())
print(len(scores), "volumes;", methods)

# %% [markdown]
# ## Table: AUROC (clean vs corrupted), Spearman rho with severity, seconds per volume

# %%
table = summary.copy()
for c in ("auroc", "spearman", "seconds_per_volume"):
    table[c] = table[c].round(3)
save_table(table, out_dir, "benchmark_table")
table.pivot(index="artifact", columns="method", values="auroc")

# %% [markdown]
# ## AUROC heat map (method x artifact)

# %%
pivot = summary.pivot(index="method", columns="artifact", values="auroc").reindex(index=methods, columns=artifacts)
fig, ax = plt.subplots(figsize=(0.55 * len(artifacts) + 2, 0.5 * len(methods) + 1.6))
im = ax.imshow(pivot.values, cmap="RdYlGn", vmin=0, vmax=1, aspect="auto", interpolation="nearest")
ax.set_xticks(range(len(artifacts)), artifacts, rotation=60, ha="right")
ax.set_yticks(range(len(methods)), [m + (" (full-ref.)" if registry.get(m).full_reference else "") for m in methods])
for i in range(len(methods)):
    for j in range(len(artifacts)):
        v = pivot.values[i, j]
        ax.text(j, i, "-" if np.isnan(v) else f"{v:.2f}", ha="center", va="center", fontsize=6)
fig.colorbar(im, ax=ax, label="AUROC clean vs corrupted")
savefig(fig, out_dir, "auroc_heatmap")

# %% [markdown]
# ## Severity-response curves
#
# Each method's badness score (the column `mriqa score` ranks by; sign flipped where lower means worse), z-scored over the clean volumes, against the severity level (0 = clean). Mean over subjects.

# %%
ncol = 6
nrow = int(np.ceil(len(artifacts) / ncol))
fig, axes = plt.subplots(nrow, ncol, figsize=(2.2 * ncol, 2.0 * nrow), sharey=True, squeeze=False)
clean = scores[scores.artifact == "clean"]
for ax, art in zip(axes.flat, artifacts):
    sub = pd.concat([clean, scores[scores.artifact == art]])
    for m in methods:
        col, sign = registry.get(m).badness, registry.get(m).badness_sign
        if col not in sub:
            continue
        ref = sign * clean[col]
        z = (sign * sub[col] - ref.mean()) / (ref.std() + 1e-9)
        curve = z.groupby(sub.severity_level).mean()
        ax.plot(curve.index, curve.values, marker="o", ms=3, label=m)
    ax.set_title(art, fontsize=8)
    ax.set_xticks(sorted(sub.severity_level.unique()))
for ax in axes.flat[len(artifacts) :]:
    ax.set_axis_off()
axes[0, 0].set_ylabel("badness (z vs clean)")
axes[0, 0].legend(fontsize=6)
fig.supxlabel("severity level (0 = clean)")
savefig(fig, out_dir, "severity_response")

# %% [markdown]
# ## Runtime per volume (CPU that ran the stage)

# %%
secs = summary.groupby("method").seconds_per_volume.mean().reindex(methods)
fig, ax = plt.subplots(figsize=(4.5, 2.6))
ax.bar(secs.index, secs.values)
ax.set_ylabel("seconds per volume")
for i, v in enumerate(secs.values):
    ax.text(i, v, f"{v:.2f}", ha="center", va="bottom", fontsize=7)
savefig(fig, out_dir, "runtime")
