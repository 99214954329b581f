"""Customer dynamics (issue 12): monthly snapshots, transitions, last moves and experiment
sizing on a hand-built history with hand-computed expectations, the as-of property, a sample
size against a published value, a conservation property, the figures on one and on several
months, and one end-to-end run through the CLI's runner."""

from __future__ import annotations

import math
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from segment_pipeline.assets import dynamics as dyn_assets
from segment_pipeline.assets.ingest import STAGED_KEY
from segment_pipeline.figures import render_png
from segment_pipeline.logic import dynamics as dyn
from segment_pipeline.logic import dynamics_figures as figs
from segment_pipeline.logic.behaviour import (
    CUSTOMER_BEHAVIOUR_SQL,
    assign_occupation_groups,
    assign_price_segments,
    build_category_price_segments,
    build_occupation_groups,
)
from segment_pipeline.logic.memory import scratch_database
from segment_pipeline.logic.report import DynamicsInputs, _dynamics_section
from segment_pipeline.logic.rfm import (
    RFM_CUSTOMER_SEGMENTS_SQL,
    SEGMENT_NAMES,
    load_segment_map,
    resolve_window,
    rfm_params,
)
from segment_pipeline.logic.strategy import load_rule_table
from segment_pipeline.tables import ensure_table
from segment_pipeline_tests.buckets import forced_customer_buckets
from segment_pipeline_tests.conftest import settings_for

SEGMENT_MAP = load_segment_map()
JAN, FEB, MAR = date(2025, 1, 1), date(2025, 2, 1), date(2025, 3, 1)
LAPSE_DAYS = 30

# --------------------------------------------------------------------------------------------
# The hand-built history: five customers over three months, three categories whose medians
# (10, 50, 300) split into the three price tiers. Every RFM value, score and segment below is
# computed by hand in the comments (n customers; score = 1 + floor(5 (rank_min - 1) / n)).
# --------------------------------------------------------------------------------------------

#: (customer, order, day, category, amount)
HISTORY = [
    ("A", "a1", "2025-01-05", "Cheap", 10),
    ("A", "a2", "2025-02-10", "Cheap", 10),
    ("A", "a3", "2025-03-20", "Lux", 300),
    ("B", "b1", "2025-01-20", "Lux", 300),
    ("B", "b2", "2025-02-25", "Lux", 300),
    ("C", "c1", "2025-01-31", "Mid", 50),
    ("D", "d1", "2025-02-03", "Cheap", 10),
    ("D", "d2", "2025-03-30", "Mid", 50),
    ("D", "d3", "2025-03-30", "Mid", 50),  # a second order on the same day
    ("E", "e1", "2025-03-15", "Mid", 50),
]


def _warehouse(rows=HISTORY, path: str = ":memory:") -> duckdb.DuckDBPyConnection:
    """A warehouse holding the sale lines (staging.transactions and the views
    staging.sales_lines and staging.product_lines over it: what the snapshots read)."""
    conn = duckdb.connect(path)
    conn.execute("CREATE SCHEMA IF NOT EXISTS staging")
    conn.execute(
        "CREATE TABLE staging.transactions (customer_id VARCHAR, order_id VARCHAR, "
        "order_ts TIMESTAMP, category VARCHAR, amount DECIMAL(18,4), age_band VARCHAR, "
        "gender VARCHAR, occupation VARCHAR)"
    )
    conn.execute("CREATE VIEW staging.sales_lines AS SELECT * FROM staging.transactions")
    conn.execute("CREATE VIEW staging.product_lines AS SELECT * FROM staging.transactions")
    conn.executemany(
        "INSERT INTO staging.transactions VALUES (?, ?, ?, ?, ?, '26-35', 'M', '7')",
        [(c, o, f"{d} 12:00:00", cat, a) for c, o, d, cat, a in rows],
    )
    return conn


def _snapshots(conn: duckdb.DuckDBPyConnection, months=(JAN, FEB, MAR)) -> list:
    done = dyn.compute_snapshots(
        conn,
        list(months),
        segment_map=SEGMENT_MAP,
        window_settings=dyn.WindowSettings(),
        min_customers_per_occupation=1,
    )
    dyn.write_snapshots(conn, months[0], months[-1])
    return done


def _month(conn: duckdb.DuckDBPyConnection, month: date) -> pd.DataFrame:
    return (
        conn.execute(
            "SELECT * FROM marts.customer_snapshots WHERE snapshot_month = ? ORDER BY customer_id",
            [month],
        )
        .df()
        .set_index("customer_id")
    )


COLUMNS = ["recency_days", "frequency", "monetary", "r_score", "f_score", "m_score", "segment"]

#: Jan (as_of Feb 1): recency A 27, B 12, C 1 -> R ranks 1, 2, 3 -> scores 1, 2, 4 (n = 3);
#: one order each -> F 1; spend 10, 300, 50 -> M ranks 1, 3, 2 -> scores 1, 4, 2.
EXPECTED_JAN = {
    "A": (27, 1, 10, 1, 1, 1, "Hibernating", "Price_Low", 10, 1),
    "B": (12, 1, 300, 2, 1, 4, "Hibernating", "Price_High", 300, 1),
    "C": (1, 1, 50, 4, 1, 2, "Promising", "Price_Mid", 50, 1),
}
#: Feb (as_of Mar 1, n = 4): recency C 29, D 26, A 19, B 4 -> R 1, 2, 3, 4; orders C 1, D 1,
#: A 2, B 2 -> F ranks 1, 1, 3, 3 -> 1, 1, 3, 3; spend D 10, A 20, C 50, B 600 -> M 1, 2, 3, 4.
EXPECTED_FEB = {
    "A": (19, 2, 20, 3, 3, 2, "Need Attention", "Price_Low", 10, 1),
    "B": (4, 2, 600, 4, 3, 4, "Potential Loyalists", "Price_High", 300, 1),
    "C": (29, 1, 50, 1, 1, 3, "Hibernating", "Price_Mid", 0, 0),
    "D": (26, 1, 10, 2, 1, 1, "Hibernating", "Price_Low", 10, 1),
}
#: Mar (as_of Apr 1, n = 5: score = rank): recency C 60, B 35, E 17, A 12, D 2; orders C 1,
#: E 1, B 2, A 3, D 3 -> F 1, 1, 3, 4, 4; spend C 50, E 50, D 110, A 320, B 600 -> M 1, 1, 3,
#: 4, 5. A's tier: 20 Cheap vs 300 Lux -> High; D's: 10 Cheap vs 100 Mid -> Mid. The data
#: ends on Mar 30: the as_of of a month is the day after it even while it runs.
EXPECTED_MAR = {
    "A": (12, 3, 320, 4, 4, 4, "Loyal Customers", "Price_High", 300, 1),
    "B": (35, 2, 600, 2, 3, 5, "At Risk", "Price_High", 0, 0),
    "C": (60, 1, 50, 1, 1, 1, "Hibernating", "Price_Mid", 0, 0),
    "D": (2, 3, 110, 5, 4, 3, "Champions", "Price_Mid", 100, 2),
    "E": (17, 1, 50, 3, 1, 1, "About To Sleep", "Price_Mid", 50, 1),
}


@pytest.mark.parametrize(
    ("month", "expected"), [(JAN, EXPECTED_JAN), (FEB, EXPECTED_FEB), (MAR, EXPECTED_MAR)]
)
def test_snapshots_hand_computed(month: date, expected: dict) -> None:
    conn = _warehouse()
    _snapshots(conn)
    got = _month(conn, month)
    assert sorted(got.index) == sorted(expected)
    for customer, values in expected.items():
        row = got.loc[customer]
        actual = (
            *(row[c] for c in COLUMNS),
            row["price_segment"],
            row["month_revenue"],
            row["month_orders"],
        )
        assert tuple(float(v) if not isinstance(v, str) else v for v in actual) == tuple(
            float(v) if not isinstance(v, str) else v for v in values
        ), customer
    assert (got["as_of"] == pd.Timestamp(dyn.month_end(month) + timedelta(days=1))).all()
    assert (got["window_start"] == pd.Timestamp("2025-01-05")).all()
    assert (got["behavioural_segment"] == "26-35 | M | Occ_Low | " + got["price_segment"]).all()


def test_snapshot_as_of_rules() -> None:
    # the day after the month, also while it runs (recency then counts to its end)
    assert dyn.snapshot_as_of(FEB, date(2025, 3, 30)) == MAR
    assert dyn.snapshot_as_of(MAR, date(2025, 3, 14)) == date(2025, 4, 1)
    assert dyn.snapshot_as_of(MAR, date(2025, 2, 27)) is None  # nothing in or after March
    assert dyn.months_between(date(2024, 11, 15), date(2025, 2, 1)) == [
        date(2024, 11, 1),
        date(2024, 12, 1),
        date(2025, 1, 1),
        date(2025, 2, 1),
    ]


def test_a_month_before_the_data_has_no_snapshot_and_a_rerun_is_idempotent() -> None:
    conn = _warehouse()
    done = _snapshots(conn, (date(2024, 12, 1), JAN, FEB, MAR))
    assert [m.customers for m in done] == [0, 3, 4, 5]
    first = conn.execute("SELECT * FROM marts.customer_snapshots ORDER BY ALL").fetchall()
    _snapshots(conn, (FEB,))  # re-running one month replaces exactly that month
    assert conn.execute("SELECT * FROM marts.customer_snapshots ORDER BY ALL").fetchall() == first


def test_past_snapshot_does_not_change_when_later_data_arrives() -> None:
    """February computed when February was the last month equals February computed after
    March arrived (the as_of of a finished month is the day after it, its lines end there)."""
    early = _warehouse([r for r in HISTORY if r[2] < "2025-03-01"])
    _snapshots(early, (FEB,))
    late = _warehouse()
    _snapshots(late, (FEB,))
    assert _month(early, FEB).equals(_month(late, FEB))


def test_snapshot_equals_the_layers_computation_on_the_truncated_history() -> None:
    """The as-of recomputation: delete every line after February, run the RFM and behaviour
    layers' own "now" computation (default window, marts lookups), and compare with the
    February snapshot taken on the full history."""
    full = _warehouse()
    _snapshots(full, (FEB,))
    snapshot = _month(full, FEB)
    cut = _warehouse([r for r in HISTORY if r[2] < "2025-03-01"])
    window = resolve_window(cut, as_of=MAR)  # the RFM asset with rfm_settings.as_of = Mar 1
    rfm = cut.execute(RFM_CUSTOMER_SEGMENTS_SQL, rfm_params(window, SEGMENT_MAP)).df()
    cut.execute("CREATE SCHEMA marts")
    cut.register("occ", build_occupation_groups(cut, 1))
    cut.execute("CREATE TABLE marts.occupation_groups AS SELECT * FROM occ")
    cut.register("cat", build_category_price_segments(cut))
    cut.execute("CREATE TABLE marts.category_price_segments AS SELECT * FROM cat")
    behaviour = cut.execute(CUSTOMER_BEHAVIOUR_SQL).df().set_index("customer_id")
    rfm = rfm.set_index("customer_id")
    for column in rfm.columns:
        assert snapshot[column].tolist() == rfm[column].tolist(), column
    for column in ("occupation_group", "price_segment"):
        assert snapshot[column].tolist() == behaviour[column].tolist(), column


