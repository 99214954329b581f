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
import hashlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from statistics import NormalDist

import duckdb
import numpy as np
import pandas as pd

from segment_pipeline.logic.behaviour import (
    CATEGORY_CUSTOMERS_SQLS,
    CATEGORY_PRICE_SEGMENTS,
    CATEGORY_STATS_SQL,
    CUSTOMER_BEHAVIOUR_BUCKET_SQL,
    CUSTOMER_BEHAVIOUR_SQL,
    DOMINANT_PRICE_SEGMENT_SQL,
    OCCUPATION_GROUPS_TABLE,
    OCCUPATION_STATS_SQL,
    PRICE_HIGH,
    PRICE_LOW,
    PRICE_MID,
    PRICE_UNKNOWN,
    assign_occupation_groups,
    assign_price_segments,
    category_stats,
    occupation_groups_of,
    price_segments_of,
)
from segment_pipeline.logic.memory import (
    LINE_BYTES_PER_ROW,
    create_by_customer_buckets,
    execute_within_memory,
    memory_limit_bytes,
    scratch_table,
    staged_lines_estimate,
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
from segment_pipeline.logic.staging import (
    PRODUCT_LINES_VIEW,
    SALES_LINES_VIEW,
    STAGED_TRANSACTIONS,
    day_batches,
)
from segment_pipeline.logic.strategy import RuleTable, all_cells
from segment_pipeline.settings import LARGE_WAREHOUSE_LINES
from segment_pipeline.sql_files import load_sql, placeholders, sql_text, whole_and_one_bucket
from segment_pipeline.tables import (
    Column,
    TableDef,
    ensure_table,
    insert_input_records,
    insert_record_rows,
    replace_rows,
    scalar,
)

# --------------------------------------------------------------------------------------------
# States
# --------------------------------------------------------------------------------------------

ENTERED = "(entered)"
LEFT = "(left)"

DIM_RFM, DIM_PRICE = "rfm_segment", "price_tier"

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
#: The snapshot SQL selects these by the declaration's column list (`{{ rfm_columns }}`).
_RFM_COLUMN_LIST = ", ".join(f"r.{c.name}" for c in _RFM_COLUMNS)

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

SALES_LINES = SALES_LINES_VIEW.fqn
#: Where the layers' SQL reads sale lines: staging.sales_lines, staging.product_lines when a
#: query needs no customer column, or the table behind them when it needs the lines' own
#: columns only (the views' joins to the masters made each scan 3-4x slower).
LINE_SOURCES = (SALES_LINES, PRODUCT_LINES_VIEW.fqn, STAGED_TRANSACTIONS.fqn)
#: A narrow copy of staging.sales_lines (the columns the reused SQL reads), taken once per
#: run: each month's queries then scan it instead of the view and its joins (12 months at
#: 746k lines: 11-15 s instead of 21-28 s).
LINES_TABLE = "_dynamics_lines"
#: Its rows (`stage_lines` creates the table).
STAGE_LINES_SQL = load_sql("dynamics/stage_lines")
#: Above this many staged lines the snapshot step's scratch tables (the copy of the lines,
#: the summed inputs, the scored months) are tables of a scratch file, not temp tables
#: (logic/memory.py `scratch_database`): where the memory limit `auto` drops to 700MB too.
#: Below it they stay in memory: at 10M lines under the 900MB limit the step's computation
#: took 33.9 s with the scratch file against 27.5 s with temp tables (stop 33).
SCRATCH_ON_DISK_LINES = LARGE_WAREHOUSE_LINES


def scratch_on_disk(conn: duckdb.DuckDBPyConnection) -> bool:
    """Whether the snapshot step's scratch tables go to a scratch file
    (SCRATCH_ON_DISK_LINES)."""
    return staged_lines_estimate(conn) > SCRATCH_ON_DISK_LINES


#: The sale lines up to (and including) `$last_day`: replaces the line sources in the RFM and
#: behaviour layers' SQL.
LINES_UP_TO_SQL = (
    f"(SELECT * FROM {LINES_TABLE} WHERE CAST(order_ts AS DATE) <= CAST($last_day AS DATE))"
)
#: Names the as-of lookup tables are registered under (they replace the marts tables).
ASOF_OCCUPATION_GROUPS = "_asof_occupation_groups"
ASOF_CATEGORY_PRICE_SEGMENTS = "_asof_category_price_segments"


class AsOfSqlError(RuntimeError):
    """A layer's SQL no longer has the shape `as_of_sql` rewrites (a pipeline bug)."""


def as_of_sql(sql: str, replacements: Mapping[str, str] | None = None) -> str:
    """`sql` with its sale lines (`staging.sales_lines`, or `staging.transactions` where the
    layer reads the lines' own columns only) read as the lines up to `$last_day`, and each
    table named in `replacements` replaced by its value (e.g. the as-of lookup tables).

    Used so the snapshots run the layers' own SQL: one of the line sources and each name of
    `replacements` must occur in `sql`, or the layer's SQL has changed shape and the snapshot
    would silently differ from it.
    """
    sources = [name for name in LINE_SOURCES if name in sql]
    if not sources:
        raise AsOfSqlError(f"expected one of {LINE_SOURCES} in the SQL to rewrite:\n{sql}")
    out = sql
    for name in sources:
        out = out.replace(name, LINES_UP_TO_SQL)
    for name, replacement in (replacements or {}).items():
        if name not in out:
            raise AsOfSqlError(f"expected {name} in the SQL to rewrite as of a day:\n{sql}")
        out = out.replace(name, replacement)
    return out


RFM_AS_OF_SQL = as_of_sql(RFM_CUSTOMER_SEGMENTS_SQL)
OCCUPATION_STATS_AS_OF_SQL = as_of_sql(OCCUPATION_STATS_SQL)
CATEGORY_STATS_AS_OF_SQL = as_of_sql(CATEGORY_STATS_SQL)
CATEGORY_CUSTOMERS_AS_OF_SQLS = (
    as_of_sql(CATEGORY_CUSTOMERS_SQLS[0]),
    as_of_sql(CATEGORY_CUSTOMERS_SQLS[1]),
)
_ASOF_LOOKUPS = {
    OCCUPATION_GROUPS_TABLE.fqn: ASOF_OCCUPATION_GROUPS,
    CATEGORY_PRICE_SEGMENTS.fqn: ASOF_CATEGORY_PRICE_SEGMENTS,
}
CUSTOMER_BEHAVIOUR_AS_OF_SQL = as_of_sql(CUSTOMER_BEHAVIOUR_SQL, _ASOF_LOOKUPS)
CUSTOMER_BEHAVIOUR_AS_OF_BUCKET_SQL = as_of_sql(CUSTOMER_BEHAVIOUR_BUCKET_SQL, _ASOF_LOOKUPS)


def category_stats_as_of(conn: duckdb.DuckDBPyConnection, last_day: date) -> pd.DataFrame:
    """The behaviour layer's :func:`category_stats` over the copied lines up to `last_day`."""
    return category_stats(
        conn,
        CATEGORY_STATS_AS_OF_SQL,
        CATEGORY_CUSTOMERS_AS_OF_SQLS,
        lines_table=LINES_TABLE,
        params={"last_day": last_day},
    )


LAST_LINE_DATE_SQL = load_sql("dynamics/last_line_date")

#: One snapshot month from the as-of RFM and behaviour temp tables and the month's lines.
#: Parameters: $month, $month_end, $last_day.
SNAPSHOT_ROWS_SQL = load_sql(
    "dynamics/snapshot_rows", rfm_columns=_RFM_COLUMN_LIST, lines_table=LINES_TABLE
)


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
    on_disk: bool = False,
    window: RfmWindow | None = None,
    lookups: tuple[pd.DataFrame, pd.DataFrame] | None = None,
) -> SnapshotMonth:
    """Append the snapshot rows of `month` to the temp table `into` (which has the columns of
    CUSTOMER_SNAPSHOTS), reading the lines of :func:`stage_lines` (taken up to this month's
    end or later). Everything runs in DuckDB but the two small tercile splits (one row per
    occupation code and per category). `on_disk`: its scratch tables in the scratch file
    (`scratch_on_disk`).

    `window` and `lookups` (the occupation groups and category tiers) are resolved from the
    copied lines unless given: a month updated by a new day copies the lines of some
    customers only, and passes the window and lookups of every line
    (logic/snapshot_update.py)."""
    as_of = snapshot_as_of(month, last_line)
    if window is None and as_of is not None:
        window = snapshot_window(conn, as_of, window_settings)
    if as_of is None or window is None:
        return SnapshotMonth(month, as_of, None, 0)
    last_day = as_of - timedelta(days=1)
    day = {"last_day": last_day}
    if lookups is None:
        occupation = assign_occupation_groups(
            conn.execute(OCCUPATION_STATS_AS_OF_SQL, day).df(), min_customers_per_occupation
        )
        categories = assign_price_segments(category_stats_as_of(conn, last_day))
    else:
        occupation, categories = lookups
    tiers = categories.assign(snapshot_month=month)[CATEGORY_TIER_SNAPSHOTS.column_names]
    conn.register("_month_tiers", tiers)
    try:
        conn.execute(f"INSERT INTO {into}_tiers SELECT * FROM _month_tiers")
    finally:
        conn.unregister("_month_tiers")
    conn.register(ASOF_OCCUPATION_GROUPS, occupation)
    conn.register(ASOF_CATEGORY_PRICE_SEGMENTS, categories)
    try:
        execute_within_memory(
            conn,
            f"CREATE OR REPLACE {scratch_table('_snapshot_rfm', on_disk=on_disk)} "
            f"AS {RFM_AS_OF_SQL}",
            {**rfm_params(window, segment_map), **day},
        )
        create_by_customer_buckets(
            conn,
            "_snapshot_behaviour",
            (CUSTOMER_BEHAVIOUR_AS_OF_SQL, CUSTOMER_BEHAVIOUR_AS_OF_BUCKET_SQL),
            LINES_TABLE,
            params=day,
            bytes_per_row=LINE_BYTES_PER_ROW,
            on_disk=on_disk,
        )
    finally:
        conn.unregister(ASOF_OCCUPATION_GROUPS)
        conn.unregister(ASOF_CATEGORY_PRICE_SEGMENTS)
    cols = ", ".join(CUSTOMER_SNAPSHOTS.column_names)
    before = scalar(conn, f"SELECT count(*) FROM {into}")
    execute_within_memory(
        conn,
        f"INSERT INTO {into} ({cols}) SELECT {cols} FROM ({SNAPSHOT_ROWS_SQL})",
        {"month": month, "month_end": month_end(month), "last_day": last_day},
    )
    after = scalar(conn, f"SELECT count(*) FROM {into}")
    conn.execute("DROP TABLE IF EXISTS _snapshot_rfm")
    conn.execute("DROP TABLE IF EXISTS _snapshot_behaviour")
    return SnapshotMonth(month, as_of, window, int(after - before))


