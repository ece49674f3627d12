"""A fault-injecting proxy on 127.0.0.1 between AWS clients and the emulator (``spec``, ``server``).

Production code does not know it exists: it is one more endpoint URL. It injects throttling, 5xx
answers, connection resets and slow answers at set, seeded rates, in each service's own error shapes,
and enforces Kinesis' per-shard limits (``limits``), so the retry paths of the replay, the source and
the sinks run against what AWS really answers.
"""
