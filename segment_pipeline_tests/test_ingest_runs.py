"""Raw and staging through real Dagster runs: range backfill equals day-by-day runs,
re-materializing a day is idempotent, bad files stop the run with a clear message."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest

from segment_pipeline.runner import execute_pipeline
from segment_pipeline_tests.conftest import settings_for
from segment_pipeline_tests.datasets import (
    CUSTOMER_HEADER,
    PRODUCT_HEADER,
    line,
    write_csv,
    write_day,
)

INGEST = 'key:"raw/*" or key:"staging/*"'
TABLES = [
    "raw.transactions",
    "raw.loads",
    "staging.staged_days",
    "staging.transactions",
    "staging.returns",
    "staging.quarantine",
    "staging.customers",
    "staging.products",
]


def make_dataset(root: Path) -> Path:
    write_day(
        root,
        "2024-03-01",
        [
            line("O1", "C1", "2024-03-01 10:00:00", "P1", 2, "3.50"),
            line("O2", "", "2024-03-01 11:00:00", "P1", 1, "3.50"),
            line("R1", "C1", "2024-03-01 12:00:00", "P1", -1, "3.50"),
        ],
    )
    # 2024-03-02 has no file: an empty partition, not an error.
    write_day(
        root,
        "2024-03-03",
        [
            line("O3", "C2", "2024-03-03 09:00:00", "P2", 1, "20"),
            line("O4", "C1", "2024-03-03 09:30:00", "P1", 3, "N/A"),
        ],
    )
    write_day(root, "2024-03-04", [line("O5", "C2", "2024-03-04 10:00:00", "P2", 4, "19.5")])
    return root


def snapshot(db: Path) -> dict[str, pd.DataFrame]:
    conn = duckdb.connect(str(db))
    try:
        return {t: conn.execute(f"SELECT * FROM {t} ORDER BY ALL").df() for t in TABLES}
    finally:
        conn.close()


def assert_same_tables(a: dict[str, pd.DataFrame], b: dict[str, pd.DataFrame]) -> None:
    for table in TABLES:
        pd.testing.assert_frame_equal(a[table], b[table], obj=table)


def run(settings, instance, start=None, end=None):
    outcome = execute_pipeline(
        settings, instance=instance, selection=INGEST, start=start, end=end, echo=False
    )
    return outcome


def test_range_backfill_equals_day_by_day_runs(tmp_path: Path, instance: dg.DagsterInstance):
    data = make_dataset(tmp_path / "data")
    range_db, daily_db = tmp_path / "range" / "w.duckdb", tmp_path / "daily" / "w.duckdb"
    assert run(settings_for(data, range_db), instance).success

    for day in range(1, 5):
        d = date(2024, 3, day)
        assert run(settings_for(data, daily_db), instance, start=d, end=d).success

    range_tables, daily_tables = snapshot(range_db), snapshot(daily_db)
    assert len(range_tables["staging.transactions"]) == 3
    assert len(range_tables["staging.returns"]) == 1
    assert sorted(range_tables["staging.quarantine"]["rule"]) == [
        "customer_id_missing",
        "unit_price_unparseable",
    ]
    assert_same_tables(range_tables, daily_tables)

    # Partitions are months: the range run recorded one materialization for 2024-03, the four
    # day runs one each; raw.loads and staging.staged_days say which days hold data.
    records = instance.fetch_materializations(
        dg.AssetKey(["staging", "transactions"]), limit=100
    ).records
    assert {r.partition_key for r in records} == {"2024-03-01"}
    assert len(records) == 5
    conn = duckdb.connect(str(range_db))
    try:
        loaded = conn.execute("SELECT partition_date, rows FROM raw.loads ORDER BY 1").fetchall()
        staged = conn.execute(
            "SELECT partition_date, raw, staged, returns, quarantined FROM staging.staged_days "
            "ORDER BY 1"
        ).fetchall()
    finally:
        conn.close()
    assert [(str(d), n) for d, n in loaded] == [
        ("2024-03-01", 3),
        ("2024-03-03", 2),
        ("2024-03-04", 1),
    ]
    assert [(str(d), *n) for d, *n in staged] == [
        ("2024-03-01", 3, 1, 1, 1),
        ("2024-03-03", 2, 1, 0, 1),
        ("2024-03-04", 1, 1, 0, 0),
    ]


def test_rematerializing_a_day_replaces_exactly_that_day(
    tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    data = make_dataset(tmp_path / "data")
    db = tmp_path / "w" / "w.duckdb"
    settings = settings_for(data, db)
    assert run(settings, instance).success
    before = snapshot(db)
    assert run(settings, instance, start=date(2024, 3, 3), end=date(2024, 3, 3)).success
    assert_same_tables(before, snapshot(db))

    # A corrected file for one day replaces that day only.
    write_day(data, "2024-03-03", [line("O3", "C2", "2024-03-03 09:00:00", "P2", 2, "20")])
    assert run(settings, instance, start=date(2024, 3, 3), end=date(2024, 3, 3)).success
    after = snapshot(db)
    staged = after["staging.transactions"]
    assert staged.loc[staged["order_id"] == "O3", "quantity"].tolist() == [2]
    assert "unit_price_unparseable" not in set(after["staging.quarantine"]["rule"])
    other_days = before["staging.transactions"]["partition_date"] != pd.Timestamp("2024-03-03")
    pd.testing.assert_frame_equal(
        before["staging.transactions"][other_days].reset_index(drop=True),
        staged[staged["partition_date"] != pd.Timestamp("2024-03-03")].reset_index(drop=True),
    )


def test_missing_column_stops_the_run_naming_file_and_column(
    tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    data = make_dataset(tmp_path / "data")
    write_day(
        data,
        "2024-03-04",
        [["O5", "C2", "2024-03-04 10:00:00", "P2", 4, "19.5"]],
        header=["order_id", "customer_id", "order_ts", "sku", "quantity", "unit_price"],
    )
    outcome = run(settings_for(data, tmp_path / "w" / "w.duckdb"), instance)
    assert not outcome.success
    assert any("2024-03-04.csv" in m and "product_id" in m for m in outcome.messages), (
        outcome.messages
    )


def test_malformed_csv_row_stops_the_run_naming_file_and_line(
    tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    data = make_dataset(tmp_path / "data")
    path = data / "transactions" / "2024-03-04.csv"
    path.write_text(path.read_text() + "O6,C2,2024-03-04 11:00:00,P2,4\n")
    outcome = run(settings_for(data, tmp_path / "w" / "w.duckdb"), instance)
    assert not outcome.success
    assert any("2024-03-04.csv" in m and "Line: 3" in m for m in outcome.messages), outcome.messages


@pytest.mark.e2e
def test_bundled_sample_staging_matches_the_generator_report(
    staged_sample_db: Path, sample_dir: Path
) -> None:
    import json

    report = json.loads((sample_dir / "generation_report.json").read_text())
    conn = duckdb.connect(str(staged_sample_db))
    try:
        counts = dict(
            conn.execute(
                "SELECT 'raw', count(*) FROM raw.transactions UNION ALL "
                "SELECT 'staged', count(*) FROM staging.transactions UNION ALL "
                "SELECT 'returns', count(*) FROM staging.returns UNION ALL "
                "SELECT 'quarantined', count(*) FROM staging.quarantine"
            ).fetchall()
        )
    finally:
        conn.close()
    assert counts["raw"] == report["transaction_lines"]
    assert counts["staged"] == report["sale_lines"]
    assert counts["returns"] == report["return_lines"]
    assert counts["quarantined"] == sum(report["defective_lines"].values())


def test_a_bug_in_a_step_gives_a_short_message_and_its_trace_in_a_file(
    tmp_path: Path, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    import segment_pipeline.assets.ingest as ingest

    def broken(*args, **kwargs):
        raise RuntimeError("boom: a bug, not bad input")

    monkeypatch.setattr(ingest, "stage_transactions_window", broken)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    data = make_dataset(tmp_path / "data")
    outcome = run(settings_for(data, tmp_path / "w" / "w.duckdb"), instance)
    assert not outcome.success
    [message] = [m for m in outcome.messages if m.startswith("staging__transactions")]
    assert "RuntimeError: boom: a bug, not bad input" in message
    trace = Path(message.split("full trace in ")[1].rstrip(")"))
    assert trace.is_file() and "Traceback" not in message
    assert "in broken" in trace.read_text()  # the whole stack, down to the failing function


def test_identity_warnings_name_shared_orders_and_case_only_ids(
    tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    """An order id used by two customers, and ids equal but for case, are staged as found
    (case-sensitive ids) and flagged by two warning checks that name them; a later day is
    compared with history, and a clean day passes."""
    data = tmp_path / "data"
    write_day(
        data,
        "2024-03-01",
        [
            line("O1", "C1", "2024-03-01 10:00:00", "P1", 1, "2"),
            line("O9", "C7", "2024-03-01 10:05:00", "P2", 1, "2"),
        ],
    )
    write_day(
        data,
        "2024-03-02",
        [
            line("O1", "C2", "2024-03-02 10:00:00", "P1", 1, "2"),  # O1 again, another customer
            line("O2", "c1", "2024-03-02 11:00:00", "p1", 1, "2"),  # C1 and P1 in lower case
        ],
    )
    outcome = run(settings_for(data, tmp_path / "w.duckdb"), instance)
    assert outcome.success, outcome.messages
    evaluations = {
        e.dagster_event.event_specific_data.check_name: e.dagster_event.event_specific_data
        for run_id in outcome.run_ids
        for e in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
    }
    shared = evaluations["order_id_single_customer"]
    assert not shared.passed and shared.severity == dg.AssetCheckSeverity.WARN
    assert shared.metadata["shared_order_ids"].value == 1
    assert "C1, C2" in shared.metadata["examples"].value
    folded = evaluations["ids_distinct_ignoring_case"]
    assert not folded.passed and folded.severity == dg.AssetCheckSeverity.WARN
    assert folded.metadata["customer_id_groups"].value == 1
    assert folded.metadata["product_id_groups"].value == 1
    assert "P1, p1" in folded.metadata["examples"].value
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as conn:
        customers = conn.execute(
            "SELECT DISTINCT customer_id FROM staging.transactions ORDER BY 1"
        ).fetchall()
    assert customers == [("C1",), ("C2",), ("C7",), ("c1",)]


def test_identity_checks_pass_on_clean_days(tmp_path: Path, instance: dg.DagsterInstance) -> None:
    outcome = run(settings_for(make_dataset(tmp_path / "data"), tmp_path / "w.duckdb"), instance)
    assert outcome.success, outcome.messages
    passed = {
        e.dagster_event.event_specific_data.check_name: e.dagster_event.event_specific_data.passed
        for e in instance.all_logs(
            outcome.run_ids[-1], of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
        )
    }
    assert passed["order_id_single_customer"] and passed["ids_distinct_ignoring_case"]


def test_selecting_one_asset_of_a_step_runs_the_whole_step(
    tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    """staging/transactions is written with staging/returns and staging/quarantine by one
    step: selecting it alone runs that step (it used to be an internal error)."""
    data = make_dataset(tmp_path / "data")
    settings = settings_for(data, tmp_path / "w.duckdb")
    first = execute_pipeline(
        settings, instance=instance, selection='key:"raw/transactions"', echo=False
    )
    assert first.success, first.messages
    outcome = execute_pipeline(
        settings, instance=instance, selection='key:"staging/transactions"', echo=False
    )
    assert outcome.success, outcome.messages
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM staging.transactions").fetchone() == (3,)
        assert conn.execute("SELECT count(*) FROM staging.returns").fetchone() == (1,)


def _revalidated(instance: dg.DagsterInstance, entity: str) -> bool:
    """Whether the latest materialization of staging.<entity> re-validated its file."""
    event = instance.get_latest_materialization_event(dg.AssetKey(["staging", entity]))
    assert event is not None and event.asset_materialization is not None
    return bool(event.asset_materialization.metadata["revalidated"].value)


def _customers(db: Path) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as conn:
        return conn.execute("SELECT * FROM staging.customers ORDER BY ALL").fetchall()


def test_an_unchanged_master_is_kept_and_any_change_restages_it(
    tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    """The second run keeps both masters as staged (same files, same code, same tables); a
    one-byte edit of customers.csv (same size, same modification time), a row deleted from
    staging.customers, or a quarantined row deleted make the next run stage it again, and
    what it stages is the file as it is now."""
    import os

    from segment_pipeline.sources import CanonicalSource

    data = make_dataset(tmp_path / "data")
    customers = write_csv(
        data / "customers.csv",
        CUSTOMER_HEADER,
        [
            ["C1", "M", "26-35", "4", "0", "A"],
            ["C2", "F", "18-25", "7", "1", "B"],
            ["", "M", "0-17", "1", "0", "C"],
        ],
    )
    write_csv(data / "products.csv", PRODUCT_HEADER, [["P1", "Tea", "Food"], ["P2", "Mug", "Home"]])
    db = tmp_path / "w" / "w.duckdb"
    masters = 'key:"staging/customers" or key:"staging/products"'

    def stage() -> tuple[bool, bool]:
        outcome = execute_pipeline(
            settings_for(data, db), instance=instance, selection=masters, echo=False
        )
        assert outcome.success, outcome.messages
        return _revalidated(instance, "customers"), _revalidated(instance, "products")

    assert stage() == (True, True)
    first = _customers(db)
    assert [row[:2] for row in first] == [("C1", "M"), ("C2", "F")]
    assert stage() == (False, False)
    assert _customers(db) == first
    with duckdb.connect(str(db), read_only=True) as conn:
        assert conn.execute(
            "SELECT count(*) FROM staging.quarantine WHERE entity = 'customers'"
        ).fetchall() == [(1,)]  # the row without an id, kept

    # C2's gender F -> M: the same size, and the modification time put back
    stat = customers.stat()
    customers.write_bytes(customers.read_bytes().replace(b"C2,F,", b"C2,M,"))
    os.utime(customers, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert customers.stat().st_size == stat.st_size
    assert stage() == (True, False)
    assert [row[:2] for row in _customers(db)] == [("C1", "M"), ("C2", "M")]
    assert stage() == (False, False)

    for statement in (
        "DELETE FROM staging.customers WHERE customer_id = 'C1'",
        "DELETE FROM staging.quarantine WHERE entity = 'customers'",
    ):
        with duckdb.connect(str(db)) as conn:
            conn.execute(statement)
        assert stage() == (True, False), statement
        assert [row[0] for row in _customers(db)] == ["C1", "C2"]

    # the canonical source names the master's file when there is one, else nothing to key on
    assert CanonicalSource(data).master_files("customers") == (customers,)
    assert CanonicalSource(tmp_path).master_files("customers") is None
