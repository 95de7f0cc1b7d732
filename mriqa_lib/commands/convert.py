"""`mriqa convert`: turn a data set's delivered DICOM files into the layout its adapter reads."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert",
        help="convert delivered DICOM files to the NIfTI layout an adapter reads (ukb-dixon)",
        description="ukb-dixon: read every UK Biobank field 20201 zip (<eid>_20201_<instance>_0.zip) in "
        "ZIP_DIR, keep the water series of each table station (series description ending '_W'), stack the "
        "stations into one volume (overlaps averaged) and write OUT/<eid>/wat.nii.gz atomically, the layout "
        "paper 1 (ecker.ukb_dir) reads. Existing files are kept unless --overwrite, so a stopped run resumes.",
    )
    p.add_argument("kind", choices=["ukb-dixon"], help="what to convert")
    p.add_argument("zip_dir", type=Path, help="folder of the delivered zips")
    p.add_argument("--out", required=True, type=Path, help="output folder (OUT/<eid>/wat.nii.gz)")
    p.add_argument("--instance", type=int, default=2, help="UK Biobank visit (2 = first imaging visit, default)")
    p.add_argument("--overwrite", action="store_true", help="convert again where OUT/<eid>/wat.nii.gz exists")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mriqa_lib.data.ukb import convert_dixon

    files = convert_dixon(args.zip_dir, args.out, instance=args.instance, overwrite=args.overwrite)
    print(f"{len(files)} water images in {args.out}/; set ecker.ukb_dir: {args.out}")
    return 0
