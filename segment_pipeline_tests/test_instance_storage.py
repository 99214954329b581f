"""The project instance's pooled event log (segment_pipeline/instance_storage.py) writes the
same SQLite files as Dagster's own storage: runs recorded through it read back identically
through Dagster's default storage, old run files are closed, and a wipe removes them."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import yaml

from segment_pipeline.instance_storage import OPEN_RUN_DATABASES, PooledSqliteEventLogStorage
from segment_pipeline_tests.conftest import project_home


@dg.asset
def numbers() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"rows": 3})


@dg.asset_check(asset=numbers)
def numbers_positive() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=True)


def _events(instance: dg.DagsterInstance, run_id: str) -> list[tuple[str | None, str]]:
    records = instance.get_records_for_run(run_id, limit=10_000).records
    return [
        (
            r.event_log_entry.dagster_event_type.value
            if r.event_log_entry.dagster_event_type
            else None,
            r.event_log_entry.user_message,
        )
        for r in records
    ]


def test_runs_written_through_the_pool_read_back_through_dagsters_own_storage(
    tmp_path: Path,
) -> None:
    home = project_home(tmp_path / "home")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert isinstance(instance.event_log_storage, PooledSqliteEventLogStorage)
        run_ids = [
            dg.materialize([numbers, numbers_positive], instance=instance).run_id for _ in range(2)
        ]
        written = {run_id: _events(instance, run_id) for run_id in run_ids}
        latest = instance.get_latest_materialization_event(numbers.key)
        assert latest is not None and latest.run_id == run_ids[-1]

    # The same folder opened with Dagster's default storage (as `dagster dev` without the
    # project's dagster.yaml would): identical events, the asset's history intact.
    config = yaml.safe_load((home / "dagster.yaml").read_text())
    del config["event_log_storage"]
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    with dg.DagsterInstance.from_config(str(home)) as plain:
        assert type(plain.event_log_storage).__name__ == "SqliteEventLogStorage"
        for run_id, events in written.items():
            assert _events(plain, run_id) == events
            kinds = {kind for kind, _ in events}
            assert {"ASSET_MATERIALIZATION", "ASSET_CHECK_EVALUATION"} <= kinds
        assert plain.get_latest_materialization_event(numbers.key).run_id == run_ids[-1]


def test_only_the_most_recent_run_files_stay_open_and_wipe_removes_them(tmp_path: Path) -> None:
    home = project_home(tmp_path / "home")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        storage = instance.event_log_storage
        assert isinstance(storage, PooledSqliteEventLogStorage)
        run_ids = [dg.materialize([numbers], instance=instance).run_id for _ in range(6)]
        open_runs = [shard for shard in storage._engines if shard != "index"]
        assert open_runs == run_ids[-OPEN_RUN_DATABASES:]
        # A closed run's file reopens on demand.
        assert _events(instance, run_ids[0])
        storage.wipe()
        assert not list((home / "history" / "runs").glob("*-*.db"))
        assert instance.get_latest_materialization_event(numbers.key) is None


def test_tables_and_columns_found_present_are_not_looked_up_again(tmp_path: Path) -> None:
    """`has_table` (a new SQLite connection per call in Dagster's storage) and the asset key
    column lookup answer "present" from memory once found; "absent" is asked again, so a
    table a migration adds later is seen."""
    home = project_home(tmp_path / "home")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        storage = instance.event_log_storage
        assert isinstance(storage, PooledSqliteEventLogStorage)
        index_db = home / "history" / "runs" / "index.db"
        lookups: list[str] = []
        parent = PooledSqliteEventLogStorage.__mro__[1]
        original = parent.has_table

        def counting(self: PooledSqliteEventLogStorage, name: str) -> bool:
            lookups.append(name)
            return original(self, name)

        parent.has_table = counting  # type: ignore[method-assign]
        try:
            dg.materialize([numbers, numbers_positive], instance=instance)
            assert storage.has_table("asset_check_executions")
            first = len(lookups)
            for _ in range(3):
                dg.materialize([numbers, numbers_positive], instance=instance)
            assert storage.has_table("asset_check_executions")
            assert len(lookups) == first  # nothing asked again
            assert not storage.has_table("added_later")
            import sqlite3

            with sqlite3.connect(index_db) as conn:
                conn.execute("CREATE TABLE added_later (x INTEGER)")
            assert storage.has_table("added_later")
            assert lookups[-2:] == ["added_later", "added_later"]
        finally:
            parent.has_table = original  # type: ignore[method-assign]
        with storage.index_connection() as conn:
            assert storage._has_asset_key_col_on_connection(conn, "last_materialization_timestamp")
            assert not storage._has_asset_key_col_on_connection(conn, "no_such_column")
        assert "last_materialization_timestamp" in storage._present_asset_key_columns
        assert "no_such_column" not in storage._present_asset_key_columns


MONTHS = dg.MonthlyPartitionsDefinition(start_date="2025-01-01", end_offset=0)


@dg.asset(partitions_def=MONTHS, backfill_policy=dg.BackfillPolicy.single_run())
def monthly_lines() -> dg.MaterializeResult:
    return dg.MaterializeResult()


@dg.asset(deps=[monthly_lines])
def lines_summary() -> dg.MaterializeResult:
    return dg.MaterializeResult()


def _planned(instance: dg.DagsterInstance, run_id: str) -> dict[str, list[str | None]]:
    records = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED, limit=10_000
    ).records
    planned: dict[str, list[str | None]] = {}
    for record in records:
        data = record.event_log_entry.dagster_event.asset_materialization_planned_data
        planned.setdefault(data.asset_key.to_user_string(), []).append(data.partition)
    return planned


def test_a_ranged_run_plans_an_unpartitioned_asset_once_and_each_partition_of_the_others(
    tmp_path: Path,
) -> None:
    """Dagster plans every asset of a run over three month partitions once per month, the
    unpartitioned one too (the same run through Dagster's own storage shows it); the pooled
    storage keeps that asset's first plan only, and every month of the partitioned one, so
    the UI still marks each month in progress or failed."""
    months = ["2025-01-01", "2025-02-01", "2025-03-01"]
    tags = {
        "dagster/asset_partition_range_start": months[0],
        "dagster/asset_partition_range_end": months[-1],
    }
    home = project_home(tmp_path / "home")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert isinstance(instance.event_log_storage, PooledSqliteEventLogStorage)
        run_id = dg.materialize([monthly_lines, lines_summary], instance=instance, tags=tags).run_id
        assert _planned(instance, run_id) == {"monthly_lines": months, "lines_summary": months[:1]}
        assert instance.get_materialized_partitions(monthly_lines.key) == set(months)
        summary = instance.get_latest_materialization_event(lines_summary.key)
        assert summary is not None and summary.run_id == run_id
        # a later run plans its own: the first plan of each run is kept
        again = dg.materialize([monthly_lines, lines_summary], instance=instance, tags=tags)
        assert _planned(instance, again.run_id)["lines_summary"] == months[:1]

    config = yaml.safe_load((home / "dagster.yaml").read_text())
    del config["event_log_storage"]
    plain_home = tmp_path / "plain"
    plain_home.mkdir()
    (plain_home / "dagster.yaml").write_text(yaml.safe_dump(config))
    with dg.DagsterInstance.from_config(str(plain_home)) as plain:
        run_id = dg.materialize([monthly_lines, lines_summary], instance=plain, tags=tags).run_id
        assert _planned(plain, run_id) == {"monthly_lines": months, "lines_summary": months}
