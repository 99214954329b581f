"""Seed A: RFM segments, segment x product preference tables and the five seed figures.

Lineage: staging (sale lines, customers, products) -> marts.rfm_customer_segments ->
marts.rfm_summary and marts.segment_product_purchases -> the preference tables -> figures.
The assets are thin: the SQL and the plots live in `segment_pipeline.logic.rfm`,
`.preference` and `.rfm_figures`. Parameters are the `rfm_settings` resource
(:class:`RfmSettings`), validated - segment map included - before any asset does work.
"""

from datetime import date

import dagster as dg
import duckdb
from dagster import AssetExecutionContext
from pydantic import Field

from segment_pipeline.assets.ingest import STAGING_KEYS
from segment_pipeline.assets.layer import LayerContext
from segment_pipeline.assets.tables import (
    ANALYTICS_OWNERS,
    SHARE_TOLERANCE,
    check_spec,
    table_asset,
    table_key,
)
from segment_pipeline.figures import FigureLayer, FigureSpec, PlotCall
from segment_pipeline.logic import figure_names as names
from segment_pipeline.logic import preference as pref
from segment_pipeline.logic import rfm_figures as figs
from segment_pipeline.logic.rfm import (
    CUSTOMERS_PER_SEGMENT_SQL,
    RF_CELL_COUNTS_SQL,
    RFM_CUSTOMER_SEGMENTS,
    RFM_CUSTOMER_SEGMENTS_SQL,
    RFM_SEGMENT_COVERAGE_SQL,
    RFM_SUMMARY,
    RFM_SUMMARY_SQL,
    RFM_SUMMARY_TOTALS_SQL,
    SEGMENT_NAMES,
    RfmWindow,
    RfmWindowError,
    SegmentMap,
    load_segment_map,
    read_window,
    resolve_window,
    rf_grid_counts,
    rfm_params,
)
from segment_pipeline.logic.staging import ensure_staging_tables
from segment_pipeline.resources import DuckDBWarehouse
from segment_pipeline.tables import preview_markdown, read_table, replace_rows, table_metadata

RESOURCE_KEY = "rfm_settings"

DEFAULT_TOP5_SEGMENTS = [
    "Champions",
    "Loyal Customers",
    "Potential Loyalists",
    "New Customers",
    "At Risk",
    "Can't Lose Them",
]


RFM_KEY = table_key(RFM_CUSTOMER_SEGMENTS)
RFM_SUMMARY_KEY = table_key(RFM_SUMMARY)
PURCHASES_KEY = table_key(pref.SEGMENT_PRODUCT_PURCHASES)
PRODUCT_SUMMARY_KEY = table_key(pref.SEGMENT_PRODUCT_SUMMARY)
PREFERENCE_KEY = table_key(pref.SEGMENT_CATEGORY_PREFERENCE)
TOP_PRODUCTS_KEY = table_key(pref.SEGMENT_TOP_PRODUCTS)
CHAMPIONS_VS_NEW_KEY = table_key(pref.CHAMPIONS_VS_NEW_PRODUCTS)
PATTERNS_KEY = table_key(pref.SEGMENT_PURCHASE_PATTERNS)


