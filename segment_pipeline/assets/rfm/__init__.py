"""Seed A: RFM segments, segment x product preference tables and the five seed figures.

Lineage: staging (sale lines, customers, products) -> marts.rfm_customer_segments ->
marts.rfm_summary and marts.segment_product_purchases -> the preference tables -> figures.
The assets are thin: the SQL and the plots live in `segment_pipeline.logic.rfm`,
`.preference` and `.rfm_figures`. Parameters are the `rfm_settings` resource
(:class:`RfmSettings`), validated - segment map included - before any asset does work.

One concern per module: `settings` (the resource, the window metadata), `segments` (the RFM
tables), `preference` (the segment x product tables), `figures` (their figures). This module is
the layer's contract (assets/layer.py): `build_assets`, `RESOURCES`, `FIGURE_LAYER`.
"""

import dagster as dg

from segment_pipeline.assets.layer import LayerContext
from segment_pipeline.assets.rfm.figures import FIGURE_LAYER, FIGURES
from segment_pipeline.assets.rfm.preference import (
    CHAMPIONS_VS_NEW_KEY,
    PATTERNS_KEY,
    PREFERENCE_KEY,
    PRODUCT_SUMMARY_KEY,
    PURCHASES_KEY,
    TOP_PRODUCTS_KEY,
    champions_vs_new_products,
    segment_category_preference,
    segment_product_purchases,
    segment_product_summary,
    segment_purchase_patterns,
    segment_top_products,
)
from segment_pipeline.assets.rfm.segments import (
    RFM_KEY,
    RFM_SUMMARY_KEY,
    rfm_customer_segments,
    rfm_summary,
)
from segment_pipeline.assets.rfm.settings import (
    DEFAULT_TOP5_SEGMENTS,
    RESOURCE_KEY,
    RfmSettings,
    window_metadata,
)

__all__ = [
    "CHAMPIONS_VS_NEW_KEY",
    "DEFAULT_TOP5_SEGMENTS",
    "FIGURES",
    "FIGURE_LAYER",
    "PATTERNS_KEY",
    "PREFERENCE_KEY",
    "PRODUCT_SUMMARY_KEY",
    "PURCHASES_KEY",
    "RESOURCES",
    "RESOURCE_KEY",
    "RFM_KEY",
    "RFM_SUMMARY_KEY",
    "TABLE_ASSETS",
    "TOP_PRODUCTS_KEY",
    "RfmSettings",
    "build_assets",
    "champions_vs_new_products",
    "rfm_customer_segments",
    "rfm_summary",
    "segment_category_preference",
    "segment_product_purchases",
    "segment_product_summary",
    "segment_purchase_patterns",
    "segment_top_products",
    "window_metadata",
]

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
