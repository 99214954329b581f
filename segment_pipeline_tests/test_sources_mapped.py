"""The `mapped` source: a mapping file makes any CSV/Parquet layout readable.

Hand-made files check each rule (renamed columns, declared timestamp format and decimal
separator, wrong separators, unparseable dates, missing columns, amount instead of price,
demographics in the transaction rows); the end-to-end test writes a copy of the bundled sample
with every column renamed (and `;`, decimal commas, day-first timestamps) and checks that the
pipeline gives exactly the canonical run's tables.

Helpers used by the other source tests live here too (`stage`, `warehouse_tables`,
`canonical_window_db`).
"""

from __future__ import annotations

import csv
import json
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segment_pipeline.logic.staging import (
    ensure_staging_tables,
    load_raw_window,
    stage_master,
    stage_transactions_window,
)
from segment_pipeline.runner import RunOutcome, execute_pipeline
from segment_pipeline.settings import PROJECT_ROOT
from segment_pipeline.sources import DataContractError, DatasetSource, open_source
from segment_pipeline.sources.data_files import discover_files
from segment_pipeline.sources.mapped import MappedSource
from segment_pipeline.sources.mapping_file import load_mapping
from segment_pipeline.sources.value_rules import ValueRules
from segment_pipeline_tests.conftest import SAMPLE_DIR, settings_for

EXAMPLE_MAPPING = PROJECT_ROOT / "docs" / "examples" / "sample_renamed_mapping.yaml"

#: A window of the sample that holds every kind of defective line and some returns
#: (unit_price_unparseable 11-01, quantity 0 11-02, negative price 11-05, returns from 11-06,
#: malformed timestamps 11-08 and 11-12, missing customer 11-15; docs/sample_data.md).
WINDOW = (date(2025, 11, 1), date(2025, 11, 15))
#: Raw, staging and analysis tables; figures and the report are not compared (PNG bytes and
#: prose), and rendering them would only slow the test down.
COMPARE_SELECTION = 'key:"raw/*" or key:"staging/*" or key:"marts/*"'
LINEAGE_COLUMNS = ("line_id", "source_file", "source_line")


# --------------------------------------------------------------------------------------------
# Helpers shared by the source tests
# --------------------------------------------------------------------------------------------


def stage(
    conn: duckdb.DuckDBPyConnection, source: DatasetSource, days: list[date] | None = None
) -> None:
    """Load raw rows of `days` (default: all) the way the raw asset does, then stage them and
    the customer/product masters with the staging logic."""
    ensure_staging_tables(conn)
    days = source.transaction_days() if days is None else days
    for day in days:
        load_raw_window(conn, source, day, day)
        stage_transactions_window(conn, [day])
    for entity in ("customers", "products"):
        query = source.raw_customers(conn) if entity == "customers" else source.raw_products(conn)
        stage_master(
            conn,
            entity,
            query.sql if query else None,
            query.params if query else [],
            declared=source.declared_demographics(),
        )


