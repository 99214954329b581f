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


def test_figure_5_takes_the_median_of_the_paired_differences() -> None:
    """Each new day minus the tiny run right before it: a slow moment of the VM that slows a
    pair's two runs alike cancels out (the third pair), where the median new day minus a T_tiny
    taken earlier would carry it."""
    bench = _bench_module()
    new_days = [10.8, 11.2, 14.9, 10.5, 11.0]
    tinies = [7.0, 7.1, 10.6, 6.9, 7.3]
    differences = [n - t for n, t in zip(new_days, tinies, strict=True)]
    # 3.8, 4.1, 4.3, 3.6, 3.7: the median is 3.8
    assert bench.paired_median(differences) == pytest.approx(3.8)
    assert bench.paired_median([-0.4, -0.1, 0.2]) == 0.0
    assert bench.NEW_DAY_PAIRS % 2 == 1


def test_figures_3_and_5_take_the_median_run_and_show_every_run(tmp_path: Path) -> None:
    bench = _bench_module()
    runs = [bench.Measurement(s, 0, 100.0, tmp_path / "log") for s in (21.0, 19.5, 20.5)]
    assert bench.median_run(runs).seconds == 20.5
    row = bench.Row("5", "new day", "15.4 - 9.7 = 5.7 s", "ratio <= 0.10", "0.528", "MISS")
    shown = bench.with_samples(row, runs)
    assert shown.name == "new day, median of 3"
    assert shown.measured == "15.4 - 9.7 = 5.7 s (runs: 21.0 / 19.5 / 20.5 s)"
    assert bench.with_samples(row, runs[:1]) == row  # one run: no median to speak of


def test_figure_7_takes_the_median_of_the_pairs_ratios_and_shows_every_pair(
    tmp_path: Path,
) -> None:
    """Each pair's ratio first (its two runs on the same moment of the VM), then the median:
    1.30, 1.10 and 1.30 give 1.30, where the mean would read 1.23 and the ratio of the median
    times 24.2 / 20.0 = 1.21."""
    bench = _bench_module()

    def pair(project_s: float, dagster_s: float) -> tuple:
        log = tmp_path / "log"
        return bench.Measurement(project_s, 0, 1.0, log), bench.Measurement(dagster_s, 0, 1.0, log)

    pairs = [pair(20.0, 26.0), pair(22.0, 24.2), pair(15.0, 19.5)]
    row = bench.pair_ratio_row("dagster CLI vs backfill", "ratio <= 1.25", pairs)
    assert row.value == "1.30"
    assert row.verdict == "MISS"
    assert row.name == "dagster CLI vs backfill, median of 3 pairs"
    assert row.measured == "26.0 vs 20.0 s / 24.2 vs 22.0 s / 19.5 vs 15.0 s"
    fast = [pair(20.0, 21.0), pair(20.0, 30.0), pair(20.0, 22.0)]
    assert bench.pair_ratio_row("x", "t", fast).value == "1.10"  # one slow dagster run outvoted
    assert bench.pair_ratio_row("x", "t", fast).verdict == "OK"
    single = bench.pair_ratio_row("x", "t", [pair(20.0, 24.0)])
    assert (single.name, single.value) == ("x", "1.20")


def test_step_seconds_reads_the_cli_done_lines_in_every_duration_format(tmp_path: Path) -> None:
    """Dagster writes 8.3ms, 533ms, 5.6s, 4m52s and 1h4m; a step in several runs (a backfill
    makes the months' run, then the analysis run) is summed; other lines are not steps."""
    bench = _bench_module()
    log = tmp_path / "run.log"
    log.write_text(
        "Dataset: canonical dataset at /data  days 2026-10-31..2026-10-31  ->  /w.duckdb\n"
        "10:44:40  raw__transactions            raw.transactions 2026-10-31: 2563 lines\n"
        "10:44:40  raw__transactions            done (8.3ms)\n"
        "10:44:41  staging__transactions        done (533ms)\n"
        "10:44:47  figures                      done (5.6s)\n"
        "10:49:40  customer_snapshots           done (4m52s)\n"
        "11:53:40  marts__segment_product_purchases done (1h4m)\n"
        "11:53:41  raw__transactions            done (1.25s)\n"
        "10:44:40                               check raw/transactions:every_file_loaded passed\n"
    )
    assert bench.step_seconds(log, "figures") == pytest.approx(5.6)
    assert bench.step_seconds(log, "staging__transactions") == pytest.approx(0.533)
    assert bench.step_seconds(log, "customer_snapshots") == pytest.approx(292.0)
    assert bench.step_seconds(log, "marts__segment_product_purchases") == pytest.approx(3840.0)
    assert bench.step_seconds(log, "raw__transactions") == pytest.approx(1.2583)
    assert bench.step_seconds(log, "report__insights_report") is None


def test_the_figure_step_row_sets_the_step_against_figure_5s_budget(tmp_path: Path) -> None:
    bench = _bench_module()
    log = tmp_path / "backfill.log"
    log.write_text("12:04:06  figures                      done (6.96s)\n")
    ctx = bench.BenchContext(args=None, workdir=tmp_path, rundir=tmp_path)
    new_day = bench.Measurement(22.7, 0, 900.0, log)
    assert bench.figure_step_row(ctx, new_day) is None  # no tiny run's figure step yet
    ctx.t_tiny_figures, ctx.full_data_s = 4.96, 20.0
    row = bench.figure_step_row(ctx, new_day)
    assert row is not None
    assert (row.figure, row.verdict) == ("5", "info")
    assert row.measured == "7.0 - 5.0 = 2.0 s; budget 0.10 x 20.0 = 2.00 s"
    assert row.value == "100% of the budget"


