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
# # Paper 3 — image quality as reconstruction uncertainty (Shaw et al.)
#
# A residual 3-D U-Net with a mean and a log-variance head is trained (heteroscedastic loss, Eq. 1)
# to recover clean scans from simulated k-space artefacts (motion, ghosting, spike, Rician noise).
# Its predicted standard deviation sigma is read as the *non-recoverable* part of the corruption.
# A multi-task variant adds a grey-matter segmentation decoder with an uncertainty-weighted
# cross-entropy (Eq. 2), trained as its own network on both tasks and the same k-space artefacts,
# as in the paper. (Fine-tuning it from the reconstruction model, a CPU shortcut tried first, left
# the segmentation sigma as sensitive to local noise as the reconstruction sigma: the shared
# encoder had learnt noise features for the reconstruction task only.) This notebook only draws what `mriqa stage shaw evaluate` wrote to
# `results/shaw/`; it regenerates Fig. 3, 4, 5, 7 and 8 into `figures/shaw/`.

# %% tags=["parameters"]
out_dir = "figures/shaw"
results_dir = "results/shaw"

# %%
import json
from pathlib import Path

import matplotlib.pyplot as plt
import nibabel as nib
import numpy as np
import pandas as pd
from IPython.display import display

from mriqa_lib.claims import target
from mriqa_lib.plots import PALETTE, save_table, savefig, show_slice, style

style()
res = Path(results_dir)
summary = json.loads((res / "summary.json").read_text())
exp1 = pd.read_csv(res / "exp1_noise_levels.tsv", sep="\t", dtype={"subject_id": str})
r2 = pd.read_csv(res / "exp1_r2.tsv", sep="\t", dtype={"subject_id": str})


def load(p):
    return np.asarray(nib.load(str(p)).dataobj, dtype=np.float32)


{k: summary[k] for k in summary if k.startswith(("exp1_r2", "exp1_slope", "exp2_frac", "exp3_", "n_test"))}

# %% [markdown]
# ## Fig. 3 — median sigma vs reconstruction error over 41 Rician noise levels
#
# Each point is one noise level (SNR from 10 dB to -10 dB) of one test scan; bars span the 1st to
# 3rd quartile of sigma over the foreground. The noise is drawn as the training inputs' is: on the
# scan's 2 mm grid, then block-averaged to the 4 mm working grid and normalised. The error is ||recon - clean||^2 over the foreground.
# R^2 is that of the least-squares line, per scan (paper: example 0.909, mean 0.851 over 21 scans,
# range 0.736-0.964). R^2 is blind to the line's direction, so the slope is printed too: in the paper
# sigma *rises* with the error.

# %%
example = r2["subject_id"].iloc[0]
g = exp1[exp1["subject_id"] == example]
fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), gridspec_kw={"width_ratios": [1.4, 1]})
ax = axes[0]
sc = ax.scatter(g["error_fg"], g["sigma_median"], c=g["snr_db"], cmap="viridis", s=14, zorder=3)
ax.errorbar(
    g["error_fg"],
    g["sigma_median"],
    yerr=[g["sigma_median"] - g["sigma_q1"], g["sigma_q3"] - g["sigma_median"]],
    fmt="none",
    ecolor="0.6",
    elinewidth=0.8,
    zorder=2,
)
coef = np.polyfit(g["error_fg"], g["sigma_median"], 1)
xs = np.linspace(g["error_fg"].min(), g["error_fg"].max(), 50)
ax.plot(xs, np.polyval(coef, xs), color=PALETTE[1], lw=1)
ax.set_xlabel("||recon - clean||$^2$ (foreground)")
ax.set_ylabel("median $\\sigma$ (Q1-Q3 bars)")
ax.set_title(f"{example}: R$^2$ = {r2['r2'].iloc[0]:.3f}, slope {r2['slope'].iloc[0]:+.2g}")
fig.colorbar(sc, ax=ax, label="SNR (dB)")
ax = axes[1]
ax.bar(range(len(r2)), r2["r2"], color=PALETTE[0])
ax.axhline(r2["r2"].mean(), color=PALETTE[1], ls="--", lw=1, label=f"mean {r2['r2'].mean():.3f}")
ax.axhline(0.851, color="0.5", ls=":", lw=1, label="paper mean 0.851")
ax.set_xticks(range(len(r2)), r2["subject_id"], rotation=60)
ax.set_ylim(0, 1)
ax.set_ylabel("R$^2$ per test scan")
ax.legend(loc="lower right")
savefig(fig, out_dir, "fig3_sigma_vs_error")
save_table(r2.round(4), out_dir, "table_exp1_r2")

