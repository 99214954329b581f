"""The segment x product preference tables: marts.rfm_customer_segments and staging ->
marts.segment_product_purchases -> the summary, category preference, top products, Champions
vs New Customers and purchase pattern tables. SQL in `segment_pipeline.logic.preference`."""

import dagster as dg
from dagster import AssetExecutionContext

from segment_pipeline.assets.ingest import STAGING_KEYS
from segment_pipeline.assets.rfm.segments import RFM_KEY
from segment_pipeline.assets.rfm.settings import RfmSettings, window_metadata
from segment_pipeline.assets.tables import (
    DRAWN_EARLY_PRIORITY,
    SHARE_TOLERANCE,
    check_spec,
    table_asset,
    table_key,
)
from segment_pipeline.logic import preference as pref
from segment_pipeline.logic.rfm import read_window
from segment_pipeline.logic.staging import ensure_staging_tables
from segment_pipeline.resources import DuckDBWarehouse
from segment_pipeline.tables import preview_markdown, replace_rows, scalar, table_metadata

PURCHASES_KEY = table_key(pref.SEGMENT_PRODUCT_PURCHASES)
PRODUCT_SUMMARY_KEY = table_key(pref.SEGMENT_PRODUCT_SUMMARY)
PREFERENCE_KEY = table_key(pref.SEGMENT_CATEGORY_PREFERENCE)
TOP_PRODUCTS_KEY = table_key(pref.SEGMENT_TOP_PRODUCTS)
CHAMPIONS_VS_NEW_KEY = table_key(pref.CHAMPIONS_VS_NEW_PRODUCTS)
PATTERNS_KEY = table_key(pref.SEGMENT_PURCHASE_PATTERNS)


@table_asset(
    pref.SEGMENT_PRODUCT_PURCHASES,
    group="preference",
    priority=DRAWN_EARLY_PRIORITY,
    deps=[RFM_KEY, *STAGING_KEYS],
    description="The main analysis table: every staged sale line of the RFM window with its "
    "customer's segment and a premium-product flag (typical unit price in the top share of its "
    "category). Built in DuckDB SQL; once it holds rows (up to about 28M under the default "
    "memory limit, larger tables are written whole), a run rewrites only the lines whose day, "
    "customer's segment or product's price changed (metadata write_mode, rows_written). Keeps "
    "segment_product_summary's cells and distinct counts beside it "
    "(marts.segment_product_summary_cells and _reach), moved by the changed lines (metadata "
    "summary_cells_and_reach).",
    checks=[
        check_spec(
            PURCHASES_KEY,
            "lines_match_staging",
            "Exactly the staged sale lines of the window: same row count, the same "
            "line ids (compared by their hash sums), same revenue.",
        ),
    ],
)
def segment_product_purchases(
    context: AssetExecutionContext, warehouse: DuckDBWarehouse, rfm_settings: RfmSettings
) -> dg.MaterializeResult:
    rfm_settings.segment_map()
    with warehouse.connect() as conn:
        ensure_staging_tables(conn)  # the views too, on a warehouse staged by older code
        window = read_window(conn)
        written = pref.write_segment_product_purchases(
            conn, window.range_params(), 1 - rfm_settings.premium_top_share
        )
        match = conn.execute(pref.PURCHASES_MATCH_STAGING_SQL, window.range_params()).df().iloc[0]
        premium = conn.execute(pref.PREMIUM_PRODUCTS_SQL).df()
        metadata = table_metadata(conn, pref.SEGMENT_PRODUCT_PURCHASES, order_by="line_id")
    staged, rows = (int(match[c]) for c in ("staged_lines", "purchase_rows"))
    same_ids = bool(match["same_line_ids"])
    passed = staged == rows and same_ids and match["staged_revenue"] == match["purchase_revenue"]
    context.log.info(
        f"segment_product_purchases: {rows} lines (staged in window: {staged}); "
        f"{written.mode}, {written.rewritten} rows written"
        + (f" ({written.reason})" if written.reason else "")
        + f"; the summary's cells and reach {written.summary_inputs}"
    )
    return dg.MaterializeResult(
        metadata={
            **metadata,
            **window_metadata(window),
            "write_mode": dg.MetadataValue.text(written.mode),
            "summary_cells_and_reach": dg.MetadataValue.text(written.summary_inputs),
            "why_written_whole": dg.MetadataValue.text(written.reason or "(not written whole)"),
            "rows_written": written.rewritten,
            "changed_days": written.changed_days,
            "changed_customers": written.changed_customers,
            "changed_products": written.changed_products,
            "premium_products": int(premium["premium_products"].iloc[0]),
            "products": int(premium["products"].iloc[0]),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="lines_match_staging",
                passed=bool(passed),
                metadata={
                    "staged_lines_in_window": staged,
                    "rows": rows,
                    "same_line_ids_as_staging": same_ids,
                    "staged_revenue": float(match["staged_revenue"]),
                    "revenue": float(match["purchase_revenue"]),
                },
            )
        ],
    )


