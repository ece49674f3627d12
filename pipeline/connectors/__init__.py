"""Exchange connectors: turning exchange messages into events of the ``core.events`` schema."""
