"""Segment x product preference: which products and categories each RFM segment buys.

All tables are DuckDB SQL over `marts.segment_product_purchases`, the window's sale lines with
each customer's segment (itself built from `staging.sales_lines` and
`marts.rfm_customer_segments`); pandas only ever holds the small results.

Definitions (docs/rfm_and_preference.md explains them for analysts):

- **spend share** of category c in segment s = revenue(s, c) / revenue(s);
  **overall share** = revenue(c) / revenue(all customers).
- **preference index** = spend share / overall share (1 = buys c like everyone else).
- The preference table leaves out `Unknown` (lines without a category): every revenue above
  is over lines with a category, so a segment with more uncategorised spend than others does
  not see all its real categories' indices pulled down. Its uncategorised spend is reported
  apart (`segment_uncategorised_revenue`). The other tables keep `Unknown` as a category.
- **shrunk index**: the segment's category mix is given a Dirichlet prior centred on the
  overall mix, worth `k` of the segment's own customers (k = `prior_strength`, in
  "pseudo-customers"; prior spend K = k * revenue(s) / customers(s)). Its posterior mean is

      shrunk_share = (revenue(s, c) + K * overall_share(c)) / (revenue(s) + K)
                   = w * spend_share + (1 - w) * overall_share(c),  w = n / (n + k)
      shrunk_index = shrunk_share / overall_share(c)

  so a segment of few customers is pulled toward 1 however much they spend, and a large one
  barely moves. Because the prior shares sum to 1, the shrunk shares of a segment still sum to
  1. A segment without spend on lines with a category has the prior's index, 1.
- **customer penetration** = customers of s who bought c / customers of s; the
  **penetration index** divides it by the same share over all customers.
- **low support**: fewer than `min_support_customers` of the segment's customers bought c.
- **premium product**: its typical unit price (median over its sale lines in the window) is
  strictly above the `1 - premium_top_share` quantile (linear interpolation) of the typical
  prices of the products in its category; **premium share** = spend on premium products /
  all spend.
- **AOV** = revenue / distinct orders; **category diversity** = distinct categories per
  customer, averaged over the segment's customers; **days between orders** = per customer
  with >= 2 orders, the mean gap between consecutive order dates, which equals
  (last order date - first order date) / (orders - 1); averaged over those customers.
- **Top products**: ranked by revenue (descending), ties broken by product_id (ascending).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date

import duckdb

from segment_pipeline.logic.memory import (
    PAIR_COUNT_BYTES_PER_ROW,
    create_by_customer_buckets,
    memory_limit_bytes,
)

# Importing the modules that declare the tables and views these SQL files read registers
# the names their placeholders resolve against (segment_pipeline.sql_files).
from segment_pipeline.logic.rfm import RFM_CUSTOMER_SEGMENTS  # noqa: F401
from segment_pipeline.logic.staging import PRODUCT_LINES_VIEW  # noqa: F401
from segment_pipeline.sql_files import BUCKET_OF, load_sql
from segment_pipeline.tables import (
    Column,
    TableDef,
    ensure_tables,
    replace_rows,
    row_count,
    scalar,
)

CHAMPIONS = "Champions"
NEW_CUSTOMERS = "New Customers"
#: The category of lines without one (staging); left out of the preference index.
UNKNOWN_CATEGORY = "Unknown"

# --------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------

SEGMENT_PRODUCT_PURCHASES = TableDef(
    schema="marts",
    name="segment_product_purchases",
    description="The main analysis table: every staged sale line in the RFM window with its "
    "customer's segment and its product's premium flag.",
    columns=(
        Column(
            "line_id", "VARCHAR", "Sale line key (staging.transactions.line_id)", nullable=False
        ),
        Column("order_id", "VARCHAR", "Order id", nullable=False),
        Column("customer_id", "VARCHAR", "Customer id", nullable=False),
        Column("order_ts", "TIMESTAMP", "Order timestamp", nullable=False),
        Column("order_date", "DATE", "Order date", nullable=False),
        Column("segment", "VARCHAR", "The customer's RFM segment", nullable=False),
        Column("segment_order", "INTEGER", "Display position of the segment", nullable=False),
        Column("product_id", "VARCHAR", "Product id", nullable=False),
        Column("product_name", "VARCHAR", "Product name", nullable=False),
        Column("category", "VARCHAR", "Product category", nullable=False),
        Column("quantity", "BIGINT", "Units", nullable=False),
        Column("unit_price", "DECIMAL(18,4)", "Price per unit", nullable=False),
        Column("amount", "DECIMAL(18,4)", "Line revenue = quantity * unit_price", nullable=False),
        Column(
            "typical_unit_price",
            "DECIMAL(18,4)",
            "The product's median unit price over its lines in the window",
        ),
        Column(
            "is_premium",
            "BOOLEAN",
            "Typical price above the category's premium quantile (premium product)",
            nullable=False,
        ),
    ),
    primary_key=("line_id",),
)

SEGMENT_PRODUCT_SUMMARY = TableDef(
    schema="marts",
    name="segment_product_summary",
    description="Segment x product and segment x category in one table (column `level`): "
    "lines, orders, customers, units, revenue and the share of the segment's revenue.",
    columns=(
        Column("level", "VARCHAR", "'product' or 'category'", nullable=False),
        Column("segment_order", "INTEGER", "Display position of the segment", nullable=False),
        Column("segment", "VARCHAR", "RFM segment", nullable=False),
        Column(
            "item_id", "VARCHAR", "product_id (level product) or the category name", nullable=False
        ),
        Column("item_name", "VARCHAR", "Product name or category name", nullable=False),
        Column("category", "VARCHAR", "Category of the item", nullable=False),
        Column("lines", "BIGINT", "Sale lines", nullable=False),
        Column("orders", "BIGINT", "Distinct orders", nullable=False),
        Column("customers", "BIGINT", "Distinct customers", nullable=False),
        Column("quantity", "BIGINT", "Units", nullable=False),
        Column("revenue", "DOUBLE", "Revenue", nullable=False),
        Column(
            "revenue_share",
            "DOUBLE",
            "revenue / the segment's revenue (sums to 1 per segment and level)",
        ),
        Column(
            "rank_in_segment",
            "BIGINT",
            "Rank by revenue within segment and level (ties: item_id ascending)",
            nullable=False,
        ),
        Column("typical_unit_price", "DOUBLE", "Median unit price (products only)"),
        Column("is_premium", "BOOLEAN", "Premium product (products only)"),
    ),
    primary_key=("level", "segment", "item_id"),
)

#: What segment_product_summary is read from, kept by segment_product_purchases' write
#: (`write_segment_product_purchases`: a new day's changes in the same transaction as its
#: lines, a whole write right after them): the lines' sums per summary cell at its finest
#: grain. Not an asset: the purchases asset's state, like customer_last_moves_state.
SEGMENT_PRODUCT_SUMMARY_CELLS = TableDef(
    schema="marts",
    name="segment_product_summary_cells",
    description="segment_product_purchases summed per segment, product, category, product "
    "name, typical unit price and premium flag (kept with the purchases; read by "
    "segment_product_summary).",
    columns=(
        Column("segment", "VARCHAR", "RFM segment", nullable=False),
        Column("segment_order", "INTEGER", "Display position of the segment", nullable=False),
        Column("product_id", "VARCHAR", "Product id", nullable=False),
        Column("category", "VARCHAR", "Category of the lines", nullable=False),
        Column("product_name", "VARCHAR", "Product name of the lines", nullable=False),
        Column("typical_unit_price", "DECIMAL(18,4)", "The lines' typical unit price"),
        Column("is_premium", "BOOLEAN", "The lines' premium flag", nullable=False),
        Column("lines", "BIGINT", "Sale lines", nullable=False),
        Column("quantity", "BIGINT", "Units", nullable=False),
        Column("revenue", "DECIMAL(38,4)", "Revenue (exact)", nullable=False),
    ),
)

#: The distinct orders and customers of segment_product_summary's cells, kept likewise.
SEGMENT_PRODUCT_SUMMARY_REACH = TableDef(
    schema="marts",
    name="segment_product_summary_reach",
    description="Distinct orders and customers of segment_product_purchases per segment and "
    "product or category (kept with the purchases; read by segment_product_summary).",
    columns=(
        Column("level", "VARCHAR", "'product' or 'category'", nullable=False),
        Column("segment", "VARCHAR", "RFM segment", nullable=False),
        Column("item_id", "VARCHAR", "product_id or the category", nullable=False),
        Column("orders", "BIGINT", "Distinct orders with a line of the cell", nullable=False),
        Column("customers", "BIGINT", "Distinct customers with a line of the cell", nullable=False),
    ),
    primary_key=("level", "segment", "item_id"),
)

SEGMENT_CATEGORY_PREFERENCE = TableDef(
    schema="marts",
    name="segment_category_preference",
    description="Segment x category preference: spend share vs overall share (raw index), "
    "the shrunk index (empirical Bayes toward 1), the customer-penetration index, support and "
    "a low-support flag. Every segment with customers x every category except Unknown (lines "
    "without a category): shares are of the spend on lines with a category, and each "
    "segment's uncategorised spend is given apart.",
    columns=(
        Column("segment_order", "INTEGER", "Display position of the segment", nullable=False),
        Column("segment", "VARCHAR", "RFM segment", nullable=False),
        Column("category", "VARCHAR", "Category", nullable=False),
        Column(
            "customers",
            "BIGINT",
            "Customers of the segment who bought the category",
            nullable=False,
        ),
        Column("orders", "BIGINT", "Orders of the segment with the category", nullable=False),
        Column("lines", "BIGINT", "Sale lines", nullable=False),
        Column("revenue", "DOUBLE", "The segment's spend in the category", nullable=False),
        Column("segment_customers", "BIGINT", "Customers in the segment", nullable=False),
        Column(
            "segment_revenue",
            "DOUBLE",
            "The segment's spend on lines with a category (the shares' denominator)",
            nullable=False,
        ),
        Column(
            "segment_uncategorised_revenue",
            "DOUBLE",
            "The segment's spend on lines without a category (Unknown), left out of every share",
            nullable=False,
        ),
        Column("spend_share", "DOUBLE", "revenue / segment_revenue"),
        Column(
            "overall_share", "DOUBLE", "The category's share of all spend on lines with a category"
        ),
        Column("preference_index", "DOUBLE", "spend_share / overall_share (1 = average)"),
        Column(
            "prior_spend",
            "DOUBLE",
            "K = prior_strength x the segment's mean spend per customer on lines with a "
            "category (the prior's weight: prior_strength of its own customers)",
        ),
        Column("shrunk_share", "DOUBLE", "(revenue + K * overall_share) / (segment_revenue + K)"),
        Column("shrunk_index", "DOUBLE", "shrunk_share / overall_share"),
        Column("penetration", "DOUBLE", "customers / segment_customers"),
        Column("overall_penetration", "DOUBLE", "Share of all customers who bought the category"),
        Column("penetration_index", "DOUBLE", "penetration / overall_penetration"),
        Column("low_support", "BOOLEAN", "customers < min_support_customers", nullable=False),
    ),
    primary_key=("segment", "category"),
)

SEGMENT_TOP_PRODUCTS = TableDef(
    schema="marts",
    name="segment_top_products",
    description="Top N products per segment by revenue (ties: product_id ascending).",
    columns=(
        Column("segment_order", "INTEGER", "Display position of the segment", nullable=False),
        Column("segment", "VARCHAR", "RFM segment", nullable=False),
        Column("rank", "BIGINT", "1 = most revenue in the segment", nullable=False),
        Column("product_id", "VARCHAR", "Product id", nullable=False),
        Column("product_name", "VARCHAR", "Product name", nullable=False),
        Column("category", "VARCHAR", "Category", nullable=False),
        Column("revenue", "DOUBLE", "The segment's revenue from the product", nullable=False),
        Column("revenue_share", "DOUBLE", "Share of the segment's revenue"),
        Column("customers", "BIGINT", "Customers of the segment who bought it", nullable=False),
        Column("orders", "BIGINT", "Orders with it", nullable=False),
        Column("quantity", "BIGINT", "Units", nullable=False),
        Column("is_premium", "BOOLEAN", "Premium product"),
    ),
    primary_key=("segment", "rank"),
)

CHAMPIONS_VS_NEW_PRODUCTS = TableDef(
    schema="marts",
    name="champions_vs_new_products",
    description="Champions vs New Customers side by side, per product and per category (column "
    "`level`): each group's revenue, share of the group's revenue, and rank.",
    columns=(
        Column("level", "VARCHAR", "'product' or 'category'", nullable=False),
        Column("item_id", "VARCHAR", "product_id or category name", nullable=False),
        Column("item_name", "VARCHAR", "Product or category name", nullable=False),
        Column("category", "VARCHAR", "Category", nullable=False),
        Column(
            "champions_revenue", "DOUBLE", "Champions' revenue (0 when not bought)", nullable=False
        ),
        Column("champions_share", "DOUBLE", "Share of the Champions' revenue", nullable=False),
        Column("champions_rank", "BIGINT", "Rank among Champions (NULL when not bought)"),
        Column("champions_customers", "BIGINT", "Champions who bought it", nullable=False),
        Column(
            "new_revenue", "DOUBLE", "New Customers' revenue (0 when not bought)", nullable=False
        ),
        Column("new_share", "DOUBLE", "Share of the New Customers' revenue", nullable=False),
        Column("new_rank", "BIGINT", "Rank among New Customers (NULL when not bought)"),
        Column("new_customers", "BIGINT", "New Customers who bought it", nullable=False),
        Column("share_difference", "DOUBLE", "champions_share - new_share", nullable=False),
    ),
    primary_key=("level", "item_id"),
)

SEGMENT_PURCHASE_PATTERNS = TableDef(
    schema="marts",
    name="segment_purchase_patterns",
    description="How each segment buys: orders per customer, AOV, items per order, category "
    "diversity, premium share and days between orders.",
    columns=(
        Column("segment_order", "INTEGER", "Display position of the segment", nullable=False),
        Column("segment", "VARCHAR", "RFM segment", nullable=False),
        Column("customers", "BIGINT", "Customers", nullable=False),
        Column("orders", "BIGINT", "Distinct orders", nullable=False),
        Column("lines", "BIGINT", "Sale lines", nullable=False),
        Column("units", "BIGINT", "Units bought", nullable=False),
        Column("revenue", "DOUBLE", "Revenue", nullable=False),
        Column("orders_per_customer", "DOUBLE", "orders / customers (purchase frequency)"),
        Column("revenue_per_customer", "DOUBLE", "revenue / customers"),
        Column("aov", "DOUBLE", "Average order value = revenue / orders"),
        Column("items_per_order", "DOUBLE", "units / orders"),
        Column("lines_per_order", "DOUBLE", "Distinct sale lines per order"),
        Column(
            "category_diversity", "DOUBLE", "Mean number of distinct categories bought per customer"
        ),
        Column("premium_share", "DOUBLE", "Share of revenue spent on premium products"),
        Column("repeat_customers", "BIGINT", "Customers with >= 2 orders", nullable=False),
        Column(
            "mean_days_between_orders",
            "DOUBLE",
            "Mean gap between consecutive order dates, over customers with >= 2 orders",
        ),
    ),
    primary_key=("segment",),
)

# --------------------------------------------------------------------------------------------
# SQL
# --------------------------------------------------------------------------------------------

#: Temp tables of a write of segment_product_purchases (on the run's shared connection:
#: dropped when the write ends): the products' typical prices and premium flags, and what an
#: incremental write found changed.
PURCHASE_PRICES_TEMP = "_purchase_prices"
CHANGED_DAYS_TEMP = "_purchases_changed_days"
CHANGED_CUSTOMERS_TEMP = "_purchases_changed_customers"
CHANGED_PRODUCTS_TEMP = "_purchases_changed_products"

#: The lines an incremental write deletes and inserts again, on the stored rows and on the
#: staged lines alike (unqualified columns both have): those of a changed day, of a customer
#: whose segment changed, and of a product (in a category) whose price or flag changed.
CHANGED_PURCHASE_LINES = (
    f"(CAST(order_ts AS DATE) IN (SELECT order_date FROM {CHANGED_DAYS_TEMP})"
    f" OR customer_id IN (SELECT customer_id FROM {CHANGED_CUSTOMERS_TEMP})"
    " OR (product_id, category) IN"
    f" (SELECT (product_id, category) FROM {CHANGED_PRODUCTS_TEMP}))"
)

#: Parameters: $window_start, $window_end (from the RFM table's window) and
#: $premium_quantile (= 1 - premium_top_share).
PURCHASE_PRICES_SQL = load_sql("preference/purchase_prices")
#: Parameters: $window_start, $window_end; reads PURCHASE_PRICES_TEMP.
SEGMENT_PRODUCT_PURCHASES_SQL = load_sql(
    "preference/segment_product_purchases", prices=PURCHASE_PRICES_TEMP, changed_only=""
)
#: The same rows, only the changed lines' (CHANGED_PURCHASE_LINES).
CHANGED_PRODUCT_PURCHASES_SQL = load_sql(
    "preference/segment_product_purchases",
    prices=PURCHASE_PRICES_TEMP,
    changed_only=f"AND {CHANGED_PURCHASE_LINES}",
)
#: Parameters: $window_start, $window_end.
PURCHASES_CHANGED_DAYS_SQL = load_sql("preference/purchases_changed_days")
PURCHASES_CHANGED_CUSTOMERS_SQL = load_sql("preference/purchases_changed_customers")
PURCHASES_CHANGED_PRODUCTS_SQL = load_sql(
    "preference/purchases_changed_products", prices=PURCHASE_PRICES_TEMP
)

#: Temp tables of an incremental write that keeps the summary's cells and reach: the new
#: lines before they are inserted, the customers and orders with a changed line and every
#: line of theirs before and after the write, the cells of the changed lines (new ones +1,
#: deleted ones -1), the affected reach before and after.
NEW_LINES_TEMP = "_purchases_new_lines"
AFFECTED_CUSTOMERS_TEMP = "_purchases_affected_customers"
AFFECTED_ORDERS_TEMP = "_purchases_affected_orders"
AFFECTED_BEFORE_TEMP = "_purchases_affected_before"
AFFECTED_AFTER_TEMP = "_purchases_affected_after"
CELLS_DELTA_TEMP = "_summary_cells_delta"
REACH_BEFORE_TEMP = "_summary_reach_before"
REACH_AFTER_TEMP = "_summary_reach_after"
MERGED_TEMP = "_summary_merged"

_PURCHASES = SEGMENT_PRODUCT_PURCHASES.fqn


def summary_cells_sql(lines: str, weight: int = 1) -> str:
    """summary_cells.sql over `lines` (a table, or a parenthesised SELECT), each counted
    `weight` times (1, or -1 for lines deleted)."""
    return load_sql("preference/summary_cells", lines=lines, weight=str(int(weight)))


#: The four distinct counts of the reach: (placeholder of item_reach.sql, item, key).
_REACH_COUNTS = (
    ("product_order_counts", "product_id", "order_id"),
    ("product_customer_counts", "product_id", "customer_id"),
    ("category_order_counts", "category", "order_id"),
    ("category_customer_counts", "category", "customer_id"),
)


def reach_counts_sql(lines: str, item: str, key: str, *, one_bucket: bool = False) -> str:
    """reach_counts.sql: distinct `key`s per segment and `item` of `lines`; `one_bucket`: of
    one bucket of the keys, `hash(key)` BUCKET_OF (the parameters of
    `create_by_customer_buckets`, which runs a query per bucket of customers, or here of
    orders alike)."""
    bucket_filter = f"WHERE hash({key}) {BUCKET_OF}"
    return load_sql(
        "preference/reach_counts",
        reach_lines=lines,
        reach_item=item,
        reach_key=key,
        reach_bucket_filter=bucket_filter if one_bucket else "",
    )


def item_reach_sql(order_lines: str, customer_lines: str) -> str:
    """item_reach.sql: distinct orders of `order_lines` and customers of `customer_lines`."""
    return load_sql(
        "preference/item_reach",
        **{
            name: reach_counts_sql(order_lines if key == "order_id" else customer_lines, item, key)
            for name, item, key in _REACH_COUNTS
        },
    )


#: The summary's inputs computed whole from the stored lines. Each distinct count of the
#: reach is taken alone into its temp table (REACH_COUNT_TEMPS), whole or in buckets of its
#: keys, then summed per cell (SUMMARY_REACH_SQL): every order and every customer is in
#: exactly one bucket, so the buckets' counts add up to the whole's.
SUMMARY_CELLS_SQL = summary_cells_sql(_PURCHASES)
REACH_COUNT_TEMPS = {name: f"_summary_{name}" for name, _item, _key in _REACH_COUNTS}
SUMMARY_REACH_SQL = load_sql(
    "preference/item_reach",
    **{
        name: f"SELECT segment, item_id, CAST(sum(n) AS BIGINT) AS n FROM {temp} GROUP BY ALL"
        for name, temp in REACH_COUNT_TEMPS.items()
    },
)
#: The affected customers and orders (those with a changed line), every stored line of
#: theirs, and those lines after the write.
AFFECTED_KEYS_SQL = {
    key: load_sql(
        "preference/affected_keys",
        key=key,
        changed=CHANGED_PURCHASE_LINES,
        new_lines=NEW_LINES_TEMP,
    )
    for key in ("customer_id", "order_id")
}
AFFECTED_LINES_SQL = load_sql(
    "preference/affected_lines",
    customers=AFFECTED_CUSTOMERS_TEMP,
    orders=AFFECTED_ORDERS_TEMP,
    changed=CHANGED_PURCHASE_LINES,
)
AFFECTED_LINES_AFTER_SQL = load_sql(
    "preference/affected_lines_after", before=AFFECTED_BEFORE_TEMP, new_lines=NEW_LINES_TEMP
)


def affected_reach_sql(lines: str) -> str:
    """item_reach.sql over the affected lines `lines` (AFFECTED_BEFORE_TEMP or _AFTER_TEMP):
    the affected orders' reach over all of their lines, the affected customers' over theirs."""
    return item_reach_sql(
        f"(SELECT * FROM {lines} WHERE of_affected_order)",
        f"(SELECT * FROM {lines} WHERE of_affected_customer)",
    )


MERGE_SUMMARY_CELLS_SQL = load_sql("preference/merge_summary_cells", delta=CELLS_DELTA_TEMP)
MERGE_ITEM_REACH_SQL = load_sql(
    "preference/merge_item_reach", after=REACH_AFTER_TEMP, before=REACH_BEFORE_TEMP
)
#: One row, one column: whether the stored cells and reach describe the stored lines.
SUMMARY_INPUTS_IN_STEP_SQL = load_sql("preference/summary_inputs_in_step")

#: Check: sale lines (and revenue) in the window vs rows of segment_product_purchases.
PURCHASES_MATCH_STAGING_SQL = load_sql("preference/purchases_match_staging")

SEGMENT_PRODUCT_SUMMARY_SQL = load_sql("preference/segment_product_summary")

#: Parameters: $prior_strength (pseudo-customers), $min_support_customers, $unknown_category
#: (UNKNOWN_CATEGORY: its lines take no part in the shares; customers are counted whole).
SEGMENT_CATEGORY_PREFERENCE_SQL = load_sql("preference/segment_category_preference")

#: Parameter: $top_n.
SEGMENT_TOP_PRODUCTS_SQL = load_sql("preference/segment_top_products")

#: Parameters: $group_a (Champions), $group_b (New Customers).
CHAMPIONS_VS_NEW_SQL = load_sql("preference/champions_vs_new")

SEGMENT_PURCHASE_PATTERNS_SQL = load_sql("preference/segment_purchase_patterns")

# Metadata and checks of the preference assets (segment_pipeline.assets.rfm):

#: Premium and all products bought.
PREMIUM_PRODUCTS_SQL = load_sql("preference/premium_products")
#: Segment levels whose revenue shares are more than `?` off 1.
PRODUCT_SUMMARY_SHARES_OFF_SQL = load_sql("preference/product_summary_shares_off")
#: Rows per level (product, category).
PRODUCT_SUMMARY_LEVELS_SQL = load_sql("preference/product_summary_levels")
#: Segments with spend on categorised lines whose spend / shrunk shares are more than the
#: two `?` off 1.
CATEGORY_SHARES_OFF_SQL = load_sql("preference/category_shares_off")
#: The most preferred category of each segment (by shrunk index).
MOST_PREFERRED_CATEGORY_SQL = load_sql("preference/most_preferred_category")
LOW_SUPPORT_CELLS_SQL = load_sql("preference/low_support_cells")
#: The category rows of champions_vs_new_products, by share difference.
CHAMPIONS_VS_NEW_CATEGORIES_SQL = load_sql("preference/champions_vs_new_categories")


# --------------------------------------------------------------------------------------------
# Writing segment_product_purchases
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PurchasesWrite:
    """What :func:`write_segment_product_purchases` did: `mode` is "full" (every line
    written: the table was empty, or too large to rewrite in place, see `reason`),
    "incremental" (only the changed lines rewritten) or "unchanged" (nothing differed);
    `rewritten` rows were inserted. `summary_inputs` says how the summary's cells and reach
    followed: "updated" (from the changed lines), "built whole", "unchanged", or
    "rebuilt whole" when they did not describe the stored lines before the write."""

    mode: str
    rewritten: int
    changed_days: int = 0
    changed_customers: int = 0
    changed_products: int = 0
    reason: str = ""
    summary_inputs: str = field(default="", compare=False)


def build_summary_inputs(conn: duckdb.DuckDBPyConnection, *, buckets: int | None = None) -> None:
    """Replace segment_product_summary's cells and reach with those of every stored purchase
    line (the distinct counts over every line: what the summary itself computed before
    stop 42), both in one transaction of their own.

    The four distinct counts are taken first, outside that transaction, each by a statement
    of its own and in buckets of its keys when the lines would not fit in DuckDB's memory
    limit (`create_by_customer_buckets`, as many as the lines ask for unless `buckets` is
    given). At 100M lines under the 700MB a large warehouse runs with (stop 44), the four in
    one statement ran out of memory, and so did the distinct (segment, product, customer)
    rows alone; in one statement of four buckets they took 80 s a bucket. One bucket up to
    about 28M lines under that limit (every dataset up to 10M lines), 4 at 100M."""
    ensure_tables(conn, (SEGMENT_PRODUCT_SUMMARY_CELLS, SEGMENT_PRODUCT_SUMMARY_REACH))
    try:
        for name, item, key in _REACH_COUNTS:
            create_by_customer_buckets(
                conn,
                REACH_COUNT_TEMPS[name],
                (
                    reach_counts_sql(_PURCHASES, item, key),
                    reach_counts_sql(_PURCHASES, item, key, one_bucket=True),
                ),
                _PURCHASES,
                buckets,
                bytes_per_row=PAIR_COUNT_BYTES_PER_ROW,
            )
        conn.execute("BEGIN TRANSACTION")
        try:
            for table, sql in (
                (SEGMENT_PRODUCT_SUMMARY_CELLS, SUMMARY_CELLS_SQL),
                (SEGMENT_PRODUCT_SUMMARY_REACH, SUMMARY_REACH_SQL),
            ):
                replace_rows(conn, table, sql, in_transaction=False, ensure=False)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    finally:
        for temp in REACH_COUNT_TEMPS.values():
            conn.execute(f"DROP TABLE IF EXISTS {temp}")


def summary_inputs_in_step(conn: duckdb.DuckDBPyConnection) -> bool:
    """Whether the stored cells and reach describe the stored purchase lines (their sums and
    cells agree: SUMMARY_INPUTS_IN_STEP_SQL). Missing tables (a warehouse written by older
    code) are created empty first: then they describe only an empty table."""
    ensure_tables(
        conn,
        (SEGMENT_PRODUCT_PURCHASES, SEGMENT_PRODUCT_SUMMARY_CELLS, SEGMENT_PRODUCT_SUMMARY_REACH),
    )
    return bool(scalar(conn, SUMMARY_INPUTS_IN_STEP_SQL))


#: DuckDB memory a DELETE takes per row of the table when the deleted rows are scattered over
#: it: its version information, 8 bytes per row of every 2048-row vector the delete touches,
#: held until the next checkpoint. Measured on the 100M-line table: deleting the lines of 3%
#: of the customers (3.0M rows of 99.5M, in nearly every vector) took 811 MB.
DELETE_INFO_BYTES_PER_ROW = 8


def max_rows_rewritten_in_place(limit_bytes: int | None) -> int | None:
    """The largest segment_product_purchases that is rewritten in place (its changed lines
    deleted and inserted again) under DuckDB's memory limit `limit_bytes`: a scattered
    delete's version information may take a quarter of the limit, at worst 8 bytes per row.
    About 28M rows under the default 858 MiB (10M lines: 80 MB); a larger table is written
    whole, which needs no version information per row. None: no limit known."""
    if limit_bytes is None or limit_bytes <= 0:
        return None
    return limit_bytes // 4 // DELETE_INFO_BYTES_PER_ROW


def _rewrite_changed_lines(conn: duckdb.DuckDBPyConnection, params: Mapping[str, date]) -> int:
    """Delete the changed lines (CHANGED_PURCHASE_LINES) and insert them again from staging,
    and move the summary's cells and reach by what changed, in one transaction.

    The cells are sums: the new lines' cells are added, the deleted lines' subtracted. The
    reach counts distinct orders and customers, which do not add up over lines; they do over
    orders and customers. An order (customer) without a changed line has the same lines, so
    the same cells, before and after; so the reach moves by the affected orders' (customers')
    counts after the write minus theirs before it, each taken over all of their lines. An order
    id shared by two customers is one order in both counts: exact whatever the data. Returns
    the rows inserted."""
    conn.execute(
        f"CREATE OR REPLACE TEMP TABLE {NEW_LINES_TEMP} AS {CHANGED_PRODUCT_PURCHASES_SQL}",
        dict(params),
    )
    for key, temp in (("customer_id", AFFECTED_CUSTOMERS_TEMP), ("order_id", AFFECTED_ORDERS_TEMP)):
        conn.execute(f"CREATE OR REPLACE TEMP TABLE {temp} AS {AFFECTED_KEYS_SQL[key]}")
    for temp, sql in (
        (AFFECTED_BEFORE_TEMP, AFFECTED_LINES_SQL),
        (AFFECTED_AFTER_TEMP, AFFECTED_LINES_AFTER_SQL),
        (REACH_BEFORE_TEMP, affected_reach_sql(AFFECTED_BEFORE_TEMP)),
        (REACH_AFTER_TEMP, affected_reach_sql(AFFECTED_AFTER_TEMP)),
        (
            CELLS_DELTA_TEMP,
            f"{summary_cells_sql(NEW_LINES_TEMP)} UNION ALL "
            + summary_cells_sql(f"(SELECT * FROM {AFFECTED_BEFORE_TEMP} WHERE is_changed)", -1),
        ),
    ):
        conn.execute(f"CREATE OR REPLACE TEMP TABLE {temp} AS {sql}")
    cols = ", ".join(SEGMENT_PRODUCT_PURCHASES.column_names)
    conn.execute("BEGIN TRANSACTION")
    try:
        conn.execute(f"DELETE FROM {_PURCHASES} WHERE {CHANGED_PURCHASE_LINES}")
        conn.execute(f"INSERT INTO {_PURCHASES} ({cols}) SELECT {cols} FROM {NEW_LINES_TEMP}")
        for table, merge in (
            (SEGMENT_PRODUCT_SUMMARY_CELLS, MERGE_SUMMARY_CELLS_SQL),
            (SEGMENT_PRODUCT_SUMMARY_REACH, MERGE_ITEM_REACH_SQL),
        ):
            # merged first: the merge reads the table it replaces
            conn.execute(f"CREATE OR REPLACE TEMP TABLE {MERGED_TEMP} AS {merge}")
            replace_rows(
                conn, table, f"SELECT * FROM {MERGED_TEMP}", in_transaction=False, ensure=False
            )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return int(scalar(conn, f"SELECT count(*) FROM {NEW_LINES_TEMP}"))


def write_segment_product_purchases(
    conn: duckdb.DuckDBPyConnection,
    window_params: Mapping[str, date],
    premium_quantile: float,
    *,
    max_rows_in_place: int | None = None,
) -> PurchasesWrite:
    """Bring marts.segment_product_purchases to the window's staged lines, today's segments and
    today's typical prices, rewriting only the lines that changed, and segment_product_summary's
    cells and reach (marts.segment_product_summary_cells, _reach) with it.

    The table is one row per sale line of the window (10M rows at 10M lines): rewriting it
    whole was the largest step of a new day (about 9 s at 10M lines). A new day changes few of
    its rows (745k lines, a day added: 1,141 of 39,972 customers changed segment, 36,334 of
    728,322 rows changed, no product's price or flag). So when the table holds rows, the write
    finds the order dates whose lines differ from staging's (count and hash sum per day), the
    customers whose segment differs and the products whose price or flag differs, and deletes
    and inserts again the lines of those only, in one transaction. Every row the table would
    hold rebuilt whole is then either kept (none of its inputs changed) or written again:
    the result equals the whole rebuild (tested on random histories and changes). An empty
    table is written whole, and so is a table of more rows than `max_rows_in_place` (by
    default :func:`max_rows_rewritten_in_place` for the connection's memory limit): DuckDB
    keeps per-row version information for a scattered delete, which at 100M lines ran the
    rewrite out of memory.

    The summary's distinct counts over every line were the largest statement of a new day at
    10M lines (9.5 s): they are kept here instead, moved by the changed lines
    (:func:`_rewrite_changed_lines`), and built whole with a whole write, or whenever they did
    not describe the stored lines (a warehouse written by older code).
    """
    ensure_tables(
        conn,
        (SEGMENT_PRODUCT_PURCHASES, SEGMENT_PRODUCT_SUMMARY_CELLS, SEGMENT_PRODUCT_SUMMARY_REACH),
    )
    params = dict(window_params)
    temps = (
        PURCHASE_PRICES_TEMP,
        CHANGED_DAYS_TEMP,
        CHANGED_CUSTOMERS_TEMP,
        CHANGED_PRODUCTS_TEMP,
        NEW_LINES_TEMP,
        AFFECTED_CUSTOMERS_TEMP,
        AFFECTED_ORDERS_TEMP,
        AFFECTED_BEFORE_TEMP,
        AFFECTED_AFTER_TEMP,
        CELLS_DELTA_TEMP,
        REACH_BEFORE_TEMP,
        REACH_AFTER_TEMP,
        MERGED_TEMP,
    )
    try:
        conn.execute(
            f"CREATE OR REPLACE TEMP TABLE {PURCHASE_PRICES_TEMP} AS {PURCHASE_PRICES_SQL}",
            {**params, "premium_quantile": premium_quantile},
        )
        stored = row_count(conn, SEGMENT_PRODUCT_PURCHASES)
        if max_rows_in_place is None:
            max_rows_in_place = max_rows_rewritten_in_place(memory_limit_bytes(conn))
        reason = ""
        if stored == 0:
            reason = "the table was empty"
        elif max_rows_in_place is not None and stored > max_rows_in_place:
            reason = (
                f"{stored:,} rows: more than the {max_rows_in_place:,} rewritten in place "
                "under DuckDB's memory limit"
            )
        if reason:
            inserted = _write_whole(conn, params)
            return PurchasesWrite("full", inserted, reason=reason, summary_inputs="built whole")
        in_step = summary_inputs_in_step(conn)
        counts = {}
        for name, temp, sql, sql_params in (
            ("changed_days", CHANGED_DAYS_TEMP, PURCHASES_CHANGED_DAYS_SQL, params),
            ("changed_customers", CHANGED_CUSTOMERS_TEMP, PURCHASES_CHANGED_CUSTOMERS_SQL, None),
            ("changed_products", CHANGED_PRODUCTS_TEMP, PURCHASES_CHANGED_PRODUCTS_SQL, None),
        ):
            conn.execute(f"CREATE OR REPLACE TEMP TABLE {temp} AS {sql}", sql_params or [])
            counts[name] = int(scalar(conn, f"SELECT count(*) FROM {temp}"))
        if not any(counts.values()):
            inputs = "unchanged"
            if not in_step:
                build_summary_inputs(conn)
                inputs = "rebuilt whole"
            return PurchasesWrite("unchanged", 0, **counts, summary_inputs=inputs)
        if not in_step:
            inserted = replace_rows(
                conn,
                SEGMENT_PRODUCT_PURCHASES,
                CHANGED_PRODUCT_PURCHASES_SQL,
                params,
                delete_where=CHANGED_PURCHASE_LINES,
                ensure=False,
            )
            build_summary_inputs(conn)
            return PurchasesWrite("incremental", inserted, **counts, summary_inputs="rebuilt whole")
        inserted = _rewrite_changed_lines(conn, params)
        return PurchasesWrite("incremental", inserted, **counts, summary_inputs="updated")
    finally:
        for temp in temps:
            conn.execute(f"DROP TABLE IF EXISTS {temp}")


def _write_whole(conn: duckdb.DuckDBPyConnection, params: Mapping[str, date]) -> int:
    """Every line written, then the summary's cells and reach built from them. Two
    transactions: in one, the groupings would read every line from the transaction's local
    storage (at 10M lines the monthly snapshots ran twice as long on uncommitted rows); if
    the second does not happen, the next write finds the cells out of step and builds them.
    Returns the rows inserted."""
    inserted = replace_rows(
        conn, SEGMENT_PRODUCT_PURCHASES, SEGMENT_PRODUCT_PURCHASES_SQL, params, ensure=False
    )
    build_summary_inputs(conn)
    return inserted
