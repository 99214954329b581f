"""The UCI Online Retail source: its rules on hand-made rows, and the real month of December
2010 end to end (row conservation, and every quarantined row explained by an independent count
over the raw files)."""

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
from segment_pipeline.sources.online_retail import (
    CATEGORY_RULES,
    NON_PRODUCT_CODES,
    OnlineRetailSource,
    category_case,
)
from segment_pipeline_tests.conftest import settings_for
from segment_pipeline_tests.test_sources_mapped import rows, stage, write_csv

HEADER = [
    "InvoiceNo",
    "StockCode",
    "Description",
    "Quantity",
    "InvoiceDate",
    "UnitPrice",
    "CustomerID",
    "Country",
]
DAY = date(2010, 12, 1)


def day_source(
    tmp_path: Path, lines: list[list[str]], header: list[str] = HEADER, name: str = "2010-12-01.csv"
) -> OnlineRetailSource:
    write_csv(tmp_path / "or" / name, header, lines)
    return OnlineRetailSource(tmp_path / "or")


def test_online_retail_rules_on_hand_made_rows(tmp_path: Path) -> None:
    t = "2010-12-01 08:26:00"
    source = day_source(
        tmp_path,
        [
            # line 2: a sale; CustomerID's spreadsheet ".0" is dropped; 6 x 2.55 = 15.30
            [
                "536365",
                "85123A",
                "WHITE HANGING HEART T-LIGHT HOLDER",
                "6",
                t,
                "2.55",
                "17850.0",
                "United Kingdom",
            ],
            # line 3: zero price with a customer: a sale worth 0
            [
                "536365",
                "22139",
                "RETROSPOT TEA SET CERAMIC",
                "1",
                t,
                "0.0",
                "17850.0",
                "United Kingdom",
            ],
            # line 4: the exact repeat of line 2 -> duplicate_line
            [
                "536365",
                "85123A",
                "WHITE HANGING HEART T-LIGHT HOLDER",
                "6",
                t,
                "2.55",
                "17850.0",
                "United Kingdom",
            ],
            # line 5: a cancellation -> returns; -2 x 4.25 = -8.50
            [
                "C536379",
                "22617",
                "BAKING SET SPACEBOY DESIGN",
                "-2",
                t,
                "4.25",
                "14527.0",
                "United Kingdom",
            ],
            # line 6: a cancellation with a positive quantity: the "C" wins -> returns, -1 x 3
            [
                "C536380",
                "21232",
                "STRAWBERRY CERAMIC TRINKET BOX",
                "1",
                t,
                "3.00",
                "14527.0",
                "United Kingdom",
            ],
            # line 7: no CustomerID -> customer_id_missing
            ["536414", "22139", "", "56", t, "0.0", "", "United Kingdom"],
            # line 8: postage is not a product -> quarantined as non_product_line (adapter rule)
            ["536370", "POST", "POSTAGE", "3", t, "18.0", "12583.0", "France"],
            # line 9: a date in no known layout -> order_ts_unparseable
            [
                "536371",
                "22086",
                "PAPER CHAIN KIT 50'S CHRISTMAS",
                "80",
                "31/12/2010 25:00",
                "2.55",
                "13748.0",
                "United Kingdom",
            ],
            # line 10: the original export's US layout is read (1 Dec 2010 09:15)
            [
                "536372",
                "22632",
                "HAND WARMER RED POLKA DOT",
                "6",
                "12/1/2010 9:15",
                "1.85",
                "17850.0",
                "United Kingdom",
            ],
            # line 11: a decimal comma is not the format's -> unit_price_unparseable
            [
                "536373",
                "21730",
                "GLASS STAR FROSTED T-LIGHT HOLDER",
                "6",
                t,
                "4,25",
                "17850.0",
                "United Kingdom",
            ],
        ],
    )
    conn = duckdb.connect()
    stage(conn, source)
    assert rows(
        conn,
        "SELECT source_line, order_id, customer_id, order_ts, product_id, "
        "quantity, unit_price, amount, category FROM staging.transactions "
        "ORDER BY source_line",
    ) == [
        (
            2,
            "536365",
            "17850",
            datetime(2010, 12, 1, 8, 26),
            "85123A",
            6,
            Decimal("2.55"),
            Decimal("15.30"),
            "Candles & Lighting",
        ),
        (
            3,
            "536365",
            "17850",
            datetime(2010, 12, 1, 8, 26),
            "22139",
            1,
            Decimal("0"),
            Decimal("0"),
            "Kitchen & Dining",
        ),
        (
            10,
            "536372",
            "17850",
            datetime(2010, 12, 1, 9, 15),
            "22632",
            6,
            Decimal("1.85"),
            Decimal("11.10"),
            "Home Comfort",
        ),
    ]
    assert rows(
        conn,
        "SELECT source_line, order_id, quantity, amount FROM staging.returns ORDER BY source_line",
    ) == [
        (5, "C536379", -2, Decimal("-8.50")),
        (6, "C536380", -1, Decimal("-3.00")),
    ]
    flipped = json.loads(
        rows(conn, "SELECT extra FROM staging.returns WHERE source_line = 6")[0][0]
    )
    assert flipped == {"Country": "United Kingdom", "quantity_as_found": "1"}
    assert rows(
        conn, "SELECT source_line, rule, detail FROM staging.quarantine ORDER BY source_line"
    ) == [
        (4, "duplicate_line", "repeats an earlier line of order 536365"),
        (7, "customer_id_missing", ""),
        (8, "non_product_line", "StockCode=POST (postage)"),
        (9, "order_ts_unparseable", "order_ts=31/12/2010 25:00"),
        (11, "unit_price_unparseable", "unit_price=4,25"),
    ]
    postage = json.loads(
        json.loads(
            rows(conn, "SELECT raw_values FROM staging.quarantine WHERE source_line = 8")[0][0]
        )["extra"]
    )
    assert postage == {
        "Country": "France",
        "adapter_rule": "non_product_line",
        "adapter_detail": "StockCode=POST (postage)",
        "non_product": "postage",
        "StockCode": "POST",
    }