class RfmSettings(dg.ConfigurableResource):
    """Parameters of the RFM segmentation and the segment x product analysis.

    Every field has a default that works on the bundled sample; override them in the run
    config (`resources: {rfm_settings: {config: {...}}}`) or the UI launchpad.
    """

    segment_map_path: str | None = Field(
        default=None,
        description="YAML file with a replacement R x F segment map (default: the packaged "
        "segment_pipeline/config/segment_map.yaml). Validated before any work.",
    )
    as_of: str | None = Field(
        default=None,
        description="Reference date for recency, YYYY-MM-DD (default: the day after the last "
        "sale line in the window). Lines on or after it are outside the window.",
    )
    window_start: str | None = Field(
        default=None, description="First order date analysed, YYYY-MM-DD (default: all history)"
    )
    window_end: str | None = Field(
        default=None, description="Last order date analysed, YYYY-MM-DD (default: all history)"
    )
    lookback_days: int | None = Field(
        default=None,
        description="Analyse only the last N days before as_of (combined with window_start: "
        "the later start wins)",
    )
    prior_strength: float = Field(
        default=10.0,
        description="Shrinkage prior strength in pseudo-customers: the overall category mix is "
        "added with the weight of this many of the segment's own customers (a segment of n "
        "customers keeps the weight n / (n + k))",
    )
    min_support_customers: int = Field(
        default=10,
        description="A segment x category cell with fewer buying customers is flagged low_support",
    )
    premium_top_share: float = Field(
        default=0.2,
        description="A product is premium when its typical price is in this top share of its "
        "category (0.2 = top 20%)",
    )
    top_n: int = Field(default=10, description="Products per segment in segment_top_products")
    top5_segments: list[str] = Field(
        default_factory=lambda: list(DEFAULT_TOP5_SEGMENTS),
        description="Segments shown in spa_segment_top5_products.png (display order is the "
        "segment map's)",
    )

    def check_settings(self) -> SegmentMap:
        """Check every parameter and load the segment map; raise one clear error."""
        problems: list[str] = []
        for name in ("as_of", "window_start", "window_end"):
            value = getattr(self, name)
            if value is not None:
                try:
                    date.fromisoformat(value)
                except ValueError:
                    problems.append(f"{name} must be a YYYY-MM-DD date, got {value!r}")
        if self.lookback_days is not None and self.lookback_days < 1:
            problems.append(f"lookback_days must be >= 1, got {self.lookback_days}")
        if self.prior_strength < 0:
            problems.append(f"prior_strength must be >= 0, got {self.prior_strength}")
        if self.min_support_customers < 0:
            problems.append(f"min_support_customers must be >= 0, got {self.min_support_customers}")
        if not 0 < self.premium_top_share < 1:
            problems.append(
                f"premium_top_share must be between 0 and 1, got {self.premium_top_share}"
            )
        if self.top_n < 1:
            problems.append(f"top_n must be >= 1, got {self.top_n}")
        unknown = [s for s in self.top5_segments if s not in SEGMENT_NAMES]
        if unknown:
            problems.append(f"top5_segments has unknown segment names {unknown}")
        if problems:
            raise ValueError("Invalid rfm_settings:\n" + "\n".join(f"  - {p}" for p in problems))
        return load_segment_map(self.segment_map_path)

    def segment_map(self) -> SegmentMap:
        """The validated segment map; any invalid setting is a `dg.Failure` whose description
        is the validator's full message.

        Every asset of this layer calls this first, before opening the warehouse. (Validating
        in `setup_for_execution` instead would fail the run with a resource-initialisation
        stack trace rather than a step failure the CLI and the UI show as a message.)"""
        try:
            return self.check_settings()
        except ValueError as exc:  # SegmentMapError is a ValueError
            raise dg.Failure(description=str(exc)) from None

    def _date(self, name: str) -> date | None:
        value = getattr(self, name)
        return date.fromisoformat(value) if value else None

    def resolve_window(self, conn: duckdb.DuckDBPyConnection) -> RfmWindow:
        try:
            return resolve_window(
                conn,
                window_start=self._date("window_start"),
                window_end=self._date("window_end"),
                as_of=self._date("as_of"),
                lookback_days=self.lookback_days,
            )
        except RfmWindowError as exc:
            raise dg.Failure(description=f"RFM window: {exc}") from None


def _window_note(window: RfmWindow) -> str:
    return f"Sales {window.start} to {window.end}; recency as of {window.as_of}"


def window_metadata(window: RfmWindow) -> dict[str, str]:
    """The RFM window as asset metadata (`window`, `as_of`)."""
    return {"window": f"{window.start} .. {window.end}", "as_of": window.as_of.isoformat()}


# --------------------------------------------------------------------------------------------
# RFM
# --------------------------------------------------------------------------------------------


