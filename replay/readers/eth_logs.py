"""Ethereum JSON-RPC ``eth_getLogs`` results for ERC-20 ``Transfer`` logs, as transfers.

The file holds one JSON-RPC response (``{"jsonrpc": "2.0", "id": ..., "result": [log, ...]}``), a batch
of responses (a JSON array of them, as a batch request returns), or a bare array of logs. A log is an
ERC-20 transfer when ``topics[0]`` is ``keccak256("Transfer(address,address,uint256)")`` and it has
exactly three topics (ERC-721's Transfer indexes the token id as a fourth): ``topics[1]`` and
``topics[2]`` are the sender and recipient (the last 20 bytes of each 32-byte word), ``data`` the
amount as one 32-byte big-endian integer. Other logs are skipped and counted; logs with
``removed: true`` (undone by a chain reorganisation) are dropped and counted under ``removed``.

Block time: a log has none in the JSON-RPC spec, so it comes from the log's ``blockTimestamp`` (nodes
that add it) or from an ``eth_getBlockByNumber`` result in the same batch (``number`` and
``timestamp``); a log whose block time is in neither is a bad line. The transaction hash, log index and
block number come from the log; ``ts_recv`` is null (the response says nothing of when it was fetched).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from core.errors import ReaderError
from replay.readers.base import BadLines, Chunk, Stats, register
from replay.readers.transfers import TransferReader, TransferRows

TRANSFER_TOPIC: Final = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
"""``keccak256("Transfer(address,address,uint256)")``, the topic of ERC-20 (and ERC-721) transfers."""
MAX_FILE_BYTES: Final = 512 * 1024 * 1024


@register
class EthLogsReader(TransferReader):
    """``eth_getLogs`` responses (one, a batch, or a bare array of logs)."""

    name = "eth-getlogs"
    source = "eth-getlogs"

    @classmethod
    def sniff(cls, path: Path, head: str) -> bool:
        text = head.lstrip()
        return text[:1] in ("{", "[") and ('"topics"' in head or ('"jsonrpc"' in head and '"result"' in head))

    def read(self, path: Path, bad: BadLines, stats: Stats) -> Iterator[Chunk]:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise ReaderError(str(path), None, f"larger than {MAX_FILE_BYTES >> 20} MiB; split the response")
        try:
            document = json.loads(path.read_bytes())
        except (ValueError, UnicodeDecodeError) as e:
            raise ReaderError(str(path), None, f"not valid JSON: {e}") from e
        results = _results(str(path), document)
        blocks = {
            _hex(r["number"]): _hex(r["timestamp"])
            for r in results if isinstance(r, dict) and "number" in r and "timestamp" in r
        }
        out = TransferRows(self.tokens, "ethereum", str(path), bad, stats)
        logs = [r for result in results if isinstance(result, list) for r in result]
        logs += [r for r in results if isinstance(r, dict) and "topics" in r]
        for i, log in enumerate(logs):
            stats.lines += 1
            _transfer(out, i, log, blocks, stats)
        yield from out.chunks()


def _results(path: str, document: Any) -> list[Any]:
    """The ``result`` of every response in the document (a bare log array is its own result)."""
    responses = document if isinstance(document, list) else [document]
    if responses and all(isinstance(r, dict) and "topics" in r for r in responses):
        return [responses]
    results = []
    for r in responses:
        if not isinstance(r, dict) or ("result" not in r and "error" not in r):
            raise ReaderError(path, None, 'expected JSON-RPC responses ({"result": ...}) or an array of logs')
        if "error" in r:
            raise ReaderError(path, None, f"the response holds a JSON-RPC error, not logs: {r['error']}")
        results.append(r["result"])
    return results


def _hex(value: Any) -> int:
    """A JSON-RPC quantity (``"0x1b4"``); ``ValueError`` when it is not one."""
    if not isinstance(value, str) or not value.startswith("0x"):
        raise ValueError(f"{value!r} is not a hex quantity")
    return int(value, 16)


def _transfer(out: TransferRows, i: int, log: Any, blocks: dict[int, int], stats: Stats) -> None:
    raw = json.dumps(log, separators=(",", ":"))
    if not isinstance(log, dict):
        out.bad(out.path, None, f"log #{i} is not an object", raw)
        return
    if log.get("removed") is True:
        stats.skipped["removed"] += 1
        return
    topics = log.get("topics")
    if not isinstance(topics, list) or not topics or topics[0] != TRANSFER_TOPIC:
        stats.skipped["not a Transfer log"] += 1
        return
    if len(topics) != 3:
        stats.skipped["ERC-721 Transfer"] += 1
        return
    try:
        block = _hex(log["blockNumber"])
        ts = _hex(log["blockTimestamp"]) if "blockTimestamp" in log else blocks.get(block)
        data = log["data"]
        if not (isinstance(data, str) and len(data) == 66):
            raise ValueError(f"data {data!r} is not one 32-byte word")
        contract, tx_hash = str(log["address"]), str(log["transactionHash"])
        log_index, value = _hex(log["logIndex"]), _hex(data)
    except (KeyError, ValueError) as e:
        out.bad(out.path, None, f"log #{i} is not a well-formed log: {e}", raw)
        return
    if ts is None:
        out.bad(out.path, None, f"log #{i}: no time for block {block}; use a node that returns "
                "blockTimestamp or add the block's eth_getBlockByNumber response to the batch", raw)
        return
    out.add(
        where=None, raw=raw, contract=contract, tx_hash=tx_hash, log_index=log_index, block=block,
        ts_event=ts * 1_000_000, from_addr="0x" + str(topics[1])[-40:], to_addr="0x" + str(topics[2])[-40:],
        value=value, scaled=False,
    )
