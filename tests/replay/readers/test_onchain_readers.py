"""The on-chain readers (eth_getLogs responses, Etherscan token-transfer exports) on the real samples in
tests/data/onchain (PROVENANCE.md there), and the transfer record rules."""

from __future__ import annotations

import csv
import json
from collections import Counter
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import ReaderError
from core.events import TRANSFER_SCHEMA, transfer_id
from core.tape import Tape
from pipeline.onchain import TokensConfig, load_tokens, token_amount, transfer_reason
from replay.readers import detect_format, import_files
from tests.conftest import REAL_TAPES

DATA = Path(__file__).resolve().parents[2] / "data" / "onchain"
CSV_SAMPLE = DATA / "export-address-token-0x003dc32fe920a4aaeed12dc87e145f030aa753f3.csv"
LOGS_SAMPLE = DATA / "eth_getLogs_block_483920.json"
TOKEN_2015 = "0xf4eced2f682ce333f96f2d8966c613ded8fc95dd"


def _tokens_with_2015_token() -> TokensConfig:
    """The real token table plus the sample's 2015 token (decimals 0: its integer values unchanged)."""
    data = load_tokens().model_dump()
    data["chains"]["ethereum"][TOKEN_2015] = {"symbol": "T2015", "decimals": 0}
    return TokensConfig.model_validate(data)


def test_formats_are_detected() -> None:
    assert detect_format(CSV_SAMPLE) == "etherscan-csv"
    assert detect_format(LOGS_SAMPLE) == "eth-getlogs"


def test_etherscan_export_imports_every_known_token_exactly(tmp_path: Path) -> None:
    tokens = load_tokens()
    with open(CSV_SAMPLE, newline="") as fh:
        source = list(csv.DictReader(fh))
    result = import_files([CSV_SAMPLE], tmp_path / "t")
    tape = Tape.open(tmp_path / "t")
    tape.verify()
    assert tape.manifest.kinds == ["transfer"] and tape.manifest.symbols == []
    got = tape.read("transfer").to_pylist()
    ordinal: Counter[str] = Counter()
    expected = []
    for row in source:
        index = ordinal[row["Txhash"]]
        ordinal[row["Txhash"]] += 1
        token = tokens.token("ethereum", row["ContractAddress"])
        value = Fraction(row["TokenValue"].replace(",", ""))
        if token is None or value == 0:
            continue
        expected.append((transfer_id("ethereum", row["Txhash"], index), tokens.asset_of(token.symbol),
                         float(value), int(row["UnixTimestamp"]) * 1_000_000, row["From"], row["To"]))
    assert sorted(
        (transfer_id(r["chain"], r["tx_hash"], r["log_index"]), r["asset"], r["amount"], r["ts_event"],
         r["from_addr"], r["to_addr"]) for r in got
    ) == sorted(expected)
    assert {r["asset"] for r in got} >= {"BTC", "USDC", "DAI", "USDT"}  # WBTC became BTC
    skipped = result.stats.skipped
    assert len(got) + skipped["unknown token"] + skipped["zero amount"] == len(source) == result.stats.lines
    assert any("not in config/tokens.yaml" in note for note in result.stats.notes)


def test_rows_of_one_transaction_get_ordinals_in_file_order(tmp_path: Path) -> None:
    with open(CSV_SAMPLE, newline="") as fh:
        source = list(csv.DictReader(fh))
    assert max(Counter(row["Txhash"] for row in source).values()) > 1  # transactions with several transfers
    tokens = TokensConfig.model_validate({  # every contract of the file, so nothing is skipped as unknown
        **load_tokens().model_dump(),
        "chains": {"ethereum": {row["ContractAddress"]: {"symbol": row["TokenSymbol"], "decimals": 0}
                                for row in source}},
    })
    import_files([CSV_SAMPLE], tmp_path / "t", tokens=tokens)
    rows = Tape.open(tmp_path / "t").read("transfer").to_pylist()
    ordinal: Counter[str] = Counter()
    expected = []
    for row in source:
        amount = float(Fraction(row["TokenValue"].replace(",", "")))
        expected.append((row["Txhash"], ordinal[row["Txhash"]], amount))
        ordinal[row["Txhash"]] += 1
    assert sorted((r["tx_hash"], r["log_index"], r["amount"]) for r in rows) == sorted(
        e for e in expected if e[2] != 0
    )


