"""The project instance's event log: Dagster's SQLite storage with its connections kept open.

Dagster's `SqliteEventLogStorage` creates a SQLAlchemy engine, opens a SQLite connection,
commits with a full fsync and disposes the engine for every read and write of the event log.
A run of this project writes about 500 events and reads the log about as often (data versions,
checks, the CLI's progress), so that came to about 1,700 connections and 8 s of a 40 s run on
the bundled sample (measured with yappi, docs/performance.md). This class keeps one engine per
database file (the index and the few most recent runs) and commits in WAL mode with
`synchronous=NORMAL`: a killed process loses nothing it committed, an OS crash or power loss
may lose the last events (SQLite stays consistent). Everything else, the files, their schema
and migrations, is Dagster's own: the webserver, the daemon and `dagster` CLIs read the same
`history/runs/*.db` files, with or without this class.

Selected in `.dagster_home/dagster.yaml` (`event_log_storage:`); `base_dir` defaults to where
Dagster's default storage keeps the files, `$DAGSTER_HOME/history/runs`.

One event is not stored again and again: Dagster plans every asset of a partitioned run once
per partition of the run's range, the unpartitioned ones included (its
`RunDomain._log_asset_planned_events` hands them the run's partition subset). So one run of
every asset over a year of month partitions (`dagster asset materialize --select '*'
--partition-range`) stored 564 `ASSET_MATERIALIZATION_PLANNED` events, 41 assets x 12 of
them for assets that have no partitions, about 1.5 s of the run's creation. This class
stores an unpartitioned asset's first planned event of a run (what a one-partition run
stores) and drops its repeats; a partitioned asset keeps one per partition, which the UI
marks partitions in progress or failed from. Whether an asset is partitioned is read from
the run's execution plan snapshot (`is_asset_partitioned`), which Dagster stores before it
plans.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as db
from dagster import AssetKey, Field, StringSource
from dagster._core.events import DagsterEventType
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    INDEX_SHARD_NAME,
    SqliteEventLogStorage,
)
from dagster._core.storage.sqlite import create_db_conn_string
from dagster._serdes import ConfigurableClassData
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import StaticPool

from segment_pipeline.jobs import planned_asset_outputs

#: Run databases whose engine stays open besides the index (the runs being written or read).
OPEN_RUN_DATABASES = 4

#: Seconds SQLite waits for another process's write lock (Dagster's own value).
SQLITE_BUSY_TIMEOUT_SECONDS = 30

#: Runs whose unpartitioned assets (and those already planned) this class remembers.
PLANNED_RUNS_REMEMBERED = 8


def _sqlite_engine(conn_string: str) -> Engine:
    """One connection per database, shared by the threads of this process under the
    storage's lock (`check_same_thread=False`)."""
    engine = db.create_engine(
        conn_string,
        poolclass=StaticPool,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
    )

    @db.event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        # WAL (set by Dagster when it creates the file) + NORMAL: no fsync per commit.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return engine


