"""Build notebooks/00_cohort.ipynb (clean, no outputs)."""
import nbformat as nbf

nb = nbf.v4.new_notebook()
md = nbf.v4.new_markdown_cell
code = nbf.v4.new_code_cell
params = code('data_dir = "data/embedded"\nout_dir = "figures/cohort"')
params.metadata["tags"] = ["parameters"]
nb.cells = [
    md("# The embedded default cohort\n\n"
       "Synthetic subjects built from the ICBM152 2009a template shipped in nilearn (random smooth "
       "diffeomorphic warp + affine, T1w contrast re-synthesised from the tissue maps with per-site "
       "intensities, voxel size, bias field and Rician noise). Metadata are synthetic. This notebook only "
       "loads what `mriqa stage prepare` wrote and draws it into `figures/cohort/`."),
    params,
    code("import os\nfrom pathlib import Path\n\nimport matplotlib.pyplot as plt\nimport numpy as np\n\n"
         "from mriqa_lib.data.preprocess import conform\nfrom mriqa_lib.io import load_nifti, read_tsv\n"
         "from mriqa_lib.plots import savefig, save_table, show_slice, style\n\nstyle()\n"
         "os.makedirs(out_dir, exist_ok=True)\ndata = Path(data_dir)\n"
         "participants = read_tsv(data / 'participants.tsv', required=('participant_id', 'site', 'split'))\n"
         "participants.head()"),
    md("## Counts per site and split"),
    code("counts = participants.pivot_table(index='site', columns='split', values='participant_id', aggfunc='count', fill_value=0).reset_index()\n"
         "save_table(counts, out_dir, 'counts')\ncounts"),
    md("## Mid-slice montage per site (axial, coronal, sagittal of the first subject of each site)"),
    code("sites = sorted(participants.site.unique())\n"
         "fig, axes = plt.subplots(3, len(sites), figsize=(2.0 * len(sites), 6.0))\n"
         "first = {s: participants[participants.site == s].participant_id.iloc[0] for s in sites}\n"
         "vols = {}\n"
         "for j, s in enumerate(sites):\n"
         "    pid = first[s]\n"
         "    v = load_nifti(data / pid / 'anat' / f'{pid}_T1w.nii.gz')\n"
         "    vols[s] = v\n"
         "    for i, axis in enumerate((2, 1, 0)):\n"
         "        label = f'{s}\\n{pid}\\n' + 'x'.join(f'{x:.1f}' for x in v.spacing) + ' mm'\n"
         "        show_slice(axes[i, j], v.data, axis=axis, spacing=v.spacing, title=label if i == 0 else None)\n"
         "savefig(fig, out_dir, 'montage_sites')"),
    md("## Tissue maps over the T1w image (first subject): GM red, WM green, CSF blue"),
    code("pid = participants.participant_id.iloc[0]\nanat = data / pid / 'anat'\n"
         "t1 = load_nifti(anat / f'{pid}_T1w.nii.gz').data\n"
         "maps = {t: load_nifti(anat / f'{pid}_label-{t}_probseg.nii.gz').data for t in ('GM', 'WM', 'CSF')}\n"
         "fig, axes = plt.subplots(1, 3, figsize=(9, 3.4))\n"
         "for ax, axis in zip(axes, (2, 1, 0)):\n"
         "    k = t1.shape[axis] // 2\n"
         "    base = np.take(t1, k, axis=axis).T\n"
         "    rgb = np.stack([np.take(maps[t], k, axis=axis).T for t in ('GM', 'WM', 'CSF')], -1)\n"
         "    ax.imshow(base, origin='lower', vmin=0, vmax=np.percentile(t1, 99.5))\n"
         "    ax.imshow(np.clip(rgb, 0, 1), origin='lower', alpha=0.45)\n"
         "    ax.set_axis_off()\n"
         "fig.suptitle(f'{pid}: tissue maps stay aligned with the image')\n"
         "savefig(fig, out_dir, 'tissue_overlay')"),
    md("## Intensity histograms per site (brain voxels, all subjects of the site)\n\n"
       "Sites differ in contrast, bias and noise, so the same tissue lands at different intensities: "
       "the site effect the methods must be robust to."),
    code("fig, ax = plt.subplots(figsize=(6, 3.4))\n"
         "for s in sites:\n"
         "    values = []\n"
         "    for pid in participants[participants.site == s].participant_id:\n"
         "        a = data / pid / 'anat'\n"
         "        img = load_nifti(a / f'{pid}_T1w.nii.gz').data\n"
         "        brain = (load_nifti(a / f'{pid}_label-GM_probseg.nii.gz').data + load_nifti(a / f'{pid}_label-WM_probseg.nii.gz').data) > 0.5\n"
         "        values.append(img[brain])\n"
         "    ax.hist(np.concatenate(values), bins=120, histtype='step', density=True, label=s)\n"
         "ax.set_xlabel('T1w intensity (a.u.)')\nax.set_ylabel('density')\nax.legend(ncol=2)\n"
         "savefig(fig, out_dir, 'histograms_sites')"),
    md("## Synthetic metadata"),
    code("fig, axes = plt.subplots(1, 3, figsize=(9, 2.8))\n"
         "for ax, col in zip(axes, ('age', 'height', 'weight')):\n"
         "    for sex in ('F', 'M'):\n"
         "        ax.hist(participants[participants.sex == sex][col], bins=12, alpha=0.6, label=sex)\n"
         "    ax.set_xlabel(col)\naxes[0].legend()\n"
         "savefig(fig, out_dir, 'metadata')"),
]
nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
nbf.write(nb, "notebooks/00_cohort.ipynb")
