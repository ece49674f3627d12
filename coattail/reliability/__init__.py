"""Reliability suites: what the pipeline survives (``crash``: SIGKILLs of ``coattail pipeline run``)."""
