"""Exchange connectors: turning exchange messages into events of the ``pipeline.events`` schema."""
