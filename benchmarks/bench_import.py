"""Import benchmark: a Binance public-data trades CSV to a tape (goal >= 1M rows/s; peak RSS < 1 GiB).

    .venv/bin/python benchmarks/bench_import.py                 # 1M-row spot trades file
    .venv/bin/python benchmarks/bench_import.py --rows 3000000 --json out.json

Writes a realistic file (spot layout, no header, ms times), then times in the same run: plain polars
reading the CSV with its schema (the floor), and ``import_files`` (read, check, normalise, sort,
write Parquet). Peak memory is the maximum RSS of a child process that does only the import.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from replay.readers import import_files  # noqa: E402


def write_csv(path: Path, rows: int) -> None:
    """A spot ``trades`` file: id,price,qty,quoteQty,time,isBuyerMaker,isBestMatch (no header)."""
    rng = np.random.default_rng(7)
    price = np.round(60_000 + np.cumsum(rng.normal(0, 2, rows)), 2)
    qty = np.round(rng.lognormal(-5, 1.5, rows), 5) + 0.00001
    t = 1_722_000_000_000 + np.cumsum(rng.integers(0, 200, rows))
    maker = np.where(rng.random(rows) < 0.5, "True", "False")
    pl.DataFrame(
        {
            "id": np.arange(3_000_000_000, 3_000_000_000 + rows),
            "price": price,
            "qty": qty,
            "quote": np.round(price * qty, 8),
            "time": t,
            "maker": maker,
            "best": ["True"] * rows,
        }
    ).write_csv(path, include_header=False)


def child(path: Path, out: Path) -> None:
    """Import in this (child) process and print the peak RSS."""
    import_files([path], out, overwrite=True)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)


def main() -> None:
    """Run the benchmark and print (and optionally save) its figures."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--child", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "BTCUSDT-trades-2024-07-26.csv"
        write_csv(path, args.rows)
        schema = {
            "id": pl.Int64,
            "price": pl.Float64,
            "qty": pl.Float64,
            "quote": pl.Float64,
            "time": pl.Int64,
            "maker": pl.Boolean,
            "best": pl.Boolean,
        }
        t0, c0 = time.perf_counter(), time.process_time()
        frame = pl.read_csv(path, has_header=False, new_columns=list(schema), schema_overrides=schema)
        polars_s, polars_cpu = time.perf_counter() - t0, time.process_time() - c0
        assert frame.height == args.rows
        del frame
        t0, c0 = time.perf_counter(), time.process_time()
        result = import_files([path], Path(tmp) / "tape")
        import_s, import_cpu = time.perf_counter() - t0, time.process_time() - c0
        assert result.manifest.rows == {"trade": args.rows}
        peak = subprocess.run(
            [sys.executable, __file__, "--child", str(path), str(Path(tmp) / "tape2")],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()[-1]
    figures = {
        "benchmark": "import.binance-csv",
        "rows": args.rows,
        "polars_read_s": round(polars_s, 3),
        "polars_rows_per_s": round(args.rows / polars_s),
        "import_s": round(import_s, 3),
        "import_rows_per_s": round(args.rows / import_s),
        "import_vs_polars": round(polars_s / import_s, 3),
        "polars_cpu_s": round(polars_cpu, 3),
        "import_cpu_s": round(import_cpu, 3),
        "load_average_1m": os.getloadavg()[0],
        "peak_rss_mib": round(int(peak) / 2**20, 1),
        "goals": {"import_rows_per_s": 1_000_000, "peak_rss_mib": 1024},
    }
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
