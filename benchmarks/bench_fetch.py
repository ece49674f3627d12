"""Fetch benchmark: a month of one symbol's Binance daily trades files, fetched from a local archive server,
verified and imported into a tape (rows/s, peak memory), then fetched again from the cache.

    .venv/bin/python benchmarks/bench_fetch.py                      # 31 days x 200k trades
    .venv/bin/python benchmarks/bench_fetch.py --rows-per-day 1000000 --json out.json

The daily files are the real Binance sample (fixtures/binance/BTCUSDT-trades-2024-08-08.zip, spot
trades) resampled: rows drawn with replacement, prices following the sample's own tick-to-tick changes,
times spread over each day. They are served by ``replay.fetch.testkit.ArchiveServer`` on 127.0.0.1 with
their ``.CHECKSUM`` files. The cold fetch and the import run in a child process, whose maximum RSS is the
peak memory; the cache-hit fetch is timed in this process and must send no request.
"""

from __future__ import annotations

import argparse
import calendar
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import zipfile
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from replay.fetch import FetchRequest, FetchSettings, fetch  # noqa: E402
from replay.fetch.testkit import ArchiveServer, publish_binance  # noqa: E402
from replay.readers import import_files  # noqa: E402

SAMPLE = REPO / "fixtures" / "binance" / "BTCUSDT-trades-2024-08-08.zip"
MONTH = date(2024, 7, 1)
DAYS = 31


def sample() -> pl.DataFrame:
    """The real spot trades: id, price, qty, quoteQty, time (µs), isBuyerMaker, isBestMatch."""
    with zipfile.ZipFile(SAMPLE) as zf:
        data = zf.read(zf.namelist()[0])
    return pl.read_csv(io.BytesIO(data), has_header=False, new_columns=["id", "p", "q", "qq", "t", "m", "b"])


def write_day(real: pl.DataFrame, day: date, rows: int, first_id: int, out: Path) -> Path:
    """One day's zip (spot layout, no header, ms times) resampled from ``real``."""
    rng = np.random.default_rng(day.toordinal())
    pick = rng.integers(0, real.height, rows)
    steps = np.diff(real["p"].to_numpy(), prepend=real["p"][0])[pick]
    price = np.round(real["p"][0] + np.cumsum(steps), 2)
    qty = real["q"].to_numpy()[pick]
    start_ms = calendar.timegm(day.timetuple()) * 1000
    t = start_ms + np.sort(rng.integers(0, 86_400_000, rows))
    frame = pl.DataFrame(
        {
            "id": np.arange(first_id, first_id + rows),
            "price": price,
            "qty": qty,
            "quote": np.round(price * qty, 8),
            "time": t,
            "maker": np.where(real["m"].to_numpy()[pick], "True", "False"),
            "best": ["True"] * rows,
        }
    )
    name = f"BTCUSDT-trades-{day.isoformat()}"
    buf = io.BytesIO()
    frame.write_csv(buf, include_header=False)
    path = out / f"{name}.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"{name}.csv", buf.getvalue())
    return path


def request() -> FetchRequest:
    return FetchRequest("binance", ("BTCUSDT",), tuple(MONTH + timedelta(days=i) for i in range(DAYS)))


def child(url: str, cache: Path, out: Path) -> None:
    """Cold fetch, then import, in this (child) process; print the figures as JSON."""
    settings = FetchSettings.load(env={}, binance_url=url, cache_dir=cache)
    t0 = time.perf_counter()
    fetched = fetch(request(), settings)
    fetch_s = time.perf_counter() - t0
    t0, c0 = time.perf_counter(), time.process_time()
    result = import_files(fetched.paths, out)
    import_s, import_cpu = time.perf_counter() - t0, time.process_time() - c0
    rows = result.manifest.rows["trade"]
    print(
        json.dumps(
            {
                "bytes": fetched.bytes_downloaded,
                "fetch_s": fetch_s,
                "import_s": import_s,
                "import_cpu_s": import_cpu,
                "rows": rows,
                "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            }
        )
    )


def main() -> None:
    """Run the benchmark and print (and optionally save) its figures."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows-per-day", type=int, default=200_000)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]), Path(args.child[2]))
        return
    real = sample()
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        (tmp / "zips").mkdir()
        for i in range(DAYS):
            day = MONTH + timedelta(days=i)
            path = write_day(real, day, args.rows_per_day, 1 + i * args.rows_per_day, tmp / "zips")
            publish_binance(tmp / "archive", "spot", "trades", "BTCUSDT", day.isoformat(), path)
        with ArchiveServer(tmp / "archive") as server:
            cold = json.loads(
                subprocess.run(
                    [sys.executable, __file__, "--child", server.url, str(tmp / "cache"), str(tmp / "tape")],
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout.splitlines()[-1]
            )
            requests = len(server.log)
            settings = FetchSettings.load(env={}, binance_url=server.url, cache_dir=tmp / "cache")
            t0 = time.perf_counter()
            hit = fetch(request(), settings)
            hit_s = time.perf_counter() - t0
            assert len(server.log) == requests and len(hit.cached) == DAYS, "the cache hit sent requests"
    assert cold["rows"] == DAYS * args.rows_per_day
    figures = {
        "benchmark": "fetch.binance-daily-month",
        "files": DAYS,
        "rows": cold["rows"],
        "download_mib": round(cold["bytes"] / 2**20, 1),
        "cold_fetch_s": round(cold["fetch_s"], 3),
        "cold_fetch_mib_per_s": round(cold["bytes"] / 2**20 / cold["fetch_s"], 1),
        "import_s": round(cold["import_s"], 3),
        "import_cpu_s": round(cold["import_cpu_s"], 3),
        "import_rows_per_s": round(cold["rows"] / cold["import_s"]),
        "peak_rss_mib": round(cold["peak_rss"] / 2**20, 1),
        "cache_hit_s": round(hit_s, 4),
        "load_average_1m": os.getloadavg()[0],
    }
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