# %% [markdown]
# ## Fig. 4 — total uncertainty on test-retest pairs (artefact vs clean)
#
# Total uncertainty = sum of sigma over the field of view x voxel volume (mL). Lines join the two
# scans of a pair; colours give the artefact of the "containing artefacts" scan.

# %%
pairs_file = res / "exp2_pairs.tsv"
if pairs_file.exists():
    exp2 = pd.read_csv(pairs_file, sep="\t", dtype={"subject_id": str})
    fig, ax = plt.subplots(figsize=(4.6, 3.6))
    kinds = sorted(exp2["artefact"].unique())
    for _, r in exp2.iterrows():
        col = PALETTE[kinds.index(r["artefact"]) % len(PALETTE)]
        ax.plot(
            [0, 1], [r["clean_total_sigma"], r["artefact_total_sigma"]], color=col, alpha=0.7, lw=1, marker="o", ms=3
        )
    for k in kinds:
        ax.plot([], [], color=PALETTE[kinds.index(k) % len(PALETTE)], label=k)
    ax.boxplot([exp2["clean_total_sigma"], exp2["artefact_total_sigma"]], positions=[-0.25, 1.25], widths=0.2)
    ax.set_xticks([0, 1], ["clean (retest)", "artefact (test)"])
    ax.set_yscale("log")
    ax.set_ylabel("total $\\sigma$ (normalised intensity x mL)")
    ax.set_title(f"artefact > clean in {exp2['artefact_above_clean'].mean():.0%} of {len(exp2)} pairs")
    ax.legend(fontsize=7, loc="upper left")
    savefig(fig, out_dir, "fig4_total_uncertainty_pairs")
    save_table(exp2.round(4), out_dir, "table_exp2_pairs")
    # how far above clean, per artefact: a ratio near 1 is a narrow pass, not a detection
    ratio = (exp2["artefact_total_sigma"] / exp2["clean_total_sigma"]).groupby(exp2["artefact"])
    print(ratio.agg(["count", "min", "median", "max"]).round(3).rename_axis("artefact / clean total sigma"))
else:
    print("no pairs in results/shaw (no pairs table given)")

# %% [markdown]
# ## Fig. 5 — reconstruction uncertainty maps on test-retest pairs
#
# Central axial slice of the scan and its sigma map (NIfTI copies in `results/shaw/maps/pairs/`,
# on the scans' own grid, open them in any viewer).

# %%
maps = res / "maps" / "pairs"
stems = sorted(p.name.removesuffix("_clean.nii.gz") for p in maps.glob("pair-*_clean.nii.gz"))[:4]
if stems:
    fig, axes = plt.subplots(len(stems), 4, figsize=(8, 2.1 * len(stems)), squeeze=False)
    for row, stem in zip(axes, stems):
        kind = exp2.set_index("pair").loc[stem, "artefact"] if pairs_file.exists() else ""
        ims = [
            load(maps / f"{stem}_artefact.nii.gz"),
            load(maps / f"{stem}_artefact_sigma.nii.gz"),
            load(maps / f"{stem}_clean.nii.gz"),
            load(maps / f"{stem}_clean_sigma.nii.gz"),
        ]
        vmax = max(np.percentile(ims[1], 99.5), np.percentile(ims[3], 99.5))
        show_slice(row[0], ims[0], title=f"{stem} artefact ({kind})", vmax=1.2)
        show_slice(row[1], ims[1], title="$\\sigma$ artefact", cmap="magma", vmax=vmax)
        show_slice(row[2], ims[2], title="clean", vmax=1.2)
        show_slice(row[3], ims[3], title="$\\sigma$ clean", cmap="magma", vmax=vmax)
    savefig(fig, out_dir, "fig5_uncertainty_maps_pairs")

