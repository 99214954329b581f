"""logic/memory.py: statements sized to DuckDB's memory limit (buckets of customers, the
one-thread retry)."""

from __future__ import annotations

import duckdb
import pytest

from segment_pipeline.logic import memory
from segment_pipeline.sql_files import CUSTOMER_BUCKET_FILTER

#: Customers per category from (category, customer) pairs, whole and for one bucket.
_PAIRS = """
SELECT category, count(*) AS customers
FROM (SELECT DISTINCT category, customer_id FROM lines {filter})
GROUP BY category
"""
_QUERIES = (_PAIRS.format(filter=""), _PAIRS.format(filter=CUSTOMER_BUCKET_FILTER))


def _lines() -> duckdb.DuckDBPyConnection:
    conn = duckdb.connect()
    conn.execute("CREATE TABLE lines (customer_id VARCHAR, category VARCHAR)")
    conn.executemany(
        "INSERT INTO lines VALUES (?, ?)",
        [
            ("c1", "A"), ("c1", "A"), ("c1", "B"),  # c1: A twice, B once
            ("c2", "A"),
            ("c3", "B"), ("c3", "C"),
            ("c4", "C"), ("c4", "C"),
            ("c5", "A"),
        ],
    )  # fmt: skip
    return conn


def _customers_per_category(conn: duckdb.DuckDBPyConnection, buckets: int | None) -> list:
    memory.create_by_customer_buckets(conn, "_counts", _QUERIES, "lines", buckets)
    return conn.execute(
        "SELECT category, sum(customers) FROM _counts GROUP BY category ORDER BY category"
    ).fetchall()


@pytest.mark.parametrize("buckets", [None, 1, 2, 3, 7])
def test_customer_counts_add_up_over_buckets(buckets) -> None:
    """Each customer is in one bucket, so the buckets' counts of customers per category add
    up to the whole query's: A has c1, c2, c5; B has c1, c3; C has c3, c4 (counted once)."""
    conn = _lines()
    assert _customers_per_category(conn, buckets) == [("A", 3), ("B", 2), ("C", 2)]
    if buckets is not None:  # one row per category and non-empty bucket
        assert conn.execute("SELECT count(*) FROM _counts").fetchone()[0] >= 3


def test_counts_of_pairs_are_sized_by_the_lines_and_the_memory_limit() -> None:
    """9 lines at 25 bytes each (PAIR_COUNT_BYTES_PER_ROW): one bucket under DuckDB's default
    limit, 5 under a limit of 45 bytes; the counts of the 5 buckets still add up."""
    conn = _lines()
    per_line = memory.PAIR_COUNT_BYTES_PER_ROW
    assert memory.buckets_for(conn, "lines", per_line) == 1
    limit = memory.memory_limit_bytes
    try:
        memory.memory_limit_bytes = lambda conn: 45
        assert memory.buckets_for(conn, "lines", per_line) == 5
        n = memory.create_by_customer_buckets(
            conn, "_counts", _QUERIES, "lines", bytes_per_row=per_line
        )
    finally:
        memory.memory_limit_bytes = limit
    assert n == 5
    assert conn.execute(
        "SELECT category, sum(customers) FROM _counts GROUP BY category ORDER BY category"
    ).fetchall() == [("A", 3), ("B", 2), ("C", 2)]


def test_customer_buckets_follow_rows_and_the_memory_limit() -> None:
    """One bucket whenever the rows fit (or the limit is unknown), else enough that each
    bucket's rows fit; DuckDB's setting ('858.3 MiB') read in bytes."""
    per_row = memory.RUNNING_SUM_BYTES_PER_ROW
    assert memory.customer_buckets(0, 1000 * per_row, per_row) == 1
    assert memory.customer_buckets(1000, 1000 * per_row, per_row) == 1
    assert memory.customer_buckets(1001, 1000 * per_row, per_row) == 2
    assert memory.customer_buckets(9000, 1000 * per_row, per_row) == 9
    assert memory.customer_buckets(10**9, None, per_row) == 1
    conn = duckdb.connect(config={"memory_limit": "900MB"})
    assert memory.memory_limit_bytes(conn) == int(858.3 * 2**20)
    # 7.5M category-month rows (a 10M-line year) under the default limit: one bucket
    assert memory.customer_buckets(7_500_000, memory.memory_limit_bytes(conn), per_row) == 1
    conn.execute("SET memory_limit = '90MB'")
    assert memory.customer_buckets(7_500_000, memory.memory_limit_bytes(conn), per_row) == 9


class _OutOfMemoryOnce:
    """A connection whose first statement runs out of memory (a stand-in: DuckDB's running
    out depends on the machine's threads and timing)."""

    def __init__(self) -> None:
        self.statements: list[str] = []
        self.threads = 2

    def execute(self, sql: str, params: object = None) -> _OutOfMemoryOnce:
        self.statements.append(sql)
        if sql.startswith("SET threads"):
            self.threads = int(sql.rsplit(" ", 1)[1])
        elif sql == "INSERT" and len(self.statements) == 1:
            raise duckdb.OutOfMemoryException("Out of Memory Error: could not allocate block")
        return self

    def fetchall(self) -> list[tuple[object]]:
        return [(str(self.threads),)]


def test_a_statement_out_of_memory_is_run_again_on_one_thread() -> None:
    conn = _OutOfMemoryOnce()
    memory.execute_within_memory(conn, "INSERT")  # type: ignore[arg-type]
    assert conn.statements == [
        "INSERT",
        "SELECT current_setting('threads')",
        "SET threads = 1",
        "INSERT",
        "SET threads = 2",
    ]
    assert conn.threads == 2


