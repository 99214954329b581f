"""A staging table's contract is declared once (its TableDef) and the DuckDB DDL, the pandera
schema and the Dagster column schema all come from that declaration."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import polars as pl
import pytest

from segment_pipeline.logic.staging import (
    STAGED_CUSTOMERS,
    STAGED_PRODUCTS,
    STAGED_RETURNS,
    STAGED_TRANSACTIONS,
    rejected_rows,
)
from segment_pipeline.schemas import pandera_schema
from segment_pipeline.tables import (
    Column,
    TableDef,
    check_label,
    frame_markdown,
    markdown_table,
    preview_markdown,
    table_metadata,
)

VALIDATED_TABLES = [STAGED_TRANSACTIONS, STAGED_RETURNS, STAGED_CUSTOMERS, STAGED_PRODUCTS]


@pytest.mark.parametrize("table", VALIDATED_TABLES, ids=lambda t: t.fqn)
def test_ddl_pandera_and_ui_agree(table: TableDef) -> None:
    schema = pandera_schema(table)
    validated = [c for c in table.columns if c.validated]
    assert list(schema.columns) == [c.name for c in validated]
    ui = {c.name: c for c in table.dagster_schema().columns}
    with duckdb.connect() as conn:
        conn.execute(f"CREATE SCHEMA {table.schema}")
        conn.execute(table.create_sql())
        not_null = {
            name: nullable == "NO"
            for name, _, nullable, *_ in conn.execute(f"DESCRIBE {table.fqn}").fetchall()
        }
    for column in validated:
        rules = schema.columns[column.name]
        assert rules.nullable is column.nullable is not not_null[column.name]
        assert rules.unique is column.unique is ui[column.name].constraints.unique
        assert ui[column.name].constraints.nullable is column.nullable
        names = [c.name for c in rules.checks]
        assert names == [rule.check().name for rule in column.checks]
        # The UI lists each rule by the name the quarantine reports (built-ins by their text),
        # declared with the rule before its pandera check is built.
        assert ui[column.name].constraints.other == [check_label(c) for c in rules.checks]
    if table.checks:
        assert [c.name for c in schema.checks] == [rule.label for rule in table.checks]
        assert table.dagster_schema().constraints.other == [check_label(c) for c in schema.checks]


def test_ui_shows_the_rules_of_staged_transactions() -> None:
    columns = {c.name: c for c in STAGED_TRANSACTIONS.dagster_schema().columns}
    assert columns["line_id"].constraints.unique
    assert columns["unit_price"].constraints.other == ["unit_price_not_negative"]
    assert columns["quantity"].constraints.other == ["quantity_positive_for_sale"]
    assert columns["order_id"].constraints.other == ["str_length(1, None)"]
    assert not columns["source_file"].constraints.other  # lineage: not validated
    schema = STAGED_TRANSACTIONS.spec_metadata()["dagster/column_schema"]
    assert isinstance(schema, dg.TableSchema)
    assert schema.constraints.other == [
        "amount_is_quantity_times_price",
        "order_ts_on_partition_day",
    ]


def test_a_rule_declared_on_a_column_is_the_rule_reported() -> None:
    """Hand-built rows: each breaks one declared rule; the reported rule is that rule's name."""
    frame = pl.DataFrame(
        {
            "line_id": ["a", "b", "c", "d"],
            "partition_date": [date(2024, 1, 1)] * 4,
            "order_id": ["o1", "", "o3", "o4"],
            "customer_id": ["c"] * 4,
            "order_ts": [datetime(2024, 1, 1, 9)] * 3 + [datetime(2024, 1, 2, 9)],
            "product_id": ["p"] * 4,
            "product_name": [None] * 4,
            "category": [None] * 4,
            "quantity": [1, 1, -2, 1],
            "unit_price": [-1.0, 2.0, 2.0, 2.0],
            "amount": [-1.0, 2.0, -4.0, 2.0],
        },
        schema_overrides={"product_name": pl.String, "category": pl.String},
    )
    rejected = rejected_rows(frame, pandera_schema(STAGED_TRANSACTIONS), "line_id")
    assert dict(zip(rejected["line_id"], rejected["rule"], strict=True)) == {
        "a": "unit_price_not_negative",
        "b": "order_id:str_length(1, None)",
        "c": "quantity_positive_for_sale",
        "d": "order_ts_on_partition_day",
    }


