"""marts.customer_behaviour written again: a new day recomputes only its customers' rows.

Each customer's row is a function of their own lines and the lookups, so the table after a
new day equals the table written whole; anything but new days (a corrected or dropped day, a
changed profile or lookup, rows changed behind the table's back) writes it whole. Hand-built
sale lines (`make_staging`), lookups built as the assets build them, expected rows by hand.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segment_pipeline.assets.behaviour import segments as behaviour_assets
from segment_pipeline.logic import behaviour as beh
from segment_pipeline.logic.behaviour import (
    CATEGORY_PRICE_SEGMENTS,
    CUSTOMER_BEHAVIOUR_SQL,
    OCCUPATION_GROUPS_TABLE,
    BehaviourWrite,
    behaviour_new_days,
    build_category_price_segments,
    build_occupation_groups,
    write_customer_behaviour,
)
from segment_pipeline.tables import (
    ensure_table,
    insert_input_records,
    insert_record_rows,
    replace_rows_from_frame,
    scalar,
)
from segment_pipeline_tests.test_behaviour_assets import _materialize
from segment_pipeline_tests.test_rfm import Line, make_staging

DAY_1: list[Line] = [
    ("o1", "c1", "2025-01-01 10:00:00", "p1", "A", 1, "10.00"),
    ("o1", "c1", "2025-01-01 10:00:00", "p2", "B", 1, "50.00"),
    ("o2", "c2", "2025-01-01 11:00:00", "p1", "A", 1, "8.00"),
]
DAY_2: list[Line] = [
    ("o3", "c1", "2025-01-02 10:00:00", "p2", "B", 1, "40.00"),
    ("o4", "c3", "2025-01-02 10:00:00", "p1", "A", 1, "12.00"),
]
Profiles = dict[str, tuple[str, str, str]]
# c3's age band is Unknown (an occupation first seen on day 2 would change the groups)
PROFILES: Profiles = {
    "c1": ("M", "26-35", "1"),
    "c2": ("F", "36-45", "2"),
    "c3": ("F", "Unknown", "1"),
}


def _warehouse(
    lines: list[Line], profiles: dict[str, tuple[str, str, str]]
) -> duckdb.DuckDBPyConnection:
    conn = make_staging(lines)
    _set_profiles(conn, profiles)
    return conn


def _set_profiles(
    conn: duckdb.DuckDBPyConnection, profiles: dict[str, tuple[str, str, str]]
) -> None:
    conn.execute("DELETE FROM staging.customers")
    for customer, (gender, age_band, occupation) in profiles.items():
        conn.execute(
            "INSERT INTO staging.customers (customer_id, gender, age_band, occupation, "
            "marital_status, city_category) VALUES (?, ?, ?, ?, '0', 'A')",
            [customer, gender, age_band, occupation],
        )


def _add_lines(conn: duckdb.DuckDBPyConnection, lines: list[Line], first_number: int) -> None:
    """Stage `lines` beside the staged ones (line ids continue from `first_number`)."""
    staged = make_staging(lines).execute("SELECT * FROM staging.transactions").df()
    staged["line_id"] = [f"test:{first_number + i}" for i in range(len(staged))]
    conn.register("_new_lines", staged)
    conn.execute("INSERT INTO staging.transactions SELECT * FROM _new_lines")
    conn.unregister("_new_lines")


def _write(conn: duckdb.DuckDBPyConnection) -> BehaviourWrite:
    """The lookups as their assets write them, then the table."""
    replace_rows_from_frame(conn, OCCUPATION_GROUPS_TABLE, build_occupation_groups(conn, 1))
    replace_rows_from_frame(conn, CATEGORY_PRICE_SEGMENTS, build_category_price_segments(conn))
    return write_customer_behaviour(conn)


def _rows(conn: duckdb.DuckDBPyConnection) -> list[tuple]:
    return conn.execute("SELECT * FROM marts.customer_behaviour ORDER BY customer_id").fetchall()


def _whole(conn: duckdb.DuckDBPyConnection) -> list[tuple]:
    """The table as the whole query computes it now."""
    return sorted(conn.execute(CUSTOMER_BEHAVIOUR_SQL).fetchall())


def _recorded_days(conn: duckdb.DuckDBPyConnection) -> list[str]:
    return [
        d.isoformat()
        for (d,) in conn.execute(
            "SELECT partition_date FROM marts.customer_behaviour_inputs ORDER BY 1"
        ).fetchall()
    ]


def test_a_new_day_recomputes_only_its_customers_hand_computed() -> None:
    conn = _warehouse(DAY_1, PROFILES)
    first = _write(conn)
    assert (first.mode, first.rows, first.recomputed) == ("full", 2, 2)
    assert first.reason == "no inputs recorded"
    assert _recorded_days(conn) == ["2025-01-01"]

    _add_lines(conn, DAY_2, first_number=len(DAY_1) + 1)
    second = _write(conn)
    # c1 and c3 have lines on 01-02; c2 keeps its row
    assert (second.mode, second.rows, second.recomputed, second.new_days) == (
        "incremental",
        3,
        2,
        1,
    )
    assert second.reason == ""
    assert _recorded_days(conn) == ["2025-01-01", "2025-01-02"]
    rows = {
        r[0]: r
        for r in conn.execute(
            "SELECT customer_id, price_segment, spend_price_low, spend_price_mid, lines, orders, "
            "spend, unknown_demographics FROM marts.customer_behaviour"
        ).fetchall()
    }
    # median line amounts: A (10, 8, 12) -> 10, B (50, 40) -> 45: two categories, A the lower
    # tier (Price_Low) and B the next (Price_Mid), as on day 1 alone (A 9, B 50)
    # c1: A 10.00 + B 50.00 + B 40.00 -> low 10, mid 90, Price_Mid; 3 lines, orders o1 o3
    assert rows["c1"] == ("c1", "Price_Mid", 10.0, 90.0, 3, 2, 100.0, False)
    # c2: only day 1's A 8.00
    assert rows["c2"] == ("c2", "Price_Low", 8.0, 0.0, 1, 1, 8.0, False)
    # c3: Unknown age band (unknown_demographics), one A line of 12.00
    assert rows["c3"] == ("c3", "Price_Low", 12.0, 0.0, 1, 1, 12.0, True)
    assert _rows(conn) == _whole(conn)
    assert conn.execute(
        "SELECT DISTINCT rows_written FROM marts.customer_behaviour_inputs"
    ).fetchall() == [(3,)]


def test_nothing_new_writes_nothing() -> None:
    conn = _warehouse(DAY_1 + DAY_2, PROFILES)
    _write(conn)
    before = _rows(conn)
    again = _write(conn)
    assert (again.mode, again.recomputed, again.new_days) == ("unchanged", 0, 0)
    assert _rows(conn) == before


def _day_2_corrected(conn: duckdb.DuckDBPyConnection) -> None:
    conn.execute("UPDATE staging.transactions SET amount = 41.00 WHERE order_id = 'o3'")


def _day_2_dropped(conn: duckdb.DuckDBPyConnection) -> None:
    conn.execute("DELETE FROM staging.transactions WHERE partition_date = DATE '2025-01-02'")


def _profile_changed(conn: duckdb.DuckDBPyConnection) -> None:
    _set_profiles(conn, {**PROFILES, "c2": ("M", "36-45", "2")})


def _category_changed(conn: duckdb.DuckDBPyConnection) -> None:
    # o4's line moves from A to B: day 2's digest changes, and so do the price tiers
    conn.execute("UPDATE staging.transactions SET category = 'B' WHERE order_id = 'o4'")


def _row_deleted(conn: duckdb.DuckDBPyConnection) -> None:
    conn.execute("DELETE FROM marts.customer_behaviour WHERE customer_id = 'c2'")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (_day_2_corrected, "a staged day it was computed from changed or is gone"),
        (_day_2_dropped, "a staged day it was computed from changed or is gone"),
        (_category_changed, "a staged day it was computed from changed or is gone"),
        (_profile_changed, "a lookup (customers, products, groups, tiers) or the SQL changed"),
        (_row_deleted, "the table's rows changed since it was written"),
    ],
)
def test_anything_but_new_days_writes_the_table_whole(change, reason: str) -> None:
    conn = _warehouse(DAY_1 + DAY_2, PROFILES)
    _write(conn)
    change(conn)
    written = _write(conn)
    assert (written.mode, written.reason) == ("full", reason)
    assert written.recomputed == written.rows == len(_whole(conn))
    assert _rows(conn) == _whole(conn)


def test_a_new_day_that_moves_a_category_to_another_tier_writes_the_table_whole() -> None:
    """A new day can move a category's tier (its median line amount passes another's): then
    customers without a line that day change too, so the table is written whole."""
    conn = _warehouse(DAY_1, PROFILES)
    _write(conn)
    assert conn.execute(
        "SELECT price_segment FROM marts.customer_behaviour WHERE customer_id = 'c2'"
    ).fetchall() == [("Price_Low",)]
    # A's lines 10, 8, 200, 300: median 105 against B's 50 -> A Price_Mid, B Price_Low
    _add_lines(
        conn,
        [
            ("o7", "c3", "2025-01-02 10:00:00", "p1", "A", 1, "200.00"),
            ("o8", "c3", "2025-01-02 11:00:00", "p1", "A", 1, "300.00"),
        ],
        first_number=len(DAY_1) + 1,
    )
    written = _write(conn)
    assert (written.mode, written.reason) == (
        "full",
        "a lookup (customers, products, groups, tiers) or the SQL changed",
    )
    # c2 has no line on the new day, yet its only category is now the middle tier
    assert conn.execute(
        "SELECT price_segment FROM marts.customer_behaviour WHERE customer_id = 'c2'"
    ).fetchall() == [("Price_Mid",)]
    assert _rows(conn) == _whole(conn)


def test_a_failed_write_keeps_the_table_and_its_record(monkeypatch: pytest.MonkeyPatch) -> None:
    conn = _warehouse(DAY_1, PROFILES)
    _write(conn)
    before = (_rows(conn), _recorded_days(conn))
    _add_lines(conn, DAY_2, first_number=len(DAY_1) + 1)
    real = beh.replace_rows

    def insert_then_fail(*args, **kwargs):
        real(*args, **kwargs)
        raise RuntimeError("disk full")

    monkeypatch.setattr(beh, "replace_rows", insert_then_fail)
    with pytest.raises(RuntimeError, match="disk full"):
        _write(conn)
    assert (_rows(conn), _recorded_days(conn)) == before
    monkeypatch.undo()
    assert _write(conn).mode == "incremental"  # the next run picks the day up
    assert _rows(conn) == _whole(conn)


def test_changed_customer_lines_are_the_views_lines_of_those_customers() -> None:
    """The incremental write reads the lines of its customers filtered before the joins to
    the masters (changed_customer_lines.sql); they must be the view's rows exactly: the
    product's category for a line without one, Unknown demographics without a profile."""
    lines: list[Line] = [
        *DAY_1,
        ("o5", "c3", "2025-01-02 10:00:00", "p9", "", 1, "4.00"),
        ("o6", "c4", "2025-01-02 10:00:00", "p9", "", 1, "6.00"),
    ]
    conn = _warehouse(lines, {"c1": PROFILES["c1"], "c2": PROFILES["c2"]})
    conn.execute(
        "INSERT INTO staging.products (product_id, product_name, category) "
        "VALUES ('p9', 'Nine', 'C')"
    )
    conn.execute(
        "CREATE TEMP TABLE _behaviour_changed_customers AS "
        "SELECT * FROM (VALUES ('c1'), ('c4')) AS v (customer_id)"
    )
    filtered = sorted(conn.execute(beh.CHANGED_CUSTOMER_LINES_SQL).fetchall())
    through_view = sorted(
        conn.execute(
            "SELECT * FROM staging.sales_lines "
            "WHERE customer_id IN (SELECT customer_id FROM _behaviour_changed_customers)"
        ).fetchall()
    )
    assert filtered == through_view and len(filtered) == 3
    assert {(r[3], r[7], r[13]) for r in filtered} == {
        ("c1", "A", "1"),
        ("c1", "B", "1"),
        ("c4", "C", "Unknown"),
    }
    assert "staging.sales_lines AS l" in beh.CUSTOMER_BEHAVIOUR_SQL
    assert "staging.sales_lines AS l" not in beh._CHANGED_CUSTOMERS_BEHAVIOUR_SQL


