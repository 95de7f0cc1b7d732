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
# # Generalisation: a site no model has seen, and a real scan
#
# Models trained on the embedded cohort gave chance-level answers on real scans. This notebook asks the question on two kinds of input, without tuning anything to them:
#
# 1. **A held-out site of the embedded cohort** (`mriqa stage generalisation`, read from `results/generalisation/`): every method is trained again without one site, then every subject of that site, clean and with the benchmark's artifacts at three severities, is scored three ways: by the site-out models as they are; by the same models calibrated with five clean scans of that site, cross-fitted so that a subject is never among its own calibration's scans (the site's eight subjects fall into three folds, each calibrated with five of the others) (`mriqa calibrate`: for P1 the site's scans become the HQ references, for P2 the encoder is fine-tuned on them and their simulated artifacts (`zuo.finetune_steps`) and the density refitted on their latents, for P3 and P5 only a z-score is added, which cannot change a ranking within the site); and, for reference, by the pipeline's own in-site models, on the site's test and validation subjects only (they trained on the rest). A pair is a subject's clean scan and one corrupted copy; it is ranked right when the copy's badness is higher.
# 2. **A real scan** (Colin27, 1 mm T1w from Debian's `mricron-data`) and its corrupted copies, scored by `benchmarks/real_scans.py`. That check is not a DVC stage (the scan lives outside the repository); its table is the one the script wrote into the README.
#
# Caveats, plainly: each number rests on about fifty pairs, so one pair moves it by 0.02, and the pairs of a subject share its clean scan, so they are not independent: every pairs-right figure carries a 95 % interval from resampling the site's *subjects* (`generalisation.n_boot` resamples), and calibration's effect is the paired difference over the same volumes, with its own interval. Before every subject of the site was scored, it was scored on its test and validation subjects only, two clean scans for all fifty pairs, and one of them (sub-016), which the P2 encoder places far from the others, decided half of them; every subject of the site now carries about six pairs. The in-site reference still has two subjects and about thirteen pairs; the site-out models are trained with the `generalisation.train_overrides` settings (see `params.yaml`), the in-site ones with the pipeline's; and the embedded sites differ only in contrast, voxel size, bias and noise of one template (each subject's look randomised around its site's: sharper tissue borders, contrast, slice thickness, noise level), which is a far smaller step than a real scanner. That per-subject randomisation also makes five clean scans a noisy sample of a site: P2's calibrated density, fitted on five latents, can rank worse than the site-out model's own, and the first table shows when it does.

# %% tags=["parameters"]
results_dir = "results/generalisation"
out_dir = "figures/generalisation"
readme = "README.md"

# %%
import os
import re

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from mriqa_lib.generalisation import WAYS, pair_outcomes
from mriqa_lib.methods import registry
from mriqa_lib.plots import save_table, savefig, style

style()
os.makedirs(out_dir, exist_ok=True)
scores = pd.read_csv(f"{results_dir}/scores.tsv", sep="\t")
summary = pd.read_csv(f"{results_dir}/summary.tsv", sep="\t")
effect = pd.read_csv(f"{results_dir}/calibration_effect.tsv", sep="\t")
methods = [m for m in registry.names() if m in set(summary.method)]
print("held-out sites:", sorted(summary.site.unique()), "| subjects:", sorted(scores.subject.unique()))
print(len(scores), "scored volumes over", len(WAYS), "ways; methods:", methods)

# %% [markdown]
# ## Pairs ranked right and AUROC, per method and way
#
# `pairs_right_low` and `pairs_right_high` bound the subject-bootstrap 95 % interval of `pairs_right`; with fewer than five subjects (the in-site way's two) there is none, since resampling two subjects spans only their few mixtures.

# %%
stats = ["pairs_right", "pairs_right_low", "pairs_right_high", "auroc"]
table = (
    summary.pivot_table(index=["site", "method"], columns="way", values=stats).reindex(columns=stats, level=0).round(3)
)
table = table.reindex(columns=list(WAYS), level=1)
save_table(table.reset_index(), out_dir, "generalisation_table")
table

