"""What the on-chain readers share: token lookup, the transfer row, its record rules and the counts.

A transfer whose token contract is not in ``config/tokens.yaml`` is skipped and counted under
``unknown token`` (the note names the contracts): nobody can say what its amount is worth. A
zero-amount transfer (common on chain: spam and approvals' side effects) is skipped and counted under
``zero amount``. Everything else that breaks MOD-004's record rules (``pipeline.onchain.transfer_reason``)
is a bad line: an error, or with ``--skip-bad`` counted and written to the reject file.
"""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from typing import Any, Final

import pyarrow as pa

from core.events import TRANSFER_SCHEMA
from pipeline.onchain import TokensConfig, load_tokens, normalize_address, token_amount, transfer_reason
from replay.readers.base import BadLines, Chunk, Reader, Stats

UNKNOWN_TOKEN: Final = "unknown token"
ZERO_AMOUNT: Final = "zero amount"


class TransferReader(Reader):
    """A reader of on-chain transfers: it needs the token table (``config/tokens.yaml`` unless given)."""

    def __init__(self, tokens: TokensConfig | None = None) -> None:
        self.tokens = tokens if tokens is not None else load_tokens()


class TransferRows:
    """Builds checked transfer rows of one chain for one file, counting what it skips."""

    def __init__(self, tokens: TokensConfig, chain: str, path: str, bad: BadLines, stats: Stats) -> None:
        self.tokens = tokens
        self.chain = chain
        self.path = path
        self.bad = bad
        self.stats = stats
        self.rows: list[dict[str, Any]] = []
        self._unknown: set[str] = set()

    def add(
        self,
        *,
        where: int | None,
        raw: str,
        contract: str,
        tx_hash: str,
        log_index: int,
        block: int,
        ts_event: int,
        from_addr: str,
        to_addr: str,
        value: int | Fraction,
        scaled: bool,
    ) -> None:
        """One transfer: ``value`` is the token's integer value (``scaled`` False) or already in token
        units (``scaled`` True, as explorers export it)."""
        token = self.tokens.token(self.chain, contract)
        if token is None:
            self.stats.skipped[UNKNOWN_TOKEN] += 1
            self._unknown.add(normalize_address(self.chain, contract))
            return
        if value == 0:
            self.stats.skipped[ZERO_AMOUNT] += 1
            return
        amount = float(Fraction(value)) if scaled else token_amount(value, token.decimals)
        row = {
            "chain": self.chain,
            "tx_hash": normalize_address(self.chain, tx_hash),
            "log_index": log_index,
            "block": block,
            "ts_event": ts_event,
            "ts_recv": None,
            "asset": self.tokens.asset_of(token.symbol),
            "amount": amount,
            "from_addr": normalize_address(self.chain, from_addr),
            "to_addr": normalize_address(self.chain, to_addr),
        }
        reason = transfer_reason(row)
        if reason is not None:
            self.bad(self.path, where, f"transfer breaks the record rules: {reason}", raw)
            return
        self.rows.append(row)
        self.stats.events["transfer"] += 1

    def chunks(self) -> Iterator[Chunk]:
        """The rows built, as one chunk (call once the file is read): names the unknown contracts in
        the import's notes."""
        self._note_unknown()
        if self.rows:
            yield Chunk("transfer", pa.Table.from_pylist(self.rows, schema=TRANSFER_SCHEMA))

    def _note_unknown(self) -> None:
        if self._unknown:
            listed = ", ".join(sorted(self._unknown)[:5]) + (" ..." if len(self._unknown) > 5 else "")
            self.stats.notes.append(
                f"{self.path}: skipped transfers of {len(self._unknown)} token(s) not in config/tokens.yaml "
                f"({listed}); add a token there to import its transfers"
            )
