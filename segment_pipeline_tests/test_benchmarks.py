"""The benchmark script's own measurements (the figures themselves run with `make bench`,
never in the tests)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import duckdb
import pytest

from segment_pipeline.settings import PROJECT_ROOT


def _bench_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "run_benchmarks", PROJECT_ROOT / "benchmarks" / "run_benchmarks.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # its dataclasses resolve their annotations through sys.modules
    sys.modules.setdefault(spec.name, module)
    spec.loader.exec_module(module)
    return module


def _warehouse(path: Path, tables: tuple[str, ...]) -> None:
    with duckdb.connect(str(path)) as conn:
        for table in tables:
            schema = table.split(".")[0]
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            conn.execute(f"CREATE TABLE {table} AS SELECT range AS n FROM range(1000)")


def test_stored_copies_are_copied_and_the_scratch_file_removed(tmp_path: Path) -> None:
    bench = _bench_module()
    db, scratch = tmp_path / "w.duckdb", tmp_path / "scratch.duckdb"
    _warehouse(db, bench.STORED_COPIES)
    seconds = bench.stored_copies_seconds(db, scratch)
    assert seconds > 0
    assert not scratch.exists()
    assert not scratch.with_name(scratch.name + ".wal").exists()


def test_stored_copies_fail_when_a_table_is_missing(tmp_path: Path) -> None:
    """It copies each table for real: a warehouse without the snapshots is an error, not 0 s."""
    bench = _bench_module()
    db, scratch = tmp_path / "w.duckdb", tmp_path / "scratch.duckdb"
    _warehouse(db, bench.STORED_COPIES[:-1])
    with pytest.raises(duckdb.CatalogException, match="customer_snapshots"):
        bench.stored_copies_seconds(db, scratch)
    assert not scratch.exists()


def test_figures_3_and_5_take_the_median_run_and_show_every_run(tmp_path: Path) -> None:
    bench = _bench_module()
    runs = [bench.Measurement(s, 0, 100.0, tmp_path / "log") for s in (21.0, 19.5, 20.5)]
    assert bench.median_run(runs).seconds == 20.5
    row = bench.Row("5", "new day", "15.4 - 9.7 = 5.7 s", "ratio <= 0.10", "0.528", "MISS")
    shown = bench.with_samples(row, runs)
    assert shown.name == "new day, median of 3"
    assert shown.measured == "15.4 - 9.7 = 5.7 s (runs: 21.0 / 19.5 / 20.5 s)"
    assert bench.with_samples(row, runs[:1]) == row  # one run: no median to speak of
