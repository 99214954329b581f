"""Benchmarks: how raw loading and staging scale with data size.

    .venv/bin/python benchmarks/run_benchmarks.py [--customers 2000 20000] [--days 60]

For each size it generates a dataset with the project's generator, loads it into a fresh
DuckDB file with the same functions the assets call (no Dagster bookkeeping, which is measured
separately by `--dagster`), and prints lines, seconds, lines per second, peak memory, and the
ratios against the smallest size: time should grow about linearly with lines (ratio of
seconds / ratio of lines close to 1) and memory should stay bounded (staging works in batches).
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from datetime import date
from pathlib import Path

import duckdb

from segment_pipeline.generator import generate
from segment_pipeline.logic.staging import (
    ensure_staging_tables,
    load_raw_day,
    stage_transactions_window,
)
from segment_pipeline.sources import CanonicalSource


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_and_stage(data_dir: Path, db_path: Path) -> dict[str, float]:
    conn = duckdb.connect(str(db_path))
    ensure_staging_tables(conn)
    source = CanonicalSource(data_dir)
    days = source.transaction_days()
    started = time.perf_counter()
    for day in days:
        load_raw_day(conn, source, day)
    raw_seconds = time.perf_counter() - started
    started = time.perf_counter()
    counts = stage_transactions_window(conn, days)
    staging_seconds = time.perf_counter() - started
    conn.close()
    lines = sum(c.raw for c in counts)
    return {"lines": lines, "days": len(days), "raw_s": raw_seconds, "staging_s": staging_seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, nargs="+", default=[2000, 20000])
    parser.add_argument("--days", type=int, default=60)
    args = parser.parse_args()
    results = []
    for customers in args.customers:
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp) / "data"
            t0 = time.perf_counter()
            report = generate(
                data, customers=customers, days=args.days, seed=7, start=date(2025, 1, 1)
            )
            gen_s = time.perf_counter() - t0
            result = load_and_stage(data, Path(tmp) / "w.duckdb")
            result.update(customers=customers, generate_s=gen_s, peak_mb=peak_rss_mb())
            assert result["lines"] == report.transaction_lines
            results.append(result)
    base = results[0]
    header = (
        f"{'customers':>10} {'lines':>10} {'gen s':>7} {'raw s':>7} {'stage s':>8} "
        f"{'lines/s':>9} {'peak MB':>8} {'x lines':>8} {'x time':>7} {'time/line ratio':>15}"
    )
    print(header)
    for r in results:
        total = r["raw_s"] + r["staging_s"]
        base_total = base["raw_s"] + base["staging_s"]
        x_lines = r["lines"] / base["lines"]
        x_time = total / base_total
        print(
            f"{r['customers']:>10} {r['lines']:>10,} {r['generate_s']:>7.1f} {r['raw_s']:>7.2f} "
            f"{r['staging_s']:>8.2f} {r['lines'] / total:>9,.0f} {r['peak_mb']:>8.0f} "
            f"{x_lines:>8.1f} {x_time:>7.1f} {x_time / x_lines:>15.2f}"
        )


if __name__ == "__main__":
    main()
