"""Seed B as assets: behaviour-based segments, the Defend / Grow / Expand strategy, the five
`bsa_*` figures and the analyst report.

Thin wrappers: each asset opens the warehouse, calls segment_pipeline.logic.behaviour /
strategy / report / behaviour_figures, writes its table and reports metadata (and checks).
Parameters live in the `behaviour_settings` resource (BehaviourSettings).

One concern per module: `settings` (the resource), `segments` (the behavioural segment tables),
`strategy` (the strategy tables), `figures` (their figures), `report` (the insights report).
This module is the layer's contract (assets/layer.py): `build_assets`, `RESOURCES`,
`FIGURE_LAYER`.
"""

import dagster as dg

from segment_pipeline.assets.behaviour.figures import (
    FIGURE_KEYS,
    FIGURE_LAYER,
    FIGURE_NAMES,
    FIGURES,
)
from segment_pipeline.assets.behaviour.report import (
    CLV_KEYS,
    DYNAMICS_KEYS,
    REPORT_GROUP,
    REPORT_KEY,
    RFM_KEYS,
    build_report_asset,
)
from segment_pipeline.assets.behaviour.segments import (
    BEHAVIOUR_GROUP,
    CUSTOMER_BEHAVIOUR_CHECK_SQL,
    CUSTOMER_KEY,
    DISTRIBUTION_KEY,
    OCCUPATION_KEY,
    PRICE_KEY,
    SEGMENT_TOTALS_SQL,
    SEGMENTS_KEY,
    TOP_SEGMENT_SQL,
    behavioural_segments,
    category_price_segments,
    customer_behaviour,
    occupation_groups,
    purchase_distribution,
)
from segment_pipeline.assets.behaviour.settings import RESOURCE_KEY, BehaviourSettings
from segment_pipeline.assets.behaviour.strategy import (
    STRATEGY_COVERAGE_SQL,
    STRATEGY_GROUP,
    STRATEGY_KEY,
    SUMMARY_KEY,
    segment_strategy,
    strategy_summary,
)
from segment_pipeline.assets.layer import LayerContext

__all__ = [
    "BEHAVIOUR_GROUP",
    "CLV_KEYS",
    "CUSTOMER_BEHAVIOUR_CHECK_SQL",
    "CUSTOMER_KEY",
    "DISTRIBUTION_KEY",
    "DYNAMICS_KEYS",
    "FIGURES",
    "FIGURE_KEYS",
    "FIGURE_LAYER",
    "FIGURE_NAMES",
    "OCCUPATION_KEY",
    "PRICE_KEY",
    "REPORT_GROUP",
    "REPORT_KEY",
    "RESOURCES",
    "RESOURCE_KEY",
    "RFM_KEYS",
    "SEGMENTS_KEY",
    "SEGMENT_TOTALS_SQL",
    "STRATEGY_COVERAGE_SQL",
    "STRATEGY_GROUP",
    "STRATEGY_KEY",
    "SUMMARY_KEY",
    "TOP_SEGMENT_SQL",
    "BehaviourSettings",
    "behavioural_segments",
    "build_assets",
    "build_report_asset",
    "category_price_segments",
    "customer_behaviour",
    "occupation_groups",
    "purchase_distribution",
    "segment_strategy",
    "strategy_summary",
]

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
