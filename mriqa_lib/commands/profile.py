"""`mriqa profile`: overlay a settings profile (e.g. the papers' published settings) on params.yaml."""

from __future__ import annotations

import argparse
from pathlib import Path

PROFILES = Path("profiles")


def profile_files(name: str, profiles: Path = PROFILES) -> list[Path]:
    """profiles/<method>.<name>.yaml for every method that has one, e.g. ecker.paper.yaml."""
    return sorted(Path(profiles).glob(f"*.{name}.yaml"))


def profile_names(profiles: Path = PROFILES) -> list[str]:
    """The profile names found in ``profiles`` (``paper`` for ``ecker.paper.yaml``)."""
    return sorted({p.name.split(".", 1)[1][: -len(".yaml")] for p in Path(profiles).glob("*.*.yaml")})


def own_sections(path: Path, doc) -> None:
    """A profile file ``<method>.<name>.yaml`` sets its method's section only (the method's own
    ``trainer`` included), so that ``--methods m`` changes m's settings and nothing else."""
    from mriqa_lib.config import ConfigError

    method = Path(path).name.split(".")[0]
    other = sorted(set(doc or {}) - {method})
    if other:
        raise ConfigError(
            f"{path}: sets section(s) {other}; a profile of '{method}' may only set '{method}' "
            f"(per-method trainer settings go under {method}.trainer)"
        )


def merged_profile(base: dict, name: str, methods: list[str] | None = None, profiles: Path = PROFILES) -> dict:
    """``base`` params with the profile's sections merged in as plain dicts (validated by the caller)."""
    from mriqa_lib.config import deep_merge, read_yaml

    out = dict(base)
    files = profile_files(name, profiles)
    if not files:
        from mriqa_lib.config import ConfigError

        raise ConfigError(f"no profile '{name}': no files {profiles}/*.{name}.yaml")
    for path in files:
        if methods and path.name.split(".")[0] not in methods:
            continue
        doc = read_yaml(path) or {}
        own_sections(path, doc)
        out = deep_merge(out, doc)
    return out


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "profile",
        help="apply a settings profile (e.g. `paper`) to params.yaml",
        description="Merge profiles/<method>.NAME.yaml into params.yaml. `mriqa profile paper` gives the "
        "published settings of every paper (GPU-sized; each value's source is commented in the profile "
        "file, and those comments are carried into params.yaml). Validates before writing; the previous "
        "params.yaml is kept as params.yaml.bak.",
    )
    p.add_argument("name", help="profile name, e.g. paper")
    p.add_argument("--methods", default=None, help="comma-separated methods to apply (default: all)")
    p.add_argument("--params", type=Path, default=Path("params.yaml"))
    p.add_argument("--dry-run", action="store_true", help="validate and print, do not write")
    p.set_defaults(func=run)


def _round_trip():
    from ruamel.yaml import YAML

    yaml = YAML()  # round-trip mode: keeps comments, key order and flow style
    yaml.width = 120
    return yaml


def merge_keeping_comments(base, overlay) -> None:
    """Merge ruamel mapping ``overlay`` into ``base`` in place; each value set by the overlay
    brings its end-of-line comment along (the profiles cite their sources there)."""
    from ruamel.yaml.comments import CommentedMap

    for key, value in overlay.items():
        if isinstance(value, CommentedMap) and isinstance(base.get(key), CommentedMap):
            if not value.fa.flow_style():  # a commented block overlay cannot live inside {...}
                base[key].fa.set_block_style()
            merge_keeping_comments(base[key], value)
            continue
        base[key] = value
        if key in overlay.ca.items:
            base.ca.items[key] = overlay.ca.items[key]


def _load_mapping(yaml, path: Path):
    """A YAML file as a ruamel mapping (an empty file is an empty mapping); errors name the file."""
    from ruamel.yaml.comments import CommentedMap
    from ruamel.yaml.error import YAMLError

    from mriqa_lib.config import ConfigError

    try:
        doc = yaml.load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from exc
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or exc
        raise ConfigError(f"{path}: invalid YAML{where}: {problem}".splitlines()[0]) from exc
    if doc is None:
        return CommentedMap()
    if not isinstance(doc, CommentedMap):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level, got {type(doc).__name__}")
    return doc


def apply_profile(params: Path, name: str, methods: list[str] | None = None, profiles: Path = PROFILES):
    """What `mriqa profile` writes: ``params`` with the profile's files merged in, comments kept.

    Args:
        params: the params file the profile overlays (params.yaml).
        name: the profile name (``paper`` for ``profiles/<method>.paper.yaml``).
        methods: only these methods' profile files (None: all).
        profiles: the folder of profile files.

    Returns:
        (the merged ruamel document, its validated ``Settings``); a :class:`ConfigError` names the
        first bad key.
    """
    from mriqa_lib.config import ConfigError, parse_settings

    yaml = _round_trip()
    files = [f for f in profile_files(name, profiles) if not methods or f.name.split(".")[0] in methods]
    if not files:
        raise ConfigError(f"no profile '{name}' for {methods or 'any method'}: no files {profiles}/*.{name}.yaml")
    doc = _load_mapping(yaml, Path(params))
    for path in files:
        overlay = _load_mapping(yaml, path)
        own_sections(path, overlay)
        merge_keeping_comments(doc, overlay)
    settings = parse_settings(doc, f"{params} + profile '{name}'")
    return doc, settings


def run(args: argparse.Namespace) -> int:
    import io
    import shutil

    from mriqa_lib.io import atomic_path

    methods = args.methods.split(",") if args.methods else None
    doc, _ = apply_profile(args.params, args.name, methods)
    yaml = _round_trip()
    buf = io.StringIO()
    yaml.dump(doc, buf)
    header = f"# profile '{args.name}' applied by `mriqa profile` (previous settings: {args.params.name}.bak)\n"
    text = buf.getvalue() if buf.getvalue().startswith(header) else header + buf.getvalue()
    if args.dry_run:
        print(text)
        return 0
    shutil.copyfile(args.params, args.params.with_suffix(".yaml.bak"))
    with atomic_path(args.params) as tmp:
        tmp.write_text(text)
    print(f"{args.params}: profile '{args.name}' applied; previous settings in {args.params}.bak")
    return 0
