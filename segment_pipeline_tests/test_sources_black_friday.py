"""The Black Friday source: undated lines on one configured day, each line its own order,
customers (and conflicting profiles) from the same rows; the real 5,000-line sample end to
end."""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from segment_pipeline.runner import execute_pipeline
from segment_pipeline.sources import DataContractError, open_source
from segment_pipeline.sources.black_friday import (
    BlackFridayOptions,
    BlackFridaySource,
    load_options,
)
from segment_pipeline_tests.conftest import settings_for
from segment_pipeline_tests.test_sources_mapped import rows, stage, write_csv

HEADER = [
    "User_ID",
    "Product_ID",
    "Gender",
    "Age",
    "Occupation",
    "City_Category",
    "Stay_In_Current_City_Years",
    "Marital_Status",
    "Product_Category_1",
    "Product_Category_2",
    "Product_Category_3",
    "Purchase",
]
DAY = date(2024, 11, 29)


def bf_file(tmp_path: Path, lines: list[list[str]]) -> Path:
    return write_csv(tmp_path / "bf.csv", HEADER, lines)


def test_black_friday_rules_on_hand_made_rows(tmp_path: Path) -> None:
    path = bf_file(
        tmp_path,
        [
            # line 2: the first line of user 1 (profile F, 0-17, 10, A, 0)
            ["1000001", "P00069042", "F", "0-17", "10", "A", "2", "0", "3", "", "", "8370"],
            # line 3: same user, same profile
            ["1000001", "P00248942", "F", "0-17", "10", "A", "2", "0", "1", "6", "14", "15200"],
            # line 4: same user and product again: its own order, so not a duplicate line
            ["1000001", "P00248942", "F", "0-17", "10", "A", "2", "0", "1", "6", "14", "15200"],
            # line 5: user 1 again with a different age: a conflicting profile
            ["1000001", "P00087842", "F", "18-25", "10", "A", "2", "0", "12", "", "", "1422"],
            # line 6: another user; zero purchase is a (worthless) sale
            ["1000002", "P00285442", "M", "55+", "16", "C", "4+", "0", "8", "", "", "0"],
            # line 7: no user -> customer_id_missing
            ["", "P00285442", "M", "55+", "16", "C", "4+", "0", "8", "", "", "7969"],
            # line 8: a purchase with a decimal comma is not a number -> unit_price_unparseable
            ["1000003", "P00193542", "M", "26-35", "15", "A", "3", "0", "1", "2", "", "15227,5"],
            # line 9: a purchase that is not a number at all
            ["1000003", "P00184942", "M", "26-35", "15", "A", "3", "0", "1", "8", "17", "n/a"],
        ],
    )
    source = BlackFridaySource(path, undated_day=DAY)
    assert source.transaction_days() == [DAY]
    conn = duckdb.connect()
    stage(conn, source)
    assert rows(
        conn,
        "SELECT order_id, customer_id, order_ts, product_id, quantity, "
        "unit_price, amount, category FROM staging.transactions "
        "ORDER BY source_line",
    ) == [
        (
            "BF-2",
            "1000001",
            datetime(2024, 11, 29, 12),
            "P00069042",
            1,
            Decimal("8370"),
            Decimal("8370"),
            "3",
        ),
        (
            "BF-3",
            "1000001",
            datetime(2024, 11, 29, 12),
            "P00248942",
            1,
            Decimal("15200"),
            Decimal("15200"),
            "1",
        ),
        (
            "BF-4",
            "1000001",
            datetime(2024, 11, 29, 12),
            "P00248942",
            1,
            Decimal("15200"),
            Decimal("15200"),
            "1",
        ),
        (
            "BF-5",
            "1000001",
            datetime(2024, 11, 29, 12),
            "P00087842",
            1,
            Decimal("1422"),
            Decimal("1422"),
            "12",
        ),
        (
            "BF-6",
            "1000002",
            datetime(2024, 11, 29, 12),
            "P00285442",
            1,
            Decimal("0"),
            Decimal("0"),
            "8",
        ),
    ]
    extra = json.loads(
        rows(conn, "SELECT extra FROM staging.transactions WHERE order_id = 'BF-3'")[0][0]
    )
    assert extra == {
        "Stay_In_Current_City_Years": "2",
        "Product_Category_2": "6",
        "Product_Category_3": "14",
    }
    assert rows(
        conn,
        "SELECT entity, source_line, rule, detail FROM staging.quarantine "
        "ORDER BY entity, source_line",
    ) == [
        ("customers", 5, "duplicate_customer_id", "an earlier row has this customer_id"),
        ("transactions", 7, "customer_id_missing", ""),
        ("transactions", 8, "unit_price_unparseable", "unit_price=15227,5"),
        ("transactions", 9, "unit_price_unparseable", "unit_price=n/a"),
    ]
    # One profile per user; the first profile wins.
    assert rows(
        conn,
        "SELECT customer_id, gender, age_band, occupation, city_category, "
        "marital_status FROM staging.customers ORDER BY 1",
    ) == [
        ("1000001", "F", "0-17", "10", "A", "0"),
        ("1000002", "M", "55+", "16", "C", "0"),
        ("1000003", "M", "26-35", "15", "A", "0"),
    ]


