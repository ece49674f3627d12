"""Readers of recorded market-data formats; ``import_files`` turns them into tapes.

One module per format (``binance_csv``, ``binance_ws``, ``coinbase_ws``, ``tardis``; on-chain transfers:
``eth_logs``, ``etherscan_csv``), the shared parts in ``base``, ``lines``, ``csvio`` and ``transfers``,
format detection in ``detect``.
"""

from replay.readers.base import REGISTRY, Reader
from replay.readers.detect import detect_format, reader_for
from replay.readers.importer import ImportResult, import_files

__all__ = ["REGISTRY", "ImportResult", "Reader", "detect_format", "import_files", "reader_for"]
