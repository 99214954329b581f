"""Seed B as assets: behaviour-based segments, the Defend / Grow / Expand strategy, the five
`bsa_*` figures and the analyst report.

Thin wrappers: each asset opens the warehouse, calls segment_pipeline.logic.behaviour /
strategy / report / behaviour_figures, writes its table and reports metadata (and checks).
Parameters live in the `behaviour_settings` resource (BehaviourSettings).
"""

import itertools
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
from dagster import AssetExecutionContext

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
from segment_pipeline.logic import behaviour_figures as figs
from segment_pipeline.logic import figure_names as names
from segment_pipeline.logic.behaviour import (
    BEHAVIOURAL_SEGMENTS,
    BEHAVIOURAL_SEGMENTS_SQL,
    CATEGORY_PRICE_SEGMENTS,
    CUSTOMER_BEHAVIOUR,
    CUSTOMER_BEHAVIOUR_SQL,
    OCC_OTHER,
    OCCUPATION_GROUPS_TABLE,
    PRICE_UNKNOWN,
    PURCHASE_DISTRIBUTION,
    ClusterSettings,
    MixtureFit,
    build_category_price_segments,
    build_occupation_groups,
    purchase_distribution_with_fit,
)
from segment_pipeline.logic.palette import class_colour
from segment_pipeline.logic.report import (
    INSIGHTS_REPORT,
    REPORT_NAME,
    collect_report_inputs,
    render_report,
    report_sha256,
)
from segment_pipeline.logic.strategy import (
    SEGMENT_STRATEGY,
    STRATEGY_SUMMARY,
    RuleTable,
    StrategyRuleError,
    assign_strategy,
    load_rule_table,
    summarise_strategy,
)
from segment_pipeline.resources import DuckDBWarehouse
from segment_pipeline.sql_files import load_sql
from segment_pipeline.tables import (
    preview_markdown,
    read_table,
    replace_rows,
    replace_rows_from_frame,
    table_metadata,
)

RESOURCE_KEY = "behaviour_settings"

BEHAVIOUR_GROUP = "behaviour"
STRATEGY_GROUP = "strategy"
REPORT_GROUP = "report"


DISTRIBUTION_KEY = table_key(PURCHASE_DISTRIBUTION)
OCCUPATION_KEY = table_key(OCCUPATION_GROUPS_TABLE)
PRICE_KEY = table_key(CATEGORY_PRICE_SEGMENTS)
CUSTOMER_KEY = table_key(CUSTOMER_BEHAVIOUR)
SEGMENTS_KEY = table_key(BEHAVIOURAL_SEGMENTS)
STRATEGY_KEY = table_key(SEGMENT_STRATEGY)
SUMMARY_KEY = table_key(STRATEGY_SUMMARY)
REPORT_KEY = dg.AssetKey(["report", "insights_report"])

#: The RFM layer's tables the report reads when they exist (absent ones are reported as such).
RFM_KEYS = [
    dg.AssetKey(["marts", "rfm_summary"]),
    dg.AssetKey(["marts", "segment_category_preference"]),
]
#: The CLV layer's table and figure for the section "Value by segment and class" (omitted
#: when absent).
CLV_KEYS = [
    dg.AssetKey(["marts", "clv_by_segment"]),
    dg.AssetKey(["figures", names.CLV_BY_SEGMENT]),
]
#: The dynamics layer's tables and figures for the section "What changed since last month"
#: (omitted when absent).
DYNAMICS_KEYS = [
    dg.AssetKey(["marts", "segment_transitions"]),
    dg.AssetKey(["marts", "experiment_sizing"]),
    dg.AssetKey(["figures", names.SEGMENT_MIGRATION]),
    dg.AssetKey(["figures", names.SEGMENT_SHARE_OVER_TIME]),
    dg.AssetKey(["figures", names.PRICE_TIER_FLOW]),
]

FIGURE_NAMES = {
    "distribution": names.PURCHASE_DISTRIBUTION,
    "occupation": names.OCCUPATION_GROUPS,
    "price": names.PRICE_SEGMENTS,
    "value_map": names.SEGMENT_VALUE_MAP,
    "strategy": names.STRATEGY_SUMMARY,
}
FIGURE_KEYS = {k: dg.AssetKey(["figures", stem]) for k, stem in FIGURE_NAMES.items()}

