"""Customer dynamics (issue 12): monthly snapshots, migration between segments and price
tiers, and experiment sizing.

Definitions pinned here (docs/dynamics.md explains them for analysts):

- **Snapshot of month m** (`marts.customer_snapshots`, one row per customer and month): the
  RFM values, scores and segment, and the dominant price segment and behavioural segment, as
  of the month's end, computed only from the sale lines up to that day, with the layers' own
  definitions: the RFM SQL (`logic.rfm.RFM_CUSTOMER_SEGMENTS_SQL`, its window resolved by
  `logic.rfm.resolve_window` with `as_of` = the day after the month) and the behaviour SQL and
  tercile rules (`logic.behaviour`: occupation groups, category price tiers and the customer's
  dominant price segment), each run over the lines up to the month's last day instead of all
  lines (:func:`as_of_sql`). Nothing is re-implemented.
- **as_of** of a snapshot = the day after the month, also while the month is still running
  (its snapshot is then provisional: recency counts to the month's end, as if nobody bought in
  the days still to come). So a month's snapshot depends only on the lines up to its last day,
  and recomputing it after later data arrived gives the same rows. R scores are ranks, so they
  and the segments equal today's `rfm_customer_segments` either way; only recency_days is
  shifted by the days left in the month. A month that starts after the last sale line has no
  snapshot yet.
- **Lapsed**: no purchase in the last `lapse_days` days before the snapshot's as_of
  (`recency_days > lapse_days`); otherwise **active**.
- **Transitions** between the snapshots of two consecutive calendar months, per dimension
  (`rfm_segment`, `price_tier`, `activity`): customers of the earlier snapshot by their state
  there and in the later one. A customer absent from the earlier snapshot comes from
  `(entered)`; one absent from the later snapshot goes to `(left)` (possible only with a
  look-back RFM window). So the rows of every earlier state add up to the earlier snapshot's
  customers, and the columns of every later state to the later snapshot's.
- **Revenue that moved** with a transition: what its customers spent in the earlier month and
  in the later month (`revenue_from_month`, `revenue_to_month`).
- **Experiment sizing**: per strategy class, the monthly rate of the outcome its playbook
  targets, pooled over the last `baseline_months` month-to-month transitions (customers in
  the class at the start of a month; the class is today's rule table applied to that month's
  occupation group and price segment), and the customers per arm to detect a relative uplift
  of that rate with a two-proportion z-test on Cohen's arcsine effect size h
  (the normal power of statsmodels' `NormalIndPower`, computed here; statsmodels is the
  tests' reference).
"""

from __future__ import annotations

import calendar
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from statistics import NormalDist

import duckdb
import pandas as pd

from segment_pipeline.logic.behaviour import (
    CATEGORY_STATS_SQL,
    CUSTOMER_BEHAVIOUR_SQL,
    OCCUPATION_STATS_SQL,
    PRICE_HIGH,
    PRICE_LOW,
    PRICE_MID,
    PRICE_UNKNOWN,
    assign_occupation_groups,
    assign_price_segments,
)
from segment_pipeline.logic.rfm import (
    RFM_CUSTOMER_SEGMENTS,
    RFM_CUSTOMER_SEGMENTS_SQL,
    RfmWindow,
    RfmWindowError,
    SegmentMap,
    resolve_window,
    rfm_params,
    rfm_scoring_ctes,
)
from segment_pipeline.logic.staging import day_batches
from segment_pipeline.logic.strategy import RuleTable, all_cells
from segment_pipeline.tables import Column, TableDef

# --------------------------------------------------------------------------------------------
# States
# --------------------------------------------------------------------------------------------

ENTERED = "(entered)"
LEFT = "(left)"
ACTIVE, LAPSED = "active", "lapsed"

DIM_RFM, DIM_PRICE, DIM_ACTIVITY = "rfm_segment", "price_tier", "activity"
DIMENSIONS: tuple[str, ...] = (DIM_RFM, DIM_PRICE, DIM_ACTIVITY)

#: Price tiers low to high (rank 1..3); Unknown has no rank (no move up or down).
TIER_RANK: dict[str, int] = {PRICE_LOW: 1, PRICE_MID: 2, PRICE_HIGH: 3}
PRICE_STATES: tuple[str, ...] = (PRICE_LOW, PRICE_MID, PRICE_HIGH, PRICE_UNKNOWN)

DEFAULT_LAPSE_DAYS = 90

# --------------------------------------------------------------------------------------------
# Months
# --------------------------------------------------------------------------------------------


def month_end(month: date) -> date:
    """The last day of `month`'s calendar month."""
    return month.replace(day=calendar.monthrange(month.year, month.month)[1])


