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
# # Paper 2 — A latent space for unsupervised MR image quality control (Zuo et al.)
#
# Contrastive 2-D artifact encoder (m in R^2) + RealNVP density; a volume is flagged when its
# density p_M(m) is below the tau = 5 % (or 3 %) percentile of the training densities.
# This notebook only draws what `mriqa stage zuo evaluate` wrote to `results/zuo/`:
# Fig. 3a (z = f(m) of the density set), Fig. 3b (density contours of m with the held-out
# examples A-H and their thumbnails), Fig. 4a (m of the rated test set coloured by rating, with the
# 5 % and 3 % contours), Fig. 4b (contingency tables).

# %% tags=["parameters"]
out_dir = "figures/zuo"
results_dir = "results/zuo"

# %%
import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from mriqa_lib.claims import target
from mriqa_lib.plots import save_table, savefig, style

style()
res = Path(results_dir)
density = pd.read_csv(res / "density.tsv", sep="\t")
rated = pd.read_csv(res / "rated.tsv", sep="\t")
examples = pd.read_csv(res / "examples.tsv", sep="\t")
grid = np.load(res / "density_grid.npz")
thumbs = np.load(res / "thumbs.npz")
summary = json.loads((res / "summary.json").read_text())
taus = [f"{t:g}" for t in grid["taus"]]
thr = dict(zip(taus, grid["thresholds"]))
print(f"density set: {len(density)} volumes; rated set: {len(rated)} volumes; examples: {len(examples)}")

# %% [markdown]
# ## Fig. 3a — z = f(m) of the density-set volumes (should look like N(0, I))

# %%
fig, ax = plt.subplots(figsize=(3.6, 3.4))
ax.scatter(density.z1, density.z2, s=14, c="#0072B2", label="density-set volumes")
t = np.linspace(0, 2 * np.pi, 200)
for r in (1, 2, 3):
    ax.plot(r * np.cos(t), r * np.sin(t), color="0.6", lw=0.7, ls="--")
ax.set_xlabel("$z_1$")
ax.set_ylabel("$z_2$")
ax.set_aspect("equal")
ax.set_title("Fig. 3a: z = f(m)  (circles: 1, 2, 3 sd of N(0, I))")
savefig(fig, out_dir, "fig3a_z_scatter")
print("z mean", density[["z1", "z2"]].mean().round(2).tolist(), "z sd", density[["z1", "z2"]].std().round(2).tolist())

# %% [markdown]
# ## Fig. 3b — density contours of m with the held-out examples A-H
#
# C (bias field) and H (15 mm RMS misalignment) stand for a failed bias correction and a failed
# registration. Where the preparation runs N4 / registration (the paper profile), they are applied
# after that step, on the template grid, since it would otherwise remove them; with both steps off
# (the embedded default) they are applied to the acquired scan like every other artifact.

# %%
fig = plt.figure(figsize=(10, 4.2))
ax = fig.add_axes([0.05, 0.1, 0.42, 0.8])
logp = grid["logp"]
levels = np.linspace(thr[taus[0]] - 8, logp.max(), 9)  # from well below the 5 % level to the mode
cs = ax.contourf(grid["m1"], grid["m2"], logp, levels=levels, cmap="Blues")
ax.contour(grid["m1"], grid["m2"], logp, levels=[thr[taus[0]]], colors="k", linestyles="--", linewidths=1)
ax.scatter(density.m1, density.m2, s=6, c="0.3", label="density set")
for row in examples.itertuples():
    below = row.logp < thr[taus[0]]
    ax.scatter(row.m1, row.m2, s=40, marker="*", c="#D55E00" if below else "#009E73", zorder=5)
    ax.annotate(row.letter, (row.m1, row.m2), xytext=(4, 4), textcoords="offset points", fontsize=10, weight="bold")
