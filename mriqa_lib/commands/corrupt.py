"""`mriqa corrupt`: apply one simulated artifact to a NIfTI image and write a JSON sidecar.

    mriqa corrupt IN OUT --artifact NAME [--severity X] [--seed S] [--param KEY=VALUE ...]
    mriqa corrupt --list

The sidecar is OUT with ``.json`` instead of ``.nii`` / ``.nii.gz``; it holds the artifact name,
seed, severity (with unit) and every realised parameter (for motion the poses and the RMS
score in mm, for noise the SNR in dB). The voxel size is taken from the input affine, so
millimetre parameters are physical. Same arguments -> same bytes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

__all__ = ["add_parser", "run", "sidecar_path", "parse_param"]


def sidecar_path(out: str | Path) -> Path:
    """OUT with ``.json`` instead of ``.nii.gz`` / ``.nii`` (other suffixes: ``.json`` appended)."""
    out = Path(out)
    name = out.name
    for suffix in (".nii.gz", ".nii"):
        if name.endswith(suffix):
            return out.with_name(name[: -len(suffix)] + ".json")
    return out.with_name(name + ".json")


def parse_param(text: str) -> tuple[str, object]:
    """Parse ``KEY=VALUE``; VALUE is read as JSON when possible (numbers, lists, true/false/null),
    otherwise kept as a string."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--param expects KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    key = key.strip()
    if not key.isidentifier():
        raise argparse.ArgumentTypeError(f"--param: invalid parameter name {key!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``corrupt`` sub-command on ``sub`` (sets ``func=run``)."""
    p = sub.add_parser(
        "corrupt",
        help="apply one simulated artifact to a NIfTI image (writes OUT and OUT's .json sidecar)",
        description="Apply one simulated MRI artifact to a 2-D or 3-D NIfTI image. Writes OUT and a JSON "
        "sidecar (OUT with .json instead of .nii/.nii.gz) holding the realised parameters: for motion "
        "the poses and the RMS deviation in mm, for noise the SNR in dB. `--list` names the artifacts "
        "with the meaning and unit of their severity. Severity 0 returns the input unchanged.",
    )
    p.add_argument("input", nargs="?", type=Path, help="input NIfTI (.nii or .nii.gz), 2-D or 3-D")
    p.add_argument("output", nargs="?", type=Path, help="output NIfTI path")
    p.add_argument("--artifact", "-a", help="artifact name (see --list)")
    p.add_argument(
        "--severity",
        "-s",
        type=float,
        default=None,
        help="severity in the artifact's unit (see --list); default: the artifact's default",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument(
        "--param",
        "-p",
        action="append",
        type=parse_param,
        default=[],
        metavar="KEY=VALUE",
        help="extra artifact parameter, VALUE parsed as JSON when possible, e.g. "
        "--param snr_db=0 or --param num_transforms=4 (repeatable)",
    )
    p.add_argument("--list", action="store_true", help="list the artifacts and exit")
    p.set_defaults(func=run)


def _error(msg: str, code: int) -> int:
    print(f"mriqa corrupt: {msg}", file=sys.stderr)
    return code


def run(args: argparse.Namespace) -> int:
    """Run ``mriqa corrupt``; returns 0 on success, 1 on bad input data, 2 on bad usage."""
    from mriqa_lib.artifacts import REGISTRY, apply_artifact, format_artifact_table

    if args.list:
        print(format_artifact_table())
        return 0
    if args.input is None or args.output is None or not args.artifact:
        return _error("IN, OUT and --artifact are required (or use --list)", 2)
    if args.artifact not in REGISTRY:
        return _error(f"unknown artifact {args.artifact!r}; choose one of: {', '.join(REGISTRY)}", 2)
    out_name = args.output.name
    if not (out_name.endswith(".nii") or out_name.endswith(".nii.gz")):
        return _error(f"{args.output}: output must end in .nii or .nii.gz", 2)
    if args.output.resolve() == args.input.resolve():
        return _error("OUT must differ from IN (raw inputs are never modified)", 2)

    from mriqa_lib.io import MriqaInputError, load_nifti, save_nifti, write_json

    try:
        vol = load_nifti(args.input, allow_2d=True)
    except MriqaInputError as exc:
        return _error(f"input error: {exc}", 1)
    spec = REGISTRY[args.artifact]
    data, spacing = vol.data, vol.spacing[: vol.data.ndim]
    if data.ndim == 3 and sum(n > 1 for n in data.shape) == 2:  # a 2-D slice stored as (H, W, 1)
        keep = [i for i, n in enumerate(data.shape) if n > 1]
        data, spacing = data.reshape([data.shape[i] for i in keep]), spacing[keep]
    if data.ndim not in spec.dims:
        return _error(f"{args.input}: artifact {spec.name} supports {spec.dims}-D images, got {data.ndim}-D", 1)
    params = dict(args.param)
    params.setdefault("spacing", [float(v) for v in spacing])
    try:
        out, realised = apply_artifact(args.artifact, data, severity=args.severity, seed=args.seed, **params)
    except (ValueError, TypeError, KeyError, RuntimeError) as exc:
        return _error(f"{args.artifact}: {exc}", 2)
    save_nifti(args.output, out.reshape(vol.data.shape), vol.affine)
    sidecar = {
        "artifact": args.artifact,
        "input": str(args.input),
        "output": str(args.output),
        "seed": args.seed,
        "severity": realised["severity"],
        "severity_unit": spec.unit,
        "severity_meaning": spec.severity,
        "requested_severity": args.severity,
        "requested_params": {k: v for k, v in params.items()},
        "input_shape": list(vol.data.shape),
        "processed_shape": list(data.shape),
        "realised": realised,
    }
    side = sidecar_path(args.output)
    write_json(side, sidecar)
    print(f"{args.artifact} (severity {realised['severity']:.4g} {spec.unit}) -> {args.output}, {side.name}")
    return 0
