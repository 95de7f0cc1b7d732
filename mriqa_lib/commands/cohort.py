"""`mriqa cohort`: write an embedded cohort from the ICBM152 template shipped in nilearn."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "cohort",
        help="write a synthetic embedded cohort (NIfTI volumes, tissue maps, participants.tsv)",
        description="Write a synthetic cohort built from the ICBM152 2009a T1/GM/WM maps that ship in "
        "nilearn: per subject a random smooth diffeomorphic warp plus an affine (head size +-10 %%), "
        "T1w contrast re-synthesised from the tissue maps with per-site intensities, voxel size, bias "
        "field and Rician noise. Metadata (sex, age, height, weight) are synthetic. Site and other "
        "settings come from the `cohort` section of params.yaml; the options override it. "
        "Same seed -> same bytes.",
    )
    p.add_argument("--out", required=True, type=Path, help="output folder (replaced atomically if it exists)")
    p.add_argument("--n", type=int, default=None, help="number of subjects (default: params.yaml cohort.n_subjects)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: params.yaml cohort.seed)")
    p.add_argument(
        "--contrast",
        action="append",
        choices=["T2w", "PD"],
        default=None,
        help="also synthesise this non-T1w contrast from the same tissue maps (repeatable)",
    )
    p.add_argument("--slices", type=int, default=None, help="also export N centre axial 2-D slices per subject")
    p.add_argument("--workers", type=int, default=None, help="parallel processes (default 2)")
    p.add_argument(
        "--params",
        type=Path,
        default=Path("params.yaml"),
        help="params file for site definitions (default params.yaml; built-in defaults if absent)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mriqa_lib.config import ConfigError, default_cohort_params, load_settings
    from mriqa_lib.data.cohort import build_cohort

    params = load_settings(args.params).cohort if args.params.exists() else default_cohort_params()
    update = {
        k: v
        for k, v in {"n_subjects": args.n, "seed": args.seed, "slices": args.slices, "workers": args.workers}.items()
        if v is not None
    }
    if args.contrast:
        update["contrasts"] = ["T1w", *dict.fromkeys(args.contrast)]
    try:
        params = type(params).model_validate({**params.model_dump(), **update})
    except Exception as exc:  # pydantic ValidationError -> one line
        from mriqa_lib.config import format_validation_error

        raise ConfigError(format_validation_error(exc, "command line", type(params))) from None
    summary = build_cohort(args.out, params, progress=not args.quiet)
    print(f"{summary['n_subjects']} subjects, {summary['n_sites']} sites: {summary['subjects_per_split']}")
    return 0
