"""The per-run HTML report (self-contained: plotly inlined) and its inputs."""

from __future__ import annotations

from coattail.report.builder import BacktestView, ReportInputs, build_report, latency_ms, latency_percentiles

__all__ = ["BacktestView", "ReportInputs", "build_report", "latency_ms", "latency_percentiles"]