def stage_lines(conn: duckdb.DuckDBPyConnection, last_day: date, *, on_disk: bool = False) -> None:
    """(Re)take the narrow copy of the sale lines up to `last_day` (a temp table, or with
    `on_disk` a table of the scratch file, `scratch_database`)."""
    conn.execute(
        f"CREATE OR REPLACE {scratch_table(LINES_TABLE, on_disk=on_disk)} AS {STAGE_LINES_SQL}",
        {"last_day": last_day},
    )


#: Every scratch table of a snapshot step, whichever catalog it was made in.
SNAPSHOT_SCRATCH_TABLES = (
    LINES_TABLE,
    "_snapshots",
    "_snapshots_tiers",
    "_check",
    "_check_tiers",
    "_snapshot_rfm",
    "_snapshot_behaviour",
)


def drop_snapshot_temps(conn: duckdb.DuckDBPyConnection) -> None:
    """Drop the scratch tables a snapshot step leaves (the copy of the lines among them):
    temp tables, or those of the attached scratch file (`scratch_database`)."""
    for name in (*SNAPSHOT_SCRATCH_TABLES, *_SNAPSHOT_TEMP_TABLES.values()):
        conn.execute(f"DROP TABLE IF EXISTS {name}")


def create_snapshot_temp(
    conn: duckdb.DuckDBPyConnection, name: str, *, on_disk: bool = False
) -> None:
    """Empty tables `name` and `name_tiers` with the columns of the snapshot tables: temp
    ones, or with `on_disk` the customers' in the scratch file (the tiers: a few rows a
    month)."""
    for table, temp, disk in (
        (CUSTOMER_SNAPSHOTS, name, on_disk),
        (CATEGORY_TIER_SNAPSHOTS, f"{name}_tiers", False),
    ):
        cols = ",\n  ".join(f"{c.name} {c.sql_type}" for c in table.columns)
        conn.execute(f"CREATE OR REPLACE {scratch_table(temp, on_disk=disk)} (\n  {cols}\n)")