def test_eth_getlogs_batch_decodes_topics_data_and_block_time(tmp_path: Path) -> None:
    logs, block = json.loads(LOGS_SAMPLE.read_text())
    import_files([LOGS_SAMPLE], tmp_path / "t", tokens=_tokens_with_2015_token())
    rows = Tape.open(tmp_path / "t").read("transfer").to_pylist()
    expected = [
        {
            "tx_hash": log["transactionHash"], "log_index": int(log["logIndex"], 16),
            "block": int(log["blockNumber"], 16),
            "ts_event": int(block["result"]["timestamp"], 16) * 1_000_000,
            "amount": float(int(log["data"], 16)), "from_addr": "0x" + log["topics"][1][-40:],
            "to_addr": "0x" + log["topics"][2][-40:],
        }
        for log in logs["result"]
    ]
    assert [{k: r[k] for k in expected[0]} for r in rows] == expected
    assert {r["asset"] for r in rows} == {"T2015"} and all(r["ts_recv"] is None for r in rows)


def _logs_file(tmp_path: Path, change: Any, with_block: bool = True) -> Path:
    """The real sample with ``change`` applied to its logs (a function of the list of logs)."""
    logs, block = json.loads(LOGS_SAMPLE.read_text())
    change(logs["result"])
    path = tmp_path / "logs.json"
    path.write_text(json.dumps([logs, block] if with_block else logs))
    return path


def test_removed_logs_are_dropped_and_counted(tmp_path: Path) -> None:
    def remove_first(logs: list[dict[str, Any]]) -> None:
        logs[0]["removed"] = True

    path = _logs_file(tmp_path, remove_first)
    result = import_files([path], tmp_path / "t", tokens=_tokens_with_2015_token())
    rows = Tape.open(tmp_path / "t").read("transfer").to_pylist()
    assert result.stats.skipped["removed"] == 1
    assert [r["log_index"] for r in rows] == [1]


def test_mixed_case_addresses_are_lower_cased_before_lookup(tmp_path: Path) -> None:
    def upper(logs: list[dict[str, Any]]) -> None:
        for log in logs:
            log["address"] = "0x" + log["address"][2:].upper()
            log["topics"] = [t[:2] + t[2:].upper() if i else t for i, t in enumerate(log["topics"])]

    import_files([_logs_file(tmp_path, upper)], tmp_path / "t", tokens=_tokens_with_2015_token())
    rows = Tape.open(tmp_path / "t").read("transfer").to_pylist()
    assert len(rows) == 2 and all(r["from_addr"] == r["from_addr"].lower() for r in rows)


def test_a_log_without_block_time_is_a_bad_line(tmp_path: Path) -> None:
    path = _logs_file(tmp_path, lambda logs: None, with_block=False)
    with pytest.raises(ReaderError, match="blockTimestamp"):
        import_files([path], tmp_path / "t", tokens=_tokens_with_2015_token())

    def stamp_second(logs: list[dict[str, Any]]) -> None:
        logs[1]["blockTimestamp"] = "0x10"

    path = _logs_file(tmp_path, stamp_second, with_block=False)
    result = import_files([path], tmp_path / "u", tokens=_tokens_with_2015_token(), skip_bad=True)
    assert result.stats.bad == 1 and result.reject_path is not None
    assert "blockTimestamp" in result.reject_path.read_text()
    assert Tape.open(tmp_path / "u").read("transfer").column("log_index").to_pylist() == [1]


def test_block_timestamp_on_the_log_is_used(tmp_path: Path) -> None:
    def stamp(logs: list[dict[str, Any]]) -> None:
        for log in logs:
            log["blockTimestamp"] = "0x10"

    path = _logs_file(tmp_path, stamp, with_block=False)
    import_files([path], tmp_path / "t", tokens=_tokens_with_2015_token())
    assert Tape.open(tmp_path / "t").read("transfer").column("ts_event").to_pylist() == [16_000_000] * 2


def test_transfers_ride_beside_trades_on_one_tape(tmp_path: Path) -> None:
    trades = REAL_TAPES / "tardis" / "tardis_trades.csv"
    import_files([trades, CSV_SAMPLE], tmp_path / "t")
    tape = Tape.open(tmp_path / "t")
    tape.verify()
    assert tape.manifest.kinds == ["trade", "transfer"]
    assert tape.instruments() == [("binance-futures", "BTCUSDT")]
    seqs = tape.read("trade").column("seq").to_pylist() + tape.read("transfer").column("seq").to_pylist()
    assert sorted(seqs) == list(range(len(seqs)))


