"""The strategy tables: behavioural_segments -> segment_strategy (each segment's class from
the validated rule table, Defend / Grow / Expand / Maintain) -> strategy_summary (per class).
Logic in `segment_pipeline.logic.strategy`."""

import dagster as dg
from dagster import AssetExecutionContext

from segment_pipeline.assets.behaviour.segments import SEGMENTS_KEY
from segment_pipeline.assets.behaviour.settings import BehaviourSettings
from segment_pipeline.assets.tables import SHARE_TOLERANCE, check_spec, table_asset, table_key
from segment_pipeline.logic.behaviour import BEHAVIOURAL_SEGMENTS
from segment_pipeline.logic.strategy import (
    SEGMENT_STRATEGY,
    STRATEGY_SUMMARY,
    assign_strategy,
    summarise_strategy,
)
from segment_pipeline.resources import DuckDBWarehouse
from segment_pipeline.sql_files import load_sql
from segment_pipeline.tables import (
    frame_markdown,
    read_table,
    replace_rows_from_frame,
    table_metadata,
)

STRATEGY_GROUP = "strategy"

STRATEGY_KEY = table_key(SEGMENT_STRATEGY)
SUMMARY_KEY = table_key(STRATEGY_SUMMARY)

#: Check of segment_strategy: rows, distinct segments, rows of a class in `?` (the rule table's).
STRATEGY_COVERAGE_SQL = load_sql("strategy/segment_coverage")


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
            "rule_grid": dg.MetadataValue.md(frame_markdown(table.grid(), index=True)),
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
