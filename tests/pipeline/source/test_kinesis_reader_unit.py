"""The Kinesis reader's shard lineage, batch bounds, planning and both read paths (executor tasks, driver
hand-over) against a scripted Kinesis (unit test: moto's split keeps writing to the parent and never
closes it, so closed parents are scripted here)."""

from __future__ import annotations

import datetime as dt
import json
import pickle
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import PipelineError
from pipeline.aws import MAX_ATTEMPTS
from pipeline.kpl import aggregate
from pipeline.source import kinesis_reader
from pipeline.source.kinesis_reader import KinesisStreamReader
from pipeline.source.kinesis_records import HandoverPartition, ShardPartition

ARRIVAL = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


class ScriptedKinesis:
    """Shards with fixed records; a closed shard ends with NextShardIterator = None, like AWS. A shard's
    optional ``data`` maps a sequence number to its record's bytes (default ``b"<shard>:<seq>"``)."""

    def __init__(self, shards: dict[str, dict[str, Any]]) -> None:
        self.shards = shards
        self.pages: list[int] = []  # bytes of every GetRecords answer, in call order

    def list_shards(self, **_: Any) -> dict[str, Any]:
        return {"Shards": [{"ShardId": sid, **{k: v for k, v in s.items() if k.endswith("ParentShardId")}}
                           for sid, s in self.shards.items()]}

    def get_shard_iterator(self, **args: Any) -> dict[str, Any]:
        seqs = [int(r) for r in self.shards[args["ShardId"]]["records"]]
        after = args.get("StartingSequenceNumber")
        start = 0 if after is None else sum(1 for s in seqs if s <= int(after))
        return {"ShardIterator": f"{args['ShardId']}|{start}"}

    def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:  # noqa: N803
        sid, pos = ShardIterator.split("|")
        shard, i = self.shards[sid], int(pos)
        chunk = shard["records"][i : i + Limit]
        data = shard.get("data", {})
        recs = [{"SequenceNumber": s, "PartitionKey": "k", "Data": data.get(s, f"{sid}:{s}".encode()),
                 "ApproximateArrivalTimestamp": ARRIVAL} for s in chunk]
        self.pages.append(sum(len(r["Data"]) for r in recs))
        end = i + len(chunk)
        closed_and_read = shard["closed"] and end >= len(shard["records"])
        # 0 once the page reaches the last record; a coarse clock (moto's whole ms) says 0 for any page
        behind = 0 if end >= len(shard["records"]) or shard.get("coarse") else 1_000
        return {"Records": recs, "MillisBehindLatest": behind,
                "NextShardIterator": None if closed_and_read else f"{sid}|{end}"}


def data_of(batches: Any) -> list[bytes]:
    return [d for b in batches for d in b.column("data").to_pylist()]


def drain(reader: KinesisStreamReader, triggers: int = 50) -> list[list[bytes]]:
    """Run triggers as Spark does: each batch's rows from ``getCache`` when handed over, else from its
    partitions' ``read`` (every planned range is also read back and must give the same rows)."""
    batches = []
    start = reader.initialOffset()
    for _ in range(triggers):
        end = reader.latestOffset()
        parts = reader.partitions(start, end)
        if not parts:
            break
        handed = reader.getCache(start, end)
        if reader._files is not None:  # the runner's driver mode: from a file, never through Spark
            assert handed is None
            table = reader._files.take(end)
            handed = None if table is None else table.to_batches()
        read_back = [d for part in parts for d in data_of(reader.read(part))]
        if handed is None:
            assert all(isinstance(p, ShardPartition) for p in parts)
        else:
            assert data_of(handed) == read_back  # the hand-over and the executors agree
        batches.append(read_back)
        reader.commit(end)
        start = end
    return batches


SCRIPTED: dict[tuple[tuple[str, str], ...], ScriptedKinesis] = {}


