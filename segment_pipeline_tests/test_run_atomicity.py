"""A failed run leaves every table as it was before the run (issue 11, item 4): a run's
scope keeps a copy of the database file taken when it starts and puts it back if a step
fails (or the process dies), and the CLI's two runs of a range (the month partitions, then
the analysis layers) share one scope."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb
import pytest

import segment_pipeline.figures as figures
from segment_pipeline import resources
from segment_pipeline.definitions import build_definitions
from segment_pipeline.generator import generate
from segment_pipeline.jobs import ALL_ASSETS_JOB_NAME
from segment_pipeline.resources import DuckDBWarehouse, resolved_memory_limit, undo_path
from segment_pipeline.runner import execute_pipeline
from segment_pipeline_tests.conftest import settings_for


def fingerprint(db: Path) -> dict[str, tuple[int, int]]:
    """Rows and an order-independent hash of every row, per table."""
    with duckdb.connect(str(db), read_only=True) as conn:
        tables = conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_type = 'BASE TABLE' ORDER BY 1, 2"
        ).fetchall()
        return {
            f"{schema}.{name}": tuple(
                conn.execute(
                    "SELECT count(*), coalesce(sum(hash(t)::HUGEINT), 0) "
                    f'FROM "{schema}"."{name}" AS t'
                ).fetchall()[0]
            )
            for schema, name in tables
        }


def _broken_drawing(*_args: object, **_kwargs: object) -> list:
    raise RuntimeError("boom: drawing failed after every table of the run was written")


@pytest.fixture
def two_month_dataset(tmp_path: Path) -> tuple[Path, list[dt.date]]:
    data = tmp_path / "data"
    generate(data, customers=150, days=45, seed=5, start=dt.date(2025, 11, 1))
    return data, [dt.date(2025, 11, 1) + dt.timedelta(days=i) for i in range(45)]


def test_a_failed_range_run_leaves_every_table_as_it_was(
    tmp_path: Path,
    instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
    two_month_dataset: tuple[Path, list[dt.date]],
) -> None:
    data, days = two_month_dataset
    db = tmp_path / "w" / "w.duckdb"
    settings = settings_for(data, db)
    first = execute_pipeline(settings, instance=instance, end=days[20], echo=False)
    assert first.success, first.messages
    before = fingerprint(db)

    # The other 24 days arrive; the range spans two months, so the CLI makes two runs (raw,
    # staging and the snapshots, then the analysis layers); the second fails at its figures.
    monkeypatch.setattr(figures, "draw_all", _broken_drawing)
    monkeypatch.setattr(figures, "draw_as_prepared", _broken_drawing)
    failed = execute_pipeline(settings, instance=instance, echo=False)
    assert not failed.success
    assert len(failed.run_ids) == 2
    assert any("boom" in message for message in failed.messages)
    assert fingerprint(db) == before

    monkeypatch.undo()
    again = execute_pipeline(settings, instance=instance, echo=False)
    assert again.success, again.messages
    after = fingerprint(db)
    assert after["raw.transactions"][0] > before["raw.transactions"][0]
    assert after.keys() == before.keys()


def test_a_failed_run_launched_like_the_ui_does_writes_nothing(
    tmp_path: Path,
    instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
    two_month_dataset: tuple[Path, list[dt.date]],
) -> None:
    """A run of the job on one month partition (the schedule's and the UI's shape): the
    warehouse resource's own run scope, without the CLI around it."""
    data, _days = two_month_dataset
    db = tmp_path / "w" / "w.duckdb"
    defs = build_definitions(settings_for(data, db))
    job = defs.resolve_job_def(ALL_ASSETS_JOB_NAME)
    assert job.execute_in_process(instance=instance, partition_key="2025-11-01").success
    before = fingerprint(db)

    monkeypatch.setattr(figures, "draw_all", _broken_drawing)
    monkeypatch.setattr(figures, "draw_as_prepared", _broken_drawing)
    result = job.execute_in_process(
        instance=instance, partition_key="2025-12-01", raise_on_error=False
    )
    assert not result.success
    assert fingerprint(db) == before  # December's raw and staging rows were undone
    # (that a re-run then commits is shown by the range test above)


# --------------------------------------------------------------------------------------------
# The run scope itself: a copy of the file taken at the start, put back on failure
# --------------------------------------------------------------------------------------------


def _rows(warehouse: DuckDBWarehouse) -> list[tuple[int]]:
    with warehouse.connect() as conn:
        return conn.execute("SELECT v FROM t ORDER BY v").fetchall()


@pytest.fixture
def warehouse(tmp_path: Path) -> DuckDBWarehouse:
    warehouse = DuckDBWarehouse(path=str(tmp_path / "w.duckdb"))
    with warehouse.connect() as conn:
        conn.execute("CREATE TABLE t (v INTEGER)")
        conn.execute("INSERT INTO t VALUES (1)")
    return warehouse