def test_online_retail_ii_column_names_and_a_multi_day_file(tmp_path: Path) -> None:
    header = [
        "Invoice",
        "StockCode",
        "Description",
        "Quantity",
        "InvoiceDate",
        "Price",
        "Customer ID",
        "Country",
    ]
    source = day_source(
        tmp_path,
        [
            [
                "489434",
                "85048",
                "15CM CHRISTMAS GLASS BALL 20 LIGHTS",
                "12",
                "12/2/2009 7:45",
                "6.95",
                "13085.0",
                "United Kingdom",
            ],
            [
                "489435",
                "22350",
                "CAT BOWL",
                "12",
                "12/1/2009 7:46",
                "2.55",
                "13085.0",
                "United Kingdom",
            ],
            ["489436", "22350", "CAT BOWL", "12", "sometime", "2.55", "13085.0", "United Kingdom"],
        ],
        header=header,
        name="online_retail_II.csv",
    )
    # Not a day file: days come from InvoiceDate; the unreadable one joins the first day.
    assert source.transaction_days() == [date(2009, 12, 1), date(2009, 12, 2)]
    conn = duckdb.connect()
    stage(conn, source)
    assert rows(
        conn, "SELECT partition_date, order_id, category FROM staging.transactions ORDER BY 1"
    ) == [
        (date(2009, 12, 1), "489435", "Kitchen & Dining"),
        (date(2009, 12, 2), "489434", "Christmas"),
    ]
    assert rows(conn, "SELECT partition_date, rule FROM staging.quarantine") == [
        (date(2009, 12, 1), "order_ts_unparseable")
    ]


def test_missing_column_is_named(tmp_path: Path) -> None:
    source = day_source(
        tmp_path,
        [["536365", "85123A", "6", "2010-12-01 08:26:00", "2.55"]],
        header=["InvoiceNo", "StockCode", "Quantity", "InvoiceDate", "UnitPrice"],
    )
    with pytest.raises(DataContractError, match="CustomerID or Customer ID") as error:
        source.raw_transactions(duckdb.connect(), DAY)
    assert "2010-12-01.csv" in str(error.value)


@pytest.mark.parametrize(
    ("description", "category"),
    [
        ("WHITE HANGING HEART T-LIGHT HOLDER", "Candles & Lighting"),
        ("CHRISTMAS TREE T-LIGHT HOLDER", "Christmas"),  # the theme comes first
        ("JUMBO BAG RED RETROSPOT", "Bags"),
        ("LUNCH BOX I LOVE LONDON", "Kitchen & Dining"),  # the phrase before BOX
        ("SCOTTIE DOG HOT WATER BOTTLE", "Home Comfort"),
        ("CARDHOLDER GINGHAM", "Unknown"),  # CARD only as a whole word
        ("", "Unknown"),
        (None, "Unknown"),
    ],
)
def test_category_keywords(description: str | None, category: str) -> None:
    got = (
        duckdb.connect()
        .execute(
            f"SELECT {category_case('d')} FROM (SELECT CAST(? AS VARCHAR) AS d)", [description]
        )
        .fetchall()[0][0]
    )
    assert got == category


def test_rule_tables_are_well_formed() -> None:
    names = [name for name, _ in CATEGORY_RULES]
    assert len(names) == len(set(names)) and "Unknown" not in names
    assert all(code == code.upper() for code in NON_PRODUCT_CODES)


