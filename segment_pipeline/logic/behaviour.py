"""Seed B, part 1: the behaviour-based segmentation (SPEC section 3).

Everything heavy runs in DuckDB over `staging.sales_lines`; only per-occupation, per-category
and per-segment results (tens to hundreds of rows) reach pandas.

Definitions pinned here (and in docs/behaviour_and_strategy.md):

- **Terciles** (`tercile_tiers`): n values, ranked ascending; a value's tier is
  `1 + floor(3 * (rank_min - 1) / n)`, where `rank_min` is the lowest rank among equal values.
  So equal values always share a tier (the lower one), no tie is broken by row order, and when
  n is not divisible by 3 the lower tiers get the extra members (n = 20 -> 7 / 7 / 6;
  n = 4 -> 2 / 1 / 1; n = 2 -> tiers 1 and 2; n = 1 -> tier 1). Means are rounded to 9
  decimals before ranking, so the last bits of a parallel floating-point sum cannot reorder
  two occupations.
- **Occupation groups**: an occupation with fewer than `min_customers` customers, and the
  `Unknown` occupation (customers without a profile) whatever its size, is `Occ_Other`; the
  other codes split into terciles of their mean `log1p(line amount)` (over lines):
  `Occ_Low`, `Occ_Mid`, `Occ_High`.
- **Price segments**: each category's median line amount; categories split into terciles of
  the medians: `Price_Low`, `Price_Mid`, `Price_High`. `Unknown` (lines without a category)
  takes no tier and does not move the cut points: its price segment is `Unknown`. It is not a
  category, and ranking it would put a mix of every category's products into one tier.
- **Dominant price segment** of a customer: the price segment holding most of their spend in
  tiered categories (spend in `Unknown` is counted apart, in `spend_unknown_category`); on
  an exact tie the **higher** tier wins (a customer spending as much on premium as on cheap
  categories is not "stuck on low prices"). Amounts are exact decimals, so ties are exact. A
  customer without a line in a tiered category has the price segment `Unknown`.
- **Behavioural segment** = age band x gender x occupation group x dominant price segment.
  AOV = gross sales / distinct orders (for data without order ids each line is an order).
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

import duckdb
import numpy as np
import pandas as pd

# Importing the modules that declare the tables and views these SQL files read registers
# the names their placeholders resolve against (segment_pipeline.sql_files).
from segment_pipeline.logic.memory import PAIR_COUNT_BYTES_PER_ROW, create_by_customer_buckets
from segment_pipeline.logic.staging import (  # noqa: F401
    PRODUCT_LINES_VIEW,
    SALES_LINES_VIEW,
    STAGED_CUSTOMERS,
    STAGED_PRODUCTS,
    STAGED_TRANSACTIONS,
)
from segment_pipeline.sql_files import load_sql, whole_and_one_bucket
from segment_pipeline.tables import (
    Column,
    TableDef,
    ensure_table,
    insert_input_records,
    replace_rows,
    scalar,
)

UNKNOWN = "Unknown"

OCC_LOW, OCC_MID, OCC_HIGH, OCC_OTHER = "Occ_Low", "Occ_Mid", "Occ_High", "Occ_Other"
#: Display and rule-table order (ranked groups first, low to high, then the rest).
OCCUPATION_GROUPS: tuple[str, ...] = (OCC_LOW, OCC_MID, OCC_HIGH, OCC_OTHER)

PRICE_LOW, PRICE_MID, PRICE_HIGH = "Price_Low", "Price_Mid", "Price_High"
#: The tiers (terciles of the category medians), low to high.
PRICE_SEGMENTS: tuple[str, ...] = (PRICE_LOW, PRICE_MID, PRICE_HIGH)
#: Price segment of the `Unknown` category, and of a customer with no line in a tiered one.
PRICE_UNKNOWN = UNKNOWN
#: Every price segment a customer (and so a behavioural segment) can have.
CUSTOMER_PRICE_SEGMENTS: tuple[str, ...] = (*PRICE_SEGMENTS, PRICE_UNKNOWN)

_OCC_BY_TIER = {1: OCC_LOW, 2: OCC_MID, 3: OCC_HIGH}
_PRICE_BY_TIER = {1: PRICE_LOW, 2: PRICE_MID, 3: PRICE_HIGH}

#: Decimals kept before ranking means / medians (see module docstring).
RANK_DECIMALS = 9

# --------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------

PURCHASE_DISTRIBUTION = TableDef(
    schema="marts",
    name="purchase_distribution",
    description="EDA of sale-line amounts in long form: summary statistics, quantiles, "
    "skewness of raw and log1p amounts, histograms (raw and log1p) and the price clusters "
    "(a Gaussian mixture on log1p amounts, its number of components chosen by BIC).",
    columns=(
        Column(
            "measure",
            "VARCHAR",
            "summary, quantile, skewness, cluster, histogram_raw or histogram_log1p",
            nullable=False,
        ),
        Column(
            "name",
            "VARCHAR",
            "Statistic name (p50, mean, raw, log1p, cluster_1, bin_017, above_p99, ...)",
            nullable=False,
        ),
        Column(
            "value",
            "DOUBLE",
            "The statistic: an amount (currency) for summary, quantile "
            "and cluster rows (a cluster's value is its centre, expm1 of its mixture "
            "component's mean log1p amount), the skewness for skewness "
            "rows, the line count for histogram rows",
        ),
        Column("log1p_value", "DOUBLE", "The same on the log1p scale (histogram: bin centre)"),
        Column("lower", "DOUBLE", "Lower amount bound (histogram bins and clusters)"),
        Column("upper", "DOUBLE", "Upper amount bound (histogram bins and clusters)"),
        Column("lines", "BIGINT", "Sale lines in the bin or cluster"),
        Column("share", "DOUBLE", "Share of all sale lines in the bin or cluster"),
    ),
    primary_key=("measure", "name"),
)

OCCUPATION_GROUPS_TABLE = TableDef(
    schema="marts",
    name="occupation_groups",
    description="Per occupation code: customers, lines, mean log1p(line amount) and its "
    "occupation group (terciles of the mean; Occ_Other below the minimum customer count "
    "and for Unknown).",
    columns=(
        Column("occupation", "VARCHAR", "Anonymised occupation code (or Unknown)", nullable=False),
        Column("customers", "BIGINT", "Distinct customers with at least one sale line"),
        Column("lines", "BIGINT", "Sale lines"),
        Column("gross_sales", "DOUBLE", "Sum of line amounts"),
        Column("mean_log1p_amount", "DOUBLE", "Mean of log1p(line amount) over the lines"),
        Column(
            "typical_line_amount",
            "DOUBLE",
            "expm1(mean_log1p_amount): the geometric-style typical line amount, in currency",
        ),
        Column("ranked", "BOOLEAN", "True when the code took part in the tercile split"),
        Column(
            "tier_rank",
            "INTEGER",
            "Rank (min method) of mean_log1p_amount among ranked "
            "codes, 1 = lowest; NULL for Occ_Other",
        ),
        Column(
            "occupation_group", "VARCHAR", "Occ_Low, Occ_Mid, Occ_High or Occ_Other", nullable=False
        ),
    ),
    primary_key=("occupation",),
)

CATEGORY_PRICE_SEGMENTS = TableDef(
    schema="marts",
    name="category_price_segments",
    description="Per product category: median line amount and its price segment (terciles "
    "of the category medians; Unknown, the lines without a category, takes no tier).",
    columns=(
        Column("category", "VARCHAR", "Product category (or Unknown)", nullable=False),
        Column("lines", "BIGINT", "Sale lines"),
        Column("customers", "BIGINT", "Distinct customers"),
        Column("gross_sales", "DOUBLE", "Sum of line amounts"),
        Column("median_line_amount", "DOUBLE", "Median line amount (quantity x unit price)"),
        Column(
            "tier_rank",
            "INTEGER",
            "Rank (min method) of the median among the tiered categories, 1 = cheapest; "
            "NULL for Unknown",
        ),
        Column(
            "price_segment",
            "VARCHAR",
            "Price_Low, Price_Mid or Price_High; Unknown for the Unknown category (no tier)",
            nullable=False,
        ),
    ),
    primary_key=("category",),
)

CUSTOMER_BEHAVIOUR = TableDef(
    schema="marts",
    name="customer_behaviour",
    description="One row per customer with a sale: demographics, occupation group, dominant "
    "price segment (most spend in tiered categories; exact tie -> higher tier; Unknown "
    "without a line in one), lines, orders and spend.",
    columns=(
        Column("customer_id", "VARCHAR", "Customer id", nullable=False),
        Column("age_band", "VARCHAR", "Age band (or Unknown)", nullable=False),
        Column("gender", "VARCHAR", "M, F or Unknown", nullable=False),
        Column("occupation", "VARCHAR", "Occupation code (or Unknown)", nullable=False),
        Column(
            "occupation_group", "VARCHAR", "Occ_Low, Occ_Mid, Occ_High or Occ_Other", nullable=False
        ),
        Column(
            "price_segment",
            "VARCHAR",
            "Dominant price segment; Unknown when the customer has no line in a tiered "
            "category (only lines without a category)",
            nullable=False,
        ),
        Column("spend_price_low", "DOUBLE", "Spend in Price_Low categories"),
        Column("spend_price_mid", "DOUBLE", "Spend in Price_Mid categories"),
        Column("spend_price_high", "DOUBLE", "Spend in Price_High categories"),
        Column(
            "spend_unknown_category",
            "DOUBLE",
            "Spend on lines without a category (Unknown): no tier, not used for the dominant "
            "price segment",
        ),
        Column("lines", "BIGINT", "Sale lines"),
        Column("orders", "BIGINT", "Distinct orders"),
        Column("spend", "DOUBLE", "Total spend (sum of line amounts)"),
        Column(
            "unknown_demographics",
            "BOOLEAN",
            "True when age band, gender or occupation is Unknown (no or incomplete profile)",
        ),
    ),
    primary_key=("customer_id",),
)

BEHAVIOURAL_SEGMENTS = TableDef(
    schema="marts",
    name="behavioural_segments",
    description="Per age band x gender x occupation group x price segment: customers, "
    "transactions, gross sales, AOV, revenue and customer share and their ratio.",
    columns=(
        Column(
            "segment",
            "VARCHAR",
            "Label: age band | gender | occupation group | price segment",
            nullable=False,
        ),
        Column("age_band", "VARCHAR", "Age band", nullable=False),
        Column("gender", "VARCHAR", "Gender", nullable=False),
        Column("occupation_group", "VARCHAR", "Occupation group", nullable=False),
        Column(
            "price_segment",
            "VARCHAR",
            "Dominant price segment (Unknown: no spend in a tiered category)",
            nullable=False,
        ),
        Column("customers", "BIGINT", "Customers in the segment"),
        Column("transactions", "BIGINT", "Sale lines of those customers"),
        Column("orders", "BIGINT", "Distinct orders of those customers"),
        Column("gross_sales", "DOUBLE", "Sum of their line amounts"),
        Column("aov", "DOUBLE", "Average order value = gross_sales / orders"),
        Column("revenue_share", "DOUBLE", "gross_sales / all gross sales (sums to 1)"),
        Column("customer_share", "DOUBLE", "customers / all customers (sums to 1)"),
        Column(
            "value_index",
            "DOUBLE",
            "revenue_share / customer_share (> 1: the segment spends more than its head count)",
        ),
        Column("sales_rank", "INTEGER", "1 = largest gross sales (ties by segment label)"),
    ),
    primary_key=("segment",),
)


# --------------------------------------------------------------------------------------------
# Terciles
# --------------------------------------------------------------------------------------------


def tercile_tiers(values: Sequence[float]) -> list[int]:
    """Tier 1..3 of each value (ascending), `1 + floor(3 * (rank_min - 1) / n)`.

    Equal values share the lower tier; the result depends only on the values, never on their
    order in the input.
    """
    n = len(values)
    if n == 0:
        return []
    rounded = [round(float(v), RANK_DECIMALS) for v in values]
    ordered = sorted(rounded)
    first_rank = {}
    for position, value in enumerate(ordered, start=1):
        first_rank.setdefault(value, position)
    return [1 + (3 * (first_rank[v] - 1)) // n for v in rounded]


def rank_min(values: Sequence[float]) -> list[int]:
    """1-based ascending rank, equal values sharing the lowest rank (after rounding)."""
    rounded = [round(float(v), RANK_DECIMALS) for v in values]
    ordered = sorted(rounded)
    first_rank: dict[float, int] = {}
    for position, value in enumerate(ordered, start=1):
        first_rank.setdefault(value, position)
    return [first_rank[v] for v in rounded]


# --------------------------------------------------------------------------------------------
# Occupation groups
# --------------------------------------------------------------------------------------------

#: Per occupation code: customers, lines, sales and mean log1p(line amount).
OCCUPATION_STATS_SQL = load_sql("behaviour/occupation_stats")


def occupation_groups_of(
    occupations: Sequence[str],
    customers: Sequence[int],
    mean_log1p_amounts: Sequence[float],
    min_customers: int,
) -> tuple[list[bool], list[int | None], list[str]]:
    """Per occupation code (in any order: the split depends on the values only): whether it
    takes part in the tercile split (at least `min_customers` customers, not Unknown), its
    rank among those (None when not ranked) and its group (Occ_Other when not ranked). The
    one rule, for the occupation_groups table and every monthly snapshot."""
    ranked = [
        n >= min_customers and code != UNKNOWN
        for code, n in zip(occupations, customers, strict=True)
    ]
    ranks: list[int | None] = [None] * len(ranked)
    groups = [OCC_OTHER] * len(ranked)
    positions = [i for i, flag in enumerate(ranked) if flag]
    means = [float(mean_log1p_amounts[i]) for i in positions]
    for i, rank, tier in zip(positions, rank_min(means), tercile_tiers(means), strict=True):
        ranks[i], groups[i] = rank, _OCC_BY_TIER[tier]
    return ranked, ranks, groups


def assign_occupation_groups(stats: pd.DataFrame, min_customers: int) -> pd.DataFrame:
    """Add `ranked`, `tier_rank`, `typical_line_amount` and `occupation_group` to the output of
    OCCUPATION_STATS_SQL (one row per occupation code; :func:`occupation_groups_of`)."""
    out = stats.copy().sort_values("occupation", kind="stable").reset_index(drop=True)
    out["typical_line_amount"] = np.expm1(out["mean_log1p_amount"].astype(float))
    ranked, ranks, groups = occupation_groups_of(
        out["occupation"].tolist(),
        out["customers"].tolist(),
        out["mean_log1p_amount"].astype(float).tolist(),
        min_customers,
    )
    out["ranked"] = ranked
    out["tier_rank"] = pd.array(ranks, dtype="Int32")
    out["occupation_group"] = groups
    return out[OCCUPATION_GROUPS_TABLE.column_names]


# --------------------------------------------------------------------------------------------
# Price segments
# --------------------------------------------------------------------------------------------

#: Per category: lines, sales and the median line amount.
CATEGORY_STATS_SQL = load_sql("behaviour/category_stats")
#: Customers per category: the whole query and the same for one bucket of customers.
CATEGORY_CUSTOMERS_SQLS = whole_and_one_bucket(load_sql, "behaviour/category_customers")
#: The columns of :func:`category_stats`.
CATEGORY_STATS_COLUMNS = ["category", "lines", "customers", "gross_sales", "median_line_amount"]


#: The temp table the customers per category are counted into (per bucket of customers),
#: and their sum per category.
CATEGORY_CUSTOMERS_TABLE = "_category_customers"
CATEGORY_CUSTOMERS_SUM_SQL = (
    f"SELECT category, CAST(sum(customers) AS BIGINT) AS customers "
    f"FROM {CATEGORY_CUSTOMERS_TABLE} GROUP BY category"
)


def category_stats(
    conn: duckdb.DuckDBPyConnection,
    stats_sql: str = CATEGORY_STATS_SQL,
    customers_sqls: tuple[str, str] = CATEGORY_CUSTOMERS_SQLS,
    *,
    lines_table: str = STAGED_TRANSACTIONS.fqn,
    params: Mapping[str, object] | None = None,
) -> pd.DataFrame:
    """Per category (sorted): lines, customers, sales and the median line amount, from
    `stats_sql` and the customers of `customers_sqls`, counted in buckets of customers when
    the lines of `lines_table` would not fit in DuckDB's memory in one go (100M lines); a
    customer is in one bucket, so the buckets' counts add up."""
    stats = conn.execute(stats_sql, params).df()
    create_by_customer_buckets(
        conn,
        CATEGORY_CUSTOMERS_TABLE,
        customers_sqls,
        lines_table,
        params=params,
        bytes_per_row=PAIR_COUNT_BYTES_PER_ROW,
    )
    try:
        customers = conn.execute(CATEGORY_CUSTOMERS_SUM_SQL).df()
    finally:
        conn.execute(f"DROP TABLE IF EXISTS {CATEGORY_CUSTOMERS_TABLE}")
    out = stats.merge(customers, on="category", how="inner", validate="one_to_one")
    return out.sort_values("category", ignore_index=True)[CATEGORY_STATS_COLUMNS]


