"""The behaviour and strategy figures (the five bsa_* plots): what each reads and how it is
drawn (`segment_pipeline.logic.behaviour_figures`), drawn by the one figures step."""

import dagster as dg
import duckdb

from segment_pipeline.assets.behaviour.segments import DISTRIBUTION_KEY, OCCUPATION_KEY, PRICE_KEY
from segment_pipeline.assets.behaviour.settings import RESOURCE_KEY, BehaviourSettings
from segment_pipeline.assets.behaviour.strategy import STRATEGY_KEY, SUMMARY_KEY
from segment_pipeline.assets.tables import ANALYTICS_OWNERS
from segment_pipeline.drawing import PlotFunctions
from segment_pipeline.figures import FigureLayer, FigureSpec, PlotCall
from segment_pipeline.logic import figure_names as names
from segment_pipeline.logic.behaviour import (
    CATEGORY_PRICE_SEGMENTS,
    OCCUPATION_GROUPS_TABLE,
    PURCHASE_DISTRIBUTION,
)
from segment_pipeline.logic.palette import class_colour
from segment_pipeline.logic.strategy import SEGMENT_STRATEGY, STRATEGY_SUMMARY, RuleTable
from segment_pipeline.tables import read_table

#: The plotting functions by name (drawing.PlotFunction): imported where the figures are
#: drawn (the drawing server), not by loading the definitions.
figs = PlotFunctions("segment_pipeline.logic.behaviour_figures")

FIGURE_NAMES = {
    "distribution": names.PURCHASE_DISTRIBUTION,
    "occupation": names.OCCUPATION_GROUPS,
    "price": names.PRICE_SEGMENTS,
    "value_map": names.SEGMENT_VALUE_MAP,
    "strategy": names.STRATEGY_SUMMARY,
}
FIGURE_KEYS = {k: dg.AssetKey(["figures", stem]) for k, stem in FIGURE_NAMES.items()}


def _class_colours(table: RuleTable) -> dict[str, str]:
    return {c.name: class_colour(c.colour) for c in table.classes}


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