def rows(conn: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> list:
    return conn.execute(sql, params or []).fetchall()


def write_csv(path: Path, header: list[str], lines: list[list[str]], delimiter: str = ",") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter=delimiter, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(lines)
    return path


def write_mapping(path: Path, doc: dict[str, Any]) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path


#: When a bookkeeping row was written (the incremental tables' `*_inputs` records): differs
#: between any two runs by design, so never compared.
WRITE_TIME_COLUMNS = ("computed_at",)


def warehouse_tables(db: Path, drop_columns: tuple[str, ...] = ()) -> dict[str, pd.DataFrame]:
    """Every table of the staging and marts schemas, sorted on all (kept) columns, with float
    columns rounded (aggregation order may differ between runs in the last bits), without
    WRITE_TIME_COLUMNS. Not staging.master_loads: it records which files a source's masters
    were staged from, so it differs between sources by design (a source that cannot name its
    files has none); nor the digest of it that marts.customer_snapshot_inputs keeps with the
    days of the latest snapshot month (its `settings_digest`), compared without it."""
    drop_columns = (*drop_columns, *WRITE_TIME_COLUMNS)
    out: dict[str, pd.DataFrame] = {}
    with duckdb.connect(str(db), read_only=True) as conn:
        names = rows(
            conn,
            "SELECT schema_name, table_name FROM duckdb_tables() "
            "WHERE schema_name IN ('staging', 'marts') "
            "AND (schema_name, table_name) <> ('staging', 'master_loads') ORDER BY 1, 2",
        )
        for schema, table in names:
            frame = conn.execute(f'SELECT * FROM "{schema}"."{table}"').df()
            frame = frame.drop(columns=[c for c in drop_columns if c in frame.columns])
            if (schema, table) == ("marts", "customer_snapshot_inputs"):
                frame = frame.drop(columns=["settings_digest"])
            for col in frame.columns:
                if pd.api.types.is_float_dtype(frame[col]):
                    frame[col] = frame[col].round(9)
            frame = frame.astype(object).where(frame.notna(), None)
            key = frame.astype(str)
            order = (
                key.sort_values(list(key.columns), kind="stable").index
                if len(frame.columns)
                else key.index
            )
            out[f"{schema}.{table}"] = frame.loc[order].reset_index(drop=True)
    return out


def run_window(settings, selection: str = COMPARE_SELECTION) -> RunOutcome:
    with dg.instance_for_test() as instance:
        return execute_pipeline(
            settings,
            instance=instance,
            selection=selection,
            start=WINDOW[0],
            end=WINDOW[1],
            echo=False,
        )


def assert_staging_checks_passed(outcome: RunOutcome) -> None:
    assert not outcome.messages, outcome.messages
    assert not [c for c in outcome.failed_checks if c.startswith("staging/")], outcome


_CANONICAL_WINDOW: dict[str, tuple[Path, RunOutcome]] = {}


def canonical_window_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, RunOutcome]:
    """The bundled sample (canonical format) run over WINDOW, built once per test session and
    shared by the mapped and SQL comparisons."""
    if "db" not in _CANONICAL_WINDOW:
        db = tmp_path_factory.mktemp("canonical_window") / "segments.duckdb"
        outcome = run_window(settings_for(SAMPLE_DIR, db))
        assert_staging_checks_passed(outcome)
        _CANONICAL_WINDOW["db"] = (db, outcome)
    return _CANONICAL_WINDOW["db"]


# --------------------------------------------------------------------------------------------
# Hand-made rows
# --------------------------------------------------------------------------------------------

HEADER = ["Nr", "Kunde", "Zeit", "Artikel", "Menge", "Preis", "Name", "Gruppe", "Land"]
BASE_MAPPING: dict[str, Any] = {
    "transactions": {
        "path": "tx",
        "columns": {
            "order_id": "Nr",
            "customer_id": "Kunde",
            "order_ts": "Zeit",
            "product_id": "Artikel",
            "quantity": "Menge",
            "unit_price": "Preis",
            "product_name": "Name",
            "category": "Gruppe",
        },
    },
    "delimiter": ";",
    "timestamp_format": "%d/%m/%Y %H:%M",
    "decimal_separator": ",",
    "thousands_separator": ".",
}


def mapped_source(
    tmp_path: Path,
    lines: list[list[str]],
    mapping: dict[str, Any] | None = None,
    *,
    file_name: str = "2025-11-03.csv",
    header: list[str] | None = None,
    delimiter: str = ";",
) -> MappedSource:
    write_csv(tmp_path / "tx" / file_name, header or HEADER, lines, delimiter)
    path = write_mapping(tmp_path / "mapping.yaml", mapping or BASE_MAPPING)
    return MappedSource(tmp_path, load_mapping(path), undated_day=date(2024, 11, 29))


def test_renamed_columns_formats_and_the_staging_rules(tmp_path: Path) -> None:
    source = mapped_source(
        tmp_path,
        [
            # a sale: 2 x 1.234,50 -> unit_price 1234.50, amount 2469.00
            ["A1", "K1", "03/11/2025 09:30", "P1", "2", "1.234,50", "Lamp", "Home", "DE"],
            # a zero-price line is a valid sale worth 0
            ["A1", "K1", "03/11/2025 09:30", "P2", "1", "0,00", "Gift", "Home", "DE"],
            # the exact repeat of line 2 -> duplicate_line
            ["A1", "K1", "03/11/2025 09:30", "P1", "2", "1.234,50", "Lamp", "Home", "DE"],
            # a cancellation (negative quantity) -> returns, amount -3 * 2.5 = -7.5
            ["A2", "K2", "03/11/2025 11:00", "P3", "-3", "2,50", "Cup", "Kitchen", "FR"],
            # no customer -> customer_id_missing
            ["A3", "", "03/11/2025 12:00", "P3", "1", "2,50", "Cup", "Kitchen", "FR"],
        ],
    )
    conn = duckdb.connect()
    stage(conn, source)
    assert source.transaction_days() == [date(2025, 11, 3)]
    assert rows(
        conn,
        "SELECT order_id, customer_id, order_ts, product_id, quantity, "
        "unit_price, amount, product_name, category, source_line, extra "
        "FROM staging.transactions ORDER BY source_line",
    ) == [
        (
            "A1",
            "K1",
            datetime(2025, 11, 3, 9, 30),
            "P1",
            2,
            Decimal("1234.5000"),
            Decimal("2469.0000"),
            "Lamp",
            "Home",
            2,
            '{"Land":"DE"}',
        ),
        (
            "A1",
            "K1",
            datetime(2025, 11, 3, 9, 30),
            "P2",
            1,
            Decimal("0.0000"),
            Decimal("0.0000"),
            "Gift",
            "Home",
            3,
            '{"Land":"DE"}',
        ),
    ]
    assert rows(conn, "SELECT order_id, quantity, amount FROM staging.returns") == [
        ("A2", -3, Decimal("-7.5000"))
    ]
    assert rows(conn, "SELECT source_line, rule FROM staging.quarantine ORDER BY 1") == [
        (4, "duplicate_line"),
        (6, "customer_id_missing"),
    ]
    # The raw row keeps the input's other columns; the typed values are canonical text.
    raw = json.loads(
        rows(conn, "SELECT raw_values FROM staging.quarantine WHERE source_line = 6")[0][0]
    )
    assert raw["order_ts"] == "2025-11-03 12:00:00" and raw["unit_price"] == "2.50"