def price_segments_of(
    categories: Sequence[str], median_line_amounts: Sequence[float]
) -> tuple[list[int | None], list[str]]:
    """Per category (in any order: the split depends on the values only): the rank of its
    median line amount among the tiered categories and its price segment (terciles of the
    medians). `Unknown` takes no part in the split: rank None, price segment Unknown. The one
    rule, for the category_price_segments table and every monthly snapshot."""
    ranks: list[int | None] = [None] * len(categories)
    segments = [PRICE_UNKNOWN] * len(categories)
    positions = [i for i, category in enumerate(categories) if category != UNKNOWN]
    medians = [float(median_line_amounts[i]) for i in positions]
    for i, rank, tier in zip(positions, rank_min(medians), tercile_tiers(medians), strict=True):
        ranks[i], segments[i] = rank, _PRICE_BY_TIER[tier]
    return ranks, segments


def assign_price_segments(stats: pd.DataFrame) -> pd.DataFrame:
    """Add `tier_rank` and `price_segment` (:func:`price_segments_of`) to CATEGORY_STATS_SQL."""
    out = stats.copy().sort_values("category", kind="stable").reset_index(drop=True)
    ranks, segments = price_segments_of(
        out["category"].tolist(), out["median_line_amount"].astype(float).tolist()
    )
    out["tier_rank"] = pd.array(ranks, dtype="Int32")
    out["price_segment"] = segments
    return out[CATEGORY_PRICE_SEGMENTS.column_names]