@pytest.mark.e2e
def test_real_online_retail_month_end_to_end(shared_data_dir: Path, tmp_path: Path) -> None:
    data = shared_data_dir / "online_retail_2010_12"
    settings = settings_for(data, tmp_path / "segments.duckdb", source_format="online_retail")
    with dg.instance_for_test() as instance:
        outcome = execute_pipeline(settings, instance=instance, echo=False)
        warnings = {
            e.dagster_event.event_specific_data.check_name: e.dagster_event.event_specific_data
            for run_id in outcome.run_ids
            for e in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
            if not e.dagster_event.event_specific_data.passed
        }
    assert not outcome.messages, outcome.messages
    assert not [c for c in outcome.failed_checks if c.startswith("staging/")]

    with duckdb.connect(str(settings.db_path), read_only=True) as conn:
        # Conservation per day, from the tables themselves.
        assert (
            rows(
                conn,
                """
            WITH r AS (SELECT partition_date d, count(*) n FROM raw.transactions GROUP BY 1),
                 p AS (SELECT partition_date d, count(*) n FROM (
                        SELECT partition_date FROM staging.transactions UNION ALL
                        SELECT partition_date FROM staging.returns UNION ALL
                        SELECT partition_date FROM staging.quarantine
                        WHERE entity = 'transactions') GROUP BY 1)
            SELECT d, r.n, p.n FROM r FULL JOIN p USING (d) WHERE r.n IS DISTINCT FROM p.n
        """,
            )
            == []
        )
        # Every raw line of every file was loaded.
        files = sorted(data.glob("*.csv"))
        loaded = rows(conn, "SELECT count(*) FROM raw.transactions")[0][0]
        in_files = rows(
            conn, "SELECT count(*) FROM read_csv(?, all_varchar = true)", [[str(f) for f in files]]
        )[0][0]
        assert loaded == in_files == 42481

        # Every row explained: an independent classification of the raw files' lines by
        # each rule's condition, in staging's rule order (the first broken rule wins).
        explained = dict(
            rows(
                conn,
                """
            WITH f AS (SELECT *, upper(trim(StockCode)) AS code
                       FROM read_csv(?, all_varchar = true, filename = true)),
            c AS (SELECT *,
                CASE WHEN CustomerID IS NULL THEN 'customer_id_missing'
                     WHEN code IN ('POST', 'DOT', 'C2', 'M', 'D', 'S', 'B', 'ADJUST',
                                   'ADJUST2', 'BANK CHARGES', 'AMAZONFEE', 'CRUK', 'PADS',
                                   'TEST001', 'TEST002') OR code LIKE 'GIFT_0001%'
                          THEN 'non_product_line'
                     WHEN row_number() OVER (PARTITION BY InvoiceNo, CustomerID, InvoiceDate,
                          StockCode, Quantity, CAST(UnitPrice AS DECIMAL(18,4))
                          ORDER BY filename) > 1 THEN 'duplicate_line'
                     WHEN InvoiceNo LIKE 'C%' OR CAST(Quantity AS BIGINT) < 0 THEN 'return'
                     ELSE 'sale'
                END AS place
                FROM f)
            SELECT place, count(*) FROM c GROUP BY place
        """,
                [[str(f) for f in files]],
            )
        )
        placed = dict(
            rows(
                conn,
                """
            SELECT rule, count(*) FROM staging.quarantine WHERE entity = 'transactions'
            GROUP BY rule
            UNION ALL SELECT 'return', count(*) FROM staging.returns
            UNION ALL SELECT 'sale', count(*) FROM staging.transactions
        """,
            )
        )
        assert placed == explained
        assert placed["customer_id_missing"] == 15631  # lines without a CustomerID
        assert placed["return"] > 0 and placed["non_product_line"] > 0
        # Non-product lines carry their reason with them.
        assert (
            rows(
                conn,
                """
            SELECT count(*) FROM staging.quarantine WHERE rule = 'non_product_line'
              AND json_extract_string(json_extract_string(raw_values, '$.extra'),
                                      '$.adapter_rule') IS DISTINCT FROM 'non_product_line'
        """,
            )[0][0]
            == 0
        )
        # The derived categories reach the analysis view; Unknown is a minority.
        unknown_share = rows(
            conn,
            "SELECT avg(CASE WHEN category = 'Unknown' THEN 1 ELSE 0 END) FROM staging.sales_lines",
        )[0][0]
        assert unknown_share < 0.15

        # Identity: the adapter folds stock codes to upper case (the export writes 84997d and
        # 84997D for one cutlery set) and every invoice has one customer: no identity warning.
        assert "ids_distinct_ignoring_case" not in warnings
        assert "order_id_single_customer" not in warnings  # every invoice has one customer


def test_online_retail_is_registered(tmp_path: Path) -> None:
    write_csv(tmp_path / "2010-12-01.csv", HEADER, [])
    settings = settings_for(tmp_path, tmp_path / "w.duckdb", source_format="online_retail")
    source = open_source(settings)
    assert isinstance(source, OnlineRetailSource)
    assert source.transaction_days() == [DAY]