def test_wrong_decimal_separator_stops_with_file_column_and_value(tmp_path: Path) -> None:
    source = mapped_source(
        tmp_path,
        [
            ["A1", "K1", "03/11/2025 09:30", "P1", "2", "4,50", "", "", "DE"],
            ["A2", "K1", "03/11/2025 09:31", "P1", "2", "3.99", "", "", "DE"],
        ],
    )
    with pytest.raises(DataContractError) as error:
        source.raw_transactions(duckdb.connect(), date(2025, 11, 3))
    message = str(error.value)
    # names the file and line, the column (input name and field), the declaration, the value
    assert "2025-11-03.csv line 3" in message
    assert "'Preis' (unit_price)" in message
    assert "decimal separator ','" in message and "'3.99'" in message
    assert "1 of 2 value(s)" in message


def test_wrong_decimal_separator_quarantined_when_asked(tmp_path: Path) -> None:
    mapping = {**BASE_MAPPING, "bad_values": "quarantine"}
    source = mapped_source(
        tmp_path,
        [
            ["A1", "K1", "03/11/2025 09:30", "P1", "2", "4,50", "", "", "DE"],
            # staging alone would read 3.99: the note makes it fail with the reason
            ["A2", "K1", "03/11/2025 09:31", "P1", "2", "3.99", "", "", "DE"],
            # not a number in any notation: passed on as found
            ["A3", "K1", "03/11/2025 09:32", "P1", "2", "N/A", "", "", "DE"],
        ],
        mapping,
    )
    conn = duckdb.connect()
    stage(conn, source)
    assert rows(conn, "SELECT order_id, unit_price FROM staging.transactions") == [
        ("A1", Decimal("4.5000"))
    ]
    assert rows(conn, "SELECT rule, detail FROM staging.quarantine ORDER BY source_line") == [
        (
            "unit_price_unparseable",
            "unit_price=3.99 [expected decimal separator ',' thousands separator '.']",
        ),
        ("unit_price_unparseable", "unit_price=N/A"),
    ]


def test_dot_decimal_data_under_a_declared_comma_is_not_misread(tmp_path: Path) -> None:
    # "1.234" under decimal ',' + thousands '.' is 1234; "1.5" fits neither and must not
    # silently become 15.
    mapping = {**BASE_MAPPING, "bad_values": "quarantine"}
    source = mapped_source(
        tmp_path,
        [
            ["A1", "K1", "03/11/2025 09:30", "P1", "1", "1.234", "", "", "DE"],
            ["A2", "K1", "03/11/2025 09:30", "P1", "1", "1.5", "", "", "DE"],
        ],
        mapping,
    )
    conn = duckdb.connect()
    stage(conn, source)
    assert rows(conn, "SELECT unit_price FROM staging.transactions") == [(Decimal("1234"),)]
    assert rows(conn, "SELECT rule FROM staging.quarantine") == [("unit_price_unparseable",)]


