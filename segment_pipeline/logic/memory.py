"""Statements that must stay within DuckDB's memory limit, whatever the data size.

DuckDB spills most of its work to `<database>.tmp/`, but not all of it: a window over every
customer's history, or a DISTINCT over tens of millions of (key, customer) pairs, can still
run out of memory at 100M lines under the default limit. Such statements are run per bucket
of customers (`hash(customer_id) % $customer_buckets = $customer_bucket`, the SQL files'
`customer_bucket_filter`): the buckets partition the customers, so their rows together are
the whole statement's, and their counts of customers add up (the category statistics sum
them). The number of buckets follows
the input's rows and the connection's memory limit: one, the whole statement as before, for
every dataset up to about 10M lines under the default limit.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import duckdb

from segment_pipeline.tables import scalar

#: DuckDB memory a per-customer running-sum statement may take per row of its input (summed
#: order-days or category-months): at 10M lines 7.5M category-month rows passed under an
#: 858 MiB limit in one go (one bucket: no change up to that size) and failed under 86 MiB.
RUNNING_SUM_BYTES_PER_ROW = 100
#: The same for the behaviour layer's per-customer query over the copied lines (one bucket up
#: to 17M lines under the default limit; at 10M lines under 86 MiB it ran out in one go).
LINE_BYTES_PER_ROW = 50

#: A table's row count as DuckDB keeps it (metadata: no scan); 0 before the table exists.
#: `?`: schema, table. staging.transactions' decides how a large warehouse is worked (the
#: memory limit `auto`, the snapshots' scratch tables on disk); raw.transactions' whether a
#: large load is being staged (the memory limit `auto`).
LINES_ESTIMATE_SQL = (
    "SELECT coalesce(max(estimated_size), 0) FROM duckdb_tables() "
    "WHERE database_name = current_database() AND schema_name = ? AND table_name = ?"
)

_MEMORY_UNITS = {"bytes": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}


def memory_limit_bytes(conn: duckdb.DuckDBPyConnection) -> int | None:
    """DuckDB's memory limit on `conn` in bytes (its setting reads like '858.3 MiB'); None
    when it cannot be read."""
    text = str(scalar(conn, "SELECT current_setting('memory_limit')")).strip()
    number, _, unit = text.partition(" ")
    try:
        return int(float(number) * _MEMORY_UNITS[unit or "bytes"])
    except (KeyError, ValueError):
        return None


def staged_lines_estimate(conn: duckdb.DuckDBPyConnection) -> int:
    """About how many lines staging.transactions holds (LINES_ESTIMATE_SQL)."""
    return int(scalar(conn, LINES_ESTIMATE_SQL, ["staging", "transactions"]))


def raw_lines_estimate(conn: duckdb.DuckDBPyConnection) -> int:
    """About how many lines raw.transactions holds (LINES_ESTIMATE_SQL)."""
    return int(scalar(conn, LINES_ESTIMATE_SQL, ["raw", "transactions"]))


#: The catalog a step's scratch tables are attached under when they go to disk.
SCRATCH_CATALOG = "scratch"


def scratch_table(name: str, *, on_disk: bool = False) -> str:
    """What a step's scratch table `name` is created as (after `CREATE [OR REPLACE]`): a
    temp table, or with `on_disk` a table of the scratch file `scratch_database` attached.
    Later statements name it unqualified (DuckDB looks in temp, then the search path)."""
    return f"TABLE {SCRATCH_CATALOG}.{name}" if on_disk else f"TEMP TABLE {name}"


def _database_path(conn: duckdb.DuckDBPyConnection) -> Path | None:
    path = scalar(
        conn, "SELECT path FROM duckdb_databases() WHERE database_name = current_database()"
    )
    return Path(path) if path and path != ":memory:" else None


@contextmanager
def scratch_database(conn: duckdb.DuckDBPyConnection, *, on_disk: bool) -> Iterator[bool]:
    """Where a step's large scratch tables live for the `with` block; yields `on_disk` as
    it holds (False for an in-memory warehouse): the `on_disk` of `scratch_table`.

    On disk: a DuckDB file beside the warehouse (`<database>.scratch`), attached as
    SCRATCH_CATALOG and put on the search path, then detached and deleted, whatever
    happened. Why: a temp table lives in DuckDB's memory and goes to the spill folder
    uncompressed under pressure; a table of a file is compressed and its blocks are evicted
    without being written again. At 10M lines under a 400MB limit (a rehearsal of 100M under
    700MB) the snapshot step spilled 2.6 GB with temp tables, 0.5 GB plus a 0.6 GB scratch
    file with this, in the same time; the 100M run's temp tables spilled 27 GB (stop 32). A
    separate file, not the warehouse's own main schema, because DuckDB does not give a
    file's freed blocks back: the warehouse would keep the scratch's size for good."""
    db_path = _database_path(conn) if on_disk else None
    if db_path is None:
        yield False
        return
    scratch_path = db_path.with_name(db_path.name + ".scratch")
    _remove_database_file(scratch_path)  # a run that was killed left it
    search_path = scalar(conn, "SELECT current_setting('search_path')")
    # ATTACH and SET take no parameters
    conn.execute(f"ATTACH '{_quoted(scratch_path)}' AS {SCRATCH_CATALOG}")
    try:
        conn.execute(f"SET search_path = 'main,{SCRATCH_CATALOG}.main'")
        yield True
    finally:
        conn.execute(f"SET search_path = '{_quoted(search_path)}'")
        conn.execute(f"DETACH {SCRATCH_CATALOG}")
        _remove_database_file(scratch_path)


def _quoted(value: object) -> str:
    return str(value).replace("'", "''")


def _remove_database_file(path: Path) -> None:
    for leftover in (path, path.with_name(path.name + ".wal")):
        leftover.unlink(missing_ok=True)


def execute_within_memory(
    conn: duckdb.DuckDBPyConnection, sql: str, params: Mapping[str, object] | None = None
) -> None:
    """Execute `sql` (one statement, outside an explicit transaction: a failed statement
    leaves nothing); when DuckDB runs out of memory, once more on one thread, as DuckDB's
    error advises. An insert of one month's scored rows under a tenth of the memory a
    10M-line history is given failed on two threads and passed on one (stop 25); the
    threads setting is put back either way."""
    try:
        conn.execute(sql, params)
        return
    except duckdb.OutOfMemoryException:
        threads = scalar(conn, "SELECT current_setting('threads')")
    conn.execute("SET threads = 1")
    try:
        conn.execute(sql, params)
    finally:
        conn.execute(f"SET threads = {int(threads)}")


def customer_buckets(rows: int, limit_bytes: int | None, bytes_per_row: int) -> int:
    """How many buckets of customers a per-customer statement over `rows` input rows is run
    in, so that each stays within the memory limit: 1 whenever the rows fit (every dataset
    up to 10M lines under the default limit), never 0."""
    if limit_bytes is None or limit_bytes <= 0:
        return 1
    return max(1, math.ceil(rows * bytes_per_row / limit_bytes))


def buckets_for(conn: duckdb.DuckDBPyConnection, input_table: str, bytes_per_row: int) -> int:
    """`customer_buckets` for the rows of `input_table` under `conn`'s memory limit."""
    rows = int(scalar(conn, f"SELECT count(*) FROM {input_table}"))
    return customer_buckets(rows, memory_limit_bytes(conn), bytes_per_row)