def _shares_warning(off: int, counted: str) -> dg.AssetCheckResult:
    """The non-blocking `shares_sum_to_one` result: `off` groups (named by `counted` in the
    metadata) whose shares do not sum to 1."""
    return dg.AssetCheckResult(
        check_name="shares_sum_to_one",
        passed=off == 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={counted: int(off)},
    )


@table_asset(
    pref.SEGMENT_PRODUCT_SUMMARY,
    group="preference",
    priority=DRAWN_EARLY_PRIORITY,
    deps=[PURCHASES_KEY],
    description="Segment x product and segment x category in one table (column level = 'product' "
    "or 'category'): lines, orders, customers, units, revenue, share of the segment's revenue and "
    "rank. Read from the cells and distinct counts segment_product_purchases keeps (built here "
    "from the lines when they do not add up to them: metadata cells_and_reach).",
    checks=[
        check_spec(
            PRODUCT_SUMMARY_KEY,
            "shares_sum_to_one",
            "Within each segment and level, revenue shares sum to 1.",
            blocking=False,
        ),
    ],
)
def segment_product_summary(
    context: AssetExecutionContext, warehouse: DuckDBWarehouse
) -> dg.MaterializeResult:
    with warehouse.connect() as conn:
        # Kept by segment_product_purchases' write; built here only when they do not describe
        # the stored lines (a warehouse written by code older than them).
        inputs = "kept with segment_product_purchases"
        if not pref.summary_inputs_in_step(conn):
            pref.build_summary_inputs(conn)
            inputs = "built whole here: they did not match segment_product_purchases"
        replace_rows(conn, pref.SEGMENT_PRODUCT_SUMMARY, pref.SEGMENT_PRODUCT_SUMMARY_SQL)
        off = scalar(conn, pref.PRODUCT_SUMMARY_SHARES_OFF_SQL, [SHARE_TOLERANCE])
        levels = conn.execute(pref.PRODUCT_SUMMARY_LEVELS_SQL).df()
        metadata = table_metadata(
            conn,
            pref.SEGMENT_PRODUCT_SUMMARY,
            order_by="level DESC, segment_order, rank_in_segment",
        )
    context.log.info(f"segment_product_summary: {levels.to_dict('records')}; cells {inputs}")
    return dg.MaterializeResult(
        metadata={
            **metadata,
            "rows_per_level": preview_markdown(levels),
            "cells_and_reach": dg.MetadataValue.text(inputs),
        },
        check_results=[_shares_warning(off, "segment_levels_not_summing_to_one")],
    )