def test_unparseable_date_stops_or_is_quarantined(tmp_path: Path) -> None:
    lines = [
        ["A1", "K1", "03/11/2025 09:30", "P1", "1", "2,00", "", "", "DE"],
        ["A2", "K1", "2025-11-03 09:30", "P1", "1", "2,00", "", "", "DE"],  # ISO, not declared
        ["A3", "K1", "31/02/2025 09:30", "P1", "1", "2,00", "", "", "DE"],  # no such day
    ]
    strict = mapped_source(tmp_path / "strict", lines)
    with pytest.raises(DataContractError) as error:
        strict.raw_transactions(duckdb.connect(), date(2025, 11, 3))
    assert "'Zeit' (order_ts)" in str(error.value) and "'2025-11-03 09:30'" in str(error.value)
    assert "2 of 3 value(s)" in str(error.value)

    lenient = mapped_source(
        tmp_path / "lenient", lines, {**BASE_MAPPING, "bad_values": "quarantine"}
    )
    conn = duckdb.connect()
    stage(conn, lenient)
    assert rows(conn, "SELECT order_id FROM staging.transactions") == [("A1",)]
    assert rows(conn, "SELECT rule, detail FROM staging.quarantine ORDER BY source_line") == [
        (
            "order_ts_unparseable",
            "order_ts=2025-11-03 09:30 [expected timestamp_format %d/%m/%Y %H:%M]",
        ),
        ("order_ts_unparseable", "order_ts=31/02/2025 09:30"),
    ]


def test_a_declaration_that_fits_no_value_stops_even_in_quarantine_mode(tmp_path: Path) -> None:
    mapping = {**BASE_MAPPING, "bad_values": "quarantine", "decimal_separator": "."}
    mapping.pop("thousands_separator")
    source = mapped_source(
        tmp_path,
        [
            ["A1", "K1", "03/11/2025 09:30", "P1", "1", "2,50", "", "", "DE"],
            ["A2", "K1", "03/11/2025 09:30", "P2", "1", "3,75", "", "", "DE"],
        ],
        mapping,
    )
    with pytest.raises(DataContractError, match=r"none of its 2 value\(s\) match"):
        source.raw_transactions(duckdb.connect(), date(2025, 11, 3))


def test_undated_file_rows_go_to_their_own_day_and_unreadable_ones_to_the_first(
    tmp_path: Path,
) -> None:
    # Not a day file: every row goes to the day of its own timestamp; the row whose timestamp
    # cannot be read goes to the first day, where staging quarantines it.
    mapping = {**BASE_MAPPING, "bad_values": "quarantine"}
    source = mapped_source(
        tmp_path,
        [
            ["A1", "K1", "05/11/2025 09:30", "P1", "1", "2,00", "", "", "DE"],
            ["A2", "K1", "04/11/2025 10:00", "P1", "1", "2,00", "", "", "DE"],
            ["A3", "K1", "yesterday", "P1", "1", "2,00", "", "", "DE"],
        ],
        mapping,
        file_name="export.csv",
    )
    assert source.transaction_days() == [date(2025, 11, 4), date(2025, 11, 5)]
    conn = duckdb.connect()
    stage(conn, source)
    assert rows(
        conn,
        "SELECT partition_date, order_id, 'staged' FROM staging.transactions "
        "UNION ALL SELECT partition_date, json_extract_string(raw_values, "
        "'$.order_id'), rule FROM staging.quarantine ORDER BY 2",
    ) == [
        (date(2025, 11, 5), "A1", "staged"),
        (date(2025, 11, 4), "A2", "staged"),
        (date(2025, 11, 4), "A3", "order_ts_unparseable"),
    ]


def test_missing_column_stops_naming_file_and_column(tmp_path: Path) -> None:
    mapping = json.loads(json.dumps(BASE_MAPPING))
    mapping["transactions"]["columns"]["unit_price"] = "Stückpreis"
    source = mapped_source(
        tmp_path, [["A1", "K1", "03/11/2025 09:30", "P1", "1", "2,00", "", "", "DE"]], mapping
    )
    with pytest.raises(DataContractError) as error:
        source.raw_transactions(duckdb.connect(), date(2025, 11, 3))
    assert "2025-11-03.csv" in str(error.value)
    assert "'Stückpreis' for unit_price" in str(error.value)
    assert "Preis" in str(error.value)  # what the file has instead


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"colour": "red"}, "unknown key"),
        (
            {"transactions": {"columns": {"customer_id": "K", "product_id": "P"}}},
            "must name quantity",
        ),
        (
            {
                "transactions": {
                    "columns": {
                        "customer_id": "K",
                        "product_id": "P",
                        "quantity": "Q",
                        "unit_price": "U",
                        "amount": "A",
                    }
                }
            },
            "exactly one of",
        ),
        (
            {
                "transactions": {
                    "columns": {
                        "customer_id": "K",
                        "product_id": "P",
                        "quantity": "Q",
                        "price": "U",
                    }
                }
            },
            "unknown field 'price'",
        ),
        ({"decimal_separator": ";"}, "decimal_separator"),
        ({"timestamp_format": "dd.mm.yyyy"}, "not a strptime format"),
        ({"bad_values": "ignore"}, "bad_values"),
    ],
)
def test_mapping_file_errors_name_the_file(tmp_path: Path, change: dict, message: str) -> None:
    path = write_mapping(tmp_path / "m.yaml", {**BASE_MAPPING, **change})
    with pytest.raises(DataContractError, match=message) as error:
        load_mapping(path)
    assert str(path) in str(error.value)


