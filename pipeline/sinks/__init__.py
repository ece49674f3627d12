"""Where a batch's results go: ``base`` (lifecycle, exactly-once bookkeeping) and one module per backend."""
