"""`mriqa score`: score NIfTI files, folders or BIDS datasets with every trained method."""

from __future__ import annotations

import argparse
from pathlib import Path


def _papers(specs) -> str:
    """'P3' or 'P3, P4' style list of the given specs' papers."""
    return ", ".join(spec.paper for spec in specs)


def add_parser(sub: argparse._SubParsersAction) -> None:
    from mriqa_lib.methods import registry

    specs = list(registry.methods().values())
    names = [spec.name for spec in specs]
    maps = " and ".join(f"{spec.paper} {spec.map_label} maps" for spec in specs if spec.map_column) or "voxel maps"
    full_ref = [spec for spec in specs if spec.full_reference]
    full_ref_words = ", ".join(f"{spec.paper} {spec.name.upper()}" for spec in full_ref) or "none registered"
    p = sub.add_parser(
        "score",
        help="score your own scans with every trained method (TSV + HTML report)",
        description="Score T1w volumes with the trained methods. INPUT is NIfTI files, folders (every "
        "NIfTI below) or BIDS datasets (sub-*/[ses-*/]anat/*_T1w), whole-head scans in their native space. "
        "Each volume is first prepared: reoriented, brain-extracted (deepbet) and affinely registered to the "
        "ICBM152 template (inputs already brain-only in template space are used as is); an input that is not "
        "a head, whose brain is cut or that does not register gets an error row naming the reason. "
        "Writes OUT/scores.tsv (one row per volume: each method's score and flag, runtime, "
        "error, and what preparation each volume received), OUT/report.html (summary, score plots, one card "
        "per volume worst first, full table), OUT/prep/ (brain masks and prepared volumes) and OUT/maps/ "
        f"({maps} as NIfTI). Volumes already scored are skipped unless --force. Exit status 1 when any "
        "volume failed, 0 otherwise.",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="NIfTI file, folder or BIDS dataset")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument(
        "--methods", default=",".join(names), help=f"comma-separated subset of {','.join(names)} (default: all)"
    )
    p.add_argument(
        "--checkpoints",
        type=Path,
        default=Path("models"),
        help="folder with one trained-model folder per method (default: models/, as dvc repro writes)",
    )
    p.add_argument(
        "--reference",
        type=Path,
        default=None,
        help=f"clean reference volume for the full-reference method ({full_ref_words}); without it "
        f"{_papers(full_ref) or 'such a method'} is skipped",
    )
    p.add_argument("--params", type=Path, default=Path("params.yaml"), help="settings the models were trained with")
    p.add_argument(
        "--no-prepare",
        action="store_true",
        help="skip brain extraction and registration: only for inputs known to be brain-only in the "
        "template space already (as the embedded cohort is)",
    )
    p.add_argument(
        "--calibration",
        type=Path,
        default=None,
        metavar="DIR",
        help="site calibration from `mriqa calibrate`: adds METHOD_site_z and METHOD_site_pct (the score "
        "relative to the site's clean scans) and lets P1/P2-style methods use their site refit; without it "
        "the embedded calibration CHECKPOINTS/calibration (synthetic cohort) is used when present",
    )
    p.add_argument("--force", action="store_true", help="re-score volumes already in OUT/scores.tsv")
    p.add_argument("--no-report", action="store_true", help="skip report.html")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _reference(path: Path, prepare):
    """The clean reference of the full-reference methods, prepared like the scans (a refused
    reference stops the run)."""
    from mriqa_lib.io import MriqaInputError, load_nifti
    from mriqa_lib.prepare import PrepareError
    from mriqa_lib.scoring import prepare_input

    try:
        return prepare_input(load_nifti(path), prepare)[0]
    except PrepareError as exc:
        raise MriqaInputError(f"{path}: reference refused by the preparation: {exc}") from None


def _without_full_reference(methods: list[str]) -> list[str]:
    """``methods`` less the full-reference ones (said on the console): there is no reference to compare with."""
    from mriqa_lib.methods import registry

    known = registry.methods()
    for m in [m for m in methods if m in known and known[m].full_reference]:
        methods.remove(m)
        print(f"{known[m].paper} ({m}) needs --reference; skipped")
    return methods


def run(args: argparse.Namespace) -> int:
    from mriqa_lib.calibration import resolve_calibration
    from mriqa_lib.config import load_settings
    from mriqa_lib.report import write_report
    from mriqa_lib.scoring import discover_inputs, load_scorers, score_inputs

    settings = load_settings(args.params)
    items = discover_inputs(args.inputs)
    if not items:
        print("no NIfTI volumes found in the inputs")
        return 1
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    prepare = None if args.no_prepare else settings.preparation
    reference = _reference(args.reference, prepare) if args.reference else None
    if reference is None:
        methods = _without_full_reference(methods)
    loaded = load_scorers(methods, args.checkpoints, settings)
    if not loaded.scorers:
        print("no method could be loaded: " + "; ".join(f"{m}: {w}" for m, w in loaded.unavailable.items()))
        return 1
    calibration = resolve_calibration(args.calibration, args.checkpoints, loaded)
    print(f"scoring {len(items)} volume(s) with {', '.join(loaded.scorers)} -> {args.out}; {calibration.label}")
    opts = {"force": args.force, "reference": reference, "progress": not args.quiet, "prepare": prepare}
    frame = score_inputs(items, loaded, args.out, calibration=calibration, **opts)
    if not args.no_report:
        print(f"report -> {write_report(frame, args.out, loaded.unavailable, calibration_notes=calibration.notes)}")
    n_bad = int((frame["error"].fillna("").astype(str).str.len() > 0).sum())
    print(f"{len(frame) - n_bad} scored, {n_bad} failed -> {args.out / 'scores.tsv'}")
    return 1 if n_bad else 0