#: Check of customer_behaviour: customers of the sale lines, distinct customers, the spend
#: difference to the lines' total, customers with Unknown demographics and (`?`: the Unknown
#: price segment) with no spend in a tiered category.
CUSTOMER_BEHAVIOUR_CHECK_SQL = load_sql("behaviour/customer_behaviour_check")
#: Check of behavioural_segments: share sums, segment customers, customers of customer_behaviour.
SEGMENT_TOTALS_SQL = load_sql("behaviour/segment_totals")
TOP_SEGMENT_SQL = load_sql("behaviour/top_segment")
#: Check of segment_strategy: rows, distinct segments, rows of a class in `?` (the rule table's).
STRATEGY_COVERAGE_SQL = load_sql("strategy/segment_coverage")


class BehaviourSettings(dg.ConfigurableResource):
    """Parameters of the behaviour-based segmentation and the strategy (seed B).

    The defaults work on the bundled sample and on Black Friday data.
    """

    min_customers_per_occupation: int = 10
    """Occupation codes with fewer customers than this are Occ_Other (not ranked)."""
    strategy_rules_path: str | None = None
    """A YAML rule table; None = the bundled segment_pipeline/config/strategy_rules.yaml."""
    histogram_bins: int = 60
    """Bins of the log1p(amount) histogram (table and figure)."""
    price_cluster_max_components: int = 6
    """Price clusters: Gaussian mixtures on log1p(amount) with 1..this many components are
    fitted and the lowest BIC wins."""
    price_cluster_sample_lines: int = 20_000
    """The mixture is fitted on at most this many lines (a deterministic sample chosen in
    DuckDB); every line is then counted in its cluster."""
    top_segments: int = 10
    """Segments listed in the report (and at most 5 labelled in the value map)."""

    def cluster_settings(self) -> ClusterSettings:
        return ClusterSettings(
            bins=self.histogram_bins,
            max_components=self.price_cluster_max_components,
            sample_lines=self.price_cluster_sample_lines,
        )

    def rule_table(self) -> RuleTable:
        """The validated rule table; an invalid one stops the run with the message."""
        try:
            return load_rule_table(self.strategy_rules_path)
        except StrategyRuleError as exc:
            raise dg.Failure(description=f"Invalid strategy rules: {exc}") from None


def _class_colours(table: RuleTable) -> dict[str, str]:
    return {c.name: class_colour(c.colour) for c in table.classes}


# --------------------------------------------------------------------------------------------
# Behaviour tables
# --------------------------------------------------------------------------------------------


@table_asset(
    PURCHASE_DISTRIBUTION,
    group=BEHAVIOUR_GROUP,
    deps=STAGING_KEYS,
    description="EDA of sale-line amounts: quantiles, skewness of raw and log1p amounts, raw "
    "and log1p histograms (computed in DuckDB), and the price clusters (a Gaussian mixture on "
    "log1p(amount), its number of components chosen by BIC).",
)
def purchase_distribution(
    context: AssetExecutionContext,
    warehouse: DuckDBWarehouse,
    behaviour_settings: BehaviourSettings,
) -> dg.MaterializeResult:
    with warehouse.connect() as conn:
        rows, fit = purchase_distribution_with_fit(conn, behaviour_settings.cluster_settings())
        replace_rows_from_frame(conn, PURCHASE_DISTRIBUTION, rows)
        metadata = table_metadata(conn, PURCHASE_DISTRIBUTION)
    key_rows = rows[rows["measure"].isin(["quantile", "skewness", "cluster"])]
    clusters = rows[rows["measure"] == "cluster"]
    where = ", ".join(
        f"{v:,.2f} ({s:.0%})" for v, s in zip(clusters["value"], clusters["share"], strict=True)
    )
    context.log.info(f"{len(clusters)} price cluster(s) at {where}{_fit_text(fit)}")
    metadata.update(
        {
            "preview": preview_markdown(key_rows, max_rows=30),
            "clusters": dg.MetadataValue.int(len(clusters)),
            "cluster_fit": dg.MetadataValue.json(_fit_json(fit)),
            "skewness_raw": _float_meta(rows, "skewness", "raw"),
            "skewness_log1p": _float_meta(rows, "skewness", "log1p"),
        }
    )
    return dg.MaterializeResult(metadata=metadata)