ax.set_xlim(grid["m1"][0], grid["m1"][-1])
ax.set_ylim(grid["m2"][0], grid["m2"][-1])
ax.set_xlabel("$m_1$")
ax.set_ylabel("$m_2$")
ax.set_title(f"Fig. 3b: log p(m) contours; dashed: tau = {taus[0]} % threshold")
names = dict(zip(examples.letter, examples.artifact))
for i, (letter, img) in enumerate(zip(thumbs["letters"], thumbs["examples"])):
    a = fig.add_axes([0.52 + (i % 4) * 0.12, 0.52 - (i // 4) * 0.44, 0.11, 0.38])
    a.imshow(img.T, origin="lower", cmap="gray", vmin=0, vmax=1.1, aspect="equal")
    a.set_title(f"{letter}: {names[letter]}", fontsize=7)
    a.set_axis_off()
savefig(fig, out_dir, "fig3b_density_examples")
examples[["letter", "artifact", "severity", "m1", "m2", "logp"]].assign(below_tau5=examples.logp < thr[taus[0]]).round(
    3
)

# %% [markdown]
# ## Fig. 4a — m of the rated test set (green low, orange medium, red high) with the 5 % and 3 % contours

# %%
colours = {"low": "#009E73", "medium": "#E69F00", "high": "#D55E00"}
fig, ax = plt.subplots(figsize=(5, 4))
ax.contour(
    grid["m1"], grid["m2"], logp, levels=sorted(thr.values()), colors=["k", "k"], linestyles=[":", "--"], linewidths=1
)
for rating, c in colours.items():
    sel = rated[rating == rated.rating]
    ax.scatter(sel.m1, sel.m2, s=14, c=c, label=f"{rating} ({len(sel)})", alpha=0.85)
ax.set_xlabel("$m_1$")
ax.set_ylabel("$m_2$")
ax.legend(title="artifact level", loc="best", fontsize=7)
ax.set_title(f"Fig. 4a: rated set; dashed {taus[0]} %, dotted {taus[-1]} % contours")
savefig(fig, out_dir, "fig4a_rated_scatter")

# %% [markdown]
# ## Fig. 4b — contingency tables (medium + high = fail)

# %%
fig, axes = plt.subplots(1, len(taus), figsize=(3.2 * len(taus), 2.2))
axes = np.atleast_1d(axes)
tables = []
for ax, tau in zip(axes, taus):
    flag = rated[f"flag{tau}"].astype(bool)
    table = pd.DataFrame(
        {
            r: [int((flag & (rated.rating == r)).sum()), int((~flag & (rated.rating == r)).sum())]
            for r in ("low", "medium", "high")
        },
        index=["flagged", "passed"],
    )
    ax.imshow(table.to_numpy(), cmap="Greys", vmin=0, vmax=table.to_numpy().max() * 2.5)
    for (i, j), v in np.ndenumerate(table.to_numpy()):
        ax.text(j, i, str(v), ha="center", va="center", fontsize=11)
    ax.set_xticks(range(3), table.columns)
    ax.set_yticks(range(2), table.index)
    sens, spec = summary[f"sensitivity_tau{tau}"], summary[f"specificity_tau{tau}"]
    ax.set_title(f"tau = {tau} %: sens {100 * sens:.1f} %, spec {100 * spec:.1f} %", fontsize=8)
    tables.append(table.reset_index(names="prediction").assign(tau=float(tau)))
savefig(fig, out_dir, "fig4b_contingency")
save_table(pd.concat(tables), out_dir, "contingency")
pd.concat(tables)

# %% [markdown]
# ## Measured vs published
#
# The paper reports (real 569 rated volumes) tau 5 %: sensitivity 91.0 %, specificity 97.8 %;
# tau 3 %: 80.0 % / 99.4 %. The numbers below are the embedded default's, measured on a
# synthetic rated set (val + test subjects, never seen by the encoder or the flow, with simulated artifacts of random type and severity;
# severity bins stand in for the raters' low / medium / high), printed from `results/zuo/summary.json`.
# The embedded cohort has only 36 encoder and density volumes (paper: 200 / 1,400) and 12 rated subjects,
# so every number here moves by several points with the seed.

# %%
keys = [
    k
    for k in summary
    if k.startswith(
        ("sensitivity", "specificity", "auroc", "example_A_above", "examples_BH", "density_set_flagged", "n_")
    )
]
pd.DataFrame({"metric": keys, "value": [summary[k] for k in keys]})

# %%
by_type = rated.groupby(["artifact", "rating"])[f"flag{taus[0]}"].mean().unstack().round(2)
save_table(by_type.reset_index(), out_dir, "flag_rate_by_type")
by_type

# %% [markdown]
# ### What the embedded default does not reproduce
#
# The paper's encoder saw real artifacts among its 200 training volumes and its flow 1,400 volumes;
# here every training volume is clean and synthetic, so the encoder only learns the artifacts it is shown
# as simulated negatives (the paper's noise and motion; by default also blur, ghosting and a bias field,
# `zuo.extra_negatives`). The paper also took slices of other volumes as negatives, which differ in their
# real artifacts; between clean embedded volumes they differ only in site look and anatomy, so the
# latent learned which site it saw, and the corrupted copies of a real scan that looks like no embedded
# site often lay nearer a site's cluster than the scan itself. The embedded default leaves them out
# (`zuo.n_negatives_volume: 0`; the paper profile sets 8). It also sets the
# background to 0 (`zuo.brain_only`), as brain extraction leaves a real scan that `mriqa score` prepares:
# with the noise floor kept, the encoder learned that floor as its main cue, and a prepared real scan
# (Colin27) landed far outside every training latent (log-density about -5e7). The cell below states, from the
# measured numbers, which artifact types of the rated set stay inside the 5 % contour and whether the
# claims' targets (sensitivity and specificity at tau = 5 %, from `mriqa_lib/claims.py`) are met.
#
# The 5 % threshold is about the second-lowest of the 36 training densities, so small changes of the
# flow fit move it, and specificity moves by several points between seeds (and even between runs on 1
# and 2 CPU threads). The last cell asks how much of the gap any threshold could close: it picks the
# threshold on the rated set itself (not a valid result, only an upper bound) so that specificity is
# at least its target, and prints the sensitivity that the encoder's ranking allows at best.

# %%
# the claims are at tau = 5 %; their targets are read from mriqa_lib/claims.py
for metric in ("sensitivity_tau5", "specificity_tau5"):
    goal, value = target("zuo", metric), summary.get(metric)
    verdict = "not measured" if value is None else "met" if value >= goal else "NOT met"
    print(f"{metric}: {value if value is None else round(value, 3)} (target >= {goal:g}: {verdict})")
fails = rated[rated.fail.astype(bool)]
rate = fails.groupby("artifact")[f"flag{taus[0]}"].mean().sort_values()
print("flag rate of failed (medium + high) volumes by artifact type:")
print(rate.round(2).to_string())
missed = examples[(examples.letter != "A") & (examples.logp >= thr[taus[0]])].letter.tolist()
a_ok = bool(examples.loc[examples.letter == "A", "logp"].iloc[0] >= thr[taus[0]])
print(f"held-out examples: A above the threshold: {a_ok}; B-H not below the threshold: {missed or 'none'}")

# %%
# Diagnostic, not a result: the best sensitivity any threshold on log p could reach on this rated
# set with specificity at its target, the threshold chosen on the rated set itself. No change of the
# flow or of tau can beat it; only a better ranking by the encoder can.
spec_goal = target("zuo", "specificity_tau5")
ok = np.sort(rated.loc[~rated.fail.astype(bool), "logp"].to_numpy())
bad = rated.loc[rated.fail.astype(bool), "logp"].to_numpy()
cut = ok[int(np.floor((1 - spec_goal) * len(ok)))]  # flag log p < cut: at most 1 - target of the passes
print(
    f"oracle threshold: specificity {np.mean(ok >= cut):.3f}, sensitivity {np.mean(bad < cut):.3f} "
    f"(actual at tau = {taus[0]} %: {summary[f'specificity_tau{taus[0]}']:.3f} / {summary[f'sensitivity_tau{taus[0]}']:.3f})"
)
