"""Replay targets, one module per backend; ``coattail replay --target`` picks one by name."""
