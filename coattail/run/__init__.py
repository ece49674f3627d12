"""Runs: orchestration (stack, pipeline, replay, validation, report) and the run directories they leave."""