def test_no_mapping_file_is_a_clear_error(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, tmp_path / "w.duckdb", source_format="mapped")
    with pytest.raises(DataContractError, match="--mapping"):
        open_source(settings)


def test_amount_instead_of_unit_price(tmp_path: Path) -> None:
    mapping = json.loads(json.dumps(BASE_MAPPING))
    cols = mapping["transactions"]["columns"]
    cols["amount"] = cols.pop("unit_price")
    source = mapped_source(
        tmp_path,
        [
            # 10,00 for 3 units -> unit_price round(10/3, 4) = 3.3333 (for display); the amount
            # stays the stated 10.00 (3 x 3.3333 would be 9.9999)
            ["A1", "K1", "03/11/2025 09:30", "P1", "3", "10,00", "", "", "DE"],
            # the export's case: 26,547 units for 65,01 -> unit_price 0.0024, amount 65.01
            # exactly (3 x 0.0024 x 26547 would be 63.7128)
            ["A4", "K2", "03/11/2025 10:00", "P2", "26547", "65,01", "", "", "DE"],
            # a return of 2 units worth -5,00 -> unit_price 2.5, amount -5
            ["A2", "K1", "03/11/2025 09:40", "P1", "-2", "-5,00", "", "", "DE"],
            # zero quantity: the amount is passed on; the line is quarantined for its quantity
            ["A3", "K1", "03/11/2025 09:50", "P1", "0", "5,00", "", "", "DE"],
        ],
        mapping,
    )
    conn = duckdb.connect()
    stage(conn, source)
    assert rows(conn, "SELECT unit_price, amount FROM staging.transactions ORDER BY 2") == [
        (Decimal("3.3333"), Decimal("10.0000")),
        (Decimal("0.0024"), Decimal("65.0100")),
    ]
    assert rows(conn, "SELECT unit_price, amount FROM staging.returns") == [
        (Decimal("2.5000"), Decimal("-5.0000"))
    ]
    assert rows(conn, "SELECT rule FROM staging.quarantine") == [("quantity_positive_for_sale",)]
    extra = rows(conn, "SELECT extra FROM staging.transactions ORDER BY amount")[0][0]
    assert json.loads(extra)["amount_as_found"] == "10,00"
    assert json.loads(extra)["stated_amount"] == "10.00"


def test_demographics_in_rows_and_conflicting_profiles(tmp_path: Path) -> None:
    header = ["Kunde", "Artikel", "Menge", "Betrag", "Sex", "Alter"]
    write_csv(
        tmp_path / "sales.csv",
        header,
        [
            ["K1", "P1", "1", "10", "M", "26-35"],
            ["K2", "P1", "1", "20", "F", "18-25"],
            ["K1", "P2", "1", "30", "m ", "26-35"],  # same profile after trimming / upper-casing
            ["K1", "P3", "1", "40", "F", "26-35"],  # a conflicting profile for K1 (line 5)
            ["K3", "P1", "1", "5", "Male", "55+"],  # recoded to M
        ],
    )
    path = write_mapping(
        tmp_path / "m.yaml",
        {
            "transactions": {
                "path": "sales.csv",
                "columns": {
                    "customer_id": "Kunde",
                    "product_id": "Artikel",
                    "quantity": "Menge",
                    "amount": "Betrag",
                },
                "demographics": {"gender": "Sex", "age_band": "Alter"},
            },
            "recode": {"gender": {"Male": "M"}},
        },
    )
    # No order id: each line is its own order; no timestamp: everything on the undated day.
    source = MappedSource(tmp_path, load_mapping(path), undated_day=date(2024, 11, 29))
    assert source.transaction_days() == [date(2024, 11, 29)]
    conn = duckdb.connect()
    stage(conn, source)
    assert rows(conn, "SELECT order_id, order_ts FROM staging.transactions ORDER BY 1 LIMIT 1") == [
        ("sales.csv:2", datetime(2024, 11, 29, 12, 0))
    ]
    assert rows(
        conn, "SELECT customer_id, gender, age_band, source_line FROM staging.customers ORDER BY 1"
    ) == [
        ("K1", "M", "26-35", 2),
        ("K2", "F", "18-25", 3),
        ("K3", "M", "55+", 6),
    ]
    assert rows(conn, "SELECT entity, rule, source_line FROM staging.quarantine") == [
        ("customers", "duplicate_customer_id", 5)
    ]


