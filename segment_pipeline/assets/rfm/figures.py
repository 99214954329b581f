"""The RFM and preference figures (the five spa_* plots): what each reads and how it is drawn
(`segment_pipeline.logic.rfm_figures`), drawn by the one figures step."""

import duckdb

from segment_pipeline.assets.rfm.preference import (
    CHAMPIONS_VS_NEW_KEY,
    PATTERNS_KEY,
    PREFERENCE_KEY,
    TOP_PRODUCTS_KEY,
)
from segment_pipeline.assets.rfm.settings import RESOURCE_KEY, RfmSettings
from segment_pipeline.assets.tables import ANALYTICS_OWNERS
from segment_pipeline.drawing import PlotFunctions
from segment_pipeline.figures import FigureLayer, FigureSpec, PlotCall
from segment_pipeline.logic import figure_names as names
from segment_pipeline.logic import preference as pref
from segment_pipeline.logic.rfm import RfmWindow, SegmentMap, read_window
from segment_pipeline.tables import read_table

#: The plotting functions by name (drawing.PlotFunction): imported where the figures are
#: drawn (the drawing server), not by loading the definitions.
figs = PlotFunctions("segment_pipeline.logic.rfm_figures")


def _window_note(window: RfmWindow) -> str:
    return f"Sales {window.start} to {window.end}; recency as of {window.as_of}"


def _figure_inputs(
    conn: duckdb.DuckDBPyConnection, settings: RfmSettings
) -> tuple[SegmentMap, str]:
    """The segment map and the window note every RFM and preference figure carries."""
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