# --------------------------------------------------------------------------------------------
# Customers and behavioural segments
# --------------------------------------------------------------------------------------------

#: The dominant price segment from a customer's exact (decimal) spend per tier, the columns
#: `high`, `mid` and `low` (NULL: no line in the tier): the largest spend; a tie goes to the
#: higher tier; no tiered line: Unknown. The one definition of the rule, spliced into the
#: behaviour layer's SQL and the monthly snapshots' (which must equal it month by month).
DOMINANT_PRICE_SEGMENT_SQL = (
    "CASE WHEN high IS NOT NULL AND (mid IS NULL OR high >= mid) "
    "AND (low IS NULL OR high >= low) THEN 'Price_High' "
    "WHEN mid IS NOT NULL AND (low IS NULL OR mid >= low) THEN 'Price_Mid' "
    "WHEN low IS NOT NULL THEN 'Price_Low' ELSE 'Unknown' END"
)

#: One row per customer from the sale lines and the two lookup tables, with the dominant
#: price segment (DOMINANT_PRICE_SEGMENT_SQL). Lines without a category (price segment
#: Unknown) are counted in the customer's totals but never choose the segment.
#: CUSTOMER_BEHAVIOUR_BUCKET_SQL: the same for one bucket of customers (the snapshots' as-of
#: check runs it in buckets when the lines would not fit in DuckDB's memory).
CUSTOMER_BEHAVIOUR_SQL, CUSTOMER_BEHAVIOUR_BUCKET_SQL = whole_and_one_bucket(
    load_sql, "behaviour/customer_behaviour", dominant_price_segment=DOMINANT_PRICE_SEGMENT_SQL
)

