"""On-chain facts every part shares: the token table, the wallet labels and the transfer record rules.

- ``config/tokens.yaml`` (``TokensConfig``): per chain, each token contract's symbol and decimals; the
  wrapped-token mapping (``WBTC`` is ``BTC``); the stablecoins, whose USD price is 1, and the market each
  one's flows count for (``market_of``). Ethereum addresses are lower-cased before any lookup
  (``normalize_address``).
- ``config/wallets.yaml`` (``WalletsConfig``): address -> entity and kind (``exchange``, ``fund``, ...),
  what MOD-010 labels a transfer's two ends with.
- ``transfer_reason``: MOD-004's record rules for a transfer (docs/DETECTORS.md), one reason code or
  ``None``; the readers apply them to what they import.

``token_amount`` turns a token's exact integer value into token units: the integer divided by
``10**decimals`` exactly (``Fraction``), rounded to float once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from fractions import Fraction
from pathlib import Path
from typing import Any, Final, Literal

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, model_validator

from core.events import CHAINS
from core.frozen import Frozen
from pipeline.instruments import InstrumentsConfig

Chain = Literal["ethereum", "solana"]
_ETH_ADDRESS: Final = re.compile(r"^0x[0-9a-f]{40}$")
_ETH_HASH: Final = re.compile(r"^0x[0-9a-f]{64}$")
_BASE58: Final = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_SOL_ADDRESS: Final = re.compile(f"^[{_BASE58}]{{32,44}}$")
_SOL_SIGNATURE: Final = re.compile(f"^[{_BASE58}]{{64,88}}$")


def normalize_address(chain: str, address: str) -> str:
    """The form an address is looked up and stored in: lower case on Ethereum (hex is case-free; the
    mixed case of EIP-55 is only a checksum), unchanged on Solana (base58 is case-sensitive)."""
    return address.strip().lower() if chain == "ethereum" else address.strip()


def valid_address(chain: str, address: str) -> bool:
    """Whether ``address`` is a well-formed (normalized) address of ``chain``."""
    pattern = _ETH_ADDRESS if chain == "ethereum" else _SOL_ADDRESS
    return bool(pattern.match(address))


def valid_tx_hash(chain: str, tx_hash: str) -> bool:
    """Whether ``tx_hash`` is a well-formed transaction id of ``chain`` (hash or signature)."""
    pattern = _ETH_HASH if chain == "ethereum" else _SOL_SIGNATURE
    return bool(pattern.match(tx_hash))


def token_amount(value: int | Fraction, decimals: int) -> float:
    """``value / 10**decimals`` computed exactly and rounded to float once."""
    return float(Fraction(value) / 10**decimals)


def _check_addresses(chains: Mapping[Chain, Mapping[str, Any]], what: str) -> None:
    """Refuse a config address that is malformed or not in its lookup form (``normalize_address``)."""
    for chain, entries in chains.items():
        for address in entries:
            if address != normalize_address(chain, address) or not valid_address(chain, address):
                raise ValueError(f"{chain} {what} address {address!r} is not a well-formed address in "
                                 "lookup form (Ethereum: 0x and 40 lower-case hex digits)")


class Token(Frozen):
    """One token contract of one chain."""

    symbol: str
    """The token's own symbol (``WBTC``); its asset is ``TokensConfig.asset_of(symbol)``."""
    decimals: int = Field(ge=0, le=36)


class TokensConfig(Frozen):
    """The shape of ``config/tokens.yaml``."""

    stablecoins: tuple[str, ...] = ()
    """Assets whose USD price is 1 (no reference instrument needed)."""
    stablecoin_markets: dict[str, str] = Field(default_factory=dict)
    """Stablecoin -> the asset whose market its flows count for (``USDT: BTC``): its transfers are keyed
    under that asset's reference instrument (``transfer_key``). A stablecoin not named counts for none."""
    wrapped: dict[str, str] = Field(default_factory=dict)
    """Token symbol -> the asset it wraps (``WBTC: BTC``)."""
    chains: dict[Chain, dict[str, Token]] = Field(default_factory=dict)
    """Per chain, contract (mint) address -> token."""

    @model_validator(mode="after")
    def _normalized(self) -> TokensConfig:
        _check_addresses(self.chains, "token")
        stray = sorted(set(self.stablecoin_markets) - set(self.stablecoins))
        if stray:
            raise ValueError(f"stablecoin_markets names {stray}, which are not in stablecoins "
                             f"{list(self.stablecoins)}; add them there or remove them")
        return self

    def market_of(self, asset: str) -> str | None:
        """The asset whose market a transfer of ``asset`` counts for: the asset itself, a stablecoin's
        configured market (``stablecoin_markets``), ``None`` for a stablecoin without one."""
        return self.stablecoin_markets.get(asset) if asset in self.stablecoins else asset

    def token(self, chain: str, address: str) -> Token | None:
        """The token at a contract address (normalized here), ``None`` when the table lacks it."""
        tokens: dict[str, Token] = self.chains.get(chain, {})  # type: ignore[call-overload]
        return tokens.get(normalize_address(chain, address))

    def asset_of(self, symbol: str) -> str:
        """The asset a token symbol stands for: the wrapped asset, else the symbol itself."""
        return self.wrapped.get(symbol, symbol)


