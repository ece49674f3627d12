"""Replay targets, one module per backend, registered by name in ``replay.targets.base.TARGETS``."""