def test_new_days_are_none_when_a_recorded_day_changed_or_is_gone() -> None:
    d1, d2, d3 = (f"2025-01-0{i}" for i in (1, 2, 3))
    assert behaviour_new_days({d1: "a", d2: "b", d3: "c"}, {d1: "a"}) == [d2, d3]
    assert behaviour_new_days({d1: "a"}, {d1: "a"}) == []
    assert behaviour_new_days({d1: "x", d2: "b"}, {d1: "a"}) is None
    assert behaviour_new_days({d2: "b"}, {d1: "a"}) is None


_CUSTOMERS = ["c1", "c2", "c3", "c4"]
_day_lines = st.lists(
    st.tuples(
        st.sampled_from(_CUSTOMERS),
        st.sampled_from(["A", "B", "C", ""]),  # "": the product master's category
        st.sampled_from(["3.00", "10.00", "25.50", "80.00"]),
        st.integers(0, 1),  # which of the customer's two orders that day
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    first=st.lists(_day_lines, min_size=1, max_size=3),
    steps=st.lists(
        st.one_of(
            st.tuples(st.just("add"), _day_lines),
            st.tuples(st.just("correct"), st.integers(0, 5)),
            st.tuples(st.just("drop"), st.integers(0, 5)),
            st.tuples(st.just("profile"), st.sampled_from(_CUSTOMERS)),
        ),
        min_size=1,
        max_size=3,
    ),
)
def test_written_again_equals_the_table_written_whole(first: list, steps: list) -> None:
    """Random days, then new days, corrected or dropped days and changed profiles: after each
    write the table equals the whole query's, and only a step that adds days updates it in
    place."""
    days: list[list[Line]] = []
    number = 0

    def day_lines(day_index: int, raw: list) -> list[Line]:
        stamp = f"2025-02-{day_index + 1:02d} 10:00:00"
        return [
            (
                f"o{day_index}-{customer}-{order}",
                customer,
                stamp,
                f"p-{category}",
                category,
                1,
                price,
            )
            for customer, category, price, order in raw
        ]

    conn = _warehouse([], {"c1": ("M", "26-35", "1"), "c2": ("F", "18-25", "4")})
    conn.execute(
        "INSERT INTO staging.products (product_id, product_name, category) "
        "VALUES ('p-', 'Unlabelled', 'B')"
    )
    for raw in first:
        days.append(day_lines(len(days), raw))
        _add_lines(conn, days[-1], number)
        number += len(days[-1])
    _write(conn)
    assert _rows(conn) == _whole(conn)
    for kind, arg in steps:
        if kind == "add":
            days.append(day_lines(len(days), arg))
            _add_lines(conn, days[-1], number)
            number += len(days[-1])
        elif kind == "correct":
            day = f"2025-02-{arg % len(days) + 1:02d}"
            conn.execute(
                "UPDATE staging.transactions SET amount = amount + 1 WHERE partition_date = ?",
                [day],
            )
        elif kind == "drop":
            day = f"2025-02-{arg % len(days) + 1:02d}"
            conn.execute("DELETE FROM staging.transactions WHERE partition_date = ?", [day])
        else:
            _set_profiles(conn, {arg: ("F", "55+", "9")})
        written = _write(conn)
        assert _rows(conn) == _whole(conn), (kind, written)
        if written.mode == "incremental":
            assert kind == "add"
        recorded = conn.execute(
            "SELECT count(*), count(DISTINCT rows_written) FROM marts.customer_behaviour_inputs"
        ).fetchall()[0]
        staged_days = conn.execute(
            "SELECT count(DISTINCT partition_date) FROM staging.transactions"
        ).fetchall()[0][0]
        assert recorded[0] == staged_days and recorded[1] <= 1


@pytest.mark.e2e
def test_a_new_day_through_the_asset(staged_sample_db, copy_db, instance) -> None:
    """The sample staged, its last day held back: the asset writes the table whole, then,
    with that day staged, recomputes only that day's customers (its metadata says so) and
    the table equals the whole query; the check passes both times."""
    db = copy_db(staged_sample_db)
    with duckdb.connect(str(db)) as conn:
        last = conn.execute("SELECT max(partition_date) FROM staging.transactions").fetchall()[0][0]
        conn.execute(
            "CREATE TABLE main.held AS SELECT * FROM staging.transactions WHERE partition_date = ?",
            [last],
        )
        conn.execute("DELETE FROM staging.transactions WHERE partition_date = ?", [last])
        day_customers = conn.execute(
            "SELECT count(DISTINCT customer_id) FROM main.held"
        ).fetchall()[0][0]
    selection = [
        behaviour_assets.OCCUPATION_KEY,
        behaviour_assets.PRICE_KEY,
        behaviour_assets.CUSTOMER_KEY,
    ]
    metadata = []
    for step in ("before", "after"):
        if step == "after":
            with duckdb.connect(str(db)) as conn:
                conn.execute("INSERT INTO staging.transactions SELECT * FROM main.held")
        result = _materialize(db, instance, behaviour_assets.BehaviourSettings(), selection)
        assert result.success
        checks = result.get_asset_check_evaluations()
        assert [c.passed for c in checks if c.check_name == "every_customer_once"] == [True]
        event = result.get_asset_materialization_events()
        metadata.append(
            next(
                e.materialization.metadata
                for e in event
                if e.asset_key == behaviour_assets.CUSTOMER_KEY
            )
        )
    assert [m["write_mode"].value for m in metadata] == ["full", "incremental"]
    assert metadata[1]["customers_recomputed"].value == day_customers > 0
    assert metadata[1]["new_days"].value == 1
    with duckdb.connect(str(db), read_only=True) as conn:
        assert _rows(conn) == _whole(conn)


def test_input_records_are_one_row_per_key() -> None:
    """`insert_input_records` writes a row per key with its digest, the settings digest and
    the row count, stamped now (UTC); no key, no row; a column left without a value, or lists
    of different lengths, are refused. (It replaced `executemany`, one INSERT per row: about
    1 s for an export spanning 1,235 days.)"""
    conn = duckdb.connect()
    ensure_table(conn, beh.CUSTOMER_BEHAVIOUR_INPUTS)
    before = datetime.now(UTC).replace(tzinfo=None)
    insert_input_records(conn, beh.CUSTOMER_BEHAVIOUR_INPUTS, {}, "s", 7)
    assert scalar(conn, f"SELECT count(*) FROM {beh.CUSTOMER_BEHAVIOUR_INPUTS.fqn}") == 0
    days = {date(2025, 1, 2): "2:-5", date(2025, 1, 1): "3:17", date(2028, 5, 19): "1:4"}
    insert_input_records(conn, beh.CUSTOMER_BEHAVIOUR_INPUTS, days, "settings-x", 42)
    rows = conn.execute(
        f"SELECT * FROM {beh.CUSTOMER_BEHAVIOUR_INPUTS.fqn} ORDER BY partition_date"
    ).fetchall()
    assert [row[:4] for row in rows] == [
        (date(2025, 1, 1), "3:17", "settings-x", 42),
        (date(2025, 1, 2), "2:-5", "settings-x", 42),
        (date(2028, 5, 19), "1:4", "settings-x", 42),
    ]
    after = datetime.now(UTC).replace(tzinfo=None)
    assert all(
        before - timedelta(seconds=1) <= row[4] <= after + timedelta(seconds=1) for row in rows
    )
    with pytest.raises(ValueError, match="no value for column rows_written"):
        insert_record_rows(
            conn,
            beh.CUSTOMER_BEHAVIOUR_INPUTS,
            {"partition_date": [date(2025, 1, 3)], "digest": ["1:1"]},
            {"settings_digest": "s"},
        )
    with pytest.raises(ValueError, match="different lengths"):
        insert_record_rows(
            conn,
            beh.CUSTOMER_BEHAVIOUR_INPUTS,
            {"partition_date": [date(2025, 1, 3)], "digest": []},
            {"settings_digest": "s", "rows_written": 1},
        )
    assert scalar(conn, f"SELECT count(*) FROM {beh.CUSTOMER_BEHAVIOUR_INPUTS.fqn}") == 3