#: The temp table of the customers an incremental write recomputes (customers_of_days.sql).
_CHANGED_CUSTOMERS_TEMP = "_behaviour_changed_customers"
_CHANGED_CUSTOMERS_FILTER = f"customer_id IN (SELECT customer_id FROM {_CHANGED_CUSTOMERS_TEMP})"
#: staging.sales_lines for the customers of _CHANGED_CUSTOMERS_TEMP, filtered before the
#: view's joins to the masters.
CHANGED_CUSTOMER_LINES_SQL = load_sql(
    "behaviour/changed_customer_lines", customers=_CHANGED_CUSTOMERS_TEMP
)
#: CUSTOMER_BEHAVIOUR_SQL over those lines only (each customer's row is a function of their
#: own lines and the lookups: recomputing some leaves the rest as they are).
_CHANGED_CUSTOMERS_BEHAVIOUR_SQL = CUSTOMER_BEHAVIOUR_SQL.replace(
    SALES_LINES_VIEW.fqn, f"({CHANGED_CUSTOMER_LINES_SQL})"
)
#: Per staged day, the digest of the sale-line columns the table reads.
BEHAVIOUR_DAY_DIGESTS_SQL = load_sql("behaviour/behaviour_day_digests")
#: One digest of the customers, products, occupation groups and price segments it reads.
BEHAVIOUR_LOOKUPS_DIGEST_SQL = load_sql("behaviour/behaviour_lookups_digest")
#: The customers with a sale line on $days.
CUSTOMERS_OF_DAYS_SQL = load_sql("behaviour/customers_of_days")

CUSTOMER_BEHAVIOUR_INPUTS = TableDef(
    schema="marts",
    name="customer_behaviour_inputs",
    description="One row per staged day marts.customer_behaviour was computed from: the day's "
    "digest (lines and line-hash sum of the columns it reads), the digest of the lookups and "
    "the query, and the table's rows. A later run adds only days not seen before; any other "
    "change writes the table whole.",
    columns=(
        Column("partition_date", "DATE", "A staged day the table was computed from", False),
        Column("digest", "VARCHAR", "Lines and line-hash sum of that day's sale lines", False),
        Column(
            "settings_digest",
            "VARCHAR",
            "Digest of the customers, products, occupation groups, price segments and query",
            False,
        ),
        Column("rows_written", "BIGINT", "Rows of the table after the write", False),
        Column("computed_at", "TIMESTAMP", "When the table was written (UTC)", nullable=False),
    ),
    primary_key=("partition_date",),
)
#: What the table was computed from, with the rows it holds now.
STORED_BEHAVIOUR_INPUTS_SQL = load_sql("behaviour/stored_behaviour_inputs")


@dataclass(frozen=True)
class BehaviourWrite:
    """What :func:`write_customer_behaviour` did: `mode` "full", "incremental" or
    "unchanged"; `rows` in the table after it; `recomputed` customers' rows written;
    `new_days` added; `reason` why the table was written whole (empty otherwise)."""

    mode: str
    rows: int
    recomputed: int
    new_days: int = 0
    reason: str = ""


def behaviour_settings_digest(conn: duckdb.DuckDBPyConnection) -> str:
    """The digest of what customer_behaviour reads besides the sale lines (the lookups'
    rows) and of the query itself: a new version of either writes the table whole."""
    lookups = str(scalar(conn, BEHAVIOUR_LOOKUPS_DIGEST_SQL))
    payload = "\n".join([lookups, CUSTOMER_BEHAVIOUR_SQL, _CHANGED_CUSTOMERS_BEHAVIOUR_SQL])
    return hashlib.sha256(payload.encode()).hexdigest()


def behaviour_new_days(
    digests: Mapping[date, str], stored: Mapping[date, str]
) -> list[date] | None:
    """The days to add to a table computed from the days `stored` (with their digests then),
    given every staged day's digest now; None when a stored day changed or is gone (the
    table must be written whole: its customers' old lines are no longer there to tell)."""
    if any(digests.get(day) != digest for day, digest in stored.items()):
        return None
    return sorted(day for day in digests if day not in stored)


