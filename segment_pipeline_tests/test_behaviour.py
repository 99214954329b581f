"""Seed B behaviour logic: terciles, occupation groups, price segments, the dominant price
segment, segment metrics and the purchase distribution, on small hand-built inputs.

The SQL runs against an in-memory DuckDB with hand-made sale lines (`staging.transactions` with
the columns of the real `staging.sales_lines` view, and that view over it), so every expected
value below is computed by hand in the comments.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal

import duckdb
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segment_pipeline.assets.behaviour import segments as segment_assets
from segment_pipeline.logic.behaviour import (
    BEHAVIOURAL_SEGMENTS,
    BEHAVIOURAL_SEGMENTS_SQL,
    CATEGORY_PRICE_SEGMENTS,
    CUSTOMER_BEHAVIOUR,
    CUSTOMER_BEHAVIOUR_BUCKET_SQL,
    CUSTOMER_BEHAVIOUR_SQL,
    OCCUPATION_GROUPS_TABLE,
    PRICE_UNKNOWN,
    QUANTILE_LEVELS,
    ClusterSettings,
    _em_gaussian_mixture,
    amount_quantiles,
    build_category_price_segments,
    build_occupation_groups,
    category_stats,
    fit_log_mixture,
    mixture_clusters,
    purchase_distribution_with_fit,
    sample_log_amounts,
    tercile_tiers,
)
from segment_pipeline.logic.behaviour_figures import plot_occupation_groups, plot_price_segments
from segment_pipeline.logic.memory import create_by_customer_buckets
from segment_pipeline.logic.strategy import assign_strategy, load_rule_table
from segment_pipeline.tables import replace_rows, replace_rows_from_frame
from segment_pipeline_tests.buckets import forced_customer_buckets

LINE_COLUMNS = (
    "line_id VARCHAR, partition_date DATE, order_id VARCHAR, customer_id VARCHAR, "
    "order_ts TIMESTAMP, product_id VARCHAR, product_name VARCHAR, category VARCHAR, "
    "quantity BIGINT, unit_price DECIMAL(18,4), amount DECIMAL(18,4), gender VARCHAR, "
    "age_band VARCHAR, occupation VARCHAR, marital_status VARCHAR, city_category VARCHAR"
)


def lines_db(rows: list[dict]) -> duckdb.DuckDBPyConnection:
    """An in-memory warehouse whose sale lines (staging.transactions, and the views
    staging.sales_lines and staging.product_lines over it) hold `rows`.

    Each row needs customer_id, order_id, category, amount; demographics default to
    M / 26-35 / occupation "1".
    """
    conn = duckdb.connect()
    conn.execute("CREATE SCHEMA staging")
    conn.execute(f"CREATE TABLE staging.transactions ({LINE_COLUMNS})")
    conn.execute("CREATE VIEW staging.sales_lines AS SELECT * FROM staging.transactions")
    conn.execute("CREATE VIEW staging.product_lines AS SELECT * FROM staging.transactions")
    for i, r in enumerate(rows):
        conn.execute(
            "INSERT INTO staging.transactions VALUES (?, DATE '2025-01-01', ?, ?, "
            "TIMESTAMP '2025-01-01 10:00:00', ?, ?, ?, 1, ?, ?, ?, ?, ?, '0', 'A')",
            [
                f"l{i}",
                r["order_id"],
                r["customer_id"],
                r.get("product_id", "p"),
                r.get("product_id", "p"),
                r["category"],
                Decimal(str(r["amount"])),
                Decimal(str(r["amount"])),
                r.get("gender", "M"),
                r.get("age_band", "26-35"),
                str(r.get("occupation", "1")),
            ],
        )
    return conn


def run_chain(conn: duckdb.DuckDBPyConnection, min_customers: int = 1) -> None:
    """occupation groups -> price segments -> customer behaviour -> segments, as the assets."""
    replace_rows_from_frame(
        conn, OCCUPATION_GROUPS_TABLE, build_occupation_groups(conn, min_customers)
    )
    replace_rows_from_frame(conn, CATEGORY_PRICE_SEGMENTS, build_category_price_segments(conn))
    replace_rows(conn, CUSTOMER_BEHAVIOUR, CUSTOMER_BEHAVIOUR_SQL)
    replace_rows(conn, BEHAVIOURAL_SEGMENTS, BEHAVIOURAL_SEGMENTS_SQL)


# --------------------------------------------------------------------------------------------
# Terciles
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        # n = 3: ranks 1,2,3 -> 1 + floor(3*0/3)=1, 1 + floor(3*1/3)=2, 1 + floor(3*2/3)=3
        ([10.0, 20.0, 30.0], [1, 2, 3]),
        # n = 4: ranks 1..4 -> floor(0/4)=0, floor(3/4)=0, floor(6/4)=1, floor(9/4)=2
        ([4.0, 1.0, 3.0, 2.0], [3, 1, 2, 1]),
        # n = 5: floor(0/5)=0, floor(3/5)=0, floor(6/5)=1, floor(9/5)=1, floor(12/5)=2
        ([1.0, 2.0, 3.0, 4.0, 5.0], [1, 1, 2, 2, 3]),
        # ties share the lowest rank: 5,5,5 all have rank_min 2 -> floor(3/4)=0 -> tier 1
        ([5.0, 5.0, 5.0, 1.0], [1, 1, 1, 1]),
        # 1,2,2,9: ranks 1,2,2,4 -> tiers 1, 1, 1, 1+floor(9/4)=3 (no middle tier)
        ([1.0, 2.0, 2.0, 9.0], [1, 1, 1, 3]),
        # n = 2 and n = 1
        ([3.0, 1.0], [2, 1]),
        ([7.0], [1]),
        ([], []),
    ],
)
def test_tercile_tiers_hand_computed(values: list[float], expected: list[int]) -> None:
    assert tercile_tiers(values) == expected


def test_tercile_split_of_twenty_is_7_7_6() -> None:
    # 1 + floor(3 (r - 1) / 20): r = 1..7 -> 1 (3*6/20 = 0.9), r = 8..14 -> 2 (3*13/20 = 1.95),
    # r = 15..20 -> 3
    tiers = tercile_tiers([float(v) for v in range(20)])
    assert [tiers.count(t) for t in (1, 2, 3)] == [7, 7, 6]


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.integers(min_value=0, max_value=8), min_size=1, max_size=30),
    st.randoms(use_true_random=False),
)
def test_tercile_tiers_properties(values: list[int], rnd) -> None:
    floats = [float(v) for v in values]
    tiers = tercile_tiers(floats)
    assert set(tiers) <= {1, 2, 3}
    # order of the input never matters
    shuffled = list(zip(floats, tiers, strict=True))
    rnd.shuffle(shuffled)
    assert tercile_tiers([v for v, _ in shuffled]) == [t for _, t in shuffled]
    by_value = dict(zip(floats, tiers, strict=False))
    for v, t in zip(floats, tiers, strict=True):
        assert by_value[v] == t  # equal values, equal tier
    for a, ta in zip(floats, tiers, strict=True):
        for b, tb in zip(floats, tiers, strict=True):
            if a < b:
                assert ta <= tb  # monotone
    if len(set(floats)) == len(floats):  # all distinct: sizes differ by at most one
        sizes = [tiers.count(t) for t in (1, 2, 3)]
        assert max(sizes) - min(sizes) <= 1
        assert sizes[0] >= sizes[1] >= sizes[2]


# --------------------------------------------------------------------------------------------
# Occupation groups
# --------------------------------------------------------------------------------------------


def _occupation_rows() -> list[dict]:
    rows = []
    # A: 2 customers, amounts 1 and 3 -> mean log1p = (ln 2 + ln 4) / 2 = 1.5 ln 2
    rows += [
        {"customer_id": "a1", "order_id": "oa1", "category": "X", "amount": 1, "occupation": "A"},
        {"customer_id": "a2", "order_id": "oa2", "category": "X", "amount": 3, "occupation": "A"},
    ]
    # B, C, D: 2 customers each, every line 10 / 100 / 1000
    for code, amount in (("B", 10), ("C", 100), ("D", 1000)):
        rows += [
            {
                "customer_id": f"{code}{i}",
                "order_id": f"o{code}{i}",
                "category": "X",
                "amount": amount,
                "occupation": code,
            }
            for i in range(2)
        ]
    # E: one customer (below min_customers = 2) with the largest amounts -> Occ_Other
    rows += [
        {"customer_id": "e1", "order_id": "oe", "category": "X", "amount": 5000, "occupation": "E"}
    ] * 1
    # Unknown: 3 customers (enough) but Unknown is never ranked -> Occ_Other
    rows += [
        {
            "customer_id": f"u{i}",
            "order_id": f"ou{i}",
            "category": "X",
            "amount": 50,
            "occupation": "Unknown",
            "gender": "Unknown",
            "age_band": "Unknown",
        }
        for i in range(3)
    ]
    return rows


def test_occupation_groups_hand_computed() -> None:
    conn = lines_db(_occupation_rows())
    groups = build_occupation_groups(conn, min_customers=2).set_index("occupation")
    # ranked codes A < B < C < D (means 1.5 ln2 ~ 1.04, ln 11, ln 101, ln 1001); n = 4 ->
    # tiers 1, 1, 2, 3 (see the n = 4 case above)
    assert groups.loc[["A", "B", "C", "D"], "occupation_group"].tolist() == [
        "Occ_Low",
        "Occ_Low",
        "Occ_Mid",
        "Occ_High",
    ]
    assert groups.loc[["A", "B", "C", "D"], "tier_rank"].tolist() == [1, 2, 3, 4]
    assert groups.loc["E", "occupation_group"] == "Occ_Other"  # 1 customer < 2
    assert groups.loc["Unknown", "occupation_group"] == "Occ_Other"  # never ranked
    assert not groups.loc["E", "ranked"] and not groups.loc["Unknown", "ranked"]
    assert pd.isna(groups.loc["E", "tier_rank"])
    assert groups.loc["A", "mean_log1p_amount"] == pytest.approx(1.5 * math.log(2))
    # typical amount = expm1(1.5 ln 2) = 2^1.5 - 1
    assert groups.loc["A", "typical_line_amount"] == pytest.approx(2**1.5 - 1)
    assert groups.loc["A", "customers"] == 2 and groups.loc["A", "lines"] == 2
    assert groups.loc["Unknown", "customers"] == 3


def test_occupation_threshold_is_inclusive() -> None:
    conn = lines_db(_occupation_rows())
    # min 3: A..D have 2 customers -> all Occ_Other; nothing is ranked
    groups = build_occupation_groups(conn, min_customers=3)
    assert set(groups["occupation_group"]) == {"Occ_Other"}
    # min 1: E (1 customer) is ranked too: A < B < C < D < E, n = 5 -> 1, 1, 2, 2, 3
    groups = build_occupation_groups(conn, min_customers=1).set_index("occupation")
    assert groups.loc[["A", "B", "C", "D", "E"], "occupation_group"].tolist() == [
        "Occ_Low",
        "Occ_Low",
        "Occ_Mid",
        "Occ_Mid",
        "Occ_High",
    ]


# --------------------------------------------------------------------------------------------
# Price segments
# --------------------------------------------------------------------------------------------


def test_price_segments_hand_computed_with_tied_medians() -> None:
    rows = []
    for category, amounts in {"X": [1, 3, 100], "Y": [10, 20], "Z": [50], "W": [50, 50]}.items():
        rows += [
            {"customer_id": "c", "order_id": f"o{category}{i}", "category": category, "amount": a}
            for i, a in enumerate(amounts)
        ]
    prices = build_category_price_segments(lines_db(rows)).set_index("category")
    # medians: X 3, Y 15, Z 50, W 50 -> ranks 1, 2, 3, 3 -> tiers 1, 1, 1 + floor(6/4) = 2
    assert prices.loc[["X", "Y", "Z", "W"], "median_line_amount"].tolist() == [3, 15, 50, 50]
    assert prices.loc[["X", "Y", "Z", "W"], "tier_rank"].tolist() == [1, 2, 3, 3]
    assert prices.loc[["X", "Y", "Z", "W"], "price_segment"].tolist() == [
        "Price_Low",
        "Price_Low",
        "Price_Mid",
        "Price_Mid",
    ]
    assert prices.loc["X", "lines"] == 3 and prices.loc["X", "gross_sales"] == 104


#: CATEGORY_STATS_SQL as written before stop 25: DuckDB's median and distinct count over every
#: line (which hold them all in memory), the reference its groupings must equal.
DIRECT_CATEGORY_STATS_SQL = """
SELECT category, count(*) AS lines, count(DISTINCT customer_id) AS customers,
       CAST(sum(amount) AS DOUBLE) AS gross_sales,
       CAST(median(amount) AS DOUBLE) AS median_line_amount