def _ensure_one_of_several(conn: duckdb.DuckDBPyConnection, table: TableDef) -> None:
    from segment_pipeline.logic.staging import STAGED_DAYS
    from segment_pipeline.tables import ensure_tables

    ensure_tables(conn, [STAGED_DAYS, table])


@pytest.mark.parametrize("batched", [False, True], ids=["ensure_table", "ensure_tables"])
def test_ensure_table_recreates_a_drifted_derived_table_and_refuses_a_drifted_staging_one(
    tmp_path, batched: bool
) -> None:
    """A mart whose columns changed is rebuilt empty (derived: recomputed by its step); a raw
    or staging table with other columns holds loaded history and is refused. Only the
    warehouse's own catalog counts: an attached database with the same table is not it.
    `ensure_tables` (one catalog query for several tables) does exactly the same."""
    from segment_pipeline.tables import (
        Column,
        TableShapeError,
        row_count,
        table_exists,
    )
    from segment_pipeline.tables import ensure_table as ensure_one

    ensure_table = _ensure_one_of_several if batched else ensure_one

    mart = TableDef("marts", "_drift_test", (Column("a", "INTEGER"), Column("b", "VARCHAR")))
    staged = TableDef("staging", "_drift_test", (Column("a", "INTEGER"),))
    with duckdb.connect(str(tmp_path / "w.duckdb")) as conn:
        conn.execute(f"ATTACH '{tmp_path / 'other.duckdb'}' AS other")
        conn.execute("CREATE SCHEMA other.marts")
        conn.execute("CREATE TABLE other.marts._drift_test (x DOUBLE)")
        assert not table_exists(conn, mart) and row_count(conn, mart) == 0
        ensure_table(conn, mart)  # not confused by other.marts._drift_test
        assert conn.execute("SELECT * FROM marts._drift_test").description[1][0] == "b"
        conn.execute("DROP TABLE marts._drift_test")
        conn.execute("CREATE TABLE marts._drift_test (a INTEGER, old VARCHAR)")
        conn.execute("INSERT INTO marts._drift_test VALUES (1, 'x')")
        ensure_table(conn, mart)
        names = [d[0] for d in conn.execute("SELECT * FROM marts._drift_test").description]
        assert names == ["a", "b"]
        assert conn.execute("SELECT count(*) FROM marts._drift_test").fetchone() == (0,)
        conn.execute("INSERT INTO marts._drift_test VALUES (2, 'kept')")
        ensure_table(conn, mart)  # unchanged: kept as is, rows and all
        assert conn.execute("SELECT * FROM marts._drift_test").fetchall() == [(2, "kept")]
        assert row_count(conn, mart) == 1
        conn.execute("CREATE SCHEMA IF NOT EXISTS staging")
        conn.execute("CREATE TABLE staging._drift_test (a INTEGER, extra VARCHAR)")
        with pytest.raises(TableShapeError, match=r"staging\._drift_test"):
            ensure_table(conn, staged)


def test_views_are_replaced_only_when_their_sql_changed() -> None:
    """`ensure_views` recreates a view whose SQL differs from what created it (its digest in
    the view's comment) or that has no digest, and leaves one created from the same SQL
    alone."""
    from segment_pipeline.tables import ViewDef, ensure_views

    view = ViewDef("marts", "_view_test")
    one = "CREATE OR REPLACE VIEW marts._view_test AS SELECT 1 AS x"
    two = "CREATE OR REPLACE VIEW marts._view_test AS SELECT 2 AS x"
    comment_sql = "SELECT comment FROM duckdb_views() WHERE view_name = '_view_test'"
    with duckdb.connect() as conn:
        conn.execute("CREATE SCHEMA marts")
        ensure_views(conn, [(view, one)])
        assert conn.execute("SELECT x FROM marts._view_test").fetchall() == [(1,)]
        digest = conn.execute(comment_sql).fetchall()[0][0]
        # Marked as made from `one` but selecting 9: ensuring `one` again must not touch it.
        conn.execute("CREATE OR REPLACE VIEW marts._view_test AS SELECT 9 AS x")
        conn.execute(f"COMMENT ON VIEW marts._view_test IS '{digest}'")
        ensure_views(conn, [(view, one)])
        assert conn.execute("SELECT x FROM marts._view_test").fetchall() == [(9,)]
        ensure_views(conn, [(view, two)])  # other SQL: replaced
        assert conn.execute("SELECT x FROM marts._view_test").fetchall() == [(2,)]
        assert conn.execute(comment_sql).fetchall()[0][0] != digest
        conn.execute("CREATE OR REPLACE VIEW marts._view_test AS SELECT 3 AS x")  # no digest
        ensure_views(conn, [(view, two)])
        assert conn.execute("SELECT x FROM marts._view_test").fetchall() == [(2,)]


