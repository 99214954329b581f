"""Fault injection: a run killed with kill -9 must never block the next one.

Run alone with `.venv/bin/pytest -m fault`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from segment_pipeline.generator import generate
from segment_pipeline.partitions import PARTITION_RANGE_START_TAG
from segment_pipeline.runner import RUN_PID_TAG
from segment_pipeline_tests.conftest import project_home

BIN = Path(sys.executable).parent
TABLES = (
    "raw.transactions",
    "staging.transactions",
    "staging.returns",
    "staging.quarantine",
    "marts.rfm_customer_segments",
    "marts.behavioural_segments",
)

pytestmark = [pytest.mark.fault, pytest.mark.e2e]


def _env(home: Path, data: Path, db: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEGMENT_PIPELINE_")}
    project_home(home)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.get_run_records(limit=1)  # create the storage before the CLI and the poller
    env.update(
        {
            "DAGSTER_HOME": str(home),
            "SEGMENT_PIPELINE_DATA": str(data),
            "SEGMENT_PIPELINE_DB": str(db),
        }
    )
    return env


def _start(env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [str(BIN / "segment-pipeline"), "run"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _kill_when_started(proc: subprocess.Popen, home: Path, ranged: bool) -> str:
    """kill -9 the CLI once its (ranged, or downstream) run is STARTED; return the run id."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[0][-3000:]
        with dg.DagsterInstance.from_config(str(home)) as instance:
            for record in instance.get_run_records(
                filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])
            ):
                run = record.dagster_run
                if (PARTITION_RANGE_START_TAG in run.tags) == ranged and RUN_PID_TAG in run.tags:
                    time.sleep(1.0)  # let it write something
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=30)
                    return run.run_id
        time.sleep(0.2)
    raise AssertionError("the run never started")


def _tables(db: Path) -> dict[str, list[tuple]]:
    conn = duckdb.connect(str(db), read_only=True)
    try:
        return {t: conn.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall() for t in TABLES}
    finally:
        conn.close()


@pytest.fixture(scope="module")
def dataset_and_clean_tables(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, dict[str, list[tuple]]]:
    """Two months of data (so the CLI makes two runs: the months, then the analysis layers)
    and the tables of one clean, uninterrupted CLI run on them: what every interrupted run
    must equal once re-run (the tests only read the data folder)."""
    root = tmp_path_factory.mktemp("fault")
    data = root / "data"
    generate(data, customers=200, days=10, seed=3, start=date(2025, 3, 27))
    clean_db = root / "clean" / "w.duckdb"
    clean = subprocess.run(
        [str(BIN / "segment-pipeline"), "run"],
        env=_env(root / "clean_home", data, clean_db),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert clean.returncode == 0, clean.stdout[-3000:]
    return data, _tables(clean_db)


def test_a_run_after_kill_9_recovers_and_equals_a_clean_run(
    tmp_path: Path, dataset_and_clean_tables: tuple[Path, dict[str, list[tuple]]]
) -> None:
    data, clean_tables = dataset_and_clean_tables
    home, db = tmp_path / "home", tmp_path / "w" / "w.duckdb"
    env = _env(home, data, db)

    # Killed while loading (the month partitions), then while the analysis layers run.
    killed = [
        _kill_when_started(_start(env), home, ranged=True),
        _kill_when_started(_start(env), home, ranged=False),
    ]

    started = time.monotonic()
    again = subprocess.run(
        [str(BIN / "segment-pipeline"), "run"], env=env, capture_output=True, text=True, timeout=300
    )
    out = again.stdout + again.stderr
    assert again.returncode == 0, out[-3000:]
    assert time.monotonic() - started < 200
    # Each CLI run recovers what the one before left (the second recovered the first).
    assert f"recovered run {killed[-1]}" in out, out[-3000:]
    with dg.DagsterInstance.from_config(str(home)) as instance:
        # A killed run either finished before the kill (SUCCESS: the kill hit between runs)
        # or was marked FAILED by the next CLI run; none is left STARTED holding its slot.
        statuses = {instance.get_run_by_id(run_id).status for run_id in killed}
        assert statuses <= {dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.SUCCESS}
        assert instance.get_run_by_id(killed[-1]).status == dg.DagsterRunStatus.FAILURE

    assert _tables(db) == clean_tables


def test_ctrl_c_stops_the_run_at_once_records_it_canceled_and_a_rerun_is_clean(
    tmp_path: Path, dataset_and_clean_tables: tuple[Path, dict[str, list[tuple]]]
) -> None:
    """Ctrl-C (SIGINT to the process group, as a terminal sends it) during the analysis run:
    the CLI exits 130 within seconds, the run is recorded as stopped (never SUCCESS, never
    left STARTED), and the next run equals a clean one."""
    data, clean_tables = dataset_and_clean_tables
    home, db = tmp_path / "home", tmp_path / "w" / "w.duckdb"
    env = _env(home, data, db)

    proc = _start(env)
    deadline = time.monotonic() + 120
    interrupted: str | None = None
    while interrupted is None and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[0][-3000:]
        with dg.DagsterInstance.from_config(str(home)) as instance:
            for record in instance.get_run_records(
                filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])
            ):
                if PARTITION_RANGE_START_TAG not in record.dagster_run.tags:
                    interrupted = record.dagster_run.run_id
        time.sleep(0.2)
    assert interrupted is not None, "the analysis run never started"
    time.sleep(1.0)
    sent = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out[-3000:]
    assert time.monotonic() - sent < 30, "the run kept going after Ctrl-C"
    assert "interrupted" in out
    assert "Traceback" not in out
    with dg.DagsterInstance.from_config(str(home)) as instance:
        status = instance.get_run_by_id(interrupted).status
    assert status in (dg.DagsterRunStatus.CANCELED, dg.DagsterRunStatus.FAILURE), status

    again = subprocess.run(
        [str(BIN / "segment-pipeline"), "run"], env=env, capture_output=True, text=True, timeout=300
    )
    assert again.returncode == 0, (again.stdout + again.stderr)[-3000:]
    assert _tables(db) == clean_tables


def test_a_finished_run_holding_a_pool_slot_is_freed_by_the_next_run(tmp_path: Path) -> None:
    """The state a Ctrl-C once left (CI): the interrupted run FAILURE but still holding its
    `duckdb_warehouse` slot, the next run pending behind it forever. The next CLI run's
    recovery frees the finished run's slot and leaves a running run's alone."""
    from segment_pipeline.runner import recover_dead_runs

    home = project_home(tmp_path / "home")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        storage = instance.event_log_storage
        storage.set_concurrency_slots("duckdb_warehouse", 1)
        finished = instance.create_run_for_job(dg.GraphDefinition("g").to_job(), run_id=None)
        instance.report_run_failed(finished, "interrupted")
        claim = storage.claim_concurrency_slot("duckdb_warehouse", finished.run_id, "step_a")
        assert claim.is_claimed
        waiting = instance.create_run_for_job(dg.GraphDefinition("h").to_job(), run_id=None)
        assert not storage.claim_concurrency_slot(
            "duckdb_warehouse", waiting.run_id, "step_b"
        ).is_claimed

        lines = recover_dead_runs(instance)

        assert lines == [
            f"run {finished.run_id}: finished (FAILURE) but held a pool slot; slot freed"
        ]
        info = storage.get_concurrency_info("duckdb_warehouse")
        assert finished.run_id not in {s.run_id for s in info.claimed_slots}
        # the waiting run (not finished) keeps its place and now gets the slot
        assert storage.claim_concurrency_slot(
            "duckdb_warehouse", waiting.run_id, "step_b"
        ).is_claimed