def add_months(month: date, n: int) -> date:
    index = month.year * 12 + month.month - 1 + n
    return date(index // 12, index % 12 + 1, 1)


def months_between(first: date, last: date) -> list[date]:
    """First days of the calendar months from `first`'s to `last`'s, inclusive."""
    out, month = [], first.replace(day=1)
    while month <= last:
        out.append(month)
        month = add_months(month, 1)
    return out


def snapshot_as_of(month: date, last_line: date | None) -> date | None:
    """as_of of the snapshot of `month` (first day) when the data's last sale line is on
    `last_line`: the day after the month (also while it is running); None when the month
    starts after the last line (nothing to snapshot yet)."""
    if last_line is None or last_line < month:
        return None
    return month_end(month) + timedelta(days=1)


# --------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------

_RFM_COLUMNS = tuple(c for c in RFM_CUSTOMER_SEGMENTS.columns if c.name != "customer_id")

CUSTOMER_SNAPSHOTS = TableDef(
    schema="marts",
    name="customer_snapshots",
    description="One row per customer and month: RFM values, scores and segment, dominant "
    "price segment and behavioural segment as of the month's end (lines up to that day only), "
    "and the month's own orders and spend. Monthly partitions.",
    columns=(
        Column("snapshot_month", "DATE", "First day of the month (the partition key)", False),
        Column("month_end", "DATE", "Last day of the month", nullable=False),
        Column("customer_id", "VARCHAR", "Customer id", nullable=False),
        *_RFM_COLUMNS,
        Column("age_band", "VARCHAR", "Age band (or Unknown)", nullable=False),
        Column("gender", "VARCHAR", "M, F or Unknown", nullable=False),
        Column("occupation", "VARCHAR", "Occupation code (or Unknown)", nullable=False),
        Column(
            "occupation_group",
            "VARCHAR",
            "Occ_Low / Occ_Mid / Occ_High / Occ_Other, from the lines up to as_of - 1",
            nullable=False,
        ),
        Column(
            "price_segment",
            "VARCHAR",
            "Dominant price segment as of the month (category tiers from the lines up to "
            "as_of - 1); Unknown without spend in a tiered category",
            nullable=False,
        ),
        Column(
            "behavioural_segment",
            "VARCHAR",
            "age band | gender | occupation group | price segment",
            nullable=False,
        ),
        Column("month_orders", "BIGINT", "Distinct orders in this month", nullable=False),
        Column("month_revenue", "DECIMAL(38,4)", "Spend in this month", nullable=False),
    ),
    primary_key=("snapshot_month", "customer_id"),
)

CATEGORY_TIER_SNAPSHOTS = TableDef(
    schema="marts",
    name="category_tier_snapshots",
    description="Per month and category: the median line amount and price tier as of the "
    "month's end (the tiers the month's snapshot used). A category that changes tier moves "
    "its buyers' dominant price segment with it. Monthly partitions.",
    columns=(
        Column("snapshot_month", "DATE", "First day of the month (the partition key)", False),
        Column("category", "VARCHAR", "Product category (or Unknown)", nullable=False),
        Column("lines", "BIGINT", "Sale lines up to as_of - 1"),
        Column("customers", "BIGINT", "Distinct customers up to as_of - 1"),
        Column("median_line_amount", "DOUBLE", "Median line amount up to as_of - 1"),
        Column("tier_rank", "INTEGER", "Rank of the median among tiered categories"),
        Column("price_segment", "VARCHAR", "Price_Low / Price_Mid / Price_High / Unknown", False),
    ),
    primary_key=("snapshot_month", "category"),
)

SEGMENT_TRANSITIONS = TableDef(
    schema="marts",
    name="segment_transitions",
    description="Between the snapshots of consecutive months, per dimension (rfm_segment, "
    "price_tier, activity): customers by state in the earlier and in the later snapshot, "
    "their row share, and the revenue that moved with them. (entered) = not in the earlier "
    "snapshot; (left) = not in the later one.",
    columns=(
        Column("from_month", "DATE", "The earlier snapshot's month", nullable=False),
        Column("to_month", "DATE", "The later snapshot's month (from_month + 1)", False),
        Column("dimension", "VARCHAR", "rfm_segment, price_tier or activity", nullable=False),
        Column("from_state", "VARCHAR", "State in the earlier snapshot, or (entered)", False),
        Column("to_state", "VARCHAR", "State in the later snapshot, or (left)", False),
        Column("from_order", "INTEGER", "Display position of from_state ((entered) = 0)"),
        Column("to_order", "INTEGER", "Display position of to_state ((left) last)"),
        Column(
            "direction",
            "VARCHAR",
            "same, moved (RFM), up / down (price tier), lapsed / reactivated (activity), "
            "entered or left",
            nullable=False,
        ),
        Column("customers", "BIGINT", "Customers making this transition", nullable=False),
        Column(
            "row_customers",
            "BIGINT",
            "Customers in from_state in the earlier snapshot (entrants: all entrants)",
            nullable=False,
        ),
        Column("row_share", "DOUBLE", "customers / row_customers (each row sums to 1)"),
        Column(
            "revenue_from_month",
            "DOUBLE",
            "What these customers spent in from_month",
            nullable=False,
        ),
        Column(
            "revenue_to_month", "DOUBLE", "What these customers spent in to_month", nullable=False
        ),
        Column(
            "lapse_days",
            "INTEGER",
            "The lapse threshold of the activity dimension (no purchase in this many days)",
            nullable=False,
        ),
    ),
    primary_key=("from_month", "dimension", "from_state", "to_state"),
)

CUSTOMER_LAST_MOVES = TableDef(
    schema="marts",
    name="customer_last_moves",
    description="Per customer of the latest snapshot: the last month their RFM segment and "
    "their price tier changed, from what, and whether they are active.",
    columns=(
        Column("customer_id", "VARCHAR", "Customer id", nullable=False),
        Column("latest_month", "DATE", "The latest snapshot's month", nullable=False),
        Column("segment", "VARCHAR", "RFM segment in the latest snapshot", nullable=False),
        Column(
            "previous_segment",
            "VARCHAR",
            "Segment before the last move; (entered) when it has not moved since the "
            "customer's first snapshot",
            nullable=False,
        ),
        Column("segment_since", "DATE", "Month of the last segment move (or of entry)", False),
        Column(
            "months_in_segment",
            "INTEGER",
            "Snapshots since segment_since, that one included",
            nullable=False,
        ),
        Column("price_segment", "VARCHAR", "Price tier in the latest snapshot", nullable=False),
        Column(
            "previous_price_segment",
            "VARCHAR",
            "Price tier before the last tier move, or (entered)",
            nullable=False,
        ),
        Column("price_segment_since", "DATE", "Month of the last tier move (or entry)", False),
        Column(
            "price_move",
            "VARCHAR",
            "up, down, entered or changed (to or from Unknown): the last tier move",
            nullable=False,
        ),
        Column("recency_days", "INTEGER", "Recency in the latest snapshot", nullable=False),
        Column(
            "active", "BOOLEAN", "Purchased within lapse_days of the latest as_of", nullable=False
        ),
        Column("monetary", "DECIMAL(38,4)", "Spend in the RFM window", nullable=False),
        Column("month_revenue", "DECIMAL(38,4)", "Spend in the latest month", nullable=False),
    ),
    primary_key=("customer_id",),
)

EXPERIMENT_SIZING = TableDef(
    schema="marts",
    name="experiment_sizing",
    description="Per strategy class and playbook action: the customers available, the "
    "monthly baseline rate of the outcome the action targets (from the snapshots), and the "
    "customers per arm to detect the configured relative uplift (normal power, two-proportion "
    "z-test on Cohen's h); says when the class is too small to test.",
    columns=(
        Column("strategy_class", "VARCHAR", "Strategy class", nullable=False),
        Column("class_order", "INTEGER", "Order in the rule table"),
        Column("action_number", "INTEGER", "Position of the action in the class's playbook"),
        Column("action", "VARCHAR", "The playbook action (one arm against a control group)"),
        Column("outcome", "VARCHAR", "repeat_purchase, stay_active or price_tier_up"),
        Column("outcome_description", "VARCHAR", "What counts as a success, per customer"),
        Column(
            "customers_available",
            "BIGINT",
            "Customers of the class in the latest snapshot who can have the outcome",
        ),
        Column("baseline_trials", "BIGINT", "Customer-months the baseline rate is measured on"),
        Column("baseline_successes", "BIGINT", "Of those, customer-months with the outcome"),
        Column("baseline_months", "INTEGER", "Month-to-month transitions pooled"),
        Column("baseline_rate", "DOUBLE", "baseline_successes / baseline_trials"),
        Column("relative_uplift", "DOUBLE", "Uplift to detect, relative (0.1 = +10%)"),
        Column("target_rate", "DOUBLE", "baseline_rate x (1 + relative_uplift)"),
        Column("alpha", "DOUBLE", "Significance level (two-sided)"),
        Column("power", "DOUBLE", "Power"),
        Column("effect_size_h", "DOUBLE", "Cohen's h = 2 asin sqrt(target) - 2 asin sqrt(base)"),
        Column("n_per_arm", "BIGINT", "Customers per arm (treatment and control), rounded up"),
        Column("customers_needed", "BIGINT", "2 x n_per_arm (one action against a control)"),
        Column(
            "max_arms",
            "BIGINT",
            "Arms of n_per_arm the available customers fill (control included): actions "
            "testable at once = max_arms - 1",
        ),
        Column(
            "detectable_uplift",
            "DOUBLE",
            "Smallest relative uplift the available customers (two equal arms) detect with "
            "the same alpha and power",
        ),
        Column("testable", "BOOLEAN", "True when the available customers fill both arms"),
        Column("verdict", "VARCHAR", "Plain words: testable, or why not", nullable=False),
    ),
    primary_key=("strategy_class", "action_number"),
)

DYNAMICS_TABLES: tuple[TableDef, ...] = (
    CUSTOMER_SNAPSHOTS,
    CATEGORY_TIER_SNAPSHOTS,
    SEGMENT_TRANSITIONS,
    CUSTOMER_LAST_MOVES,
    EXPERIMENT_SIZING,
)

# --------------------------------------------------------------------------------------------
# Snapshots: the layers' SQL over the lines up to a day
# --------------------------------------------------------------------------------------------

SALES_LINES = "staging.sales_lines"
#: A narrow copy of staging.sales_lines (the columns the reused SQL reads), taken once per
#: run: each month's queries then scan it instead of the view and its joins (12 months at
#: 746k lines: 11-15 s instead of 21-28 s).
LINES_TABLE = "_dynamics_lines"
STAGE_LINES_SQL = f"""
CREATE OR REPLACE TEMP TABLE {LINES_TABLE} AS
SELECT customer_id, order_id, order_ts, category, amount, age_band, gender, occupation
FROM staging.sales_lines
WHERE CAST(order_ts AS DATE) <= CAST($last_day AS DATE)
"""
#: The sale lines up to (and including) `$last_day`: replaces `staging.sales_lines` in the
#: RFM and behaviour layers' SQL.
LINES_UP_TO_SQL = (
    f"(SELECT * FROM {LINES_TABLE} WHERE CAST(order_ts AS DATE) <= CAST($last_day AS DATE))"
)
#: Names the as-of lookup tables are registered under (they replace the marts tables).
ASOF_OCCUPATION_GROUPS = "_asof_occupation_groups"
ASOF_CATEGORY_PRICE_SEGMENTS = "_asof_category_price_segments"


class AsOfSqlError(RuntimeError):
    """A layer's SQL no longer has the shape `as_of_sql` rewrites (a pipeline bug)."""


def as_of_sql(sql: str, replacements: Mapping[str, str] | None = None) -> str:
    """`sql` with every `staging.sales_lines` read as the lines up to `$last_day`, and each
    table named in `replacements` replaced by its value (e.g. the as-of lookup tables).

    Used so the snapshots run the behaviour layer's own SQL: each name must occur in `sql`,
    or the layer's SQL has changed shape and the snapshot would silently differ from it.
    """
    out = sql
    for name, replacement in {SALES_LINES: LINES_UP_TO_SQL, **(replacements or {})}.items():
        if name not in out:
            raise AsOfSqlError(f"expected {name} in the SQL to rewrite as of a day:\n{sql}")
        out = out.replace(name, replacement)
    return out


RFM_AS_OF_SQL = as_of_sql(RFM_CUSTOMER_SEGMENTS_SQL)
OCCUPATION_STATS_AS_OF_SQL = as_of_sql(OCCUPATION_STATS_SQL)
CATEGORY_STATS_AS_OF_SQL = as_of_sql(CATEGORY_STATS_SQL)
CUSTOMER_BEHAVIOUR_AS_OF_SQL = as_of_sql(
    CUSTOMER_BEHAVIOUR_SQL,
    {
        "marts.occupation_groups": ASOF_OCCUPATION_GROUPS,
        "marts.category_price_segments": ASOF_CATEGORY_PRICE_SEGMENTS,
    },
)

LAST_LINE_DATE_SQL = "SELECT max(CAST(order_ts AS DATE)) FROM staging.sales_lines"

#: One snapshot month from the as-of RFM and behaviour temp tables and the month's lines.
#: Parameters: $month, $month_end, $last_day.
SNAPSHOT_ROWS_SQL = f"""
WITH month_lines AS (
    SELECT customer_id, count(DISTINCT order_id) AS orders, sum(amount) AS revenue
    FROM {LINES_TABLE}
    WHERE CAST(order_ts AS DATE) BETWEEN CAST($month AS DATE) AND CAST($last_day AS DATE)
    GROUP BY customer_id
)
SELECT
    CAST($month AS DATE) AS snapshot_month,
    CAST($month_end AS DATE) AS month_end,
    r.customer_id,
    {", ".join(f"r.{c.name}" for c in _RFM_COLUMNS)},
    b.age_band, b.gender, b.occupation, b.occupation_group, b.price_segment,
    -- the label of marts.behavioural_segments
    b.age_band || ' | ' || b.gender || ' | ' || b.occupation_group || ' | ' || b.price_segment
        AS behavioural_segment,
    coalesce(m.orders, 0) AS month_orders,
    CAST(coalesce(m.revenue, 0) AS DECIMAL(38,4)) AS month_revenue
FROM _snapshot_rfm AS r
JOIN _snapshot_behaviour AS b USING (customer_id)
LEFT JOIN month_lines AS m USING (customer_id)
ORDER BY r.customer_id
"""


@dataclass(frozen=True)
class WindowSettings:
    """The RFM window bounds that apply to every snapshot (rfm_settings' window_start and
    lookback_days; a configured as_of or window_end is the current mart's, not a month's)."""

    window_start: date | None = None
    lookback_days: int | None = None


@dataclass(frozen=True)
class SnapshotMonth:
    """What one month's snapshot was computed over (for metadata)."""

    month: date
    as_of: date | None
    window: RfmWindow | None
    customers: int


def snapshot_window(
    conn: duckdb.DuckDBPyConnection, as_of: date, settings: WindowSettings
) -> RfmWindow | None:
    """The RFM window of a snapshot (the RFM layer's own resolution, over the staged copy of
    the lines, see stage_lines), or None when it holds no sale line (a month before the data,
    or a look-back window without purchases)."""
    try:
        return resolve_window(
            conn,
            window_start=settings.window_start,
            as_of=as_of,
            lookback_days=settings.lookback_days,
            lines_table=LINES_TABLE,
        )
    except RfmWindowError:
        return None


def compute_snapshot(
    conn: duckdb.DuckDBPyConnection,
    month: date,
    *,
    segment_map: SegmentMap,
    window_settings: WindowSettings,
    min_customers_per_occupation: int,
    last_line: date | None,
    into: str,
) -> SnapshotMonth:
    """Append the snapshot rows of `month` to the temp table `into` (which has the columns of
    CUSTOMER_SNAPSHOTS), reading the lines of :func:`stage_lines` (taken up to this month's
    end or later). Everything runs in DuckDB but the two small tercile splits (one row per
    occupation code and per category)."""
    as_of = snapshot_as_of(month, last_line)
    window = snapshot_window(conn, as_of, window_settings) if as_of else None
    if as_of is None or window is None:
        return SnapshotMonth(month, as_of, None, 0)
    last_day = as_of - timedelta(days=1)
    day = {"last_day": last_day}
    occupation = assign_occupation_groups(
        conn.execute(OCCUPATION_STATS_AS_OF_SQL, day).df(), min_customers_per_occupation
    )
    categories = assign_price_segments(conn.execute(CATEGORY_STATS_AS_OF_SQL, day).df())
    tiers = categories.assign(snapshot_month=month)[CATEGORY_TIER_SNAPSHOTS.column_names]
    conn.register("_month_tiers", tiers)
    try:
        conn.execute(f"INSERT INTO {into}_tiers SELECT * FROM _month_tiers")
    finally:
        conn.unregister("_month_tiers")
    conn.register(ASOF_OCCUPATION_GROUPS, occupation)
    conn.register(ASOF_CATEGORY_PRICE_SEGMENTS, categories)
    try:
        conn.execute(
            f"CREATE OR REPLACE TEMP TABLE _snapshot_rfm AS {RFM_AS_OF_SQL}",
            {**rfm_params(window, segment_map), **day},
        )
        conn.execute(
            f"CREATE OR REPLACE TEMP TABLE _snapshot_behaviour AS {CUSTOMER_BEHAVIOUR_AS_OF_SQL}",
            day,
        )
    finally:
        conn.unregister(ASOF_OCCUPATION_GROUPS)
        conn.unregister(ASOF_CATEGORY_PRICE_SEGMENTS)
    cols = ", ".join(CUSTOMER_SNAPSHOTS.column_names)
    before = conn.execute(f"SELECT count(*) FROM {into}").fetchall()[0][0]
    conn.execute(
        f"INSERT INTO {into} ({cols}) SELECT {cols} FROM ({SNAPSHOT_ROWS_SQL})",
        {"month": month, "month_end": month_end(month), "last_day": last_day},
    )
    after = conn.execute(f"SELECT count(*) FROM {into}").fetchall()[0][0]
    conn.execute("DROP TABLE IF EXISTS _snapshot_rfm")
    conn.execute("DROP TABLE IF EXISTS _snapshot_behaviour")
    return SnapshotMonth(month, as_of, window, int(after - before))


def stage_lines(conn: duckdb.DuckDBPyConnection, last_day: date) -> None:
    """(Re)take the narrow temp copy of the sale lines up to `last_day`."""
    conn.execute(STAGE_LINES_SQL, {"last_day": last_day})


def create_snapshot_temp(conn: duckdb.DuckDBPyConnection, name: str) -> None:
    """Empty temp tables `name` and `name_tiers` with the columns of the snapshot tables."""
    for table, temp in ((CUSTOMER_SNAPSHOTS, name), (CATEGORY_TIER_SNAPSHOTS, f"{name}_tiers")):
        cols = ",\n  ".join(f"{c.name} {c.sql_type}" for c in table.columns)
        conn.execute(f"CREATE OR REPLACE TEMP TABLE {temp} (\n  {cols}\n)")


# --------------------------------------------------------------------------------------------
# All months of a run in one pass
# --------------------------------------------------------------------------------------------
#
# compute_snapshot (above) runs the layers' own SQL once per month: each month re-reads every
# line up to its end, so a ranged run cost months x history (137 s for 13 months at 10M lines).
# The same definitions written once over a months table: the lines are first summed per
# customer, order and day (and per customer, category and day), and each month takes the rows
# up to its end. Sums of decimals are exact, distinct orders stay distinct, ranks and scores
# are the RFM layer's with PARTITION BY month, the month's occupation groups and category tiers
# come from the layer's own functions. The blocking check `matches_as_of_recomputation`
# compares a month of every run with compute_snapshot, column by column.

#: The months of a run: snapshot_month, month_end, as_of, last_day, window_start, window_end.
MONTHS_TABLE = "_snapshot_months"
#: Per month and occupation: its group; per month and category: its price segment.
MONTH_OCCUPATIONS_TABLE = "_snapshot_month_occupations"
MONTH_TIERS_TABLE = "_snapshot_month_tiers"

#: The lines summed once per run (temp tables the month batches share): per customer, order
#: and day; per customer, category and calendar month; one profile per customer.
ORDER_DAYS_TABLE = "_snapshot_order_days"
CATEGORY_MONTHS_TABLE = "_snapshot_category_months"
PROFILES_TABLE = "_snapshot_profiles"
PREPARE_SNAPSHOT_INPUTS_SQL = (
    f"""
CREATE OR REPLACE TEMP TABLE {ORDER_DAYS_TABLE} AS
SELECT customer_id, order_id, CAST(order_ts AS DATE) AS order_date, sum(amount) AS amount
FROM {LINES_TABLE}
GROUP BY ALL
""",
    f"""
CREATE OR REPLACE TEMP TABLE {CATEGORY_MONTHS_TABLE} AS
SELECT customer_id, category, date_trunc('month', order_ts)::DATE AS order_month,
       sum(amount) AS amount
FROM {LINES_TABLE}
GROUP BY ALL
""",
    f"""
CREATE OR REPLACE TEMP TABLE {PROFILES_TABLE} AS
SELECT customer_id, min(age_band) AS age_band, min(gender) AS gender,
       min(occupation) AS occupation
FROM {LINES_TABLE}
GROUP BY customer_id
""",
)
#: Rows each month would join, per calendar month of the data (to cut the months into
#: batches that stay within DuckDB's memory limit).
MONTH_ROWS_SQL = f"""
SELECT order_month, sum(n) AS n FROM (
    SELECT date_trunc('month', order_date)::DATE AS order_month, count(*) AS n
    FROM {ORDER_DAYS_TABLE} GROUP BY 1
    UNION ALL
    SELECT order_month, count(*) AS n FROM {CATEGORY_MONTHS_TABLE} GROUP BY 1
) GROUP BY 1 ORDER BY 1
"""
#: Joined rows per batch of months at most (about 100 bytes each before aggregation).
SNAPSHOT_BATCH_ROWS = 6_000_000

ALL_MONTHS_SNAPSHOT_SQL = f"""
WITH order_days AS (
    SELECT * FROM {ORDER_DAYS_TABLE}
),
-- RFM: the RFM layer's definitions per month (RFM_CUSTOMER_SEGMENTS_SQL). Distinct orders
-- are counted by grouping twice (a DISTINCT aggregate over tens of millions of rows did not
-- fit DuckDB's memory limit at 10M lines; a plain grouping spills).
per_order AS (
    SELECT
        m.snapshot_month, o.customer_id, o.order_id,
        min(o.order_date) AS first_date, max(o.order_date) AS last_date, sum(o.amount) AS amount
    FROM {MONTHS_TABLE} AS m
    JOIN order_days AS o ON o.order_date BETWEEN m.window_start AND m.window_end
    GROUP BY m.snapshot_month, o.customer_id, o.order_id
),
per_customer AS (
    SELECT
        snapshot_month, customer_id,
        min(first_date) AS first_purchase_date,
        max(last_date) AS last_purchase_date,
        count(*) AS frequency,
        sum(amount) AS monetary
    FROM per_order
    GROUP BY snapshot_month, customer_id
),
valued AS (
    SELECT
        p.*, m.as_of, m.window_start, m.window_end,
        CAST(date_diff('day', p.last_purchase_date, m.as_of) AS INTEGER) AS recency_days,
        count(*) OVER (PARTITION BY p.snapshot_month) AS n_customers
    FROM per_customer AS p
    JOIN {MONTHS_TABLE} AS m USING (snapshot_month)
),
{rfm_scoring_ctes("snapshot_month")},
rfm AS (
    SELECT
        s.snapshot_month, s.customer_id, s.first_purchase_date, s.last_purchase_date,
        s.recency_days, s.frequency, CAST(s.monetary AS DECIMAL(38,4)) AS monetary,
        s.r_score, s.f_score, s.m_score,
        'R' || s.r_score || 'F' || s.f_score AS rf_cell,
        CAST(s.r_score AS VARCHAR) || s.f_score || s.m_score AS rfm_code,
        g.segment,
        CAST(list_position($segments::VARCHAR[], g.segment) AS INTEGER) AS segment_order,
        s.as_of, s.window_start, s.window_end
    FROM scored AS s
    LEFT JOIN segment_map AS g USING (r_score, f_score)
),
-- Behaviour: the behaviour layer's definitions per month (CUSTOMER_BEHAVIOUR_SQL), with the
-- month's occupation groups and category tiers. A customer's profile is one row of
-- staging.customers, the same on every line; only the dominant price segment needs the
-- spend per category up to each month (summed per calendar month: every snapshot's last day
-- is a month's last day).
profiles AS (
    SELECT * FROM {PROFILES_TABLE}
),
category_months AS (
    SELECT * FROM {CATEGORY_MONTHS_TABLE}
),
by_tier AS (
    SELECT m.snapshot_month, c.customer_id, t.price_segment, sum(c.amount) AS spend
    FROM {MONTHS_TABLE} AS m
    JOIN category_months AS c ON c.order_month <= m.snapshot_month
    JOIN {MONTH_TIERS_TABLE} AS t
        ON t.snapshot_month = m.snapshot_month AND t.category = c.category
    WHERE t.price_segment <> 'Unknown'
    GROUP BY ALL
),
dominant AS (
    SELECT snapshot_month, customer_id, price_segment
    FROM by_tier
    QUALIFY row_number() OVER (
        PARTITION BY snapshot_month, customer_id
        ORDER BY spend DESC,
                 CASE price_segment WHEN 'Price_High' THEN 3 WHEN 'Price_Mid' THEN 2
                                    ELSE 1 END DESC
    ) = 1
),
behaviour AS (
    -- every customer of a month's RFM window has lines up to its last day
    SELECT r.snapshot_month, r.customer_id, p.age_band, p.gender, p.occupation,
           o.occupation_group
    FROM rfm AS r
    JOIN profiles AS p USING (customer_id)
    JOIN {MONTH_OCCUPATIONS_TABLE} AS o
        ON o.snapshot_month = r.snapshot_month AND o.occupation = p.occupation
),
this_month_orders AS (
    SELECT m.snapshot_month, o.customer_id, o.order_id, sum(o.amount) AS amount
    FROM {MONTHS_TABLE} AS m
    JOIN order_days AS o ON o.order_date BETWEEN m.snapshot_month AND m.last_day
    GROUP BY ALL
),
this_month AS (
    SELECT snapshot_month, customer_id, count(*) AS orders, sum(amount) AS revenue
    FROM this_month_orders
    GROUP BY ALL
)
SELECT
    r.snapshot_month,
    m.month_end,
    r.customer_id,
    {", ".join(f"r.{c.name}" for c in _RFM_COLUMNS)},
    b.age_band, b.gender, b.occupation, b.occupation_group,
    coalesce(d.price_segment, 'Unknown') AS price_segment,
    b.age_band || ' | ' || b.gender || ' | ' || b.occupation_group || ' | '
        || coalesce(d.price_segment, 'Unknown') AS behavioural_segment,
    coalesce(t.orders, 0) AS month_orders,
    CAST(coalesce(t.revenue, 0) AS DECIMAL(38,4)) AS month_revenue
FROM rfm AS r
JOIN {MONTHS_TABLE} AS m USING (snapshot_month)
JOIN behaviour AS b USING (snapshot_month, customer_id)
LEFT JOIN dominant AS d USING (snapshot_month, customer_id)
LEFT JOIN this_month AS t USING (snapshot_month, customer_id)
"""


def _month_batches(
    month_rows: list[dict], per_month: Mapping[date, int], budget: int
) -> list[list[dict]]:
    """Cut the months (rows of MONTHS_TABLE, in order) into consecutive batches whose joined
    rows (each month joins the summed rows up to its end) stay within `budget`, as staging
    cuts days; a month over the budget alone is a batch of its own."""
    months = [row["snapshot_month"] for row in month_rows]
    joined = {m: sum(n for day, n in per_month.items() if day <= m) for m in months}
    by_month = {row["snapshot_month"]: row for row in month_rows}
    return [[by_month[m] for m in batch] for batch in day_batches(joined, months, budget)]


def compute_snapshots(
    conn: duckdb.DuckDBPyConnection,
    months: Sequence[date],
    *,
    segment_map: SegmentMap,
    window_settings: WindowSettings,
    min_customers_per_occupation: int,
    into: str = "_snapshots",
) -> list[SnapshotMonth]:
    """The snapshots of `months` (first days) into the temp tables `into` (customers) and
    `into`_tiers (category tiers), created empty: per month the window and the two small
    tercile splits (the layers' own functions), then every month's rows in one query."""
    create_snapshot_temp(conn, into)
    last_line = conn.execute(LAST_LINE_DATE_SQL).fetchall()[0][0]
    stage_lines(conn, month_end(max(months)))
    plan: list[tuple[date, date | None, RfmWindow | None]] = []
    month_rows, occupation_frames, tier_frames = [], [], []
    for month in months:
        as_of = snapshot_as_of(month, last_line)
        window = snapshot_window(conn, as_of, window_settings) if as_of else None
        plan.append((month, as_of, window))
        if as_of is None or window is None:
            continue
        last_day = as_of - timedelta(days=1)
        day = {"last_day": last_day}
        occupation = assign_occupation_groups(
            conn.execute(OCCUPATION_STATS_AS_OF_SQL, day).df(), min_customers_per_occupation
        )
        occupation_frames.append(
            occupation.assign(snapshot_month=month)[
                ["snapshot_month", "occupation", "occupation_group"]
            ]
        )
        categories = assign_price_segments(conn.execute(CATEGORY_STATS_AS_OF_SQL, day).df())
        tier_frames.append(categories.assign(snapshot_month=month))
        month_rows.append(
            {
                "snapshot_month": month,
                "month_end": month_end(month),
                "as_of": as_of,
                "last_day": last_day,
                "window_start": window.start,
                "window_end": window.end,
            }
        )
    if month_rows:
        tiers = pd.concat(tier_frames, ignore_index=True)
        lookups = {
            MONTH_OCCUPATIONS_TABLE: pd.concat(occupation_frames, ignore_index=True),
            MONTH_TIERS_TABLE: tiers[["snapshot_month", "category", "price_segment"]],
        }
        for name, frame in lookups.items():
            # small typed temp tables (DATE columns) for the query's joins
            conn.register(f"{name}_frame", frame)
            try:
                conn.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM {name}_frame")
            finally:
                conn.unregister(f"{name}_frame")
        conn.register("_month_tier_rows", tiers[CATEGORY_TIER_SNAPSHOTS.column_names])
        try:
            conn.execute(f"INSERT INTO {into}_tiers SELECT * FROM _month_tier_rows")
        finally:
            conn.unregister("_month_tier_rows")
        for statement in PREPARE_SNAPSHOT_INPUTS_SQL:
            conn.execute(statement)
        per_month = dict(conn.execute(MONTH_ROWS_SQL).fetchall())
        cols = ", ".join(CUSTOMER_SNAPSHOTS.column_names)
        for batch in _month_batches(month_rows, per_month, SNAPSHOT_BATCH_ROWS):
            conn.register(f"{MONTHS_TABLE}_frame", pd.DataFrame(batch))
            try:
                conn.execute(
                    f"CREATE OR REPLACE TEMP TABLE {MONTHS_TABLE} AS "
                    f"SELECT * FROM {MONTHS_TABLE}_frame"
                )
            finally:
                conn.unregister(f"{MONTHS_TABLE}_frame")
            conn.execute(
                f"INSERT INTO {into} ({cols}) SELECT {cols} FROM ({ALL_MONTHS_SNAPSHOT_SQL})",
                segment_map.sql_params(),
            )
        for name in (
            *lookups,
            MONTHS_TABLE,
            ORDER_DAYS_TABLE,
            CATEGORY_MONTHS_TABLE,
            PROFILES_TABLE,
        ):
            conn.execute(f"DROP TABLE IF EXISTS {name}")
    counts = dict(
        conn.execute(f"SELECT snapshot_month, count(*) FROM {into} GROUP BY 1").fetchall()
    )
    return [
        SnapshotMonth(month, as_of, window, int(counts.get(month, 0)) if window else 0)
        for month, as_of, window in plan
    ]


def write_snapshots(
    conn: duckdb.DuckDBPyConnection, first: date, last: date, source: str = "_snapshots"
) -> int:
    """Replace the months `first..last` of marts.customer_snapshots and
    marts.category_tier_snapshots with the rows of the temp tables `source` and
    `source`_tiers, in one transaction (a month without rows is left empty). Returns the
    customer rows written."""
    from segment_pipeline.tables import ensure_table

    written = {CUSTOMER_SNAPSHOTS: source, CATEGORY_TIER_SNAPSHOTS: f"{source}_tiers"}
    for table in written:
        ensure_table(conn, table)
    conn.execute("BEGIN TRANSACTION")
    try:
        for table, temp in written.items():
            cols = ", ".join(table.column_names)
            conn.execute(
                f"DELETE FROM {table.fqn} WHERE snapshot_month BETWEEN ? AND ?", [first, last]
            )
            conn.execute(
                f"INSERT INTO {table.fqn} ({cols}) SELECT {cols} FROM {temp} "
                f"WHERE snapshot_month BETWEEN ? AND ? ORDER BY {', '.join(table.primary_key)}",
                [first, last],
            )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return int(
        conn.execute(
            f"SELECT count(*) FROM {CUSTOMER_SNAPSHOTS.fqn} WHERE snapshot_month BETWEEN ? AND ?",
            [first, last],
        ).fetchall()[0][0]
    )


#: Per stored month: rows, distinct customers, and the customers with a sale line in the
#: month's RFM window (from the current staging); rows without a segment of the map.
SNAPSHOT_COVERAGE_SQL = """
WITH stored AS (
    SELECT snapshot_month, min(window_start) AS window_start, max(window_end) AS window_end,
           count(*) AS rows, count(DISTINCT customer_id) AS customers,
           count(*) FILTER (WHERE segment IS NULL
                            OR list_position($segments::VARCHAR[], segment) IS NULL
                            OR r_score NOT BETWEEN 1 AND 5 OR f_score NOT BETWEEN 1 AND 5
                            OR m_score NOT BETWEEN 1 AND 5) AS bad_rows,
           count(DISTINCT (window_start, window_end, as_of)) AS windows
    FROM marts.customer_snapshots
    WHERE snapshot_month BETWEEN $first AND $last
    GROUP BY snapshot_month
)
SELECT s.snapshot_month, s.rows, s.customers, s.bad_rows, s.windows,
       (SELECT count(DISTINCT l.customer_id) FROM staging.sales_lines AS l
        WHERE CAST(l.order_ts AS DATE) BETWEEN s.window_start AND s.window_end)
           AS window_customers
FROM stored AS s
ORDER BY s.snapshot_month
"""

#: Customers and total RFM spend of every stored month, and the same recomputed from today's
#: staging over each month's window: a month whose history was corrected after its snapshot
#: was taken differs. The lines are first summed per customer and day.
SNAPSHOT_HISTORY_SQL = """
WITH stored AS (
    SELECT snapshot_month, min(window_start) AS window_start, max(window_end) AS window_end,
           count(*) AS customers, sum(monetary) AS monetary
    FROM marts.customer_snapshots
    GROUP BY snapshot_month
),
days AS (
    SELECT customer_id, CAST(order_ts AS DATE) AS day, sum(amount) AS amount
    FROM staging.sales_lines
    GROUP BY ALL
),
now AS (
    SELECT s.snapshot_month, count(DISTINCT d.customer_id) AS customers, sum(d.amount) AS monetary
    FROM stored AS s
    JOIN days AS d ON d.day BETWEEN s.window_start AND s.window_end
    GROUP BY s.snapshot_month
)
SELECT s.snapshot_month, s.customers AS stored_customers,
       coalesce(n.customers, 0) AS current_customers,
       CAST(s.monetary AS DOUBLE) AS stored_monetary,
       CAST(coalesce(n.monetary, 0) AS DOUBLE) AS current_monetary
FROM stored AS s
LEFT JOIN now AS n USING (snapshot_month)
ORDER BY s.snapshot_month
"""


def differing_rows(
    conn: duckdb.DuckDBPyConnection, stored_sql: str, recomputed: str, params: Sequence
) -> tuple[int, int, int]:
    """(stored rows, recomputed rows, rows in one and not the other) for the same month."""
    cols = ", ".join(CUSTOMER_SNAPSHOTS.column_names)
    stored = f"SELECT {cols} FROM ({stored_sql})"
    again = f"SELECT {cols} FROM {recomputed}"
    n_stored = conn.execute(f"SELECT count(*) FROM ({stored})", params).fetchall()[0][0]
    n_again = conn.execute(f"SELECT count(*) FROM ({again})").fetchall()[0][0]
    diff = conn.execute(
        f"SELECT count(*) FROM (({stored}) EXCEPT ALL ({again})) UNION ALL "
        f"SELECT count(*) FROM (({again}) EXCEPT ALL ({stored}))",
        [*params, *params],
    ).fetchall()
    return int(n_stored), int(n_again), int(sum(r[0] for r in diff))


# --------------------------------------------------------------------------------------------
# Transitions
# --------------------------------------------------------------------------------------------

#: Pairs of consecutive calendar months that both have a snapshot.
_PAIRS_CTE = """
months AS (SELECT DISTINCT snapshot_month FROM marts.customer_snapshots),
pairs AS (
    SELECT a.snapshot_month AS from_month, b.snapshot_month AS to_month
    FROM months AS a JOIN months AS b ON b.snapshot_month = a.snapshot_month + INTERVAL 1 MONTH
)"""

#: Every consecutive pair x dimension x (from_state, to_state). Parameters: $lapse_days.
SEGMENT_TRANSITIONS_SQL = f"""
WITH {_PAIRS_CTE},
a AS (
    SELECT p.from_month, p.to_month, s.*
    FROM pairs AS p JOIN marts.customer_snapshots AS s ON s.snapshot_month = p.from_month
),
b AS (
    SELECT p.from_month, p.to_month, s.*
    FROM pairs AS p JOIN marts.customer_snapshots AS s ON s.snapshot_month = p.to_month
),
j AS (
    SELECT
        coalesce(a.from_month, b.from_month) AS from_month,
        coalesce(a.to_month, b.to_month) AS to_month,
        a.customer_id IS NOT NULL AS in_from,
        b.customer_id IS NOT NULL AS in_to,
        a.segment AS seg_a, b.segment AS seg_b,
        a.segment_order AS seg_order_a, b.segment_order AS seg_order_b,
        a.price_segment AS tier_a, b.price_segment AS tier_b,
        a.recency_days <= $lapse_days AS active_a,
        b.recency_days <= $lapse_days AS active_b,
        CAST(coalesce(a.month_revenue, 0) AS DOUBLE) AS revenue_a,
        CAST(coalesce(b.month_revenue, 0) AS DOUBLE) AS revenue_b
    FROM a FULL OUTER JOIN b ON a.from_month = b.from_month AND a.customer_id = b.customer_id
),
states AS (
    SELECT from_month, to_month, 'rfm_segment' AS dimension,
           CASE WHEN in_from THEN seg_a ELSE '(entered)' END AS from_state,
           CASE WHEN in_to THEN seg_b ELSE '(left)' END AS to_state,
           CASE WHEN in_from THEN seg_order_a ELSE 0 END AS from_order,
           CASE WHEN in_to THEN seg_order_b ELSE 99 END AS to_order,
           CASE WHEN NOT in_from THEN 'entered' WHEN NOT in_to THEN 'left'
                WHEN seg_a = seg_b THEN 'same' ELSE 'moved' END AS direction,
           revenue_a, revenue_b
    FROM j
    UNION ALL
    SELECT from_month, to_month, 'price_tier',
           CASE WHEN in_from THEN tier_a ELSE '(entered)' END,
           CASE WHEN in_to THEN tier_b ELSE '(left)' END,
           CASE WHEN in_from THEN list_position($tiers::VARCHAR[], tier_a) ELSE 0 END,
           CASE WHEN in_to THEN list_position($tiers::VARCHAR[], tier_b) ELSE 99 END,
           CASE WHEN NOT in_from THEN 'entered' WHEN NOT in_to THEN 'left'
                WHEN tier_a = tier_b THEN 'same'
                WHEN list_position($ranked::VARCHAR[], tier_a) IS NULL
                  OR list_position($ranked::VARCHAR[], tier_b) IS NULL THEN 'moved'
                WHEN list_position($ranked::VARCHAR[], tier_b)
                     > list_position($ranked::VARCHAR[], tier_a) THEN 'up'
                ELSE 'down' END,
           revenue_a, revenue_b
    FROM j
    UNION ALL
    SELECT from_month, to_month, 'activity',
           CASE WHEN NOT in_from THEN '(entered)' WHEN active_a THEN 'active' ELSE 'lapsed' END,
           CASE WHEN NOT in_to THEN '(left)' WHEN active_b THEN 'active' ELSE 'lapsed' END,
           CASE WHEN NOT in_from THEN 0 WHEN active_a THEN 1 ELSE 2 END,
           CASE WHEN NOT in_to THEN 99 WHEN active_b THEN 1 ELSE 2 END,
           CASE WHEN NOT in_from THEN 'entered' WHEN NOT in_to THEN 'left'
                WHEN active_a = active_b THEN 'same'
                WHEN active_a THEN 'lapsed' ELSE 'reactivated' END,
           revenue_a, revenue_b
    FROM j
),
cells AS (
    SELECT from_month, to_month, dimension, from_state, to_state,
           min(from_order) AS from_order, min(to_order) AS to_order, min(direction) AS direction,
           count(*) AS customers,
           sum(revenue_a) AS revenue_from_month, sum(revenue_b) AS revenue_to_month
    FROM states
    GROUP BY ALL
)
SELECT from_month, to_month, dimension, from_state, to_state,
       CAST(from_order AS INTEGER) AS from_order, CAST(to_order AS INTEGER) AS to_order,
       direction, customers,
       sum(customers) OVER (PARTITION BY from_month, dimension, from_state) AS row_customers,
       customers / sum(customers) OVER (PARTITION BY from_month, dimension, from_state)
           AS row_share,
       revenue_from_month, revenue_to_month, CAST($lapse_days AS INTEGER) AS lapse_days
FROM cells
ORDER BY from_month, dimension, from_order, from_state, to_order, to_state
"""


def transitions_params(lapse_days: int) -> dict[str, object]:
    return {
        "lapse_days": lapse_days,
        "tiers": list(PRICE_STATES),
        "ranked": [PRICE_LOW, PRICE_MID, PRICE_HIGH],
    }


#: Check: per pair and dimension, customers out of the earlier states vs the earlier
#: snapshot, into the later states vs the later snapshot.
TRANSITIONS_CONSERVATION_SQL = """
WITH counts AS (
    SELECT snapshot_month, count(*) AS customers FROM marts.customer_snapshots GROUP BY 1
),
sums AS (
    SELECT from_month, to_month, dimension,
           sum(customers) FILTER (WHERE from_state <> '(entered)') AS out_of_from,
           sum(customers) FILTER (WHERE to_state <> '(left)') AS into_to,
           sum(customers) FILTER (WHERE from_state = '(entered)') AS entered,
           sum(customers) FILTER (WHERE to_state = '(left)') AS left_window
    FROM marts.segment_transitions
    GROUP BY ALL
)
SELECT s.from_month, s.to_month, s.dimension,
       coalesce(s.out_of_from, 0) AS out_of_from, f.customers AS from_customers,
       coalesce(s.into_to, 0) AS into_to, t.customers AS to_customers,
       coalesce(s.entered, 0) AS entered, coalesce(s.left_window, 0) AS left_window
FROM sums AS s
JOIN counts AS f ON f.snapshot_month = s.from_month
JOIN counts AS t ON t.snapshot_month = s.to_month
ORDER BY s.from_month, s.dimension
"""

# --------------------------------------------------------------------------------------------
# Last moves per customer
# --------------------------------------------------------------------------------------------

#: Per customer of the latest snapshot: the last month their segment / price tier changed.
#: Parameters: $lapse_days, $ranked (the tiers low to high).
CUSTOMER_LAST_MOVES_SQL = """
WITH latest AS (SELECT max(snapshot_month) AS month FROM marts.customer_snapshots),
seq AS (
    SELECT s.customer_id, s.snapshot_month, s.segment, s.price_segment,
           lag(s.segment) OVER w AS prev_segment,
           lag(s.price_segment) OVER w AS prev_tier
    FROM marts.customer_snapshots AS s
    WINDOW w AS (PARTITION BY s.customer_id ORDER BY s.snapshot_month)
),
seg_moves AS (
    SELECT customer_id, snapshot_month, coalesce(prev_segment, '(entered)') AS previous_segment
    FROM seq WHERE prev_segment IS DISTINCT FROM segment
    QUALIFY row_number() OVER (PARTITION BY customer_id ORDER BY snapshot_month DESC) = 1
),
tier_moves AS (
    SELECT customer_id, snapshot_month, coalesce(prev_tier, '(entered)') AS previous_tier,
           CASE WHEN prev_tier IS NULL THEN 'entered'
                WHEN list_position($ranked::VARCHAR[], prev_tier) IS NULL
                  OR list_position($ranked::VARCHAR[], price_segment) IS NULL THEN 'changed'
                WHEN list_position($ranked::VARCHAR[], price_segment)
                     > list_position($ranked::VARCHAR[], prev_tier) THEN 'up'
                ELSE 'down' END AS price_move
    FROM seq WHERE prev_tier IS DISTINCT FROM price_segment
    QUALIFY row_number() OVER (PARTITION BY customer_id ORDER BY snapshot_month DESC) = 1
),
months_in AS (
    SELECT s.customer_id, count(*) AS months
    FROM marts.customer_snapshots AS s JOIN seg_moves AS m USING (customer_id)
    WHERE s.snapshot_month >= m.snapshot_month
    GROUP BY s.customer_id
)
SELECT
    s.customer_id, s.snapshot_month AS latest_month, s.segment,
    m.previous_segment, m.snapshot_month AS segment_since,
    CAST(n.months AS INTEGER) AS months_in_segment,
    s.price_segment, t.previous_tier AS previous_price_segment,
    t.snapshot_month AS price_segment_since, t.price_move,
    s.recency_days, s.recency_days <= $lapse_days AS active,
    s.monetary, s.month_revenue
FROM marts.customer_snapshots AS s
JOIN latest ON s.snapshot_month = latest.month
JOIN seg_moves AS m USING (customer_id)
JOIN tier_moves AS t USING (customer_id)
JOIN months_in AS n USING (customer_id)
ORDER BY s.customer_id
"""

# --------------------------------------------------------------------------------------------
# Experiment sizing
# --------------------------------------------------------------------------------------------

REPEAT_PURCHASE, STAY_ACTIVE, PRICE_TIER_UP = "repeat_purchase", "stay_active", "price_tier_up"


@dataclass(frozen=True)
class Outcome:
    """An outcome a playbook targets, measured per customer and month from the snapshots.

    `lower_is_better`: the uplift is a relative cut of the complementary rate (for staying
    active: of the lapse rate), because a rate near 100% cannot rise by 10% of itself."""

    name: str
    description: str
    eligible: str
    lower_is_better: bool = False

    def target(self, rate: float, relative_uplift: float) -> float:
        if self.lower_is_better:
            return 1 - (1 - rate) * (1 - relative_uplift)
        return rate * (1 + relative_uplift)

    def uplift_of(self, rate: float, target: float) -> float:
        """The relative uplift (as `target` defines it) that takes `rate` to `target`."""
        if self.lower_is_better:
            return 1 - (1 - target) / (1 - rate)
        return target / rate - 1


OUTCOMES: dict[str, Outcome] = {
    REPEAT_PURCHASE: Outcome(
        REPEAT_PURCHASE,
        "orders again in the next month (uplift: relative rise of that rate)",
        "every customer of the class",
    ),
    STAY_ACTIVE: Outcome(
        STAY_ACTIVE,
        "still active at the next month's end, a purchase within lapse_days (uplift: "
        "relative cut of the lapse rate, 1 - rate)",
        "active customers of the class",
        lower_is_better=True,
    ),
    PRICE_TIER_UP: Outcome(
        PRICE_TIER_UP,
        "dominant price tier higher at the next month's end (uplift: relative rise of that rate)",
        "customers of the class below Price_High",
    ),
}

#: Which outcome each class's playbook targets (seed B's goals): Defend = retention, Grow =
#: more frequent orders, Expand = a higher price tier, Maintain = stay engaged.
DEFAULT_CLASS_OUTCOMES: dict[str, str] = {
    "Defend": STAY_ACTIVE,
    "Grow": REPEAT_PURCHASE,
    "Expand": PRICE_TIER_UP,
    "Maintain": STAY_ACTIVE,
}

STRATEGY_CELLS = "_strategy_cells"


def strategy_cells(table: RuleTable) -> pd.DataFrame:
    """The class of every occupation group x price segment cell (for SQL joins)."""
    rows = [{**cell, "strategy_class": table.rule_for(**cell).class_name} for cell in all_cells()]
    return pd.DataFrame(rows, columns=["occupation_group", "price_segment", "strategy_class"])


#: Per class: trials and successes of each outcome over the last $baseline_months pairs of
#: consecutive months (the class at the earlier month), and the customers available in the
#: latest snapshot. Needs the registered `_strategy_cells`. Parameters: $lapse_days,
#: $baseline_months, $ranked.
EXPERIMENT_BASELINE_SQL = f"""
WITH {_PAIRS_CTE},
recent AS (
    SELECT * FROM pairs ORDER BY from_month DESC LIMIT $baseline_months
),
a AS (
    SELECT p.from_month, s.customer_id, s.recency_days, s.price_segment, c.strategy_class
    FROM recent AS p
    JOIN marts.customer_snapshots AS s ON s.snapshot_month = p.from_month
    JOIN _strategy_cells AS c USING (occupation_group, price_segment)
),
b AS (
    SELECT p.from_month, s.customer_id, s.recency_days, s.price_segment, s.month_orders
    FROM recent AS p JOIN marts.customer_snapshots AS s ON s.snapshot_month = p.to_month
),
j AS (
    SELECT a.strategy_class, a.from_month,
           a.recency_days <= $lapse_days AS active_a,
           coalesce(b.recency_days <= $lapse_days, false) AS active_b,
           coalesce(b.month_orders > 0, false) AS bought_b,
           list_position($ranked::VARCHAR[], a.price_segment) AS rank_a,
           list_position($ranked::VARCHAR[], b.price_segment) AS rank_b
    FROM a LEFT JOIN b USING (from_month, customer_id)
),
baseline AS (
    SELECT strategy_class,
           count(DISTINCT from_month) AS months,
           count(*) AS repeat_purchase_trials,
           count(*) FILTER (WHERE bought_b) AS repeat_purchase_successes,
           count(*) FILTER (WHERE active_a) AS stay_active_trials,
           count(*) FILTER (WHERE active_a AND active_b) AS stay_active_successes,
           count(*) FILTER (WHERE rank_a IN (1, 2)) AS price_tier_up_trials,
           count(*) FILTER (WHERE rank_a IN (1, 2) AND rank_b > rank_a)
               AS price_tier_up_successes
    FROM j GROUP BY strategy_class
),
latest AS (
    SELECT c.strategy_class,
           count(*) AS repeat_purchase_available,
           count(*) FILTER (WHERE s.recency_days <= $lapse_days) AS stay_active_available,
           count(*) FILTER (WHERE list_position($ranked::VARCHAR[], s.price_segment) IN (1, 2))
               AS price_tier_up_available
    FROM marts.customer_snapshots AS s
    JOIN _strategy_cells AS c USING (occupation_group, price_segment)
    WHERE s.snapshot_month = (SELECT max(snapshot_month) FROM marts.customer_snapshots)
    GROUP BY c.strategy_class
)
SELECT coalesce(l.strategy_class, b.strategy_class) AS strategy_class,
       coalesce(b.months, 0) AS months,
       {
    ", ".join(
        f"coalesce(b.{o}_trials, 0) AS {o}_trials, "
        f"coalesce(b.{o}_successes, 0) AS {o}_successes, "
        f"coalesce(l.{o}_available, 0) AS {o}_available"
        for o in OUTCOMES
    )
}
FROM latest AS l FULL OUTER JOIN baseline AS b USING (strategy_class)
ORDER BY 1
"""


def baseline_params(lapse_days: int, baseline_months: int) -> dict[str, object]:
    return {
        "lapse_days": lapse_days,
        "baseline_months": baseline_months,
        "ranked": [PRICE_LOW, PRICE_MID, PRICE_HIGH],
    }


@dataclass(frozen=True)
class SampleSize:
    """The result of sizing one two-arm test of a proportion."""

    baseline_rate: float | None
    target_rate: float | None
    effect_size_h: float | None
    n_per_arm: int | None
    reason: str | None = None  # why there is no n (the rate cannot be sized)


# The power of a two-sided two-sample z-test with equal arms, as statsmodels' NormalIndPower
# (ratio 1) computes it: both rejection tails, solved by bisection on a monotone function. The
# standard library's NormalDist has the same quantiles as scipy.stats.norm to 1e-15; tested
# against statsmodels over a grid (test_dynamics.py). statsmodels itself cost 1.4 s of import.
_NORMAL = NormalDist()


def cohens_h(p1: float, p2: float) -> float:
    """Cohen's h between two proportions: 2 asin(sqrt(p1)) - 2 asin(sqrt(p2))."""
    return 2 * math.asin(math.sqrt(p1)) - 2 * math.asin(math.sqrt(p2))


def two_sample_z_power(effect_size: float, nobs_per_arm: float, alpha: float) -> float:
    """Power of the two-sided test for standardized `effect_size` with equal arms."""
    crit = _NORMAL.inv_cdf(1 - alpha / 2)
    shift = effect_size * math.sqrt(nobs_per_arm / 2)
    return (1 - _NORMAL.cdf(crit - shift)) + _NORMAL.cdf(-crit - shift)


def _bisect(f: Callable[[float], float], low: float, high: float) -> float:
    """The root of increasing `f` on [low, high] (f(low) < 0 < f(high)) to float precision."""
    for _ in range(200):
        middle = (low + high) / 2
        if middle in (low, high):
            break
        if f(middle) < 0:
            low = middle
        else:
            high = middle
    return (low + high) / 2


def two_sample_z_nobs(effect_size: float, alpha: float, power: float) -> float:
    """Observations per arm (not rounded) for `power` at `effect_size` > 0."""

    def short(n: float) -> float:
        return two_sample_z_power(effect_size, n, alpha) - power

    high = 2.0
    while short(high) < 0:
        high *= 2
    return _bisect(short, 1e-9, high)


def two_sample_z_effect(nobs_per_arm: float, alpha: float, power: float) -> float:
    """The effect size `nobs_per_arm` per arm detects with `power`."""
    return _bisect(lambda h: two_sample_z_power(h, nobs_per_arm, alpha) - power, 0.0, 1e3)


def sample_size_per_arm(
    baseline_rate: float | None,
    relative_uplift: float,
    alpha: float,
    power: float,
    outcome: Outcome | None = None,
) -> SampleSize:
    """Customers per arm to detect `baseline_rate -> target` with a two-sided two-proportion
    z-test at level `alpha` and the given `power` (the normal power of statsmodels'
    `NormalIndPower().solve_power`) on Cohen's h, equal arms, rounded up. The target is
    `baseline x (1 + relative_uplift)`, or for an outcome where lower is better (staying
    active) `1 - (1 - baseline) x (1 - relative_uplift)`. No n, with the reason, for a missing
    rate, a rate the uplift cannot move (0, or 100% for a cut of its complement), or a target
    of 100% or more."""
    outcome = outcome or OUTCOMES[REPEAT_PURCHASE]
    if baseline_rate is None or (isinstance(baseline_rate, float) and math.isnan(baseline_rate)):
        return SampleSize(None, None, None, None, "no baseline: no month-to-month history yet")
    target = outcome.target(baseline_rate, relative_uplift)
    if not outcome.lower_is_better and baseline_rate <= 0:
        return SampleSize(
            baseline_rate, target, None, None, "the outcome never happened in the baseline months"
        )
    if outcome.lower_is_better and baseline_rate >= 1:
        return SampleSize(baseline_rate, target, None, None, "nobody lapsed in the baseline months")
    if target >= 1:
        return SampleSize(
            baseline_rate,
            target,
            None,
            None,
            f"a {relative_uplift:.0%} uplift of {baseline_rate:.1%} would reach 100% or more",
        )
    h = cohens_h(target, baseline_rate)
    n = two_sample_z_nobs(abs(h), alpha, power)
    return SampleSize(baseline_rate, target, h, math.ceil(n - 1e-6))


def detectable_uplift(
    baseline_rate: float | None, customers: int, alpha: float, power: float, outcome: Outcome
) -> float | None:
    """The smallest relative uplift (as `outcome` defines it) that `customers` split into two
    equal arms detect with the given power: Cohen's h of that power (as
    `NormalIndPower().solve_power` finds it)
    turned back into a rate (sin^2(asin(sqrt(p)) + h / 2)). None without a usable baseline,
    with fewer than 2 customers per arm, or when no rate below 100% is far enough."""
    if baseline_rate is None or not 0 < baseline_rate < 1 or customers // 2 < 2:
        return None
    h = two_sample_z_effect(customers // 2, alpha, power)
    angle = math.asin(math.sqrt(baseline_rate)) + h / 2
    if angle >= math.pi / 2:
        return None
    return outcome.uplift_of(baseline_rate, math.sin(angle) ** 2)


@dataclass(frozen=True)
class SizingSettings:
    relative_uplift: float = 0.10
    alpha: float = 0.05
    power: float = 0.80
    lapse_days: int = DEFAULT_LAPSE_DAYS
    baseline_months: int = 12


def experiment_rows(
    baseline: pd.DataFrame,
    classes: pd.DataFrame,
    class_outcomes: Mapping[str, str],
    settings: SizingSettings,
) -> pd.DataFrame:
    """The experiment_sizing rows: one per class and action of `classes` (columns
    strategy_class, class_order, actions as in marts.strategy_summary), sized from `baseline`
    (EXPERIMENT_BASELINE_SQL)."""
    from segment_pipeline.logic.strategy import ACTION_SEPARATOR

    by_class = {row["strategy_class"]: row for row in baseline.to_dict("records")}
    rows = []
    for cls in classes.sort_values("class_order").to_dict("records"):
        name = cls["strategy_class"]
        actions = [a for a in str(cls.get("actions") or "").split(ACTION_SEPARATOR) if a] or [
            "(no action in the playbook)"
        ]
        outcome = OUTCOMES.get(class_outcomes.get(name, ""))
        data = by_class.get(name, {})
        trials = int(data.get(f"{outcome.name}_trials", 0)) if outcome else 0
        successes = int(data.get(f"{outcome.name}_successes", 0)) if outcome else 0
        available = int(data.get(f"{outcome.name}_available", 0)) if outcome else 0
        months = int(data.get("months", 0))
        rate = successes / trials if trials else None
        size = sample_size_per_arm(
            rate, settings.relative_uplift, settings.alpha, settings.power, outcome
        )
        detectable = (
            detectable_uplift(rate, available, settings.alpha, settings.power, outcome)
            if outcome
            else None
        )
        n = size.n_per_arm
        needed = 2 * n if n else None
        testable = bool(n and available >= 2 * n)
        verdict = _verdict(outcome, size, available, needed, trials, detectable)
        for number, action in enumerate(actions, start=1):
            rows.append(
                {
                    "strategy_class": name,
                    "class_order": int(cls["class_order"]),
                    "action_number": number,
                    "action": action,
                    "outcome": outcome.name if outcome else None,
                    "outcome_description": outcome.description if outcome else None,
                    "customers_available": available,
                    "baseline_trials": trials,
                    "baseline_successes": successes,
                    "baseline_months": months,
                    "baseline_rate": rate,
                    "relative_uplift": settings.relative_uplift,
                    "target_rate": size.target_rate,
                    "alpha": settings.alpha,
                    "power": settings.power,
                    "effect_size_h": size.effect_size_h,
                    "n_per_arm": n,
                    "customers_needed": needed,
                    "max_arms": available // n if n else None,
                    "detectable_uplift": detectable,
                    "testable": testable,
                    "verdict": verdict,
                }
            )
    frame = pd.DataFrame(rows, columns=EXPERIMENT_SIZING.column_names)
    for column in ("n_per_arm", "customers_needed", "max_arms"):
        frame[column] = frame[column].astype("Int64")
    return frame


def _verdict(
    outcome: Outcome | None,
    size: SampleSize,
    available: int,
    needed: int | None,
    trials: int,
    detectable: float | None,
) -> str:
    if outcome is None:
        return "not sized: no outcome configured for this class (dynamics_settings)"
    if size.n_per_arm is None:
        return f"not testable: {size.reason}"
    if needed is not None and available < needed:
        can = (
            f"; with all {available:,} the smallest detectable uplift is {detectable:.0%}"
            if detectable is not None
            else ""
        )
        return (
            f"too small to test: {needed:,} customers needed ({size.n_per_arm:,} per arm), "
            f"{available:,} available{can}"
        )
    arms = available // size.n_per_arm
    note = f"testable: {needed:,} of {available:,} customers; up to {arms - 1} action(s) at once"
    if trials < 100:
        note += f" (baseline from only {trials} customer-months: treat it as rough)"
    return note


# --------------------------------------------------------------------------------------------
# Small reads for the figures and the report
# --------------------------------------------------------------------------------------------

#: Customers per month and RFM segment (the share-over-time figure).
SEGMENT_SHARES_SQL = """
SELECT snapshot_month, segment, min(segment_order) AS segment_order, count(*) AS customers
FROM marts.customer_snapshots
GROUP BY snapshot_month, segment
ORDER BY snapshot_month, segment_order
"""

#: Categories whose price tier differs from the previous month's snapshot.
CATEGORY_TIER_CHANGES_SQL = """
SELECT b.snapshot_month AS to_month, b.category, a.price_segment AS from_tier,
       b.price_segment AS to_tier
FROM marts.category_tier_snapshots AS a
JOIN marts.category_tier_snapshots AS b
  ON b.snapshot_month = a.snapshot_month + INTERVAL 1 MONTH AND b.category = a.category
WHERE a.price_segment <> b.price_segment
ORDER BY to_month, category
"""