@table_asset(
    pref.SEGMENT_CATEGORY_PREFERENCE,
    group="preference",
    priority=DRAWN_EARLY_PRIORITY,
    # the summary's category rows hold the distinct customers and orders per cell
    deps=[PURCHASES_KEY, PRODUCT_SUMMARY_KEY],
    description="Segment x category preference: raw index = segment's spend share / overall "
    "share; shrunk index (empirical Bayes toward 1, prior worth prior_strength of the segment's "
    "customers); customer penetration index; support and a low-support flag. Lines without a "
    "category (Unknown) are left out of the shares and shown apart per segment.",
    checks=[
        check_spec(
            PREFERENCE_KEY,
            "shares_sum_to_one",
            "Per segment with spend on lines with a category, spend shares and "
            "shrunk shares each sum to 1.",
            blocking=False,
        ),
    ],
)
def segment_category_preference(
    context: AssetExecutionContext, warehouse: DuckDBWarehouse, rfm_settings: RfmSettings
) -> dg.MaterializeResult:
    with warehouse.connect() as conn:
        replace_rows(
            conn,
            pref.SEGMENT_CATEGORY_PREFERENCE,
            pref.SEGMENT_CATEGORY_PREFERENCE_SQL,
            {
                "prior_strength": rfm_settings.prior_strength,
                "min_support_customers": rfm_settings.min_support_customers,
                "unknown_category": pref.UNKNOWN_CATEGORY,
            },
        )
        off = scalar(conn, pref.CATEGORY_SHARES_OFF_SQL, [1e-6, 1e-6])
        top = conn.execute(pref.MOST_PREFERRED_CATEGORY_SQL).df()
        low = scalar(conn, pref.LOW_SUPPORT_CELLS_SQL)
        metadata = table_metadata(
            conn, pref.SEGMENT_CATEGORY_PREFERENCE, order_by="segment_order, category"
        )
    context.log.info(f"segment_category_preference: {low} low-support cells")
    return dg.MaterializeResult(
        metadata={
            **metadata,
            "most_preferred_category": preview_markdown(top, max_rows=10),
            "low_support_cells": int(low),
            "prior_strength": rfm_settings.prior_strength,
        },
        check_results=[_shares_warning(off, "segments_not_summing_to_one")],
    )


@table_asset(
    pref.SEGMENT_TOP_PRODUCTS,
    group="preference",
    priority=DRAWN_EARLY_PRIORITY,
    deps=[PRODUCT_SUMMARY_KEY],
    description="Top N products per segment by revenue (N = top_n, default 10; ties broken by "
    "product_id).",
)
def segment_top_products(
    context: AssetExecutionContext, warehouse: DuckDBWarehouse, rfm_settings: RfmSettings
) -> dg.MaterializeResult:
    with warehouse.connect() as conn:
        replace_rows(
            conn,
            pref.SEGMENT_TOP_PRODUCTS,
            pref.SEGMENT_TOP_PRODUCTS_SQL,
            {"top_n": rfm_settings.top_n},
        )
        metadata = table_metadata(conn, pref.SEGMENT_TOP_PRODUCTS, order_by="segment_order, rank")
    return dg.MaterializeResult(metadata={**metadata, "top_n": rfm_settings.top_n})


@table_asset(
    pref.CHAMPIONS_VS_NEW_PRODUCTS,
    group="preference",
    priority=DRAWN_EARLY_PRIORITY,
    deps=[PRODUCT_SUMMARY_KEY],
    description="Champions vs New Customers side by side, per product and per category: each "
    "group's revenue, share of the group's revenue, rank and buying customers.",
)
def champions_vs_new_products(
    context: AssetExecutionContext, warehouse: DuckDBWarehouse
) -> dg.MaterializeResult:
    with warehouse.connect() as conn:
        replace_rows(
            conn,
            pref.CHAMPIONS_VS_NEW_PRODUCTS,
            pref.CHAMPIONS_VS_NEW_SQL,
            {"group_a": pref.CHAMPIONS, "group_b": pref.NEW_CUSTOMERS},
        )
        categories = conn.execute(pref.CHAMPIONS_VS_NEW_CATEGORIES_SQL).df()
        metadata = table_metadata(conn, pref.CHAMPIONS_VS_NEW_PRODUCTS, order_by="level, item_id")
    return dg.MaterializeResult(
        metadata={**metadata, "categories": preview_markdown(categories, max_rows=30)}
    )


@table_asset(
    pref.SEGMENT_PURCHASE_PATTERNS,
    group="preference",
    priority=DRAWN_EARLY_PRIORITY,
    # orders and order dates per customer are the RFM table's (the same lines and window)
    deps=[PURCHASES_KEY, RFM_KEY],
    description="How each segment buys: orders per customer, AOV (revenue / orders), items per "
    "order, category diversity, premium share and mean days between orders.",
)
def segment_purchase_patterns(
    context: AssetExecutionContext, warehouse: DuckDBWarehouse
) -> dg.MaterializeResult:
    with warehouse.connect() as conn:
        replace_rows(conn, pref.SEGMENT_PURCHASE_PATTERNS, pref.SEGMENT_PURCHASE_PATTERNS_SQL)
        metadata = table_metadata(conn, pref.SEGMENT_PURCHASE_PATTERNS, order_by="segment_order")
    return dg.MaterializeResult(metadata=metadata)
