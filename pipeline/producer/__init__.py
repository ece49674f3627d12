"""The producer: exchange connectors into Kinesis (``manager``), through one Kinesis writer."""
