"""Detector modules (MOD-001 ...) and their framework: ``base`` (the contract), ``registry`` (by id)."""