def make_reader(
    shards: dict[str, dict[str, Any]], max_records: int, driver_read_max: int = 0,
    handover_dir: Path | None = None, read_ahead: bool = False,
) -> KinesisStreamReader:
    """A reader whose driver and tasks both talk to one ``ScriptedKinesis`` (``reader._client``)."""
    options = {"stream": "s", "max_records": str(max_records), "endpoint": "http://127.0.0.1:1",
               "driver_read_max_records": str(driver_read_max)}
    if handover_dir is not None:
        options["handover_dir"] = str(handover_dir)
    if read_ahead:
        options["read_ahead"] = "true"
    reader = KinesisStreamReader(options)
    reader._client = SCRIPTED[tuple(sorted(options.items()))] = ScriptedKinesis(shards)
    return reader


@pytest.fixture(autouse=True)
def tasks_read_the_scripted_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    """``read`` (the executors' side) gets the scripted client of the reader with the same options."""
    monkeypatch.setattr(kinesis_reader, "_task_kinesis", SCRIPTED.__getitem__)
    SCRIPTED.clear()


def test_split_children_start_after_the_parent_is_read_to_its_end() -> None:
    shards: dict[str, dict[str, Any]] = {
        "shardId-0": {"records": ["1", "2", "3", "4", "5"], "closed": True},
        "shardId-1": {"records": ["6", "8"], "closed": False, "ParentShardId": "shardId-0"},
        "shardId-2": {"records": ["7", "9", "10"], "closed": False, "ParentShardId": "shardId-0"},
    }
    batches = drain(make_reader(shards, max_records=3))
    flat = [b for batch in batches for b in batch]
    assert sorted(flat) == sorted(f"{sid}:{s}".encode() for sid, sh in shards.items() for s in sh["records"])
    assert all(len(b) <= 3 for b in batches)
    parent_last = max(i for i, b in enumerate(batches) if any(x.startswith(b"shardId-0") for x in b))
    child_first = min(i for i, b in enumerate(batches) if any(not x.startswith(b"shardId-0") for x in b))
    assert parent_last < child_first  # a key's events never overtake across a split


def test_a_page_that_reaches_the_tip_ends_the_shards_walk_and_the_next_trigger_says_caught_up(
    tmp_path: Path,
) -> None:
    shards: dict[str, dict[str, Any]] = {"shardId-0": {"records": ["1", "2", "3"], "closed": False}}
    reader = make_reader(shards, max_records=100)
    reader.status_path = str(tmp_path / "status.json")
    start = reader.initialOffset()
    end = reader.latestOffset()
    assert all(reader._client.pages)  # no GetRecords for the empty page after the tip
    assert not json.loads((tmp_path / "status.json").read_text())["caught_up"]
    assert [d for p in reader.partitions(start, end) for d in data_of(reader.read(p))] == [
        b"shardId-0:1", b"shardId-0:2", b"shardId-0:3"]
    shards["shardId-0"]["records"].append("4")  # arrived after that page: the next trigger reads it
    assert all(len(b) == 2 for b in drain(make_reader({"shardId-0": {  # full pages go on, whatever they say
        "records": [str(i) for i in range(1, 9)], "closed": False, "coarse": True}}, max_records=2)))
    assert reader.latestOffset()["shards"]["shardId-0"]["seq"] == "4"
    assert reader.latestOffset() == {"shards": {"shardId-0": {"seq": "4", "done": False}}}
    assert json.loads((tmp_path / "status.json").read_text())["caught_up"]  # the empty page says so


def test_merge_child_waits_for_both_parents_and_status_reports_caught_up(tmp_path: Any) -> None:
    shards = {
        "shardId-0": {"records": ["1", "3"], "closed": True},
        "shardId-1": {"records": ["2", "4", "5"], "closed": True},
        "shardId-2": {"records": ["6"], "closed": False, "ParentShardId": "shardId-0",
                      "AdjacentParentShardId": "shardId-1"},
    }
    reader = make_reader(shards, max_records=2)
    reader.status_path = str(tmp_path / "status.json")
    batches = drain(reader)
    assert batches[-1] == [b"shardId-2:6"]
    assert sum(len(b) for b in batches) == 6
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["caught_up"] and set(status["shards"]) == set(shards)


