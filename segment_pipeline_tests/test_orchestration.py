"""Schedule, sensor, the documented dagster CLI backfill, and concurrent runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from segment_pipeline.jobs import ALL_ASSETS_JOB_NAME
from segment_pipeline.partitions import PARTITION_RANGE_END_TAG, PARTITION_RANGE_START_TAG
from segment_pipeline.schedules import build_daily_schedule
from segment_pipeline.sensors import build_new_data_sensor, scan_folder
from segment_pipeline.settings import PROJECT_ROOT
from segment_pipeline_tests.conftest import project_home
from segment_pipeline_tests.datasets import line, write_day

BIN = Path(sys.executable).parent
PARTITIONS = dg.MonthlyPartitionsDefinition(start_date="2024-03-01", end_offset=1, timezone="UTC")


def day_range(request: dg.RunRequest) -> tuple[str, str]:
    """The days the request narrows raw and staging to (they must agree)."""
    ops = request.run_config["ops"]
    raw, staging = ops["raw__transactions"]["config"], ops["staging__transactions"]["config"]
    assert raw == staging
    return raw["first_day"], raw["last_day"]


# --- schedule --------------------------------------------------------------------------------


def test_schedule_requests_the_previous_day_with_the_whole_graph() -> None:
    # The month partition holding the day, narrowed to that day: a new day costs a day.
    schedule = build_daily_schedule(PARTITIONS, cron="30 4 * * *", timezone="UTC")
    assert schedule.job_name == ALL_ASSETS_JOB_NAME
    assert schedule.cron_schedule == "30 4 * * *"
    context = dg.build_schedule_context(
        scheduled_execution_time=datetime(2024, 3, 10, 4, 30, tzinfo=UTC)
    )
    request = schedule(context)
    assert request.partition_key == "2024-03-01"
    assert day_range(request) == ("2024-03-09", "2024-03-09")
    assert request.run_key == "daily-2024-03-09"


def test_schedule_uses_its_timezone_for_the_day() -> None:
    # 01:00 in Seoul on the 10th is still the 9th in UTC; the day that ended in Seoul is the 9th.
    schedule = build_daily_schedule(PARTITIONS, cron="0 1 * * *", timezone="Asia/Seoul")
    assert schedule.execution_timezone == "Asia/Seoul"
    context = dg.build_schedule_context(
        scheduled_execution_time=datetime(2024, 3, 9, 16, 0, tzinfo=UTC)  # 01:00 KST, 10th
    )
    assert day_range(schedule(context)) == ("2024-03-09", "2024-03-09")


def test_schedule_skips_days_before_the_dataset() -> None:
    schedule = build_daily_schedule(PARTITIONS, cron="30 4 * * *", timezone="UTC")
    context = dg.build_schedule_context(
        scheduled_execution_time=datetime(2024, 3, 1, 4, 30, tzinfo=UTC)
    )
    result = schedule(context)
    assert isinstance(result, dg.SkipReason) and "2024-02-29" in result.skip_message


# --- sensor ----------------------------------------------------------------------------------


def tick(sensor: dg.SensorDefinition, cursor: str | None) -> dg.SensorResult:
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance, cursor=cursor)
        result = sensor(context)
        assert isinstance(result, dg.SensorResult)
        return result


def test_sensor_new_changed_bad_name_and_nothing_new(tmp_path: Path) -> None:
    folder = tmp_path / "data" / "transactions"
    write_day(
        tmp_path / "data", "2024-03-01", [line("O1", "C1", "2024-03-01 10:00:00", "P1", 1, 2)]
    )
    write_day(
        tmp_path / "data", "2024-03-03", [line("O2", "C1", "2024-03-03 10:00:00", "P1", 1, 2)]
    )
    (folder / "march-4th.csv").write_text("order_id\n")
    sensor = build_new_data_sensor(folder, PARTITIONS)

    first = tick(sensor, None)
    assert len(first.run_requests or []) == 1  # one run for the batch, not one per day
    tags = first.run_requests[0].tags
    assert (tags[PARTITION_RANGE_START_TAG], tags[PARTITION_RANGE_END_TAG]) == (
        "2024-03-01",
        "2024-03-01",
    )
    assert day_range(first.run_requests[0]) == ("2024-03-01", "2024-03-03")
    assert "march-4th.csv" not in first.cursor

    # Nothing new -> no run, and touching a file without changing it is not a change.
    assert not tick(sensor, first.cursor).run_requests
    os.utime(folder / "2024-03-01.csv", ns=(time.time_ns(), time.time_ns() + 10**9))
    touched = tick(sensor, first.cursor)
    assert not touched.run_requests

    # A corrected file for a day already loaded, and a new day: one run over both.
    time.sleep(0.01)
    write_day(
        tmp_path / "data", "2024-03-01", [line("O1", "C1", "2024-03-01 10:00:00", "P1", 3, 2)]
    )
    write_day(
        tmp_path / "data", "2024-03-05", [line("O3", "C2", "2024-03-05 10:00:00", "P1", 1, 2)]
    )
    second = tick(sensor, touched.cursor)
    assert len(second.run_requests) == 1
    assert day_range(second.run_requests[0]) == ("2024-03-01", "2024-03-05")
    tags = second.run_requests[0].tags
    assert tags["segment_pipeline/changed_days"] == "2024-03-01,2024-03-05"


def test_scan_folder_reports_bad_names(tmp_path: Path) -> None:
    (tmp_path / "2024-13-01.csv").write_text("x")
    (tmp_path / "2024-03-01.csv").write_text("x")
    result = scan_folder(tmp_path, {})
    assert result.bad_names == ["2024-13-01.csv"]
    assert result.changed_days == ["2024-03-01"]
    assert json.dumps(result.state)  # the cursor is JSON


# --- backfills and concurrency through real processes ----------------------------------------


def _dataset(root: Path) -> Path:
    for day in range(1, 5):
        d = f"2024-03-0{day}"
        write_day(
            root,
            d,
            [
                line(f"O{day}", f"C{day % 2}", f"{d} 10:00:00", "P1", day, "2.5"),
                line(f"R{day}", "C1", f"{d} 11:00:00", "P1", -1, "2.5"),
            ],
        )
    return root


def _env(tmp_path: Path, data: Path, db: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEGMENT_PIPELINE_")}
    home = project_home(tmp_path / "dagster_home")
    env.update(
        {
            "DAGSTER_HOME": str(home),
            "SEGMENT_PIPELINE_DATA": str(data),
            "SEGMENT_PIPELINE_DB": str(db),
            "SEGMENT_PIPELINE_FIGURES_DIR": str(db.parent / "figures"),
        }
    )
    return env


def _tables(db: Path) -> dict[str, list[tuple]]:
    conn = duckdb.connect(str(db))
    try:
        return {
            t: conn.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall()
            for t in (
                "raw.transactions",
                "staging.transactions",
                "staging.returns",
                "staging.quarantine",
            )
        }
    finally:
        conn.close()


INGEST = "tag:partitioned=time"


def test_dagster_cli_partition_range_equals_segment_pipeline_backfill(tmp_path: Path) -> None:
    data = _dataset(tmp_path / "data")
    db_a, db_b = tmp_path / "a" / "w.duckdb", tmp_path / "b" / "w.duckdb"
    a = subprocess.run(
        [
            str(BIN / "dagster"),
            "asset",
            "materialize",
            "-m",
            "segment_pipeline.definitions",
            "--select",
            INGEST,
            "--partition-range",
            "2024-03-01...2024-03-01",  # the month partition holding the four days
        ],
        cwd=PROJECT_ROOT,
        env=_env(tmp_path, data, db_a),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert a.returncode == 0, a.stderr[-3000:]
    b = subprocess.run(
        [
            str(BIN / "segment-pipeline"),
            "backfill",
            "--start",
            "2024-03-01",
            "--end",
            "2024-03-04",
            "--select",
            INGEST,
        ],
        env=_env(tmp_path, data, db_b),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert b.returncode == 0, b.stdout[-3000:] + b.stderr[-3000:]
    assert _tables(db_a) == _tables(db_b)
    assert len(_tables(db_a)["staging.transactions"]) == 4


def test_two_concurrent_runs_on_different_partitions_both_succeed(tmp_path: Path) -> None:
    data = _dataset(tmp_path / "data")
    db = tmp_path / "w" / "w.duckdb"
    env = _env(tmp_path, data, db)
    runs = [
        subprocess.Popen(
            [
                str(BIN / "segment-pipeline"),
                "backfill",
                "--start",
                start,
                "--end",
                end,
                "--select",
                INGEST,
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for start, end in (("2024-03-01", "2024-03-02"), ("2024-03-03", "2024-03-04"))
    ]
    outputs = [p.communicate(timeout=300)[0] for p in runs]
    for proc, out in zip(runs, outputs, strict=True):
        assert proc.returncode == 0, out[-3000:]
    tables = _tables(db)
    assert len(tables["raw.transactions"]) == 8
    assert len(tables["staging.transactions"]) == 4 and len(tables["staging.returns"]) == 4


@pytest.mark.parametrize("name", ["daily_refresh"])
def test_schedule_and_sensor_are_in_the_definitions(
    tmp_path: Path, sample_dir: Path, name: str
) -> None:
    from segment_pipeline.definitions import build_definitions
    from segment_pipeline_tests.conftest import settings_for

    defs = build_definitions(settings_for(sample_dir, tmp_path / "w.duckdb"))
    assert defs.resolve_schedule_def(name).job_name == ALL_ASSETS_JOB_NAME
    sensor = defs.resolve_sensor_def("new_transaction_files")
    assert sensor.job_name == ALL_ASSETS_JOB_NAME
