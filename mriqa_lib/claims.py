"""The papers' claims that the embedded default is held to, checked against `metrics/<method>.json`.

Each method lists its claims in its registration (``MethodSpec.claims`` in
``mriqa_lib/methods/<method>/__init__.py``); this module collects them in paper order, reads their
targets (:func:`target`, the one accessor stages and notebooks use) and evaluates them. Each claim is
the target of an issue's "Done when" (or, for paper 5's transfer result and paper 4's shift and
layer claims, the paper's own statement). Targets are written once, in the registration; measured
values are only ever read from the metrics the pipeline wrote. `mriqa readme` turns the list into
the claims table of the README's "What the embedded default can and cannot show".
"""

from __future__ import annotations

import json
import math
import operator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["CLAIMS", "Claim", "claims", "claims_table", "evaluate_claims", "target"]

_OPS = {">=": operator.ge, ">": operator.gt, "==": operator.eq}


@dataclass(frozen=True)
class Claim:
    """``metric`` (a key, or ``a - b`` of two keys) of ``metrics/<method>.json`` ``op`` ``target``."""

    method: str
    paper: str
    what: str
    metric: str
    op: str
    target: float | bool

    def value(self, metrics: dict[str, Any]) -> float | bool | None:
        keys = [k.strip() for k in self.metric.split(" - ")]
        if any(k not in metrics for k in keys):
            return None
        vals = [metrics[k] for k in keys]
        return vals[0] if len(vals) == 1 else float(vals[0]) - float(vals[1])


def claims() -> tuple[Claim, ...]:
    """Every registered method's claims, in paper order (each method's own order within)."""
    from mriqa_lib.methods import registry

    return tuple(c for spec in registry.methods().values() for c in spec.claims)


CLAIMS: tuple[Claim, ...]  # every claim, in paper order: module __getattr__ reads it from the registry


def __getattr__(name: str) -> Any:
    # ``CLAIMS`` is read from the registry when asked for (not at import: the methods import Claim from here)
    if name == "CLAIMS":
        return claims()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def target(method: str, metric: str) -> float | bool:
    """The target of ``method``'s claim on ``metric``: stages and notebooks read thresholds here.

    Raises:
        KeyError: naming the claims of ``method`` when none is on ``metric``.
    """
    from mriqa_lib.methods import registry

    own = registry.get(method).claims
    for c in own:
        if c.metric == metric:
            return c.target
    known = [c.metric for c in own]
    raise KeyError(f"no claim of '{method}' on '{metric}'; its claims: {known}")


def evaluate_claims(metrics_dir: str | Path = "metrics") -> list[dict[str, Any]]:
    """One row per claim: measured value (None when the metric is missing) and whether it holds."""
    rows, cache = [], {}
    for c in claims():
        path = Path(metrics_dir) / f"{c.method}.json"
        if c.method not in cache:
            cache[c.method] = json.loads(path.read_text()) if path.exists() else {}
        v = c.value(cache[c.method])
        ok = None
        if v is not None and not (isinstance(v, float) and math.isnan(v)):
            ok = bool(_OPS[c.op](v, c.target))
        rows.append({"claim": c, "value": v, "holds": ok})
    return rows


def _fmt(v: Any) -> str:
    if v is None:
        return "not measured"
    if isinstance(v, bool):
        return "yes" if v else "no"
    # three decimals, unless they would round a nonzero value to 0 (a slope of -4e-7 is not "-0.000")
    return f"{v:.3f}" if v == 0 or abs(v) >= 5e-4 else f"{v:.2g}"


def claims_table(metrics_dir: str | Path = "metrics") -> str:
    """Markdown table of every claim with its target, the measured value and whether it holds."""
    lines = ["| paper | method | claim | target | measured | holds |", "|---|---|---|---|---|---|"]
    for r in evaluate_claims(metrics_dir):
        c = r["claim"]
        target = ("yes" if c.target else "no") if isinstance(c.target, bool) else f"{c.op} {c.target:g}"
        holds = {True: "yes", False: "**no**", None: "not measured"}[r["holds"]]
        lines.append(f"| {c.paper} | {c.method} | {c.what} | {target} | {_fmt(r['value'])} | {holds} |")
    return "\n".join(lines)
