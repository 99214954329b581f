"""Every figure's name, in one place: the last part of its asset key (`figures/<stem>`) and its
PNG file (`<stem>.png`, in the figures folder and in `figures.figures`). The `spa_` and `bsa_`
prefixes are the file names the original analyses used (SPEC); users' links depend on them.
"""

from __future__ import annotations

# RFM segments and segment x product preference (assets/rfm/figures.py)
SEGMENT_PURCHASE_PATTERNS = "spa_segment_purchase_patterns"
CHAMPIONS_VS_NEW_COMPARISON = "spa_champions_vs_new_comparison"
CHAMPIONS_VS_NEW_TOP_PRODUCTS = "spa_champions_vs_new_top_products"
SEGMENT_TOP5_PRODUCTS = "spa_segment_top5_products"
SEGMENT_PRODUCT_HEATMAP = "spa_segment_product_heatmap"
# Behavioural segments and strategy (assets/behaviour/figures.py)
PURCHASE_DISTRIBUTION = "bsa_purchase_distribution"
OCCUPATION_GROUPS = "bsa_occupation_groups"
PRICE_SEGMENTS = "bsa_price_segments"
SEGMENT_VALUE_MAP = "bsa_segment_value_map"
STRATEGY_SUMMARY = "bsa_strategy_summary"
# Customer lifetime value (assets/clv.py)
CLV_BY_SEGMENT = "clv_by_segment"
CLV_CALIBRATION_HOLDOUT = "clv_calibration_holdout"
# Customer dynamics (assets/dynamics.py)
SEGMENT_MIGRATION = "dyn_segment_migration"
SEGMENT_SHARE_OVER_TIME = "dyn_segment_share_over_time"
PRICE_TIER_FLOW = "dyn_price_tier_flow"


def png(stem: str) -> str:
    """The figure's file name."""
    return f"{stem}.png"
