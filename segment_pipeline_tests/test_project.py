"""The project loads the way users load it: from pyproject.toml ([tool.dagster]) and from
workspace.yaml; the CLI runs a real pipeline and fails loudly on bad input."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from segment_pipeline.cli import _collector_paused
from segment_pipeline.definitions import build_definitions
from segment_pipeline.settings import PROJECT_ROOT
from segment_pipeline_tests.conftest import project_home, settings_for
from segment_pipeline_tests.datasets import line, write_day

BIN = Path(sys.executable).parent


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEGMENT_PIPELINE_")}
    env.update(
        {
            "DAGSTER_HOME": str(tmp_path / "dagster_home"),
            "SEGMENT_PIPELINE_DB": str(tmp_path / "w.duckdb"),
            "SEGMENT_PIPELINE_FIGURES_DIR": str(tmp_path / "figures"),
            **extra,
        }
    )
    project_home(tmp_path / "dagster_home")
    return env


@pytest.mark.parametrize("args", [[], ["-w", "workspace.yaml"]], ids=["pyproject", "workspace"])
def test_definitions_load_through_the_dagster_cli(tmp_path: Path, args: list[str]) -> None:
    result = subprocess.run(
        [str(BIN / "dagster"), "definitions", "validate", *args],
        cwd=PROJECT_ROOT,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "segment_pipeline" in result.stdout + result.stderr
    # The code location loads without a warning per asset (Dagster flags `backfill_policy`
    # as beta: 25 lines in `make ui`'s console at every load before they were silenced).
    assert "BetaWarning" not in result.stderr, result.stderr


def test_loading_the_definitions_prints_no_warning_nor_imports_the_validation(
    tmp_path: Path,
) -> None:
    """What a code location's load prints (its import builds table assets; the definitions
    add the source code references), with every warning shown once per place, and that it
    leaves pandera and polars to the steps that validate rows (0.6 s of the load)."""
    result = subprocess.run(
        [
            sys.executable,
            "-W",
            "default",
            "-c",
            "import sys, segment_pipeline.definitions as d; d.build_definitions(); "
            "print([m for m in ('pandera', 'polars') if m in sys.modules])",
        ],
        cwd=PROJECT_ROOT,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "Warning" not in result.stderr, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("enabled_before", [True, False])
def test_a_run_starts_up_with_the_collector_paused_then_frozen(enabled_before: bool) -> None:
    was_enabled = gc.isenabled()
    (gc.enable if enabled_before else gc.disable)()
    gc.unfreeze()
    try:
        with _collector_paused():
            assert not gc.isenabled()
            built_at_start_up = [[i] for i in range(1_000)]
        # what start-up built is frozen (never traversed again); the collector is as it was
        assert gc.get_freeze_count() >= len(built_at_start_up)
        assert gc.isenabled() is enabled_before
        with pytest.raises(RuntimeError), _collector_paused():
            raise RuntimeError("start-up failed")
        assert gc.isenabled() is enabled_before
    finally:
        gc.unfreeze()
        (gc.enable if was_enabled else gc.disable)()


def test_definitions_contain_the_ingest_graph(tmp_path: Path, sample_dir: Path) -> None:
    defs = build_definitions(settings_for(sample_dir, tmp_path / "w.duckdb"))
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {
        "raw/transactions",
        "staging/transactions",
        "staging/returns",
        "staging/quarantine",
        "staging/customers",
        "staging/products",
    } <= keys
    staged = graph.get(dg.AssetKey(["staging", "transactions"]))
    assert dg.AssetKey(["raw", "transactions"]) in staged.parent_keys
    partitions = staged.partitions_def
    assert partitions is not None
    keys_list = partitions.get_partition_keys()
    # Monthly partitions from the data's first month (read from the file names) through its
    # last month: the sample's year is 12 partitions, not 365.
    assert keys_list[0] == "2025-11-01"
    assert "2026-10-01" in keys_list
    assert isinstance(partitions, dg.MonthlyPartitionsDefinition)
    checks = {c.name for c in graph.asset_check_keys if c.asset_key == staged.key}
    assert checks == {
        "rows_conserved",
        "line_key_unique",
        "required_columns_not_null",
        "quarantine_rate",
        "order_id_single_customer",
        "ids_distinct_ignoring_case",
    }


def test_partitions_follow_the_data_not_a_calendar(tmp_path: Path) -> None:
    root = tmp_path / "data1997"
    write_day(root, "1997-05-17", [line("O1", "C1", "1997-05-17 10:00:00", "P1", 1, "2")])
    defs = build_definitions(settings_for(root, tmp_path / "w.duckdb"))
    graph = defs.resolve_asset_graph()
    partitions = graph.get(dg.AssetKey(["raw", "transactions"])).partitions_def
    assert partitions.get_partition_keys()[0] == "1997-05-01"


def test_cli_run_materializes_and_summarises(tmp_path: Path) -> None:
    root = tmp_path / "data"
    write_day(
        root,
        "2024-03-01",
        [
            line("O1", "C1", "2024-03-01 10:00:00", "P1", 2, "3.50"),
            line("O2", "", "2024-03-01 11:00:00", "P1", 1, "3.50"),
        ],
    )
    result = subprocess.run(
        [
            str(BIN / "segment-pipeline"),
            "run",
            "--data",
            str(root),
            "--select",
            'key:"raw/*" or key:"staging/*"',
        ],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "staging.transactions" in out and "customer_id_missing" in out
    assert "succeeded" in out
    # The run is recorded on the instance named by DAGSTER_HOME (the UI shows it): days
    # within one month are one run of that month's partition and everything selected
    # downstream, as the daily schedule does.
    with dg.DagsterInstance.from_config(str(tmp_path / "dagster_home")) as instance:
        runs = [r.dagster_run for r in instance.get_run_records()]
        assert len(runs) == 1
        assert runs[0].tags["dagster/partition"] == "2024-03-01"


def test_cli_run_exits_non_zero_with_a_clear_message(tmp_path: Path) -> None:
    root = tmp_path / "data"
    write_day(
        root,
        "2024-03-01",
        [["O1", "C1", "2024-03-01 10:00:00", "P1", 2]],
        header=["order_id", "customer_id", "order_ts", "product_id", "qty"],
    )
    result = subprocess.run(
        [str(BIN / "segment-pipeline"), "run", "--data", str(root)],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 2, out  # bad input: a user error
    assert "2024-03-01.csv: missing required column(s) quantity, unit_price" in out
    assert "Traceback" not in out


def test_cli_generate_writes_a_dataset(tmp_path: Path) -> None:
    out_dir = tmp_path / "gen"
    result = subprocess.run(
        [
            str(BIN / "segment-pipeline"),
            "generate",
            "--out",
            str(out_dir),
            "--customers",
            "50",
            "--days",
            "10",
            "--seed",
            "3",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert len(list((out_dir / "transactions").glob("*.csv"))) >= 5
    assert (out_dir / "customers.csv").is_file()


def test_files_that_are_not_loaded_are_reported_never_skipped_silently(tmp_path: Path) -> None:
    root = tmp_path / "data"
    write_day(root, "2024-03-01", [line("O1", "C1", "2024-03-01 10:00:00", "P1", 2, "3.50")])
    folder = root / "transactions"
    names = ["2024-02-30.csv", "2024-03-02.CSV", "not-a-date.csv"]
    for name in names:
        (folder / name).write_text("order_id,customer_id,order_ts,product_id,quantity,unit_price\n")
    result = subprocess.run(
        [str(BIN / "segment-pipeline"), "run", "--data", str(root), "--select", 'key:"raw/*"'],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out  # a warning, not a failure: the valid day is loaded
    assert "NOT LOADED: 3 file(s)" in out
    assert all(str(folder / name) in out for name in names), out
    assert "check raw/transactions:every_file_loaded FAILED (WARN)" in out
    with dg.DagsterInstance.from_config(str(tmp_path / "dagster_home")) as instance:
        record = instance.get_latest_materialization_event(dg.AssetKey(["raw", "transactions"]))
        assert record.asset_materialization.metadata["files_not_loaded"].value == 3


@pytest.mark.parametrize(
    ("args", "env", "says"),
    [
        (["run", "--db", "{tmp}"], {}, "is a folder"),
        (["run", "--db", "{tmp}/not-duckdb.duckdb"], {}, "is not a DuckDB database"),
        (
            ["generate", "--out", "{tmp}/g", "--customers", "0"],
            {},
            "--customers must be at least 1",
        ),
        (["run", "--select", 'key:"raw/*'], {}, "is not a valid asset selection"),
        (["run"], {"SEGMENT_PIPELINE_UNDATED_DAY": "notaday"}, "is not a date; write it as"),
        (
            ["backfill", "--start", "2020-01-01", "--end", "2020-01-02"],
            {},
            "--start 2020-01-01 is outside the partitions",
        ),
    ],
    ids=["db-folder", "db-not-duckdb", "zero-customers", "bad-select", "bad-day", "before-start"],
)
def test_user_errors_get_one_clear_line_and_exit_2(
    tmp_path: Path, args: list[str], env: dict[str, str], says: str
) -> None:
    root = tmp_path / "data"
    write_day(root, "2024-03-01", [line("O1", "C1", "2024-03-01 10:00:00", "P1", 2, "3.50")])
    (tmp_path / "not-duckdb.duckdb").write_text("hello\n")
    command = [a.replace("{tmp}", str(tmp_path)) for a in args]
    if command[0] != "generate":
        command += ["--data", str(root)]
    result = subprocess.run(
        [str(BIN / "segment-pipeline"), *command],
        env=_env(tmp_path, **env),
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 2, out
    assert says in out, out
    assert "Traceback" not in out and "Stack Trace" not in out, out
