"""The RFM segment tables: staging (sale lines) -> marts.rfm_customer_segments (one row per
customer: recency, frequency, monetary, scores, segment) -> marts.rfm_summary (one row per
segment). SQL in `segment_pipeline.logic.rfm`."""

import dagster as dg
from dagster import AssetExecutionContext

from segment_pipeline.assets.ingest import STAGING_KEYS
from segment_pipeline.assets.rfm.settings import RfmSettings, window_metadata
from segment_pipeline.assets.tables import (
    DRAWN_EARLY_PRIORITY,
    SHARE_TOLERANCE,
    check_spec,
    table_asset,
    table_key,
)
from segment_pipeline.logic.rfm import (
    CUSTOMERS_PER_SEGMENT_SQL,
    RF_CELL_COUNTS_SQL,
    RFM_CUSTOMER_SEGMENTS,
    RFM_CUSTOMER_SEGMENTS_SQL,
    RFM_SEGMENT_COVERAGE_SQL,
    RFM_SUMMARY,
    RFM_SUMMARY_TOTALS_SQL,
    SEGMENT_NAMES,
    replace_rfm_summary,
    rf_grid_counts,
    rfm_params,
)
from segment_pipeline.logic.staging import ensure_staging_tables
from segment_pipeline.resources import DuckDBWarehouse
from segment_pipeline.tables import preview_markdown, replace_rows, table_metadata

RFM_KEY = table_key(RFM_CUSTOMER_SEGMENTS)
RFM_SUMMARY_KEY = table_key(RFM_SUMMARY)


@table_asset(
    RFM_CUSTOMER_SEGMENTS,
    group="rfm",
    priority=DRAWN_EARLY_PRIORITY,
    deps=STAGING_KEYS,
    description="One row per customer with a sale in the window: recency (days before as_of), "
    "frequency (distinct orders), monetary (spend), 1-5 quintile scores (rank-based, ties share a "
    "score, R reversed), the R x F cell and its segment from the segment map.",
    checks=[
        check_spec(
            RFM_KEY,
            "one_segment_per_customer",
            "Every customer with a sale line in the window has exactly one row, "
            "with a segment of the map and scores 1-5.",
        ),
    ],
)
def rfm_customer_segments(
    context: AssetExecutionContext, warehouse: DuckDBWarehouse, rfm_settings: RfmSettings
) -> dg.MaterializeResult:
    segment_map = rfm_settings.segment_map()  # invalid map: stop before touching data
    with warehouse.connect() as conn:
        ensure_staging_tables(conn)
        window = rfm_settings.resolve_window(conn)
        context.log.info(f"RFM window {window.start}..{window.end}, as_of {window.as_of}")
        replace_rows(
            conn, RFM_CUSTOMER_SEGMENTS, RFM_CUSTOMER_SEGMENTS_SQL, rfm_params(window, segment_map)
        )
        coverage = (
            conn.execute(
                RFM_SEGMENT_COVERAGE_SQL, {**window.range_params(), **segment_map.segments_param()}
            )
            .df()
            .iloc[0]
        )
        cell_counts = conn.execute(RF_CELL_COUNTS_SQL).df()
        counts = conn.execute(CUSTOMERS_PER_SEGMENT_SQL).df()
        metadata = table_metadata(conn, RFM_CUSTOMER_SEGMENTS, order_by="customer_id")
    window_customers, rows, distinct, bad = (
        int(coverage[c]) for c in ("window_customers", "rows", "distinct_customers", "bad_rows")
    )
    passed = window_customers == rows == distinct and bad == 0
    empty = [s for s in segment_map.segments if s not in set(counts["segment"])]
    return dg.MaterializeResult(
        metadata={
            **metadata,
            **window_metadata(window),
            "customers_per_segment": preview_markdown(counts, max_rows=len(SEGMENT_NAMES)),
            "customers_per_rf_cell": preview_markdown(rf_grid_counts(cell_counts)),
            "segment_map": preview_markdown(segment_map.grid_frame()),
            "segment_map_source": rfm_settings.segment_map_path or "packaged default",
            "empty_segments": ", ".join(empty) if empty else "(none)",
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="one_segment_per_customer",
                passed=passed,
                metadata={
                    "customers_in_window": window_customers,
                    "rows": rows,
                    "distinct_customers": distinct,
                    "rows_without_valid_segment": bad,
                },
            )
        ],
    )


@table_asset(
    RFM_SUMMARY,
    group="rfm",
    priority=DRAWN_EARLY_PRIORITY,
    deps=[RFM_KEY],
    description="One row per segment of the map: customers and their share, mean and median "
    "recency, frequency and spend, revenue and its share, average order value.",
    checks=[
        check_spec(
            RFM_SUMMARY_KEY,
            "shares_sum_to_one",
            "customer_share and revenue_share each sum to 1, and the customers add "
            "up to the rows of rfm_customer_segments.",
        ),
    ],
)
def rfm_summary(
    context: AssetExecutionContext, warehouse: DuckDBWarehouse, rfm_settings: RfmSettings
) -> dg.MaterializeResult:
    segment_map = rfm_settings.segment_map()
    with warehouse.connect() as conn:
        replace_rfm_summary(conn, segment_map.segments_param())
        customer_share, revenue_share, customers, segmented = conn.execute(
            RFM_SUMMARY_TOTALS_SQL
        ).fetchall()[0]
        metadata = table_metadata(conn, RFM_SUMMARY, order_by="segment_order")
    passed = (
        customer_share is not None
        and revenue_share is not None
        and abs(customer_share - 1) < SHARE_TOLERANCE
        and abs(revenue_share - 1) < SHARE_TOLERANCE
        and int(customers) == int(segmented)
    )
    context.log.info(
        f"rfm_summary: {int(customers)} customers in {len(segment_map.segments)} segments"
    )
    return dg.MaterializeResult(
        metadata=metadata,
        check_results=[
            dg.AssetCheckResult(
                check_name="shares_sum_to_one",
                passed=bool(passed),
                metadata={
                    "customer_share_sum": float(customer_share or 0),
                    "revenue_share_sum": float(revenue_share or 0),
                    "customers": int(customers or 0),
                    "rfm_rows": int(segmented),
                },
            )
        ],
    )