def test_a_small_batch_is_handed_over_once_and_reads_back_the_same_from_kinesis() -> None:
    shards: dict[str, dict[str, Any]] = {
        "shardId-0": {"records": ["1", "2", "3"], "closed": False},
        "shardId-1": {"records": ["4", "5"], "closed": False},
    }
    reader = make_reader(shards, max_records=100, driver_read_max=5)
    start = reader.initialOffset()
    end = reader.latestOffset()
    (part,) = reader.partitions(start, end)
    assert isinstance(part, HandoverPartition)
    handed = reader.getCache(start, end)
    assert handed is not None
    rows = pa.Table.from_batches(list(handed)).column("data").to_pylist()
    assert rows == [f"{sid}:{s}".encode() for sid, sh in shards.items() for s in sh["records"]]
    assert reader.getCache(start, end) is None  # Spark takes it once; its block manager keeps it
    # were Spark's copy lost, an executor reads the partition again from Kinesis, to the same rows
    assert pa.Table.from_batches(list(reader.read(part))).column("data").to_pylist() == rows


def test_a_small_batch_handed_over_in_a_file_is_the_batch_its_end_offset_names(tmp_path: Path) -> None:
    shards: dict[str, dict[str, Any]] = {
        "shardId-0": {"records": ["1", "2", "3"], "closed": False},
        "shardId-1": {"records": ["4", "5"], "closed": False},
    }
    reader = make_reader(shards, max_records=3, driver_read_max=5, handover_dir=tmp_path)
    start = reader.initialOffset()
    end = reader.latestOffset()
    (part,) = reader.partitions(start, end)
    assert isinstance(part, HandoverPartition)
    assert reader.getCache(start, end) is None  # nothing enters Spark's block manager
    files = reader._files
    assert files is not None
    # the taker names the batch by the end offset read back from the offset log (JSON, keys reordered)
    table = files.take(json.loads(json.dumps(end, sort_keys=True)))
    assert table is not None
    assert table.column("data").to_pylist() == data_of(reader.read(part))
    assert files.take(end) is None  # taken once
    # a batch nobody took (its taker read it through Spark) is dropped once Spark commits it
    start, end = end, reader.latestOffset()
    (part,) = reader.partitions(start, end)
    assert files.path(end).exists()
    reader.commit(end)
    assert not any(tmp_path.iterdir())
    assert data_of(reader.read(part)) == [b"shardId-0:2"]  # the rest of the budget-split stream


def test_a_batch_above_the_handover_bound_goes_to_one_task_per_shard() -> None:
    shards: dict[str, dict[str, Any]] = {
        "shardId-0": {"records": ["1", "2", "3"], "closed": False},
        "shardId-1": {"records": ["4", "5", "6"], "closed": False},
    }
    reader = make_reader(shards, max_records=100, driver_read_max=5)
    start = reader.initialOffset()
    end = reader.latestOffset()
    parts = reader.partitions(start, end)
    assert [type(p) for p in parts] == [ShardPartition, ShardPartition]
    assert reader.getCache(start, end) is None
    assert not reader._cache  # nothing of a batch read by the tasks stays on the driver
    assert data_of(reader.read(parts[1])) == [b"shardId-1:4", b"shardId-1:5", b"shardId-1:6"]


def test_planning_a_big_batch_holds_one_page_and_ships_ranges_whatever_its_size() -> None:
    """The driver's bytes per trigger (what it keeps, what the partitions carry) do not grow with the
    batch: two batches a hundred times apart in size ship partitions of the same size, and the big one
    (10 MB) is walked in GetRecords pages of at most ``PAGE_BYTES``."""
    shipped = []
    for n in (100, 10_000):
        records = [str(i) for i in range(1, n + 1)]
        data = {s: b"x" * 1_000 for s in records}
        reader = make_reader({"shardId-0": {"records": records, "data": data, "closed": False}},
                             max_records=n, driver_read_max=50)
        start = reader.initialOffset()
        end = reader.latestOffset()
        (part,) = reader.partitions(start, end)
        assert isinstance(part, ShardPartition) and part.end == str(n)
        assert not reader._cache and not len(reader._handover)
        shipped.append(len(pickle.dumps(part)))
        pages = reader._client.pages
        assert max(pages) <= kinesis_reader.PAGE_BYTES and sum(pages) == n * 1_000
        assert len(data_of(reader.read(part))) == n
    assert shipped[0] + 8 >= shipped[1]  # a few digits more in the sequence number, nothing else