# --------------------------------------------------------------------------------------------
# All months of a run in one pass
# --------------------------------------------------------------------------------------------
#
# compute_snapshot (above) runs the layers' own SQL once per month: each month re-reads every
# line up to its end, so a ranged run cost months x history (137 s for 13 months at 10M lines).
# The same definitions written once over a months table: the lines are first summed per
# customer, order and day (and per customer, category and calendar month). With one window
# start for every month (the default) each summed row is counted once, in the first month that
# holds it, and a month's RFM values are running sums and extremes over the months so far
# (month_values_running.sql); a look-back window moves the start, and then each month joins
# the rows of its own window (month_values_joined.sql). The occupation and category statistics
# of every month come from counts per calendar month (and amount, for the medians) summed up
# to each month. Sums of decimals are exact, distinct orders stay distinct, ranks and scores
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
#: Per calendar month and customer: distinct orders and spend in the month.
MONTH_ORDERS_TABLE = "_snapshot_month_orders"
#: Per month and customer: first and last purchase, distinct orders and spend in the window.
MONTH_VALUES_TABLE = "_snapshot_month_values"
#: Per month and customer: the dominant price segment up to the month's end.
MONTH_PRICE_SEGMENTS_TABLE = "_snapshot_month_price_segments"
#: The temp tables above, by the names the SQL files' placeholders give them.
_SNAPSHOT_TEMP_TABLES = {
    "months_table": MONTHS_TABLE,
    "order_days_table": ORDER_DAYS_TABLE,
    "category_months_table": CATEGORY_MONTHS_TABLE,
    "profiles_table": PROFILES_TABLE,
    "month_values_table": MONTH_VALUES_TABLE,
    "month_orders_table": MONTH_ORDERS_TABLE,
    "month_occupations_table": MONTH_OCCUPATIONS_TABLE,
    "month_tiers_table": MONTH_TIERS_TABLE,
    "month_price_segments_table": MONTH_PRICE_SEGMENTS_TABLE,
    "lines_table": LINES_TABLE,
}


def _with_temp_tables(name: str, **fragments: str) -> str:
    """`load_sql(name)` given the temp table names among `_SNAPSHOT_TEMP_TABLES` it uses."""
    used = placeholders(sql_text(name))
    tables = {k: v for k, v in _SNAPSHOT_TEMP_TABLES.items() if k in used}
    return load_sql(name, **tables, **fragments)


#: The summed inputs of the snapshots, in order: (temp table, its query whole and for one
#: bucket of customers, the table it reads, the DuckDB memory its statement may take per
#: input row when the copied lines are in the scratch file).
PREPARE_SNAPSHOT_INPUTS = tuple(
    (table, whole_and_one_bucket(_with_temp_tables, name), source, on_disk_bytes)
    for table, name, source, on_disk_bytes in (
        (ORDER_DAYS_TABLE, "dynamics/prepare_order_days", LINES_TABLE, 6),
        (MONTH_ORDERS_TABLE, "dynamics/prepare_month_orders", ORDER_DAYS_TABLE, 12),
        (CATEGORY_MONTHS_TABLE, "dynamics/prepare_category_months", LINES_TABLE, 20),
        (PROFILES_TABLE, "dynamics/prepare_profiles", LINES_TABLE, 6),
    )
)
#: DuckDB memory the summing of the copied lines may take per input row when they are temp
#: tables: one bucket up to 15M lines under the default limit. 100M lines in one go ran out
#: of memory under 858 MiB (stops 24 and 25); 10M lines in one go passed under 86 MiB, so
#: this budget is a guess between the two. With the lines in the scratch file (over 30M
#: staged lines) each input has its own budget, measured at 100M lines under 700MB (stop 33,
#: the 101.9M-line copy in the file): the order-days in one go 23.6 s (9 buckets: 168.0 s),
#: the month orders 20.3 s (4 buckets: 46.9 s), the profiles 11.3 s (9 buckets: 139.4 s),
#: the category months in 3 buckets 96.4 s (9: 169.9 s; in one go out of memory); a bucket
#: is a pass over the whole copy, which is what made them slow.
PREPARE_BYTES_PER_ROW = 60


def prepare_snapshot_inputs(conn: duckdb.DuckDBPyConnection, *, on_disk: bool = False) -> None:
    """The summed inputs of the snapshots (PREPARE_SNAPSHOT_INPUTS) from the copied lines,
    each per customer, so in buckets of customers when its input would not fit in memory;
    `on_disk`: as tables of the scratch file (`scratch_on_disk`), with their own budgets."""
    for table, queries, source, on_disk_bytes in PREPARE_SNAPSHOT_INPUTS:
        create_by_customer_buckets(
            conn,
            table,
            queries,
            source,
            bytes_per_row=on_disk_bytes if on_disk else PREPARE_BYTES_PER_ROW,
            on_disk=on_disk,
        )


#: Order-days per calendar month of the data (what each month's look-back window joins), to
#: cut the months into batches that stay within DuckDB's memory limit.
MONTH_ROWS_SQL = _with_temp_tables("dynamics/month_rows")
#: Customers per month of the running values (what each month's batch scores).
MONTH_VALUE_ROWS_SQL = f"SELECT snapshot_month, count(*) FROM {MONTH_VALUES_TABLE} GROUP BY 1"
#: Rows per batch of months at most: joined order-days (about 100 bytes each before
#: aggregation) or customers to score; fewer under a smaller memory limit
#: (SNAPSHOT_BYTES_PER_ROW each, so 6M under the default 858 MiB).
SNAPSHOT_BATCH_ROWS = 6_000_000
SNAPSHOT_BYTES_PER_ROW = 150
#: The months' RFM values into MONTH_VALUES_TABLE: as running sums when every month's window
#: starts on the same day (linear in history), else by joining each month's window.
MONTH_VALUES_RUNNING_SQL, MONTH_VALUES_RUNNING_BUCKET_SQL = whole_and_one_bucket(
    _with_temp_tables, "dynamics/month_values_running"
)
MONTH_VALUES_JOINED_SQL = _with_temp_tables("dynamics/month_values_joined")
#: Every month's dominant price segment per customer into MONTH_PRICE_SEGMENTS_TABLE, as
#: running sums of the spend per tier (linear in history, whatever the windows).
#: (The *_BUCKET_SQL of both: for one bucket of customers, `create_by_customer_buckets`.)
MONTH_PRICE_SEGMENTS_SQL, MONTH_PRICE_SEGMENTS_BUCKET_SQL = whole_and_one_bucket(
    _with_temp_tables,
    "dynamics/month_price_segments",
    dominant_price_segment=DOMINANT_PRICE_SEGMENT_SQL,
)

ALL_MONTHS_SNAPSHOT_SQL = _with_temp_tables(
    "dynamics/all_months_snapshot",
    # the RFM layer's scoring, per month
    scoring_ctes=rfm_scoring_ctes("snapshot_month"),
    rfm_columns=_RFM_COLUMN_LIST,
)


def _create_months_table(conn: duckdb.DuckDBPyConnection, month_rows: list[dict]) -> None:
    conn.register(f"{MONTHS_TABLE}_frame", pd.DataFrame(month_rows))
    try:
        conn.execute(
            f"CREATE OR REPLACE TEMP TABLE {MONTHS_TABLE} AS SELECT * FROM {MONTHS_TABLE}_frame"
        )
    finally:
        conn.unregister(f"{MONTHS_TABLE}_frame")