def test_discover_refuses_a_folder_mixing_day_files_and_others(tmp_path: Path) -> None:
    write_csv(tmp_path / "2025-11-03.csv", ["a"], [["1"]])
    write_csv(tmp_path / "notes.csv", ["a"], [["1"]])
    with pytest.raises(DataContractError, match="mixes day files"):
        discover_files(tmp_path)


@settings(max_examples=40, deadline=None)
@given(
    cents=st.integers(min_value=-(10**12), max_value=10**12),
    decimal=st.sampled_from([".", ","]),
    thousands=st.sampled_from(["", ".", ",", " ", "'"]),
    grouped=st.booleans(),
)
def test_declared_number_formats_round_trip(
    cents: int, decimal: str, thousands: str, grouped: bool
) -> None:
    """Any amount written in a declared notation is read back as exactly that amount."""
    if thousands == decimal:
        thousands = ""
    rules = ValueRules(decimal_separator=decimal, thousands_separator=thousands)
    sign = "-" if cents < 0 else ""
    whole, frac = divmod(abs(cents), 100)
    digits = f"{whole:,}".replace(",", thousands) if grouped and thousands else str(whole)
    text = f"{sign}{digits}{decimal}{frac:02d}"
    conn = duckdb.connect()
    value = conn.execute(
        f"SELECT CAST(({rules.dec_text('x')}) AS DECIMAL(18,2)) FROM (SELECT ? AS x)", [text]
    ).fetchall()[0][0]
    assert value == Decimal(cents) / 100


# --------------------------------------------------------------------------------------------
# End to end: the sample with every column renamed gives exactly the canonical tables
# --------------------------------------------------------------------------------------------

RENAMED_TRANSACTIONS = {
    "order_id": "Beleg",
    "customer_id": "Kunde",
    "order_ts": "Zeitpunkt",
    "product_id": "Artikel",
    "quantity": "Menge",
    "unit_price": "Stückpreis",
}
RENAMED_CUSTOMERS = {
    "customer_id": "Kunde",
    "gender": "Geschlecht",
    "age_band": "Altersgruppe",
    "occupation": "Beruf",
    "marital_status": "Familienstand",
    "city_category": "Stadttyp",
}
RENAMED_PRODUCTS = {
    "product_id": "Artikel",
    "product_name": "Bezeichnung",
    "category": "Warengruppe",
}


def _german_ts(value: str) -> str:
    try:
        return datetime.strptime(value, "%Y-%m-%d %H:%M:%S").strftime("%d.%m.%Y %H:%M:%S")
    except ValueError:
        return value  # a deliberately malformed timestamp stays as it is


def _german_price(value: str) -> str:
    return value.replace(".", ",")  # N/A and TBD have no dot and stay as they are


def _rewrite(src: Path, dst: Path, names: dict[str, str], convert: dict[str, Any]) -> None:
    with src.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        header = list(reader.fieldnames or [])
        out = [[convert.get(c, lambda v: v)(row[c]) for c in header] for row in reader]
    write_csv(dst, [names[c] for c in header], out, delimiter=";")


def write_renamed_sample(dst: Path, days: tuple[date, date] = WINDOW) -> Path:
    """The sample's files for `days` (plus customers and products) with every column renamed
    as in docs/examples/sample_renamed_mapping.yaml, `;`-separated, decimal commas and
    day-first timestamps."""
    for path in sorted((SAMPLE_DIR / "transactions").glob("*.csv")):
        if days[0].isoformat() <= path.stem <= days[1].isoformat():
            _rewrite(
                path,
                dst / "transactions" / path.name,
                RENAMED_TRANSACTIONS,
                {"order_ts": _german_ts, "unit_price": _german_price},
            )
    _rewrite(SAMPLE_DIR / "customers.csv", dst / "customers.csv", RENAMED_CUSTOMERS, {})
    _rewrite(SAMPLE_DIR / "products.csv", dst / "products.csv", RENAMED_PRODUCTS, {})
    return dst


def test_example_mapping_matches_the_renaming() -> None:
    mapping = load_mapping(EXAMPLE_MAPPING)
    assert mapping.transactions.columns == RENAMED_TRANSACTIONS
    assert mapping.customers is not None and mapping.customers.columns == RENAMED_CUSTOMERS
    assert mapping.products is not None and mapping.products.columns == RENAMED_PRODUCTS