def test_warehouse_connections_draw_no_progress_bar(warehouse: DuckDBWarehouse) -> None:
    """DuckDB's progress bar (queries over 2 s) would break into the CLI's step lines."""
    with warehouse.connect() as conn:
        setting = conn.execute("SELECT current_setting('enable_progress_bar')").fetchone()
    assert setting == (False,)


def test_a_step_leaving_the_run_connection_gives_back_duckdbs_memory(
    warehouse: DuckDBWarehouse,
) -> None:
    """DuckDB keeps the blocks a step read cached in its pool; the next step's memory (its
    pandas or numpy work) would come on top of it. When a step leaves the run's shared
    connection the pool is emptied, and the memory limit is the warehouse's again."""
    with warehouse.connect() as conn:
        conn.execute(
            "CREATE TABLE big AS SELECT range AS i, md5(CAST(range AS VARCHAR)) AS s "
            "FROM range(4000000)"
        )
    in_use = "SELECT sum(memory_usage_bytes) FROM duckdb_memory()"
    with warehouse.run_scope() as scope:
        with warehouse.connect() as conn:
            conn.execute("SELECT count(DISTINCT s), sum(i) FROM big").fetchall()
            cached = conn.execute(in_use).fetchone()[0]
        released = 16 * 2**20
        assert resources._RELEASE_LIMIT == "16MB"
        assert cached > 3 * released  # the table's blocks, read by the step
        with warehouse.connect() as conn:
            assert conn.execute(in_use).fetchone()[0] <= released
            limit = conn.execute("SELECT current_setting('memory_limit')").fetchone()[0]
        scope.succeeded = True
    expected = duckdb.connect(
        config={"memory_limit": resolved_memory_limit(warehouse.memory_limit)}
    )
    assert limit == expected.execute("SELECT current_setting('memory_limit')").fetchone()[0]


class _RestoreRefused:
    """A real DuckDB connection whose first `refusals` restores of the memory limit are
    refused memory, as DuckDB refused one in stop 40's bench."""

    def __init__(self, conn: duckdb.DuckDBPyConnection, refusals: int) -> None:
        self.conn, self.refusals, self.statements = conn, refusals, []

    def execute(self, sql: str, params: object = None) -> duckdb.DuckDBPyConnection:
        self.statements.append(sql)
        if sql == "SET memory_limit = ?" and self.refusals > 0:
            self.refusals -= 1
            raise duckdb.OutOfMemoryException(
                "Out of Memory Error: failed to allocate data of size 2.0 KiB "
                "(996.0 KiB/976.5 KiB used)"
            )
        return self.conn.execute(sql, params) if params is not None else self.conn.execute(sql)


def _memory_limit(conn: duckdb.DuckDBPyConnection) -> str:
    return conn.execute("SELECT current_setting('memory_limit')").fetchone()[0]


def test_the_memory_limit_is_lifted_before_it_is_set_back_and_a_refusal_tried_again() -> None:
    conn = duckdb.connect()
    expected = _memory_limit(duckdb.connect(config={"memory_limit": "300MB"}))
    once = _RestoreRefused(conn, refusals=1)
    resources.release_buffer_pool(once, "300MB")  # type: ignore[arg-type]
    assert once.statements == [
        f"SET memory_limit = '{resources._RELEASE_LIMIT}'",
        "RESET memory_limit",
        "SET memory_limit = ?",
        "RESET memory_limit",
        "SET memory_limit = ?",
    ]
    assert _memory_limit(conn) == expected
    always = _RestoreRefused(conn, refusals=resources.RESTORE_ATTEMPTS)
    with pytest.raises(resources.MemoryLimitNotRestored, match=r"set back to 200MB .*3 tries"):
        resources.release_buffer_pool(always, "200MB")  # type: ignore[arg-type]
    assert always.statements.count("SET memory_limit = ?") == resources.RESTORE_ATTEMPTS
    assert always.statements.count("RESET memory_limit") == resources.RESTORE_ATTEMPTS