def _fit_text(fit: MixtureFit | None) -> str:
    if fit is None:
        return ""
    if fit.method != "gaussian_mixture":
        return f" (no mixture fitted: {fit.sample_lines} line(s) or one distinct amount)"
    best = min(fit.bic, key=lambda k: fit.bic[k])
    return (
        f" (Gaussian mixture on log1p(amount) of {fit.sample_lines:,} sampled lines: k = "
        f"{best} of 1..{max(fit.bic)} by BIC)"
    )


def _fit_json(fit: MixtureFit | None) -> dict[str, object]:
    if fit is None:
        return {"method": None}
    return {
        "method": fit.method,
        "sample_lines": fit.sample_lines,
        "bic": {str(k): round(v, 3) for k, v in fit.bic.items()},
        "components_log1p": [
            {"mean": round(m, 6), "sd": round(s, 6), "weight": round(w, 6)}
            for m, s, w in fit.components
        ],
        "boundaries_log1p": [round(b, 6) for b in fit.boundaries],
    }


def _float_meta(rows, measure: str, name: str) -> dg.MetadataValue:
    hit = rows[(rows["measure"] == measure) & (rows["name"] == name)]["value"]
    value = float(hit.iloc[0]) if len(hit) and hit.notna().iloc[0] else float("nan")
    return dg.MetadataValue.float(round(value, 6))


@table_asset(
    OCCUPATION_GROUPS_TABLE,
    group=BEHAVIOUR_GROUP,
    deps=STAGING_KEYS,
    description="Per occupation code: customers, lines, mean log1p(line amount) and the "
    "occupation group (terciles of the mean: Occ_Low / Occ_Mid / Occ_High; Occ_Other for codes "
    "below min_customers_per_occupation and for Unknown).",
    checks=[
        check_spec(
            OCCUPATION_KEY,
            "groups_consistent",
            "Occ_Other holds exactly the codes below the minimum customer count "
            "(and Unknown); the ranked groups are ordered: the highest mean of a lower group is "
            "at most the lowest mean of a higher group.",
        ),
    ],
    kinds=("duckdb", "pandas"),
)
def occupation_groups(
    context: AssetExecutionContext,
    warehouse: DuckDBWarehouse,
    behaviour_settings: BehaviourSettings,
):
    minimum = behaviour_settings.min_customers_per_occupation
    with warehouse.connect() as conn:
        frame = build_occupation_groups(conn, minimum)
        replace_rows_from_frame(conn, OCCUPATION_GROUPS_TABLE, frame)
        metadata = table_metadata(
            conn, OCCUPATION_GROUPS_TABLE, order_by="mean_log1p_amount DESC", preview_rows=25
        )
    expected_other = (frame["customers"] < minimum) | (frame["occupation"] == "Unknown")
    other_ok = bool(((frame["occupation_group"] == OCC_OTHER) == expected_other).all())
    ranked = frame[frame["occupation_group"] != OCC_OTHER]
    spans = ranked.groupby("occupation_group")["mean_log1p_amount"].agg(["min", "max"])
    order = [g for g in ("Occ_Low", "Occ_Mid", "Occ_High") if g in spans.index]
    ordered_ok = all(
        spans.loc[a, "max"] <= spans.loc[b, "min"] for a, b in itertools.pairwise(order)
    )
    counts = frame["occupation_group"].value_counts().to_dict()
    context.log.info(f"occupation groups: {counts}")
    yield dg.MaterializeResult(
        metadata={
            **metadata,
            "min_customers_per_occupation": minimum,
            "codes_per_group": dg.MetadataValue.json({k: int(v) for k, v in counts.items()}),
        }
    )
    yield dg.AssetCheckResult(
        asset_key=OCCUPATION_KEY,
        check_name="groups_consistent",
        passed=other_ok and ordered_ok,
        metadata={"occ_other_matches_threshold": other_ok, "groups_ordered": ordered_ok},
    )


