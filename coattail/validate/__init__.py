"""Validation of a run: labels (precision and recall), golden files, and agreement with the reference.

``validate_run(run_dir)`` reads only the run directory (its outputs, the labels it recorded and the
reference's outputs) and returns a ``RunValidation``; ``coattail validate`` prints it and exits non-zero
on a miss.
"""

from __future__ import annotations

from coattail.validate.agreement import Agreement, compare_with_reference
from coattail.validate.golden import GoldenComparison, compare_golden, write_golden
from coattail.validate.labels import LabelValidation, validate_labels

__all__ = [
    "Agreement",
    "GoldenComparison",
    "LabelValidation",
    "compare_golden",
    "compare_with_reference",
    "validate_labels",
    "write_golden",
]
