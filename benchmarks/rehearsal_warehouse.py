"""A tenfold warehouse for rehearsing the analysis layers at 100M lines in minutes.

    .venv/bin/python benchmarks/rehearsal_warehouse.py SOURCE.duckdb OUT.duckdb [--copies 10]

A real 100M-line run spends about 30 minutes in raw, staging and the monthly snapshots before
the first unpartitioned analysis step, and a failed run restores the warehouse it started
from. This script copies a finished warehouse (for example the 10M-line one of
`make bench BENCH_ARGS="--only 4 --keep"`) and appends `copies - 1` more copies of its staged
lines, returns, customers and customer snapshots, every id suffixed with `~k` (so 10M lines
and 540k customers become 100M and 5.4M; the distributions stay those of the source), month
by month so that row groups stay ordered by day as staging writes them. 79 s for 10M -> 100M
on 2 cores. Then every unpartitioned layer, the figures and the report run at that size:

    segment-pipeline run --db OUT.duckdb --data <the source's dataset> --select \\
      'not key:raw/* and not key:staging/* and not key:"marts/customer_snapshots" and not
       key:"marts/category_tier_snapshots"'

(about 12 minutes; docs/performance_history.md, "100M lines: the analysis layers"). It rehearses the
layers' memory, not the snapshots' or staging's, and it is no benchmark figure: the 100M
figure is `make bench BENCH_ARGS="--only 4 --huge --quick"`.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import duckdb

#: The tables copied, with the column that says which month a row belongs to (None: one go).
COPIED: tuple[tuple[str, str | None], ...] = (
    ("staging.transactions", "date_trunc('month', partition_date)"),
    ("staging.returns", None),
    ("staging.customers", None),
    ("marts.customer_snapshots", "snapshot_month"),
)
SUFFIXED = ("line_id", "order_id", "customer_id")


def _columns(conn: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    schema, name = table.split(".")
    rows = conn.execute(
        "SELECT column_name FROM duckdb_columns() WHERE schema_name = ? AND table_name = ? "
        "ORDER BY column_index",
        [schema, name],
    ).fetchall()
    return [r[0] for r in rows]


def append_copies(
    conn: duckdb.DuckDBPyConnection, table: str, month: str | None, copies: int
) -> None:
    """Append copies 1 .. copies - 1 of the rows of `table` (month by month when `month` is
    given). Each statement reads the table as it was when it started (DuckDB's snapshot), and
    a month's statement reads only that month: no copy is copied again."""
    columns = _columns(conn, table)
    select = ", ".join(f"{c} || '~' || k.k AS {c}" if c in SUFFIXED else c for c in columns)
    copy_sql = f"INSERT INTO {table} SELECT {select} FROM {table}, range(1, ?) AS k (k)"
    if month is None:
        conn.execute(copy_sql, [copies])
        return
    months = conn.execute(f"SELECT DISTINCT {month} FROM {table} ORDER BY 1").fetchall()
    for (value,) in months:
        conn.execute(f"{copy_sql} WHERE {month} = ?", [copies, value])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="a finished warehouse (read only)")
    parser.add_argument("out", type=Path, help="the tenfold copy (overwritten)")
    parser.add_argument("--copies", type=int, default=10)
    parser.add_argument("--memory-limit", default="6GB", help="DuckDB's limit for the copy")
    args = parser.parse_args()
    started = time.perf_counter()
    shutil.copyfile(args.source, args.out)
    conn = duckdb.connect(str(args.out), config={"memory_limit": args.memory_limit})
    for table, month in COPIED:
        append_copies(conn, table, month, args.copies)
        rows = conn.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
        print(f"{table}: {rows:,} rows ({time.perf_counter() - started:.1f} s)", flush=True)
    conn.execute("CHECKPOINT")
    conn.close()
    print(f"{args.out}: done in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