def write_customer_behaviour(conn: duckdb.DuckDBPyConnection) -> BehaviourWrite:
    """Bring marts.customer_behaviour up to date with the staged sale lines.

    Each customer's row is a function of their own lines (all of history) and the lookups
    (demographics, product categories, occupation groups, price segments). A new day changes
    only its customers: when every day the table was computed from (its record in
    marts.customer_behaviour_inputs) still has the digest it had, the lookups and the query
    theirs, and the table its rows, the customers with a line on the days not seen before are
    recomputed from their lines and the rest kept (745k lines, a new day: 1,112 of 39,972
    customers). Anything else (a day restaged, corrected or gone, a changed master or lookup,
    a first write) writes the table whole. Table and record change in one transaction.
    """
    for table in (CUSTOMER_BEHAVIOUR, CUSTOMER_BEHAVIOUR_INPUTS):
        ensure_table(conn, table)
    digests = dict(conn.execute(BEHAVIOUR_DAY_DIGESTS_SQL).fetchall())
    settings_digest = behaviour_settings_digest(conn)
    stored_rows = conn.execute(STORED_BEHAVIOUR_INPUTS_SQL).fetchall()
    new_days = behaviour_new_days(digests, {row[0]: row[1] for row in stored_rows})
    if not stored_rows:
        new_days, reason = None, "no inputs recorded"
    elif any(row[2] != settings_digest for row in stored_rows):
        new_days, reason = None, "a lookup (customers, products, groups, tiers) or the SQL changed"
    elif any(int(row[3]) != int(row[4]) for row in stored_rows):
        new_days, reason = None, "the table's rows changed since it was written"
    elif new_days is None:
        reason = "a staged day it was computed from changed or is gone"
    else:
        reason = ""
    if new_days == []:
        return BehaviourWrite("unchanged", int(stored_rows[0][4]), 0)
    try:
        if new_days is not None:
            conn.execute(
                f"CREATE OR REPLACE TEMP TABLE {_CHANGED_CUSTOMERS_TEMP} AS "
                + CUSTOMERS_OF_DAYS_SQL,
                {"days": new_days},
            )
        conn.execute("BEGIN TRANSACTION")
        try:
            if new_days is None:
                recomputed = replace_rows(
                    conn,
                    CUSTOMER_BEHAVIOUR,
                    CUSTOMER_BEHAVIOUR_SQL,
                    in_transaction=False,
                    ensure=False,
                )
                recorded = sorted(digests)
            else:
                recomputed = replace_rows(
                    conn,
                    CUSTOMER_BEHAVIOUR,
                    _CHANGED_CUSTOMERS_BEHAVIOUR_SQL,
                    delete_where=_CHANGED_CUSTOMERS_FILTER,
                    in_transaction=False,
                    ensure=False,
                )
                recorded = new_days
            rows = int(scalar(conn, f"SELECT count(*) FROM {CUSTOMER_BEHAVIOUR.fqn}"))
            if new_days is None:
                conn.execute(f"DELETE FROM {CUSTOMER_BEHAVIOUR_INPUTS.fqn}")
            # no staged day: nothing recorded (a first write again next time)
            insert_input_records(
                conn,
                CUSTOMER_BEHAVIOUR_INPUTS,
                {day: digests[day] for day in recorded},
                settings_digest,
                rows,
            )
            conn.execute(f"UPDATE {CUSTOMER_BEHAVIOUR_INPUTS.fqn} SET rows_written = ?", [rows])
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    finally:
        conn.execute(f"DROP TABLE IF EXISTS {_CHANGED_CUSTOMERS_TEMP}")
    mode = "full" if new_days is None else "incremental"
    return BehaviourWrite(mode, rows, recomputed, len(new_days or []), reason)


#: Segment metrics from marts.customer_behaviour (orders of different customers never
#: coincide, so summing customers' distinct orders gives the segment's distinct orders).
BEHAVIOURAL_SEGMENTS_SQL = load_sql("behaviour/behavioural_segments")


def build_occupation_groups(conn: duckdb.DuckDBPyConnection, min_customers: int) -> pd.DataFrame:
    """The occupation_groups rows (one per occupation code)."""
    return assign_occupation_groups(conn.execute(OCCUPATION_STATS_SQL).df(), min_customers)


