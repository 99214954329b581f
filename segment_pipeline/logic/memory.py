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
from collections.abc import Mapping

import duckdb

from segment_pipeline.tables import scalar

#: DuckDB memory a per-customer running-sum statement may take per row of its input (summed
#: order-days or category-months): at 10M lines 7.5M category-month rows passed under an
#: 858 MiB limit in one go (one bucket: no change up to that size) and failed under 86 MiB.
RUNNING_SUM_BYTES_PER_ROW = 100
#: The same for the behaviour layer's per-customer query over the copied lines (one bucket up
#: to 17M lines under the default limit; at 10M lines under 86 MiB it ran out in one go).
LINE_BYTES_PER_ROW = 50

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
) -> int:
    """`CREATE TEMP TABLE table AS query` for a per-customer query (its windows partitioned
    by customer), in buckets of customers when its input would not fit in DuckDB's memory
    limit: a window over every customer's history does not spill to disk (100M lines ran out
    of memory). `queries`: the whole query and the same for one bucket, which keeps the
    customers with `hash(customer_id) % $customer_buckets = $customer_bucket`; the buckets'
    rows together are the whole query's. The count follows the rows of `input_table` (one
    bucket, the whole query, up to 10M lines under the default limit) unless `buckets` is
    given. Returns it."""
    whole, one_bucket = queries
    if buckets is None:
        buckets = buckets_for(conn, input_table, bytes_per_row)
    if buckets == 1:
        execute_within_memory(conn, f"CREATE OR REPLACE TEMP TABLE {table} AS {whole}", params)
        return 1
    for bucket in range(buckets):
        head = f"CREATE OR REPLACE TEMP TABLE {table} AS" if bucket == 0 else f"INSERT INTO {table}"
        execute_within_memory(
            conn,
            f"{head} {one_bucket}",
            {**(params or {}), "customer_buckets": buckets, "customer_bucket": bucket},
        )
    return buckets


#: DuckDB memory a count of distinct (key, customer) pairs may take per input line. At 100M
#: lines (37.6M distinct category-customer pairs) the count ran out of memory under the
#: default 858 MiB in one go, sometimes, and passed in two buckets; at 10M lines it passes in
#: one go under a tenth of that limit. 25 bytes: one bucket up to 34M lines under the default
#: limit, 3 at 100M (each bucket re-reads the lines: fewer is faster).
PAIR_COUNT_BYTES_PER_ROW = 25