FROM staging.product_lines
GROUP BY category
ORDER BY category
"""


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["A", "B", "C"]),
            st.sampled_from(["c1", "c2", "c3", "c4"]),
            # few distinct amounts: ties across the middle positions, even and odd counts
            st.sampled_from([0, 0.5, 1, 1.25, 7, 7, 19.99, 250]),
        ),
        min_size=1,
        max_size=30,
    ),
    st.sampled_from([1, 2, 3]),
)
def test_category_stats_equal_the_direct_median_and_distinct_count(lines, buckets) -> None:
    """The category statistics from amounts counted per category (the median of the one or
    two middle amounts) and from (category, customer) groups equal DuckDB's own median and
    distinct count over every line, to the last bit; so do they when the customers are
    counted in buckets of customers (as at 100M lines) and the counts added up."""
    rows = [
        {"customer_id": c, "order_id": f"o{i}", "category": cat, "amount": a}
        for i, (cat, c, a) in enumerate(lines)
    ]
    conn = lines_db(rows)
    direct = conn.execute(DIRECT_CATEGORY_STATS_SQL).df()
    with forced_customer_buckets(buckets):
        grouped = category_stats(conn)
    pd.testing.assert_frame_equal(grouped, direct, check_exact=True)


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.one_of(
            # few distinct amounts (ties across the interpolated ranks) and many
            st.sampled_from(["0", "0.5", "1", "1.25", "7", "19.99", "250"]),
            st.decimals(0, 100_000, places=4, allow_nan=False, allow_infinity=False).map(str),
        ),
        min_size=1,
        max_size=300,
    )
)
def test_amount_quantiles_equal_quantile_cont_over_every_line(amounts: list[str]) -> None:
    """The purchase distribution's quantiles from amounts counted per value equal DuckDB's
    quantile_cont over every line to the last bit (its interpolation is a fused multiply-add:
    lo * (1 - d) + hi * d in SQL differs in the last bit on about one level in six)."""
    conn = duckdb.connect()
    conn.execute("CREATE SCHEMA staging")
    conn.execute("CREATE TABLE staging.transactions (amount DECIMAL(18, 4))")
    conn.execute("INSERT INTO staging.transactions SELECT unnest(?::DECIMAL(18, 4)[])", [amounts])
    direct = conn.execute(
        f"SELECT quantile_cont(CAST(amount AS DOUBLE), {list(QUANTILE_LEVELS)}) "
        "FROM staging.transactions"
    ).fetchone()[0]
    assert amount_quantiles(conn) == direct


def test_amount_quantiles_of_no_lines_are_empty() -> None:
    conn = duckdb.connect()
    conn.execute("CREATE SCHEMA staging")
    conn.execute("CREATE TABLE staging.transactions (amount DECIMAL(18, 4))")
    assert amount_quantiles(conn) == []


def test_behaviour_check_compares_spend_to_the_cent_exactly() -> None:
    """every_customer_once compares spend in DECIMAL: zero when every line is in a customer's
    spend (a DOUBLE total of 5.4M customers drifted by more than its cent of tolerance at 100M
    lines), and a lost cent is seen."""
    # DOUBLE: 0.1 + 0.2 = 0.30000000000000004, the exact total 0.3
    rows = [
        {"customer_id": f"c{i}", "order_id": f"o{i}", "category": "A", "amount": a}
        for i, a in enumerate([0.1, 0.2])
    ]
    rows += [
        {"customer_id": f"c{2 + i % 5}", "order_id": f"p{i}", "category": "A", "amount": a}
        for i, a in enumerate([1234567.8901, 0.0001, 99999.9999, 0.3] * 10)
    ]
    conn = lines_db(rows)
    run_chain(conn)
    check = segment_assets.CUSTOMER_BEHAVIOUR_CHECK_SQL
    customers, distinct, gap, _, _ = conn.execute(check, [PRICE_UNKNOWN]).fetchone()
    assert (customers, distinct, gap) == (7, 7, 0.0)
    conn.execute(
        "UPDATE marts.customer_behaviour SET spend = spend - 0.01 WHERE customer_id = 'c3'"
    )
    assert conn.execute(check, [PRICE_UNKNOWN]).fetchone()[2] == pytest.approx(0.01)


def test_unknown_category_takes_no_tier_and_does_not_move_the_cut_points() -> None:
    # Issue 11: five lines without a category made Unknown the only Price_High category.
    # Four real categories, medians A 10, B 20, C 30, D 40, and a tiny, expensive Unknown.
    rows = []
    for category, amounts in {
        "A": [10, 10, 10],
        "B": [20, 20, 20],
        "C": [30, 30],
        "D": [39, 40, 41],
        "Unknown": [900, 1000, 1100],
    }.items():
        rows += [
            {"customer_id": "c", "order_id": f"o{category}{i}", "category": category, "amount": a}
            for i, a in enumerate(amounts)
        ]
    prices = build_category_price_segments(lines_db(rows)).set_index("category")
    # n = 4 ranked medians 10, 20, 30, 40: tiers 1 + floor(3 * (rank - 1) / 4) = 1, 1, 2, 3.
    # (Ranking Unknown too, n = 5 gives 1, 1, 2, 2 and Unknown Price_High: D would drop to Mid.)
    real = ["A", "B", "C", "D"]
    assert prices.loc[real, "tier_rank"].tolist() == [1, 2, 3, 4]
    assert prices.loc[real, "price_segment"].tolist() == [
        "Price_Low",
        "Price_Low",
        "Price_Mid",
        "Price_High",
    ]
    unknown = prices.loc["Unknown"]
    assert unknown["price_segment"] == "Unknown"
    assert pd.isna(unknown["tier_rank"])
    # the category keeps its row, with its real statistics
    assert (unknown["lines"], unknown["median_line_amount"]) == (3, 1000)
    # the explicit schema holds (price_segment NOT NULL, tier_rank nullable)
    conn = lines_db(rows)
    run_chain(conn)
    stored = conn.execute(
        "SELECT category, tier_rank, price_segment FROM marts.category_price_segments "
        "ORDER BY category"
    ).fetchall()
    assert stored[-1] == ("Unknown", None, "Unknown")


def test_price_segment_figure_leaves_unknown_out() -> None:
    rows = [
        {"customer_id": "c", "order_id": f"o{c}", "category": c, "amount": a}
        for c, a in [("A", 10), ("B", 20), ("C", 30), ("Unknown", 940)]
    ]
    fig = plot_price_segments(build_category_price_segments(lines_db(rows)))
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == ["A", "B", "C"]  # Unknown is not drawn among the categories
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == ["Price_High (1 category)", "Price_Mid (1 category)", "Price_Low (1 category)"]
    # ... and the footnote says so: 1 line, 940 of 1,000 = 94.0% of gross sales
    footnote = " ".join(t.get_text() for t in fig.texts)
    assert "Not drawn: Unknown (lines without a category; 1 line, 94.0% of gross sales)" in footnote


def test_price_segment_figure_draws_dots_not_bars_on_its_log_axis() -> None:
    """Issue 11, item 9: on a log axis a bar's length is not proportional to its value, so
    each category is a dot at its median (and counts read `1 line`, not `1 lines`)."""
    rows = [
        {"customer_id": "c", "order_id": f"o{c}", "category": c, "amount": a}
        for c, a in [("A", 10), ("B", 200), ("C", 3000)]
    ]
    fig = plot_price_segments(build_category_price_segments(lines_db(rows)))
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    assert not ax.patches  # no bars
    offsets = ax.collections[0].get_offsets()
    assert [float(x) for x, _ in offsets] == [10.0, 200.0, 3000.0]
    texts = [t.get_text() for t in ax.texts]
    assert any(t.endswith("1 line") for t in texts) and not any("1 lines" in t for t in texts)


def test_occupation_figure_says_1_customer() -> None:
    groups = build_occupation_groups(lines_db(_occupation_rows()), min_customers=2)
    fig = plot_occupation_groups(groups, 2)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert any(t.endswith(" 1 customer") for t in texts)  # occupation E has one customer
    assert not any(" 1 customers" in t for t in texts)


def test_only_unknown_category_gives_no_tier() -> None:
    rows = [{"customer_id": "c", "order_id": "o1", "category": "Unknown", "amount": 5}]
    prices = build_category_price_segments(lines_db(rows))
    assert prices["price_segment"].tolist() == ["Unknown"]
    assert prices["tier_rank"].isna().all()


# --------------------------------------------------------------------------------------------
# Dominant price segment and segment metrics
# --------------------------------------------------------------------------------------------


def with_lookups(rows: list[dict], occupation_groups: dict[str, str]) -> duckdb.DuckDBPyConnection:
    """A warehouse with `rows` and hand-set lookup tables: categories L / M / H are
    Price_Low / Mid / High, occupations map as given. Then customer_behaviour and
    behavioural_segments are built from them."""
    conn = lines_db(rows)
    occ = pd.DataFrame(
        [
            {
                "occupation": code,
                "customers": 1,
                "lines": 1,
                "gross_sales": 0.0,
                "mean_log1p_amount": 0.0,
                "typical_line_amount": 0.0,
                "ranked": True,
                "tier_rank": 1,
                "occupation_group": group,
            }
            for code, group in occupation_groups.items()
        ]
    )
    prices = pd.DataFrame(
        [
            {
                "category": c,
                "lines": 1,
                "customers": 1,
                "gross_sales": 0.0,
                "median_line_amount": 0.0,
                "tier_rank": 1,
                "price_segment": segment,
            }
            for c, segment in (("L", "Price_Low"), ("M", "Price_Mid"), ("H", "Price_High"))
        ]
    )
    replace_rows_from_frame(conn, OCCUPATION_GROUPS_TABLE, occ)
    replace_rows_from_frame(conn, CATEGORY_PRICE_SEGMENTS, prices)
    replace_rows(conn, CUSTOMER_BEHAVIOUR, CUSTOMER_BEHAVIOUR_SQL)
    replace_rows(conn, BEHAVIOURAL_SEGMENTS, BEHAVIOURAL_SEGMENTS_SQL)
    return conn


def _customer_rows(customer: str, spend: dict[str, float], **demo: str) -> list[dict]:
    return [
        {"customer_id": customer, "order_id": f"o{customer}{c}", "category": c, "amount": a, **demo}
        for c, a in spend.items()
    ]


def test_dominant_price_segment_and_tie_rule() -> None:
    rows = []
    rows += _customer_rows("tie_low_high", {"L": 30, "H": 30})  # tie -> higher: Price_High
    rows += _customer_rows("tie_low_mid", {"L": 20, "M": 20})  # tie -> Price_Mid
    rows += _customer_rows("tie_all", {"L": 7, "M": 7, "H": 7})  # three-way tie -> Price_High
    rows += _customer_rows("mostly_low", {"L": 10, "H": 5})  # 10 > 5 -> Price_Low
    rows += _customer_rows("mostly_mid", {"L": 4, "M": 5, "H": 4.99})  # -> Price_Mid
    # two lines in L add up: 3 + 3 = 6 > 5 in H -> Price_Low
    rows += [
        {"customer_id": "sum_low", "order_id": "s1", "category": "L", "amount": 3},
        {"customer_id": "sum_low", "order_id": "s2", "category": "L", "amount": 3},
        {"customer_id": "sum_low", "order_id": "s3", "category": "H", "amount": 5},
    ]
    conn = with_lookups(rows, {"1": "Occ_Mid"})
    got = (
        conn.execute(
            "SELECT customer_id, price_segment, spend_price_low, spend_price_mid, "
            "spend_price_high, spend, lines, orders FROM marts.customer_behaviour"
        )
        .df()
        .set_index("customer_id")
    )
    assert got["price_segment"].to_dict() == {
        "tie_low_high": "Price_High",
        "tie_low_mid": "Price_Mid",
        "tie_all": "Price_High",
        "mostly_low": "Price_Low",
        "mostly_mid": "Price_Mid",
        "sum_low": "Price_Low",
    }
    assert got.loc[
        "mostly_mid", ["spend_price_low", "spend_price_mid", "spend_price_high"]
    ].tolist() == pytest.approx([4, 5, 4.99])
    assert got.loc["mostly_mid", "spend"] == pytest.approx(13.99)
    assert (got.loc["sum_low", "lines"], got.loc["sum_low", "orders"]) == (3, 3)


def test_segment_metrics_hand_computed() -> None:
    rows = [
        # c1 and c2: M 26-35, occupation 1 (Occ_Mid), all spend in M -> Price_Mid
        {"customer_id": "c1", "order_id": "o1", "category": "M", "amount": 10},
        {"customer_id": "c1", "order_id": "o1", "category": "M", "amount": 20},
        {"customer_id": "c1", "order_id": "o2", "category": "M", "amount": 30},
        {"customer_id": "c2", "order_id": "o3", "category": "M", "amount": 40},
        # c3: F 55+, occupation 1, one order of 189 in H -> Price_High
        {
            "customer_id": "c3",
            "order_id": "o4",
            "category": "H",
            "amount": 189,
            "gender": "F",
            "age_band": "55+",
        },
        # c4: M 26-35, occupation 9 (Occ_High), 111 over two orders, mostly H
        {"customer_id": "c4", "order_id": "o5", "category": "L", "amount": 1},
        {"customer_id": "c4", "order_id": "o5", "category": "M", "amount": 10},
        {"customer_id": "c4", "order_id": "o6", "category": "H", "amount": 100, "occupation": "9"},
    ]
    rows[5]["occupation"] = rows[6]["occupation"] = "9"
    conn = with_lookups(rows, {"1": "Occ_Mid", "9": "Occ_High"})
    seg = conn.execute("SELECT * FROM marts.behavioural_segments").df().set_index("segment")
    assert len(seg) == 3
    # total gross = 100 + 189 + 111 = 400; customers = 4
    mid = seg.loc["26-35 | M | Occ_Mid | Price_Mid"]
    # c1 + c2: 2 customers, 4 lines, orders o1, o2, o3 = 3, gross 100, AOV 100 / 3
    assert (mid["customers"], mid["transactions"], mid["orders"]) == (2, 4, 3)
    assert mid["gross_sales"] == pytest.approx(100)
    assert mid["aov"] == pytest.approx(100 / 3)
    assert mid["revenue_share"] == pytest.approx(100 / 400)  # 0.25
    assert mid["customer_share"] == pytest.approx(2 / 4)  # 0.5
    assert mid["value_index"] == pytest.approx(0.25 / 0.5)
    high = seg.loc["55+ | F | Occ_Mid | Price_High"]
    assert high["revenue_share"] == pytest.approx(189 / 400)
    assert high["aov"] == pytest.approx(189)
    assert high["value_index"] == pytest.approx((189 / 400) / (1 / 4))
    c4 = seg.loc["26-35 | M | Occ_High | Price_High"]
    # 2 orders (o5, o6), 3 lines, 111 -> AOV 55.5
    assert (c4["orders"], c4["transactions"]) == (2, 3)
    assert c4["aov"] == pytest.approx(55.5)
    # ranks by gross sales: 189 (1), 111 (2), 100 (3)
    assert [high["sales_rank"], c4["sales_rank"], mid["sales_rank"]] == [1, 2, 3]
    assert seg["revenue_share"].sum() == pytest.approx(1)


def test_unknown_demographics_stay_in_the_analysis() -> None:
    rows = _customer_rows("known", {"H": 100})
    rows += _customer_rows(
        "anon", {"M": 25}, gender="Unknown", age_band="Unknown", occupation="Unknown"
    )
    rows += _customer_rows("half", {"M": 5}, gender="F", age_band="Unknown")
    conn = lines_db(rows)
    run_chain(conn)  # the real lookups: Unknown occupation -> Occ_Other
    got = conn.execute("SELECT * FROM marts.customer_behaviour").df().set_index("customer_id")
    assert len(got) == 3
    assert got.loc["anon", "occupation_group"] == "Occ_Other"
    assert bool(got.loc["anon", "unknown_demographics"])
    assert bool(got.loc["half", "unknown_demographics"])
    assert not bool(got.loc["known", "unknown_demographics"])
    seg = conn.execute("SELECT segment FROM marts.behavioural_segments").df()["segment"]
    # two categories: M (median of 25 and 5 = 15) and H (100) -> n = 2 -> tiers 1 and 2, so
    # M is Price_Low; the customer without a profile keeps a segment of its own
    assert "Unknown | Unknown | Occ_Other | Price_Low" in set(seg)


def test_customer_price_segment_ignores_unknown_spend() -> None:
    rows = []
    rows += _customer_rows("low", {"L": 5})
    rows += _customer_rows("mid", {"M": 50})
    rows += _customer_rows("high", {"H": 500})
    # most of the spend is on lines without a category: the tiered spend (L) decides
    rows += _customer_rows("mixed", {"L": 5, "Unknown": 9000})
    # nothing but lines without a category, and another occupation
    rows += [
        {"customer_id": "only_unknown", "order_id": f"u{i}", "category": "Unknown", "amount": a}
        for i, a in enumerate([9000, 1])
    ]
    for row in rows:
        row["occupation"] = "9" if row["customer_id"] == "only_unknown" else "1"
    conn = lines_db(rows)
    run_chain(conn)
    # medians: L 5, M 50, H 500 -> n = 3 -> Low, Mid, High (Unknown, median 9000, unranked).
    # Ranking Unknown would give n = 4: L, M Low, H Mid, Unknown High, and both "mixed" and
    # "only_unknown" would be Price_High on the strength of uncategorised lines.
    got = conn.execute("SELECT * FROM marts.customer_behaviour").df().set_index("customer_id")
    assert got["price_segment"].to_dict() == {
        "high": "Price_High",
        "low": "Price_Low",
        "mid": "Price_Mid",
        "mixed": "Price_Low",
        "only_unknown": "Unknown",
    }
    spend_cols = ["spend_price_low", "spend_price_mid", "spend_price_high"]
    assert got.loc["mixed", [*spend_cols, "spend_unknown_category", "spend"]].tolist() == [
        5,
        0,
        0,
        9000,
        9005,
    ]
    assert got.loc["only_unknown", spend_cols].tolist() == [0, 0, 0]
    assert got.loc["only_unknown", "spend_unknown_category"] == got.loc["only_unknown", "spend"]
    assert got.loc["only_unknown", ["lines", "orders"]].tolist() == [2, 2]
    # the Unknown price segment says nothing about the profile
    assert not got["unknown_demographics"].any()

    # every customer once, in one segment; the label carries Unknown like a missing profile
    seg = conn.execute("SELECT * FROM marts.behavioural_segments").df().set_index("segment")
    assert int(seg["customers"].sum()) == 5
    assert seg["gross_sales"].sum() == pytest.approx(5 + 50 + 500 + 9005 + 9001)
    # occupation 9 (mean log1p of 9000 and 1 = 4.90) ranks above 1 (mean 4.57) -> Occ_Mid
    unknown_seg = seg.loc["26-35 | M | Occ_Mid | Unknown"]
    assert (unknown_seg["customers"], unknown_seg["gross_sales"]) == (1, 9001)

    # and a strategy class from the rules: no price level -> Maintain, not Defend
    strategy = assign_strategy(seg.reset_index(), load_rule_table()).set_index("segment")
    assert strategy.loc["26-35 | M | Occ_Mid | Unknown", "strategy_class"] == "Maintain"


_customer = st.fixed_dictionaries(
    {
        "gender": st.sampled_from(["M", "F", "Unknown"]),
        "age_band": st.sampled_from(["18-25", "26-35", "55+", "Unknown"]),
        "occupation": st.sampled_from(["1", "2", "3", "4", "Unknown"]),
    }
)
_line = st.tuples(
    st.integers(min_value=0, max_value=11),  # customer index
    st.integers(min_value=0, max_value=3),  # order index within the customer
    st.sampled_from(["K1", "K2", "K3", "K4", "K5", "Unknown"]),
    st.integers(min_value=0, max_value=50_000).map(lambda cents: cents / 100),
)


@settings(max_examples=25, deadline=None)
@given(
    st.lists(_customer, min_size=12, max_size=12),
    st.lists(_line, min_size=1, max_size=60),
    st.integers(min_value=1, max_value=3),
    st.integers(min_value=2, max_value=5),
)
def test_each_customer_in_exactly_one_segment(customers, lines, min_customers, buckets) -> None:
    rows = [
        {
            "customer_id": f"c{c}",
            "order_id": f"c{c}-o{o}",
            "category": cat,
            "amount": amount,
            **customers[c],
        }
        for c, o, cat, amount in lines
    ]
    conn = lines_db(rows)
    run_chain(conn, min_customers=min_customers)
    n_customers = len({r["customer_id"] for r in rows})
    behaviour = conn.execute("SELECT * FROM marts.customer_behaviour").df()
    assert len(behaviour) == behaviour["customer_id"].nunique() == n_customers
    # in buckets of customers (as the snapshots' check runs it under a small memory limit):
    # the same rows
    create_by_customer_buckets(
        conn,
        "_in_buckets",
        (CUSTOMER_BEHAVIOUR_SQL, CUSTOMER_BEHAVIOUR_BUCKET_SQL),
        "staging.transactions",
        buckets=buckets,
    )
    in_buckets = conn.execute("SELECT * FROM _in_buckets ORDER BY customer_id").df()
    pd.testing.assert_frame_equal(in_buckets, behaviour, check_dtype=True)
    seg = conn.execute("SELECT * FROM marts.behavioural_segments").df()
    assert int(seg["customers"].sum()) == n_customers
    assert int(seg["transactions"].sum()) == len(rows)
    assert seg["gross_sales"].sum() == pytest.approx(sum(r["amount"] for r in rows))
    if seg["gross_sales"].sum() > 0:
        assert seg["revenue_share"].sum() == pytest.approx(1)
    assert seg["customer_share"].sum() == pytest.approx(1)
    assert sorted(seg["sales_rank"]) == list(range(1, len(seg) + 1))
    # each customer's segment cell exists exactly once
    keys = behaviour[["age_band", "gender", "occupation_group", "price_segment"]].drop_duplicates()
    assert len(keys) == len(seg)
    # the spend columns add up to the customer's spend
    spend_cols = ["spend_price_low", "spend_price_mid", "spend_price_high"]
    parts = behaviour[[*spend_cols, "spend_unknown_category"]].sum(axis=1)
    assert parts.to_numpy() == pytest.approx(behaviour["spend"].to_numpy())
    # Unknown price segment exactly for the customers with no line in a tiered category
    tiered = {r["customer_id"] for r in rows if r["category"] != "Unknown"}
    unpriced = behaviour["price_segment"] == "Unknown"
    assert set(behaviour.loc[~unpriced, "customer_id"]) == tiered
    # the dominant segment holds at least as much spend as any other tier
    priced = behaviour[~unpriced]
    spends = priced[spend_cols].to_numpy()
    chosen = priced["price_segment"].map({"Price_Low": 0, "Price_Mid": 1, "Price_High": 2})
    assert (spends[np.arange(len(spends)), chosen.to_numpy()] >= spends.max(axis=1) - 1e-9).all()
    # ... and of the tiers with the largest spend it is the highest (the tie rule); a tier
    # without a line of the customer takes no part (spend 0 is a tier's only when it has lines)
    tier_of = dict(
        conn.execute("SELECT category, price_segment FROM marts.category_price_segments").fetchall()
    )
    index = {"Price_Low": 0, "Price_Mid": 1, "Price_High": 2}
    has_lines = {
        (r["customer_id"], index[tier_of[r["category"]]])
        for r in rows
        if tier_of.get(r["category"]) in index
    }
    for (customer, row), pick in zip(
        zip(priced["customer_id"], spends, strict=True), chosen, strict=True
    ):
        present = [t for t in range(3) if (customer, t) in has_lines]
        top = max(row[t] for t in present)
        assert pick == max(t for t in present if row[t] == top)


# --------------------------------------------------------------------------------------------
# Purchase distribution and price clusters
# --------------------------------------------------------------------------------------------


def amounts_db(amounts: Sequence[float]) -> duckdb.DuckDBPyConnection:
    """Like `lines_db`, for many lines at once: one line (and order) per amount, keys l0, l1,
    ... (only line_id and amount matter to the distribution)."""
    conn = duckdb.connect()
    conn.execute("CREATE SCHEMA staging")
    conn.execute(f"CREATE TABLE staging.transactions ({LINE_COLUMNS})")
    conn.execute("CREATE VIEW staging.sales_lines AS SELECT * FROM staging.transactions")
    conn.execute("CREATE VIEW staging.product_lines AS SELECT * FROM staging.transactions")
    frame = pd.DataFrame({"amount": [str(Decimal(str(a))) for a in amounts]})
    conn.register("amounts", frame)
    conn.execute(
        "INSERT INTO staging.transactions SELECT 'l' || (row_number() OVER () - 1), "
        "DATE '2025-01-01', 'o' || (row_number() OVER ()), 'c', TIMESTAMP '2025-01-01 10:00:00', "
        "'p', 'p', 'X', 1, CAST(amount AS DECIMAL(18,4)), CAST(amount AS DECIMAL(18,4)), 'M', "
        "'26-35', '1', '0', 'A' FROM amounts"
    )
    conn.unregister("amounts")
    return conn


def log_normal_groups(groups: Sequence[tuple[float, float, int]], seed: int = 7) -> np.ndarray:
    """Amounts from log-normal groups (median amount, sd of log amount, lines), to the cent."""
    rng = np.random.default_rng(seed)
    parts = [np.exp(rng.normal(math.log(median), sd, n)) for median, sd, n in groups]
    return np.concatenate(parts).round(2)


def clusters_of(dist: pd.DataFrame) -> pd.DataFrame:
    return dist[dist.measure == "cluster"].reset_index(drop=True)


def test_mixture_clusters_cut_where_the_weighted_densities_cross() -> None:
    # equal weights and spreads: the cut is halfway between the means
    centres, cuts = mixture_clusters([(0.0, 1.0, 0.5), (2.0, 1.0, 0.5)])
    assert centres == [0.0, 2.0]
    assert cuts == [pytest.approx(1.0, abs=1e-4)]
    # weights 3:1, sd 1: log 3 - x^2/2 = -(x-2)^2/2  ->  x = 1 + ln(3)/2 = 1.5493
    _, cuts = mixture_clusters([(2.0, 1.0, 0.25), (0.0, 1.0, 0.75)])  # any input order
    assert cuts == [pytest.approx(1 + math.log(3) / 2, abs=1e-4)]
    # three components: two cuts, ascending
    centres, cuts = mixture_clusters([(0.0, 0.3, 0.3), (2.0, 0.3, 0.4), (4.0, 0.3, 0.3)])
    assert centres == [0.0, 2.0, 4.0] and len(cuts) == 2 and 0 < cuts[0] < 2 < cuts[1] < 4


@pytest.mark.parametrize("spike", [0.0, 0.0021, 0.1234, 9.0])
def test_a_single_price_next_to_a_wide_level_is_not_cut_through(spike: float) -> None:
    # one price (sd 0.001, finer than the grid's step of ~0.008) next to a wide level: the cut
    # is where the two weighted densities are equal, a few sd from the price, on its side
    wide = (7.0 if spike < 7 else 3.0, 2.0, 0.7)
    centres, cuts = mixture_clusters([(spike, 0.001, 0.3), wide])
    assert spike in centres and len(cuts) == 1
    (cut,) = cuts

    def log_density(x: float, mean: float, sd: float, weight: float) -> float:
        return math.log(weight / (sd * math.sqrt(2 * math.pi))) - 0.5 * ((x - mean) / sd) ** 2

    assert log_density(cut, spike, 0.001, 0.3) == pytest.approx(log_density(cut, *wide), abs=1e-6)
    assert 0.003 < abs(cut - spike) < 0.006


def test_mixture_clusters_merge_a_component_that_never_wins_at_its_own_mean() -> None:
    # a flat component (mean 0.5, sd 1, weight 0.1) under a narrow one (0.6, 0.2, 0.9): at
    # x = 0.5 the flat one's density is 0.1 / (1 sqrt(2 pi)) = 0.040 and the narrow one's
    # 0.9 / (0.2 sqrt(2 pi)) exp(-0.125) = 1.58, so it is no cluster of its own: one cluster,
    # whose mode (read off the grid) is near the narrow component's mean.
    centres, cuts = mixture_clusters([(0.5, 1.0, 0.1), (0.6, 0.2, 0.9)])
    assert cuts == [] and centres == [pytest.approx(0.6, abs=0.01)]
    assert mixture_clusters([]) == ([], [])


@pytest.mark.parametrize(
    ("groups", "share_tolerance"),
    [
        # 1,500 lines around 8, 1,000 around 60, 500 around 900 (sd 0.25 on the log scale):
        # far apart, every line lands in its own group's cluster
        ([(8.0, 0.25, 1500), (60.0, 0.25, 1000), (900.0, 0.25, 500)], 0.01),
        # overlapping: medians 10 / 25 / 70 are ~3 sd apart (ln 2.5 = 0.92, sd 0.3), so a few
        # lines of each group fall past the cut into the neighbour, and the sample's
        # maximum-likelihood weights (0.46 / 0.34 / 0.20, scikit-learn's too when run to
        # convergence) are not quite the generating 0.5 / 0.3 / 0.2
        ([(10.0, 0.3, 2000), (25.0, 0.3, 1200), (70.0, 0.3, 800)], 0.06),
    ],
)
def test_three_log_normal_groups_found_with_their_means_and_shares(
    groups: list[tuple[float, float, int]], share_tolerance: float
) -> None:
    amounts = log_normal_groups(groups)
    dist, fit = purchase_distribution_with_fit(amounts_db(amounts), ClusterSettings())
    clusters = clusters_of(dist)
    assert fit is not None and fit.method == "gaussian_mixture" and fit.k == 3
    assert min(fit.bic, key=fit.bic.get) == 3 and sorted(fit.bic) == [1, 2, 3, 4, 5, 6]
    assert clusters["name"].tolist() == ["cluster_1", "cluster_2", "cluster_3"]
    # value = expm1 of the component's mean log1p amount, i.e. close to the group's median
    # (log1p of a log-normal group is not quite normal: the maximum-likelihood mean of the
    # overlapping case sits 5 % below 10, as scikit-learn's also does when run to convergence)
    for value, (median, _, _) in zip(clusters["value"], groups, strict=True):
        assert value == pytest.approx(median, rel=0.07)
    total = sum(n for _, _, n in groups)
    weights = [n / total for _, _, n in groups]
    assert clusters["share"].to_numpy() == pytest.approx(weights, abs=share_tolerance)
    assert [w for _, _, w in fit.components] == pytest.approx(weights, abs=share_tolerance)
    assert int(clusters["lines"].sum()) == total
    assert clusters["share"].sum() == pytest.approx(1)
    # the clusters tile the amount range: first from the minimum, last to the maximum, each
    # upper bound the next one's lower bound, the centre inside
    assert clusters["lower"].iloc[0] == pytest.approx(amounts.min())
    assert clusters["upper"].iloc[-1] == pytest.approx(amounts.max())
    assert clusters["lower"].iloc[1:].tolist() == clusters["upper"].iloc[:-1].tolist()
    assert ((clusters["lower"] < clusters["value"]) & (clusters["value"] < clusters["upper"])).all()
    # and the line counts are the lines between the bounds, counted exactly
    edges = np.log1p(clusters["upper"].iloc[:-1].to_numpy())
    expected = np.bincount(np.searchsorted(edges, np.log1p(amounts), side="right"), minlength=3)
    assert clusters["lines"].tolist() == expected.tolist()


def test_fit_on_a_sample_still_counts_every_line() -> None:
    # the mixture sees 600 of the 3,000 lines; the clusters still hold all 3,000
    groups = [(8.0, 0.25, 1500), (60.0, 0.25, 1000), (900.0, 0.25, 500)]
    conn = amounts_db(log_normal_groups(groups))
    dist, fit = purchase_distribution_with_fit(conn, ClusterSettings(sample_lines=600))
    clusters = clusters_of(dist)
    assert fit is not None and fit.sample_lines == 600 and len(clusters) == 3
    assert int(clusters["lines"].sum()) == 3000
    assert clusters["share"].to_numpy() == pytest.approx([0.5, 1 / 3, 1 / 6], abs=0.02)


def test_sample_is_deterministic_and_independent_of_threads() -> None:
    conn = amounts_db(log_normal_groups([(20.0, 1.0, 5000)]))
    conn.execute("SET threads = 1")
    one = sample_log_amounts(conn, 700)
    conn.execute("SET threads = 4")
    four = sample_log_amounts(conn, 700)
    assert len(one) == 700 and one.tolist() == four.tolist()
    assert (np.diff(one) >= 0).all()  # sorted
    assert len(sample_log_amounts(conn, 10_000)) == 5000  # never more than there are
    # the same data give the same clusters
    first = purchase_distribution_with_fit(conn, ClusterSettings(sample_lines=700))[0]
    again = purchase_distribution_with_fit(conn, ClusterSettings(sample_lines=700))[0]
    pd.testing.assert_frame_equal(first, again)


def test_one_log_normal_group_is_one_cluster() -> None:
    amounts = log_normal_groups([(40.0, 0.5, 3000)])
    dist, fit = purchase_distribution_with_fit(amounts_db(amounts), ClusterSettings())
    clusters = clusters_of(dist)
    assert fit is not None and fit.k == 1 and len(clusters) == 1
    assert clusters["value"].iloc[0] == pytest.approx(40, rel=0.05)
    assert clusters["lines"].iloc[0] == 3000 and clusters["share"].iloc[0] == 1


@pytest.mark.parametrize(
    ("amounts", "value"),
    [
        ([9.99] * 50, 9.99),  # one distinct amount: one cluster, no mixture
        ([1.0, 2.0, 3.0, 10.0, 1000.0, 3.0], math.expm1(np.log1p([1, 2, 3, 10, 1000, 3]).mean())),
    ],
)
def test_degenerate_amounts_give_one_cluster(amounts: list[float], value: float) -> None:
    # fewer than min_lines (10) lines, or all equal: no mixture is fitted; one cluster holds
    # every line, at expm1 of their mean log1p amount
    dist, fit = purchase_distribution_with_fit(amounts_db(amounts), ClusterSettings())
    clusters = clusters_of(dist)
    assert fit is not None and fit.method == "single_group" and fit.bic == {}
    assert len(clusters) == 1
    assert clusters["value"].iloc[0] == pytest.approx(value)
    assert clusters["lines"].iloc[0] == len(amounts) and clusters["share"].iloc[0] == 1
    assert clusters["lower"].iloc[0] == pytest.approx(min(amounts))
    assert clusters["upper"].iloc[0] == pytest.approx(max(amounts))


def test_no_lines_no_clusters() -> None:
    dist, fit = purchase_distribution_with_fit(amounts_db([]), ClusterSettings())
    assert fit is None and clusters_of(dist).empty
    assert fit_log_mixture(np.array([]), ClusterSettings()) is None


def test_a_few_distinct_amounts_cap_the_components() -> None:
    # 300 lines at three prices: k never exceeds the distinct values, and each price is a
    # cluster of its own
    amounts = [5.0] * 100 + [50.0] * 150 + [500.0] * 50
    dist, fit = purchase_distribution_with_fit(amounts_db(amounts), ClusterSettings())
    clusters = clusters_of(dist)
    assert fit is not None and max(fit.bic) == 3
    assert clusters["value"].to_numpy() == pytest.approx([5, 50, 500])
    assert clusters["lines"].tolist() == [100, 150, 50]


def test_purchase_distribution_hand_computed() -> None:
    # 1, 2, 3, 10 and 1000: quantile_cont p50 = 3; log1p skewness is positive but much smaller
    amounts = [1, 2, 3, 10, 1000]
    rows = [
        {"customer_id": "c", "order_id": f"o{i}", "category": "X", "amount": a}
        for i, a in enumerate(amounts)
    ]
    dist = purchase_distribution_with_fit(lines_db(rows), ClusterSettings(bins=10))[0]

    def value(measure: str, name: str) -> float:
        return float(dist[(dist.measure == measure) & (dist.name == name)]["value"].iloc[0])

    assert value("quantile", "p50") == 3
    assert value("summary", "mean") == pytest.approx(1016 / 5)
    x = np.array(amounts, dtype=float)
    m2, m3 = ((x - x.mean()) ** 2).mean(), ((x - x.mean()) ** 3).mean()
    g1 = m3 / m2**1.5
    adjusted = g1 * math.sqrt(5 * 4) / 3  # G1 = g1 * sqrt(n (n-1)) / (n-2)
    assert value("skewness", "raw") == pytest.approx(adjusted)
    log_hist = dist[dist.measure == "histogram_log1p"]
    assert len(log_hist) == 10 and log_hist["lines"].sum() == 5
    raw_hist = dist[dist.measure == "histogram_raw"]
    assert raw_hist["lines"].sum() == 5  # bins up to p99 plus the overflow row
    # 5 lines are fewer than min_lines: one cluster holding all of them
    assert dist[dist.measure == "cluster"]["lines"].tolist() == [5]
    assert set(dist.groupby(["measure", "name"]).size()) == {1}  # the primary key holds


def test_price_clusters_found_in_bimodal_amounts() -> None:
    # 200 lines near 10 and 100 lines near 1000: two modes, split 2/3 vs 1/3
    rng = np.random.default_rng(1)
    amounts = np.concatenate(
        [np.exp(rng.normal(math.log(10), 0.15, 200)), np.exp(rng.normal(math.log(1000), 0.15, 100))]
    ).round(2)
    rows = [
        {"customer_id": "c", "order_id": f"o{i}", "category": "X", "amount": float(a)}
        for i, a in enumerate(amounts)
    ]
    dist = purchase_distribution_with_fit(lines_db(rows), ClusterSettings())[0]
    clusters = dist[dist.measure == "cluster"].sort_values("value")
    assert len(clusters) == 2
    assert clusters["value"].iloc[0] == pytest.approx(10, rel=0.25)
    assert clusters["value"].iloc[1] == pytest.approx(1000, rel=0.25)
    assert clusters["lines"].tolist() == [200, 100]
    assert clusters["share"].sum() == pytest.approx(1)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_the_em_fit_equals_scikit_learns_gaussian_mixture(k: int) -> None:
    """The numpy EM behind the price clusters gives scikit-learn's GaussianMixture fit (the
    reference implementation, run to convergence) on three overlapping log-normal groups.
    (With more components than groups the likelihood has several optima; BIC then prefers
    k = 3 anyway, see the test above.)"""
    from sklearn.mixture import GaussianMixture

    groups = [(10.0, 0.3, 2000), (25.0, 0.3, 1200), (70.0, 0.3, 800)]
    x = np.sort(np.log1p(np.asarray(log_normal_groups(groups), dtype=float)))
    # both run to convergence (the pipeline stops earlier, at 1e-5 per value: see the test
    # above for what that finds)
    ours, log_likelihood = _em_gaussian_mixture(x, k, n_init=2, seed=0, max_iter=20000, tol=1e-9)
    reference = GaussianMixture(k, n_init=4, random_state=0, tol=1e-9, max_iter=5000)
    reference.fit(x.reshape(-1, 1))
    expected = sorted(
        zip(
            reference.means_[:, 0],
            np.sqrt(reference.covariances_[:, 0, 0]),
            reference.weights_,
            strict=True,
        )
    )
    assert log_likelihood == pytest.approx(reference.score(x.reshape(-1, 1)) * len(x), abs=1.0)
    for (mean, sd, weight), (ref_mean, ref_sd, ref_weight) in zip(ours, expected, strict=True):
        assert mean == pytest.approx(ref_mean, abs=0.02)
        assert sd == pytest.approx(ref_sd, abs=0.02)
        assert weight == pytest.approx(ref_weight, abs=0.02)


def test_segment_metrics_do_not_depend_on_the_order_of_customers() -> None:
    """The same customers in another row order give the same table, bit for bit (a sum of
    doubles in arrival order did not: a rerun once differed from a clean run in the last
    digit of a segment's gross sales)."""
    rng = np.random.default_rng(3)
    n = 5000
    customers = pd.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(n)],
            "age_band": rng.choice(["18-25", "26-35"], n),
            "gender": rng.choice(["M", "F"], n),
            "occupation": "1",
            "occupation_group": rng.choice(["Occ_Low", "Occ_High"], n),
            "price_segment": rng.choice(["Price_Low", "Price_High"], n),
            "spend_price_low": 0.0,
            "spend_price_mid": 0.0,
            "spend_price_high": 0.0,
            "spend_unknown_category": 0.0,
            "lines": 1,
            "orders": 1,
            # what CAST(sum(amount) AS DOUBLE) gives: decimals with 4 places as doubles
            "spend": np.round(rng.lognormal(4, 1.5, n), 4),
            "unknown_demographics": False,
        }
    )
    tables = []
    for order in (np.arange(n), rng.permutation(n), rng.permutation(n)):
        conn = duckdb.connect()
        replace_rows_from_frame(conn, CUSTOMER_BEHAVIOUR, customers.iloc[order])
        replace_rows(conn, BEHAVIOURAL_SEGMENTS, BEHAVIOURAL_SEGMENTS_SQL)
        tables.append(conn.execute("SELECT * FROM marts.behavioural_segments").fetchall())
    assert tables[0] == tables[1] == tables[2]
