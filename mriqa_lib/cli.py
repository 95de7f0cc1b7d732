"""The `mriqa` command. Each sub-command lives in mriqa_lib/commands/<name>.py and exposes
``add_parser(subparsers)`` (which sets ``func``) so this file stays a thin dispatcher."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# Busy-waiting OpenMP threads make torch ~10x slower on oversubscribed CPUs (2 cores, several
# processes); must be set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from mriqa_lib import __version__

COMMANDS = (
    "cohort",
    "corrupt",
    "stage",
    "notebook",
    "profile",
    "check",
    "score",
    "calibrate",
    "readme",
    "replica",
    "convert",
)


_NUMBERS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")


def _papers() -> str:
    """'five papers' for the registered methods' papers (the registry decides, not this file)."""
    from mriqa_lib.methods import registry

    n = len({spec.paper for spec in registry.methods().values()})
    return f"{_NUMBERS[n] if n < len(_NUMBERS) else n} paper{'' if n == 1 else 's'}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mriqa",
        description=f"Automatic MRI image-quality assessment: {_papers()}, one pipeline. "
        "Run `dvc repro` to regenerate every figure; `mriqa <command> --help` for each command.",
    )
    parser.add_argument("--version", action="version", version=f"mriqa {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"mriqa_lib.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"mriqa_lib.commands.{name}":
                continue  # command not part of this build
            raise
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (0 ok, 1 bad input data, 2 bad configuration)."""
    from mriqa_lib.config import ConfigError
    from mriqa_lib.io import MriqaInputError

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"mriqa: configuration error: {exc}", file=sys.stderr)
        return 2
    except MriqaInputError as exc:
        print(f"mriqa: input error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("mriqa: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