# %% [markdown]
# ## Fig. 7 — multi-task network under partial noise
#
# From left to right: input with noise in a box, recovered image, reconstruction sigma,
# grey-matter segmentation (probability), segmentation sigma; top row the clean input.

# %%
m3 = res / "maps" / "exp3"
# subject ids may hold underscores (ADNI PTIDs such as 023_S_1288): strip the suffix, never split
subs = sorted(p.name.removesuffix("_partial_noise_input.nii.gz") for p in m3.glob("*_partial_noise_input.nii.gz"))
if subs:
    sub = subs[0]
    fig, axes = plt.subplots(2, 5, figsize=(10, 4.4))
    titles = ["input", "recovered", "recon $\\sigma$", "GM segmentation", "segmentation $\\sigma$"]
    vols = {
        c: [load(m3 / f"{sub}_{c}_{n}.nii.gz") for n in ("input", "recon", "sigma", "seg", "segsigma")]
        for c in ("clean", "partial_noise")
    }
    box = json.loads(
        pd.read_csv(res / "exp3_partial_noise.tsv", sep="\t", dtype={"subject_id": str})
        .set_index("subject_id")
        .loc[sub, "box"]
        .iloc[0]
    )
    z = (box[2][0] + box[2][1]) // 2  # axial slice through the centre of the noisy box
    vmax_r = np.percentile(vols["partial_noise"][2], 99.5)
    vmax_s = np.percentile(np.concatenate([vols[c][4].ravel() for c in vols]), 99.5)
    for row, cond in zip(axes, ("clean", "partial_noise")):
        v = vols[cond]
        for j, (ax, im) in enumerate(zip(row, v)):
            kw = (
                {"vmax": 1.2}
                if j < 2
                else {"cmap": "magma", "vmax": vmax_r}
                if j == 2
                else {"cmap": "viridis", "vmax": 1.0}
                if j == 3
                else {"cmap": "magma", "vmax": vmax_s}
            )
            show_slice(ax, im, index=z, title=f"{cond}: {titles[j]}" if j == 0 else titles[j], **kw)
    savefig(fig, out_dir, "fig7_multitask_partial_noise")

# %% [markdown]
# ## Fig. 8 — total uncertainty of the multi-task network, clean vs partial noise
#
# Totals over the foreground, each divided by the scan's clean value (relative rise = ratio - 1).

# %%
f3 = res / "exp3_partial_noise.tsv"
if f3.exists():
    exp3 = pd.read_csv(f3, sep="\t", dtype={"subject_id": str})
    wide = exp3.pivot(index="subject_id", columns="condition", values=["recon_total_sigma", "seg_total_sigma"])
    fig, axes = plt.subplots(1, 2, figsize=(8.4, 3.4))
    for ax, col, name in zip(axes, ["recon_total_sigma", "seg_total_sigma"], ["reconstruction", "segmentation"]):
        ax.boxplot([wide[col]["clean"], wide[col]["partial_noise"]], widths=0.5)
        for s in wide.index:
            ax.plot(
                [1, 2], [wide[col]["clean"][s], wide[col]["partial_noise"][s]], color="0.6", lw=0.8, marker="o", ms=3
            )
        ax.set_xticks([1, 2], ["clean", "partial noise"])
        ax.set_ylabel(f"total {name} $\\sigma$ (foreground, x mL)")
        rise = (wide[col]["partial_noise"] / wide[col]["clean"] - 1).mean()
        ax.set_title(f"{name}: mean relative rise {rise:+.0%}")
    savefig(fig, out_dir, "fig8_multitask_total_uncertainty")
    table = (
        exp3.groupby("condition")[
            ["recon_total_sigma", "seg_total_sigma", "recon_sigma_in_box", "seg_sigma_in_box", "gm_dice"]
        ]
        .mean()
        .reset_index()
    )
    save_table(table.round(4), out_dir, "table_exp3_partial_noise")
    display(table)

