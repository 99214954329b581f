"""The SQL source against a real PostgreSQL server that this module starts itself (pg.py):
typed and all-text tables, streaming in chunks, unreadable dates, password masking, and the
bundled sample loaded into PostgreSQL giving the same tables as the file-based run.

Skipped only when no PostgreSQL server binaries exist on the machine (Debian package
`postgresql`). SQLite is not a substitute: server-side cursors, schemas, type reflection and
password authentication are what this tests.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote

import dagster as dg
import duckdb
import pandas as pd
import pytest

from segment_pipeline.runner import execute_pipeline
from segment_pipeline.settings import PipelineSettings
from segment_pipeline.sources import DataContractError, open_source
from segment_pipeline.sources.sql import (
    CHUNK_ENV,
    URL_ENV,
    SqlSource,
    SqlTables,
    mask_secrets,
    mask_url,
    read_sql_url,
)
from segment_pipeline_tests.conftest import SAMPLE_DIR, settings_for
from segment_pipeline_tests.pg import PostgresServer, find_pg_bin, postgres_server
from segment_pipeline_tests.test_sources_mapped import (
    COMPARE_SELECTION,
    LINEAGE_COLUMNS,
    WINDOW,
    assert_staging_checks_passed,
    canonical_window_db,
    rows,
    stage,
    warehouse_tables,
)

psycopg2 = pytest.importorskip("psycopg2")

SKIP_REASON = (
    "no PostgreSQL server binaries (initdb, pg_ctl, postgres) found: install Debian's "
    "`postgresql` package (apt-get install -y postgresql) or set SEGMENT_PIPELINE_PG_BIN"
)


@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresServer]:
    if find_pg_bin() is None:
        pytest.skip(SKIP_REASON)
    with postgres_server() as server:
        yield server


def execute(server: PostgresServer, database: str, *statements: str) -> None:
    conn = psycopg2.connect(server.dsn(database))
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
    finally:
        conn.close()


def copy_csv(server: PostgresServer, database: str, table: str, files: list[Path]) -> None:
    conn = psycopg2.connect(server.dsn(database))
    try:
        with conn.cursor() as cur:
            for path in files:
                with path.open(encoding="utf-8") as handle:
                    # CSV: an empty unquoted field is NULL, as DuckDB reads it from the file.
                    cur.copy_expert(
                        f"COPY {table} FROM STDIN WITH (FORMAT csv, HEADER true)", handle
                    )
        conn.commit()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def shop(pg: PostgresServer) -> str:
    """Database `shop` holding the whole bundled sample as it is in the files (text columns,
    so the deliberately broken values survive), in tables transactions/customers/products."""
    execute(pg, "postgres", "CREATE DATABASE shop")
    execute(
        pg,
        "shop",
        "CREATE TABLE transactions (order_id text, customer_id text, order_ts text, "
        "product_id text, quantity text, unit_price text)",
        "CREATE TABLE customers (customer_id text, gender text, age_band text, "
        "occupation text, marital_status text, city_category text)",
        "CREATE TABLE products (product_id text, product_name text, category text)",
    )
    copy_csv(pg, "shop", "transactions", sorted((SAMPLE_DIR / "transactions").glob("*.csv")))
    copy_csv(pg, "shop", "customers", [SAMPLE_DIR / "customers.csv"])
    copy_csv(pg, "shop", "products", [SAMPLE_DIR / "products.csv"])
    return pg.url("shop")


# --------------------------------------------------------------------------------------------
# Hand-made tables
# --------------------------------------------------------------------------------------------


def test_typed_table_streams_in_chunks(pg: PostgresServer) -> None:
    execute(
        pg,
        "postgres",
        "CREATE SCHEMA typed",
        "CREATE TABLE typed.sales (order_id text, customer_id text, order_ts timestamp, "
        "product_id text, quantity integer, unit_price numeric(10, 2), country text)",
        "INSERT INTO typed.sales VALUES "
        "('O1', 'C1', '2025-11-01 09:00:00', 'P1', 2, 3.99, 'DE'),"
        "('O1', 'C1', '2025-11-01 09:00:00', 'P2', 1, 0.00, 'DE'),"  # zero price: a sale
        "('O2', 'C2', '2025-11-02 10:30:00', 'P1', -1, 3.99, 'FR'),"  # a return
        "('O3', 'C3', NULL, 'P1', 1, 3.99, 'FR'),"  # no timestamp: first day, quarantined
        "('O4', NULL, '2025-11-02 11:00:00', 'P1', 1, 3.99, 'FR')",  # no customer
    )
    source = SqlSource(
        pg.url(),
        tables=SqlTables(transactions="typed.sales", customers="typed.people"),
        chunk_rows=2,
    )
    assert source.transaction_days() == [date(2025, 11, 1), date(2025, 11, 2)]
    conn = duckdb.connect()
    stage(conn, source)
    # 2025-11-01 has 3 rows (two dated, one undated) = 2 chunks of 2; 2025-11-02 has 2 = 1.
    assert source.chunks_fetched == 3
    assert rows(
        conn,
        "SELECT partition_date, order_id, product_id, quantity, unit_price, "
        "amount, source_file, extra FROM staging.transactions ORDER BY 2, 3",
    ) == [
        (
            date(2025, 11, 1),
            "O1",
            "P1",
            2,
            Decimal("3.99"),
            Decimal("7.98"),
            "typed.sales@2025-11-01",
            '{"country":"DE"}',
        ),
        (
            date(2025, 11, 1),
            "O1",
            "P2",
            1,
            Decimal("0"),
            Decimal("0"),
            "typed.sales@2025-11-01",
            '{"country":"DE"}',
        ),
    ]
    assert rows(conn, "SELECT order_id, order_ts, amount FROM staging.returns") == [
        ("O2", datetime(2025, 11, 2, 10, 30), Decimal("-3.99"))
    ]
    assert rows(conn, "SELECT partition_date, rule FROM staging.quarantine ORDER BY 1") == [
        (date(2025, 11, 1), "order_ts_missing"),
        (date(2025, 11, 2), "customer_id_missing"),
    ]
    # No customers table: none loaded, nothing quarantined for it.
    assert rows(conn, "SELECT count(*) FROM staging.customers")[0][0] == 0


def test_text_table_rules(pg: PostgresServer) -> None:
    execute(
        pg,
        "postgres",
        "CREATE SCHEMA landing",
        "CREATE TABLE landing.transactions (order_id text, customer_id text, order_ts text, "
        "product_id text, quantity text, unit_price text, category text)",
        "INSERT INTO landing.transactions VALUES "
        "('O1', 'C1', '2025-11-03 09:00:00', 'P1', '1', '2.50', 'Books'),"
        "('O1', 'C1', '2025-11-03 09:00:00', 'P1', '1', '2.50', 'Books'),"  # duplicate line
        "('O2', 'C1', '2025-11-04 09:00:00', 'P1', '1', '2,50', 'Books'),"  # decimal comma
        "('O3', 'C1', '2025-13-45 25:61:00', 'P1', '1', '2.50', 'Books'),"  # impossible date
        "('O4', 'C1', 'not a date', 'P1', '1', '2.50', 'Books'),"  # no date at all
        "('O5', 'C1', '2025-11-04 25:00:00', 'P1', '1', '2.50', 'Books')",  # day ok, time not
        "CREATE TABLE landing.products (product_id text, product_name text)",
        "INSERT INTO landing.products VALUES ('P1', 'Atlas'), ('P1', 'Atlas 2nd')",
    )
    source = SqlSource(
        pg.url(),
        tables=SqlTables(
            transactions="landing.transactions",
            customers="landing.customers",
            products="landing.products",
        ),
    )
    assert source.transaction_days() == [date(2025, 11, 3), date(2025, 11, 4)]
    conn = duckdb.connect()
    stage(conn, source)
    assert rows(conn, "SELECT order_id FROM staging.transactions") == [("O1",)]
    assert rows(
        conn,
        "SELECT partition_date, rule, detail FROM staging.quarantine "
        "WHERE entity = 'transactions' ORDER BY 1, 3",
    ) == [
        (date(2025, 11, 3), "order_ts_unparseable", "order_ts=2025-13-45 25:61:00"),
        (date(2025, 11, 3), "order_ts_unparseable", "order_ts=not a date"),
        (date(2025, 11, 3), "duplicate_line", "repeats an earlier line of order O1"),
        (date(2025, 11, 4), "order_ts_unparseable", "order_ts=2025-11-04 25:00:00"),
        (date(2025, 11, 4), "unit_price_unparseable", "unit_price=2,50"),
    ]
    assert rows(conn, "SELECT product_id, product_name FROM staging.products") == [("P1", "Atlas")]
    assert rows(conn, "SELECT entity, rule FROM staging.quarantine WHERE entity = 'products'") == [
        ("products", "duplicate_product_id")
    ]
    # Re-loading gives the same line ids (a stable order, not the database's whim).
    before = rows(
        conn,
        "SELECT line_id FROM staging.transactions UNION ALL "
        "SELECT source_file || ':' || source_line FROM staging.quarantine "
        "ORDER BY 1",
    )
    stage(conn, SqlSource(pg.url(), tables=source.tables))
    assert (
        rows(
            conn,
            "SELECT line_id FROM staging.transactions UNION ALL "
            "SELECT source_file || ':' || source_line FROM staging.quarantine "
            "ORDER BY 1",
        )
        == before
    )


def test_missing_table_and_column_are_named(pg: PostgresServer) -> None:
    execute(pg, "postgres", "CREATE TABLE bare (order_id text, customer_id text)")
    with pytest.raises(DataContractError, match="no table 'nowhere'"):
        SqlSource(pg.url(), tables=SqlTables(transactions="nowhere")).transaction_days()
    with pytest.raises(DataContractError, match="table bare has no column") as error:
        SqlSource(pg.url(), tables=SqlTables(transactions="bare")).transaction_days()
    assert "order_ts" in str(error.value) and pg.password not in str(error.value)


# --------------------------------------------------------------------------------------------
# The URL and its password
# --------------------------------------------------------------------------------------------


def test_password_is_masked_everywhere(pg: PostgresServer, tmp_path: Path) -> None:
    url = pg.url()
    source = SqlSource(url)
    for text in (source.describe(), repr(source), mask_url(url)):
        assert pg.password not in text and "%2F" not in text and "***" in text
    # A wrong password: the server's refusal comes back, masked.
    wrong = f"postgresql+psycopg2://{pg.user}:Wr0ng-s3cret@127.0.0.1:{pg.port}/postgres"
    with pytest.raises(DataContractError, match="password authentication failed") as error:
        SqlSource(wrong).transaction_days()
    assert "Wr0ng-s3cret" not in str(error.value)
    # A URL SQLAlchemy cannot even parse is masked too.
    assert "hunter2" not in mask_url("postgresql://me:hunter2@host:notaport/db")
    assert "hunter2" not in mask_secrets(
        "failed for postgresql://me:hunter2@h/db (hunter2)", "postgresql://me:hunter2@h/db"
    )
    assert "hunter2" not in mask_url("postgresql://h/db?user=me&password=hunter2")
    # An unencoded "@" in the password does not leak its tail.
    assert mask_url("postgresql://me:hun@ter2@host/db") == "postgresql://me:***@host/db"


def test_url_from_the_environment_tables_from_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(URL_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text(f"{URL_ENV}=postgresql://u:p4ss@db/x\n")
    # The library never reads .env itself: the entry points load it (cli.main, Dagster's CLI).
    with pytest.raises(DataContractError, match=URL_ENV):
        read_sql_url()
    monkeypatch.setenv(URL_ENV, "postgresql://u:other@db/y")
    assert read_sql_url() == "postgresql://u:other@db/y"
    env = {CHUNK_ENV: "1000", "SEGMENT_PIPELINE_SQL_TRANSACTIONS": "sales.lines",
           "SEGMENT_PIPELINE_FORMAT": "sql", "SEGMENT_PIPELINE_DATA": str(tmp_path)}  # fmt: skip
    source = open_source(PipelineSettings.from_env(env))
    assert isinstance(source, SqlSource)
    assert source.chunk_rows == 1000 and source.tables.transactions == "sales.lines"
    assert source.tables.customers == "customers"
    assert "other" not in source.describe()


# --------------------------------------------------------------------------------------------
# End to end: the sample from PostgreSQL gives the same tables as from files
# --------------------------------------------------------------------------------------------


def _without_lineage(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.drop(columns=[c for c in LINEAGE_COLUMNS if c in frame.columns])
    key = frame.astype(str)
    return frame.loc[key.sort_values(list(key.columns)).index].reset_index(drop=True)


@pytest.mark.e2e
def test_postgres_gives_the_same_tables_as_files(
    shop: str,
    pg: PostgresServer,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    canonical_db, canonical_outcome = canonical_window_db(tmp_path_factory)
    monkeypatch.setenv(URL_ENV, shop)
    db = tmp_path / "sql" / "segments.duckdb"
    # 100 rows a chunk: a day is ~150 lines, so several chunks per day.
    settings = settings_for(tmp_path, db, source_format="sql", sql_chunk_rows=100)
    with dg.instance_for_test() as instance:
        outcome = execute_pipeline(
            settings,
            instance=instance,
            selection=COMPARE_SELECTION,
            start=WINDOW[0],
            end=WINDOW[1],
            echo=False,
        )
        # The password is in no event, log line or metadata of the run.
        logs = [r for run_id in outcome.run_ids for r in instance.all_logs(run_id)]
        secrets = (pg.password, quote(pg.password, safe=""))
        assert logs and not [r for r in logs if any(x in repr(r) for x in secrets)]
        assert any("***" in repr(r) for r in logs)  # the masked URL is (describe())
    assert_staging_checks_passed(outcome)
    assert sorted(outcome.failed_checks) == sorted(canonical_outcome.failed_checks)

    expected = warehouse_tables(canonical_db, drop_columns=LINEAGE_COLUMNS)
    got = warehouse_tables(db, drop_columns=LINEAGE_COLUMNS)
    assert sorted(got) == sorted(expected)

    # Rows whose date cannot be read have no day in a database: the SQL source loads all of
    # them (from the whole year) into the first day. Compare them on their own, against an
    # independent scan of the sample files; every other row must match exactly.
    def has_day(detail: str) -> bool:
        try:
            date.fromisoformat(detail.removeprefix("order_ts=")[:10])
        except ValueError:
            return False
        return True

    def split(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        undated = (frame["rule"] == "order_ts_unparseable") & ~frame["detail"].map(has_day)
        return (_without_lineage(frame[~undated]), frame[undated].reset_index(drop=True))

    got_rest, got_undated = split(got.pop("staging.quarantine"))
    expected_rest, _ = split(expected.pop("staging.quarantine"))
    pd.testing.assert_frame_equal(got_rest, expected_rest, obj="staging.quarantine")
    with duckdb.connect() as conn:
        in_files = sorted(
            rows(
                conn,
                """
            SELECT order_id, product_id, order_ts
            FROM read_csv(?, all_varchar = true, header = true)
            WHERE TRY_CAST(substr(order_ts, 1, 10) AS DATE) IS NULL
        """,
                [str(SAMPLE_DIR / "transactions" / "*.csv")],
            )
        )
    assert len(in_files) > 0
    assert set(pd.to_datetime(got_undated["partition_date"]).dt.date) == {WINDOW[0]}
    loaded = sorted(
        (v["order_id"], v["product_id"], v["order_ts"])
        for v in map(json.loads, got_undated["raw_values"])
    )
    assert loaded == in_files

    # Per-day counts differ by exactly those rows (quarantined, on the first day): every day is
    # conserved, and staged and returned lines are the files' to the line.
    got_days, expected_days = got.pop("staging.staged_days"), expected.pop("staging.staged_days")
    assert (got_days["raw"] == got_days[["staged", "returns", "quarantined"]].sum(axis=1)).all()
    for column in ("staged", "returns"):
        assert got_days[column].sum() == expected_days[column].sum()
    surplus = got_days[["raw", "quarantined"]].sum() - expected_days[["raw", "quarantined"]].sum()
    assert surplus["raw"] == surplus["quarantined"]

    assert {
        "staging.transactions",
        "staging.returns",
        "staging.customers",
        "staging.products",
    } <= set(got)
    assert len(got["staging.transactions"]) > 1000 and len(got["staging.returns"]) > 0
    for name, frame in expected.items():
        pd.testing.assert_frame_equal(got[name], frame, obj=name)


@pytest.mark.parametrize("password", ["p@ss:w/rd%x", "se:cr@t/2%40z", "100%@x:yz/w@q"])
def test_unencoded_special_characters_never_leak(
    pg: PostgresServer, password: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now
    fragments = [f for f in re.split(r"[@:/%]", password) if len(f) >= 3] + [password]
    for host in (f"127.0.0.1:{port}", f"127.0.0.1:{pg.port}"):  # closed port, real server
        url = f"postgresql+psycopg2://{pg.user}:{password}@{host}/postgres"
        for text in (mask_url(url), SqlSource(url).describe(), repr(SqlSource(url))):
            assert not [f for f in fragments if f in text], text
        with pytest.raises(DataContractError) as error:
            SqlSource(url).transaction_days()
        message = str(error.value)
        assert "SQL database" in message and "***" in message
        assert not [f for f in fragments if f in message], message