WalletKind = Literal["exchange", "fund", "bridge", "contract", "other"]


class Wallet(Frozen):
    """What one address is."""

    entity: str
    kind: WalletKind


class WalletsConfig(Frozen):
    """The shape of a wallets file: per chain, address -> wallet."""

    chains: dict[Chain, dict[str, Wallet]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _normalized(self) -> WalletsConfig:
        _check_addresses(self.chains, "wallet")
        return self

    def wallet(self, chain: str, address: str) -> Wallet | None:
        """The wallet at an address (normalized here), ``None`` when unlabelled."""
        wallets: dict[str, Wallet] = self.chains.get(chain, {})  # type: ignore[call-overload]
        return wallets.get(normalize_address(chain, address))


DEFAULT_TOKENS: Final = Path(__file__).resolve().parent.parent / "config" / "tokens.yaml"
DEFAULT_WALLETS: Final = Path(__file__).resolve().parent.parent / "config" / "wallets.yaml"


def load_tokens(path: Path = DEFAULT_TOKENS) -> TokensConfig:
    """The token table from a YAML file; ``ConfigError`` naming the file and the bad key."""
    from pipeline.config import parse_model, read_yaml  # the config loader reads this module's models

    return parse_model(TokensConfig, read_yaml(path), path)


def load_wallets(path: Path = DEFAULT_WALLETS) -> WalletsConfig:
    """The wallet labels from a YAML file; ``ConfigError`` naming the file and the bad key."""
    from pipeline.config import parse_model, read_yaml

    return parse_model(WalletsConfig, read_yaml(path), path)


def transfer_key(
    chain: str, asset: str, tokens: TokensConfig, instruments: InstrumentsConfig
) -> tuple[str, str]:
    """The key ``(exchange, symbol)`` a transfer is processed under (docs/DETECTORS.md, MOD-010): the
    reference instrument of its market (``TokensConfig.market_of``: the asset itself, whose trades price
    it, or a stablecoin's configured market); ``(chain, asset)`` when that market has none."""
    market = tokens.market_of(asset)
    ref = None if market is None else instruments.reference.get(market)
    return (ref[0], ref[1]) if ref is not None else (chain, asset)


def route_transfers(parsed: pa.Table, tokens: TokensConfig, instruments: InstrumentsConfig) -> pa.Table:
    """``PARSED_SCHEMA`` rows with each valid transfer's ``exchange`` and ``symbol`` set to its key
    (``transfer_key``); every other row unchanged. Both keyed modes call it before grouping by key."""
    kind = parsed.column("kind")
    valid = pc.is_null(parsed.column("reason"))
    is_transfer = pc.fill_null(pc.and_(pc.equal(kind, "transfer"), valid), False)
    if not pc.any(is_transfer).as_py():
        return parsed
    chains, assets = parsed.column("chain").to_pylist(), parsed.column("asset").to_pylist()
    exchanges, symbols = parsed.column("exchange").to_pylist(), parsed.column("symbol").to_pylist()
    for i in pc.indices_nonzero(is_transfer).to_pylist():
        exchanges[i], symbols[i] = transfer_key(chains[i], assets[i], tokens, instruments)
    for name, values in (("exchange", exchanges), ("symbol", symbols)):
        parsed = parsed.set_column(parsed.schema.get_field_index(name), name, pa.array(values, pa.string()))
    return parsed


TRANSFER_REASONS: Final = ("MISSING_FIELD", "BAD_TYPE", "NON_POSITIVE_SIZE", "BAD_CHAIN", "BAD_ADDRESS",
                           "BAD_TX_HASH")
_STRINGS: Final = ("chain", "tx_hash", "asset", "from_addr", "to_addr")
_INTS: Final = ("log_index", "block", "ts_event")


def transfer_reason(row: dict[str, Any]) -> str | None:
    """MOD-004's record rules for one transfer (docs/DETECTORS.md, "Transfers"): the first rule it
    breaks, in the order missing field, bad type, unknown chain, non-positive amount, malformed
    address, malformed transaction hash; ``None`` for a valid transfer."""
    for name in (*_STRINGS, *_INTS, "amount"):
        if row.get(name) is None:
            return "MISSING_FIELD"
    ints = [row[n] for n in _INTS] + ([] if row.get("ts_recv") is None else [row["ts_recv"]])
    if not all(isinstance(row[n], str) for n in _STRINGS) or not all(
        type(v) is int and -(2**63) <= v < 2**63 for v in ints
    ) or type(row["amount"]) not in (int, float):
        return "BAD_TYPE"
    if row["chain"] not in CHAINS:
        return "BAD_CHAIN"
    if row["log_index"] < 0 or row["block"] < 0:
        return "BAD_TYPE"
    try:
        amount = float(row["amount"])
    except OverflowError:  # an integer beyond float range: infinite, as for trades
        amount = float("inf")
    if not (amount > 0 and amount != float("inf")):
        return "NON_POSITIVE_SIZE"
    chain = row["chain"]
    if not (valid_address(chain, row["from_addr"]) and valid_address(chain, row["to_addr"])):
        return "BAD_ADDRESS"
    if not valid_tx_hash(chain, row["tx_hash"]):
        return "BAD_TX_HASH"
    return None

