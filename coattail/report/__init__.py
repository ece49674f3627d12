"""The per-run HTML report (self-contained: plotly inlined) and its inputs."""

from __future__ import annotations

from coattail.report.builder import BacktestView, ReportInputs, build_report

__all__ = ["BacktestView", "ReportInputs", "build_report"]