def test_markdown_tables_hand_built() -> None:
    """Numbers right-aligned and rounded to 4 decimals in `g` form (as pandas' `to_markdown`
    showed them), text left-aligned with a `|` escaped, missing values empty, booleans and
    dates as text, bytes by their size."""
    table = markdown_table(
        ["segment", "customers", "share", "vip", "day", "png"],
        [
            ("Champions", 12, 0.123456, True, date(2025, 11, 1), b"\x89PNG"),
            ("a|b", 3, None, False, None, None),
            (None, 1_234_567, 1234567.891, True, datetime(2025, 11, 2, 9, 30), b""),
        ],
    )
    assert table.splitlines() == [
        "| segment | customers | share | vip | day | png |",
        "|:---|---:|---:|:---|:---|:---|",
        "| Champions | 12 | 0.1235 | True | 2025-11-01 | <4 bytes> |",
        "| a\\|b | 3 |  | False |  |  |",
        "|  | 1234567 | 1.23457e+06 | True | 2025-11-02 09:30:00 | <0 bytes> |",
    ]


def test_frame_previews_keep_pandas_values_and_the_index_when_asked() -> None:
    frame = pd.DataFrame(
        {
            "n": np.array([1, 2], dtype="int64"),
            "rate": [0.5, np.nan],
            "when": pd.to_datetime(["2025-11-01", None]),
        },
        index=pd.Index(["x", "y"], name="cell"),
    )
    assert frame_markdown(frame).splitlines() == [
        "| n | rate | when |",
        "|---:|---:|:---|",
        "| 1 | 0.5 | 2025-11-01 00:00:00 |",
        "| 2 |  |  |",
    ]
    with_index = frame_markdown(frame, index=True).splitlines()
    assert with_index[0] == "| cell | n | rate | when |"
    assert with_index[2] == "| x | 1 | 0.5 | 2025-11-01 00:00:00 |"
    assert (
        preview_markdown(frame, max_rows=1).value.splitlines()[-1]
        == "| 1 | 0.5 | 2025-11-01 00:00:00 |"
    )
    assert preview_markdown(frame.iloc[0:0]).value == "_(no rows)_"


def test_table_metadata_previews_the_first_rows_in_order(tmp_path: Path) -> None:
    table = TableDef(
        schema="marts",
        name="_preview_probe",
        columns=(
            Column("segment", "VARCHAR", "a segment", nullable=False),
            Column("revenue", "DECIMAL(18, 4)", "revenue"),
        ),
    )
    conn = duckdb.connect(str(tmp_path / "w.duckdb"))
    conn.execute("CREATE SCHEMA marts")
    conn.execute(table.create_sql())
    meta = table_metadata(conn, table, order_by="segment", preview_rows=2)
    assert meta["preview"].value == "_(no rows)_"
    conn.execute("INSERT INTO marts._preview_probe VALUES ('b', 2.5), ('a', 10.12344), ('c', NULL)")
    meta = table_metadata(conn, table, order_by="segment", preview_rows=2)
    assert meta["dagster/row_count"].value == 3
    assert meta["preview"].value.splitlines() == [
        "| segment | revenue |",
        "|:---|---:|",
        "| a | 10.1234 |",
        "| b | 2.5 |",
    ]
