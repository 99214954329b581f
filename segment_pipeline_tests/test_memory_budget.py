"""The process memory budget: DuckDB's limit at each step follows what the process keeps."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import duckdb
import pytest

from segment_pipeline import resources
from segment_pipeline.definitions import build_definitions
from segment_pipeline.logic.memory import memory_limit_bytes
from segment_pipeline.resources import (
    MIN_STEP_LIMIT_BYTES,
    STEP_HEADROOM_BYTES,
    DuckDBWarehouse,
    memory_size_bytes,
    process_rss_bytes,
    step_memory_limit,
)
from segment_pipeline.runner import settings_warehouse
from segment_pipeline.settings import ENV_VARS, PipelineSettings

MB = 10**6


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("900MB", 900 * MB),
        ("1.5GiB", 3 * 2**29),
        ("512 MiB", 512 * 2**20),
        ("2gb", 2 * 10**9),
        ("4096B", 4096),
        ("123b", 123),
    ],
)
def test_memory_sizes_read_as_duckdb_reads_them(text: str, expected: int) -> None:
    assert memory_size_bytes(text) == expected


@pytest.mark.parametrize("text", ["lots", "900", "2G", "MB"])
def test_a_size_without_a_unit_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="is not a memory size"):
        memory_size_bytes(text)


@pytest.mark.parametrize(
    ("rss_mb", "expected_mb"),
    [
        (None, 900),  # cannot measure: the configured limit
        (300, 900),  # room 1,600 - 300 - 300 = 1,000: capped at the limit
        (400, 900),  # room exactly the limit
        (908, 392),  # a 100M-line run after the CLV fit
        (1_000, 300),
        (1_100, 256),  # room 200: the floor
        (5_000, 256),
    ],
)
def test_duckdb_gets_what_the_budget_leaves(rss_mb: int | None, expected_mb: int) -> None:
    assert STEP_HEADROOM_BYTES == 300 * MB and MIN_STEP_LIMIT_BYTES == 256 * MB
    rss = None if rss_mb is None else rss_mb * MB
    assert step_memory_limit(900 * MB, 1_600 * MB, rss) == expected_mb * MB


def test_a_limit_below_the_floor_is_kept() -> None:
    assert step_memory_limit(64 * MB, 1_600 * MB, 1_500 * MB) == 64 * MB


def current_limit(conn: duckdb.DuckDBPyConnection) -> int:
    """The connection's memory limit in bytes (DuckDB shows it to 0.1 MiB)."""
    limit = memory_limit_bytes(conn)
    assert limit is not None
    return limit


def about(n_bytes: int) -> object:
    return pytest.approx(n_bytes, abs=2**20 / 10)


def test_each_step_starts_with_what_the_budget_leaves(tmp_path: Path) -> None:
    """In a run scope, the limit set when a step leaves the shared connection is the budget
    less the process's resident memory (measured after the pool is emptied) and the headroom:
    a budget 500 MB above today's process gives DuckDB about 500 MB, not its 900 MB."""
    rss = process_rss_bytes()
    assert rss is not None
    budget = rss + STEP_HEADROOM_BYTES + 500 * MB
    warehouse = DuckDBWarehouse(path=str(tmp_path / "w.duckdb"), memory_budget=f"{budget}b")
    with warehouse.run_scope() as scope:
        with warehouse.connect() as conn:
            first = current_limit(conn)
        with warehouse.connect() as conn:
            after_step = current_limit(conn)
        scope.succeeded = True
    for limit in (first, after_step):
        # the process's memory moves by a few MB between the measurements
        assert 450 * MB < limit < 520 * MB, limit


def test_a_budget_the_process_already_exceeds_leaves_duckdb_the_floor(tmp_path: Path) -> None:
    warehouse = DuckDBWarehouse(path=str(tmp_path / "w.duckdb"), memory_budget="1MB")
    with warehouse.run_scope() as scope:
        with warehouse.connect():
            pass
        with warehouse.connect() as conn:
            assert current_limit(conn) == about(MIN_STEP_LIMIT_BYTES)
        scope.succeeded = True


@pytest.mark.parametrize(("rss_mb", "expected_mb"), [(350, 900), (600, 700)])
def test_the_default_budget_is_the_limit_plus_700_mb(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rss_mb: int, expected_mb: int
) -> None:
    """Unset, the budget is the limit plus 700 MB: a process of 350 MB keeps DuckDB's whole
    900 MB, one of 600 MB leaves it 1,600 - 600 - 300 = 700 MB."""
    monkeypatch.setattr(resources, "process_rss_bytes", lambda: rss_mb * MB)
    warehouse = DuckDBWarehouse(path=str(tmp_path / "w.duckdb"))
    with warehouse.run_scope() as scope:
        with warehouse.connect():
            pass
        with warehouse.connect() as conn:
            assert current_limit(conn) == about(expected_mb * MB)
        scope.succeeded = True


def test_the_memory_budget_reaches_the_warehouse(tmp_path: Path) -> None:
    """SEGMENT_PIPELINE_MEMORY_BUDGET: a reference to the variable in the definitions'
    resource, its value in the CLI's warehouse, and DuckDB's limit follows it."""
    env = {ENV_VARS["db_path"]: str(tmp_path / "w.duckdb"), ENV_VARS["memory_budget"]: "1MB"}
    settings = PipelineSettings.from_env(env)
    resource = build_definitions(settings).resources["warehouse"]
    assert isinstance(resource.memory_budget, dg.EnvVar)
    assert resource.memory_budget.env_var_name == "SEGMENT_PIPELINE_MEMORY_BUDGET"
    with settings_warehouse(settings).connect() as conn:
        assert current_limit(conn) == about(MIN_STEP_LIMIT_BYTES)