@table_asset(
    RFM_CUSTOMER_SEGMENTS,
    group="rfm",
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
        replace_rows(conn, RFM_SUMMARY, RFM_SUMMARY_SQL, segment_map.segments_param())
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


# --------------------------------------------------------------------------------------------
# Segment x product
# --------------------------------------------------------------------------------------------


@table_asset(
    pref.SEGMENT_PRODUCT_PURCHASES,
    group="preference",
    deps=[RFM_KEY, *STAGING_KEYS],
    description="The main analysis table: every staged sale line of the RFM window with its "
    "customer's segment and a premium-product flag (typical unit price in the top share of its "
    "category). Built in DuckDB SQL.",
    checks=[
        check_spec(
            PURCHASES_KEY,
            "lines_match_staging",
            "Exactly the staged sale lines of the window: same row count, unique "
            "line ids, same revenue.",
        ),
    ],
)
def segment_product_purchases(
    context: AssetExecutionContext, warehouse: DuckDBWarehouse, rfm_settings: RfmSettings
) -> dg.MaterializeResult:
    rfm_settings.segment_map()
    with warehouse.connect() as conn:
        window = read_window(conn)
        replace_rows(
            conn,
            pref.SEGMENT_PRODUCT_PURCHASES,
            pref.SEGMENT_PRODUCT_PURCHASES_SQL,
            {**window.range_params(), "premium_quantile": 1 - rfm_settings.premium_top_share},
        )
        match = conn.execute(pref.PURCHASES_MATCH_STAGING_SQL, window.range_params()).df().iloc[0]
        premium = conn.execute(pref.PREMIUM_PRODUCTS_SQL).df()
        metadata = table_metadata(conn, pref.SEGMENT_PRODUCT_PURCHASES, order_by="line_id")
    staged, rows, distinct = (
        int(match[c]) for c in ("staged_lines", "purchase_rows", "distinct_lines")
    )
    passed = staged == rows == distinct and match["staged_revenue"] == match["purchase_revenue"]
    context.log.info(f"segment_product_purchases: {rows} lines (staged in window: {staged})")
    return dg.MaterializeResult(
        metadata={
            **metadata,
            **window_metadata(window),
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
                    "distinct_line_ids": distinct,
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
    deps=[PURCHASES_KEY],
    description="Segment x product and segment x category in one table (column level = 'product' "
    "or 'category'): lines, orders, customers, units, revenue, share of the segment's revenue and "
    "rank.",
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
        replace_rows(conn, pref.SEGMENT_PRODUCT_SUMMARY, pref.SEGMENT_PRODUCT_SUMMARY_SQL)
        off = conn.execute(pref.PRODUCT_SUMMARY_SHARES_OFF_SQL, [SHARE_TOLERANCE]).fetchall()[0][0]
        levels = conn.execute(pref.PRODUCT_SUMMARY_LEVELS_SQL).df()
        metadata = table_metadata(
            conn,
            pref.SEGMENT_PRODUCT_SUMMARY,
            order_by="level DESC, segment_order, rank_in_segment",
        )
    context.log.info(f"segment_product_summary: {levels.to_dict('records')}")
    return dg.MaterializeResult(
        metadata={**metadata, "rows_per_level": preview_markdown(levels)},
        check_results=[_shares_warning(off, "segment_levels_not_summing_to_one")],
    )


@table_asset(
    pref.SEGMENT_CATEGORY_PREFERENCE,
    group="preference",
    deps=[PURCHASES_KEY],
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
        off = conn.execute(pref.CATEGORY_SHARES_OFF_SQL, [1e-6, 1e-6]).fetchall()[0][0]
        top = conn.execute(pref.MOST_PREFERRED_CATEGORY_SQL).df()
        low = conn.execute(pref.LOW_SUPPORT_CELLS_SQL).fetchall()[0][0]
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
    deps=[PURCHASES_KEY],
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


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------


def _figure_inputs(
    conn: duckdb.DuckDBPyConnection, settings: RfmSettings
) -> tuple[SegmentMap, str]:
    """The segment map and the window note every seed-A figure carries."""
    return settings.segment_map(), _window_note(read_window(conn))


def _patterns_plot(conn: duckdb.DuckDBPyConnection, s: RfmSettings, _context) -> PlotCall:
    segment_map, note = _figure_inputs(conn, s)
    return PlotCall(
        figs.plot_segment_purchase_patterns,
        (read_table(conn, pref.SEGMENT_PURCHASE_PATTERNS), segment_map.segments),
        {"note": note, "premium_top_share": s.premium_top_share},
    )


def _comparison_plot(conn: duckdb.DuckDBPyConnection, s: RfmSettings, _context) -> PlotCall:
    _, note = _figure_inputs(conn, s)
    return PlotCall(
        figs.plot_champions_vs_new_comparison,
        (read_table(conn, pref.SEGMENT_PURCHASE_PATTERNS), pref.CHAMPIONS, pref.NEW_CUSTOMERS),
        {"note": note, "premium_top_share": s.premium_top_share},
    )


def _champions_vs_new_plot(conn: duckdb.DuckDBPyConnection, s: RfmSettings, _context) -> PlotCall:
    _, note = _figure_inputs(conn, s)
    return PlotCall(
        figs.plot_champions_vs_new_top_products,
        (read_table(conn, pref.CHAMPIONS_VS_NEW_PRODUCTS),),
        {"top_n": 10, "note": note},
    )


def _top5_plot(conn: duckdb.DuckDBPyConnection, s: RfmSettings, _context) -> PlotCall:
    segment_map, note = _figure_inputs(conn, s)
    shown = [seg for seg in segment_map.segments if seg in s.top5_segments]
    return PlotCall(
        figs.plot_segment_top_products,
        (read_table(conn, pref.SEGMENT_TOP_PRODUCTS), shown),
        {"top_n": 5, "note": note},
    )


def _heatmap_plot(conn: duckdb.DuckDBPyConnection, s: RfmSettings, _context) -> PlotCall:
    segment_map, note = _figure_inputs(conn, s)
    return PlotCall(
        figs.plot_segment_category_heatmap,
        (read_table(conn, pref.SEGMENT_CATEGORY_PREFERENCE), segment_map.segments),
        {"note": note, "min_support_customers": s.min_support_customers},
    )


#: The RFM and preference figures (names: logic/figure_names.py).
FIGURES: tuple[FigureSpec, ...] = (
    FigureSpec(
        names.SEGMENT_PURCHASE_PATTERNS,
        (PATTERNS_KEY,),
        "Six panels per segment: orders per customer, AOV, units per order, category "
        "diversity, premium share, days between orders.",
        _patterns_plot,
    ),
    FigureSpec(
        names.CHAMPIONS_VS_NEW_COMPARISON,
        (PATTERNS_KEY,),
        "Champions vs New Customers: category diversity, AOV, purchase frequency and premium "
        "share.",
        _comparison_plot,
    ),
    FigureSpec(
        names.CHAMPIONS_VS_NEW_TOP_PRODUCTS,
        (CHAMPIONS_VS_NEW_KEY,),
        "Each group's top 10 products (share of the group's revenue), Champions vs New Customers.",
        _champions_vs_new_plot,
    ),
    FigureSpec(
        names.SEGMENT_TOP5_PRODUCTS,
        (TOP_PRODUCTS_KEY,),
        "Top 5 products (share of the segment's revenue) of the main segments (top5_segments).",
        _top5_plot,
    ),
    FigureSpec(
        names.SEGMENT_PRODUCT_HEATMAP,
        (PREFERENCE_KEY,),
        "Segment x category heatmap of the shrunk preference index (diverging, log scale, "
        "centred on 1); low-support cells marked.",
        _heatmap_plot,
    ),
)


#: Drawn by the one figures step (segment_pipeline.figures.figure_assets, definitions.py).
FIGURE_LAYER = FigureLayer(RESOURCE_KEY, FIGURES, ANALYTICS_OWNERS)


TABLE_ASSETS = [
    rfm_customer_segments,
    rfm_summary,
    segment_product_purchases,
    segment_product_summary,
    segment_category_preference,
    segment_top_products,
    champions_vs_new_products,
    segment_purchase_patterns,
]


RESOURCES = {RESOURCE_KEY: RfmSettings()}


def build_assets(layer: LayerContext) -> list[dg.AssetsDefinition]:
    """The RFM and preference tables with their checks (see assets/layer.py)."""
    return list(TABLE_ASSETS)