class PooledSqliteEventLogStorage(SqliteEventLogStorage):
    """`SqliteEventLogStorage` that reuses one connection per database file."""

    def __init__(self, base_dir: str | None = None, inst_data: ConfigurableClassData | None = None):
        if base_dir is None:
            home = os.environ.get("DAGSTER_HOME")
            if not home:
                raise ValueError(
                    "PooledSqliteEventLogStorage needs DAGSTER_HOME or a `base_dir:` in its config"
                )
            base_dir = os.path.join(home, "history", "runs")
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        # Tables of the index database and columns of its asset_keys table known to exist.
        self._present_tables: set[str] = set()
        self._present_asset_key_columns: set[str] = set()
        # per run: its unpartitioned assets, and those of them whose plan is stored
        self._planned: OrderedDict[str, tuple[frozenset[AssetKey], set[AssetKey]]] = OrderedDict()
        self._planned_lock = threading.Lock()
        super().__init__(base_dir, inst_data=inst_data)

    @classmethod
    def config_type(cls) -> dict[str, Field]:
        return {"base_dir": Field(StringSource, is_required=False)}

    @classmethod
    def from_config_value(  # type: ignore[override]
        cls, inst_data: ConfigurableClassData | None, config_value: dict[str, Any]
    ) -> PooledSqliteEventLogStorage:
        return cls(inst_data=inst_data, **config_value)

    def _engine_for(self, shard: str) -> Engine:
        engine = self._engines.get(shard)
        if engine is not None:
            self._engines.move_to_end(shard)
            return engine
        engine = _sqlite_engine(create_db_conn_string(self._base_dir, shard))
        if shard not in self._initialized_dbs:
            self._initdb(engine)
            self._initialized_dbs.add(shard)
        self._engines[shard] = engine
        runs = [name for name in self._engines if name != INDEX_SHARD_NAME]
        for stale in runs[: max(0, len(runs) - OPEN_RUN_DATABASES)]:
            self._engines.pop(stale).dispose()
        return engine

    # Dagster asks whether a table or column exists for every asset event and check event
    # (about 150 times in a run of the tiny dataset), its `has_table` opening a new SQLite
    # connection each time. Migrations add tables and columns, none removes one: an answer
    # "present" stays true, so only those are kept; "absent" is asked again.

    def has_table(self, table_name: str) -> bool:
        if table_name in self._present_tables:
            return True
        present = super().has_table(table_name)
        if present:
            self._present_tables.add(table_name)
        return present

    def _has_asset_key_col_on_connection(self, conn: Connection, column_name: str) -> bool:
        if column_name in self._present_asset_key_columns:
            return True
        present = super()._has_asset_key_col_on_connection(conn, column_name)
        if present:
            self._present_asset_key_columns.add(column_name)
        return present

    def store_event(self, event: EventLogEntry) -> None:
        if self._repeats_a_stored_plan(event):
            return
        super().store_event(event)

    def _repeats_a_stored_plan(self, event: EventLogEntry) -> bool:
        """Whether `event` plans an unpartitioned asset again in a run that stored its plan
        already (the module's docstring says why)."""
        dagster_event = event.dagster_event
        if (
            dagster_event is None
            or dagster_event.event_type != DagsterEventType.ASSET_MATERIALIZATION_PLANNED
        ):
            return False
        planned = dagster_event.asset_materialization_planned_data
        if planned is None or planned.partition is None:
            return False
        with self._planned_lock:
            known = event.run_id in self._planned
        # read outside the lock (the run storage is another database), once per run
        found = frozenset() if known else self._unpartitioned_assets(event.run_id)
        with self._planned_lock:
            if event.run_id not in self._planned:
                self._planned[event.run_id] = (found, set())
                while len(self._planned) > PLANNED_RUNS_REMEMBERED:
                    self._planned.popitem(last=False)
            unpartitioned, stored = self._planned[event.run_id]
            if planned.asset_key not in unpartitioned:
                return False
            if planned.asset_key in stored:
                return True
            stored.add(planned.asset_key)
            return False

    def _unpartitioned_assets(self, run_id: str) -> frozenset[AssetKey]:
        """The assets the run's execution plan says have no partitions (none when the plan
        cannot be read: then every planned event is stored, as Dagster would)."""
        instance = self._instance if getattr(self, "_instance_weakref", None) else None
        run = instance.get_run_by_id(run_id) if instance is not None else None
        outputs = planned_asset_outputs(instance, run) if run is not None else None
        if outputs is None:
            return frozenset()
        partitioned = {p.asset_key for p in outputs if p.is_asset_partitioned}
        return frozenset(
            p.asset_key
            for p in outputs
            if not p.is_asset_partitioned and p.asset_key not in partitioned
        )

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        with self._db_lock:
            engine = self._engine_for(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

    def _close_all(self) -> None:
        with self._db_lock:
            for engine in self._engines.values():
                engine.dispose()
            self._engines.clear()

    def wipe(self) -> None:
        self._close_all()  # the run files are deleted: no connection may keep them open
        super().wipe()

    def dispose(self) -> None:
        self._close_all()
        super().dispose()
