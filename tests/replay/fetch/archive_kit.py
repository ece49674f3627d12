"""A local archive server on 127.0.0.1 holding real Binance and Tardis files, and settings aimed at it."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from replay.fetch import FetchSettings
from replay.fetch.testkit import ArchiveServer, publish_binance, publish_tardis
from replay.readers import reader_for
from replay.readers.base import BadLines, Stats
from tests.conftest import REAL_TAPES
from tests.replay.readers.binance_files_kit import write_trades

REPO = Path(__file__).resolve().parents[3]
BINANCE = REPO / "fixtures" / "binance"


@dataclass
class Archive:
    """The running server, settings aimed at it (no backoff), and the URL paths published."""

    server: ArchiveServer
    settings: FetchSettings
    root: Path
    paths: dict[str, str]


def real_spot_zip(out: Path) -> Path:
    """Binance spot trades of 2024-08-09 (the real WebSocket capture) written as the archive's daily zip."""
    stats = Stats()
    chunks = reader_for("binance-ws").read(
        REAL_TAPES / "binance-ws" / "spot_btcusdt_20240809.gz", BadLines(False, None, stats), stats
    )
    trades = pa.concat_tables([c.table for c in chunks if c.kind == "trade"]).to_pylist()
    return write_trades(out / "BTCUSDT-trades-2024-08-09.zip", trades, futures=False, header=False)


@contextmanager
def serve_archive(tmp_path: Path, spot_0809: Path) -> Iterator[Archive]:
    """Binance spot BTCUSDT trades for 2024-08-08 and 2024-08-09, USD-M futures trades for 2020-02-22
    (each with its CHECKSUM), Tardis binance-futures trades and quotes for 2020-02-01 (free) and
    2020-02-22 (behind a token), served until the block ends."""
    root = tmp_path / "archive"
    futures_zip = tmp_path / "BTCUSDT-trades-2020-02-22.zip"
    with zipfile.ZipFile(futures_zip, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(BINANCE / "BTCUSDT-trades-2020-02-22.csv", "BTCUSDT-trades-2020-02-22.csv")
    paths = {
        "spot-0808": publish_binance(
            root, "spot", "trades", "BTCUSDT", "2024-08-08", BINANCE / "BTCUSDT-trades-2024-08-08.zip"
        ),
        "spot-0809": publish_binance(root, "spot", "trades", "BTCUSDT", "2024-08-09", spot_0809),
        "usdm": publish_binance(root, "usdm", "trades", "BTCUSDT", "2020-02-22", futures_zip),
    }
    for day in ("2020-02-01", "2020-02-22"):
        for kind in ("trades", "quotes"):
            paths[f"tardis-{kind}-{day}"] = publish_tardis(
                root, "binance-futures", kind, "BTCUSDT", day, REAL_TAPES / "tardis" / f"tardis_{kind}.csv"
            )
    with ArchiveServer(root) as server:
        server.tokens["/v1/binance-futures/trades/2020/02/22/"] = "sekret-key"
        server.tokens["/v1/binance-futures/quotes/2020/02/22/"] = "sekret-key"
        settings = FetchSettings.load(
            env={},
            binance_url=server.url,
            tardis_url=server.url,
            cache_dir=tmp_path / "cache",
            backoff_seconds=0,
            retries=3,
            timeout_seconds=10,
        )
        yield Archive(server, settings, root, paths)
