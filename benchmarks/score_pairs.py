"""Does every method rank the corrupted copy of a scan as worse than the clean one?

For each held-out (test-split) embedded subject, which no model trained on, writes the clean
scan and one copy per artifact made with `mriqa corrupt`, scores the folder with `mriqa score`
(full-reference methods, P4, with the clean scan as reference), and prints per method and artifact the fraction of
pairs where the corrupted copy is worse. Run after `dvc repro` from the repository root:

    python benchmarks/score_pairs.py [--out /tmp/mriqa_pairs] [--artifacts motion,rician_noise,ghosting]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd

from mriqa_lib.io import read_tsv
from mriqa_lib.scoring import badness


def mriqa(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "mriqa_lib.cli", *args], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/mriqa_pairs"))
    parser.add_argument("--artifacts", default="motion:2,rician_noise:0.5,ghosting:0.6,bias_field:0.8")
    args = parser.parse_args()
    frame = read_tsv("data/embedded/participants.tsv")
    subjects = list(frame[frame.split == "test"].participant_id)
    arts = [a.split(":") for a in args.artifacts.split(",")]
    shutil.rmtree(args.out, ignore_errors=True)
    rows = []
    for i, sid in enumerate(subjects):
        folder = args.out / sid
        folder.mkdir(parents=True)
        clean = folder / "clean.nii.gz"
        shutil.copy(f"data/embedded/{sid}/anat/{sid}_T1w.nii.gz", clean)
        for name, sev in arts:
            mriqa(
                "corrupt",
                str(clean),
                str(folder / f"{name}.nii.gz"),
                "--artifact",
                name,
                "--severity",
                sev,
                "--seed",
                str(i),
            )
        mriqa("score", str(folder), "--out", str(folder / "scores"), "--reference", str(clean), "--quiet")
        scores = read_tsv(folder / "scores" / "scores.tsv")
        scores["name"] = [Path(p).name.split(".")[0] for p in scores.path]
        base = scores.set_index("name").loc["clean"]
        for name, _ in arts:
            row = scores.set_index("name").loc[name]
            for m, (col, sign) in badness().items():
                if col in scores:
                    rows.append(
                        {
                            "method": m,
                            "artifact": name,
                            "subject": sid,
                            "worse": bool(sign * row[col] > sign * base[col]),
                        }
                    )
    table = pd.DataFrame(rows).groupby(["method", "artifact"]).worse.mean().unstack()
    table["all"] = pd.DataFrame(rows).groupby("method").worse.mean()
    print(f"\nfraction of {len(subjects)} pairs where the corrupted copy scores worse (report: {args.out}/*/scores)")
    print(table.round(2).to_string())


if __name__ == "__main__":
    main()
