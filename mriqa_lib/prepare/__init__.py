"""Real scans in: one preparation chain (orientation, brain extraction, registration, input QC)
for ``mriqa score`` and the real-data adapters. See :mod:`mriqa_lib.prepare.chain`."""

from .chain import RECORD_COLUMNS, Prepared, PrepareError, canonical, prepare_scan
from .params import PreparationParams

__all__ = ["RECORD_COLUMNS", "Prepared", "PrepareError", "PreparationParams", "canonical", "prepare_scan"]