def test_orders_per_customer_and_order_time_options(tmp_path: Path) -> None:
    path = bf_file(
        tmp_path,
        [
            ["1000001", "P1", "F", "0-17", "10", "A", "2", "0", "3", "", "", "100"],
            ["1000001", "P2", "F", "0-17", "10", "A", "2", "0", "3", "", "", "50"],
        ],
    )
    options_file = tmp_path / "bf.yaml"
    options_file.write_text("orders: per_customer\norder_time: '09:30:00'\n")
    settings = settings_for(
        path,
        tmp_path / "w.duckdb",
        source_format="black_friday",
        mapping_file=options_file,
        undated_day=date(2019, 11, 29),
    )
    source = open_source(settings)
    assert isinstance(source, BlackFridaySource)
    assert source.options == BlackFridayOptions("per_customer", "09:30:00")
    conn = duckdb.connect()
    stage(conn, source)
    assert rows(conn, "SELECT DISTINCT order_id, order_ts FROM staging.transactions") == [
        ("BF-1000001", datetime(2019, 11, 29, 9, 30))
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("orders: weekly\n", "orders must be one of"),
        ("order_time: noon\n", "HH:MM:SS"),
        ("colour: red\n", "accepts only"),
    ],
)
def test_bad_options_are_named(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "o.yaml"
    path.write_text(text)
    with pytest.raises(DataContractError, match=message):
        load_options(path)


def test_missing_column_and_ambiguous_folder(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "one" / "bf.csv", ["User_ID", "Product_ID", "Purchase"], [["1", "P1", "10"]]
    )
    with pytest.raises(DataContractError, match="Product_Category_1") as error:
        BlackFridaySource(path, undated_day=DAY).raw_transactions(duckdb.connect(), DAY)
    assert "bf.csv" in str(error.value)
    write_csv(tmp_path / "one" / "other.csv", ["a"], [["1"]])
    with pytest.raises(DataContractError, match=r"reads one \.csv"):
        BlackFridaySource(tmp_path / "one", undated_day=DAY).transaction_days()


@pytest.mark.e2e
def test_real_black_friday_sample_end_to_end(shared_data_dir: Path, tmp_path: Path) -> None:
    data = shared_data_dir / "black_friday_first5000.csv"
    settings = settings_for(data, tmp_path / "segments.duckdb", source_format="black_friday")
    with dg.instance_for_test() as instance:
        outcome = execute_pipeline(settings, instance=instance, echo=False)
    assert not outcome.messages, outcome.messages
    assert not [c for c in outcome.failed_checks if c.startswith("staging/")]
    with duckdb.connect(str(settings.db_path), read_only=True) as conn:
        # Independent counts over the file itself.
        users, lines = rows(
            conn,
            "SELECT count(DISTINCT User_ID), count(*) FROM read_csv(?, all_varchar = true)",
            [str(data)],
        )[0]
        assert (users, lines) == (726, 5000)
        assert rows(conn, "SELECT count(*) FROM raw.transactions")[0][0] == lines
        # Every line is a clean sale in this sample, each its own order, all on one day.
        assert rows(
            conn,
            "SELECT count(*), count(DISTINCT order_id), "
            "count(DISTINCT partition_date), min(order_ts), max(order_ts) "
            "FROM staging.transactions",
        )[0] == (lines, lines, 1, datetime(2024, 11, 29, 12), datetime(2024, 11, 29, 12))
        assert rows(conn, "SELECT count(*) FROM staging.quarantine")[0][0] == 0
        assert rows(conn, "SELECT count(*) FROM staging.returns")[0][0] == 0
        # Revenue is the sum of Purchase; every customer has a profile.
        total = rows(
            conn,
            "SELECT sum(CAST(Purchase AS BIGINT)) FROM read_csv(?, all_varchar = true)",
            [str(data)],
        )[0][0]
        assert rows(conn, "SELECT sum(amount) FROM staging.transactions")[0][0] == total
        assert rows(conn, "SELECT count(*) FROM staging.customers")[0][0] == users
        assert (
            rows(
                conn,
                "SELECT count(*) FROM staging.sales_lines "
                "WHERE gender = 'Unknown' OR age_band = 'Unknown'",
            )[0][0]
            == 0
        )
        # Price clusters (issue 11 item 8): the Purchase histogram has several price levels
        # (on these 5,000 lines: groups below 4,000, at 5,000-9,000, 11,000-13,000 and
        # 15,000-20,000). The mixture must find several clusters, one in each of those
        # groups, with the cheap and the expensive levels apart, and count every line exactly
        # once. (The 5,000-9,000 block alone holds about 57 % of the lines.)
        clusters = rows(
            conn,
            "SELECT value, lower, upper, lines, share FROM marts.purchase_distribution "
            "WHERE measure = 'cluster' ORDER BY log1p_value",
        )
        assert 1 < len(clusters) <= 6
        assert sum(c[3] for c in clusters) == lines
        assert sum(c[4] for c in clusters) == pytest.approx(1)
        centres = [c[0] for c in clusters]
        for low, high in ((0, 4_000), (5_000, 9_000), (10_000, 13_000), (15_000, 20_000)):
            assert any(low <= centre < high for centre in centres), (low, high, centres)
        assert [c[0] for c in clusters] == sorted(c[0] for c in clusters)
        assert min(c[0] for c in clusters) < 4_000 and max(c[0] for c in clusters) > 15_000
        assert all(lo < value < hi for value, lo, hi, _, _ in clusters)