@table_asset(
    CATEGORY_PRICE_SEGMENTS,
    group=BEHAVIOUR_GROUP,
    deps=STAGING_KEYS,
    description="Per product category: median line amount and its price segment (terciles of "
    "the category medians: Price_Low / Price_Mid / Price_High). Unknown (lines without a "
    "category) takes no tier: its price segment is Unknown and it does not move the cut points.",
    kinds=("duckdb", "pandas"),
)
def category_price_segments(
    context: AssetExecutionContext, warehouse: DuckDBWarehouse
) -> dg.MaterializeResult:
    with warehouse.connect() as conn:
        frame = build_category_price_segments(conn)
        replace_rows_from_frame(conn, CATEGORY_PRICE_SEGMENTS, frame)
        metadata = table_metadata(
            conn,
            CATEGORY_PRICE_SEGMENTS,
            order_by="median_line_amount DESC, category",
            preview_rows=25,
        )
    counts = frame["price_segment"].value_counts().to_dict()
    context.log.info(f"price segments: {counts}")
    return dg.MaterializeResult(
        metadata={
            **metadata,
            "categories_per_segment": dg.MetadataValue.json({k: int(v) for k, v in counts.items()}),
        }
    )


@table_asset(
    CUSTOMER_BEHAVIOUR,
    group=BEHAVIOUR_GROUP,
    deps=[*STAGING_KEYS, OCCUPATION_KEY, PRICE_KEY],
    description="One row per customer with a sale: age band, gender, occupation group, dominant "
    "price segment (most spend in tiered categories; an exact tie goes to the higher tier; "
    "Unknown for a customer who bought only products without a category), lines, orders, spend.",
    checks=[
        check_spec(
            CUSTOMER_KEY,
            "every_customer_once",
            "One row per customer of staging.sales_lines, and spend adds up to the lines' total.",
        ),
    ],
)
def customer_behaviour(context: AssetExecutionContext, warehouse: DuckDBWarehouse):
    with warehouse.connect() as conn:
        rows = replace_rows(conn, CUSTOMER_BEHAVIOUR, CUSTOMER_BEHAVIOUR_SQL)
        expected, distinct, spend_gap, unknown, unpriced = conn.execute(
            CUSTOMER_BEHAVIOUR_CHECK_SQL, [PRICE_UNKNOWN]
        ).fetchall()[0]
        metadata = table_metadata(conn, CUSTOMER_BEHAVIOUR, order_by="customer_id")
    context.log.info(
        f"{rows} customers, {unknown} with Unknown demographics, {unpriced} with no spend in a "
        "tiered category (price segment Unknown)"
    )
    yield dg.MaterializeResult(
        metadata={
            **metadata,
            "customers_with_unknown_demographics": int(unknown),
            "customers_with_unknown_price_segment": int(unpriced),
        }
    )
    yield dg.AssetCheckResult(
        asset_key=CUSTOMER_KEY,
        check_name="every_customer_once",
        passed=rows == expected == distinct and spend_gap < 0.01,
        metadata={
            "rows": int(rows),
            "customers_in_sales_lines": int(expected),
            "distinct_customers": int(distinct),
            "spend_difference": float(spend_gap),
        },
    )