def _month_batches(
    month_rows: list[dict], per_month: Mapping[date, int], budget: int, *, cumulative: bool
) -> list[list[dict]]:
    """Cut the months (rows of MONTHS_TABLE, in order) into consecutive batches whose rows
    stay within `budget`, as staging cuts days; a month over the budget alone is a batch of
    its own. `per_month`: rows of each month itself, or (`cumulative`) rows per calendar
    month of the data that every later month joins (a look-back window joins all up to its
    end)."""
    months = [row["snapshot_month"] for row in month_rows]
    rows = (
        {m: sum(n for day, n in per_month.items() if day <= m) for m in months}
        if cumulative
        else dict(per_month)
    )
    by_month = {row["snapshot_month"]: row for row in month_rows}
    return [[by_month[m] for m in batch] for batch in day_batches(rows, months, budget)]


#: Per month of MONTHS_TABLE: the behaviour layer's occupation and category statistics as of
#: its end, for all months in one query each (linear in history).
MONTH_OCCUPATION_STATS_SQL = _with_temp_tables("dynamics/month_occupation_stats")
MONTH_CATEGORY_STATS_SQL = _with_temp_tables("dynamics/month_category_stats")


def month_lookups(
    conn: duckdb.DuckDBPyConnection, min_customers_per_occupation: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per month of MONTHS_TABLE: each occupation's group (snapshot_month, occupation,
    occupation_group) and each category's price tier (the columns of
    CATEGORY_TIER_SNAPSHOTS), split by the behaviour layer's own rules from the month's
    statistics (MONTH_OCCUPATION_STATS_SQL, MONTH_CATEGORY_STATS_SQL;
    :func:`lookups_from_month_stats`)."""
    return lookups_from_month_stats(
        conn.execute(MONTH_OCCUPATION_STATS_SQL).df(),
        conn.execute(MONTH_CATEGORY_STATS_SQL).df(),
        min_customers_per_occupation,
    )


def lookups_from_month_stats(
    occupation_stats: pd.DataFrame,
    category_stats: pd.DataFrame,
    min_customers_per_occupation: int,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The occupation groups (snapshot_month, occupation, occupation_group) and category
    tiers (CATEGORY_TIER_SNAPSHOTS' columns) of every month in the statistics, sorted by month
    and code: what `assign_occupation_groups` and `assign_price_segments` give month by month.

    The rules run on each month's slice of plain lists and the frames are built once: those
    DataFrame functions called per month cost 10-15 ms each (1.2 s over 41 months)."""
    occupations = occupation_stats.sort_values(["snapshot_month", "occupation"], kind="stable")
    codes = occupations["occupation"].tolist()
    customers = occupations["customers"].tolist()
    means = occupations["mean_log1p_amount"].astype(float).tolist()
    groups: list[str] = []
    for lo, hi in _month_slices(occupations["snapshot_month"]):
        groups += occupation_groups_of(
            codes[lo:hi], customers[lo:hi], means[lo:hi], min_customers_per_occupation
        )[2]
    occupation_groups = pd.DataFrame(
        {
            "snapshot_month": _as_dates(occupations["snapshot_month"]),
            "occupation": codes,
            "occupation_group": groups,
        }
    )

    tiers = category_stats.sort_values(["snapshot_month", "category"], kind="stable")
    categories = tiers["category"].tolist()
    medians = tiers["median_line_amount"].astype(float).tolist()
    ranks: list[int | None] = []
    segments: list[str] = []
    for lo, hi in _month_slices(tiers["snapshot_month"]):
        month_ranks, month_segments = price_segments_of(categories[lo:hi], medians[lo:hi])
        ranks += month_ranks
        segments += month_segments
    tiers = tiers.reset_index(drop=True).assign(
        snapshot_month=_as_dates(tiers["snapshot_month"]),
        tier_rank=pd.array(ranks, dtype="Int32"),
        price_segment=segments,
    )
    return occupation_groups, tiers[CATEGORY_TIER_SNAPSHOTS.column_names]


def _month_slices(months: pd.Series) -> list[tuple[int, int]]:
    """(start, end) positions of each run of equal values in `months` (sorted by month)."""
    values = months.to_numpy()
    if len(values) == 0:
        return []
    starts = [0, *(np.flatnonzero(values[1:] != values[:-1]) + 1).tolist()]
    return list(zip(starts, [*starts[1:], len(values)], strict=True))


def _as_dates(months: pd.Series) -> list[date]:
    """The months (timestamps or dates from DuckDB) as `datetime.date` objects."""
    return [pd.Timestamp(month).date() for month in months]


def computed_directly(months: Sequence[date]) -> bool:
    """Whether :func:`compute_snapshots` computes `months` with the layers' own SQL (one
    month) rather than in one pass over all of them."""
    return len(months) == 1


