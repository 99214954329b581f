"""Dagster resources: the DuckDB warehouse and the dataset the pipeline reads.

DuckDB allows one writing process (or many readers, never both). Every connection the project
opens goes through :meth:`DuckDBWarehouse.connect`, which holds an exclusive file lock next to
the database for the connection's lifetime: a second process (another run, a sensor, the
webserver evaluating a check) waits for its turn instead of failing on DuckDB's own lock.
No connection is ever opened at import time.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg
import duckdb

from segment_pipeline.logic.memory import raw_lines_estimate, staged_lines_estimate
from segment_pipeline.settings import (
    AUTO_MEMORY_LIMIT,
    DEFAULT_DB_PATH,
    DEFAULT_MEMORY_LIMIT,
    DEFAULT_SQL_CHUNK_ROWS,
    DEFAULT_UNDATED_DAY,
    LARGE_LOAD_MEMORY_LIMIT,
    LARGE_WAREHOUSE_LINES,
    LARGE_WAREHOUSE_MEMORY_LIMIT,
    PipelineSettings,
)

if TYPE_CHECKING:
    from segment_pipeline.sources import DatasetSource


#: Every asset that writes the warehouse claims this Dagster pool. DuckDB allows one writing
#: process; the project instance limits the pool to 1 (.dagster_home/dagster.yaml) so queued
#: steps wait in Dagster (visible in the UI), and the warehouse file lock guarantees the same
#: for any process outside Dagster's accounting.
WAREHOUSE_POOL = "duckdb_warehouse"


class WarehouseLockTimeout(RuntimeError):
    """Another process held the warehouse for longer than the configured timeout."""


class _ProcessLock:
    """A re-entrant, process-wide exclusive lock on one file (flock).

    flock locks belong to an open file description, so a nested `connect()` in the same process
    must reuse the lock it already holds rather than open the file again (which would deadlock).
    """

    def __init__(self, lock_path: Path) -> None:
        self.lock_path = lock_path
        self._thread_lock = threading.RLock()
        self._depth = 0
        self._fd: int | None = None

    def acquire(self, timeout_seconds: float) -> None:
        if not self._thread_lock.acquire(timeout=timeout_seconds if timeout_seconds > 0 else -1):
            raise WarehouseLockTimeout(f"Timed out waiting for {self.lock_path} in this process")
        if self._depth == 0:
            try:
                self._fd = self._flock(timeout_seconds)
            except BaseException:
                self._thread_lock.release()
                raise
        self._depth += 1

    @property
    def depth(self) -> int:
        """How many times the lock is held (re-entrantly) in this process."""
        return self._depth

    def release(self) -> None:
        self._depth -= 1
        if self._depth == 0 and self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
        self._thread_lock.release()

    def _flock(self, timeout_seconds: float) -> int:
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + timeout_seconds
        delay = 0.05
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise WarehouseLockTimeout(
                        f"Another process has held the DuckDB warehouse lock {self.lock_path} "
                        f"for more than {timeout_seconds:.0f} s; is a run stuck?"
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 1.0)


_LOCKS: dict[Path, _ProcessLock] = {}
_LOCKS_GUARD = threading.Lock()


def _lock_for(db_path: Path) -> _ProcessLock:
    lock_path = db_path.with_name(db_path.name + ".lock")
    with _LOCKS_GUARD:
        if lock_path not in _LOCKS:
            _LOCKS[lock_path] = _ProcessLock(lock_path)
        return _LOCKS[lock_path]


class DuckDBWarehouse(dg.ConfigurableResource):
    """The one DuckDB file that holds every table (one schema per layer)."""

    path: str = str(DEFAULT_DB_PATH)
    lock_timeout_seconds: float = 900.0
    memory_limit: str = DEFAULT_MEMORY_LIMIT
    """DuckDB's memory limit per connection (`SEGMENT_PIPELINE_MEMORY_LIMIT`): a size, or
    `auto` (900MB; 700MB once the warehouse holds more than 30M staged lines, see
    `resolved_memory_limit`). Larger work spills to `<database>.tmp/` next to the file, so a
    run's memory stays bounded whatever the data size (the process needs 0.3-0.7 GB on top
    for Python, pandas and polars; see docs/performance.md)."""

    atomic_runs: bool = True
    """A failed run leaves every table as it was: the run's steps share one connection and
    commit as they go, and a copy of the database file taken when the run starts
    (`<database>.undo`) is put back if a step fails (or the process dies; the next open puts
    it back). False: each step opens its own connection and keeps what it committed."""

    @property
    def db_path(self) -> Path:
        return Path(self.path)

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-write connection: the run's shared one inside a run scope (closing it does
        nothing), else a connection of its own while holding the warehouse lock."""
        shared = _RUN_SCOPES.get(self.db_path.resolve())
        if shared is not None:
            if shared.failed:
                # The run is undone whatever happens now: say so, instead of letting this
                # step write into a warehouse that is about to be put back.
                raise dg.Failure(
                    description="not run: an earlier step of this run failed, so the run "
                    "writes nothing (every table stays as it was before the run); see that "
                    "step's message"
                )
            try:
                yield shared.view  # type: ignore[misc]
            except BaseException as exc:
                if not isinstance(exc, GeneratorExit):
                    shared.failed = True
                raise
            # the step's work is done: the next step (maybe Python's) starts with DuckDB's
            # memory given back (a failed step's run is undone instead)
            try:
                release_buffer_pool(
                    shared.conn, resolved_memory_limit(self.memory_limit, shared.conn)
                )
            except BaseException:
                # the connection may be left at the release limit: no later step may use it
                shared.failed = True
                raise
            return
        with self._exclusive_connection() as conn:
            yield conn

    @contextmanager
    def run_scope(self) -> Iterator[RunScope]:
        """All-or-nothing for everything `connect()` does in this process until it ends: one
        shared connection, and a copy of the database file taken first. Kept if the caller
        sets `succeeded`; else (also on an exception or Ctrl-C) the copy is put back. Nested,
        it is the outer scope, which decides.

        Why a file copy and not one DuckDB transaction around the run: uncommitted rows live
        in the transaction's local storage, and at 10M lines every later query of the run
        read them from there (the monthly snapshots took 3 min 56 s instead of 1 min 47 s);
        copying the file costs about 0.1 s per 100 MB (docs/performance.md)."""
        key = self.db_path.resolve()
        outer = _RUN_SCOPES.get(key)
        if outer is not None:
            yield outer
            return
        with self._locked():
            conn = self._open()
            scope = RunScope(conn)
            try:
                take_undo_copy(self.db_path, conn)
            except BaseException:
                conn.close()
                raise
            _RUN_SCOPES[key] = scope
            _OPEN_CONNECTIONS.add(conn)
            try:
                yield scope
            finally:
                del _RUN_SCOPES[key]
                _OPEN_CONNECTIONS.discard(conn)
                try:
                    conn.close()  # a step's unfinished transaction is discarded here
                finally:
                    if scope.succeeded:
                        discard_undo_copy(self.db_path)
                    else:
                        restore_undo_copy(self.db_path)

    @contextmanager
    def yield_for_execution(self, context: dg.InitResourceContext) -> Iterator[DuckDBWarehouse]:
        """In a run (resources are set up once per run by the in-process executor): the run's
        scope, kept only if no step failed (a failed blocking check fails its step)."""
        if not self.atomic_runs or context.run_id is None or context.instance is None:
            yield self
            return
        with self.run_scope() as scope:
            yield self
            scope.succeeded = not run_has_failed_step(context.instance, context.run_id)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the warehouse lock. Taking it afresh, put back the undo copy a dead run left
        (its process held the lock while the copy existed, so it is gone)."""
        db_path = self.db_path
        db_path.parent.mkdir(parents=True, exist_ok=True)
        key = db_path.resolve()
        lock = _lock_for(key)
        lock.acquire(self.lock_timeout_seconds)
        try:
            if lock.depth == 1 and key not in _RUN_SCOPES:
                restore_undo_copy(db_path)
            yield
        finally:
            lock.release()

    def _open(self) -> duckdb.DuckDBPyConnection:
        db_path = self.db_path
        conn = duckdb.connect(
            str(db_path),
            config={
                "memory_limit": resolved_memory_limit(self.memory_limit),
                "temp_directory": str(db_path.with_name(db_path.name + ".tmp")),
                # preserve_insertion_order stays on: raw line numbers are the order in
                # which DuckDB reads each file (row_number() OVER ()).
            },
        )
        # DuckDB draws a progress bar on stdout for queries over 2 s: in the CLI's console
        # and the run logs it broke into the step lines (10M lines). A session setting.
        conn.execute("SET enable_progress_bar = false")
        if self.memory_limit.strip().lower() == "auto":
            conn.execute("SET memory_limit = ?", [resolved_memory_limit("auto", conn)])
        return conn

    @contextmanager
    def _exclusive_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """Open a read-write connection while holding the warehouse lock."""
        with self._locked():
            conn = self._open()
            _OPEN_CONNECTIONS.add(conn)
            try:
                yield conn
            finally:
                _OPEN_CONNECTIONS.discard(conn)
                conn.close()


def resolved_memory_limit(setting: str, conn: duckdb.DuckDBPyConnection | None = None) -> str:
    """The DuckDB memory limit the `memory_limit` setting stands for on `conn`: a size as
    given; `auto` is AUTO_MEMORY_LIMIT (900MB), LARGE_LOAD_MEMORY_LIMIT (800MB) while
    raw.transactions holds more than LARGE_WAREHOUSE_LINES lines and staging.transactions
    does not, and LARGE_WAREHOUSE_MEMORY_LIMIT (700MB) once staging does (without `conn`:
    900MB). Resolved when a connection opens and again after every step of a run.

    Why less for more data: the process's own memory (Python, numpy, polars, and what the
    allocators keep) comes on top of DuckDB's, and it grows with the data: 290-430 MiB between
    steps at 10M lines, 600-780 MiB after the snapshots at 100M. Under 900MB a 100M-line run
    passed 1,572 MiB of RSS in its monthly snapshots (the step still running; 1,669 MiB over
    a whole run in stop 30); under 700MB from the snapshots on, every later step stayed
    within 1,468 MiB (docs/performance.md). The staging step of a first 100M-line load, whose
    raw lines are all there and staged ones not yet, ran out of memory under 700MB in its
    identity check (667 MiB used; stops 32 and 45), and under 900MB it set the whole run's
    peak, 1,460 MiB (1,413 MiB alone); under 800MB it peaks at 1,322 MiB alone in the same
    4.8 minutes (stop 45). Below 30M lines 900MB stays: a 10M-line run peaks at 1.32 GB with
    it and was 6% slower under 700MB."""
    if setting.strip().lower() != "auto":
        return setting
    if conn is None:
        return AUTO_MEMORY_LIMIT
    if staged_lines_estimate(conn) > LARGE_WAREHOUSE_LINES:
        return LARGE_WAREHOUSE_MEMORY_LIMIT
    if raw_lines_estimate(conn) > LARGE_WAREHOUSE_LINES:
        return LARGE_LOAD_MEMORY_LIMIT
    return AUTO_MEMORY_LIMIT


#: What DuckDB's memory limit is lowered to for a moment to empty its buffer pool. Not 1MB:
#: DuckDB keeps up to about 1 MB it does not evict, and at 1MB the statements that put the
#: limit back were refused memory (stop 40; in stop 45's test suite `RESET memory_limit`
#: itself, three times: 977.1 KiB used of 976.5 KiB). 16MB leaves them room, and what the
#: pool may keep between steps instead is 2% of the 700-900MB it holds during one.
_RELEASE_LIMIT = "16MB"

#: Tries at putting the memory limit back after the pool was emptied (see
#: `restore_memory_limit`).
RESTORE_ATTEMPTS = 3


class MemoryLimitNotRestored(RuntimeError):
    """DuckDB refused, every time, the memory the statement that puts its limit back needs."""


def release_buffer_pool(conn: duckdb.DuckDBPyConnection, memory_limit: str) -> None:
    """Let DuckDB give back the memory it keeps between statements: lowering its limit makes
    it evict its buffer pool (cached blocks of the file, spillable temporary data to the
    spill folder) at once, then the limit goes back to `memory_limit`. Done when a step
    leaves the run's shared connection: the pool stays full after a step's SQL (it is a
    cache), and the next step's own memory comes on top of it: at 100M lines clv_model_fit
    (its likelihood in numpy over 5.4M customers) took the process to 1.98 GB after
    segment_product_purchases, and 0.99 GB alone. Measured (lowered to 1MB, as until stop
    45): 858 MiB in use -> 30 MiB, RSS 985 -> 117 MB, in 0.09 s. Best effort: should DuckDB
    refuse the lower limit (after a staging step it kept about 2 MB it does not evict,
    `BASE_TABLE` in `duckdb_memory()`, and refused 1 MB), the refused attempt has evicted the
    rest by then (51 MB in use -> 2 MB, measured), so the error is ignored. Putting the limit
    back is a statement that needs memory of its own: `_RELEASE_LIMIT` leaves it room, and
    `restore_memory_limit` tries again."""
    try:
        conn.execute(f"SET memory_limit = '{_RELEASE_LIMIT}'")
    except duckdb.Error:
        pass
    finally:
        restore_memory_limit(conn, memory_limit)


def restore_memory_limit(
    conn: duckdb.DuckDBPyConnection, memory_limit: str, attempts: int = RESTORE_ATTEMPTS
) -> None:
    """Set DuckDB's memory limit back to `memory_limit` after `release_buffer_pool` lowered it.

    Stop 40's `make bench` saw this statement refused 2 KiB once (996 KiB in use against the
    976.5 KiB limit, as `rfm_summary` left the connection in the single-file run): the
    connection stayed at 1 MB and every later step of the run failed out of memory. So the
    limit is first lifted by `RESET memory_limit` (DuckDB's default, 80% of the RAM; no
    parameter to hold), and the SET with the configured size then runs with room; a refused
    try is tried again, and only when every try is refused does it raise
    `MemoryLimitNotRestored`, which fails the step with what happened (and
    `DuckDBWarehouse.connect` keeps the run's later steps off the connection)."""
    refused: duckdb.Error | None = None
    for _ in range(max(1, attempts)):
        try:
            conn.execute("RESET memory_limit")
            conn.execute("SET memory_limit = ?", [memory_limit])
            return
        except duckdb.OutOfMemoryException as exc:
            refused = exc
    raise MemoryLimitNotRestored(
        f"DuckDB's memory limit could not be set back to {memory_limit} after its buffer pool "
        f"was emptied ({max(1, attempts)} tries refused memory: {refused}); the run stops here "
        f"rather than go on with a {_RELEASE_LIMIT} limit"
    ) from refused


def undo_path(db_path: Path) -> Path:
    """Where a run keeps the copy of the database file it puts back if it fails."""
    return db_path.with_name(db_path.name + ".undo")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def take_undo_copy(db_path: Path, conn: duckdb.DuckDBPyConnection) -> None:
    """Copy the database file (checkpointed first, so the file alone is the whole state) to
    `undo_path`, durably: written under a temporary name, synced, then renamed."""
    conn.execute("CHECKPOINT")
    undo = undo_path(db_path)
    partial = undo.with_name(undo.name + ".partial")
    shutil.copyfile(db_path, partial)
    _fsync(partial)
    os.replace(partial, undo)
    _fsync(undo.parent)


def discard_undo_copy(db_path: Path) -> None:
    """The run succeeded (its connection closed, so its writes are checkpointed)."""
    undo_path(db_path).unlink(missing_ok=True)


def restore_undo_copy(db_path: Path) -> bool:
    """Put the undo copy back as the database (no connection may be open). The write-ahead
    log goes first: replayed onto the restored file it would re-apply the failed run."""
    undo = undo_path(db_path)
    undo.with_name(undo.name + ".partial").unlink(missing_ok=True)
    if not undo.exists():
        return False
    db_path.with_name(db_path.name + ".wal").unlink(missing_ok=True)
    os.replace(undo, db_path)
    _fsync(db_path.parent)
    return True


def run_has_failed_step(instance: dg.DagsterInstance, run_id: str) -> bool:
    """Whether a step of the run failed (a failed blocking check fails its step)."""
    failures = instance.get_records_for_run(
        run_id, of_type={dg.DagsterEventType.STEP_FAILURE}, limit=1
    )
    return bool(failures.records)


class _SharedConnection:
    """The run scope's connection as a step sees it: closing it does not close it (the run
    scope does, when the run ends). Everything else, BEGIN / COMMIT included, is the DuckDB
    connection's."""

    def __init__(self, conn: duckdb.DuckDBPyConnection) -> None:
        self._conn = conn

    def close(self) -> None:
        pass

    def __getattr__(self, name: str) -> object:
        return getattr(self._conn, name)


@dataclass
class RunScope:
    """The connection a run's steps (or the runs of one CLI command) share, and its outcome."""

    conn: duckdb.DuckDBPyConnection
    succeeded: bool = False
    failed: bool = False
    """A step failed while using the connection: the run will be undone."""

    @property
    def view(self) -> _SharedConnection:
        return _SharedConnection(self.conn)


#: The run scope open in this process, per warehouse file.
_RUN_SCOPES: dict[Path, RunScope] = {}


#: Connections currently open by `DuckDBWarehouse.connect` in this process, so that Ctrl-C
#: can interrupt a long query (a Python exception cannot reach a thread inside DuckDB).
_OPEN_CONNECTIONS: set[duckdb.DuckDBPyConnection] = set()


def interrupt_open_connections() -> None:
    """Interrupt the running query of every open warehouse connection (the step then fails,
    and its run is undone)."""
    for conn in list(_OPEN_CONNECTIONS):
        with contextlib.suppress(duckdb.Error):  # closed meanwhile
            conn.interrupt()


class DatasetResource(dg.ConfigurableResource):
    """The dataset the pipeline reads: a folder (or database) in one of the source formats."""

    data_dir: str
    source_format: str = "canonical"
    mapping_file: str | None = None
    undated_day: str = DEFAULT_UNDATED_DAY.isoformat()
    timezone: str = "UTC"
    """The dataset's time zone: a timestamp with an explicit offset (`...-05:00`, `...Z`) is
    converted to this zone's local time; timestamps without one are taken as local already."""
    sql_transactions_table: str = "transactions"
    sql_customers_table: str = "customers"
    sql_products_table: str = "products"
    sql_chunk_rows: str = str(DEFAULT_SQL_CHUNK_ROWS)
    """Format `sql`: its tables (`schema.table` allowed) and rows fetched per chunk. The
    database URL is never config: it is read from `SEGMENT_PIPELINE_SQL_URL` when the source
    opens (it holds a password)."""

    @classmethod
    def for_settings(cls, settings: PipelineSettings) -> DatasetResource:
        """The resource for `settings`: a value that came from an environment variable is
        configured as `dg.EnvVar` of that variable (resolved by Dagster when a run starts),
        the others (CLI flags, defaults) as their values."""
        values: dict[str, object] = {
            "data_dir": str(settings.data_dir),
            "source_format": settings.source_format,
            "mapping_file": str(settings.mapping_file) if settings.mapping_file else None,
            "undated_day": settings.undated_day.isoformat(),
            "timezone": settings.timezone,
            "sql_transactions_table": settings.sql_transactions_table,
            "sql_customers_table": settings.sql_customers_table,
            "sql_products_table": settings.sql_products_table,
            "sql_chunk_rows": str(settings.sql_chunk_rows),
        }
        return cls(**{name: settings.env_or_value(name, v) for name, v in values.items()})

    def settings(self) -> PipelineSettings:
        """This config as settings, parsed exactly as the environment variables are."""
        return PipelineSettings.from_strings(
            {
                "data_dir": self.data_dir,
                "source_format": self.source_format,
                "mapping_file": self.mapping_file,
                "undated_day": self.undated_day,
                "timezone": self.timezone,
                "sql_transactions_table": self.sql_transactions_table,
                "sql_customers_table": self.sql_customers_table,
                "sql_products_table": self.sql_products_table,
                "sql_chunk_rows": self.sql_chunk_rows,
            },
            origin=lambda name: f"the dataset resource's {name}",
        )

    def open(self) -> DatasetSource:
        """The source adapter (raises DataContractError for an unknown format)."""
        from segment_pipeline.sources import open_source

        return open_source(self.settings())