def _tables(conn: duckdb.DuckDBPyConnection, where: str) -> set[str]:
    sql = f"SELECT table_name FROM duckdb_tables() WHERE {where}"
    return {name for (name,) in conn.execute(sql).fetchall()}


def test_scratch_tables_on_disk_live_in_a_file_that_goes_away(tmp_path) -> None:
    """With `on_disk` a scratch table is a table of `<database>.scratch`, attached for the
    block: named unqualified like a temp table, holding nothing in the temp catalog. After
    the block (here left by an error) the file is detached and deleted and the search path
    is the caller's again. A file a killed run left there is replaced, not read."""
    db = tmp_path / "w.duckdb"
    scratch = tmp_path / "w.duckdb.scratch"
    scratch.write_text("left by a killed run: not a DuckDB file")
    conn = duckdb.connect(str(db))
    conn.execute("CREATE TABLE lines AS SELECT 'c1' AS customer_id, 'A' AS category")
    conn.execute("SET search_path = 'main'")
    with (
        pytest.raises(RuntimeError, match="step failed"),
        memory.scratch_database(conn, on_disk=True) as on_disk,
    ):
        assert on_disk
        table = memory.scratch_table("_copy", on_disk=on_disk)
        conn.execute(f"CREATE OR REPLACE {table} AS SELECT * FROM lines")
        conn.execute("INSERT INTO _copy VALUES ('c2', 'B')")
        assert conn.execute("SELECT count(*) FROM _copy").fetchone()[0] == 2
        assert _tables(conn, "database_name = 'scratch'") == {"_copy"}
        assert _tables(conn, "temporary") == set()
        assert scratch.stat().st_size > 0
        raise RuntimeError("step failed")
    assert not scratch.exists()
    assert conn.execute("SELECT current_setting('search_path')").fetchone()[0] == "main"
    assert "scratch" not in {
        d for (d,) in conn.execute("SELECT database_name FROM duckdb_databases()").fetchall()
    }
    assert _tables(conn, "true") == {"lines"}


def test_scratch_tables_stay_in_memory_unless_asked_and_possible() -> None:
    """Without `on_disk`, or for an in-memory warehouse (no file to put one beside), the
    block yields False and scratch tables are temp tables."""
    conn = duckdb.connect()
    for wanted in (False, True):
        with memory.scratch_database(conn, on_disk=wanted) as on_disk:
            assert on_disk is False
            conn.execute(
                f"CREATE OR REPLACE {memory.scratch_table('_t', on_disk=on_disk)} AS SELECT 1"
            )
            assert _tables(conn, "temporary") == {"_t"}
            conn.execute("DROP TABLE _t")
    assert memory.scratch_table("_t") == "TEMP TABLE _t"
    assert memory.scratch_table("_t", on_disk=True) == "TABLE scratch._t"


def test_line_estimates_read_their_own_table() -> None:
    """0 before a table exists; staging.transactions' and raw.transactions' rows after
    (DuckDB's own count), each its own table's."""
    conn = duckdb.connect()
    assert memory.staged_lines_estimate(conn) == 0
    assert memory.raw_lines_estimate(conn) == 0
    conn.execute("CREATE SCHEMA staging")
    conn.execute("CREATE TABLE staging.transactions AS SELECT range AS n FROM range(1234)")
    assert memory.staged_lines_estimate(conn) == 1234
    assert memory.raw_lines_estimate(conn) == 0
    conn.execute("CREATE SCHEMA raw")
    conn.execute("CREATE TABLE raw.transactions AS SELECT range AS n FROM range(56)")
    conn.execute("CREATE TABLE raw.customers AS SELECT range AS n FROM range(7)")
    assert memory.raw_lines_estimate(conn) == 56
    assert memory.staged_lines_estimate(conn) == 1234


def test_a_bucket_out_of_memory_starts_over_in_twice_the_buckets(monkeypatch) -> None:
    """A statement that runs out of memory (even on one thread) with fewer than 4 buckets:
    the table is started over in 2, then 4 buckets, and holds the whole query's counts
    once (nothing of the failed tries); one that always fails stops at MAX_CUSTOMER_BUCKETS
    with DuckDB's error."""
    conn = _lines()
    execute = memory.execute_within_memory
    tried = []

    def short_of_memory_below_4(conn, sql, params=None):
        buckets = (params or {}).get("customer_buckets", 1)
        tried.append(buckets)
        # the last bucket fails: with 2 buckets, the first one's rows were written already
        if buckets < 4 and (params or {}).get("customer_bucket", 0) == buckets - 1:
            raise duckdb.OutOfMemoryException("Out of Memory Error: test")
        execute(conn, sql, params)

    monkeypatch.setattr(memory, "execute_within_memory", short_of_memory_below_4)
    assert memory.create_by_customer_buckets(conn, "_counts", _QUERIES, "lines", 1) == 4
    assert sorted(set(tried)) == [1, 2, 4]
    assert conn.execute(
        "SELECT category, sum(customers) FROM _counts GROUP BY category ORDER BY category"
    ).fetchall() == [("A", 3), ("B", 2), ("C", 2)]

    def always_short(conn, sql, params=None):
        tried.append((params or {}).get("customer_buckets", 1))
        raise duckdb.OutOfMemoryException("Out of Memory Error: test")

    tried.clear()
    monkeypatch.setattr(memory, "execute_within_memory", always_short)
    with pytest.raises(duckdb.OutOfMemoryException):
        memory.create_by_customer_buckets(conn, "_counts", _QUERIES, "lines", 3)
    assert tried == [3, 6, 12, 24, 48, memory.MAX_CUSTOMER_BUCKETS]
