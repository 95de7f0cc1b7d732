"""`mriqa calibrate`: a site's clean scans as the yardstick of `mriqa score --calibration DIR`."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    from mriqa_lib.calibration import EMBEDDED, MIN_SCANS
    from mriqa_lib.methods import registry

    names = registry.names()
    p = sub.add_parser(
        "calibrate",
        help="calibrate the methods on a site's own clean scans (for `mriqa score --calibration`)",
        description=f"Score {MIN_SCANS} or more of a site's artifact-free scans (NIfTI files, folders or BIDS "
        "datasets, prepared as `mriqa score` prepares its inputs) with every no-reference method and write "
        "DIR/calibration.json: their clean-score distribution, for the model each method scores with. Methods "
        "with their own site calibration (P1 references, P2 density) also refit it into DIR/METHOD/. "
        "`mriqa score --calibration DIR` then reports each score relative to the site (METHOD_site_z, "
        "METHOD_site_pct). A scan the preparation refuses, or an unreadable file, stops the run with nothing "
        f"written. --embedded writes the embedded calibration ({EMBEDDED}) from the embedded cohort's held-out "
        "clean subjects instead, which `mriqa score` uses without --calibration.",
    )
    p.add_argument("inputs", nargs="*", metavar="SCAN", help="clean NIfTI file, folder or BIDS dataset")
    p.add_argument("--out", type=Path, default=None, help=f"calibration folder (--embedded: default {EMBEDDED})")
    p.add_argument("--embedded", action="store_true", help="calibrate on the embedded cohort's held-out subjects")
    p.add_argument("--methods", default=",".join(names), help=f"comma-separated subset of {','.join(names)}")
    p.add_argument("--checkpoints", type=Path, default=Path("models"), help="trained models (default: models/)")
    p.add_argument("--params", type=Path, default=Path("params.yaml"), help="settings the models were trained with")
    p.add_argument(
        "--no-prepare", action="store_true", help="skip the preparation: for scans already brain-only in template space"
    )
    p.add_argument("--force", action="store_true", help="replace an existing, non-empty calibration folder")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mriqa_lib.calibration import EMBEDDED, calibrate, embedded_calibration
    from mriqa_lib.config import ConfigError, load_settings
    from mriqa_lib.scoring import discover_inputs, load_scorers

    settings = load_settings(args.params)
    if args.embedded:
        if args.inputs:
            raise ConfigError("--embedded takes no SCAN: it calibrates on the embedded cohort's held-out subjects")
        out = args.out or args.checkpoints / EMBEDDED.name
        manifest = embedded_calibration(settings, out, checkpoints=args.checkpoints, progress=not args.quiet)
    else:
        if not args.inputs or args.out is None:
            raise ConfigError("give the clean SCANs and --out DIR (or --embedded)")
        items = discover_inputs(args.inputs)
        loaded = load_scorers([m.strip() for m in args.methods.split(",") if m.strip()], args.checkpoints, settings)
        prepare = None if args.no_prepare else settings.preparation
        out = args.out
        opts = {"prepare": prepare, "force": args.force, "progress": not args.quiet}
        manifest = calibrate(items, loaded, out, settings, args.checkpoints, **opts)
    print(f"calibrated {', '.join(manifest['methods'])} on {manifest['n_scans']} scans -> {out}")
    return 0