def test_the_figure_step_is_the_step_the_definitions_draw_figures_in(tmp_path: Path) -> None:
    """FIGURE_STEP names the figure multi-asset's op: the name the CLI's lines carry."""
    from segment_pipeline.definitions import build_definitions
    from segment_pipeline.figures import FIGURES_PREFIX
    from segment_pipeline_tests.conftest import SAMPLE_DIR, settings_for

    bench = _bench_module()
    graph = build_definitions(settings_for(SAMPLE_DIR, tmp_path / "w.duckdb")).resolve_asset_graph()
    ops = {
        graph.get(key).assets_def.node_def.name
        for key in graph.get_all_asset_keys()
        if key.path[0] == FIGURES_PREFIX
    }
    assert ops == {bench.FIGURE_STEP}


def test_the_step_table_sets_each_step_of_a_new_day_and_a_rebuild_against_the_tiny_runs(
    tmp_path: Path,
) -> None:
    """Medians per step over each kind's runs, the difference to the tiny runs' median, the
    steps by the new day's difference, a step missing from a run counted as 0 s."""
    bench = _bench_module()

    def log(name: str, steps: dict[str, str]) -> Path:
        path = tmp_path / f"{name}.log"
        path.write_text(
            "Dataset: ...\n"
            + "".join(f"12:00:00  {step:<28} done ({took})\n" for step, took in steps.items())
        )
        return path

    tiny = [
        log("t1", {"staging__customers": "900ms", "figures": "4.4s"}),
        log("t2", {"staging__customers": "700ms", "figures": "4.6s"}),
        log("t3", {"staging__customers": "800ms", "figures": "5.0s"}),
    ]
    new_day = [
        log("n1", {"figures": "5.5s", "customer_snapshots": "2.0s"}),
        log("n2", {"figures": "5.7s", "customer_snapshots": "1.8s"}),
        log("n3", {"figures": "6.1s", "customer_snapshots": "2.2s", "staging__customers": "90ms"}),
    ]
    rebuild = [
        log("r1", {"figures": "12.0s", "customer_snapshots": "5.2s", "staging__customers": "1.2s"})
    ]
    assert bench.step_table({bench.TINY_KIND: tiny}) is None
    assert bench.step_table({bench.NEW_DAY_KIND: new_day}) is None
    table = bench.step_table(
        {bench.TINY_KIND: tiny, bench.NEW_DAY_KIND: new_day, bench.REBUILD_KIND: rebuild}
    )
    assert table is not None
    assert table.splitlines() == [
        "| step | tiny run | a new day at 745k (over tiny) | rebuild at 745k (over tiny) |",
        "|---|---|---|---|",
        "| customer_snapshots | 0.00 | 2.00 (+2.00) | 5.20 (+5.20) |",
        "| figures | 4.60 | 5.70 (+1.10) | 12.00 (+7.40) |",
        "| staging__customers | 0.80 | 0.00 (-0.80) | 1.20 (+0.40) |",
        "| all steps | 5.40 | 7.70 (+2.30) | 18.40 (+13.00) |",
    ]
    large = [log("l1", {"figures": "6.0s", "customer_snapshots": "60.0s"})]
    with_large = bench.step_table(
        {
            bench.TINY_KIND: tiny,
            bench.NEW_DAY_KIND: new_day,
            bench.REBUILD_KIND: rebuild,
            bench.LARGE_KIND: large,
        }
    )
    assert with_large is not None
    assert with_large.splitlines()[0] == (
        "| step | tiny run | a new day at 745k (over tiny) | rebuild at 745k (over tiny) "
        "| run at 10M (over tiny) |"
    )
    assert with_large.splitlines()[2].endswith("| 5.20 (+5.20) | 60.00 (+60.00) |")
    assert with_large.splitlines()[-1].endswith("| 66.00 (+60.60) |")
    # since stop 42 the held-back day added at 10M lines, last
    large_new_day = [log("d1", {"figures": "1.0s", "customer_snapshots": "17.0s"})]
    with_large_day = bench.step_table(
        {
            bench.TINY_KIND: tiny,
            bench.LARGE_NEW_DAY_KIND: large_new_day,
            bench.NEW_DAY_KIND: new_day,
            bench.LARGE_KIND: large,
        }
    )
    assert with_large_day is not None
    assert with_large_day.splitlines()[0] == (
        "| step | tiny run | a new day at 745k (over tiny) | run at 10M (over tiny) "
        "| a new day at 10M (over tiny) |"
    )
    assert with_large_day.splitlines()[2].endswith("| 60.00 (+60.00) | 17.00 (+17.00) |")
    only_rebuild = bench.step_table({bench.TINY_KIND: tiny, bench.REBUILD_KIND: rebuild})
    assert only_rebuild is not None
    assert only_rebuild.splitlines()[0] == "| step | tiny run | rebuild at 745k (over tiny) |"
    # without a new day, the steps by the rebuild's time over tiny
    assert only_rebuild.splitlines()[2] == "| figures | 4.60 | 12.00 (+7.40) |"


def test_the_results_file_holds_the_step_table_when_there_is_one(tmp_path: Path) -> None:
    bench = _bench_module()
    rows = [bench.Row("2", "tiny dataset, T_tiny", "15.9 s", "<= 15 s", "15.9 s", "MISS")]
    with_steps, without = tmp_path / "a.md", tmp_path / "b.md"
    bench.write_results(with_steps, rows, ["--only", "2"], "| step | tiny run |\n|---|---|")
    bench.write_results(without, rows, ["--only", "2"])
    assert f"{bench.STEP_TABLE_TITLE}\n\n| step | tiny run |\n|---|---|\n" in with_steps.read_text()
    assert bench.STEP_TABLE_TITLE not in without.read_text()
    assert "| 2 | tiny dataset, T_tiny | 15.9 s |" in without.read_text()
