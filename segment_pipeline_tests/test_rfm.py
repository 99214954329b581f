"""RFM values, scores, segments and the segment map validator (segment_pipeline.logic.rfm).

Expected values are worked out by hand in the comments from the definitions in
docs/rfm_and_preference.md; invariants are checked with hypothesis on random small data.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import duckdb
import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segment_pipeline.logic.rfm import (
    ALL_CELLS,
    RF_CELL_COUNTS_SQL,
    RFM_CUSTOMER_SEGMENTS,
    RFM_CUSTOMER_SEGMENTS_SQL,
    SEGMENT_NAMES,
    RfmWindow,
    RfmWindowError,
    SegmentMapError,
    load_segment_map,
    parse_segment_map,
    read_window,
    replace_rfm_summary,
    resolve_window,
    rf_grid_counts,
    rfm_params,
)
from segment_pipeline.logic.staging import STAGED_TRANSACTIONS, ensure_staging_tables
from segment_pipeline.tables import replace_rows

# --------------------------------------------------------------------------------------------
# Helpers (also used by test_preference.py)
# --------------------------------------------------------------------------------------------

#: (order_id, customer_id, order_ts, product_id, category, quantity, unit_price)
Line = tuple[str, str, str, str, str, int, str]


def make_staging(lines: list[Line]) -> duckdb.DuckDBPyConnection:
    """An in-memory warehouse whose staging.transactions holds exactly `lines`."""
    conn = duckdb.connect()
    ensure_staging_tables(conn)
    frame = pd.DataFrame(
        lines,
        columns=[
            "order_id",
            "customer_id",
            "ts",
            "product_id",
            "category",
            "quantity",
            "unit_price",
        ],
    )
    frame["n"] = range(1, len(frame) + 1)
    conn.register("_lines", frame)
    values = {
        "line_id": "'test:' || n",
        "partition_date": "CAST(CAST(ts AS TIMESTAMP) AS DATE)",
        "order_id": "order_id",
        "customer_id": "customer_id",
        "order_ts": "CAST(ts AS TIMESTAMP)",
        "product_id": "product_id",
        "product_name": "'Product ' || product_id",
        "category": "category",
        "quantity": "CAST(quantity AS BIGINT)",
        "unit_price": "CAST(unit_price AS DECIMAL(18,4))",
        "amount": "CAST(quantity * CAST(unit_price AS DECIMAL(18,4)) AS DECIMAL(18,4))",
        "source_file": "'test'",
        "source_line": "n",
    }
    cols = [c for c in STAGED_TRANSACTIONS.column_names if c in values]
    conn.execute(
        f"INSERT INTO staging.transactions ({', '.join(cols)}) "
        f"SELECT {', '.join(values[c] for c in cols)} FROM _lines"
    )
    conn.unregister("_lines")
    return conn


def build_rfm(conn: duckdb.DuckDBPyConnection, **window_args: object) -> pd.DataFrame:
    """Resolve the window, write marts.rfm_customer_segments with the default map, return it
    indexed by customer_id."""
    window = resolve_window(conn, **window_args)  # type: ignore[arg-type]
    replace_rows(
        conn,
        RFM_CUSTOMER_SEGMENTS,
        RFM_CUSTOMER_SEGMENTS_SQL,
        rfm_params(window, load_segment_map()),
    )
    return conn.execute("SELECT * FROM marts.rfm_customer_segments").df().set_index("customer_id")


# --------------------------------------------------------------------------------------------
# Worked example: five customers, ties in every dimension, one-order customers
# --------------------------------------------------------------------------------------------

WORKED: list[Line] = [
    # A: two orders; last on 01-10. 10 + 5 + 20 = 35
    ("O1", "A", "2026-01-01 10:00:00", "P1", "X", 1, "10.00"),
    ("O1", "A", "2026-01-01 10:00:00", "P2", "X", 1, "5.00"),
    ("O2", "A", "2026-01-10 12:00:00", "P1", "X", 2, "10.00"),
    # B: one order (a one-order customer) on 01-05, 50
    ("O3", "B", "2026-01-05 09:00:00", "P3", "Y", 1, "50.00"),
    # C: two orders, last on 01-08. 30 + 5 = 35 (same spend as A)
    ("O4", "C", "2026-01-02 11:00:00", "P3", "Y", 3, "10.00"),
    ("O5", "C", "2026-01-08 11:00:00", "P2", "X", 1, "5.00"),
    # D: three orders, last on 01-05 (same day as B). 5 + 5 + 5.5 = 15.5
    ("O6", "D", "2026-01-01 15:00:00", "P2", "X", 1, "5.00"),
    ("O7", "D", "2026-01-03 15:00:00", "P2", "X", 1, "5.00"),
    ("O8", "D", "2026-01-05 15:00:00", "P4", "Y", 1, "5.50"),
    # E: one order on 01-10 (same day as A): 3 x 2.00 = 6
    ("O9", "E", "2026-01-10 20:00:00", "P4", "Y", 3, "2.00"),
]


def test_worked_example_values_scores_and_segments() -> None:
    rfm = build_rfm(make_staging(WORKED))
    # as_of = day after the last line (2026-01-10)
    assert set(rfm["as_of"]) == {pd.Timestamp("2026-01-11")}
    # recency = as_of - last purchase: A 11-10=1, B 11-5=6, C 11-8=3, D 6, E 1
    assert rfm["recency_days"].to_dict() == {"A": 1, "B": 6, "C": 3, "D": 6, "E": 1}
    assert rfm["frequency"].to_dict() == {"A": 2, "B": 1, "C": 2, "D": 3, "E": 1}
    assert {k: float(v) for k, v in rfm["monetary"].items()} == {
        "A": 35.0,
        "B": 50.0,
        "C": 35.0,
        "D": 15.5,
        "E": 6.0,
    }
    # score = 1 + floor(5 * (rank_min - 1) / 5) = rank_min here (n = 5).
    # R ranks recency descending: 6,6 (B,D) -> rank 1; 3 (C) -> 3; 1,1 (A,E) -> 4.
    assert rfm["r_score"].to_dict() == {"A": 4, "B": 1, "C": 3, "D": 1, "E": 4}
    # F ascending: 1,1 (B,E) -> 1; 2,2 (A,C) -> 3; 3 (D) -> 5.
    assert rfm["f_score"].to_dict() == {"A": 3, "B": 1, "C": 3, "D": 5, "E": 1}
    # M ascending: 6 (E) 1; 15.5 (D) 2; 35,35 (A,C) 3; 50 (B) 5.
    assert rfm["m_score"].to_dict() == {"A": 3, "B": 5, "C": 3, "D": 2, "E": 1}
    assert rfm["rf_cell"].to_dict() == {
        "A": "R4F3",
        "B": "R1F1",
        "C": "R3F3",
        "D": "R1F5",
        "E": "R4F1",
    }
    assert rfm["rfm_code"]["B"] == "115"
    # Segments from the SPEC grid
    assert rfm["segment"].to_dict() == {
        "A": "Potential Loyalists",
        "B": "Hibernating",
        "C": "Need Attention",
        "D": "Can't Lose Them",
        "E": "Promising",
    }
    assert rfm.loc["A", "first_purchase_date"] == pd.Timestamp("2026-01-01")
    assert rfm.loc["A", "last_purchase_date"] == pd.Timestamp("2026-01-10")


def test_scores_split_ten_distinct_values_into_quintiles() -> None:
    # customer k (1..10) has k one-line orders, all on 2026-01-01 except one extra day so
    # recency is not degenerate: F rank = k, score = 1 + floor(5 * (k - 1) / 10)
    lines: list[Line] = []
    for k in range(1, 11):
        for o in range(k):
            lines.append((f"O{k}-{o}", f"C{k:02d}", "2026-01-01 10:00:00", "P1", "X", 1, "1.00"))
    rfm = build_rfm(make_staging(lines))
    expected = {f"C{k:02d}": 1 + (5 * (k - 1)) // 10 for k in range(1, 11)}
    assert expected == {
        "C01": 1,
        "C02": 1,
        "C03": 2,
        "C04": 2,
        "C05": 3,
        "C06": 3,
        "C07": 4,
        "C08": 4,
        "C09": 5,
        "C10": 5,
    }
    assert rfm["f_score"].to_dict() == expected
    # spend = k, so M follows F exactly
    assert rfm["m_score"].to_dict() == expected
    # every recency is equal (1 day): all share rank 1 -> R score 1
    assert set(rfm["r_score"]) == {1}


def test_degenerate_single_day_data_gets_one_r_score_without_crashing() -> None:
    # Black Friday style: one day, every line its own order
    lines: list[Line] = [
        (f"L{i}", f"U{i % 4}", "2024-11-29 00:00:00", f"P{i % 3}", "1", 1, f"{10 + i}.00")
        for i in range(12)
    ]
    rfm = build_rfm(make_staging(lines))
    assert len(rfm) == 4
    assert set(rfm["recency_days"]) == {1}
    assert set(rfm["r_score"]) == {1}  # equal values, equal scores
    assert set(rfm["frequency"]) == {3}
    assert set(rfm["segment"]) <= {"Hibernating", "At Risk", "Can't Lose Them"}
    assert rfm["segment"].notna().all()


def test_configured_as_of_ends_the_window_before_it() -> None:
    conn = make_staging(WORKED)
    window = resolve_window(conn, as_of=date(2026, 1, 6))
    assert window == RfmWindow(start=date(2026, 1, 1), end=date(2026, 1, 5), as_of=date(2026, 1, 6))
    rfm = build_rfm(conn, as_of=date(2026, 1, 6))
    # E's only order (01-10) is after as_of; A's last purchase in the window is 01-01 (5 days)
    assert sorted(rfm.index) == ["A", "B", "C", "D"]
    assert rfm["recency_days"].to_dict() == {"A": 5, "B": 1, "C": 4, "D": 1}
    assert float(rfm.loc["A", "monetary"]) == 15.0  # O1 only: 10 + 5
    assert read_window(conn) == window


def test_lookback_window_and_explicit_bounds() -> None:
    conn = make_staging(WORKED)
    # as_of 01-11 (default), last 5 days: 01-06 .. 01-10 -> orders O2 (A), O5 (C), O9 (E)
    rfm = build_rfm(conn, lookback_days=5)
    assert sorted(rfm.index) == ["A", "C", "E"]
    assert rfm["frequency"].to_dict() == {"A": 1, "C": 1, "E": 1}
    assert set(rfm["window_start"]) == {pd.Timestamp("2026-01-06")}
    # window_end 01-03: as_of defaults to the day after the last line up to it (01-03 + 1)
    window = resolve_window(conn, window_start=date(2026, 1, 2), window_end=date(2026, 1, 3))
    assert window == RfmWindow(start=date(2026, 1, 2), end=date(2026, 1, 3), as_of=date(2026, 1, 4))


def test_empty_window_is_a_clear_error() -> None:
    conn = make_staging(WORKED)
    with pytest.raises(RfmWindowError, match="no staged sale lines"):
        resolve_window(conn, window_start=date(2027, 1, 1))
    with pytest.raises(RfmWindowError, match="after its end"):
        resolve_window(conn, window_start=date(2026, 1, 5), window_end=date(2026, 1, 2))
    with pytest.raises(RfmWindowError, match="no staged sale lines"):
        resolve_window(make_staging([]))


def test_rfm_summary_worked_example() -> None:
    conn = make_staging(WORKED)
    build_rfm(conn)
    replace_rfm_summary(conn, load_segment_map().segments_param())
    summary = conn.execute("SELECT * FROM marts.rfm_summary").df().set_index("segment")
    # every segment of the map is listed, in map order, empty ones with 0 customers
    assert list(summary.index) == list(SEGMENT_NAMES)
    assert summary.loc["Champions", "customers"] == 0
    assert summary.loc["Champions", "customer_share"] == 0
    # five customers in five segments: 1/5 each
    assert summary.loc["Potential Loyalists", "customer_share"] == pytest.approx(0.2)
    # total revenue 35 + 50 + 35 + 15.5 + 6 = 141.5
    assert summary.loc["Hibernating", "revenue_share"] == pytest.approx(50 / 141.5)
    # A (Potential Loyalists): 35 over 2 orders -> AOV 17.5; D: 15.5 / 3
    assert summary.loc["Potential Loyalists", "aov"] == pytest.approx(17.5)
    assert summary.loc["Can't Lose Them", "aov"] == pytest.approx(15.5 / 3)
    assert summary.loc["Can't Lose Them", "mean_frequency"] == 3
    assert summary["customer_share"].sum() == pytest.approx(1)
    assert summary["revenue_share"].sum() == pytest.approx(1)


def test_rf_grid_counts_places_customers_in_cells() -> None:
    conn = make_staging(WORKED)
    build_rfm(conn)
    grid = rf_grid_counts(conn.execute(RF_CELL_COUNTS_SQL).df()).set_index("R \\ F")
    assert list(grid.index) == ["R5", "R4", "R3", "R2", "R1"]
    # cells of the worked example: A R4F3, B R1F1, C R3F3, D R1F5, E R4F1; others 0
    assert grid.loc["R4", "F3"] == grid.loc["R1", "F1"] == grid.loc["R3", "F3"] == 1
    assert grid.loc["R1", "F5"] == grid.loc["R4", "F1"] == 1
    assert int(grid.to_numpy().sum()) == 5


# --------------------------------------------------------------------------------------------
# Invariants on random data
# --------------------------------------------------------------------------------------------

random_lines = st.lists(
    st.tuples(
        st.integers(0, 7),  # customer
        st.integers(0, 5),  # order number within the customer
        st.integers(0, 3),  # product
        st.integers(1, 3),  # quantity
        st.sampled_from(["0.00", "1.00", "2.50", "9.99", "10.00"]),
    ),
    min_size=1,
    max_size=40,
)


def _to_lines(raw: list[tuple]) -> list[Line]:
    lines = []
    for customer, order, product, qty, price in raw:
        # all lines of an order share its timestamp, as real orders do; days repeat across
        # customers so recency ties occur
        ts = pd.Timestamp("2026-03-01") + pd.Timedelta(days=(customer * 3 + order * 5) % 17)
        lines.append(
            (
                f"O{customer}-{order}",
                f"C{customer}",
                str(ts),
                f"P{product}",
                f"K{product % 2}",
                qty,
                price,
            )
        )
    return lines


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_lines)
def test_every_customer_in_exactly_one_segment_and_ties_share_scores(raw: list[tuple]) -> None:
    lines = _to_lines(raw)
    conn = make_staging(lines)
    rfm = build_rfm(conn).reset_index()
    customers = {line[1] for line in lines}
    assert sorted(rfm["customer_id"]) == sorted(customers)  # exactly one row each
    assert rfm["segment"].isin(SEGMENT_NAMES).all()
    segment_map = load_segment_map()
    for row in rfm.itertuples():
        assert row.segment == segment_map.segment_of(row.r_score, row.f_score)
    for value, score, higher_is_better in (
        ("recency_days", "r_score", False),
        ("frequency", "f_score", True),
        ("monetary", "m_score", True),
    ):
        assert rfm[score].between(1, 5).all()
        # equal values -> equal scores; better value -> score at least as high
        for _, group in rfm.groupby(value):
            assert group[score].nunique() == 1
        ordered = rfm.sort_values(value, ascending=higher_is_better)
        assert ordered[score].is_monotonic_increasing
    replace_rfm_summary(conn, segment_map.segments_param())
    summary = conn.execute("SELECT * FROM marts.rfm_summary").df()
    assert summary["customers"].sum() == len(customers)
    assert summary["customer_share"].sum() == pytest.approx(1)
    total = sum(qty * float(price) for *_, qty, price in lines)
    if total > 0:
        assert summary["revenue_share"].sum() == pytest.approx(1)
        assert summary["revenue"].sum() == pytest.approx(total)


# --------------------------------------------------------------------------------------------
# Segment map
# --------------------------------------------------------------------------------------------

#: SPEC section 3, row by row (R = 5 first), F = 1..5.
SPEC_GRID = {
    5: ["New Customers", "Potential Loyalists", "Potential Loyalists", "Champions", "Champions"],
    4: [
        "Promising",
        "Potential Loyalists",
        "Potential Loyalists",
        "Loyal Customers",
        "Loyal Customers",
    ],
    3: ["About To Sleep", "About To Sleep", "Need Attention", "Loyal Customers", "Loyal Customers"],
    2: ["Hibernating", "Hibernating", "At Risk", "At Risk", "Can't Lose Them"],
    1: ["Hibernating", "Hibernating", "At Risk", "At Risk", "Can't Lose Them"],
}


def test_default_map_is_the_spec_grid() -> None:
    segment_map = load_segment_map()
    for r, row in SPEC_GRID.items():
        for f, name in enumerate(row, start=1):
            assert segment_map.segment_of(r, f) == name, (r, f)
    assert segment_map.segments == SEGMENT_NAMES


def _cells_map(assignment: dict[tuple[int, int], str]) -> dict:
    """A map in the `cells` form from a cell -> segment assignment."""
    by_segment: dict[str, list[list[int]]] = {}
    for (r, f), name in sorted(assignment.items()):
        by_segment.setdefault(name, []).append([r, f])
    return {"segments": [{"name": n, "cells": c} for n, c in by_segment.items()]}


def test_user_map_file_replaces_the_default(tmp_path: Path) -> None:
    # everything Hibernating except R5 = Champions, written in the r/f and cells forms
    user = {
        "segments": [
            {"name": "Champions", "r": [5], "f": [1, 2, 3, 4, 5]},
            {
                "name": "Hibernating",
                "r": [1, 2, 3],
                "f": [1, 2, 3, 4, 5],
                "cells": [[4, f] for f in range(1, 6)],
            },
        ]
    }
    path = tmp_path / "my_map.yaml"
    path.write_text(yaml.safe_dump(user), encoding="utf-8")
    segment_map = load_segment_map(path)
    assert segment_map.segments == ("Champions", "Hibernating")
    assert segment_map.segment_of(5, 1) == "Champions"
    assert segment_map.segment_of(4, 5) == "Hibernating"
    rfm_conn = make_staging(WORKED)
    window = resolve_window(rfm_conn)
    replace_rows(
        rfm_conn, RFM_CUSTOMER_SEGMENTS, RFM_CUSTOMER_SEGMENTS_SQL, rfm_params(window, segment_map)
    )
    segments = dict(
        rfm_conn.execute("SELECT customer_id, segment FROM marts.rfm_customer_segments").fetchall()
    )
    # no customer has R = 5 in the worked example (see above): all Hibernating
    assert set(segments.values()) == {"Hibernating"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("segments: []", "non-empty list"),
        ("- just a list", "expected a mapping"),
        ("segments:\n  - name: Champions\n    r: [5]\n    r: [4]\n    f: [1]", "duplicate key 'r'"),
        (
            "segments:\n  - name: Champions\n    r: [1, 2, 3, 4, 5]\n    f: [1, 2, 3, 4, 5]\n"
            "  - name: Champions\n    r: [1]\n    f: [1]",
            "listed twice",
        ),
        (
            "segments:\n  - name: ''\n    r: [1, 2, 3, 4, 5]\n    f: [1, 2, 3, 4, 5]",
            "missing or empty segment name",
        ),
        (
            "segments:\n  - name: Champs\n    r: [1, 2, 3, 4, 5]\n    f: [1, 2, 3, 4, 5]",
            "unknown segment name 'Champs'",
        ),
        (
            "segments:\n  - name: Champions\n    r: [0, 1, 2, 3, 4, 5]\n    f: [1, 2, 3, 4, 5]",
            "outside 1-5",
        ),
        (
            "segments:\n  - name: Champions\n    r: [1, 2, 3, 4, 5]\n    f: [1, 2, 3, 4, 5.5]",
            "outside 1-5",
        ),
        (
            "segments:\n  - name: Champions\n    r: [1, 2, 3, 4, 5]\n    f: [1, 2, 3, 4, true]",
            "outside 1-5",
        ),
        ("segments:\n  - name: Champions\n    r: [1, 2, 3, 4, 5]", "needs both `r` and `f`"),
        (
            "segments:\n  - name: Champions\n    r: [1, 2, 3, 4, 5]\n    f: [1, 2, 3, 4, 5]\n"
            "    colour: red",
            "unknown keys",
        ),
        (
            "segments:\n  - name: Champions\n    r: [1, 2, 3, 4, 5]\n    f: [1, 2, 3, 4]",
            "not covered by any segment: R1F5, R2F5, R3F5, R4F5, R5F5",
        ),
        (
            "segments:\n  - name: Champions\n    r: [1, 2, 3, 4, 5]\n    f: [1, 2, 3, 4, 5]\n"
            "  - name: Hibernating\n    cells: [[1, 1]]",
            "cell R1F1 is covered 2 times",
        ),
    ],
)
def test_malformed_maps_are_rejected_with_a_clear_message(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "map.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SegmentMapError, match="Invalid segment map") as err:
        load_segment_map(path)
    assert message in str(err.value)
    assert str(path) in str(err.value)


def test_missing_map_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SegmentMapError, match="not found"):
        load_segment_map(tmp_path / "nope.yaml")


assignments = st.lists(st.sampled_from(SEGMENT_NAMES), min_size=25, max_size=25).map(
    lambda names: dict(zip(ALL_CELLS, names, strict=True))
)


@settings(max_examples=40, deadline=None)
@given(assignments)
def test_any_complete_assignment_is_accepted(assignment: dict) -> None:
    segment_map = parse_segment_map(_cells_map(assignment))
    assert dict(segment_map.cells) == assignment


MUTATIONS = (
    "drop_cell",
    "duplicate_cell",
    "bad_score",
    "unknown_name",
    "empty_name",
    "repeat_segment",
)


@settings(max_examples=50, deadline=None)
@given(assignments, st.sampled_from(MUTATIONS), st.data())
def test_every_malformed_map_is_rejected(assignment: dict, mutation: str, data) -> None:
    doc = _cells_map(assignment)
    entries = doc["segments"]
    entry = data.draw(st.sampled_from(entries))
    if mutation == "drop_cell":
        cell = data.draw(st.sampled_from(entry["cells"]))
        entry["cells"].remove(cell)
        if not entry["cells"]:
            entries.remove(entry)
    elif mutation == "duplicate_cell":
        # every cell is already covered once, so this covers one twice
        entry["cells"].append(list(data.draw(st.sampled_from(ALL_CELLS))))
    elif mutation == "bad_score":
        bad = data.draw(st.sampled_from([0, 6, -1, 10, 2.5, "3", True, None]))
        entry["cells"].append(data.draw(st.sampled_from([[bad, 1], [1, bad]])))
    elif mutation == "unknown_name":
        name = data.draw(
            st.text(min_size=1, max_size=20).filter(lambda s: s not in SEGMENT_NAMES and s.strip())
        )
        entry["name"] = name
    elif mutation == "empty_name":
        entry["name"] = data.draw(st.sampled_from(["", "   ", None]))
    elif mutation == "repeat_segment":
        # the same segment in a second entry (its cells must be in one entry)
        entries.append({"name": entry["name"], "cells": [entry["cells"].pop()]})
    with pytest.raises(SegmentMapError):
        parse_segment_map(doc)


def test_default_map_file_is_valid_yaml_on_disk() -> None:
    # The packaged file itself (not only what load_segment_map returns) parses cleanly.
    text = (
        Path(__file__).resolve().parents[1] / "segment_pipeline" / "config" / "segment_map.yaml"
    ).read_text(encoding="utf-8")
    assert parse_segment_map(yaml.safe_load(text)).segments == SEGMENT_NAMES


def test_monetary_holds_any_sum_of_valid_lines() -> None:
    # Each line fits DECIMAL(18,4) (< 1e14); their sum does not, and must not overflow.
    big = "90000000000000.0000"
    conn = make_staging(
        [
            ("O1", "A", "2026-01-01 10:00:00", "P1", "X", 1, big),
            ("O2", "A", "2026-01-02 10:00:00", "P1", "X", 1, big),
            ("O3", "B", "2026-01-02 11:00:00", "P1", "X", 1, "1.00"),
        ]
    )
    build_rfm(conn)
    exact = dict(
        conn.execute("SELECT customer_id, monetary FROM marts.rfm_customer_segments").fetchall()
    )
    assert exact == {"A": Decimal("180000000000000.0000"), "B": Decimal("1.0000")}


def test_rfm_summary_orders_are_distinct_orders() -> None:
    # One order id shared by two customers of the same segment is one order, not two.
    conn = make_staging(
        [
            ("S1", "X", "2026-01-05 10:00:00", "P1", "X", 1, "10.00"),
            ("S1", "Y", "2026-01-05 10:00:00", "P2", "X", 1, "30.00"),
        ]
    )
    build_rfm(conn)
    replace_rfm_summary(conn, load_segment_map().segments_param())
    summary = conn.execute("SELECT * FROM marts.rfm_summary WHERE customers > 0").df()
    assert len(summary) == 1  # both customers in one segment
    assert summary.loc[0, "customers"] == 2 and summary.loc[0, "orders"] == 1
    assert summary.loc[0, "aov"] == pytest.approx(40.0)