_history_lines = st.lists(
    st.tuples(
        st.sampled_from("ABCDEFG"),  # customer
        st.integers(0, 5),  # order number (an order's lines may fall on different days)
        st.integers(0, 119),  # day from Jan 1 (four months)
        st.sampled_from(["Cheap", "Mid", "Lux", "Unknown"]),
        st.integers(1, 400),  # amount
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example(  # lines on months' last days: each counts in one month's running sums, then on
    lines=[("A", 0, 30, "Cheap", 10), ("A", 1, 58, "Lux", 300), ("B", 2, 58, "Mid", 50)],
    window=dyn.WindowSettings(),
    minimum=1,
    batch_rows=dyn.SNAPSHOT_BATCH_ROWS,
    customer_buckets=None,
)
@given(
    lines=_history_lines,
    window=st.sampled_from(
        [
            dyn.WindowSettings(),
            dyn.WindowSettings(lookback_days=20),
            dyn.WindowSettings(lookback_days=45),
            dyn.WindowSettings(window_start=FEB),
        ]
    ),
    minimum=st.integers(1, 3),
    batch_rows=st.sampled_from([1, 40, dyn.SNAPSHOT_BATCH_ROWS]),
    customer_buckets=st.sampled_from([None, 3]),
)
def test_all_months_in_one_pass_equal_month_by_month(
    lines, window, minimum, batch_rows, customer_buckets
) -> None:
    """The one-query computation of a run's months (in batches of months or all at once, its
    running sums in buckets of customers or not) equals the layers' own SQL run month by
    month (compute_snapshot, the blocking check's reference), in every column, for any
    history: orders spanning days and months, a category without a tier, look-back windows
    that leave months without customers."""
    rows = [
        (c, f"{c}{o}", str(JAN + timedelta(days=d)), cat, amount) for c, o, d, cat, amount in lines
    ]
    conn = _warehouse(rows)
    months = [JAN, FEB, MAR, date(2025, 4, 1), date(2025, 5, 1)]
    kwargs = dict(
        segment_map=SEGMENT_MAP, window_settings=window, min_customers_per_occupation=minimum
    )
    default_batch = dyn.SNAPSHOT_BATCH_ROWS
    dyn.SNAPSHOT_BATCH_ROWS = batch_rows  # 1: every month its own batch
    try:
        # buckets: as when the rows would not fit in memory
        with forced_customer_buckets(customer_buckets):
            done = dyn.compute_snapshots(conn, months, **kwargs)
    finally:
        dyn.SNAPSHOT_BATCH_ROWS = default_batch
    dyn.create_snapshot_temp(conn, "_ref")
    last_line = conn.execute(dyn.LAST_LINE_DATE_SQL).fetchall()[0][0]
    reference = [
        dyn.compute_snapshot(conn, m, last_line=last_line, into="_ref", **kwargs) for m in months
    ]
    assert done == reference
    for ours, theirs in (("_snapshots", "_ref"), ("_snapshots_tiers", "_ref_tiers")):
        for a, b in ((ours, theirs), (theirs, ours)):
            extra = conn.execute(f"SELECT * FROM {a} EXCEPT ALL SELECT * FROM {b}").fetchall()
            assert extra == [], (a, b)


@pytest.mark.parametrize(
    "window", [dyn.WindowSettings(), dyn.WindowSettings(lookback_days=45)], ids=str
)
@pytest.mark.parametrize("months", [[JAN, FEB, MAR], [MAR]], ids=["one pass", "one month"])
def test_scratch_tables_on_disk_give_the_same_snapshots(
    tmp_path: Path, window: dyn.WindowSettings, months: list[date]
) -> None:
    """A warehouse over SCRATCH_ON_DISK_LINES staged lines computes its snapshots with the
    scratch tables in the attached scratch file: the same rows as with temp tables, in the
    one pass (running sums; a look-back window: the joined values) and for one month alone
    (the layers' own SQL), with nothing large left in memory and no file afterwards."""
    conn = _warehouse(path=str(tmp_path / "w.duckdb"))
    kwargs = dict(segment_map=SEGMENT_MAP, window_settings=window, min_customers_per_occupation=1)
    dyn.compute_snapshots(conn, months, **kwargs)
    conn.execute("CREATE TABLE in_memory AS SELECT * FROM _snapshots")
    conn.execute("CREATE TABLE in_memory_tiers AS SELECT * FROM _snapshots_tiers")
    dyn.drop_snapshot_temps(conn)
    with scratch_database(conn, on_disk=True) as on_disk:
        assert on_disk
        dyn.compute_snapshots(conn, months, **kwargs, on_disk=on_disk)
        in_file = {
            t
            for (t,) in conn.execute(
                "SELECT table_name FROM duckdb_tables() WHERE database_name = 'scratch'"
            ).fetchall()
        }
        temp = {
            t
            for (t,) in conn.execute(
                "SELECT table_name FROM duckdb_tables() WHERE temporary"
            ).fetchall()
        }
        assert in_file == {dyn.LINES_TABLE, "_snapshots"}
        assert temp == {"_snapshots_tiers"}  # a few rows a month
        for ours, theirs in (("_snapshots", "in_memory"), ("_snapshots_tiers", "in_memory_tiers")):
            for a, b in ((ours, theirs), (theirs, ours)):
                extra = conn.execute(f"SELECT * FROM {a} EXCEPT ALL SELECT * FROM {b}").fetchall()
                assert extra == [], (a, b)
        assert conn.execute("SELECT count(*) FROM _snapshots").fetchone()[0] > 0
        dyn.drop_snapshot_temps(conn)
    assert not (tmp_path / "w.duckdb.scratch").exists()


@pytest.mark.parametrize("buckets", [None, 1, 3, 7])
def test_dominant_tier_follows_categories_that_change_tier(buckets: int | None) -> None:
    """MONTH_PRICE_SEGMENTS_SQL on hand-built inputs: categories A and C swap tiers in
    February, B loses its tier and D gains one in March. A customer's spend so far in a
    category moves with it; a tier left without lines is no tier (even at a spend of 0).
    The same rows whether computed at once (None: the count the rows and the memory limit
    give, here 1) or in buckets of customers (7: more buckets than some have customers)."""
    conn = duckdb.connect()
    months = (JAN, FEB, MAR)
    conn.execute(f"CREATE TEMP TABLE {dyn.MONTHS_TABLE} (snapshot_month DATE)")
    conn.executemany(f"INSERT INTO {dyn.MONTHS_TABLE} VALUES (?)", [[m] for m in months])
    tiers = {
        JAN: {"A": "Price_Low", "B": "Price_Mid", "C": "Price_High"},
        FEB: {"A": "Price_High", "B": "Price_Mid", "C": "Price_Low"},
        MAR: {"A": "Price_High", "B": "Unknown", "C": "Price_Low", "D": "Price_High"},
    }
    conn.execute(
        f"CREATE TEMP TABLE {dyn.MONTH_TIERS_TABLE} "
        "(snapshot_month DATE, category VARCHAR, price_segment VARCHAR)"
    )
    conn.executemany(
        f"INSERT INTO {dyn.MONTH_TIERS_TABLE} VALUES (?, ?, ?)",
        [[m, c, t] for m, by_category in tiers.items() for c, t in by_category.items()],
    )
    conn.execute(
        f"CREATE TEMP TABLE {dyn.CATEGORY_MONTHS_TABLE} "
        "(customer_id VARCHAR, category VARCHAR, order_month DATE, amount DECIMAL(38, 4))"
    )
    category_months = [
        ("c1", "A", date(2024, 12, 1), 50),  # before the first month: counted from January
        ("c1", "C", JAN, 30),
        ("c1", "B", FEB, 10),
        ("c2", "C", JAN, 0),  # one line of 0
        ("c3", "B", JAN, 7),
        ("c3", "D", MAR, 5),
        ("c4", None, JAN, 99),  # no category: never a tier
        ("c5", "B", FEB, 10),
        ("c6", "A", date(2025, 4, 1), 10),  # after the last month
        ("c7", "B", JAN, 30),
        ("c7", "A", FEB, 20),  # bought in the month A changes tier: counted once, as High
    ]
    conn.executemany(
        f"INSERT INTO {dyn.CATEGORY_MONTHS_TABLE} VALUES (?, ?, ?, ?)", category_months
    )
    dyn.create_by_customer_buckets(
        conn,
        dyn.MONTH_PRICE_SEGMENTS_TABLE,
        (dyn.MONTH_PRICE_SEGMENTS_SQL, dyn.MONTH_PRICE_SEGMENTS_BUCKET_SQL),
        dyn.CATEGORY_MONTHS_TABLE,
        buckets=buckets,
    )
    got = {
        (month, customer): segment
        for month, customer, segment in conn.execute(
            f"SELECT * FROM {dyn.MONTH_PRICE_SEGMENTS_TABLE}"
        ).fetchall()
    }
    expected = {
        # c1: Jan A Low 50 > C High 30; Feb A High 50 > C Low 30 > B Mid 10; Mar as Feb
        (JAN, "c1"): "Price_Low",
        (FEB, "c1"): "Price_High",
        (MAR, "c1"): "Price_High",
        # c2: its one line of 0 is High in January, Low from February (High then has none)
        (JAN, "c2"): "Price_High",
        (FEB, "c2"): "Price_Low",
        (MAR, "c2"): "Price_Low",
        # c3: B Mid 7; in March B has no tier and D (High) holds 5
        (JAN, "c3"): "Price_Mid",
        (FEB, "c3"): "Price_Mid",
        (MAR, "c3"): "Price_High",
        # c5: B Mid 10 in February; no tiered line in March
        (FEB, "c5"): "Price_Mid",
        (MAR, "c5"): "Unknown",
        # c7: B Mid 30 > A High 20 from February
        (JAN, "c7"): "Price_Mid",
        (FEB, "c7"): "Price_Mid",
        (MAR, "c7"): "Price_High",
    }
    assert got == expected


def test_a_corrected_day_makes_the_later_snapshots_stale_until_backfilled() -> None:
    """Correcting a1 (Jan 5) changes what Jan, Feb and Mar should hold; the history check
    names the three months until they are recomputed."""
    conn = _warehouse()
    _snapshots(conn)
    stale = conn.execute(dyn.SNAPSHOT_HISTORY_SQL).df()
    assert (stale["stored_monetary"] == stale["current_monetary"]).all()
    conn.execute("UPDATE staging.transactions SET amount = 12 WHERE order_id = 'a1'")
    stale = conn.execute(dyn.SNAPSHOT_HISTORY_SQL).df()
    differs = stale["stored_monetary"] != stale["current_monetary"]
    assert stale.loc[differs, "snapshot_month"].dt.date.tolist() == [JAN, FEB, MAR]
    _snapshots(conn, (JAN, FEB, MAR))
    stale = conn.execute(dyn.SNAPSHOT_HISTORY_SQL).df()
    assert (stale["stored_monetary"] == stale["current_monetary"]).all()


def test_as_of_sql_refuses_sql_of_another_shape() -> None:
    with pytest.raises(dyn.AsOfSqlError, match=r"staging\.sales_lines"):
        dyn.as_of_sql("SELECT 1")
    assert "$last_day" in dyn.CUSTOMER_BEHAVIOUR_AS_OF_SQL
    assert "marts." not in dyn.CUSTOMER_BEHAVIOUR_AS_OF_SQL


# --------------------------------------------------------------------------------------------
# Transitions and last moves
# --------------------------------------------------------------------------------------------


def _transitions(conn: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    dyn.write_segment_transitions(conn, LAPSE_DAYS)
    return conn.execute("SELECT * FROM marts.segment_transitions").df()


def _cells(frame: pd.DataFrame, month: date, dimension: str) -> dict:
    rows = frame[(frame["from_month"] == pd.Timestamp(month)) & (frame["dimension"] == dimension)]
    return {
        (r.from_state, r.to_state): (
            r.customers,
            round(r.row_share, 6),
            r.revenue_from_month,
            r.revenue_to_month,
            r.direction,
        )
        for r in rows.itertuples()
    }


def test_transitions_hand_computed() -> None:
    conn = _warehouse()
    _snapshots(conn)
    frame = _transitions(conn)
    assert sorted(frame["from_month"].unique()) == [pd.Timestamp(JAN), pd.Timestamp(FEB)]
    # Feb -> Mar: C stays Hibernating, D Hibernating -> Champions, A Need Attention -> Loyal,
    # B Potential Loyalists -> At Risk, E enters; spend in Feb and in Mar moves with them.
    assert _cells(frame, FEB, "rfm_segment") == {
        ("Hibernating", "Hibernating"): (1, 0.5, 0.0, 0.0, "same"),
        ("Hibernating", "Champions"): (1, 0.5, 10.0, 100.0, "moved"),
        ("Need Attention", "Loyal Customers"): (1, 1.0, 10.0, 300.0, "moved"),
        ("Potential Loyalists", "At Risk"): (1, 1.0, 300.0, 0.0, "moved"),
        ("(entered)", "About To Sleep"): (1, 1.0, 0.0, 50.0, "entered"),
    }
    # Jan -> Feb: A and B leave Hibernating, C falls asleep, D enters.
    assert _cells(frame, JAN, "rfm_segment") == {
        ("Hibernating", "Need Attention"): (1, 0.5, 10.0, 10.0, "moved"),
        ("Hibernating", "Potential Loyalists"): (1, 0.5, 300.0, 300.0, "moved"),
        ("Promising", "Hibernating"): (1, 1.0, 50.0, 0.0, "moved"),
        ("(entered)", "Hibernating"): (1, 1.0, 0.0, 10.0, "entered"),
    }
    # Price tiers Feb -> Mar: A Low -> High and D Low -> Mid move up, B and C stay.
    assert _cells(frame, FEB, "price_tier") == {
        ("Price_Low", "Price_High"): (1, 0.5, 10.0, 300.0, "up"),
        ("Price_Low", "Price_Mid"): (1, 0.5, 10.0, 100.0, "up"),
        ("Price_Mid", "Price_Mid"): (1, 1.0, 0.0, 0.0, "same"),
        ("Price_High", "Price_High"): (1, 1.0, 300.0, 0.0, "same"),
        ("(entered)", "Price_Mid"): (1, 1.0, 0.0, 50.0, "entered"),
    }
    # Activity (lapsed = no purchase in 30 days): B (35 days) and C (60) lapse in March.
    activity = _cells(frame, FEB, "activity")
    assert {k: v[0] for k, v in activity.items()} == {
        ("active", "active"): 2,
        ("active", "lapsed"): 2,
        ("(entered)", "active"): 1,
    }
    assert activity[("active", "lapsed")][4] == "lapsed"
    sums = conn.execute(dyn.TRANSITIONS_CONSERVATION_SQL).df()
    assert (sums["out_of_from"] == sums["from_customers"]).all()
    assert (sums["into_to"] == sums["to_customers"]).all()


def _sorted_transitions(conn: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    return (
        conn.execute("SELECT * FROM marts.segment_transitions")
        .df()
        .sort_values(["from_month", "dimension", "from_state", "to_state"])
        .reset_index(drop=True)
    )


def _rebuilt_whole(conn: duckdb.DuckDBPyConnection, lapse_days: int) -> pd.DataFrame:
    """The table computed from nothing (both tables emptied), for comparison; then put
    back."""
    conn.execute("CREATE OR REPLACE TEMP TABLE _kept AS SELECT * FROM marts.segment_transitions")
    conn.execute("CREATE OR REPLACE TEMP TABLE _kept_in AS "
                 "SELECT * FROM marts.segment_transitions_inputs")  # fmt: skip
    conn.execute("DELETE FROM marts.segment_transitions_inputs")
    conn.execute("DELETE FROM marts.segment_transitions")
    done = dyn.write_segment_transitions(conn, lapse_days, batch_rows=0)  # a pair at a time
    assert done.recomputed == done.pairs
    whole = _sorted_transitions(conn)
    for table, kept in (
        ("segment_transitions", "_kept"),
        ("segment_transitions_inputs", "_kept_in"),
    ):
        conn.execute(f"DELETE FROM marts.{table}")
        conn.execute(f"INSERT INTO marts.{table} SELECT * FROM {kept}")
    return whole


def test_transitions_recompute_only_the_pairs_whose_snapshots_changed() -> None:
    """Jan -> Feb and Feb -> Mar: each later write recomputes exactly the pairs named here,
    and the table equals the one computed from nothing every time."""
    conn = _warehouse()
    _snapshots(conn)

    def write(lapse_days: int = LAPSE_DAYS) -> list[date]:
        done = dyn.write_segment_transitions(conn, lapse_days)
        assert done.pairs == [JAN, FEB]
        pd.testing.assert_frame_equal(_sorted_transitions(conn), _rebuilt_whole(conn, lapse_days))
        return done.recomputed

    assert write() == [JAN, FEB]  # nothing recorded yet
    assert write() == []  # nothing changed: nothing written
    # March's snapshot changes (a new day): only Feb -> Mar
    conn.execute(
        "UPDATE marts.customer_snapshots SET segment = 'Champions', segment_order = 1 "
        "WHERE snapshot_month = ? AND customer_id = 'C'",
        [MAR],
    )
    assert write() == [FEB]
    # February's changes: both pairs read it
    conn.execute(
        "UPDATE marts.customer_snapshots SET month_revenue = month_revenue + 1 "
        "WHERE snapshot_month = ? AND customer_id = 'A'",
        [FEB],
    )
    assert write() == [JAN, FEB]
    # a customer dropped from January only: Jan -> Feb
    conn.execute(
        "DELETE FROM marts.customer_snapshots WHERE snapshot_month = ? AND customer_id = 'A'",
        [JAN],
    )
    assert write() == [JAN]
    # rows of a pair gone from the table (one row is enough): that pair
    conn.execute(
        "DELETE FROM marts.segment_transitions WHERE rowid = "
        "(SELECT min(rowid) FROM marts.segment_transitions WHERE from_month = ?)",
        [JAN],
    )
    assert write() == [JAN]
    # another lapse threshold: every pair
    assert write(lapse_days=45) == [JAN, FEB]


def test_transitions_of_a_month_no_longer_snapshotted_are_removed() -> None:
    conn = _warehouse()
    _snapshots(conn)
    dyn.write_segment_transitions(conn, LAPSE_DAYS)
    conn.execute("DELETE FROM marts.customer_snapshots WHERE snapshot_month = ?", [MAR])
    done = dyn.write_segment_transitions(conn, LAPSE_DAYS)
    assert (done.pairs, done.recomputed, done.rows_written) == ([JAN], [], 0)
    held = conn.execute(
        "SELECT DISTINCT from_month FROM marts.segment_transitions "
        "UNION ALL SELECT from_month FROM marts.segment_transitions_inputs"
    ).fetchall()
    assert held == [(JAN,), (JAN,)]


def test_pairs_to_recompute_hand_built() -> None:
    digests = {JAN: "j", FEB: "f", MAR: "m"}
    stored = {JAN: ("j", "f", "s", 4, 4), FEB: ("f", "m-old", "s", 5, 5)}
    assert dyn.pairs_to_recompute([JAN, FEB], digests, stored, "s") == [FEB]
    assert dyn.pairs_to_recompute([JAN, FEB], digests, stored, "s2") == [JAN, FEB]
    partly_gone = {**stored, JAN: ("j", "f", "s", 4, 3)}
    assert dyn.pairs_to_recompute([JAN], digests, partly_gone, "s") == [JAN]
    assert dyn.pairs_to_recompute([JAN], digests, {}, "s") == [JAN]


def test_left_the_window_with_a_look_back_window() -> None:
    """A 45-day look-back drops customers whose purchases are all older: they go to (left)."""
    conn = _warehouse()
    dyn.compute_snapshots(
        conn,
        [FEB, MAR],
        segment_map=SEGMENT_MAP,
        window_settings=dyn.WindowSettings(lookback_days=45),
        min_customers_per_occupation=1,
    )
    dyn.write_snapshots(conn, FEB, MAR)
    cells = _cells(_transitions(conn), FEB, "rfm_segment")
    # Feb window Jan 15..Feb 28: B, C, A, D; Mar window Feb 15..Mar 31: A, B, D, E.
    # C (last purchase Jan 31) leaves; E enters.
    left = {k: v for k, v in cells.items() if k[1] == "(left)"}
    assert list(left) == [("Hibernating", "(left)")] and left[("Hibernating", "(left)")][0] == 1
    assert sum(v[0] for k, v in cells.items() if k[0] == "(entered)") == 1


@pytest.mark.parametrize("buckets", [None, 2, 4])
def test_last_moves_hand_computed(buckets: int | None) -> None:
    """The same rows with the state in one pass (None: what the rows and the memory limit
    give, here 1 bucket) and in buckets of customers, and again from the kept state."""
    conn = _warehouse()
    _snapshots(conn)
    first = dyn.write_customer_last_moves(conn, LAPSE_DAYS, buckets=buckets)
    assert (first.kept_state, first.folded, first.rows) == (False, [JAN, FEB], 5)
    cols = [
        "segment",
        "previous_segment",
        "segment_since",
        "months_in_segment",
        "price_move",
        "price_segment_since",
        "active",
    ]
    expected = {
        "A": ("Loyal Customers", "Need Attention", MAR, 1, "up", MAR, True),
        "B": ("At Risk", "Potential Loyalists", MAR, 1, "entered", JAN, False),
        "C": ("Hibernating", "Promising", FEB, 2, "entered", JAN, False),
        "D": ("Champions", "Hibernating", MAR, 1, "up", MAR, True),
        "E": ("About To Sleep", "(entered)", MAR, 1, "entered", MAR, True),
    }
    for write in (first, dyn.write_customer_last_moves(conn, LAPSE_DAYS)):
        got = conn.execute("SELECT * FROM marts.customer_last_moves").df()
        got = got.set_index("customer_id")
        for customer, values in expected.items():
            row = got.loc[customer, cols].tolist()
            row[2], row[5] = row[2].date(), row[5].date()
            assert tuple(row) == values, (customer, write)
    assert (write.kept_state, write.folded) == (True, [])


#: The window over every customer's months that customer_last_moves was computed with
#: before stop 34 (read here as the reference the state's fold must equal).
LAST_MOVES_WINDOWS_SQL = (
    (Path(__file__).parent / "sql" / "customer_last_moves_windows.sql")
    .read_text()
    .replace("{{ marts.customer_snapshots }}", "marts.customer_snapshots")
)
LAST_MOVES_PARAMS = {"lapse_days": LAPSE_DAYS, "ranked": ["Price_Low", "Price_Mid", "Price_High"]}


def _last_moves_differ_from_windows(
    conn: duckdb.DuckDBPyConnection, lapse_days: int = LAPSE_DAYS
) -> tuple[int, int]:
    """Rows of marts.customer_last_moves not in the windows' result, and the reverse."""
    return conn.execute(
        f"WITH reference AS ({LAST_MOVES_WINDOWS_SQL}) "
        "SELECT (SELECT count(*) FROM (SELECT * FROM marts.customer_last_moves "
        "EXCEPT ALL SELECT * FROM reference)), (SELECT count(*) FROM (SELECT * FROM "
        "reference EXCEPT ALL SELECT * FROM marts.customer_last_moves))",
        {**LAST_MOVES_PARAMS, "lapse_days": lapse_days},
    ).fetchall()[0]


def test_last_moves_state_kept_until_hand_built() -> None:
    DEC, APR = date(2024, 12, 1), date(2025, 4, 1)
    stored = {JAN: "j", FEB: "f"}
    # a new day of March (the latest month): the state through February holds
    assert dyn.last_moves_state_kept_until({JAN: "j", FEB: "f", MAR: "m2"}, stored) == FEB
    # a day that starts April: the state still holds (March is folded in)
    assert dyn.last_moves_state_kept_until({JAN: "j", FEB: "f", MAR: "m", APR: "a"}, stored) == FEB
    # February changed, or January is gone, or a month before February appeared: no
    assert dyn.last_moves_state_kept_until({JAN: "j", FEB: "f2", MAR: "m"}, stored) is None
    assert dyn.last_moves_state_kept_until({FEB: "f", MAR: "m"}, stored) is None
    assert dyn.last_moves_state_kept_until({DEC: "d", JAN: "j", FEB: "f", MAR: "m"}, stored) is None
    # the latest month now is the state's last one (March gone): no
    assert dyn.last_moves_state_kept_until({JAN: "j", FEB: "f"}, stored) is None
    assert dyn.last_moves_state_kept_until({JAN: "j", FEB: "f", MAR: "m"}, {}) is None


def test_last_moves_state_folded_again_when_it_cannot_be_trusted() -> None:
    conn = _warehouse()
    _snapshots(conn)
    dyn.write_customer_last_moves(conn, LAPSE_DAYS)
    # another tier order: the moves up / down change, the state is computed again
    again = dyn.write_customer_last_moves(conn, LAPSE_DAYS, ranked=["Price_High", "Price_Mid"])
    assert (again.kept_state, again.reason) == (False, "the tier order or the query changed")
    assert dyn.write_customer_last_moves(conn, LAPSE_DAYS).kept_state is False
    # a state row removed behind the pipeline's back
    conn.execute("DELETE FROM marts.customer_last_moves_state WHERE customer_id = 'A'")
    again = dyn.write_customer_last_moves(conn, LAPSE_DAYS)
    assert (again.kept_state, again.reason) == (
        False,
        "the state's rows changed since it was written",
    )
    # an earlier month's segment changed
    conn.execute(
        "UPDATE marts.customer_snapshots SET segment = 'Champions' "
        "WHERE snapshot_month = ? AND customer_id = 'C'",
        [JAN],
    )
    again = dyn.write_customer_last_moves(conn, LAPSE_DAYS)
    assert (again.kept_state, again.folded) == (False, [JAN, FEB])
    assert _last_moves_differ_from_windows(conn) == (0, 0)


def test_a_failed_last_moves_write_keeps_state_record_and_table(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """State, record and table change together: a write that fails after the state was
    computed again leaves all three as they were, and no temp table behind."""
    conn = _warehouse()
    _snapshots(conn)
    dyn.write_customer_last_moves(conn, LAPSE_DAYS)
    tables = ("customer_last_moves", "customer_last_moves_state", "customer_last_moves_inputs")

    def held() -> list:
        return [conn.execute(f"SELECT * FROM marts.{t} ORDER BY ALL").fetchall() for t in tables]

    before = held()
    conn.execute(
        "UPDATE marts.customer_snapshots SET segment = 'Lost' WHERE snapshot_month = ?", [JAN]
    )
    monkeypatch.setattr(dyn, "_LATEST_SQL", "SELECT error('the write fails here')")
    with pytest.raises(duckdb.Error, match="the write fails here"):
        dyn.write_customer_last_moves(conn, LAPSE_DAYS)
    assert held() == before
    temp = conn.execute(
        "SELECT table_name FROM duckdb_tables() WHERE temporary AND table_name LIKE '_moves%'"
    ).fetchall()
    assert temp == []


# Random snapshot histories: per month, the customers present and their segment and tier.
_month_rows = st.dictionaries(
    st.integers(0, 12),  # customer number
    st.tuples(st.sampled_from(SEGMENT_NAMES[:3]), st.sampled_from(dyn.PRICE_STATES)),
    max_size=10,
)


def _insert_month(conn: duckdb.DuckDBPyConnection, month: date, rows: dict) -> None:
    conn.execute("DELETE FROM marts.customer_snapshots WHERE snapshot_month = ?", [month])
    for n, (segment, tier) in rows.items():
        conn.execute(
            "INSERT INTO marts.customer_snapshots (snapshot_month, month_end, customer_id, "
            "segment, segment_order, price_segment, recency_days, frequency, monetary, r_score, "
            "f_score, m_score, rf_cell, rfm_code, as_of, window_start, window_end, age_band, "
            "gender, occupation, occupation_group, behavioural_segment, month_orders, "
            "month_revenue) VALUES (?, ?, ?, ?, 1, ?, ?, 1, ?, 1, 1, 1, 'R1F1', '111', ?, ?, ?, "
            "'a', 'g', 'o', 'Occ_Low', 'x', 0, ?)",
            [month, month, f"c{n}", segment, tier, 5 * n, 10 * n, month, month, month, n],
        )


def _expected_state(held_before: list, held_now: list) -> tuple[bool, list]:
    """What a write should do with the state (kept?, months folded), from the snapshot
    months with rows when the state was written and now, when no month the state holds
    changed: the state holds every month but the latest of then."""
    stored = held_before[:-1]
    if (
        stored
        and held_now
        and held_now[-1] > stored[-1]
        and [m for m in held_now if m <= stored[-1]] == stored
    ):
        return True, [m for m in held_now[:-1] if m > stored[-1]]
    return False, held_now[:-1]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    history=st.lists(_month_rows, min_size=1, max_size=5),
    latest_again=_month_rows,
    next_month=_month_rows,
)
def test_last_moves_update_equals_the_windows(history, latest_again, next_month) -> None:
    """Whatever the months hold (customers missing from some, coming back, moving), the
    table equals the window over every month: written first, after the latest month changed
    (a new day: the state kept, nothing folded), after a month was added (one folded) and
    after the first month changed (the state computed again)."""
    conn = duckdb.connect()
    ensure_table(conn, dyn.CUSTOMER_SNAPSHOTS)
    months = [date(2026, 1 + i, 1) for i in range(len(history) + 1)]
    for month, rows in zip(months, history, strict=False):
        _insert_month(conn, month, rows)
    held = [m for m, rows in zip(months, history, strict=False) if rows]
    write = dyn.write_customer_last_moves(conn, LAPSE_DAYS)
    assert (write.kept_state, write.folded) == (False, held[:-1])
    assert _last_moves_differ_from_windows(conn) == (0, 0)
    # a new day: the latest month's rows change; then a day that starts the next month
    for month, rows in ((months[-2], latest_again), (months[-1], next_month)):
        _insert_month(conn, month, rows)
        now = sorted({*held, month} if rows else set(held) - {month})
        write = dyn.write_customer_last_moves(conn, LAPSE_DAYS)
        assert (write.kept_state, write.folded) == _expected_state(held, now)
        assert _last_moves_differ_from_windows(conn) == (0, 0)
        held = now
    if len(held) >= 2:
        # the first month changed: the state is computed again
        conn.execute(
            "UPDATE marts.customer_snapshots SET segment = ? WHERE snapshot_month = ?",
            [SEGMENT_NAMES[5], held[0]],
        )
        write = dyn.write_customer_last_moves(conn, LAPSE_DAYS)
        assert (write.kept_state, write.folded) == (False, held[:-1])
        assert _last_moves_differ_from_windows(conn) == (0, 0)


# A property: whatever the two snapshots hold, transitions conserve customers.
_customers = st.lists(
    st.tuples(
        st.integers(0, 40),  # customer number
        st.sampled_from(SEGMENT_NAMES[:4]),
        st.sampled_from(dyn.PRICE_STATES),
        st.integers(1, 200),  # recency
    ),
    max_size=25,
    unique_by=lambda t: t[0],
)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(earlier=_customers, later=_customers)
def test_transitions_conserve_customers(earlier, later) -> None:
    conn = duckdb.connect()
    ensure_table(conn, dyn.CUSTOMER_SNAPSHOTS)
    rows = [
        (month, f"c{n}", segment, SEGMENT_NAMES.index(segment) + 1, tier, recency)
        for month, customers in ((JAN, earlier), (FEB, later))
        for n, segment, tier, recency in customers
    ]
    for m, c, s, o, t, r in rows:
        conn.execute(
            "INSERT INTO marts.customer_snapshots (snapshot_month, month_end, customer_id, "
            "segment, segment_order, price_segment, recency_days, frequency, monetary, r_score, "
            "f_score, "
            "m_score, rf_cell, rfm_code, as_of, window_start, window_end, age_band, gender, "
            "occupation, occupation_group, behavioural_segment, month_orders, month_revenue) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, 1, 1, 1, 1, 1, 'R1F1', '111', ?, ?, ?, 'a', 'g', 'o', "
            "'Occ_Low', 'x', 0, 0)",
            [m, m, c, s, o, t, r, m, m, m],
        )
    frame = _transitions(conn)
    a = {f"c{n}" for n, *_ in earlier}
    b = {f"c{n}" for n, *_ in later}
    if not a or not b:
        assert frame.empty  # a month without rows has no snapshot, so there is no pair
        return
    for _dimension, rows_ in frame.groupby("dimension"):
        assert rows_.loc[rows_["from_state"] != dyn.ENTERED, "customers"].sum() == len(a)
        assert rows_.loc[rows_["to_state"] != dyn.LEFT, "customers"].sum() == len(b)
        assert rows_.loc[rows_["from_state"] == dyn.ENTERED, "customers"].sum() == len(b - a)
        assert rows_.loc[rows_["to_state"] == dyn.LEFT, "customers"].sum() == len(a - b)
        shares = rows_.groupby("from_state")["row_share"].sum()
        assert ((shares - 1).abs() < 1e-9).all()


def _insert_snapshot_month(conn: duckdb.DuckDBPyConnection, month: date, customers) -> None:
    for n, segment, tier, recency in customers:
        conn.execute(
            "INSERT INTO marts.customer_snapshots (snapshot_month, month_end, customer_id, "
            "segment, segment_order, price_segment, recency_days, frequency, monetary, r_score, "
            "f_score, m_score, rf_cell, rfm_code, as_of, window_start, window_end, age_band, "
            "gender, occupation, occupation_group, behavioural_segment, month_orders, "
            "month_revenue) VALUES (?, ?, ?, ?, ?, ?, ?, 1, 1, 1, 1, 1, 'R1F1', '111', ?, ?, ?, "
            "'a', 'g', 'o', 'Occ_Low', 'x', 0, ?)",
            [month, month, f"c{n}", segment, SEGMENT_NAMES.index(segment) + 1, tier, recency,
             month, month, month, n + recency],
        )  # fmt: skip


_MONTHS4 = [JAN, FEB, MAR, date(2025, 4, 1)]
# One edit of the snapshots between two writes: a month's rows replaced (empty: the month is
# gone), or another lapse threshold.
_edits = st.lists(
    st.one_of(
        st.tuples(st.just("month"), st.sampled_from(_MONTHS4), _customers),
        st.tuples(st.just("lapse"), st.sampled_from([30, 45]), st.just([])),
    ),
    min_size=1,
    max_size=4,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    first=st.lists(_customers, min_size=4, max_size=4),
    edits=_edits,
    batch_rows=st.sampled_from([0, 3, 8, dyn.TRANSITIONS_BATCH_ROWS]),
)
def test_transitions_written_incrementally_equal_a_whole_rebuild(first, edits, batch_rows) -> None:
    """Whatever the snapshots and however they change between writes (months replaced,
    emptied, added back; the lapse threshold changed), and however many pairs a statement
    computes, the table after each incremental write equals the one computed from nothing a
    pair at a time, and nothing is recomputed when nothing changed."""
    conn = duckdb.connect()
    ensure_table(conn, dyn.CUSTOMER_SNAPSHOTS)
    for month, customers in zip(_MONTHS4, first, strict=True):
        _insert_snapshot_month(conn, month, customers)
    lapse_days = LAPSE_DAYS
    dyn.write_segment_transitions(conn, lapse_days, batch_rows)
    for kind, value, customers in edits:
        if kind == "month":
            conn.execute("DELETE FROM marts.customer_snapshots WHERE snapshot_month = ?", [value])
            _insert_snapshot_month(conn, value, customers)
        else:
            lapse_days = value
        done = dyn.write_segment_transitions(conn, lapse_days, batch_rows)
        pd.testing.assert_frame_equal(_sorted_transitions(conn), _rebuilt_whole(conn, lapse_days))
        assert dyn.write_segment_transitions(conn, lapse_days, batch_rows).recomputed == []
        assert set(done.recomputed) <= set(done.pairs)


def test_transition_batches_are_runs_of_consecutive_pairs_within_the_row_budget() -> None:
    """Pairs (first months) go together while they are consecutive and their months' rows fit
    the budget; a pair larger than the budget goes alone; a gap starts a new run."""
    months = [date(2025, m, 1) for m in range(1, 13)]
    rows = {month: 10 for month in months} | {date(2025, 6, 1): 100}
    recompute = [m for m in months[:-1] if m != date(2025, 9, 1)]  # pairs Jan..Nov, no Sep
    assert dyn.transition_batches(recompute, rows, 60) == [
        (date(2025, 1, 1), date(2025, 3, 1)),  # 3 pairs x 20 rows
        (date(2025, 4, 1), date(2025, 4, 1)),  # + May-Jun (110 rows) would pass 60
        (date(2025, 5, 1), date(2025, 5, 1)),  # 110 rows: alone
        (date(2025, 6, 1), date(2025, 6, 1)),  # 110 rows: alone
        (date(2025, 7, 1), date(2025, 8, 1)),  # then September is not recomputed
        (date(2025, 10, 1), date(2025, 11, 1)),
    ]
    assert dyn.transition_batches(recompute, rows, 0) == [(m, m) for m in recompute]
    assert dyn.transition_batches(recompute, rows, 10**9) == [
        (date(2025, 1, 1), date(2025, 8, 1)),
        (date(2025, 10, 1), date(2025, 11, 1)),
    ]
    assert dyn.transition_batches([], rows, 60) == []


# --------------------------------------------------------------------------------------------
# Experiment sizing
# --------------------------------------------------------------------------------------------


def test_sample_size_against_cohen_and_pwr() -> None:
    """Cohen (1988), Exercise 6.5 (p. 203), as documented for R's pwr::ES.h: h(0.5, 0.4) =
    0.2013579. Cohen's Exercise 6.1 (p. 198), the example of R's pwr::pwr.2p.test and of
    statsmodels' own tests (TestNormalIndPower1, value from R): h = 0.3 with n = 80 per group
    at a two-sided 5% level has power 0.475100870572638; so that power needs n = 80."""
    from statsmodels.stats.proportion import proportion_effectsize

    assert proportion_effectsize(0.5, 0.4) == pytest.approx(0.2013579, abs=1e-7)
    baseline = 0.5
    target = math.sin(math.asin(math.sqrt(baseline)) + 0.3 / 2) ** 2  # h = 0.3 exactly
    size = dyn.sample_size_per_arm(baseline, target / baseline - 1, 0.05, 0.475100870572638)
    assert size.effect_size_h == pytest.approx(0.3, abs=1e-12)
    assert size.n_per_arm == 80
    # the closed form of the same test: n = 2 (z_.975 + z_.80)^2 / h^2, rounded up
    from scipy.stats import norm

    size = dyn.sample_size_per_arm(0.2, 0.1, 0.05, 0.8)
    closed = 2 * (norm.ppf(0.975) + norm.ppf(0.8)) ** 2 / size.effect_size_h**2
    assert size.n_per_arm == math.ceil(closed)


@pytest.mark.parametrize("alpha", [0.01, 0.05, 0.1])
@pytest.mark.parametrize("power", [0.5, 0.8, 0.9])
def test_power_equals_statsmodels(alpha: float, power: float) -> None:
    """The normal power computed here is statsmodels' NormalIndPower (the library it
    replaces, kept as the reference): the same power function to float precision; n and the
    detectable effect found here are roots of statsmodels' power function (to 1e-9), within
    its own solver's tolerance of its answer, and the whole n is the same."""
    from statsmodels.stats.power import NormalIndPower
    from statsmodels.stats.proportion import proportion_effectsize

    for baseline, uplift in [(0.02, 0.5), (0.124, 0.1), (0.274, 0.1), (0.5, 0.3), (0.7, -0.2)]:
        target = baseline * (1 + uplift)
        size = dyn.sample_size_per_arm(baseline, uplift, alpha, power)
        assert size.effect_size_h == pytest.approx(proportion_effectsize(target, baseline), 1e-12)
        reference = NormalIndPower().solve_power(
            effect_size=abs(size.effect_size_h), alpha=alpha, power=power, ratio=1.0
        )
        h = abs(size.effect_size_h)
        n = dyn.two_sample_z_nobs(h, alpha, power)
        assert dyn.two_sample_z_power(h, n, alpha) == pytest.approx(
            NormalIndPower().power(h, n, alpha, ratio=1.0), rel=1e-12
        )
        assert NormalIndPower().power(h, n, alpha, ratio=1.0) == pytest.approx(power, abs=1e-9)
        assert n == pytest.approx(reference, rel=1e-4)
        assert size.n_per_arm == math.ceil(float(reference) - 1e-6)
    for n in (3, 40, 757, 12_783):
        reference = NormalIndPower().solve_power(
            effect_size=None, nobs1=n, alpha=alpha, power=power, ratio=1.0
        )
        effect = dyn.two_sample_z_effect(n, alpha, power)
        assert NormalIndPower().power(effect, n, alpha, ratio=1.0) == pytest.approx(power, abs=1e-9)
        assert effect == pytest.approx(reference, rel=1e-3)


def test_sample_size_cases() -> None:
    stay = dyn.OUTCOMES[dyn.STAY_ACTIVE]
    # staying active: the uplift cuts the lapse rate (10% -> 9%), not 90% -> 99%
    size = dyn.sample_size_per_arm(0.9, 0.1, 0.05, 0.8, stay)
    assert size.target_rate == pytest.approx(0.91)
    assert size.n_per_arm > 10_000
    assert dyn.sample_size_per_arm(None, 0.1, 0.05, 0.8).reason.startswith("no baseline")
    assert "never happened" in dyn.sample_size_per_arm(0.0, 0.1, 0.05, 0.8).reason
    assert "100%" in dyn.sample_size_per_arm(0.95, 0.1, 0.05, 0.8).reason
    assert "nobody lapsed" in dyn.sample_size_per_arm(1.0, 0.1, 0.05, 0.8, stay).reason
    # the detectable uplift of N customers needs about N / 2 per arm
    up = dyn.OUTCOMES[dyn.REPEAT_PURCHASE]
    uplift = dyn.detectable_uplift(0.25, 2000, 0.05, 0.8, up)
    assert dyn.sample_size_per_arm(0.25, uplift, 0.05, 0.8).n_per_arm in (1000, 1001)


def test_experiment_rows_per_class_and_action() -> None:
    baseline = pd.DataFrame(
        [
            {
                "strategy_class": "Grow",
                "months": 5,
                "repeat_purchase_trials": 1000,
                "repeat_purchase_successes": 300,
                "repeat_purchase_available": 100_000,
                "stay_active_trials": 0,
                "stay_active_successes": 0,
                "stay_active_available": 0,
                "price_tier_up_trials": 0,
                "price_tier_up_successes": 0,
                "price_tier_up_available": 0,
            },
            {
                "strategy_class": "Expand",
                "months": 5,
                "repeat_purchase_trials": 0,
                "repeat_purchase_successes": 0,
                "repeat_purchase_available": 0,
                "stay_active_trials": 0,
                "stay_active_successes": 0,
                "stay_active_available": 0,
                "price_tier_up_trials": 400,
                "price_tier_up_successes": 40,
                "price_tier_up_available": 50,
            },
        ]
    )
    classes = pd.DataFrame(
        {
            "strategy_class": ["Grow", "Expand", "Maintain"],
            "class_order": [1, 2, 3],
            "actions": ["Upsell; Bundles", "Trial upgrades", ""],
        }
    )
    rows = dyn.experiment_rows(
        baseline, classes, dyn.DEFAULT_CLASS_OUTCOMES, dyn.SizingSettings()
    ).set_index(["strategy_class", "action_number"])
    assert len(rows) == 4  # two Grow actions, one Expand, Maintain's empty playbook
    grow = rows.loc[("Grow", 1)]
    assert grow["baseline_rate"] == 0.3 and grow["target_rate"] == pytest.approx(0.33)
    assert grow["testable"] and grow["verdict"].startswith("testable")
    assert rows.loc[("Grow", 2), "n_per_arm"] == grow["n_per_arm"]
    expand = rows.loc[("Expand", 1)]
    assert not expand["testable"] and expand["verdict"].startswith("too small to test")
    assert "smallest detectable uplift" in expand["verdict"]
    maintain = rows.loc[("Maintain", 1)]
    assert maintain["action"] == "(no action in the playbook)"
    assert maintain["verdict"] == "not testable: no baseline: no month-to-month history yet"


def test_baseline_rates_from_snapshots() -> None:
    """Feb -> Mar on the hand-built history, everyone in Occ_Low: with the default rules all
    are Maintain. Repeat purchase: of 4 customers in Feb, A and D order in March (2/4); stay
    active (30 days): of 4 active, A and D still are (2/4); tier up: of the 3 below High
    (A, D Low; C Mid), A and D move up. Jan -> Feb adds 3 customers (A, B ordered in Feb)."""
    conn = _warehouse()
    _snapshots(conn)
    conn.register(dyn.STRATEGY_CELLS, dyn.strategy_cells(load_rule_table()))
    last = conn.execute(dyn.EXPERIMENT_BASELINE_SQL, dyn.baseline_params(LAPSE_DAYS, 1)).df()
    row = last.set_index("strategy_class").loc["Maintain"]
    assert (row["months"], row["repeat_purchase_trials"], row["repeat_purchase_successes"]) == (
        1,
        4,
        2,
    )
    assert (row["stay_active_trials"], row["stay_active_successes"]) == (4, 2)
    assert (row["price_tier_up_trials"], row["price_tier_up_successes"]) == (3, 2)
    assert row["repeat_purchase_available"] == 5 and row["stay_active_available"] == 3
    both = conn.execute(dyn.EXPERIMENT_BASELINE_SQL, dyn.baseline_params(LAPSE_DAYS, 12)).df()
    row = both.set_index("strategy_class").loc["Maintain"]
    assert (row["months"], row["repeat_purchase_trials"], row["repeat_purchase_successes"]) == (
        2,
        7,
        4,
    )


def test_settings_are_checked() -> None:
    with pytest.raises(dg.Failure, match="relative_uplift") as failure:
        dyn_assets.DynamicsSettings(
            relative_uplift=0, class_outcomes={"Grow": "buy_more"}
        ).checked()
    assert "buy_more" in failure.value.description


# --------------------------------------------------------------------------------------------
# Figures and the report section, on one month and on several
# --------------------------------------------------------------------------------------------


def test_figures_and_report_on_one_month_and_on_three() -> None:
    conn = _warehouse()
    _snapshots(conn)
    frame = _transitions(conn)
    shares = conn.execute(dyn.SEGMENT_SHARES_SQL).df()
    changes = pd.DataFrame(
        [{"to_month": MAR, "category": "Mid", "from_tier": "Price_Mid", "to_tier": "Price_Low"}]
    )
    one = shares[shares["snapshot_month"] == pd.Timestamp(JAN)]
    note = dyn_assets.history_note([JAN])
    assert note.startswith("No previous snapshot: only Jan 2025")
    for fig in (
        figs.plot_segment_migration(frame, SEGMENT_NAMES),
        figs.plot_segment_migration(frame.iloc[0:0], SEGMENT_NAMES, note=note),
        figs.plot_segment_share_over_time(shares, SEGMENT_NAMES),
        figs.plot_segment_share_over_time(one, SEGMENT_NAMES),
        figs.plot_price_tier_flow(frame, changes),
        figs.plot_price_tier_flow(frame.iloc[0:0], changes.iloc[0:0], note=note),
    ):
        assert len(render_png(fig)) > 5_000
    twice = [render_png(figs.plot_price_tier_flow(frame, changes)) for _ in range(2)]
    assert twice[0] == twice[1]  # deterministic bytes

    last = frame[frame["from_month"] == frame["from_month"].max()]
    sizing = pd.DataFrame(
        [
            {
                "strategy_class": "Grow",
                "action": "Upsell",
                "outcome": "repeat_purchase",
                "customers_available": 5,
                "baseline_rate": 0.5,
                "target_rate": 0.55,
                "n_per_arm": 1565,
                "verdict": "too small to test: 3,130 customers needed",
                "relative_uplift": 0.1,
                "alpha": 0.05,
                "power": 0.8,
                "baseline_months": 2,
            }
        ]
    )
    report = "\n".join(
        _dynamics_section(
            _Inputs(DynamicsInputs([JAN, FEB, MAR], last, sizing, changes)), embed=True
        )
    )
    assert "## What changed since last month" in report
    assert "From the end of Feb 2025 to the end of Mar 2025" in report
    assert "2 lapsed, 0 came back" in report
    assert "2 moved up a tier, 0 moved down" in report
    assert "Mid Price_Mid -> Price_Low" in report
    assert "| Potential Loyalists | At Risk | 1 | 100.0% | 300.00 | 0.00 |" in report
    assert "too small to test" in report and "dyn_segment_migration.png" in report
    single = "\n".join(
        _dynamics_section(_Inputs(DynamicsInputs([JAN], last.iloc[0:0], sizing)), embed=True)
    )
    assert "Only one monthly snapshot (Jan 2025)" in single
    assert "dyn_segment_migration.png" not in single and "too small to test" in single
    assert _dynamics_section(_Inputs(None), embed=True) == []


class _Inputs:
    def __init__(self, dynamics):
        self.dynamics = dynamics


# --------------------------------------------------------------------------------------------
# Definitions and one end-to-end run
# --------------------------------------------------------------------------------------------


def test_snapshots_share_the_month_partitions_of_staging(tmp_path: Path, sample_dir: Path):
    from segment_pipeline.definitions import build_definitions

    graph = build_definitions(settings_for(sample_dir, tmp_path / "w.duckdb")).resolve_asset_graph()
    snapshots = graph.get(dyn_assets.SNAPSHOTS_KEY)
    assert snapshots.partitions_def == graph.get(STAGED_KEY).partitions_def
    assert snapshots.backfill_policy == dg.BackfillPolicy.single_run()
    assert {k.to_user_string() for k in snapshots.parent_keys} >= {
        "staging/transactions",
        "staging/customers",
        "staging/products",
    }
    for key in (
        dyn_assets.TRANSITIONS_KEY,
        dyn_assets.SIZING_KEY,
        *dyn_assets.FIGURE_KEYS.values(),
    ):
        assert not graph.get(key).is_partitioned


DYNAMICS_SELECTION = (
    'key:"raw/*" or key:"staging/*" or group:dynamics or group:behaviour or group:strategy '
    'or key:"figures/dyn_*" or key:"marts/rfm_customer_segments"'
)


@pytest.mark.e2e
def test_dynamics_end_to_end_backfill_then_a_daily_run(tmp_path: Path) -> None:
    """Three months through the CLI's runner: the snapshots run in the first (partitioned)
    run, one step for the three months, with the customer master before them; the tables,
    checks and figures follow. A later run of one day of the last month updates that month
    only: the earlier months keep their rows and their single materialization."""
    from segment_pipeline.generator import generate
    from segment_pipeline.runner import execute_pipeline

    generate(tmp_path / "data", customers=150, days=75, seed=5, start=date(2025, 1, 1))
    settings = settings_for(tmp_path / "data", tmp_path / "w" / "segments.duckdb")
    with dg.instance_for_test() as instance:
        outcome = execute_pipeline(
            settings, instance=instance, selection=DYNAMICS_SELECTION, echo=False
        )
        assert outcome.success, outcome.messages
        first_run = instance.get_run_by_id(outcome.run_ids[0])
        steps = {
            e.step_key
            for e in instance.all_logs(first_run.run_id)
            if e.is_dagster_event and e.dagster_event.event_type_value == "STEP_SUCCESS"
        }
        assert {"customer_snapshots", "staging__customers", "staging__products"} <= steps
        assert instance.get_materialized_partitions(dyn_assets.SNAPSHOTS_KEY) == {
            "2025-01-01",
            "2025-02-01",
            "2025-03-01",
        }
        checks = {
            (e.asset_key.path[-1], e.check_name): e.passed
            for run_id in outcome.run_ids
            for e in _check_evaluations(instance, run_id)
            if e.asset_key.path[-1] in {t.name for t in dyn.DYNAMICS_TABLES}
        }
        assert len(checks) == 6 and all(checks.values()), checks
        with duckdb.connect(str(settings.db_path), read_only=True) as conn:
            before = conn.execute(
                "SELECT * FROM marts.customer_snapshots WHERE snapshot_month < '2025-03-01' "
                "ORDER BY ALL"
            ).fetchall()
            months = conn.execute(
                "SELECT snapshot_month, count(*) FROM marts.customer_snapshots "
                "GROUP BY 1 ORDER BY 1"
            ).fetchall()
            sizing = conn.execute("SELECT count(*) FROM marts.experiment_sizing").fetchall()
            # the running month's snapshot counts recency to the month's end (the data ends on
            # Mar 16), yet its scores and segments are today's RFM segments, customer by customer
            differ = conn.execute(
                "SELECT count(*) FROM marts.customer_snapshots AS s "
                "FULL JOIN marts.rfm_customer_segments AS r USING (customer_id) "
                "WHERE s.snapshot_month = '2025-03-01' AND (s.rfm_code IS DISTINCT FROM "
                "r.rfm_code OR s.segment IS DISTINCT FROM r.segment)"
            ).fetchall()[0][0]
            shifted = conn.execute(
                "SELECT DISTINCT s.recency_days - r.recency_days FROM marts.customer_snapshots "
                "AS s JOIN marts.rfm_customer_segments AS r USING (customer_id) "
                "WHERE s.snapshot_month = '2025-03-01'"
            ).fetchall()
        assert differ == 0 and shifted == [(15,)]  # Apr 1 - Mar 17
        assert [m for m, _ in months] == [JAN, FEB, MAR] and sizing[0][0] > 0
        for stem in dyn_assets.FIGURE_STEMS.values():
            assert (settings.figures_dir / f"{stem}.png").stat().st_size > 10_000

        daily = execute_pipeline(  # what the schedule does first: the day's month partition
            settings,
            instance=instance,
            selection='key:"raw/*" or key:"staging/*" or tag:partitioned=time',
            start=date(2025, 3, 16),
            end=date(2025, 3, 16),
            echo=False,
        )
        assert daily.success, daily.messages
        events = instance.fetch_materializations(dyn_assets.SNAPSHOTS_KEY, limit=100).records
        per_month = pd.Series([e.partition_key for e in events]).value_counts().to_dict()
        assert per_month == {"2025-01-01": 1, "2025-02-01": 1, "2025-03-01": 2}
        with duckdb.connect(str(settings.db_path), read_only=True) as conn:
            after = conn.execute(
                "SELECT * FROM marts.customer_snapshots WHERE snapshot_month < '2025-03-01' "
                "ORDER BY ALL"
            ).fetchall()
        assert after == before
        # then the last moves, as the daily run's downstream part does: the moves up to
        # February kept (the first run computed them), March added as one month's step
        moves = execute_pipeline(
            settings,
            instance=instance,
            selection=f'key:"{dyn_assets.LAST_MOVES_KEY.to_user_string()}"',
            echo=False,
        )
        assert moves.success, moves.messages
        events = instance.fetch_materializations(dyn_assets.LAST_MOVES_KEY, limit=2).records
        latest_first = [e.asset_materialization.metadata for e in events]
        assert [m["state"].value for m in latest_first] == [
            "state through 2025-02 kept",
            "no state recorded",
        ]
        assert [m["months_folded"].value for m in latest_first] == ["(none)", "2025-01, 2025-02"]
        with duckdb.connect(str(settings.db_path), read_only=True) as conn:
            lapse_days = dyn_assets.DynamicsSettings().lapse_days
            assert _last_moves_differ_from_windows(conn, lapse_days) == (0, 0)


@pytest.mark.e2e
def test_the_as_of_check_fails_when_stored_rows_differ_in_ranged_and_one_month_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The blocking check compares the stored month with the layers' own SQL, whichever way
    the run computed it: in one pass over two months, (one month) with that SQL itself, or
    (a new day of the latest month, after a run that recorded it) updated by the day. A
    write that loses one customer's row of every month fails it all three times."""
    from segment_pipeline.generator import generate
    from segment_pipeline.runner import execute_pipeline

    write = dyn.write_snapshots

    def write_losing_a_row(
        conn: duckdb.DuckDBPyConnection, first: date, last: date, *a, **kw
    ) -> int:
        written = write(conn, first, last, *a, **kw)
        conn.execute(
            "DELETE FROM marts.customer_snapshots WHERE (snapshot_month, customer_id) IN "
            "(SELECT snapshot_month, min(customer_id) FROM marts.customer_snapshots "
            "WHERE snapshot_month BETWEEN ? AND ? GROUP BY 1)",
            [first, last],
        )
        return written

    generate(tmp_path / "data", customers=40, days=40, seed=3, start=date(2025, 1, 1))
    settings = settings_for(tmp_path / "data", tmp_path / "w.duckdb")
    selection = 'key:"raw/*" or key:"staging/*" or key:"marts/customer_snapshots"'
    check = "marts/customer_snapshots:matches_as_of_recomputation"
    monkeypatch.setattr(dyn, "write_snapshots", write_losing_a_row)
    with dg.instance_for_test() as instance:
        for start, end in ((JAN, date(2025, 2, 9)), (FEB, date(2025, 2, 9))):
            assert dyn.computed_directly(dyn.months_between(start, end)) == (start == FEB)
            outcome = execute_pipeline(
                settings, instance=instance, selection=selection, start=start, end=end,
                echo=False,
            )  # fmt: skip
            assert not outcome.success and check in outcome.failed_checks, (start, outcome)
        monkeypatch.setattr(dyn, "write_snapshots", write)
        kept = execute_pipeline(
            settings, instance=instance, selection=selection, end=date(2025, 2, 8), echo=False
        )
        assert kept.success, kept.messages
        monkeypatch.setattr(dyn, "write_snapshots", write_losing_a_row)
        outcome = execute_pipeline(
            settings, instance=instance, selection=selection, start=date(2025, 2, 9),
            end=date(2025, 2, 9), echo=False,
        )  # fmt: skip
        assert not outcome.success and check in outcome.failed_checks, outcome
        (evaluation,) = [
            e
            for e in _check_evaluations(instance, outcome.run_id)
            if e.check_name == "matches_as_of_recomputation"
        ]
        assert "updated by a new day" in evaluation.metadata["recomputed"].value


_SNAPSHOT_ROW = st.tuples(
    st.sampled_from(["C1", "C2", "C3"]),
    st.one_of(st.none(), st.integers(0, 3)),
    st.sampled_from(["Champions", "Lost", None]),
)


def _snapshot_rows_table(conn: duckdb.DuckDBPyConnection, name: str, rows: list) -> None:
    """Temp table `name` with the snapshot columns; rows of (customer_id, frequency,
    segment), every other column the same on every row."""
    dyn.create_snapshot_temp(conn, name)
    if rows:
        conn.executemany(
            f"INSERT INTO {name} (snapshot_month, customer_id, frequency, monetary, segment) "
            "VALUES (DATE '2025-03-01', ?, ?, 12.5, ?)",
            rows,
        )


def _except_all_count(conn: duckdb.DuckDBPyConnection, a: str, b: str) -> int:
    return sum(
        conn.execute(
            f"SELECT count(*) FROM (SELECT * FROM {x} EXCEPT ALL SELECT * FROM {y})"
        ).fetchall()[0][0]
        for x, y in ((a, b), (b, a))
    )


def test_differing_rows_hand_computed() -> None:
    """Equal multisets in another order: no difference; one value changed (same count): the
    two versions of that row; a repeated row against two distinct rows; NULL against 0."""
    conn = duckdb.connect()
    base = [("C1", 1, "Champions"), ("C2", 2, "Lost"), ("C3", None, None)]
    cases = [
        (list(reversed(base)), 0),
        ([("C1", 1, "Champions"), ("C2", 3, "Lost"), ("C3", None, None)], 2),
        ([("C1", 1, "Champions"), ("C1", 1, "Champions"), ("C3", None, None)], 2),
        ([("C1", 1, "Champions"), ("C2", 2, "Lost"), ("C3", 0, None)], 2),
    ]
    _snapshot_rows_table(conn, "_stored", base)
    for rows, expected in cases:
        _snapshot_rows_table(conn, "_again", rows)
        assert dyn.differing_rows(conn, "SELECT * FROM _stored", "_again", []) == (
            3,
            3,
            expected,
        ), rows


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stored=st.lists(_SNAPSHOT_ROW, max_size=6), again=st.lists(_SNAPSHOT_ROW, max_size=6))
def test_differing_rows_equals_except_all_both_ways(stored: list, again: list) -> None:
    """The hash-sum shortcut never hides a difference EXCEPT ALL sees (multisets: repeats,
    NULLs, order)."""
    conn = duckdb.connect()
    _snapshot_rows_table(conn, "_stored", stored)
    _snapshot_rows_table(conn, "_again", again)
    assert dyn.differing_rows(conn, "SELECT * FROM _stored", "_again", []) == (
        len(stored),
        len(again),
        _except_all_count(conn, "_stored", "_again"),
    )


@pytest.mark.e2e
def test_a_large_warehouse_takes_its_snapshots_in_a_scratch_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The snapshot step of a warehouse over SCRATCH_ON_DISK_LINES staged lines (lowered to
    0 here) says in its log and its metadata that its scratch tables are in a file, passes
    its checks (the blocking recomputation of a month computed with the file too), stores
    the rows a run with temp tables stores, and leaves no scratch file behind."""
    from segment_pipeline.generator import generate
    from segment_pipeline.runner import execute_pipeline

    generate(tmp_path / "data", customers=80, days=62, seed=3, start=date(2025, 1, 1))
    selection = 'key:"raw/*" or key:"staging/*" or tag:partitioned=time'
    stored = {}
    for mode in ("temp", "file"):
        if mode == "file":
            monkeypatch.setattr(dyn, "SCRATCH_ON_DISK_LINES", 0)
        settings = settings_for(tmp_path / "data", tmp_path / mode / "segments.duckdb")
        with dg.instance_for_test() as instance:
            outcome = execute_pipeline(settings, instance=instance, selection=selection, echo=False)
            assert outcome.success, outcome.messages
            said = [
                e.user_message
                for run_id in outcome.run_ids
                for e in instance.all_logs(run_id)
                if e.step_key == "customer_snapshots"
            ]
            checks = {
                e.check_name: e.passed
                for run_id in outcome.run_ids
                for e in _check_evaluations(instance, run_id)
                if e.asset_key == dyn_assets.SNAPSHOTS_KEY
            }
            latest = instance.get_latest_materialization_event(dyn_assets.SNAPSHOTS_KEY)
            shown = latest.asset_materialization.metadata["scratch_tables"].value
        assert checks and all(checks.values()), checks
        assert "matches_as_of_recomputation" in checks
        assert any("scratch tables in a file" in m for m in said) == (mode == "file")
        assert shown == {"temp": "memory", "file": "file beside the warehouse"}[mode]
        assert not Path(f"{settings.db_path}.scratch").exists()
        with duckdb.connect(str(settings.db_path), read_only=True) as conn:
            stored[mode] = conn.execute(
                "SELECT * FROM marts.customer_snapshots ORDER BY ALL"
            ).fetchall()
    assert len(stored["file"]) > 0 and stored["file"] == stored["temp"]


def _check_evaluations(instance: dg.DagsterInstance, run_id: str):
    logs = instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
    return [e.dagster_event.event_specific_data for e in logs]


def test_month_axes_stay_readable_over_four_years() -> None:
    """41 monthly snapshots (a 1,237-day export): the share chart shows the latest 24 months
    and says so; month labels are thinned so they never overlap, the last month labelled."""
    months = pd.date_range("2025-11-01", periods=41, freq="MS")
    labels = figs.month_tick_labels(list(months))
    shown = [label for label in labels if label]
    assert len(shown) <= figs.MAX_MONTH_LABELS and labels[-1] == "Mar\n2029"
    assert figs.month_tick_labels(list(months[:12])) == [m.strftime("%b\n%Y") for m in months[:12]]
    shares = pd.DataFrame(
        [
            {"snapshot_month": m.date(), "segment": s, "customers": 10 + i}
            for i, m in enumerate(months)
            for s in ("Champions", "Hibernating")
        ]
    )
    fig = figs.plot_segment_share_over_time(shares, SEGMENT_MAP.segments)
    ax = fig.axes[0]
    assert len(ax.get_xticks()) == figs.MAX_MONTHS_SHOWN
    assert "The latest 24 of 41 months" in " ".join(t.get_text() for t in fig.texts)
    fig.canvas.draw()
    boxes = [t.get_window_extent() for t in ax.get_xticklabels() if t.get_text()]
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])


def test_share_labels_read_on_their_bars() -> None:
    """A percentage drawn on a segment's bar is white or near-black, whichever contrasts more
    with that segment's colour (the old rule compared against another palette and never chose
    white: 3.1:1 on the Champions blue)."""
    from segment_pipeline.logic.palette import contrast_ratio, segment_colour, text_colour_on

    assert contrast_ratio("white", "black") == pytest.approx(21.0)
    assert contrast_ratio("#0173b2", "#0173b2") == pytest.approx(1.0)
    assert text_colour_on("#0173b2") == "white" and text_colour_on("#ece133") == "#222222"
    shares = pd.DataFrame(
        [
            {"snapshot_month": date(2026, 1, 1), "segment": "Champions", "customers": 50},
            {"snapshot_month": date(2026, 1, 1), "segment": "Can't Lose Them", "customers": 50},
        ]
    )
    fig = figs.plot_segment_share_over_time(shares, SEGMENT_MAP.segments)
    labels = [t for t in fig.axes[0].texts if t.get_text() == "50%"]
    assert len(labels) == 2
    for label, segment in zip(labels, ("Champions", "Can't Lose Them"), strict=True):
        chosen = contrast_ratio(label.get_color(), segment_colour(segment))
        other = "#222222" if label.get_color() == "white" else "white"
        assert chosen >= contrast_ratio(other, segment_colour(segment))
    assert {label.get_color() for label in labels} == {"white", "#222222"}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lines=st.lists(
        st.tuples(st.integers(0, 5), st.integers(0, 59), st.integers(1, 50)),
        min_size=1,
        max_size=40,
    ),
    windows=st.lists(st.tuples(st.integers(0, 59), st.integers(0, 30)), min_size=1, max_size=4),
)
def test_the_checks_count_window_customers_and_spend_as_a_scan_per_month_would(
    lines: list[tuple[int, int, int]], windows: list[tuple[int, int]]
) -> None:
    """The history check counts each stored month's window customers (and sums its spend) in
    one pass per distinct window start, and the coverage check takes the same counts; equal to
    counting each window's lines directly, for windows sharing a start or not (a look-back
    window moves it)."""
    day0 = date(2025, 1, 1)
    conn = _warehouse(
        [
            (f"c{c}", f"o{i}", (day0 + timedelta(days=d)).isoformat(), "X", amount)
            for i, (c, d, amount) in enumerate(lines)
        ]
    )
    # the columns the two checks read (the real table has 24 more, NOT NULL)
    conn.execute("CREATE SCHEMA marts")
    conn.execute(
        f"CREATE TABLE {dyn.CUSTOMER_SNAPSHOTS.fqn} (snapshot_month DATE, customer_id VARCHAR, "
        "window_start DATE, window_end DATE, as_of DATE, monetary DECIMAL(38, 4), "
        "segment VARCHAR, r_score INTEGER, f_score INTEGER, m_score INTEGER)"
    )
    months = [date(2025, 1 + i, 1) for i in range(len(windows))]
    bounds = {
        m: (day0 + timedelta(days=start), day0 + timedelta(days=start + length))
        for m, (start, length) in zip(months, windows, strict=True)
    }
    for m, (start, end) in bounds.items():
        conn.execute(
            f"INSERT INTO {dyn.CUSTOMER_SNAPSHOTS.fqn} (snapshot_month, customer_id, "
            "window_start, window_end, as_of, monetary, segment, r_score, f_score, m_score) "
            "VALUES (?, 'c0', ?, ?, ?, 0, 'Champions', 5, 5, 5)",
            [m, start, end, end + timedelta(days=1)],
        )
    expected_customers = {
        m: len({c for c, d, _ in lines if start <= day0 + timedelta(days=d) <= end})
        for m, (start, end) in bounds.items()
    }
    expected_spend = {
        m: float(sum(a for _, d, a in lines if start <= day0 + timedelta(days=d) <= end))
        for m, (start, end) in bounds.items()
    }
    history = conn.execute(dyn.SNAPSHOT_HISTORY_SQL).df()
    coverage = dyn.with_window_customers(
        conn.execute(
            dyn.SNAPSHOT_COVERAGE_SQL,
            {"first": months[0], "last": months[-1], "segments": ["Champions"]},
        ).df(),
        history,
    )
    got = dict(zip(coverage["snapshot_month"].dt.date, coverage["window_customers"], strict=True))
    assert got == expected_customers
    by_month = history.set_index(history["snapshot_month"].dt.date)
    assert by_month["current_customers"].to_dict() == expected_customers
    assert by_month["current_monetary"].to_dict() == expected_spend


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lines=st.lists(
        st.tuples(
            st.integers(0, 6),  # customer
            st.integers(0, 149),  # day from Jan 1 (five months)
            st.sampled_from(["Cheap", "Mid", "Lux", "Unknown"]),
            # amounts in cents, few distinct ones so that medians fall between equal values
            st.sampled_from([1, 99, 100, 250, 1000, 1001, 4999, 123456]),
        ),
        min_size=1,
        max_size=60,
    ),
    occupations=st.lists(st.sampled_from(["3", "7", "12", "Unknown"]), min_size=7, max_size=7),
)
def test_the_months_statistics_equal_the_layers_statistics_as_of_each_month(
    lines: list[tuple[int, int, str, int]], occupations: list[str]
) -> None:
    """The occupation and category statistics of every month in one query each (counts per
    calendar month summed up to each month; the median from the one or two middle amounts)
    equal the behaviour layer's own statistics on the lines up to the month's end: counts,
    distinct customers and sales exactly, the median exactly (even counts interpolate), the
    mean of ln(1 + amount) within rounding."""
    conn = duckdb.connect()
    conn.execute("CREATE SCHEMA staging")
    conn.execute(
        "CREATE TABLE staging.transactions (customer_id VARCHAR, order_id VARCHAR, "
        "order_ts TIMESTAMP, category VARCHAR, amount DECIMAL(18,2), age_band VARCHAR, "
        "gender VARCHAR, occupation VARCHAR)"
    )
    conn.execute("CREATE VIEW staging.sales_lines AS SELECT * FROM staging.transactions")
    conn.execute("CREATE VIEW staging.product_lines AS SELECT * FROM staging.transactions")
    conn.executemany(
        "INSERT INTO staging.transactions VALUES (?, ?, ?, ?, ?, '26-35', 'M', ?)",
        [
            (
                f"c{c}",
                f"o{i}",
                f"{JAN + timedelta(days=d)} 12:00:00",
                cat,
                Decimal(cents) / 100,
                occupations[c],
            )
            for i, (c, d, cat, cents) in enumerate(lines)
        ],
    )
    last_line = max(JAN + timedelta(days=d) for _, d, _, _ in lines)
    months = [m for m in dyn.months_between(JAN, date(2025, 5, 31)) if m <= last_line]
    dyn.stage_lines(conn, dyn.month_end(months[-1]))
    dyn.prepare_snapshot_inputs(conn)
    dyn._create_months_table(conn, [{"snapshot_month": m} for m in months])
    occupation_stats = conn.execute(dyn.MONTH_OCCUPATION_STATS_SQL).df()
    category_stats = conn.execute(dyn.MONTH_CATEGORY_STATS_SQL).df()
    for month in months:
        day = {"last_day": dyn.month_end(month)}
        expected = conn.execute(dyn.OCCUPATION_STATS_AS_OF_SQL, day).df()
        got = occupation_stats[occupation_stats["snapshot_month"].dt.date == month]
        got = got.drop(columns="snapshot_month").reset_index(drop=True)
        pd.testing.assert_frame_equal(
            got.drop(columns="mean_log1p_amount"),
            expected.drop(columns="mean_log1p_amount"),
            check_dtype=False,
        )
        assert got["mean_log1p_amount"].tolist() == pytest.approx(
            expected["mean_log1p_amount"].tolist(), rel=1e-12
        )
        expected = dyn.category_stats_as_of(conn, day["last_day"])
        got = category_stats[category_stats["snapshot_month"].dt.date == month]
        got = got.drop(columns="snapshot_month").reset_index(drop=True)
        pd.testing.assert_frame_equal(got, expected, check_dtype=False, check_exact=True)


# --------------------------------------------------------------------------------------------
# The monthly lookups: the behaviour layer's splits, every month at once
# --------------------------------------------------------------------------------------------


def _month_lookups_one_by_one(
    occupation_stats: pd.DataFrame, category_stats: pd.DataFrame, min_customers: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The reference: the behaviour layer's DataFrame functions, month by month."""
    occupations = [
        assign_occupation_groups(stats.drop(columns="snapshot_month"), min_customers).assign(
            snapshot_month=pd.Timestamp(month).date()
        )[["snapshot_month", "occupation", "occupation_group"]]
        for month, stats in occupation_stats.groupby("snapshot_month", sort=True)
    ]
    tiers = [
        assign_price_segments(stats.drop(columns="snapshot_month")).assign(
            snapshot_month=pd.Timestamp(month).date()
        )[dyn.CATEGORY_TIER_SNAPSHOTS.column_names]
        for month, stats in category_stats.groupby("snapshot_month", sort=True)
    ]
    return pd.concat(occupations, ignore_index=True), pd.concat(tiers, ignore_index=True)


_CODES = ["Unknown", "0", "1", "10", "2", "3", "7"]
_CATEGORIES = ["Unknown", "Beauty", "Books", "Clothing", "Electronics", "Toys"]


@settings(max_examples=60, deadline=None)
@given(
    months=st.lists(
        st.tuples(
            st.sets(st.sampled_from(_CODES), min_size=1),
            st.sets(st.sampled_from(_CATEGORIES), min_size=1),
        ),
        min_size=1,
        max_size=4,
    ),
    # few distinct values: ties in the means, medians and customer counts are the rule
    values=st.lists(st.sampled_from([0.5, 1.25, 2.0, 2.0 + 1e-12, 3.5]), min_size=40),
    customers=st.lists(st.integers(0, 6), min_size=40),
    min_customers=st.integers(0, 5),
)
def test_month_lookups_split_every_month_as_the_behaviour_layer_does(
    months: list[tuple[set[str], set[str]]],
    values: list[float],
    customers: list[int],
    min_customers: int,
) -> None:
    # statistics in no particular order, as a query returns them
    occupation_rows, category_rows = [], []
    for index, (codes, categories) in enumerate(months):
        month = pd.Timestamp(date(2025, 12 - index, 1))
        for code in sorted(codes, reverse=True):
            k = len(occupation_rows)
            occupation_rows.append(
                (month, code, customers[k % len(customers)], 3, 9.0, values[k % len(values)])
            )
        for category in sorted(categories, reverse=True):
            k = len(category_rows) + 7
            category_rows.append(
                (month, category, 4, customers[k % len(customers)], 8.0, values[k % len(values)])
            )
    occupation_stats = pd.DataFrame(
        occupation_rows,
        columns=[
            "snapshot_month", "occupation", "customers", "lines", "gross_sales",
            "mean_log1p_amount",
        ],
    )  # fmt: skip
    category_stats = pd.DataFrame(
        category_rows,
        columns=[
            "snapshot_month", "category", "lines", "customers", "gross_sales",
            "median_line_amount",
        ],
    )  # fmt: skip
    expected = _month_lookups_one_by_one(occupation_stats, category_stats, min_customers)
    got = dyn.lookups_from_month_stats(occupation_stats, category_stats, min_customers)
    for got_frame, expected_frame in zip(got, expected, strict=True):
        pd.testing.assert_frame_equal(got_frame, expected_frame)


def test_month_lookups_hand_computed() -> None:
    """Two months; in November 3 of 4 codes are ranked (code 9 has too few customers) and the
    equal means of codes 1 and 2 share the lower tier: ranks 1, 1, 3 of n = 3 -> tiers
    1 + floor(3 * 0 / 3) = 1, 1, 1 + floor(3 * 2 / 3) = 3."""
    november, december = pd.Timestamp("2025-11-01"), pd.Timestamp("2025-12-01")
    occupation_stats = pd.DataFrame(
        {
            "snapshot_month": [december, november, november, november, november],
            "occupation": ["1", "9", "2", "1", "3"],
            "customers": [5, 1, 5, 5, 5],
            "lines": [1] * 5,
            "gross_sales": [1.0] * 5,
            "mean_log1p_amount": [2.0, 9.0, 1.0, 1.0, 3.0],
        }
    )
    category_stats = pd.DataFrame(
        {
            "snapshot_month": [november, november, november],
            "category": ["Toys", "Unknown", "Books"],
            "lines": [1, 2, 3],
            "customers": [1, 1, 1],
            "gross_sales": [1.0] * 3,
            "median_line_amount": [10.0, 99.0, 5.0],
        }
    )
    occupations, tiers = dyn.lookups_from_month_stats(occupation_stats, category_stats, 2)
    assert list(occupations.itertuples(index=False, name=None)) == [
        (date(2025, 11, 1), "1", "Occ_Low"),
        (date(2025, 11, 1), "2", "Occ_Low"),
        (date(2025, 11, 1), "3", "Occ_High"),
        (date(2025, 11, 1), "9", "Occ_Other"),
        # alone in its month: rank 1 of 1 -> tier 1
        (date(2025, 12, 1), "1", "Occ_Low"),
    ]
    # Unknown takes no part: Books rank 1 of 2 -> tier 1, Toys rank 2 -> 1 + floor(3/2) = 2
    assert tiers[["category", "tier_rank", "price_segment"]].values.tolist() == [
        ["Books", 1, "Price_Low"],
        ["Toys", 2, "Price_Mid"],
        ["Unknown", pd.NA, "Unknown"],
    ]
