"""Contracts every part of the project shares: errors, event schemas and ids, tapes, labels, times.

``core`` imports nothing else of this project, so the production pipeline and the harness can both
depend on it (tests/test_layers.py enforces the layering).
"""
