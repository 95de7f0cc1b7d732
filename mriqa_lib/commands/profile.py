"""`mriqa profile`: overlay a settings profile (e.g. the papers' published settings) on params.yaml."""
from __future__ import annotations

import argparse
from pathlib import Path

PROFILES = Path("profiles")


def profile_files(name: str) -> list[Path]:
    """profiles/<method>.<name>.yaml for every method that has one, e.g. ecker.paper.yaml."""
    return sorted(PROFILES.glob(f"*.{name}.yaml"))


def merged_profile(base: dict, name: str, methods: list[str] | None = None) -> dict:
    """``base`` params with the profile's sections merged in (validated by the caller)."""
    from mriqa_lib.config import deep_merge, read_yaml

    out = dict(base)
    files = profile_files(name)
    if not files:
        from mriqa_lib.config import ConfigError

        raise ConfigError(f"no profile '{name}': no files {PROFILES}/*.{name}.yaml")
    for path in files:
        if methods and path.name.split(".")[0] not in methods:
            continue
        out = deep_merge(out, read_yaml(path) or {})
    return out


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "profile", help="apply a settings profile (e.g. `paper`) to params.yaml",
        description="Merge profiles/<method>.NAME.yaml into params.yaml. `mriqa profile paper` gives the "
        "published settings of every paper (GPU-sized; each value's source is commented in the profile "
        "file). Validates before writing; the previous params.yaml is kept as params.yaml.bak.",
    )
    p.add_argument("name", help="profile name, e.g. paper")
    p.add_argument("--methods", default=None, help="comma-separated methods to apply (default: all)")
    p.add_argument("--params", type=Path, default=Path("params.yaml"))
    p.add_argument("--dry-run", action="store_true", help="validate and print, do not write")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import shutil

    import yaml

    from mriqa_lib.config import parse_settings, read_yaml
    from mriqa_lib.io import atomic_path

    methods = args.methods.split(",") if args.methods else None
    merged = merged_profile(read_yaml(args.params), args.name, methods)
    parse_settings(merged, f"{args.params} + profile '{args.name}'")
    text = yaml.safe_dump(merged, sort_keys=False)
    if args.dry_run:
        print(text)
        return 0
    shutil.copyfile(args.params, args.params.with_suffix(".yaml.bak"))
    with atomic_path(args.params) as tmp:
        tmp.write_text(f"# params.yaml with profile '{args.name}' applied (previous: params.yaml.bak)\n" + text)
    print(f"{args.params}: profile '{args.name}' applied; previous settings in {args.params}.bak")
    return 0
