"""An explorer's token-transfer CSV export (Etherscan's "Download CSV Export"), as transfers.

Two layouts exist, both with a header row of quoted names:

- an address's token transfers (``export-address-token-0x....csv``): ``Txhash`` (or ``Transaction
  Hash``), ``Blockno``, ``UnixTimestamp``, ``DateTime (UTC)``, ``From``, ``To``, ``TokenValue`` (or
  ``Value``), ..., ``ContractAddress``, ``TokenName``, ``TokenSymbol``;
- one token's transfers (``export-token-0x<contract>.csv``): ``Txhash``, ``Blockno``,
  ``UnixTimestamp``, ``DateTime``, ``From``, ``To``, ``Quantity`` (``Method``): the contract is the
  one in the file name.

Amounts are already in token units, written with thousands separators (``"3,067.671"``): read exactly
and rounded to float once. The token (asset, wrapped mapping) comes from ``config/tokens.yaml`` by
contract address, as for ``eth_getLogs``. An export has **no log index**: a transfer's ``log_index``
is its ordinal among the file's rows of the same transaction, in file order (0, 1, ...), so the
identity ``(chain, tx_hash, log_index)`` is stable for one file but need not match the chain's log
index. The block time is ``UnixTimestamp`` (seconds); ``ts_recv`` is null.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Final

from core.errors import ReaderError
from replay.readers.base import BadLines, Chunk, Stats, register
from replay.readers.lines import open_text
from replay.readers.transfers import TransferReader, TransferRows

_HASH: Final = ("Txhash", "Transaction Hash")
_AMOUNT: Final = ("TokenValue", "Quantity", "Value")
_FILE_CONTRACT: Final = re.compile(r"export-token-(0x[0-9a-fA-F]{40})")
_NUMBER: Final = re.compile(r"^[0-9][0-9,]*(\.[0-9]+)?$")


@register
class EtherscanCsvReader(TransferReader):
    """Etherscan-style token-transfer CSV exports."""

    name = "etherscan-csv"
    source = "etherscan-csv"

    @classmethod
    def sniff(cls, path: Path, head: str) -> bool:
        first = head.splitlines()[0] if head else ""
        return "Blockno" in first and "UnixTimestamp" in first and any(a in first for a in _AMOUNT)

    def read(self, path: Path, bad: BadLines, stats: Stats) -> Iterator[Chunk]:
        out = TransferRows(self.tokens, "ethereum", str(path), bad, stats)
        with open_text(path) as fh:
            rows = csv.DictReader(fh)
            names = rows.fieldnames or []
            hash_col = next((c for c in _HASH if c in names), None)
            amount_col = next((c for c in _AMOUNT if c in names), None)
            found = (("Txhash", hash_col), ("TokenValue or Quantity", amount_col))
            missing = [n for n, c in found if c is None]
            missing += [n for n in ("Blockno", "UnixTimestamp", "From", "To") if n not in names]
            if missing:
                problem = f"not a token-transfer export: no {', '.join(missing)} column"
                raise ReaderError(str(path), 1, problem)
            file_contract = _FILE_CONTRACT.search(path.name)
            if "ContractAddress" not in names and file_contract is None:
                raise ReaderError(str(path), 1, "no ContractAddress column and no contract in the file name "
                                  "(export-token-0x<contract>.csv): rename the file after its token")
            assert hash_col is not None and amount_col is not None
            ordinal: Counter[str] = Counter()
            for row in rows:
                stats.lines += 1
                line = rows.line_num
                raw = ",".join(str(v) for v in row.values())
                tx_hash = (row.get(hash_col) or "").strip()
                amount = (row.get(amount_col) or "").strip()
                contract = row.get("ContractAddress") or (file_contract.group(1) if file_contract else "")
                try:
                    if not _NUMBER.match(amount):
                        raise ValueError(f"amount {amount!r} is not a number")
                    block, seconds = int(row["Blockno"]), int(row["UnixTimestamp"])
                except (ValueError, TypeError) as e:
                    bad(str(path), line, f"bad field: {e}", raw)
                    continue
                log_index = ordinal[tx_hash]
                ordinal[tx_hash] += 1
                out.add(
                    where=line, raw=raw, contract=contract.strip(), tx_hash=tx_hash, log_index=log_index,
                    block=block, ts_event=seconds * 1_000_000, from_addr=row["From"].strip(),
                    to_addr=row["To"].strip(), value=Fraction(amount.replace(",", "")), scaled=True,
                )
        yield from out.chunks()