def test_a_task_reads_its_range_in_pages_that_stop_near_its_end() -> None:
    """An emulator answers GetRecords with as many records as asked (AWS caps an answer at 10 MB): a
    task reading the first 40 of 2,000 records of 100 kB fetches about its range, not the shard's tail."""
    records = [str(i) for i in range(1, 2_001)]
    data = {s: s.encode().ljust(100_000, b"x") for s in records}
    reader = make_reader({"shardId-0": {"records": records, "data": data, "closed": False}}, max_records=1)
    client = reader._client
    got = data_of(reader.read(ShardPartition("shardId-0", None, "40")))
    assert got == [data[s] for s in records[:40]]
    assert max(client.pages) <= kinesis_reader.READ_PAGE_BYTES
    assert sum(client.pages) <= 40 * 100_000 + kinesis_reader.READ_PAGE_BYTES


@st.composite
def kpl_shards(draw: st.DrawFn) -> dict[str, dict[str, Any]]:
    """One to three shards of plain and KPL-aggregated records (1 to 6 user records each), sequence
    numbers increasing across the stream, some shards closed with no children; ``users``: every user
    record's payload in shard order."""
    shards: dict[str, dict[str, Any]] = {}
    seq = 0
    for k in range(draw(st.integers(1, 3))):
        sid = f"shardId-{k}"
        records, data, users = [], {}, []
        for _ in range(draw(st.integers(0, 12))):
            seq += draw(st.integers(1, 3))
            s = str(seq)
            records.append(s)
            payloads = [("k", f"{sid}:{s}:{u}".encode()) for u in range(draw(st.integers(1, 6)))]
            data[s] = aggregate(payloads)[0].data if len(payloads) > 1 else payloads[0][1]
            users += [p for _, p in payloads]
        shards[sid] = {"records": records, "data": data, "closed": draw(st.booleans()), "users": users}
    return shards


@given(st.data())
def test_both_read_paths_give_every_user_record_once_in_shard_order(data: st.DataObject) -> None:
    shards = data.draw(kpl_shards())
    max_records = data.draw(st.integers(1, 20), label="max_records")
    results = []
    bound = data.draw(st.integers(1, 30), label="driver_read_max")
    with tempfile.TemporaryDirectory() as folder:
        paths = ((0, None, False), (bound, None, False), (10**6, None, False), (bound, Path(folder), False),
                 (bound, Path(folder), True), (10**6, Path(folder), True))
        for driver_read_max, files, ahead in paths:
            batches = drain(make_reader(shards, max_records, driver_read_max, files, ahead), triggers=500)
            for batch in batches:
                assert len(batch) <= max_records + 6 * len(shards)  # a record a shard past the budget at most
            results.append(batches)
        assert not any(Path(folder).iterdir())  # every file taken (or dropped at its commit)
    assert all(r == results[0] for r in results)  # same batches, whichever path read them
    by_shard: dict[str, list[bytes]] = {}
    for batch in results[0]:
        for row in batch:
            by_shard.setdefault(row.decode().split(":")[0], []).append(row)
    assert by_shard == {sid: sh["users"] for sid, sh in shards.items() if sh["users"]}


def test_the_shard_list_is_reused_until_a_shard_ends_or_it_is_old(monkeypatch: Any) -> None:
    shards: dict[str, dict[str, Any]] = {"shardId-0": {"records": ["1", "2"], "closed": True}}
    reader = make_reader(shards, max_records=100)
    calls: list[int] = []
    scripted = reader._client
    listing = scripted.list_shards

    def counting_list_shards(**args: Any) -> dict[str, Any]:
        calls.append(1)
        result: dict[str, Any] = listing(**args)
        return result

    scripted.list_shards = counting_list_shards
    reader.latestOffset()  # reads shard 0 to its end: the next trigger must look for children
    shards["shardId-1"] = {"records": ["3"], "closed": False, "ParentShardId": "shardId-0"}
    end = reader.latestOffset()
    assert end["shards"]["shardId-1"]["seq"] == "3"
    reader.latestOffset()
    assert len(calls) == 2  # the first trigger, then after the shard ended; cached in between
    clock = [time.monotonic() + kinesis_reader.SHARD_LIST_SECONDS + 1]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    reader.latestOffset()
    assert len(calls) == 3  # listed again once the cached list is older than SHARD_LIST_SECONDS


