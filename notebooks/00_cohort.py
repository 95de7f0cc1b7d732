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
# # The embedded default cohort
#
# Synthetic subjects built from the ICBM152 2009a template shipped in nilearn (random smooth diffeomorphic warp + affine, T1w contrast re-synthesised from the tissue maps with per-site intensities, voxel size, bias field and Rician noise; each subject's look randomised around its site's: sharper tissue borders, tissue intensities, slice thickness, noise level). Metadata are synthetic. This notebook only loads what `mriqa stage prepare` wrote and draws it into `figures/cohort/`.

# %% tags=["parameters"]
data_dir = "data/embedded"
out_dir = "figures/cohort"

# %%
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from mriqa_lib.io import load_nifti, read_tsv
from mriqa_lib.plots import save_table, savefig, show_slice, style

style()
os.makedirs(out_dir, exist_ok=True)
data = Path(data_dir)
participants = read_tsv(data / "participants.tsv", required=("participant_id", "site", "split"))
participants.head()

# %% [markdown]
# ## Counts per site and split

# %%
counts = participants.pivot_table(
    index="site", columns="split", values="participant_id", aggfunc="count", fill_value=0
).reset_index()
save_table(counts, out_dir, "counts")
counts

# %% [markdown]
# ## Mid-slice montage per site (axial, coronal, sagittal of the first subject of each site)

# %%
sites = sorted(participants.site.unique())
fig, axes = plt.subplots(3, len(sites), figsize=(2.0 * len(sites), 6.0))
first = {s: participants[participants.site == s].participant_id.iloc[0] for s in sites}
vols = {}
for j, s in enumerate(sites):
    pid = first[s]
    v = load_nifti(data / pid / "anat" / f"{pid}_T1w.nii.gz")
    vols[s] = v
    for i, axis in enumerate((2, 1, 0)):
        label = f"{s}\n{pid}\n" + "x".join(f"{x:.1f}" for x in v.spacing) + " mm"
        show_slice(axes[i, j], v.data, axis=axis, spacing=v.spacing, title=label if i == 0 else None)
savefig(fig, out_dir, "montage_sites")

# %% [markdown]
# ## Tissue maps over the T1w image (first subject): GM red, WM green, CSF blue

# %%
pid = participants.participant_id.iloc[0]
anat = data / pid / "anat"
t1 = load_nifti(anat / f"{pid}_T1w.nii.gz").data
maps = {t: load_nifti(anat / f"{pid}_label-{t}_probseg.nii.gz").data for t in ("GM", "WM", "CSF")}
fig, axes = plt.subplots(1, 3, figsize=(9, 3.4))
for ax, axis in zip(axes, (2, 1, 0)):
    k = t1.shape[axis] // 2
    base = np.take(t1, k, axis=axis).T
    rgb = np.stack([np.take(maps[t], k, axis=axis).T for t in ("GM", "WM", "CSF")], -1)
    ax.imshow(base, origin="lower", vmin=0, vmax=np.percentile(t1, 99.5))
    ax.imshow(np.clip(rgb, 0, 1), origin="lower", alpha=0.45)
    ax.set_axis_off()
fig.suptitle(f"{pid}: tissue maps stay aligned with the image")
savefig(fig, out_dir, "tissue_overlay")

# %% [markdown]
# ## Intensity histograms per site (brain voxels, all subjects of the site)
#
# Sites differ in contrast, bias and noise, so the same tissue lands at different intensities: the site effect the methods must be robust to.

# %%
fig, ax = plt.subplots(figsize=(6, 3.4))
for s in sites:
    values = []
    for pid in participants[participants.site == s].participant_id:
        a = data / pid / "anat"
        img = load_nifti(a / f"{pid}_T1w.nii.gz").data
        brain = (
            load_nifti(a / f"{pid}_label-GM_probseg.nii.gz").data
            + load_nifti(a / f"{pid}_label-WM_probseg.nii.gz").data
        ) > 0.5
        values.append(img[brain])
    ax.hist(np.concatenate(values), bins=120, histtype="step", density=True, label=s)
ax.set_xlabel("T1w intensity (a.u.)")
ax.set_ylabel("density")
ax.legend(ncol=2)
savefig(fig, out_dir, "histograms_sites")

# %% [markdown]
# ## Synthetic metadata

# %%
fig, axes = plt.subplots(1, 3, figsize=(9, 2.8))
for ax, col in zip(axes, ("age", "height", "weight")):
    for sex in ("F", "M"):
        ax.hist(participants[participants.sex == sex][col], bins=12, alpha=0.6, label=sex)
    ax.set_xlabel(col)
axes[0].legend()
savefig(fig, out_dir, "metadata")
