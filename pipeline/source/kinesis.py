"""Kinesis Data Streams as a Spark Structured Streaming source (Spark 4 Python Data Source API).

``spark.readStream.format("coattail-kinesis").option("stream", ...).load()`` yields ``RAW_SCHEMA`` rows:
one row per user record (KPL aggregates are de-aggregated with ``pipeline.kpl.deaggregate``).

Offsets (kept by Spark in the checkpoint's offset log) are per shard: ``{"shards": {shard_id: {"seq":
last consumed sequence number or null, "done": shard closed and fully read}}}``. A batch is the range
``(start.seq, end.seq]`` of every shard, so it can be read again, identically, from Kinesis.

How a trigger runs:

- ``latestOffset`` (driver) lists the shards, then walks each readable shard (open, or closed with
  records left; a child only once every parent is done, so a key's order survives a split or a merge)
  with GetRecords until ``max_records`` user records are planned across shards. It keeps the sequence
  numbers where each shard's range ends, not the records: past the hand-over bound below, the driver
  holds one GetRecords page at a time, so its memory and what it ships per trigger stay bounded
  whatever the batch size (``benchmarks/bench_source.py`` measures it).
- ``partitions`` makes one input partition per shard with records in the batch: the shard and its
  range ``(start, end]``, a few dozen bytes. ``read`` (executors) reads that range from Kinesis
  (GetShardIterator after ``start``, GetRecords up to ``end``) and turns it into Arrow record batches.
  The same range gives the same records, so a retried task or a batch re-run after a restart reads
  exactly what the first attempt read. AWS errors there go through the one retry policy of
  ``pipeline.aws`` and come out as ``pipeline.aws.failure`` messages.
- A small batch (at most ``driver_read_max_records`` user records) skips the executors: the driver
  keeps its records while planning, ``partitions`` de-aggregates and parses them right there and Spark
  takes the Arrow batches from ``getCache`` into its block manager, as it does for a
  ``SimpleDataSourceStreamReader``. That saves the Python worker round trip of every task (about 120
  ms a trigger on 2 cores) and a second read of the range, which is most of the latency of a paced
  stream; big batches fan out to one task per shard. (Kinesis has no call that returns the sequence
  number ``n`` records ahead, so planning a bounded batch means walking it: a big batch crosses the
  network twice, once to the driver, which drops it page by page, and once to its task.)
  Spark only takes that path from a reader that is a ``_SimpleStreamReaderWrapper`` (a private class
  of pyspark 4.0, pinned in pyproject; tests/pipeline/source check both paths), hence the base class.
  With the option ``handover_dir`` (the runner's driver mode) the batches go to a file there instead,
  which the foreachBatch function reads without running a Spark job over the batch
  (``handover.HandoverFiles``): the rows never enter the JVM, and Spark's progress counts no input
  rows for such a batch.
- With ``read_ahead`` too (driver mode), the planner does not wait for the driver: once a batch's
  file is written, a background thread walks the next batch from that batch's end, as ``latestOffset``
  would, and parses its records page by page (``read_ahead``). The next ``latestOffset`` takes that
  walk if it starts at the reader's position (per shard, where it started at the shard's position),
  walks on where it stopped short of the budget, and raises the thread's failure if it had one, with
  nothing of it kept; ``partitions`` then only writes the rows. One batch is held ahead at most; a
  restart (a new planner) plans without it.
- After a restart the reader continues from the last offset in the checkpoint's offset log (option
  ``checkpoint``), which is where Spark resumes, after checking that the stream is the one the
  checkpoint was written against (``stream_identity``: a recreated stream is refused).

The shard list is cached between triggers and listed again once a shard is read to its end (a split
or a merge makes children) or after ``SHARD_LIST_SECONDS``: one ``ListShards`` call less per trigger.

The reader writes a small JSON status file (option ``status_path``) after every ``latestOffset``: per
shard whether it is caught up (the last fetch returned nothing new). ``pipeline.runner`` uses it to
know when every record has been consumed.

Modules, one job each: ``kinesis_reader`` (the stream reader), ``kinesis_records`` (a shard's
records, a planned range and the input partitions), ``arrow_build`` (records to Arrow), ``handover``
(the batches waiting for ``getCache``, bounded, or for the foreachBatch function, in a file),
``offsets`` (the offset log and the status file, shared with the tape source), ``read_ahead`` (the
next batch walked and parsed while the driver runs the current one).
"""

from __future__ import annotations

from typing import Any, Final

from pyspark.sql.datasource import DataSource, DataSourceStreamReader

from core.errors import PipelineError
from pipeline.record_schema import PARSED_DDL, RAW_DDL

FORMAT: Final = "coattail-kinesis"


class KinesisDataSource(DataSource):
    """``format("coattail-kinesis")``. Options: ``stream`` (required); ``runtime`` (a
    ``RuntimeSettings`` as JSON) or ``endpoint``, ``region``, ``profile``, ``allow_real_aws``;
    ``max_records`` (user records per micro-batch); ``driver_read_max_records`` (batches up to this many
    user records skip the executors, see the module docstring; 0 never); ``checkpoint`` (the query's
    checkpoint location, to resume); ``status_path``; ``handover_dir`` (a local directory: small
    batches are handed over in files there, not through ``getCache``); ``read_ahead`` (``true``, with
    ``handover_dir`` only: the next batch is read and parsed while the current one runs); ``parse``
    (``true``: yield ``PARSED_SCHEMA`` rows, parsed where the records are read, instead of raw records)."""

    @classmethod
    def name(cls) -> str:
        """The format name: ``coattail-kinesis``."""
        return FORMAT

    def schema(self) -> str:
        """``PARSED_SCHEMA`` as DDL with the option ``parse=true``, else the raw records' DDL."""
        return PARSED_DDL if self.options.get("parse") == "true" else RAW_DDL

    def streamReader(self, schema: Any) -> DataSourceStreamReader:  # noqa: N802 (Spark API)
        """A ``KinesisStreamReader`` over the options; the option ``stream`` is required."""
        # imported here: Spark answers ``schema()`` in a planner process of its own, which needs none of it
        from pipeline.source.kinesis_reader import KinesisStreamReader

        if "stream" not in self.options:
            raise PipelineError("the coattail-kinesis source needs the option 'stream'")
        return KinesisStreamReader(dict(self.options))
