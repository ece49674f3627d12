"""``coattail bench``: the promotion gate's measurement (speed, latency and quality against a baseline)."""
