"""The two CLV figures: small mart tables in (pandas), a matplotlib Figure out.

Same visual standard as the RFM figures (`rfm_figures`: their title / subtitle / footnote
layout, value labels and axes helpers are reused): RFM segments in their own colours and
display order, strategy classes in the rule table's colours (`palette`), amounts in the data's
currency units, and every figure names its source table in a footnote.
`segment_pipeline.figures.figure_assets` draws and stores the PNGs (deterministic bytes).
"""

from __future__ import annotations

import textwrap

import matplotlib

matplotlib.use("Agg")  # headless

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from segment_pipeline.logic.behaviour_figures import short_segment
from segment_pipeline.logic.figure_style import clean_axes, empty_figure, finish
from segment_pipeline.logic.palette import NEUTRAL_GREY, OKABE_ITO, segment_colour
from segment_pipeline.logic.rfm_figures import _bar_labels, _truncate

__all__ = [
    "plot_calibration_holdout",
    "plot_clv_by_segment",
    "unavailable_figure",
]

#: (dimension, panel title) of plot_clv_by_segment, left to right.
PANELS: tuple[tuple[str, str], ...] = (
    ("rfm_segment", "RFM segments"),
    ("strategy_class", "Strategy classes"),
    ("behavioural_segment", "Top behavioural segments"),
)
TOP_BEHAVIOURAL = 10


def _panel_rows(by_segment: pd.DataFrame, dimension: str) -> pd.DataFrame:
    rows = by_segment[by_segment["dimension"] == dimension]
    if dimension == "behavioural_segment":  # many small segments: the most valuable ones
        return rows.sort_values(["total_clv", "segment"], ascending=[False, True]).head(
            TOP_BEHAVIOURAL
        )
    return rows.sort_values(["segment_order", "segment"])


def _colour(dimension: str, segment: str, class_colours: dict[str, str]) -> str:
    if dimension == "rfm_segment":
        return segment_colour(segment)
    if dimension == "strategy_class":
        return class_colours.get(segment, NEUTRAL_GREY)
    return OKABE_ITO[0]


def _label(dimension: str, segment: str) -> str:
    """Behavioural segments as in the behavioural figures (`M 26-35 · Occ_High · Price_High`)."""
    parts = str(segment).split(" | ")
    if dimension == "behavioural_segment" and len(parts) == 4:
        keys = ("age_band", "gender", "occupation_group", "price_segment")
        return short_segment(dict(zip(keys, parts, strict=True)))
    return _truncate(str(segment), 34)


def _draw_panel(ax, rows: pd.DataFrame, dimension: str, title: str, colours: dict) -> None:
    y = np.arange(len(rows))
    labels = [
        f"{_label(dimension, s)}  (n={int(n):,}, mean {m:,.0f})"
        for s, n, m in zip(rows["segment"], rows["customers"], rows["mean_clv"], strict=True)
    ]
    bars = ax.barh(
        y,
        rows["total_clv"].to_numpy(float),
        color=[_colour(dimension, s, colours) for s in rows["segment"]],
        edgecolor="#333333",
        linewidth=0.5,
    )
    _bar_labels(ax, bars, list(rows["total_clv"]), "money", horizontal=True)
    ax.set_yticks(y, labels, fontsize=9)
    ax.invert_yaxis()
    ax.set_title(title, fontsize=12, loc="left", fontweight="bold")
    ax.set_xlabel("predicted CLV, total (sales currency)", fontsize=10)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=4))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: _compact(v)))
    clean_axes(ax)