def create_by_customer_buckets(
    conn: duckdb.DuckDBPyConnection,
    table: str,
    queries: tuple[str, str],
    input_table: str,
    buckets: int | None = None,
    *,
    params: Mapping[str, object] | None = None,
    bytes_per_row: int = RUNNING_SUM_BYTES_PER_ROW,
    on_disk: bool = False,
) -> int:
    """`CREATE TEMP TABLE table AS query` for a per-customer query (its windows partitioned
    by customer), in buckets of customers when its input would not fit in DuckDB's memory
    limit: a window over every customer's history does not spill to disk (100M lines ran out
    of memory). `queries`: the whole query and the same for one bucket, which keeps the
    customers with `hash(customer_id) % $customer_buckets = $customer_bucket`; the buckets'
    rows together are the whole query's. The count follows the rows of `input_table` (one
    bucket, the whole query, up to 10M lines under the default limit) unless `buckets` is
    given; a bucket that runs out of memory even on one thread starts the table over in
    twice the buckets (up to MAX_CUSTOMER_BUCKETS). Returns the count used. `on_disk`:
    `table` in the scratch file instead (`scratch_table`)."""
    whole, one_bucket = queries
    if buckets is None:
        buckets = buckets_for(conn, input_table, bytes_per_row)
    while True:
        try:
            _create_in_buckets(conn, table, whole, one_bucket, buckets, params, on_disk)
            return buckets
        except duckdb.OutOfMemoryException:
            # the budget per row is a measured guess: twice the buckets rather than a
            # failed run (each start over replaces what the last one wrote)
            if buckets >= MAX_CUSTOMER_BUCKETS:
                raise
            buckets = min(2 * buckets, MAX_CUSTOMER_BUCKETS)


#: Buckets of customers at most (create_by_customer_buckets doubles them when a bucket
#: still runs out of memory on one thread).
MAX_CUSTOMER_BUCKETS = 64


def _create_in_buckets(
    conn: duckdb.DuckDBPyConnection,
    table: str,
    whole: str,
    one_bucket: str,
    buckets: int,
    params: Mapping[str, object] | None,
    on_disk: bool,
) -> None:
    create = f"CREATE OR REPLACE {scratch_table(table, on_disk=on_disk)} AS"
    if buckets == 1:
        execute_within_memory(conn, f"{create} {whole}", params)
        return
    for bucket in range(buckets):
        head = create if bucket == 0 else f"INSERT INTO {table}"
        execute_within_memory(
            conn,
            f"{head} {one_bucket}",
            {**(params or {}), "customer_buckets": buckets, "customer_bucket": bucket},
        )


#: DuckDB memory a count of distinct (key, customer) pairs may take per input line. At 100M
#: lines (37.6M distinct category-customer pairs) the count ran out of memory under the
#: default 858 MiB in one go, sometimes, and passed in two buckets; at 10M lines it passes in
#: one go under a tenth of that limit. 25 bytes: one bucket up to 34M lines under the default
#: limit, 3 at 100M (each bucket re-reads the lines: fewer is faster). The same budget serves
#: segment_product_summary's distinct (segment, item, order or customer) rows, which ran out of
#: memory in one go at 100M lines under 700MB and passed in two buckets (stop 44: four there).
PAIR_COUNT_BYTES_PER_ROW = 25