@table_asset(
    BEHAVIOURAL_SEGMENTS,
    group=BEHAVIOUR_GROUP,
    deps=[CUSTOMER_KEY],
    description="Per age band x gender x occupation group x price segment: customers, "
    "transactions, gross sales, AOV, revenue share (sums to 1), customer share and their ratio.",
    checks=[
        check_spec(
            SEGMENTS_KEY,
            "revenue_shares_sum_to_one",
            "revenue_share and customer_share each sum to 1.",
        ),
        check_spec(
            SEGMENTS_KEY,
            "each_customer_in_one_segment",
            "Segment customers add up to the customers of "
            "customer_behaviour (each customer in exactly one segment).",
        ),
    ],
)
def behavioural_segments(context: AssetExecutionContext, warehouse: DuckDBWarehouse):
    with warehouse.connect() as conn:
        rows = replace_rows(conn, BEHAVIOURAL_SEGMENTS, BEHAVIOURAL_SEGMENTS_SQL)
        revenue_sum, customer_sum, customers, expected = conn.execute(
            SEGMENT_TOTALS_SQL
        ).fetchall()[0]
        metadata = table_metadata(conn, BEHAVIOURAL_SEGMENTS, order_by="sales_rank")
        top = conn.execute(TOP_SEGMENT_SQL).fetchall()
    if top:
        context.log.info(f"{rows} segments; top: {top[0][0]} ({100 * top[0][1]:.1f}% of sales)")
    shares_ok = (rows == 0) or (
        abs((revenue_sum or 0) - 1) < SHARE_TOLERANCE
        and abs((customer_sum or 0) - 1) < SHARE_TOLERANCE
    )
    yield dg.MaterializeResult(
        metadata={
            **metadata,
            "top_segment": top[0][0] if top else "(none)",
        }
    )
    yield dg.AssetCheckResult(
        asset_key=SEGMENTS_KEY,
        check_name="revenue_shares_sum_to_one",
        passed=bool(shares_ok),
        metadata={
            "revenue_share_sum": float(revenue_sum or 0),
            "customer_share_sum": float(customer_sum or 0),
        },
    )
    yield dg.AssetCheckResult(
        asset_key=SEGMENTS_KEY,
        check_name="each_customer_in_one_segment",
        passed=int(customers or 0) == int(expected),
        metadata={"segment_customers": int(customers or 0), "customers": int(expected)},
    )


# --------------------------------------------------------------------------------------------
# Strategy
# --------------------------------------------------------------------------------------------


@table_asset(
    SEGMENT_STRATEGY,
    group=STRATEGY_GROUP,
    deps=[SEGMENTS_KEY],
    description="Every behavioural segment with exactly one strategy class (Defend / Grow / "
    "Expand / Maintain, from the validated rule table) and the class's playbook.",
    checks=[
        check_spec(
            STRATEGY_KEY,
            "one_class_per_segment",
            "Every behavioural segment appears once, with one class of the rule table.",
        ),
    ],
    kinds=("duckdb", "pandas"),
)
def segment_strategy(
    context: AssetExecutionContext,
    warehouse: DuckDBWarehouse,
    behaviour_settings: BehaviourSettings,
):
    table = behaviour_settings.rule_table()  # validated before any work
    with warehouse.connect() as conn:
        segments = read_table(conn, BEHAVIOURAL_SEGMENTS, order_by="sales_rank")
        frame = assign_strategy(segments, table)
        replace_rows_from_frame(conn, SEGMENT_STRATEGY, frame)
        metadata = table_metadata(conn, SEGMENT_STRATEGY, order_by="sales_rank")
        stored = conn.execute(STRATEGY_COVERAGE_SQL, [table.class_names]).fetchall()[0]
    per_class = frame["strategy_class"].value_counts().to_dict()
    context.log.info(f"segments per class: {per_class}")
    yield dg.MaterializeResult(
        metadata={
            **metadata,
            "rule_grid": dg.MetadataValue.md(table.grid().to_markdown()),
            "segments_per_class": dg.MetadataValue.json({k: int(v) for k, v in per_class.items()}),
            "rules_file": behaviour_settings.strategy_rules_path or "(bundled default)",
        }
    )
    yield dg.AssetCheckResult(
        asset_key=STRATEGY_KEY,
        check_name="one_class_per_segment",
        passed=stored[0] == stored[1] == stored[2] == len(segments),
        metadata={
            "segments": len(segments),
            "rows": int(stored[0]),
            "distinct_segments": int(stored[1]),
            "rows_with_known_class": int(stored[2]),
        },
    )