def _compact(value: float) -> str:
    """Axis ticks as 0, 500, 20k, 1.5M (long numbers overlap on narrow panels)."""
    for size, suffix in ((1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:g}{suffix}"
    return f"{value:g}"


def unavailable_figure(title: str, reason: str, what: str = "CLV") -> Figure:
    """The panel drawn instead of a CLV figure: "<what> not available: <reason>" (wrapped to
    the panel's width; deterministic like every figure)."""
    message = "\n".join(textwrap.wrap(f"{what} not available: {reason}", width=90))
    return empty_figure(title, message)


def plot_clv_by_segment(
    by_segment: pd.DataFrame,
    class_colours: dict[str, str],
    horizon_months: int,
    unavailable: str | None = None,
) -> Figure:
    """Total predicted CLV per RFM segment, per strategy class and for the top behavioural
    segments (horizontal bars; n and the mean CLV per customer in each label). Without rows,
    a "CLV not available" panel with `unavailable` as the reason."""
    title = "Predicted customer lifetime value by segment"
    if by_segment.empty:
        return unavailable_figure(title, unavailable or "no CLV predictions in the warehouse")
    panels = [(d, t, _panel_rows(by_segment, d)) for d, t in PANELS]
    tallest = max(len(rows) for _, _, rows in panels)
    fig = Figure(figsize=(19, 2.2 + 0.42 * max(tallest, 4)))
    axes = fig.subplots(1, len(panels))
    for ax, (dimension, panel_title, rows) in zip(axes, panels, strict=True):
        _draw_panel(ax, rows, dimension, panel_title, class_colours)
    finish(
        fig,
        title,
        f"Expected spend over the next {horizon_months} months, discounted monthly "
        "(BG/NBD purchase days x Gamma-Gamma spend per purchase day)",
        "Source: marts.clv_by_segment (from marts.clv_customer_predictions). Bars = total CLV; "
        "labels: customers and mean CLV per customer.",
        w_pad=2.0,
    )
    return fig


def plot_calibration_holdout(holdout: pd.DataFrame, skipped: str | None = None) -> Figure:
    """Mean predicted vs actual holdout purchase days per calibration-frequency group (the
    validation figure of Fader, Hardie & Lee 2005). Without rows, a panel saying why
    (`skipped`: the reason recorded by marts/clv_calibration_holdout)."""
    title = "BG/NBD calibration / holdout check"
    if holdout.empty:
        return unavailable_figure(
            title,
            skipped or "skipped, see the metadata of marts/clv_calibration_holdout",
            what="Calibration / holdout check",
        )
    data = holdout.sort_values("group_order")
    x = np.arange(len(data))
    fig = Figure(figsize=(11, 5.6))
    ax = fig.subplots()
    width = 0.38
    for offset, column, label, colour in (
        (-width / 2, "actual_purchases", "actual", OKABE_ITO[0]),
        (width / 2, "predicted_purchases", "predicted (BG/NBD)", OKABE_ITO[1]),
    ):
        bars = ax.bar(x + offset, data[column].to_numpy(float), width, label=label, color=colour)
        _bar_labels(ax, bars, list(data[column]), "number", horizontal=False)
    top = float(data[["actual_purchases", "predicted_purchases"]].max().max())
    ax.set_ylim(0, (top if top > 0 else 1.0) * 1.18)  # room for both bars' labels
    counts = [
        f"{g}\n(n={int(n):,})"
        for g, n in zip(data["frequency_group"], data["customers"], strict=True)
    ]
    ax.set_xticks(x, counts, fontsize=9.5)
    ax.set_xlabel("repeat purchase days in the calibration period", fontsize=10)
    ax.set_ylabel("mean purchase days in the holdout, per customer", fontsize=10)
    ax.legend(frameon=False, loc="upper left")
    clean_axes(ax, grid_axis="y")
    first = data.iloc[0]
    finish(
        fig,
        title,
        f"Fitted on {first['calibration_start']:%Y-%m-%d} .. {first['calibration_end']:%Y-%m-%d}, "
        f"predicted for the next {int(first['holdout_days'])} days (to "
        f"{first['holdout_end']:%Y-%m-%d})",
        "Source: marts.clv_calibration_holdout. Totals: actual "
        f"{data['actual_total'].sum():,.0f}, predicted {data['predicted_total'].sum():,.0f} "
        "purchase days.",
    )
    return fig