def test_a_step_whose_memory_limit_is_not_restored_stops_the_run_steps_after_it(
    warehouse: DuckDBWarehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The step that could not put the limit back fails with that error, and the next step
    is told the run already failed instead of running out of memory under a 1 MB limit."""

    def refused(conn: duckdb.DuckDBPyConnection, memory_limit: str) -> None:
        conn.execute("SET memory_limit = '1MB'")
        raise resources.MemoryLimitNotRestored("refused")

    monkeypatch.setattr(resources, "release_buffer_pool", refused)
    with pytest.raises(RuntimeError, match="boom"), warehouse.run_scope():
        with pytest.raises(resources.MemoryLimitNotRestored), warehouse.connect() as conn:
            conn.execute("INSERT INTO t VALUES (2)")
        with (
            pytest.raises(dg.Failure, match="an earlier step of this run failed"),
            warehouse.connect(),
        ):
            pass
        raise RuntimeError("boom")
    assert _rows(warehouse) == [(1,)]


def test_auto_memory_limit_follows_the_raw_and_staged_lines(
    warehouse: DuckDBWarehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`auto` is 900MB; 800MB from the step after the one that took raw.transactions over
    LARGE_WAREHOUSE_LINES (here 5) while staging is not; 700MB from the step after the one
    that took staging.transactions over it, whatever raw holds; a size given is used as is."""
    monkeypatch.setattr(resources, "LARGE_WAREHOUSE_LINES", 5)
    setting = "SELECT current_setting('memory_limit')"
    assert warehouse.memory_limit == "auto"
    small, loading, large = (
        duckdb.connect(config={"memory_limit": size}).execute(setting).fetchone()[0]
        for size in ("900MB", "800MB", "700MB")
    )
    with warehouse.run_scope() as scope:
        with warehouse.connect() as conn:
            assert conn.execute(setting).fetchone()[0] == small
            conn.execute("CREATE SCHEMA raw")
            conn.execute("CREATE TABLE raw.transactions AS SELECT range AS i FROM range(5)")
        with warehouse.connect() as conn:
            assert conn.execute(setting).fetchone()[0] == small  # 5 raw lines: not over
            conn.execute("INSERT INTO raw.transactions VALUES (5)")
            conn.execute("CREATE SCHEMA staging")
            conn.execute("CREATE TABLE staging.transactions AS SELECT range AS i FROM range(5)")
        with warehouse.connect() as conn:
            # a large load being staged: raw over the threshold, staging not
            assert conn.execute(setting).fetchone()[0] == loading
            assert resources.resolved_memory_limit("auto", conn) == "800MB"
            conn.execute("INSERT INTO staging.transactions VALUES (5)")
        with warehouse.connect() as conn:
            assert conn.execute(setting).fetchone()[0] == large
            assert resources.resolved_memory_limit("auto", conn) == "700MB"
            assert resources.resolved_memory_limit("512MB", conn) == "512MB"
            conn.execute("DELETE FROM raw.transactions")  # the staged lines decide alone
        with warehouse.connect() as conn:
            assert conn.execute(setting).fetchone()[0] == large
        scope.succeeded = True
    with warehouse.connect() as conn:  # a connection of its own: resolved when opened
        assert conn.execute(setting).fetchone()[0] == large
    assert resources.resolved_memory_limit("auto") == "900MB"


def test_a_run_scope_keeps_its_writes_when_it_succeeds(warehouse: DuckDBWarehouse) -> None:
    with warehouse.run_scope() as scope:
        assert undo_path(warehouse.db_path).exists()
        with warehouse.connect() as conn:
            # a step's own transaction is a real one inside the scope
            conn.execute("BEGIN TRANSACTION")
            conn.execute("INSERT INTO t VALUES (2)")
            conn.execute("COMMIT")
        scope.succeeded = True
    assert _rows(warehouse) == [(1,), (2,)]
    assert not undo_path(warehouse.db_path).exists()


def test_a_run_scope_puts_the_file_back_when_it_fails(warehouse: DuckDBWarehouse) -> None:
    with pytest.raises(RuntimeError, match="boom"), warehouse.run_scope():
        with warehouse.connect() as conn:
            conn.execute("INSERT INTO t VALUES (2)")  # committed at once...
            conn.execute("CREATE TABLE u AS SELECT 1 AS w")
        raise RuntimeError("boom")
    assert _rows(warehouse) == [(1,)]  # ...and undone with the run
    with warehouse.connect() as conn:
        assert conn.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'u'"
        ).fetchall() == [(0,)]
    assert not undo_path(warehouse.db_path).exists()


def test_a_run_killed_mid_way_is_undone_by_the_next_open(warehouse: DuckDBWarehouse) -> None:
    """kill -9 inside the scope (no cleanup runs): the copy stays beside the file, and the
    next process to take the warehouse lock puts it back before opening the database."""
    script = (
        "import os, sys\n"
        "from segment_pipeline.resources import DuckDBWarehouse\n"
        "w = DuckDBWarehouse(path=sys.argv[1])\n"
        "with w.run_scope():\n"
        "    with w.connect() as conn:\n"
        "        conn.execute('INSERT INTO t SELECT range FROM range(100, 200)')\n"
        "        conn.execute('CHECKPOINT')\n"
        "        conn.execute('INSERT INTO t VALUES (3)')\n"
        "    os.kill(os.getpid(), 9)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(warehouse.db_path)], capture_output=True, timeout=120
    )
    assert done.returncode == -9, done.stderr.decode()[-2000:]
    assert undo_path(warehouse.db_path).exists()
    assert _rows(warehouse) == [(1,)]
    assert not undo_path(warehouse.db_path).exists()