# %%
fig, axes = plt.subplots(1, 2, figsize=(9, 3.2), sharey=True)
width = 0.8 / len(WAYS)
x = np.arange(len(methods))
for ax, stat, label in zip(axes, ("pairs_right", "auroc"), ("pairs ranked right", "AUROC clean vs corrupted")):
    mean = summary.groupby(["method", "way"])[stat].mean()
    for i, way in enumerate(WAYS):
        height = np.array([mean.get((m, way), np.nan) for m in methods])
        err = None
        if stat == "pairs_right" and summary.site.nunique() == 1:  # one site: its subject-bootstrap interval
            rows = summary[summary.way == way].set_index("method").reindex(methods)
            err = np.abs(rows[["pairs_right_low", "pairs_right_high"]].to_numpy().T - height)
        ax.bar(x + (i - 1) * width, height, width, yerr=err, capsize=2, label=way)
    ax.axhline(0.5, color="grey", lw=0.8, ls=":")
    ax.set_xticks(x, [m + (" (full-ref.)" if registry.get(m).full_reference else "") for m in methods], rotation=30)
    ax.set_ylim(0, 1)
    ax.set_ylabel(label)
fig.legend(
    *axes[0].get_legend_handles_labels(), loc="lower center", ncol=len(WAYS), fontsize=7, bbox_to_anchor=(0.5, -0.2)
)
fig.suptitle("Held-out site: " + ", ".join(sorted(summary.site.unique())))
savefig(fig, out_dir, "held_out_site")

# %% [markdown]
# ## Which artifacts a method misses on the held-out site
#
# Pairs ranked right per artifact (all severities), site-out models without and with calibration.

# %%
specs = registry.methods()


def pairs_by_artifact(rows: pd.DataFrame, method: str) -> pd.Series:
    return pair_outcomes(rows, specs[method].badness, specs[method].badness_sign).groupby("artifact").right.mean()


artifacts = sorted(a for a in scores.artifact.unique() if a != "clean")
fig, axes = plt.subplots(1, 2, figsize=(0.45 * len(artifacts) * 2 + 3, 0.45 * len(methods) + 1.8), sharey=True)
for ax, way in zip(axes, WAYS[:2]):
    rows = scores[scores.way == way]
    grid = pd.DataFrame({m: pairs_by_artifact(rows, m) for m in methods}).T.reindex(columns=artifacts)
    im = ax.imshow(grid.values, cmap="RdYlGn", vmin=0, vmax=1, aspect="auto", interpolation="nearest")
    ax.set_xticks(range(len(artifacts)), artifacts, rotation=60, ha="right", fontsize=6)
    ax.set_yticks(range(len(methods)), methods)
    ax.set_title(way, fontsize=9)
fig.colorbar(im, ax=axes, label="pairs ranked right")
savefig(fig, out_dir, "pairs_by_artifact")

# %% [markdown]
# ## What calibration changed
#
# Pairs ranked right with calibration minus without, over the same volumes, with the subject-bootstrap 95 % interval of that paired difference. Only methods whose calibration replaces part of the model (P1's references, P2's encoder and density) can move; for the others it must be zero. An interval that holds zero means this site cannot tell whether calibration helped.

# %%
effect.set_index(["site", "method"]).round(3)

# %% [markdown]
# ## The real scan (Colin27)
#
# The table `benchmarks/real_scans.py --readme` wrote (pairs ranked right per method, Spearman with the injected motion RMS, and P5's predicted motion RMS). No calibration is possible with one subject.

# %%
text = open(readme).read()
block = re.search(r"<!-- real-scans-table:.*?-->\n(.*?)<!-- /real-scans-table -->", text, re.S)
print(
    block.group(1).strip() if block else "README has no real-scan table: run `python benchmarks/real_scans.py --readme`"
)