@pytest.mark.e2e
def test_renamed_sample_gives_exactly_the_canonical_tables(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    canonical_db, canonical_outcome = canonical_window_db(tmp_path_factory)
    data = write_renamed_sample(tmp_path / "renamed")
    db = tmp_path / "mapped" / "segments.duckdb"
    outcome = run_window(
        settings_for(data, db, source_format="mapped", mapping_file=EXAMPLE_MAPPING)
    )
    assert_staging_checks_passed(outcome)
    assert sorted(outcome.failed_checks) == sorted(canonical_outcome.failed_checks)

    expected = warehouse_tables(canonical_db)
    got = warehouse_tables(db)
    assert sorted(got) == sorted(expected)
    assert {
        "staging.transactions",
        "staging.returns",
        "staging.quarantine",
        "staging.customers",
        "staging.products",
    } <= set(got)
    # The window really exercises every path (so "equal" is not "equal and empty").
    assert len(got["staging.returns"]) > 0
    assert set(got["staging.quarantine"]["rule"]) == {
        "unit_price_unparseable",
        "quantity_positive_for_sale",
        "unit_price_not_negative",
        "order_ts_unparseable",
        "customer_id_missing",
    }
    for name, frame in expected.items():
        pd.testing.assert_frame_equal(got[name], frame, obj=name)


def test_integral_decimal_quantities_are_integers(tmp_path: Path) -> None:
    # "2,0" under the declared decimal comma, as spreadsheets export whole counts; "1,5" is not
    # a whole count and is quarantined, never rounded.
    mapping = {**BASE_MAPPING, "bad_values": "quarantine"}
    source = mapped_source(
        tmp_path,
        [
            ["A1", "K1", "03/11/2025 09:30", "P1", "2,0", "1,50", "", "", "DE"],
            ["A2", "K1", "03/11/2025 09:30", "P2", "3", "1,00", "", "", "DE"],
            ["A3", "K1", "03/11/2025 09:30", "P3", "1,5", "1,00", "", "", "DE"],
        ],
        mapping,
    )
    conn = duckdb.connect()
    stage(conn, source)
    assert rows(conn, "SELECT order_id, quantity FROM staging.transactions ORDER BY 1") == [
        ("A1", 2),
        ("A2", 3),
    ]
    assert rows(conn, "SELECT rule FROM staging.quarantine") == [("quantity_not_integer",)]


def test_one_export_spanning_years_past_this_month_runs_once_per_window(
    tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    # One file, no day in its name, dates from 2029 into 2031 (after the current month): the
    # CLI reads the data once, the partitions follow it, and raw reads the file once.
    mapping = {**BASE_MAPPING, "transactions": {**BASE_MAPPING["transactions"], "path": "tx"}}
    day = "0{0}/0{0}/{1} 09:30"
    lines = [
        [f"A{i}", f"K{i % 3}", day.format(1 + i % 9, 2029 + i % 3), "P1", "1", "2,00", "", "", "DE"]
        for i in range(9)
    ]
    mapped_source(tmp_path, lines, mapping, file_name="export.csv")
    settings = settings_for(
        tmp_path, tmp_path / "w" / "w.duckdb", source_format="mapped",
        mapping_file=tmp_path / "mapping.yaml",
    )  # fmt: skip
    outcome = execute_pipeline(
        settings, instance=instance, selection='key:"raw/*" or key:"staging/*"', echo=False
    )
    assert outcome.success, outcome.messages
    conn = duckdb.connect(str(tmp_path / "w" / "w.duckdb"), read_only=True)
    try:
        assert rows(conn, "SELECT count(*), min(partition_date) FROM raw.transactions") == [
            (9, date(2029, 1, 1))
        ]
        assert rows(conn, "SELECT count(*) FROM staging.transactions") == [(9,)]
    finally:
        conn.close()


def test_currency_symbols_and_exponent_notation(tmp_path: Path) -> None:
    """Declared currency symbols are dropped, exponent notation is read (a spreadsheet's
    floating-point noise such as 4,440892e-16 is then too precise to stage, and says so), and
    a value that is still not a number is quarantined with its rule."""
    mapping = json.loads(json.dumps(BASE_MAPPING))
    mapping["currency_symbols"] = ["€", "EUR"]
    mapping["bad_values"] = "quarantine"  # (the default, stop, names line 6 and stops)
    source = mapped_source(
        tmp_path,
        [
            ["A1", "K1", "03/11/2025 09:30", "P1", "2", "1.234,50 €", "", "", "DE"],
            ["A2", "K1", "03/11/2025 09:31", "P1", "1", "EUR 3,5", "", "", "DE"],
            ["A3", "K1", "03/11/2025 09:32", "P1", "1", "1,5E2", "", "", "DE"],
            ["A4", "K1", "03/11/2025 09:33", "P1", "1", "4,440892e-16", "", "", "DE"],
            ["A5", "K1", "03/11/2025 09:34", "P1", "1", "$ 3,50", "", "", "DE"],
        ],
        mapping,
    )
    conn = duckdb.connect()
    stage(conn, source)
    assert rows(
        conn, "SELECT order_id, unit_price, amount FROM staging.transactions ORDER BY 1"
    ) == [
        ("A1", Decimal("1234.5000"), Decimal("2469.0000")),
        ("A2", Decimal("3.5000"), Decimal("3.5000")),
        ("A3", Decimal("150.0000"), Decimal("150.0000")),
    ]
    quarantined = rows(
        conn, "SELECT source_line, rule, detail FROM staging.quarantine ORDER BY source_line"
    )
    assert quarantined == [
        (5, "unit_price_too_precise", "unit_price=0.00000000000000044409 has more than 4 decimals"),
        (6, "unit_price_unparseable", "unit_price=$ 3,50"),  # $ was not declared
    ]


def test_currency_symbols_must_be_symbols(tmp_path: Path) -> None:
    mapping = json.loads(json.dumps(BASE_MAPPING))
    mapping["currency_symbols"] = ["1"]
    path = write_mapping(tmp_path / "m.yaml", mapping)
    with pytest.raises(DataContractError, match="currency_symbols must be a list of symbols"):
        load_mapping(path)


def test_a_household_file_keeps_its_own_bands_and_words(tmp_path: Path) -> None:
    """A source's own demographics (age bands 19-24 / 65+, marital status words) are kept as
    they are; with `demographic_values` declared, a value outside them becomes Unknown for that
    field only, with a note, and the profile is staged."""
    header = ["Kunde", "Artikel", "Menge", "Betrag", "Alter", "Stand", "Sex"]
    write_csv(
        tmp_path / "sales.csv",
        header,
        [
            ["K1", "P1", "1", "10", "19-24", "Single", "Female"],
            ["K2", "P1", "1", "20", "65+", "Married", "m"],
            ["K3", "P2", "1", "30", "25-34", "Widowed", "Male"],
            ["K4", "P2", "1", "40", "1-2", "Married", "F"],  # a typo in the band
        ],
    )
    mapping = {
        "transactions": {
            "path": "sales.csv",
            "columns": {
                "customer_id": "Kunde",
                "product_id": "Artikel",
                "quantity": "Menge",
                "amount": "Betrag",
            },
            "demographics": {"age_band": "Alter", "marital_status": "Stand", "gender": "Sex"},
        },
    }

    def staged_profiles(declared: dict | None) -> tuple[list, list]:
        doc = dict(mapping, **({"demographic_values": declared} if declared else {}))
        path = write_mapping(tmp_path / "m.yaml", doc)
        source = MappedSource(tmp_path, load_mapping(path), undated_day=date(2024, 11, 29))
        conn = duckdb.connect()
        stage(conn, source)
        profiles = rows(
            conn,
            "SELECT customer_id, age_band, marital_status, gender FROM staging.customers "
            "ORDER BY 1",
        )
        notes = rows(
            conn,
            "SELECT entity, source_line, rule FROM staging.quarantine ORDER BY source_line",
        )
        return profiles, notes

    # Nothing declared: the source's own values, all four profiles.
    assert staged_profiles(None) == (
        [
            ("K1", "19-24", "Single", "Female"),
            ("K2", "65+", "Married", "M"),
            ("K3", "25-34", "Widowed", "Male"),
            ("K4", "1-2", "Married", "F"),
        ],
        [],
    )
    # Declared bands: the typo is Unknown (noted); the other fields keep their values.
    profiles, notes = staged_profiles({"age_band": ["19-24", "25-34", "35-64", "65+"]})
    assert profiles[3] == ("K4", "Unknown", "Married", "F")
    assert [p[1] for p in profiles[:3]] == ["19-24", "65+", "25-34"]
    assert notes == [("customer_fields", 5, "age_band_not_declared")]


def test_demographic_values_must_be_lists_of_known_fields(tmp_path: Path) -> None:
    mapping = json.loads(json.dumps(BASE_MAPPING))
    mapping["demographic_values"] = {"shoe_size": ["42"]}
    path = write_mapping(tmp_path / "m.yaml", mapping)
    with pytest.raises(DataContractError, match="demographic_values"):
        load_mapping(path)
