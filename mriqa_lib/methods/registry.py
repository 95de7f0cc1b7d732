"""The method registry: one :class:`MethodSpec` per paper, registered where the method lives.

Every list of methods in the project (``mriqa stage``, ``mriqa score``, the benchmark, the claims
table, the report, the params sections) is derived from :func:`methods`. A method registers itself
in its package's ``__init__.py`` (``mriqa_lib/methods/<name>/__init__.py``) with :func:`register`;
:func:`methods` imports every package under ``mriqa_lib/methods`` once, so a sixth method is one new
folder plus one registration (CONTRIBUTING.md).
"""

from __future__ import annotations

import importlib
import math
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from pydantic import BaseModel

    from mriqa_lib.claims import Claim
    from mriqa_lib.io import Volume

__all__ = ["Flag", "MethodSpec", "Scorer", "cell", "get", "methods", "names", "register", "unregister"]


@runtime_checkable
class Scorer(Protocol):
    """What `mriqa score` and the benchmark call: one volume in, one dict of named columns out.

    Column names start with the method's name. ``reference`` is the clean reference volume of a
    full-reference method (ignored by the others). ``maps_dir``, when given, is where a method that
    makes voxel maps writes them (as NIfTI on the input's grid); `mriqa score` passes it to the
    methods whose spec names a ``map_column``, and the others ignore it.
    """

    def score(
        self, volume: Volume, reference: Volume | None = None, maps_dir: str | Path | None = None
    ) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Flag:
    """How a method says "this scan fails": the score plotted, where its threshold lies, the verdict.

    ``threshold`` is a number, the name of a column holding the threshold (it comes from the
    trained model), or None where the model alone defines none. ``flagged(row)`` reads the verdict
    from the method's own output columns (None: no verdict).
    """

    score: str
    threshold: float | str | None
    rule: str
    flagged: Callable[[dict[str, Any]], bool | None]


def cell(row: dict[str, Any], col: str) -> Any:
    """``row[col]``, or None when the column is absent or holds None / NaN (a row read back from a TSV).

    Flag rules use it so that a scan the method did not score gets no verdict.
    """
    value = row.get(col)
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def _no_verdict(row: dict[str, Any]) -> None:
    return None


@dataclass(frozen=True)
class MethodSpec:
    """Everything the project needs to know about one method.

    Attributes:
        name: short name; also the params.yaml section, the DVC stage item and the folder names
            (``data/synthetic/<name>``, ``models/<name>``, ``results/<name>``, ``metrics/<name>.json``).
        paper: "P1".."P5" (or a new label for a method added later).
        title: one line saying what the method does and whose paper it is.
        params: the pydantic model of its params.yaml section (defaults live there).
        load_scorer: ``(model_dir, settings) -> Scorer`` for `mriqa score` and the benchmark.
        badness: the output column that grows as a scan gets worse once multiplied by ``badness_sign``.
        badness_sign: +1 when larger is worse, -1 when smaller is worse.
        flag: the verdict rule for the report (default: the badness column, no threshold, no verdict).
        full_reference: True when the scorer needs a clean reference volume (P4): `mriqa score` skips
            the method without ``--reference``; the benchmark gives it the clean scan and marks its row.
        map_column: output column holding the path of a voxel map the scorer writes when given
            ``maps_dir`` (P3's uncertainty map); the report draws it under the scan. "" = no map.
        map_label: what the map shows, for the report (e.g. "uncertainty sigma").
        motion_rms: output column that estimates the injected motion RMS in mm (P5), which
            ``benchmarks/real_scans.py`` compares with the RMS `mriqa corrupt` injected. "" = none.
        stage_module: module with one function per stage step, each taking the settings.
        stages: the stage steps dvc.yaml runs for the method, in order.
        claims: the paper's claims the embedded default is held to (see :mod:`mriqa_lib.claims`).
        notebook: the notebook that draws the paper's figures (``notebooks/<notebook>.ipynb``).
        calibrate: the method's own site calibration (``mriqa calibrate``), or None when the
            site's clean-score distribution is all it needs: ``(scorer, volumes, out_dir, settings)
            -> dict`` fits what the method refits on a site's artifact-free ``volumes`` (prepared as
            for `mriqa score`), writes it into ``out_dir`` and returns a JSON-able summary. The
            method's scorer then has ``use_calibration(out_dir)``, which `mriqa score --calibration`
            calls.
        badness_only: ``SECTION.KEY=VALUE`` settings that skip the training no badness score reads
            (P3's multi-task model, P5's extra QC seeds), for runs that compare only the badness
            (the held-out-site evaluation).
    """

    name: str
    paper: str
    title: str
    params: type[BaseModel]
    load_scorer: Callable[[Path, Any], Scorer]
    badness: str
    badness_sign: float = 1.0
    flag: Flag | None = None
    full_reference: bool = False
    stage_module: str = ""
    stages: tuple[str, ...] = ("synthesize", "train", "evaluate")
    claims: tuple[Claim, ...] = field(default_factory=tuple)
    notebook: str = ""
    map_column: str = ""
    map_label: str = ""
    motion_rms: str = ""
    calibrate: Callable[[Scorer, list[Volume], Path, Any], dict[str, Any]] | None = None
    badness_only: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.flag is None:  # every method gets a report entry: its badness score, no verdict
            object.__setattr__(self, "flag", Flag(self.badness, None, "no threshold", _no_verdict))
        object.__setattr__(self, "claims", tuple(self.claims))
        object.__setattr__(self, "stages", tuple(self.stages))
        object.__setattr__(self, "badness_only", tuple(self.badness_only))

    @property
    def label(self) -> str:
        """'P2 zuo' style name, as the report and tables show a method."""
        return f"{self.paper} {self.name}"


_REGISTRY: dict[str, MethodSpec] = {}
_DISCOVERED = False


def register(spec: MethodSpec) -> MethodSpec:
    """Add ``spec`` (re-registering the same name replaces it); returns it for use as a constant."""
    if not spec.name.isidentifier():
        raise ValueError(f"method name '{spec.name}' must be a Python identifier (it names a params section)")
    if spec.badness_sign not in (1.0, -1.0):
        raise ValueError(f"method '{spec.name}': badness_sign must be +1 or -1, got {spec.badness_sign}")
    wrong = [c.metric for c in spec.claims if (c.method, c.paper) != (spec.name, spec.paper)]
    if wrong:
        raise ValueError(f"method '{spec.name}': claims {wrong} name another method or paper")
    _REGISTRY[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    """Remove a method (tests that register a toy method clean up with this)."""
    _REGISTRY.pop(name, None)


def _discover() -> None:
    global _DISCOVERED
    if _DISCOVERED:
        return
    _DISCOVERED = True
    import mriqa_lib.methods as pkg

    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
        if info.ispkg:
            importlib.import_module(f"{pkg.__name__}.{info.name}")


def methods() -> dict[str, MethodSpec]:
    """Every registered method, in paper order (then by name)."""
    _discover()
    return dict(sorted(_REGISTRY.items(), key=lambda kv: (kv[1].paper, kv[0])))


def names() -> tuple[str, ...]:
    """The registered method names, in paper order."""
    return tuple(methods())


def get(name: str) -> MethodSpec:
    """The spec of ``name``; a clear error naming the known methods otherwise."""
    found = methods().get(name)
    if found is None:
        raise KeyError(f"unknown method '{name}'; known: {', '.join(names())}")
    return found
