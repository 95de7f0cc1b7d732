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
# # Artifact gallery
#
# Every simulated degradation of `mriqa_lib.artifacts` (the library all five methods draw their training and
# test data from), each at three severities, on one embedded subject (mid axial slice). The last column
# shows the log k-space magnitude of the slice at the highest severity. Severity 0 is the clean image;
# units are listed in the table (`mriqa corrupt --list`). If no embedded subject exists, a synthetic
# phantom is used so the notebook always runs.

# %% tags=["parameters"]
data_dir = "data/embedded"
out_dir = "figures/artifacts"
seed = 0

# %%
import glob
import os

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from mriqa_lib.artifacts import apply_artifact, list_artifacts, motion, rigid
from mriqa_lib.io import load_nifti
from mriqa_lib.plots import save_table, savefig, style

style()
os.makedirs(out_dir, exist_ok=True)
files = sorted(glob.glob(os.path.join(data_dir, "sub-*", "anat", "*_T1w.nii.gz")))
if files:
    vol = load_nifti(files[0])
    image, spacing, source = vol.data, vol.spacing.tolist(), os.path.basename(files[0])
else:  # synthetic phantom: ellipsoid head with a brighter brain and a few blobs
    g = np.meshgrid(*[np.linspace(-1, 1, n) for n in (96, 112, 96)], indexing="ij")
    r = np.sqrt((g[0] / 0.8) ** 2 + (g[1] / 0.9) ** 2 + (g[2] / 0.8) ** 2)
    image = (500 * (r < 1) + 400 * (r < 0.85) - 250 * (np.abs(g[0]) < 0.05) * (r < 0.6)).astype(np.float32)
    spacing, source = [2.0, 2.0, 2.0], "synthetic phantom"
print(source, image.shape, spacing)

# %% [markdown]
# ## The artifacts and what their severity means

# %%
table = pd.DataFrame(
    [
        {
            "artifact": s.name,
            "severity means": s.severity,
            "unit": s.unit,
            "default": s.default,
            "range": f"[{s.valid_range[0]:g}, {s.valid_range[1]:g}]",
            "dims": "/".join(f"{d}D" for d in s.dims),
            "papers": ", ".join(map(str, s.papers)),
        }
        for s in list_artifacts()
    ]
)
save_table(table, out_dir, "artifacts")
table

# %% [markdown]
# ## Gallery: three severities per artifact

# %%
explicit = {
    "motion": [0.5, 2.0, 4.0],
    "rician_noise": [0.316, 1.0, 3.16],  # 10, 0, -10 dB
    "undersample": [0.5, 0.75, 0.875],  # 2x, 4x, 8x
    "registration_error": [2.0, 5.0, 10.0],
    "respiratory": [2.0, 5.0, 10.0],
    "non_t1w_contrast": [0.3, 0.7, 1.0],
}  # the linear blend is flat (PD-like) at 0.5


def severities(spec):
    if spec.name in explicit:
        return explicit[spec.name]
    hi = spec.valid_range[1]
    s = [0.5 * spec.default, spec.default, 2 * spec.default]
    return s if s[-1] <= hi else [hi / 4, hi / 2, hi]


def log_k(slice2d):
    k = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(slice2d)))
    return np.log1p(np.abs(k))


z = image.shape[2] // 2
vmax = np.percentile(image, 99.5)
specs = list_artifacts()
fig, axes = plt.subplots(len(specs) + 1, 4, figsize=(8.4, 2.25 * (len(specs) + 1)))
show = {"origin": "lower", "cmap": "gray", "vmin": 0, "vmax": vmax, "aspect": spacing[1] / spacing[0]}
kref = log_k(image[:, :, z])
axes[0, 0].imshow(image[:, :, z].T, **show)
axes[0, 0].set_title("clean", fontsize=8)
axes[0, 3].imshow(kref.T, origin="lower", cmap="magma", vmax=kref.max())
axes[0, 3].set_title("clean: log|k|", fontsize=8)
for ax in axes[0, 1:3]:
    ax.set_visible(False)
records = []
for row, spec in enumerate(specs, start=1):
    for col, sev in enumerate(severities(spec)):
        out, info = apply_artifact(spec.name, image, severity=sev, seed=seed, spacing=spacing)
        axes[row, col].imshow(out[:, :, z].T, **show)
        axes[row, col].set_title(f"{spec.name}\n{info['severity']:.3g} {spec.unit}", fontsize=7)
        records.append({"artifact": spec.name, "requested": sev, "realised": info["severity"], "unit": spec.unit})
    kk = log_k(out[:, :, z])
    axes[row, 3].imshow(kk.T, origin="lower", cmap="magma", vmax=kref.max())
    axes[row, 3].set_title("log|k| (highest)", fontsize=7)
for ax in axes.ravel():
    ax.set_axis_off()
fig.tight_layout()
savefig(fig, out_dir, "gallery")
save_table(pd.DataFrame(records), out_dir, "gallery_severities")

# %% [markdown]
# ## Motion score: the rejection sampler hits its target
#
# Paper 5's recipe (N ~ U{2..8} poses, rotation range U(0, min(goal/3, 1)) deg, translation range = goal mm)
# is drawn until the Jenkinson RMS is within 0.02 mm of the goal, under both definitions: mean RMS of the
# poses from the reference pose (radius 80 mm, mriqa's default) and mean RMS between successive poses
# (radius 82.5 mm, the public code). Each accepted draw is scored under the other definition too.

# %%
rng = np.random.default_rng(seed)
goals = np.linspace(0.05, 4.0, 40)
fig, axes = plt.subplots(1, 2, figsize=(8, 3.4))
for ax, definition in zip(axes, ("paper", "code")):
    got, other = [], []
    for goal in goals:
        d = motion.sample_motion_for_rms(goal, rng, definition=definition)
        poses = rigid.pose_matrices(d["degrees"], d["translation"])
        got.append(d["rms"])
        other.append(
            rigid.rms_successive(poses, 82.5) if definition == "paper" else rigid.rms_mean_from_reference(poses, 80.0)
        )
    ax.plot(goals, got, "o", ms=3, label=f"{definition} (target)")
    ax.plot(goals, other, "x", ms=3, label="other definition")
    ax.plot([0, 4], [0, 4], "k:", lw=0.8)
    ax.set_xlabel("target RMS (mm)")
    ax.set_ylabel("realised RMS (mm)")
    ax.set_title(f"sampler, definition = {definition}")
    ax.legend()
    print(definition, "max |realised - target| =", round(float(np.max(np.abs(np.array(got) - goals))), 4), "mm")
fig.tight_layout()
savefig(fig, out_dir, "motion_sampler")