# %% [markdown]
# ## What the embedded default shows, and what it cannot
#
# **Training with Eq. 1 as published learned nothing at this length.** With Eq. 1, a learning rate
# of 2e-3 and a start at log sigma^2 = -6, 400 steps left the network at the identity (reconstruction
# error = input error) with a near-constant sigma: 86 % of first-layer units were inactive after 20 steps,
# and exactly clean voxels (clean inputs, zero background), whose 1/sigma^2 weight grows without
# bound as sigma falls, took all the weight. Its sigma even *fell* as the noise grew (0.033 at 10 dB,
# 0.013 at -10 dB), and experiment 1 still reported R^2 = 0.85, since a falling line fits as well:
# hence the slope row below. Lower learning rates (2e-4, 5e-4), instance normalisation, a wider
# LeakyReLU, a higher sigma floor, a 20x learning rate for the heads and 1600 steps were tried; only
# the 1600 steps learned the noise. The embedded default now weights Eq. 1 by sigma^2 (beta-NLL with
# beta = 1, Seitzer et al. 2022: the mean gets the squared-error gradient, sigma^2 regresses onto the
# squared residual; same optimum as Eq. 1), starts unsure (log sigma^2 = -3) and learns at 1e-3
# (at 2e-3 the clean scan's reconstruction was 4x worse than its input); the paper profile
# keeps Eq. 1 (`nll_beta: 0`). With it, sigma follows the Rician noise it was trained on (on a test
# scan: 0.006 at 25 dB, 0.16 at 10 dB, 0.20 at 0 dB, against residuals of 0.015, 0.06 and 0.15), but
# at 400 steps not motion, ghosting or spikes, whose sigma stays at the clean scan's; and it reads
# the noise partly from the Rician floor it puts in the background: zero-mean Gaussian noise,
# which leaves the background at zero on average, lowers sigma in the held-out-site evaluation.
#
# The embedded run is a CPU-sized stand-in: 48 synthetic subjects instead of 272 ADNI scans, a
# 4 mm grid, a small U-Net trained on patches for a few hundred steps instead of 50k iterations,
# and simulated test-retest pairs (two acquisitions of one subject in slightly different head
# positions, one with a random k-space artefact, both rigidly re-aligned by SimpleITK so that both
# carry the same interpolation smoothing, which lowers sigma) instead of ADNI's rater-labelled pairs. So
# Fig. 4 cannot show the paper's finding that some "clean" scans hold artefacts missed by raters,
# and misalignment is removed by registration rather than being a confound of training. The
# numbers below are read from `results/shaw/summary.json`. Experiment 2 is measured on subjects the
# network never saw: the pairs are built from the cohort's held-out test subjects (the benchmark's),
# which `mriqa_lib.data.splits` keeps out of training and validation. With Eq. 1 (before beta-NLL)
# the fraction of pairs with the artefact scan above its clean partner was 35 % on seed 0, and
# 55 %, 95 % and 30 % over seeds 0, 1 and 2 before the training artefacts moved to the 2 mm grid;
# with beta-NLL it was 100 %, 55 % and 95 % over seeds 0, 1 and 2
# (`python benchmarks/seeds.py shaw --seeds 0 1 2`): the paper's >= 90 % holds on two seeds of
# three, so it is not a stable result of this training length. Experiments 1 and 3 draw their noise
# as the training inputs are made (on the 2 mm grid, then block-averaged to 4 mm and normalised).
# Until issue 18's last change they drew it on the 4 mm grid, where -10 dB is far stronger than any
# noise the network trained on: sigma then rose with the error up to about 2.5 dB and fell beyond, so
# the line over all 41 levels sloped down (R^2 0.786, smallest slope -3.7e-7 on seed 0), which R^2
# alone would hide. Drawn as in training, sigma rises with the error from 10 dB to about 6 dB and then
# stays flat (near 0.19 on seed 0) while the error keeps growing several times over, as the
# network removes little of the noise (its error stays close to the input's): the slope is positive
# but the line explains little (Fig. 3 and the table give this run's R^2). Sigma saturating there is a
# limit of this short training, not something the embedded data hide.
# Noise and spike pairs are detected more reliably than motion and ghosting: the ratios printed under
# Fig. 4 put motion pairs near 1, on either side of it. Probes outside the pipeline applied motion of
# growing strength to the test volumes: the model raised its total sigma only by a few per cent at the
# strongest motion, or even lowered it while its error grew (the 4 mm model reads a blurred image as
# an easier one). The training artefacts are now drawn on the 2 mm reference grid and then
# block-averaged, as a scored scan is prepared (`corrupt_as_scanned`): drawn on the 4 mm grid they were
# several times stronger than anything a scored scan shows. That change made the held-out-site and
# real-scan rankings better (issue 18) but weakened experiments 2 and 3 on the embedded default: before
# it, with the multi-task model trained for 800 steps, experiment 3 held on seeds 0, 1 and 2; the line
# under the table says whether it holds for this run. For
# experiment 3 the paper's claim is that reconstruction sigma rises under partial noise while the
# segmentation sigma stays roughly constant; the line under the table says whether this run's
# relative rises of total sigma bear that out. Read it with Fig. 7: at this training length the
# network does not remove the heavy (0 dB) box noise, the segmentation degrades inside the box and
# its sigma rises there too, though far less than the reconstruction sigma (both ratios are printed
# under the table); in the paper's Fig. 7 segmentation is largely unaffected.