def test_the_handover_cache_stays_bounded_when_spark_never_takes_a_batch() -> None:
    records = [str(i) for i in range(1, 41)]
    shards: dict[str, dict[str, Any]] = {"shardId-0": {"records": records, "closed": False}}
    reader = make_reader(shards, max_records=2, driver_read_max=5)
    start = reader.initialOffset()
    planned = []
    for _ in range(20):  # a Spark that plans batches but never calls getCache
        end = reader.latestOffset()
        (part,) = reader.partitions(start, end)
        assert isinstance(part, HandoverPartition)
        planned.append((start, end, part))
        start = end
    assert len(reader._handover) <= 2
    first_start, first_end, first_part = planned[0]
    assert reader.getCache(first_start, first_end) is None  # dropped: its partition is read instead
    assert pa.Table.from_batches(list(reader.read(first_part))).column("data").to_pylist() == [
        b"shardId-0:1", b"shardId-0:2"
    ]
    last_start, last_end, _ = planned[-1]
    handed = reader.getCache(last_start, last_end)
    assert handed is not None
    rows = pa.Table.from_batches(list(handed)).column("data").to_pylist()
    assert rows == [b"shardId-0:39", b"shardId-0:40"]


class BehindKinesis:
    """One open shard whose GetRecords answers are scripted: empty pages that still lag the tip (real
    Kinesis returns those while an iterator crosses an empty stretch of the shard), then the tip."""

    def __init__(self, behind: list[int]) -> None:
        self.behind = behind
        self.calls = 0

    def list_shards(self, **_: Any) -> dict[str, Any]:
        return {"Shards": [{"ShardId": "shardId-0"}]}

    def get_shard_iterator(self, **_: Any) -> dict[str, Any]:
        return {"ShardIterator": "it-0"}

    def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:  # noqa: N803
        millis = self.behind[min(self.calls, len(self.behind) - 1)]
        self.calls += 1
        return {"Records": [], "MillisBehindLatest": millis, "NextShardIterator": f"it-{self.calls}"}


def test_an_empty_page_behind_the_tip_is_not_caught_up(tmp_path: Any) -> None:
    reader = KinesisStreamReader({"stream": "s", "endpoint": "http://127.0.0.1:1",
                                  "status_path": str(tmp_path / "status.json")})
    kinesis = BehindKinesis([5_000, 0])
    reader._client = kinesis
    statuses = []
    for _ in range(2):
        reader.latestOffset()
        statuses.append(json.loads((tmp_path / "status.json").read_text()))
    assert [s["shards"] for s in statuses] == [{"shardId-0": False}, {"shardId-0": True}]
    assert [s["caught_up"] for s in statuses] == [False, True]
    assert kinesis.calls == 2


class ThrottledKinesis(ScriptedKinesis):
    """GetRecords always throttled, as a call that outlived the retry policy sees it."""

    def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:  # noqa: N803
        from botocore.exceptions import ClientError

        error = {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "Rate exceeded"}}
        raise ClientError(error, "GetRecords")  # type: ignore[arg-type]


def test_a_task_that_cannot_read_its_range_says_where_and_after_how_many_attempts() -> None:
    shards: dict[str, dict[str, Any]] = {"shardId-0": {"records": ["1", "2"], "closed": False}}
    reader = make_reader(shards, max_records=100)
    start = reader.initialOffset()
    (part,) = reader.partitions(start, reader.latestOffset())
    SCRIPTED[tuple(sorted(reader.options.items()))] = ThrottledKinesis(shards)
    with pytest.raises(PipelineError) as caught:
        list(reader.read(part))
    message = str(caught.value)
    assert message.startswith("Kinesis at http://127.0.0.1:1 failed while reading shard shardId-0 of stream")
    assert f"after up to {MAX_ATTEMPTS} attempts" in message and "ProvisionedThroughputExceeded" in message


