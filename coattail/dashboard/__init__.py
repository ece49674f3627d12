"""``coattail dashboard``: the built React dashboard (``dashboard/``) and the alert API served together on
127.0.0.1, over a finished run, the tier's table, or a run in progress (``coattail run --live``).
Routes and the harness-only ones: ``docs/DASHBOARD.md``."""