# %%
rows = [
    ("Exp. 1: mean R^2 (sigma vs error)", summary.get("exp1_r2_mean"), "0.851 (0.736-0.964)"),
    ("Exp. 1: smallest slope of sigma vs error", summary.get("exp1_slope_min"), "positive (Fig. 3)"),
    (
        "Exp. 1: R^2 range",
        f"{summary.get('exp1_r2_min', float('nan')):.3f}-{summary.get('exp1_r2_max', float('nan')):.3f}",
        "0.736-0.964",
    ),
    (
        "Exp. 2: pairs with artefact total sigma > clean",
        summary.get("exp2_frac_artefact_above_clean"),
        "higher overall (Fig. 4)",
    ),
    ("Exp. 3: relative rise of reconstruction sigma", summary.get("exp3_recon_sigma_rise"), "rises (Fig. 8)"),
    ("Exp. 3: relative rise of segmentation sigma", summary.get("exp3_seg_sigma_rise"), "roughly constant (Fig. 8)"),
    (
        "Exp. 3: GM Dice clean / partial noise",
        f"{summary.get('exp3_gm_dice_clean', float('nan')):.3f} / {summary.get('exp3_gm_dice_partial_noise', float('nan')):.3f}",
        "largely unaffected",
    ),
]
comparison = pd.DataFrame(rows, columns=["quantity", "embedded (measured)", "paper"])
comparison["embedded (measured)"] = [
    f"{v:.3f}" if isinstance(v, float) else v for v in comparison["embedded (measured)"]
]
save_table(comparison, out_dir, "table_paper_vs_embedded")
r, s_ = summary.get("exp3_recon_sigma_rise"), summary.get("exp3_seg_sigma_rise")
if r is not None and s_ is not None:
    verdict = "holds" if r - s_ > target("shaw", "exp3_recon_sigma_rise - exp3_seg_sigma_rise") else "does NOT hold"
    print(
        f"Exp. 3 (recon sigma rises more than seg sigma under partial noise) {verdict} here: "
        f"{r:+.2f} vs {s_:+.2f} relative rise of total sigma."
    )
if f3.exists():
    box = exp3.pivot(index="subject_id", columns="condition", values=["recon_sigma_in_box", "seg_sigma_in_box"])
    for k in ("recon_sigma_in_box", "seg_sigma_in_box"):
        ratio = box[k]["partial_noise"] / box[k]["clean"]
        print(f"{k}: partial noise / clean = {ratio.mean():.2f} (range {ratio.min():.2f}-{ratio.max():.2f})")
comparison