def build_category_price_segments(conn: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """The category_price_segments rows (one per category)."""
    return assign_price_segments(category_stats(conn))


# --------------------------------------------------------------------------------------------
# Purchase distribution (EDA) and price clusters
# --------------------------------------------------------------------------------------------

QUANTILE_LEVELS: tuple[float, ...] = (0.01, 0.05, 0.10, 0.25, 0.50, 0.75, 0.90, 0.95, 0.99)

#: Summary statistics and skewness (adjusted Fisher-Pearson G1, DuckDB's `skewness`) of raw
#: and log1p line amounts.
DISTRIBUTION_SUMMARY_SQL = load_sql("behaviour/distribution_summary")

#: Per quantile level (`?`, DOUBLE[]): the two amounts quantile_cont interpolates between and
#: the fraction between them, from the amounts counted per value (a grouping DuckDB can spill).
AMOUNT_QUANTILE_RANKS_SQL = load_sql("behaviour/amount_quantile_ranks")

#: DuckDB's own interpolation between two values: quantile_cont over the pair at the fraction
#: (rank (2 - 1) * fraction lies between ranks 0 and 1, at that fraction).
INTERPOLATE_PAIR_SQL = "SELECT quantile_cont(x, $fraction) FROM (VALUES ($lo), ($hi)) AS pair (x)"


def amount_quantiles(
    conn: duckdb.DuckDBPyConnection, levels: tuple[float, ...] = QUANTILE_LEVELS
) -> list[float]:
    """`quantile_cont(CAST(amount AS DOUBLE), levels)` over staging.transactions, equal to the
    last bit, in bounded memory: the two amounts of each level come from amounts counted per
    value, and DuckDB's own quantile_cont interpolates between them (its interpolation is
    compiled with a fused multiply-add, which SQL arithmetic does not reproduce). Empty without
    lines."""
    ranks = conn.execute(AMOUNT_QUANTILE_RANKS_SQL, [list(levels)]).fetchall()
    return [
        float(
            conn.execute(INTERPOLATE_PAIR_SQL, {"fraction": f, "lo": lo, "hi": hi}).fetchone()[0]  # type: ignore[index]
        )
        for _, lo, hi, f in ranks
    ]


#: Histogram of log1p(amount): `?` = lower edge, bin width, number of bins.
LOG_HISTOGRAM_SQL = load_sql("behaviour/log_histogram")

#: Histogram of raw amounts from 0 to an upper limit (the 99th percentile); lines above the
#: limit get bin = -1 (the overflow row). `?` = bin width, number of bins, upper limit.
RAW_HISTOGRAM_SQL = load_sql("behaviour/raw_histogram")


#: A deterministic sample of log1p(amount) for the mixture fit: the lines with the smallest
#: hash of their key (ties, which a 64-bit hash practically never has, by the key itself). The
#: same data give the same sample whatever the thread count; DuckDB keeps only the top `?`
#: rows while scanning, so 10 million lines never reach Python. `?` = sample size.
LOG_AMOUNT_SAMPLE_SQL = load_sql("behaviour/log_amount_sample")


@dataclass(frozen=True)
class ClusterSettings:
    """How the log1p histogram is binned and the price clusters are found (a Gaussian mixture
    on log1p(amount), k = 1..max_components chosen by BIC)."""

    bins: int = 60
    max_components: int = 6
    sample_lines: int = 20_000
    min_lines: int = 10
    n_init: int = 2
    random_state: int = 0


@dataclass(frozen=True)
class MixtureFit:
    """The fitted mixture and the price clusters read from it (log1p scale throughout).

    `components` are (mean, standard deviation, weight), ordered by mean. `centres` and
    `boundaries` are the clusters' modes and the cuts between neighbours (len(centres) - 1
    of them); `bic` maps each tried k to its BIC. `method` is `gaussian_mixture`, or
    `single_group` when no mixture was fitted (fewer than `min_lines` lines or a single
    distinct amount: one cluster holding every line).
    """

    method: str
    sample_lines: int
    bic: dict[int, float]
    components: tuple[tuple[float, float, float], ...]
    centres: tuple[float, ...]
    boundaries: tuple[float, ...]

    @property
    def k(self) -> int:
        """Components of the chosen mixture (clusters can be fewer, see `mixture_clusters`)."""
        return len(self.components)


def sample_log_amounts(conn: duckdb.DuckDBPyConnection, sample_lines: int) -> np.ndarray:
    """At most `sample_lines` log1p amounts, chosen by `LOG_AMOUNT_SAMPLE_SQL`, sorted."""
    values = conn.execute(LOG_AMOUNT_SAMPLE_SQL, [int(sample_lines)]).fetchnumpy()["v"]
    return np.sort(np.asarray(values, dtype=float))


def _log_weighted_density(
    x: np.ndarray, components: Sequence[tuple[float, float, float]]
) -> np.ndarray:
    """log of sum_k w_k N(x; mean_k, sd_k), computed without underflow."""
    terms = [
        math.log(w) - math.log(sd * math.sqrt(2 * math.pi)) - 0.5 * ((x - m) / sd) ** 2
        for m, sd, w in components
    ]
    return np.logaddexp.reduce(np.array(terms), axis=0)


def mixture_clusters(
    components: Sequence[tuple[float, float, float]], grid_points: int = 4001
) -> tuple[list[float], list[float]]:
    """Price clusters of a 1-D Gaussian mixture: (modes, boundaries), both on the mixture's
    scale and ascending.

    Components are taken in order of their means; a cluster is a run of neighbouring
    components. Two neighbouring clusters are cut where their weighted densities cross (the
    point where a line becomes more likely to come from the next cluster): bracketed on a
    fine grid between their modes (the grid holds every component's mean exactly), then
    found by bisection on the densities themselves, so a narrow component (a single price)
    is never cut through. A cluster must be the more likely of the two at its own mode;
    where that fails (a wide, flat component under a narrow one, which is the argmax nowhere
    near its mean) the pair is merged, weakest pair first, and the merged cluster's density
    is the sum of its components'. So clusters are contiguous intervals, ordered, and each
    mode lies inside its own interval.
    """
    comps = sorted((float(m), max(float(s), 1e-9), float(w)) for m, s, w in components if w > 0)
    if not comps:
        return [], []
    lo = min(m - 6 * s for m, s, _ in comps)
    hi = max(m + 6 * s for m, s, _ in comps)
    grid = np.unique(np.concatenate([np.linspace(lo, hi, grid_points), [m for m, _, _ in comps]]))
    groups = [[i] for i in range(len(comps))]

    def members(group: list[int]) -> list[tuple[float, float, float]]:
        return [comps[i] for i in group]

    while True:
        dens = [_log_weighted_density(grid, members(g)) for g in groups]
        modes = [int(np.argmax(d)) for d in dens]
        worst, worst_margin = None, math.inf
        for j in range(len(groups) - 1):
            diff = dens[j] - dens[j + 1]
            margin = min(diff[modes[j]], -diff[modes[j + 1]])
            if margin <= 0 and margin < worst_margin:
                worst, worst_margin = j, margin
        if worst is None:
            break
        groups[worst : worst + 2] = [groups[worst] + groups[worst + 1]]

    # a lone component's mode is its mean (on the grid, exactly); a merged cluster's is the
    # highest grid point of its summed density
    centres = [float(grid[m]) for m in modes]
    boundaries: list[float] = []
    for j in range(len(groups) - 1):
        left, right = members(groups[j]), members(groups[j + 1])
        a, b = modes[j], modes[j + 1]
        diff = dens[j][a : b + 1] - dens[j + 1][a : b + 1]
        i = int(np.argmax(diff <= 0))  # first grid point where the next cluster wins (>= 1)
        x0, x1 = float(grid[a + i - 1]), float(grid[a + i])
        for _ in range(100):  # bisection: left cluster wins at x0, the right one at x1
            mid = 0.5 * (x0 + x1)
            if mid in (x0, x1):
                break
            at_mid = np.array([mid])
            if _log_weighted_density(at_mid, left)[0] > _log_weighted_density(at_mid, right)[0]:
                x0 = mid
            else:
                x1 = mid
        boundaries.append(x1)
    return centres, boundaries


def fit_log_mixture(values: np.ndarray, settings: ClusterSettings) -> MixtureFit | None:
    """Fit Gaussian mixtures with k = 1..max_components to `values` (log1p amounts) and keep
    the k with the lowest BIC (ties: the smaller k); None without values.

    Expectation-maximisation in numpy (`_em_gaussian_mixture`: `n_init` deterministic starts,
    the same values give the same fit). k never exceeds the number of distinct values. Fewer
    than `min_lines` values, or one distinct value, fit nothing: one cluster at their mean.
    """
    x = np.sort(np.asarray(values, dtype=float))
    n = len(x)
    if n == 0:
        return None
    distinct = len(np.unique(x))
    if n < settings.min_lines or distinct == 1:
        mean, sd = float(x.mean()), float(x.std())
        return MixtureFit("single_group", n, {}, ((mean, sd, 1.0),), (mean,), ())

    bic: dict[int, float] = {}
    best: tuple[int, tuple[tuple[float, float, float], ...]] | None = None
    for k in range(1, min(settings.max_components, distinct) + 1):
        fitted, log_likelihood = _em_gaussian_mixture(x, k, settings.n_init, settings.random_state)
        # 3k - 1 free parameters: k means, k variances, k - 1 weights (as scikit-learn counts)
        bic[k] = float(-2 * log_likelihood + (3 * k - 1) * math.log(n))
        if best is None or bic[k] < bic[best[0]]:
            best = (k, fitted)
    assert best is not None
    components = best[1]
    centres, boundaries = mixture_clusters(components)
    return MixtureFit("gaussian_mixture", n, bic, components, tuple(centres), tuple(boundaries))


#: Added to every variance (as scikit-learn's `reg_covar`): a component on one exact price
#: point keeps a finite density.
VARIANCE_FLOOR = 1e-6


def _em_gaussian_mixture(
    x: np.ndarray, k: int, n_init: int, seed: int, max_iter: int = 1000, tol: float = 1e-5
) -> tuple[tuple[tuple[float, float, float], ...], float]:
    """A 1-D Gaussian mixture of `k` components fitted to `x` by expectation-maximisation;
    returns ((mean, standard deviation, weight), ...) ordered by mean, and the log-likelihood.

    The textbook EM (Dempster, Laird and Rubin 1977; Bishop 2006, 9.2), as scikit-learn's
    `GaussianMixture` runs it for one dimension, written out in numpy: importing scikit-learn
    cost 1.5-2.3 s on every run, more than the whole fit. Amounts sit on a few exact prices,
    so the EM runs over the distinct values weighted by their counts (the same likelihood,
    far fewer rows). The best of `n_init` starts is kept: the first from the quantiles of
    `x`, the others from `k` values drawn with a fixed seed, so the same values always give
    the same fit. Each start is refined by k-means first (as scikit-learn initialises),
    which brings the EM close to its optimum in few iterations. Stops when the
    log-likelihood per value improves by less than `tol`.
    """
    values, counts = np.unique(np.asarray(x, dtype=float), return_counts=True)
    counts = counts.astype(float)
    n = float(counts.sum())
    column = values[:, None]
    best: tuple[float, np.ndarray, np.ndarray, np.ndarray] | None = None
    for start in range(max(1, n_init)):
        if start == 0:
            seeds = np.quantile(x, (np.arange(k) + 0.5) / k)
        else:
            rng = np.random.default_rng(seed + start)
            seeds = np.sort(rng.choice(values, size=k, replace=len(values) < k))
        means, variances, weights = _kmeans_start(values, counts, seeds)
        previous = -np.inf
        log_likelihood = -np.inf
        for _ in range(max_iter):
            # E step (in logs): each value's responsibility of each component
            log_density = -0.5 * (
                np.log(2 * np.pi * variances) + (column - means) ** 2 / variances
            ) + np.log(weights)
            top = log_density.max(axis=1, keepdims=True)
            log_total = top[:, 0] + np.log(np.exp(log_density - top).sum(axis=1))
            log_likelihood = float(counts @ log_total)
            responsibility = np.exp(log_density - log_total[:, None]) * counts[:, None]
            # M step
            mass = responsibility.sum(axis=0) + 10 * np.finfo(float).eps
            weights = mass / n
            means = (responsibility * column).sum(axis=0) / mass
            spread = (responsibility * (column - means) ** 2).sum(axis=0)
            variances = spread / mass + VARIANCE_FLOOR
            if log_likelihood - previous < tol * n:
                break
            previous = log_likelihood
        if best is None or log_likelihood > best[0]:
            best = (log_likelihood, means, variances, weights)
    assert best is not None
    log_likelihood, means, variances, weights = best
    components = tuple(
        sorted(
            (float(m), float(math.sqrt(v)), float(w))
            for m, v, w in zip(means, variances, weights, strict=True)
        )
    )
    return components, log_likelihood


def _kmeans_start(
    values: np.ndarray, counts: np.ndarray, seeds: np.ndarray, iterations: int = 30
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Means, variances and weights of a 1-D weighted k-means (Lloyd) from `seeds`: the EM's
    starting point. `values` are sorted, so each group is a contiguous run between the
    midpoints of neighbouring means."""
    means = np.sort(np.asarray(seeds, dtype=float))
    k = len(means)
    for _ in range(iterations):
        group = np.searchsorted((means[:-1] + means[1:]) / 2, values)
        mass = np.bincount(group, weights=counts, minlength=k)
        totals = np.bincount(group, weights=counts * values, minlength=k)
        updated = np.where(mass > 0, totals / np.maximum(mass, 1e-300), means)
        if np.allclose(updated, means):
            break
        means = np.sort(updated)
    group = np.searchsorted((means[:-1] + means[1:]) / 2, values)
    mass = np.bincount(group, weights=counts, minlength=k)
    squares = np.bincount(group, weights=counts * (values - means[group]) ** 2, minlength=k)
    centre = np.average(values, weights=counts)
    overall = float(np.average((values - centre) ** 2, weights=counts))
    variances = np.where(mass > 1, squares / np.maximum(mass, 1.0), overall) + VARIANCE_FLOOR
    weights = np.maximum(mass, 1.0)
    return means, variances, weights / weights.sum()


def count_cluster_lines(
    conn: duckdb.DuckDBPyConnection, boundaries: Sequence[float]
) -> tuple[int, list[int]]:
    """(all lines, lines per cluster) counted over every line of staging.sales_lines in one
    scan: cluster j holds the lines with boundaries[j-1] <= log1p(amount) < boundaries[j]."""
    counts = ", ".join(["count(*)", *("count_if(v < ?)" for _ in boundaries)])
    sql = load_sql("behaviour/cluster_line_counts", cluster_counts=counts)
    total, *cumulative = (int(c) for c in conn.execute(sql, list(boundaries)).fetchall()[0])
    edges = [0, *cumulative, total]
    return total, [b - a for a, b in itertools.pairwise(edges)]


def distribution_rows(
    summary: dict[str, object],
    log_hist: pd.DataFrame,
    raw_hist: pd.DataFrame,
    log_lower: float,
    log_width: float,
    raw_width: float,
    bins: int,
    clusters: Sequence[tuple[float, float, float, int]] = (),
) -> pd.DataFrame:
    """The purchase_distribution rows from the SQL results and the price clusters (all small).

    `clusters` are (log1p mode, log1p lower bound, log1p upper bound, lines), ascending.
    """
    total = int(summary["lines"] or 0)
    rows: list[dict[str, object]] = []

    def add(
        measure: str,
        name: str,
        value: float | None = None,
        log1p_value: float | None = None,
        lower: float | None = None,
        upper: float | None = None,
        lines: int | None = None,
        share: float | None = None,
    ) -> None:
        rows.append(
            {
                "measure": measure,
                "name": name,
                "value": value,
                "log1p_value": log1p_value,
                "lower": lower,
                "upper": upper,
                "lines": lines,
                "share": share,
            }
        )

    add("summary", "lines", float(total), lines=total, share=1.0 if total else None)
    for key in ("min", "max", "mean", "std"):
        value = summary.get(key)
        log_value = math.log1p(value) if key != "std" and value is not None else None
        add("summary", key, _f(value), _f(log_value))
    add("summary", "log1p_mean", _f(summary.get("log_mean")), _f(summary.get("log_mean")))
    quantiles = summary.get("quantiles") or []
    for level, value in zip(QUANTILE_LEVELS, quantiles, strict=False):
        add(
            "quantile",
            f"p{round(level * 100):02d}",
            _f(value),
            _f(math.log1p(float(value))) if value is not None else None,
        )
    add("skewness", "raw", _f(summary.get("skew_raw")))
    add("skewness", "log1p", _f(summary.get("skew_log1p")))

    counts = np.zeros(bins, dtype=float)
    for b, n in zip(log_hist["bin"], log_hist["lines"], strict=True):
        counts[int(b)] += int(n)
    for k, (centre, lo, hi, in_cluster) in enumerate(clusters):
        add(
            "cluster",
            f"cluster_{k + 1}",
            math.expm1(centre),
            centre,
            lower=math.expm1(lo),
            upper=math.expm1(hi),
            lines=int(in_cluster),
            share=in_cluster / total if total else None,
        )

    for b in range(bins):
        lo = log_lower + b * log_width
        n = int(counts[b])
        add(
            "histogram_log1p",
            f"bin_{b:03d}",
            float(n),
            lo + log_width / 2,
            lower=math.expm1(lo),
            upper=math.expm1(lo + log_width),
            lines=n,
            share=n / total if total else None,
        )

    raw_counts = dict(zip(raw_hist["bin"].astype(int), raw_hist["lines"].astype(int), strict=True))
    n_raw_bins = max((b for b in raw_counts if b >= 0), default=-1) + 1
    for b in range(max(n_raw_bins, 0)):
        n = raw_counts.get(b, 0)
        lo = b * raw_width
        add(
            "histogram_raw",
            f"bin_{b:03d}",
            float(n),
            math.log1p(lo + raw_width / 2),
            lower=lo,
            upper=lo + raw_width,
            lines=n,
            share=n / total if total else None,
        )
    overflow = raw_counts.get(-1, 0)
    add(
        "histogram_raw",
        "above_p99",
        float(overflow),
        None,
        lower=_f((summary.get("quantiles") or [None] * 9)[-1]),
        upper=_f(summary.get("max")),
        lines=overflow,
        share=overflow / total if total else None,
    )
    return pd.DataFrame(rows, columns=PURCHASE_DISTRIBUTION.column_names)


def purchase_distribution_with_fit(
    conn: duckdb.DuckDBPyConnection, settings: ClusterSettings, raw_bins: int = 50
) -> tuple[pd.DataFrame, MixtureFit | None]:
    """The purchase_distribution rows and the mixture behind its price clusters.

    Everything over all lines runs in DuckDB: the summary, both histograms, the sample of at
    most `settings.sample_lines` log1p amounts the mixture is fitted on, and the exact count
    of lines between the cluster boundaries.
    """
    summary_frame = conn.execute(DISTRIBUTION_SUMMARY_SQL).df()
    summary = summary_frame.iloc[0].to_dict()
    lines = int(summary["lines"])
    summary["quantiles"] = amount_quantiles(conn) if lines else []
    log_lower = float(summary["log_min"]) if lines else 0.0
    log_max = float(summary["log_max"]) if lines else 1.0
    log_upper = log_max if log_max > log_lower else log_lower + 1.0  # all amounts equal
    log_width = (log_upper - log_lower) / settings.bins
    log_hist = conn.execute(LOG_HISTOGRAM_SQL, [log_lower, log_width, settings.bins]).df()
    p99 = float(summary["quantiles"][-1]) if lines else 1.0
    raw_upper = p99 if p99 > 0 else 1.0
    raw_width = raw_upper / raw_bins
    raw_hist = conn.execute(RAW_HISTOGRAM_SQL, [raw_upper, raw_width, raw_bins]).df()

    fit = fit_log_mixture(sample_log_amounts(conn, settings.sample_lines), settings)
    clusters: list[tuple[float, float, float, int]] = []
    if fit is not None:
        _, per_cluster = count_cluster_lines(conn, fit.boundaries)
        cuts = [log_lower, *fit.boundaries, log_max]
        clusters = [
            (centre, lo, hi, n)
            for centre, lo, hi, n in zip(fit.centres, cuts[:-1], cuts[1:], per_cluster, strict=True)
        ]
    rows = distribution_rows(
        summary, log_hist, raw_hist, log_lower, log_width, raw_width, settings.bins, clusters
    )
    return rows, fit


def _f(value: object) -> float | None:
    if value is None:
        return None
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return None if math.isnan(out) else out
