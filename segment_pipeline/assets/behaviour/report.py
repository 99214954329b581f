"""The insights report asset (Markdown next to the figures, a row in marts.insights_report):
its inputs are this layer's tables and figures and, when they exist, the RFM, CLV and dynamics
layers' tables and figures. Rendering is `segment_pipeline.logic.report`."""

from pathlib import Path

import dagster as dg
import pandas as pd
from dagster import AssetExecutionContext

from segment_pipeline.assets.behaviour.figures import FIGURE_KEYS
from segment_pipeline.assets.behaviour.segments import (
    CUSTOMER_KEY,
    DISTRIBUTION_KEY,
    OCCUPATION_KEY,
    PRICE_KEY,
    SEGMENTS_KEY,
)
from segment_pipeline.assets.behaviour.settings import BehaviourSettings
from segment_pipeline.assets.behaviour.strategy import STRATEGY_KEY, SUMMARY_KEY
from segment_pipeline.assets.tables import table_asset
from segment_pipeline.logic import figure_names as names
from segment_pipeline.logic.report import (
    INSIGHTS_REPORT,
    REPORT_NAME,
    collect_report_inputs,
    render_report,
    report_sha256,
)
from segment_pipeline.resources import DuckDBWarehouse
from segment_pipeline.tables import replace_rows_from_frame

REPORT_GROUP = "report"

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