@table_asset(
    STRATEGY_SUMMARY,
    group=STRATEGY_GROUP,
    deps=[STRATEGY_KEY],
    description="Per strategy class: segments, customers, gross sales, revenue and customer "
    "share, AOV, and the playbook (goal, actions).",
    checks=[
        check_spec(
            SUMMARY_KEY,
            "shares_sum_to_one",
            "Class revenue and customer shares each sum to 1.",
        ),
        check_spec(
            SUMMARY_KEY,
            "all_classes_populated",
            "Warns when a class of the rule table has no segment on this data.",
            blocking=False,
        ),
    ],
    kinds=("duckdb", "pandas"),
)
def strategy_summary(
    context: AssetExecutionContext,
    warehouse: DuckDBWarehouse,
    behaviour_settings: BehaviourSettings,
):
    table = behaviour_settings.rule_table()
    with warehouse.connect() as conn:
        segments = read_table(conn, SEGMENT_STRATEGY)
        frame = summarise_strategy(segments, table)
        replace_rows_from_frame(conn, STRATEGY_SUMMARY, frame)
        metadata = table_metadata(conn, STRATEGY_SUMMARY, order_by="class_order")
    empty = frame.loc[frame["segments"] == 0, "strategy_class"].tolist()
    if empty:
        context.log.warning(f"strategy classes without segments: {', '.join(empty)}")
    revenue_sum = float(frame["revenue_share"].fillna(0).sum())
    customer_sum = float(frame["customer_share"].fillna(0).sum())
    shares_ok = segments.empty or (
        abs(revenue_sum - 1) < SHARE_TOLERANCE and abs(customer_sum - 1) < SHARE_TOLERANCE
    )
    yield dg.MaterializeResult(metadata=metadata)
    yield dg.AssetCheckResult(
        asset_key=SUMMARY_KEY,
        check_name="shares_sum_to_one",
        passed=bool(shares_ok),
        metadata={"revenue_share_sum": revenue_sum, "customer_share_sum": customer_sum},
    )
    yield dg.AssetCheckResult(
        asset_key=SUMMARY_KEY,
        check_name="all_classes_populated",
        passed=not empty,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"empty_classes": ", ".join(empty) or "(none)"},
    )


# --------------------------------------------------------------------------------------------
# Figures and report (closures over the figures folder)
# --------------------------------------------------------------------------------------------


def _distribution_plot(conn: duckdb.DuckDBPyConnection, s: BehaviourSettings, _ctx) -> PlotCall:
    frame = read_table(conn, PURCHASE_DISTRIBUTION)
    return PlotCall(figs.plot_purchase_distribution, (frame,))


def _occupation_plot(conn: duckdb.DuckDBPyConnection, s: BehaviourSettings, _ctx) -> PlotCall:
    frame = read_table(conn, OCCUPATION_GROUPS_TABLE)
    return PlotCall(figs.plot_occupation_groups, (frame, s.min_customers_per_occupation))


def _price_plot(conn: duckdb.DuckDBPyConnection, s: BehaviourSettings, _ctx) -> PlotCall:
    frame = read_table(conn, CATEGORY_PRICE_SEGMENTS)
    return PlotCall(figs.plot_price_segments, (frame,))


def _value_map_plot(conn: duckdb.DuckDBPyConnection, s: BehaviourSettings, _ctx) -> PlotCall:
    table = s.rule_table()
    frame = read_table(conn, SEGMENT_STRATEGY)
    return PlotCall(
        figs.plot_segment_value_map,
        (frame, table.class_names, _class_colours(table)),
        {"top_n": min(5, s.top_segments)},
    )


def _strategy_plot(conn: duckdb.DuckDBPyConnection, s: BehaviourSettings, _ctx) -> PlotCall:
    frame = read_table(conn, STRATEGY_SUMMARY)
    return PlotCall(figs.plot_strategy_summary, (frame, _class_colours(s.rule_table())))


#: The five bsa_* figures.
FIGURES: tuple[FigureSpec, ...] = (
    FigureSpec(
        FIGURE_NAMES["distribution"],
        (DISTRIBUTION_KEY,),
        "Raw and log1p line-amount histograms side by side, the price clusters shaded and "
        "their modes marked.",
        _distribution_plot,
    ),
    FigureSpec(
        FIGURE_NAMES["occupation"],
        (OCCUPATION_KEY,),
        "Occupation codes by typical line amount, coloured by occupation group (Occ_Other "
        "hatched).",
        _occupation_plot,
    ),
    FigureSpec(
        FIGURE_NAMES["price"],
        (PRICE_KEY,),
        "Categories by median line amount (log scale), coloured by price segment.",
        _price_plot,
    ),
    FigureSpec(
        FIGURE_NAMES["value_map"],
        (STRATEGY_KEY,),
        "Behavioural segments: customers vs AOV, bubble area = gross sales, colour = strategy "
        "class, the top 5 by gross sales labelled.",
        _value_map_plot,
    ),
    FigureSpec(
        FIGURE_NAMES["strategy"],
        (SUMMARY_KEY,),
        "Customer share vs revenue share per strategy class.",
        _strategy_plot,
    ),
)