def compute_snapshots(
    conn: duckdb.DuckDBPyConnection,
    months: Sequence[date],
    *,
    segment_map: SegmentMap,
    window_settings: WindowSettings,
    min_customers_per_occupation: int,
    into: str = "_snapshots",
    on_disk: bool = False,
) -> list[SnapshotMonth]:
    """The snapshots of `months` (first days) into the temp tables `into` (customers) and
    `into`_tiers (category tiers), created empty: per month the window and the two small
    tercile splits (the layers' own functions), then every month's rows in one query.

    One month alone (a daily run, a short dataset) is computed with the layers' own SQL
    (:func:`compute_snapshot`, see :func:`computed_directly`): the one-pass machinery sums
    every month of history to serve one, which costs more than the direct queries (745k
    lines: 1.1 s against 0.8 s).

    `on_disk`: the large scratch tables (the lines' copy, the summed inputs, the months'
    values, `into`) as tables of the scratch file the caller attached (`scratch_database`,
    `scratch_on_disk`); the same rows.
    """
    create_snapshot_temp(conn, into, on_disk=on_disk)
    last_line = scalar(conn, LAST_LINE_DATE_SQL)
    stage_lines(conn, month_end(max(months)), on_disk=on_disk)
    if computed_directly(months):
        (month,) = months
        return [
            compute_snapshot(
                conn,
                month,
                segment_map=segment_map,
                window_settings=window_settings,
                min_customers_per_occupation=min_customers_per_occupation,
                last_line=last_line,
                into=into,
                on_disk=on_disk,
            )
        ]
    plan: list[tuple[date, date | None, RfmWindow | None]] = []
    month_rows = []
    for month in months:
        as_of = snapshot_as_of(month, last_line)
        window = snapshot_window(conn, as_of, window_settings) if as_of else None
        plan.append((month, as_of, window))
        if as_of is None or window is None:
            continue
        month_rows.append(
            {
                "snapshot_month": month,
                "month_end": month_end(month),
                "as_of": as_of,
                "last_day": as_of - timedelta(days=1),
                "window_start": window.start,
                "window_end": window.end,
            }
        )
    if month_rows:
        prepare_snapshot_inputs(conn, on_disk=on_disk)
        _create_months_table(conn, month_rows)
        occupations, tiers = month_lookups(conn, min_customers_per_occupation)
        lookups = {
            MONTH_OCCUPATIONS_TABLE: occupations,
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
        create_by_customer_buckets(
            conn,
            MONTH_PRICE_SEGMENTS_TABLE,
            (MONTH_PRICE_SEGMENTS_SQL, MONTH_PRICE_SEGMENTS_BUCKET_SQL),
            CATEGORY_MONTHS_TABLE,
            on_disk=on_disk,
        )
        # One window start for every month (the default): the RFM values once, as running
        # sums, and the batches only score them. Else per batch, by joining each window.
        running = len({row["window_start"] for row in month_rows}) == 1
        if running:
            create_by_customer_buckets(
                conn,
                MONTH_VALUES_TABLE,
                (MONTH_VALUES_RUNNING_SQL, MONTH_VALUES_RUNNING_BUCKET_SQL),
                ORDER_DAYS_TABLE,
                on_disk=on_disk,
            )
        per_month = dict(
            conn.execute(MONTH_VALUE_ROWS_SQL if running else MONTH_ROWS_SQL).fetchall()
        )
        limit = memory_limit_bytes(conn)
        batch_rows = SNAPSHOT_BATCH_ROWS
        if limit is not None:
            batch_rows = max(1, min(batch_rows, limit // SNAPSHOT_BYTES_PER_ROW))
        batches = _month_batches(month_rows, per_month, batch_rows, cumulative=not running)
        cols = ", ".join(CUSTOMER_SNAPSHOTS.column_names)
        for batch in batches:
            _create_months_table(conn, batch)
            if not running:
                values = scratch_table(MONTH_VALUES_TABLE, on_disk=on_disk)
                conn.execute(f"CREATE OR REPLACE {values} AS {MONTH_VALUES_JOINED_SQL}")
            execute_within_memory(
                conn,
                f"INSERT INTO {into} ({cols}) SELECT {cols} FROM ({ALL_MONTHS_SNAPSHOT_SQL})",
                segment_map.sql_params(),
            )
        for name in (
            *lookups,
            MONTHS_TABLE,
            MONTH_VALUES_TABLE,
            MONTH_PRICE_SEGMENTS_TABLE,
            MONTH_ORDERS_TABLE,
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


def _write_order(table: TableDef) -> str:
    """The ORDER BY of a snapshot table's write. The customer rows are copied in the order
    they were computed: the months come out of the scoring's window (PARTITION BY month)
    one after the other, which keeps each month in its own row groups (what the per-month
    reads prune on), and sorting 4.6M wide rows by month and customer was a third of the
    write (10M lines: 8.3 s -> 5.5 s). The tier rows are few: sorted, for people reading
    the table."""
    if table is CUSTOMER_SNAPSHOTS:
        return ""
    return f" ORDER BY {', '.join(table.primary_key)}"


def write_snapshots(
    conn: duckdb.DuckDBPyConnection,
    first: date,
    last: date,
    source: str = "_snapshots",
    *,
    also: Callable[[duckdb.DuckDBPyConnection], None] | None = None,
) -> int:
    """Replace the months `first..last` of marts.customer_snapshots and
    marts.category_tier_snapshots with the rows of the temp tables `source` and
    `source`_tiers, in one transaction (a month without rows is left empty); `also` runs in
    that transaction after them (the record of what the latest month was computed from,
    logic/snapshot_update.py). Returns the customer rows written."""
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
                f"WHERE snapshot_month BETWEEN ? AND ?{_write_order(table)}",
                [first, last],
            )
        if also is not None:
            also(conn)
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


#: Per stored month of `$first..$last`: rows, distinct customers, distinct windows, rows
#: without a segment of the map (the customers with a line in each window come from
#: SNAPSHOT_HISTORY_SQL: `with_window_customers`).
SNAPSHOT_COVERAGE_SQL = load_sql("dynamics/snapshot_coverage")

#: Customers and total RFM spend of every stored month, and the same recomputed from today's
#: staging over each month's window (customers in one pass per distinct window start, spend
#: summed per day first): a month whose history was corrected after its snapshot was taken
#: differs.
SNAPSHOT_HISTORY_SQL = load_sql("dynamics/snapshot_history")


def with_window_customers(coverage: pd.DataFrame, history: pd.DataFrame) -> pd.DataFrame:
    """SNAPSHOT_COVERAGE_SQL's rows with `window_customers`: the customers with a sale line in
    the month's window today, as SNAPSHOT_HISTORY_SQL counted them (one count for both
    checks)."""
    counts = history[["snapshot_month", "current_customers"]].rename(
        columns={"current_customers": "window_customers"}
    )
    out = coverage.merge(counts, on="snapshot_month", how="left")
    out["window_customers"] = out["window_customers"].fillna(0).astype("int64")
    return out


#: The stored snapshot months (first days), ascending.
SNAPSHOT_MONTHS_SQL = load_sql("dynamics/snapshot_months")


def differing_rows(
    conn: duckdb.DuckDBPyConnection, stored_sql: str, recomputed: str, params: Sequence
) -> tuple[int, int, int]:
    """(stored rows, recomputed rows, rows in one and not the other) for the same month.

    The rows are first compared as multisets by the sum of their row hashes (one streaming
    pass per side): equal sums and counts mean equal rows, but for a 64-bit hash collision
    that no data can be expected to hit. Only when they differ does the exact comparison run
    (EXCEPT ALL both ways, which builds a hash table of every wide row: 2.9 s of the check
    at 10M lines, against 0.3 s for the sums), and it is what counts the differing rows.
    """
    cols = ", ".join(CUSTOMER_SNAPSHOTS.column_names)
    stored = f"SELECT {cols} FROM ({stored_sql})"
    again = f"SELECT {cols} FROM {recomputed}"
    # count and hash sum per side (the sum of UBIGINT hashes is a HUGEINT: no overflow)
    summary = f"SELECT count(*), coalesce(sum(hash({cols})), 0) FROM ({{}})"
    n_stored, sum_stored = conn.execute(summary.format(stored), params).fetchall()[0]
    n_again, sum_again = conn.execute(summary.format(again)).fetchall()[0]
    if n_stored == n_again and sum_stored == sum_again:
        return int(n_stored), int(n_again), 0
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
_PAIRS_CTE = load_sql("dynamics/_pairs_cte")

#: One consecutive pair x dimension x (from_state, to_state), for the pairs whose first month
#: is in $first_from_month..$last_from_month; and `transitions_params`.
SEGMENT_TRANSITIONS_SQL = load_sql("dynamics/segment_transitions", pairs_cte=_PAIRS_CTE)

#: Snapshot rows (both months of each pair counted) that one statement of
#: segment_transitions.sql joins at most, unless a single pair holds more. A statement costs
#: about 35 ms whatever its size (its planning, the pairs CTE): the 40 pairs of a small
#: export spanning 41 months took 1.46 s one at a time. At 10M lines a pair holds about 800k
#: rows, so each still goes alone (all pairs at once ran out of memory under 70 MB there).
TRANSITIONS_BATCH_ROWS = 250_000


def transition_batches(
    recompute: Sequence[date], month_rows: Mapping[date, int], batch_rows: int
) -> list[tuple[date, date]]:
    """`recompute` (first months of pairs, ascending) as (first, last) runs of consecutive
    pairs, each run's snapshot rows (both months of every pair) at most `batch_rows`, or
    one pair. Every pair is in exactly one run, in order."""
    batches: list[tuple[date, date]] = []
    first = last = None
    rows = 0
    for month in recompute:
        pair_rows = month_rows.get(month, 0) + month_rows.get(add_months(month, 1), 0)
        if last is not None and add_months(last, 1) == month and rows + pair_rows <= batch_rows:
            last, rows = month, rows + pair_rows
            continue
        if first is not None and last is not None:
            batches.append((first, last))
        first, last, rows = month, month, pair_rows
    if first is not None and last is not None:
        batches.append((first, last))
    return batches


#: What each pair of segment_transitions was computed from: a later run recomputes only the
#: pairs whose inputs differ (a new day changes the last month's snapshot: its one pair).
SEGMENT_TRANSITIONS_INPUTS = TableDef(
    schema="marts",
    name="segment_transitions_inputs",
    description="One row per pair of months in marts.segment_transitions: digests of the two "
    "monthly snapshots and of the settings the pair was computed from, and the rows it wrote. "
    "A later run recomputes only the pairs whose digests differ or whose rows are not all there.",
    columns=(
        Column("from_month", "DATE", "The pair's earlier month", nullable=False),
        Column("to_month", "DATE", "The pair's later month", nullable=False),
        Column("from_digest", "VARCHAR", "Rows and row-hash sum of from_month's snapshot", False),
        Column("to_digest", "VARCHAR", "Rows and row-hash sum of to_month's snapshot", False),
        Column("settings_digest", "VARCHAR", "Digest of the settings and the query", False),
        Column("rows_written", "BIGINT", "Rows the pair wrote", nullable=False),
        Column("computed_at", "TIMESTAMP", "When the pair was computed (UTC)", nullable=False),
    ),
    primary_key=("from_month",),
)

#: Per snapshot month: rows and the sum of hashes of the columns the transitions read.
SNAPSHOT_MONTH_DIGESTS_SQL = load_sql("dynamics/snapshot_month_digests")
#: The recorded inputs of every pair, with the rows segment_transitions holds for it now.
STORED_TRANSITION_INPUTS_SQL = load_sql("dynamics/stored_transition_inputs")


@dataclass(frozen=True)
class TransitionsWrite:
    """What :func:`write_segment_transitions` did."""

    #: The first month of every pair of consecutive snapshot months.
    pairs: list[date]
    #: The pairs computed by this call (all of them on an empty table).
    recomputed: list[date]
    #: Rows written by this call.
    rows_written: int


def transitions_settings_digest(lapse_days: int) -> str:
    """A digest of what a pair's rows depend on besides the two snapshots: the settings and
    the query itself (a new version of it recomputes every pair)."""
    inputs = json.dumps(
        {"params": transitions_params(lapse_days), "sql": SEGMENT_TRANSITIONS_SQL},
        sort_keys=True,
    )
    return hashlib.sha256(inputs.encode()).hexdigest()


def pairs_to_recompute(
    pairs: Sequence[date],
    digests: Mapping[date, str],
    stored: Mapping[date, tuple[str, str, str, int, int]],
    settings_digest: str,
) -> list[date]:
    """The pairs (first months) whose rows must be computed: not recorded, recorded from other
    snapshot digests or settings, or whose rows are not all in the table any more. `stored`:
    from_month -> (from_digest, to_digest, settings_digest, rows_written, rows_now)."""
    recompute = []
    for month in pairs:
        wanted = (digests[month], digests[add_months(month, 1)], settings_digest)
        recorded = stored.get(month)
        if recorded is None or recorded[:3] != wanted or recorded[3] != recorded[4]:
            recompute.append(month)
    return recompute


def write_segment_transitions(
    conn: duckdb.DuckDBPyConnection, lapse_days: int, batch_rows: int = TRANSITIONS_BATCH_ROWS
) -> TransitionsWrite:
    """Bring marts.segment_transitions up to date with the snapshots, in one transaction.

    The pairs of months are independent (their rows and row shares never mix months), so only
    the pairs whose two snapshots (or the settings) changed since they were computed are
    recomputed (`pairs_to_recompute`, from marts.segment_transitions_inputs), and the rows of
    pairs that no longer exist are removed. They are computed a few at a time: consecutive
    pairs holding at most `batch_rows` snapshot rows per statement, or one larger pair
    (`transition_batches`). One pair's full outer join holds two months of snapshot rows
    where all pairs at once held every month's: at 10M lines all pairs at once ran out of
    DuckDB memory under 70 MB, where one at a time passed (and took 2.6-2.8 s against 3.1-3.5
    s under the default limit). A new day recomputes one pair: 10M lines, 1.8 s -> 0.5 s."""
    ensure_table(conn, SEGMENT_TRANSITIONS)
    ensure_table(conn, SEGMENT_TRANSITIONS_INPUTS)
    digests = dict(conn.execute(SNAPSHOT_MONTH_DIGESTS_SQL).fetchall())
    # the pairs of _PAIRS_CTE, from the months the digests were taken of (one scan, not two)
    pairs = [month for month in sorted(digests) if add_months(month, 1) in digests]
    stored = {
        row[0]: (row[1], row[2], row[3], int(row[4]), int(row[5]))
        for row in conn.execute(STORED_TRANSITION_INPUTS_SQL).fetchall()
    }
    settings_digest = transitions_settings_digest(lapse_days)
    recompute = pairs_to_recompute(pairs, digests, stored, settings_digest)
    kept = [month for month in pairs if month not in recompute]
    params = transitions_params(lapse_days)
    written = 0
    conn.execute("BEGIN TRANSACTION")
    try:
        for table in (SEGMENT_TRANSITIONS, SEGMENT_TRANSITIONS_INPUTS):
            conn.execute(
                f"DELETE FROM {table.fqn} WHERE NOT list_contains(?::DATE[], from_month)", [kept]
            )
        month_rows = {month: int(digest.split(":")[0]) for month, digest in digests.items()}
        for first, last in transition_batches(recompute, month_rows, batch_rows):
            written += replace_rows(
                conn,
                SEGMENT_TRANSITIONS,
                SEGMENT_TRANSITIONS_SQL,
                {**params, "first_from_month": first, "last_from_month": last},
                delete_where="false",  # appended: the pairs' rows were deleted above
                in_transaction=False,
                ensure=False,
            )
            pair_rows = dict(
                conn.execute(
                    f"SELECT from_month, count(*) FROM {SEGMENT_TRANSITIONS.fqn} "
                    "WHERE from_month BETWEEN ? AND ? GROUP BY from_month",
                    [first, last],
                ).fetchall()
            )
            months = [month for month in recompute if first <= month <= last]
            insert_record_rows(
                conn,
                SEGMENT_TRANSITIONS_INPUTS,
                {
                    "from_month": months,
                    "to_month": [add_months(month, 1) for month in months],
                    "from_digest": [digests[month] for month in months],
                    "to_digest": [digests[add_months(month, 1)] for month in months],
                    "rows_written": [int(pair_rows.get(month, 0)) for month in months],
                },
                {"settings_digest": settings_digest},
            )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return TransitionsWrite(pairs=pairs, recomputed=recompute, rows_written=written)


def transitions_params(lapse_days: int) -> dict[str, object]:
    return {
        "lapse_days": lapse_days,
        "tiers": list(PRICE_STATES),
        "ranked": [PRICE_LOW, PRICE_MID, PRICE_HIGH],
    }


#: Check: per pair and dimension, customers out of the earlier states vs the earlier
#: snapshot, into the later states vs the later snapshot.
TRANSITIONS_CONSERVATION_SQL = load_sql("dynamics/transitions_conservation")

# --------------------------------------------------------------------------------------------
# Last moves per customer
# --------------------------------------------------------------------------------------------

_PRICE_MOVE_EXPR = load_sql("dynamics/_price_move_expr")

_LAST_MOVES_COLUMNS = {column.name: column for column in CUSTOMER_LAST_MOVES.columns}

#: Per customer with a snapshot up to the month before the latest: their last moves up to
#: their last row there. A new day changes only the latest month's snapshot: the table is
#: then this state plus one month (LAST_MOVES_STEP_SQL), not a window over every month.
CUSTOMER_LAST_MOVES_STATE = TableDef(
    schema="marts",
    name="customer_last_moves_state",
    description="Per customer with a snapshot row up to the month before the latest one: "
    "their last segment and price-tier moves up to their last row there (what "
    "marts.customer_last_moves adds the latest month to). Bookkeeping; "
    "marts.customer_last_moves_inputs says which months it holds.",
    # customer_last_moves' own columns (types kept in step), as of the customer's last month
    columns=(
        _LAST_MOVES_COLUMNS["customer_id"],
        Column("last_month", "DATE", "The customer's last snapshot month in the state", False),
        *(
            replace(_LAST_MOVES_COLUMNS[name], description=description)
            for name, description in (
                ("segment", "RFM segment in that month"),
                ("previous_segment", "Segment before the last move, or (entered)"),
                ("segment_since", "Month of the last segment move (or of entry)"),
                ("months_in_segment", "Snapshots since segment_since, up to that month"),
                ("price_segment", "Price tier in that month"),
                ("previous_price_segment", "Tier before the last tier move, or (entered)"),
                ("price_segment_since", "Month of the last tier move (or of entry)"),
                ("price_move", "up, down, entered or changed: the last tier move"),
            )
        ),
    ),
    primary_key=("customer_id",),
)

#: The months marts.customer_last_moves_state was folded from: a later run keeps it while
#: those months have the same digests, and folds in only the months after them.
CUSTOMER_LAST_MOVES_INPUTS = TableDef(
    schema="marts",
    name="customer_last_moves_inputs",
    description="One row per snapshot month folded into marts.customer_last_moves_state: the "
    "month's digest (rows and row-hash sum of its rows, as for segment_transitions), the settings "
    "digest and the state's rows. A later run keeps the state while these months keep their "
    "digests, and folds in only the later months.",
    columns=(
        Column("snapshot_month", "DATE", "A snapshot month folded into the state", False),
        Column("digest", "VARCHAR", "Rows and row-hash sum of that month's snapshot", False),
        Column("settings_digest", "VARCHAR", "Digest of the settings and the query", False),
        Column("rows_written", "BIGINT", "Rows of the state after the write", False),
        Column("computed_at", "TIMESTAMP", "When the state was written (UTC)", nullable=False),
    ),
    primary_key=("snapshot_month",),
)
#: What the state was folded from, with the rows it holds now.
STORED_LAST_MOVES_INPUTS_SQL = load_sql("dynamics/stored_last_moves_inputs")

#: One month of the last moves from the state through the months before: over the run's
#: temp table while folding months in, over the stored state for the latest month.
#: Parameters: $month, $ranked (the tiers low to high).
_STEP_OVER_TEMP_SQL, _STEP_OVER_STORED_SQL = (
    load_sql("dynamics/last_moves_step", moves_state=state, price_move=_PRICE_MOVE_EXPR)
    for state in ("_moves_state", CUSTOMER_LAST_MOVES_STATE.fqn)
)
#: The state through $through in one pass (windows over every customer's months), whole
#: and for one bucket of customers. Parameters: $through, $ranked.
LAST_MOVES_STATE_SQL, LAST_MOVES_STATE_BUCKET_SQL = whole_and_one_bucket(
    load_sql, "dynamics/last_moves_state", price_move=_PRICE_MOVE_EXPR
)
_STATE_COLUMNS = ", ".join(CUSTOMER_LAST_MOVES_STATE.column_names)
#: The state through $month from the state through the month before (_moves_state): the
#: step's rows, and the rows of customers without a row in $month (their last row stays an
#: earlier one).
_FOLD_SQL = (
    f"SELECT {_STATE_COLUMNS} FROM ({_STEP_OVER_TEMP_SQL}) UNION ALL "
    f"SELECT {_STATE_COLUMNS} FROM _moves_state WHERE customer_id NOT IN "
    f"(SELECT customer_id FROM {CUSTOMER_SNAPSHOTS.fqn} WHERE snapshot_month = $month)"
)
#: marts.customer_last_moves: the latest month's step over the stored state (unordered: no
#: reader depends on the rows' order, and sorting 540k rows cost a third of the write).
#: Parameters: $month, $ranked, $lapse_days.
_LATEST_SQL = (
    "SELECT customer_id, last_month AS latest_month, segment, previous_segment, "
    "segment_since, months_in_segment, price_segment, previous_price_segment, "
    "price_segment_since, price_move, recency_days, recency_days <= $lapse_days AS active, "
    f"monetary, month_revenue FROM ({_STEP_OVER_STORED_SQL})"
)


@dataclass(frozen=True)
class LastMovesWrite:
    """What :func:`write_customer_last_moves` did."""

    #: Rows written to marts.customer_last_moves.
    rows: int
    #: The months folded into the state by this call (every month but the latest when the
    #: state was folded from the first month; none when a new day only changed the latest).
    folded: list[date]
    #: Whether the stored state was kept (else folded from the first month), and why not.
    kept_state: bool
    reason: str


def last_moves_settings_digest(ranked: Sequence[str]) -> str:
    """A digest of what the state depends on besides the snapshots: the tier order and the
    query (a new version of either folds the state again from the first month)."""
    inputs = json.dumps(
        {"ranked": list(ranked), "sql": [_STEP_OVER_TEMP_SQL, LAST_MOVES_STATE_SQL]},
        sort_keys=True,
    )
    return hashlib.sha256(inputs.encode()).hexdigest()


def last_moves_state_kept_until(
    digests: Mapping[date, str], stored: Mapping[date, str]
) -> date | None:
    """The last month of a stored state that still holds (`stored`: the months it was folded
    from and their digests then; `digests`: every snapshot month now): its months must be
    exactly today's up to its last one, with the same digests, and that month must be before
    the latest one now (the state never holds the latest month). None: fold from the first."""
    if not stored or not digests:
        return None
    last = max(stored)
    if last >= max(digests):
        return None
    now = {month: digest for month, digest in digests.items() if month <= last}
    return last if now == dict(stored) else None


def write_customer_last_moves(
    conn: duckdb.DuckDBPyConnection,
    lapse_days: int,
    ranked: Sequence[str] = (PRICE_LOW, PRICE_MID, PRICE_HIGH),
    buckets: int | None = None,
) -> LastMovesWrite:
    """Bring marts.customer_last_moves up to date with the snapshots.

    A customer's last moves are a fold over their months (sql/dynamics/last_moves_step.sql:
    one month from the moves up to their previous row). marts.customer_last_moves_state
    holds them up to the month before the latest; it is kept while those months have the
    digests it was made from (marts.customer_last_moves_inputs) and the settings digest is
    the same, and only the months after it are folded in (none on a new day of the latest
    month, one when a day starts a month); otherwise it is computed again from every month
    but the latest in one pass (LAST_MOVES_STATE_SQL's windows, in buckets of customers when
    they would not fit in memory). The table is then the latest month's step over the state.
    State, record and table change in one transaction (a failed write keeps the old ones).
    `ranked`: the price tiers low to high (a move between two of them is up or down);
    `buckets`: of customers for the one-pass state (default: what the memory limit gives).
    """
    for table in (CUSTOMER_LAST_MOVES, CUSTOMER_LAST_MOVES_STATE, CUSTOMER_LAST_MOVES_INPUTS):
        ensure_table(conn, table)
    # the transitions' digest: it hashes customer, segment and tier among other columns, so
    # it changes whenever what the state read changes (and a little more often)
    digests = dict(conn.execute(SNAPSHOT_MONTH_DIGESTS_SQL).fetchall())
    settings_digest = last_moves_settings_digest(ranked)
    stored_rows = conn.execute(STORED_LAST_MOVES_INPUTS_SQL).fetchall()
    kept_until = last_moves_state_kept_until(digests, {row[0]: row[1] for row in stored_rows})
    if not stored_rows:
        kept_until, reason = None, "no state recorded"
    elif any(row[2] != settings_digest for row in stored_rows):
        kept_until, reason = None, "the tier order or the query changed"
    elif any(int(row[3]) != int(row[4]) for row in stored_rows):
        kept_until, reason = None, "the state's rows changed since it was written"
    elif kept_until is None:
        reason = "a snapshot month up to the state's last one changed or is gone"
    else:
        reason = f"state through {kept_until:%Y-%m} kept"
    months = sorted(digests)
    latest = months[-1] if months else None
    ranked = list(ranked)
    try:
        if kept_until is None:
            # every month but the latest, in one pass (the windows), not folded one by one
            folded = months[:-1]
            if folded:
                create_by_customer_buckets(
                    conn,
                    "_moves_state",
                    (LAST_MOVES_STATE_SQL, LAST_MOVES_STATE_BUCKET_SQL),
                    CUSTOMER_SNAPSHOTS.fqn,
                    buckets,
                    params={"through": folded[-1], "ranked": ranked},
                    bytes_per_row=SNAPSHOT_BYTES_PER_ROW,
                )
            else:
                conn.execute(
                    "CREATE OR REPLACE TEMP TABLE _moves_state AS "
                    f"SELECT * FROM {CUSTOMER_LAST_MOVES_STATE.fqn} LIMIT 0"
                )
        else:
            # the months after the kept state but the latest: one a day that starts a month
            folded = [month for month in months[:-1] if month > kept_until]
            if folded:
                conn.execute(
                    "CREATE OR REPLACE TEMP TABLE _moves_state AS "
                    f"SELECT * FROM {CUSTOMER_LAST_MOVES_STATE.fqn}"
                )
            for month in folded:
                conn.execute(
                    f"CREATE OR REPLACE TEMP TABLE _moves_state_next AS {_FOLD_SQL}",
                    {"month": month, "ranked": ranked},
                )
                conn.execute("DROP TABLE _moves_state")
                conn.execute("ALTER TABLE _moves_state_next RENAME TO _moves_state")
        conn.execute("BEGIN TRANSACTION")
        try:
            if folded or kept_until is None:
                state_rows = replace_rows(
                    conn,
                    CUSTOMER_LAST_MOVES_STATE,
                    "SELECT * FROM _moves_state",
                    in_transaction=False,
                    ensure=False,
                )
                conn.execute(f"DELETE FROM {CUSTOMER_LAST_MOVES_INPUTS.fqn}")
                # the state holds every month but the latest (none: computed next time)
                insert_input_records(
                    conn,
                    CUSTOMER_LAST_MOVES_INPUTS,
                    {m: digests[m] for m in months[:-1]},
                    settings_digest,
                    state_rows,
                )
            rows = replace_rows(
                conn,
                CUSTOMER_LAST_MOVES,
                _LATEST_SQL,  # no snapshot month: no row
                {"month": latest, "ranked": ranked, "lapse_days": lapse_days},
                in_transaction=False,
                ensure=False,
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    finally:
        conn.execute("DROP TABLE IF EXISTS _moves_state")
        conn.execute("DROP TABLE IF EXISTS _moves_state_next")
    return LastMovesWrite(rows, folded, kept_until is not None, reason)


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
EXPERIMENT_BASELINE_SQL = load_sql(
    "dynamics/experiment_baseline",
    pairs_cte=_PAIRS_CTE,
    strategy_cells=STRATEGY_CELLS,
    # three columns per outcome of OUTCOMES
    outcome_columns=", ".join(
        f"coalesce(b.{o}_trials, 0) AS {o}_trials, "
        f"coalesce(b.{o}_successes, 0) AS {o}_successes, "
        f"coalesce(l.{o}_available, 0) AS {o}_available"
        for o in OUTCOMES
    ),
)


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
SEGMENT_SHARES_SQL = load_sql("dynamics/segment_shares")

#: Categories whose price tier differs from the previous month's snapshot.
CATEGORY_TIER_CHANGES_SQL = load_sql("dynamics/category_tier_changes")
