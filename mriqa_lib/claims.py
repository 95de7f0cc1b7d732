"""The papers' claims that the embedded default is held to, checked against `metrics/<method>.json`.

Each claim is the target of an issue's "Done when" (or, for paper 5's transfer result and
paper 4's shift and layer claims, the paper's own statement). Targets are written here once;
measured values are only ever read from the metrics the pipeline wrote. `mriqa readme` turns
the list into the claims table of the README's "What the embedded default can and cannot show".
"""
from __future__ import annotations

import json
import math
import operator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["CLAIMS", "Claim", "claims_table", "evaluate_claims", "target"]

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


CLAIMS: tuple[Claim, ...] = (
    Claim("ecker", "P1", "accuracy, simulated motion", "motion_accuracy", ">=", 0.85),
    Claim("ecker", "P1", "accuracy, simulated noise", "noise_accuracy", ">=", 0.9),
    Claim("ecker", "P1", "accuracy, NAKO-like set", "nako_accuracy", ">=", 0.8),
    Claim("ecker", "P1", "Spearman rho, motion magnitude vs similarity to LQ",
          "continuous_spearman_level_vs_sim_lq", ">=", 0.8),
    Claim("zuo", "P2", "sensitivity at tau 5 %", "sensitivity_tau5", ">=", 0.8),
    Claim("zuo", "P2", "specificity at tau 5 %", "specificity_tau5", ">=", 0.85),
    Claim("zuo", "P2", "example A above, B-H below the 5 % threshold", "examples_all_as_expected_tau5", "==", True),
    Claim("shaw", "P3", "mean R^2, sigma vs reconstruction error", "exp1_r2_mean", ">=", 0.8),
    Claim("shaw", "P3", "fraction of pairs, artefact scan more uncertain", "exp2_frac_artefact_above_clean", ">=", 0.9),
    Claim("shaw", "P3", "regional noise: recon sigma rise minus seg sigma rise",
          "exp3_recon_sigma_rise - exp3_seg_sigma_rise", ">", 0.0),
    Claim("ssfd", "P4", "Spearman rho, SSFD vs blur strength", "rho_ssfd_strength_blur", ">=", 0.9),
    Claim("ssfd", "P4", "Spearman rho, SSFD vs noise strength", "rho_ssfd_strength_noise", ">=", 0.9),
    Claim("ssfd", "P4", "shift scores lower SSFD than blur and noise at equal SSIM", "shift_claim_held", "==", True),
    Claim("ssfd", "P4", "SSFD-SSIM correlation rises with encoder depth", "layer_claim_held", "==", True),
    Claim("bricout", "P5", "R^2, synthetic-motion test set", "synth_test_r2", ">=", 0.7),
    Claim("bricout", "P5", "median balanced accuracy, transfer minus scratch",
          "transfer_bal_acc_median - scratch_bal_acc_median", ">=", 0.0),
)


def target(method: str, metric: str) -> float | bool:
    """The target of ``method``'s claim on ``metric``: stages and notebooks read thresholds here.

    Raises:
        KeyError: naming the claims of ``method`` when none is on ``metric``.
    """
    for c in CLAIMS:
        if c.method == method and c.metric == metric:
            return c.target
    known = [c.metric for c in CLAIMS if c.method == method]
    raise KeyError(f"no claim of '{method}' on '{metric}'; its claims: {known}")


def evaluate_claims(metrics_dir: str | Path = "metrics") -> list[dict[str, Any]]:
    """One row per claim: measured value (None when the metric is missing) and whether it holds."""
    rows, cache = [], {}
    for c in CLAIMS:
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
    return f"{v:.3f}"


def claims_table(metrics_dir: str | Path = "metrics") -> str:
    """Markdown table of every claim with its target, the measured value and whether it holds."""
    lines = ["| paper | method | claim | target | measured | holds |", "|---|---|---|---|---|---|"]
    for r in evaluate_claims(metrics_dir):
        c = r["claim"]
        target = ("yes" if c.target else "no") if isinstance(c.target, bool) else f"{c.op} {c.target:g}"
        holds = {True: "yes", False: "**no**", None: "not measured"}[r["holds"]]
        lines.append(f"| {c.paper} | {c.method} | {c.what} | {target} | {_fmt(r['value'])} | {holds} |")
    return "\n".join(lines)