#: Drawn by the one figures step (segment_pipeline.figures.figure_assets, definitions.py).
FIGURE_LAYER = FigureLayer(RESOURCE_KEY, FIGURES, ANALYTICS_OWNERS)


def build_report_asset(figures_dir: Path) -> dg.AssetsDefinition:
    """The insights report: `insights_report.md` next to the figures, a row in
    marts.insights_report, and the text in the asset's metadata."""

    @table_asset(
        INSIGHTS_REPORT,
        key=REPORT_KEY,
        group=REPORT_GROUP,
        deps=[
            DISTRIBUTION_KEY,
            OCCUPATION_KEY,
            PRICE_KEY,
            CUSTOMER_KEY,
            SEGMENTS_KEY,
            STRATEGY_KEY,
            SUMMARY_KEY,
            *FIGURE_KEYS.values(),
            *RFM_KEYS,
            *CLV_KEYS,
            *DYNAMICS_KEYS,
        ],
        kinds=("duckdb", "markdown"),
        metadata={"file": dg.MetadataValue.path(str(figures_dir / REPORT_NAME))},
        description="The analyst report (Markdown): headline numbers, the top behavioural "
        "segments (seed B's headline finding, computed), each strategy class with its segments "
        "and playbook, each RFM segment's preferred categories and actions (when the RFM tables "
        "exist), predicted value (CLV) and what changed since last month with the experiment "
        "sizing (when those layers' tables exist), and the figures. Written as "
        "insights_report.md next to the figures and stored "
        "in marts.insights_report.",
    )
    def insights_report(
        context: AssetExecutionContext,
        warehouse: DuckDBWarehouse,
        behaviour_settings: BehaviourSettings,
    ) -> dg.MaterializeResult:
        table = behaviour_settings.rule_table()
        with warehouse.connect() as conn:
            inputs = collect_report_inputs(
                conn,
                min_customers_per_occupation=behaviour_settings.min_customers_per_occupation,
                rfm_actions=table.rfm_actions,
                top_n=behaviour_settings.top_segments,
            )
            markdown = render_report(inputs)
            digest = report_sha256(markdown)
            figures_dir.mkdir(parents=True, exist_ok=True)
            path = figures_dir / REPORT_NAME
            path.write_text(markdown, encoding="utf-8")
            frame = pd.DataFrame(
                [
                    {
                        "name": REPORT_NAME,
                        "markdown": markdown,
                        "sha256": digest,
                        "file_path": str(path),
                        "rfm_section": inputs.rfm_summary is not None
                        and inputs.rfm_preferences is not None,
                    }
                ]
            )
            replace_rows_from_frame(conn, INSIGHTS_REPORT, frame)
        if inputs.missing_rfm_tables:
            context.log.info("RFM section skipped: missing " + ", ".join(inputs.missing_rfm_tables))
        return dg.MaterializeResult(
            metadata={
                "path": dg.MetadataValue.path(str(path)),
                "sha256": dg.MetadataValue.text(digest),
                "characters": dg.MetadataValue.int(len(markdown)),
                "rfm_section": dg.MetadataValue.bool(not inputs.missing_rfm_tables),
                "report": dg.MetadataValue.md(render_report(inputs, embed_images=False)),
            }
        )

    return insights_report


RESOURCES = {RESOURCE_KEY: BehaviourSettings()}


def build_assets(layer: LayerContext) -> list[dg.AssetsDefinition]:
    """The behavioural segment and strategy tables with their checks, and the report (written
    next to the figures), see assets/layer.py."""
    return [
        purchase_distribution,
        occupation_groups,
        category_price_segments,
        customer_behaviour,
        behavioural_segments,
        segment_strategy,
        strategy_summary,
        build_report_asset(layer.figures_dir),
    ]
