"""Build notebooks/00_benchmark.ipynb (clean, no outputs)."""
import nbformat as nbf

nb = nbf.v4.new_notebook()
md, code = nbf.v4.new_markdown_cell, nbf.v4.new_code_cell
params = code('results_dir = "results/benchmark"\nout_dir = "figures/benchmark"')
params.metadata["tags"] = ["parameters"]
nb.cells = [
    md("# Cross-method benchmark: all five methods on one test set\n\n"
       "What no single paper shows: the five methods side by side on the same held-out embedded "
       "subjects, each clean and with every artifact of the library at three severities. Everything "
       "here is read from `results/benchmark/` (written by `mriqa stage benchmark`).\n\n"
       "Caveats, plainly: the test set is small (a handful of synthetic subjects), every method was "
       "trained on the embedded default for minutes on a CPU, and P4 (SSFD) is a full-reference metric "
       "that sees the clean scan; its column is not comparable with the others."),
    params,
    code("import os\n\nimport matplotlib.pyplot as plt\nimport numpy as np\nimport pandas as pd\n\n"
         "from mriqa_lib.plots import savefig, save_table, style\nfrom mriqa_lib.scoring import BADNESS\n\n"
         "style()\nos.makedirs(out_dir, exist_ok=True)\n"
         "scores = pd.read_csv(f'{results_dir}/scores.tsv', sep='\\t')\n"
         "summary = pd.read_csv(f'{results_dir}/summary.tsv', sep='\\t')\n"
         "methods = list(dict.fromkeys(summary.method))\nartifacts = sorted(summary.artifact.unique())\n"
         "print(len(scores), 'volumes;', methods)"),
    md("## Table: AUROC (clean vs corrupted), Spearman rho with severity, seconds per volume"),
    code("table = summary.copy()\nfor c in ('auroc', 'spearman', 'seconds_per_volume'):\n    table[c] = table[c].round(3)\n"
         "save_table(table, out_dir, 'benchmark_table')\n"
         "table.pivot(index='artifact', columns='method', values='auroc')"),
    md("## AUROC heat map (method x artifact)"),
    code("pivot = summary.pivot(index='method', columns='artifact', values='auroc').reindex(index=methods, columns=artifacts)\n"
         "fig, ax = plt.subplots(figsize=(0.55 * len(artifacts) + 2, 0.5 * len(methods) + 1.6))\n"
         "im = ax.imshow(pivot.values, cmap='RdYlGn', vmin=0, vmax=1, aspect='auto', interpolation='nearest')\n"
         "ax.set_xticks(range(len(artifacts)), artifacts, rotation=60, ha='right')\n"
         "ax.set_yticks(range(len(methods)), [m + (' (full-ref.)' if m == 'ssfd' else '') for m in methods])\n"
         "for i in range(len(methods)):\n    for j in range(len(artifacts)):\n"
         "        v = pivot.values[i, j]\n        ax.text(j, i, '-' if np.isnan(v) else f'{v:.2f}', ha='center', va='center', fontsize=6)\n"
         "fig.colorbar(im, ax=ax, label='AUROC clean vs corrupted')\n"
         "savefig(fig, out_dir, 'auroc_heatmap')"),
    md("## Severity-response curves\n\nEach method's badness score (the column `mriqa score` ranks by; "
       "sign flipped where lower means worse), z-scored over the clean volumes, against the severity level "
       "(0 = clean). Mean over subjects."),
    code("ncol = 6\nnrow = int(np.ceil(len(artifacts) / ncol))\n"
         "fig, axes = plt.subplots(nrow, ncol, figsize=(2.2 * ncol, 2.0 * nrow), sharey=True, squeeze=False)\n"
         "clean = scores[scores.artifact == 'clean']\n"
         "for ax, art in zip(axes.flat, artifacts):\n"
         "    sub = pd.concat([clean, scores[scores.artifact == art]])\n"
         "    for m in methods:\n"
         "        col, sign = BADNESS[m]\n"
         "        if col not in sub:\n            continue\n"
         "        ref = sign * clean[col]\n"
         "        z = (sign * sub[col] - ref.mean()) / (ref.std() + 1e-9)\n"
         "        curve = z.groupby(sub.severity_level).mean()\n"
         "        ax.plot(curve.index, curve.values, marker='o', ms=3, label=m)\n"
         "    ax.set_title(art, fontsize=8)\n    ax.set_xticks(sorted(sub.severity_level.unique()))\n"
         "for ax in axes.flat[len(artifacts):]:\n    ax.set_axis_off()\n"
         "axes[0, 0].set_ylabel('badness (z vs clean)')\naxes[0, 0].legend(fontsize=6)\n"
         "fig.supxlabel('severity level (0 = clean)')\n"
         "savefig(fig, out_dir, 'severity_response')"),
    md("## Runtime per volume (CPU that ran the stage)"),
    code("secs = summary.groupby('method').seconds_per_volume.mean().reindex(methods)\n"
         "fig, ax = plt.subplots(figsize=(4.5, 2.6))\nax.bar(secs.index, secs.values)\n"
         "ax.set_ylabel('seconds per volume')\nfor i, v in enumerate(secs.values):\n"
         "    ax.text(i, v, f'{v:.2f}', ha='center', va='bottom', fontsize=7)\n"
         "savefig(fig, out_dir, 'runtime')"),
]
nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
nbf.write(nb, "notebooks/00_benchmark.ipynb")
