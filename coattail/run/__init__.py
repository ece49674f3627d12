"""Runs: orchestration (stack, pipeline, replay, validation, report) and the run directories they leave."""

from typing import Literal

Via = Literal["kinesis", "ws"]
"""How a run's events reach Kinesis: put by the replay, or through its WebSocket server and the producer."""