def test_the_read_ahead_plans_and_parses_the_next_batch_while_the_current_one_runs(tmp_path: Path) -> None:
    shards: dict[str, dict[str, Any]] = {
        "shardId-0": {"records": [str(i) for i in range(1, 11)], "closed": False},
        "shardId-1": {"records": [str(i) for i in range(20, 30)], "closed": False},
    }
    reader = make_reader(shards, max_records=4, driver_read_max=4, handover_dir=tmp_path, read_ahead=True)
    client = reader._client
    start = reader.initialOffset()
    end = reader.latestOffset()
    (part,) = reader.partitions(start, end)
    assert isinstance(part, HandoverPartition)
    ahead = reader._ahead
    assert ahead is not None
    planned = ahead.take()  # the next batch, walked and parsed while this one runs
    assert planned.start == end["shards"]
    assert all(span.parsed and span.records is not None and not len(span.records)
               for span in planned.kept.values())
    calls = len(client.pages)
    start, end = end, reader.latestOffset()
    assert len(client.pages) == calls  # the full budget came from the read-ahead: no GetRecords
    assert end["shards"] == planned.position
    assert reader.partitions(start, end)
    assert reader._files is not None
    table = reader._files.take(end)
    assert table is not None
    assert table.column("data").to_pylist() == [b"shardId-0:3", b"shardId-0:4", b"shardId-1:22",
                                                b"shardId-1:23"]


def test_a_paced_stream_goes_on_from_the_read_ahead_to_the_records_that_arrived_since(tmp_path: Path) -> None:
    shards: dict[str, dict[str, Any]] = {"shardId-0": {"records": ["1", "2"], "closed": False}}
    reader = make_reader(shards, max_records=10, driver_read_max=10, handover_dir=tmp_path, read_ahead=True)
    start = reader.initialOffset()
    end = reader.latestOffset()
    reader.partitions(start, end)
    assert reader._files is not None and reader._files.take(end) is not None
    shards["shardId-0"]["records"] += ["3", "4"]
    ahead = reader._ahead
    assert ahead is not None
    ahead.take()  # done before more records arrive: it planned 3 and 4
    shards["shardId-0"]["records"] += ["5", "6"]
    start, end = end, reader.latestOffset()
    plain = make_reader(shards, max_records=10)
    plain._position = {"shards": start["shards"]}
    assert end == plain.latestOffset()  # what a plain walk from there plans over the same records
    reader.partitions(start, end)
    table = reader._files.take(end)
    assert table is not None
    assert table.column("data").to_pylist() == [b"shardId-0:3", b"shardId-0:4", b"shardId-0:5",
                                                b"shardId-0:6"]


def test_a_read_ahead_that_fails_raises_on_the_next_trigger_and_keeps_nothing(tmp_path: Path) -> None:
    shards: dict[str, dict[str, Any]] = {"shardId-0": {"records": ["1", "2", "3", "4"], "closed": False}}
    reader = make_reader(shards, max_records=2, driver_read_max=2, handover_dir=tmp_path, read_ahead=True)
    start = reader.initialOffset()
    end = reader.latestOffset()
    reader._client = ThrottledKinesis(shards)  # the read-ahead's GetRecords outlive the retry policy
    reader._iters.clear()
    reader.partitions(start, end)
    with pytest.raises(PipelineError) as caught:
        reader.latestOffset()
    assert str(caught.value).startswith("Kinesis at http://127.0.0.1:1 failed while reading shard shardId-0")
    assert reader._position == end and not reader._cache  # no half batch planned
    reader._client = ScriptedKinesis(shards)  # Spark retries the trigger once Kinesis answers again
    start, end = end, reader.latestOffset()
    assert end["shards"]["shardId-0"]["seq"] == "4"
    reader.partitions(start, end)
    assert reader._files is not None
    table = reader._files.take(end)
    assert table is not None and table.column("data").to_pylist() == [b"shardId-0:3", b"shardId-0:4"]


def test_the_read_ahead_needs_the_file_hand_over() -> None:
    with pytest.raises(PipelineError, match="read_ahead needs handover_dir"):
        make_reader({"shardId-0": {"records": [], "closed": False}}, max_records=2, read_ahead=True)