_VALID: dict[str, Any] = {
    "chain": "ethereum", "tx_hash": "0x" + "ab" * 32, "log_index": 3, "block": 19_000_000,
    "ts_event": 1_700_000_000_000_000, "ts_recv": None, "asset": "BTC", "amount": 1.5,
    "from_addr": "0x" + "11" * 20, "to_addr": "0x" + "22" * 20,
}


@given(st.sampled_from(TRANSFER_SCHEMA.names), st.sampled_from(["missing", "bad"]))
def test_every_field_has_a_record_rule(name: str, how: str) -> None:
    assert transfer_reason(_VALID) is None
    row = dict(_VALID)
    if how == "missing":
        row[name] = None
        expected = None if name == "ts_recv" else "MISSING_FIELD"
    else:
        row[name] = {"chain": "bitcoin", "tx_hash": "0x12", "from_addr": "0xABC", "to_addr": "nope",
                     "amount": -1.0, "asset": 7}.get(name, "x")
        expected = {"chain": "BAD_CHAIN", "tx_hash": "BAD_TX_HASH", "from_addr": "BAD_ADDRESS",
                    "to_addr": "BAD_ADDRESS", "amount": "NON_POSITIVE_SIZE"}.get(name, "BAD_TYPE")
    assert transfer_reason(row) == expected


@given(st.integers(min_value=0, max_value=2**256 - 1), st.integers(min_value=0, max_value=36))
def test_amount_is_the_exact_quotient_rounded_once(value: int, decimals: int) -> None:
    amount = token_amount(value, decimals)
    assert amount == float(Fraction(value, 10**decimals))
    if decimals == 0 and value < 2**53:
        assert amount == value


def test_replay_sends_transfers_on_the_stream_beside_trades(tmp_path: Path) -> None:
    from coattail.reference import from_arrival, from_tape, run_reference
    from pipeline.config import ConfigLoader
    from pipeline.parse import parse_batch
    from pipeline.testkit import raw_table
    from replay.engine import Replay
    from replay.targets.memory import MemoryTarget

    import_files([REAL_TAPES / "tardis" / "tardis_trades.csv", CSV_SAMPLE], tmp_path / "t")
    tape = Tape.open(tmp_path / "t")
    target = MemoryTarget()
    summary = Replay([tmp_path / "t"], target, batch_rows=50).run()
    assert summary.sent == sum(tape.manifest.rows.values())
    records = target.records()
    transfers = [(key, data) for key, data in records if json.loads(data)["type"] == "transfer"]
    assert len(transfers) == tape.manifest.rows["transfer"]
    # BTC's transfers and the stablecoins' (whose configured market is BTC) travel under BTCUSDT's key
    assert set(tape.read("transfer").column("asset").to_pylist()) <= {"BTC", "USDT", "USDC", "DAI"}
    btc = ":".join(ConfigLoader().load("small", env={}).instruments.reference["BTC"])
    assert {key for key, _ in transfers} == {btc}
    parsed = parse_batch(raw_table([data for _, data in records]))
    assert parsed.column("reason").null_count == len(records)  # every record valid on the wire
    config = ConfigLoader().load("small", env={}, overrides={
        "modules": ["MOD-004", "MOD-010"], "settings.MOD-010.default_threshold_usd": 1_000,
        "settings.MOD-010.thresholds_usd": {},
    })
    def alerts(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in a.items() if k != "ts_sent"} for a in rows]  # the replay stamps it

    by_arrival = run_reference(from_arrival(target.table()), config)
    by_tape = run_reference(from_tape(tape), config)
    assert alerts(by_arrival.alert_rows()) == alerts(by_tape.alert_rows()) != []


def test_tape_import_and_info_on_the_command_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from coattail.cli import app

    runner = CliRunner()
    imported = runner.invoke(app, ["tape", "import", str(CSV_SAMPLE), "--out", str(tmp_path / "t")])
    assert imported.exit_code == 0, imported.output
    shown = runner.invoke(app, ["tape", "info", str(tmp_path / "t")], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert "transfer" in shown.output and "ethereum" in shown.output and "BTC" in shown.output
