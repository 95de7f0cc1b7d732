"""`mriqa readme`: regenerate the README's benchmark section from the benchmark stage's output."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "readme", help="write the README's 'Which method for which artifact?' table from results/benchmark",
        description="Replace the generated block of README.md with results/benchmark/readme_section.md, "
        "which `mriqa stage benchmark` writes. With --check, only compare (all but the timing row) and "
        "exit 1 when they differ.",
    )
    p.add_argument("--check", action="store_true", help="do not write; exit 1 if the README is out of date")
    p.add_argument("--readme", type=Path, default=Path("README.md"))
    p.add_argument("--section", type=Path, default=Path("results/benchmark/readme_section.md"))
    p.set_defaults(func=run)


def _without_timing(section: str) -> str:
    """The table without its seconds row: wall-clock times never repeat exactly."""
    return "\n".join(line for line in section.splitlines() if not line.startswith("| seconds"))


def run(args: argparse.Namespace) -> int:
    from mriqa_lib.io import MriqaInputError
    from mriqa_lib.stages.benchmark import README_BEGIN, README_END, update_readme

    if not args.section.exists():
        raise MriqaInputError(f"{args.section}: not found; run `dvc repro benchmark` first")
    section = args.section.read_text().strip()
    text = args.readme.read_text()
    if args.check:
        current = README_BEGIN + text.split(README_BEGIN, 1)[1].split(README_END, 1)[0] + README_END
        if _without_timing(current.strip()) != _without_timing(section):
            print(f"{args.readme}: benchmark section differs from {args.section}; run `mriqa readme`")
            return 1
        print(f"{args.readme}: benchmark section matches {args.section}")
        return 0
    changed = update_readme(args.readme, section)
    print(f"{args.readme}: benchmark section {'updated' if changed else 'already up to date'}")
    return 0
