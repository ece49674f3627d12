"""Choosing a reader: by ``--format`` name, or by sniffing the file's name and first lines."""

from __future__ import annotations

from pathlib import Path

from core.errors import ReaderError
from pipeline.onchain import TokensConfig
from replay.readers import binance_csv, binance_ws, coinbase_ws, eth_logs, etherscan_csv, tardis
from replay.readers.base import REGISTRY, Reader
from replay.readers.lines import head_text
from replay.readers.transfers import TransferReader

# most specific first: a Tardis header also looks like a CSV, a zip is only Binance
_ORDER = (
    eth_logs.EthLogsReader,
    etherscan_csv.EtherscanCsvReader,
    tardis.TardisReader,
    binance_ws.BinanceWsReader,
    coinbase_ws.CoinbaseWsReader,
    binance_csv.BinanceCsvReader,
)


def detect_format(path: Path) -> str:
    """The format name of a file, or a ``ReaderError`` saying which formats exist."""
    if not path.is_file():
        raise ReaderError(str(path), None, "no such file")
    if path.stat().st_size == 0:
        raise ReaderError(str(path), None, "the file is empty")
    head = "" if path.suffix.lower() == ".zip" else head_text(path)
    for cls in _ORDER:
        if cls.sniff(path, head):
            return cls.name
    raise ReaderError(
        str(path), None, f"unknown format; pass --format with one of {', '.join(sorted(REGISTRY))}"
    )


def reader_for(name: str, tokens: TokensConfig | None = None) -> Reader:
    """An instance of the reader registered under ``name``; on-chain readers use ``tokens`` (default
    ``config/tokens.yaml``)."""
    cls = REGISTRY.get(name)
    if cls is None:
        raise ReaderError(name, None, f"unknown format {name!r}; choose one of {', '.join(sorted(REGISTRY))}")
    return cls(tokens) if issubclass(cls, TransferReader) else cls()
