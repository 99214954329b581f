"""The five RFM figures: RFM segments' purchase patterns, Champions vs New Customers, and
segment x product preference (top products, category heatmap). Small DataFrames in, a
matplotlib Figure out.

Every function takes the (small) mart table it draws, already read into pandas, and returns a
`matplotlib.figure.Figure` built without pyplot state, so rendering is headless and repeatable.
The figure assets (`segment_pipeline.figures.figure_assets`) draw and store the PNGs.

Conventions shared by all five: segments appear in the segment map's display order (Champions
first), each segment keeps one colour (`palette.segment_colour`: seaborn's colour-blind
palette, assigned by the segment name so it is the same in every figure), axes carry units,
product names (not ids) label bars, and each figure says where its numbers come from in a
footnote.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # headless

import numpy as np
import pandas as pd
from matplotlib.colors import ListedColormap, LogNorm
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from segment_pipeline.logic.figure_style import (
    clean_axes,
    empty_figure,
    finish,
    percent_axis,
)
from segment_pipeline.logic.palette import segment_colour
from segment_pipeline.logic.report import pct


def _truncate(text: str, width: int = 34) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _format_value(value: float, kind: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if kind == "percent":
        return f"{100 * value:.1f}%"
    if kind == "money":
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}"
    if kind == "days":
        return f"{value:.0f} d" if value >= 10 else f"{value:.1f} d"
    return f"{value:.2f}"


def _bar_labels(
    ax, bars, values: Sequence[float], kind: str, horizontal: bool, nan_label: str = "n/a"
) -> None:
    """Value labels just past the end of each bar (inside the axes: limits get headroom).
    A missing value gets `nan_label` at the axis so an empty bar is never mistaken for 0."""
    finite = [v for v in values if v is not None and not pd.isna(v)]
    top = max(finite) if finite else 1.0
    top = top if top > 0 else 1.0
    pad = 0.015 * top
    for bar, value in zip(bars, values, strict=True):
        missing = value is None or pd.isna(value)
        label = nan_label if missing else _format_value(float(value), kind)
        colour = "#777777" if missing else "#111111"
        if horizontal:
            ax.text(
                (0 if missing else bar.get_width()) + pad,
                bar.get_y() + bar.get_height() / 2,
                label,
                va="center",
                ha="left",
                fontsize=9,
                color=colour,
                fontstyle="italic" if missing else "normal",
            )
        else:
            ax.text(
                bar.get_x() + bar.get_width() / 2,
                (0 if missing else bar.get_height()) + pad,
                label,
                va="bottom",
                ha="center",
                fontsize=10,
                color=colour,
            )
    if horizontal:
        ax.set_xlim(0, top * 1.28)
    else:
        ax.set_ylim(0, top * 1.18)


def _subtitle(description: str, note: str | None) -> str:
    return f"{description}. {note}" if note else description


def _product_label(name: str, category: str) -> str:
    return f"{_truncate(name)}  ({_truncate(category, 18)})"


# --------------------------------------------------------------------------------------------
# 1. spa_segment_purchase_patterns.png
# --------------------------------------------------------------------------------------------

#: (column, panel title, axis label, value format, label for a missing value)
PATTERN_PANELS: tuple[tuple[str, str, str, str, str], ...] = (
    ("orders_per_customer", "Purchase frequency", "orders per customer", "number", "n/a"),
    ("aov", "Average order value", "revenue per order (sales currency)", "money", "n/a"),
    ("items_per_order", "Basket size", "units per order", "number", "n/a"),
    (
        "category_diversity",
        "Category diversity",
        "distinct categories per customer",
        "number",
        "n/a",
    ),
    ("premium_share", "Premium share", "share of spend on premium products (%)", "percent", "n/a"),
    (
        "mean_days_between_orders",
        "Days between orders",
        "mean days between orders (customers with 2+ orders)",
        "days",
        "n/a: no repeat orders",
    ),
)


def plot_segment_purchase_patterns(
    patterns: pd.DataFrame,
    segment_order: Sequence[str],
    note: str | None = None,
    premium_top_share: float = 0.2,
) -> Figure:
    """Six panels (one per metric) of horizontal bars, one bar per segment.

    `patterns`: rows of marts.segment_purchase_patterns. Segments of `segment_order` without
    customers keep their row (labelled "no customers") so the order matches other figures.
    """
    title = "How each RFM segment buys"
    if patterns.empty:
        return empty_figure(title, "No purchases in the analysis window.")
    data = patterns.set_index("segment").reindex(list(segment_order))
    labels = [
        f"{seg}  (n={int(n):,})" if not pd.isna(n) else f"{seg}  (no customers)"
        for seg, n in zip(data.index, data["customers"], strict=True)
    ]
    colours = [segment_colour(s) for s in data.index]
    y = np.arange(len(data))
    fig = Figure(figsize=(15, 2.4 + 0.42 * len(data) * 2))
    axes = fig.subplots(2, 3, sharey=True)
    for ax, (column, panel, xlabel, kind, nan_label) in zip(axes.flat, PATTERN_PANELS, strict=True):
        values = data[column].astype(float)
        bars = ax.barh(
            y, values.fillna(0.0).to_numpy(), color=colours, edgecolor="#333333", linewidth=0.5
        )
        shown = values.where(data["customers"].notna())
        _bar_labels(ax, bars, list(shown), kind, horizontal=True, nan_label=nan_label)
        ax.set_title(panel, fontsize=12, loc="left", fontweight="bold")
        ax.set_xlabel(xlabel, fontsize=10)
        if kind == "percent":
            percent_axis(ax.xaxis)
        clean_axes(ax)
    axes[0, 0].set_yticks(y, labels, fontsize=10)
    axes[0, 0].invert_yaxis()
    for ax in axes[:, 0]:
        ax.tick_params(axis="y", labelleft=True)
    finish(
        fig,
        title,
        _subtitle("Per segment, in the segment map's order (n = customers)", note),
        "Source: marts.segment_purchase_patterns. AOV = revenue / distinct orders; basket size "
        "= units / orders; premium = typical unit price in the top "
        f"{100 * premium_top_share:g}% of its category.",
        h_pad=1.5,
        w_pad=1.5,
    )
    return fig


# --------------------------------------------------------------------------------------------
# 2. spa_champions_vs_new_comparison.png
# --------------------------------------------------------------------------------------------

COMPARISON_PANELS: tuple[tuple[str, str, str, str], ...] = (
    ("category_diversity", "Category diversity", "distinct categories per customer", "number"),
    ("aov", "Average order value", "revenue per order (sales currency)", "money"),
    ("orders_per_customer", "Purchase frequency", "orders per customer", "number"),
    ("premium_share", "Premium share", "share of spend on premium products (%)", "percent"),
)


def plot_champions_vs_new_comparison(
    patterns: pd.DataFrame,
    group_a: str = "Champions",
    group_b: str = "New Customers",
    note: str | None = None,
    premium_top_share: float = 0.2,
) -> Figure:
    """Four panels comparing two segments (default Champions vs New Customers) on category
    diversity, AOV, purchase frequency and premium share, with the ratio A / B on each."""
    title = f"{group_a} vs {group_b}: how they buy"
    data = patterns.set_index("segment")
    missing = [g for g in (group_a, group_b) if g not in data.index]
    if missing:
        return empty_figure(title, f"No customers in: {', '.join(missing)}.")
    data = data.loc[[group_a, group_b]]
    colours = [segment_colour(group_a), segment_colour(group_b)]
    fig = Figure(figsize=(14, 5.4))
    axes = fig.subplots(1, len(COMPARISON_PANELS))
    names = [f"{g}\n(n={int(data.loc[g, 'customers']):,})" for g in (group_a, group_b)]
    for ax, (column, panel, ylabel, kind) in zip(axes, COMPARISON_PANELS, strict=True):
        values = [float(data.loc[g, column]) for g in (group_a, group_b)]
        bars = ax.bar(
            [0, 1],
            [0 if pd.isna(v) else v for v in values],
            color=colours,
            edgecolor="#333333",
            linewidth=0.6,
            width=0.62,
        )
        _bar_labels(ax, bars, values, kind, horizontal=False)
        ax.set_xticks([0, 1], names, fontsize=10)
        a, b = values
        ratio = (
            f"\nratio {a / b:.1f}x" if b and not pd.isna(a) and not pd.isna(b) else "\nratio n/a"
        )
        ax.set_title(panel + ratio, fontsize=11.5)
        ax.set_ylabel(ylabel, fontsize=10)
        if kind == "percent":
            percent_axis(ax.yaxis)
        clean_axes(ax, grid_axis="y")
    finish(
        fig,
        title,
        _subtitle(f"Ratio = {group_a} / {group_b}", note),
        "Source: marts.segment_purchase_patterns. AOV = revenue / distinct orders; premium = "
        f"typical unit price in the top {100 * premium_top_share:g}% of its category.",
        w_pad=2.5,
    )
    return fig


# --------------------------------------------------------------------------------------------
# 3. spa_champions_vs_new_top_products.png
# --------------------------------------------------------------------------------------------


def plot_champions_vs_new_top_products(
    comparison: pd.DataFrame,
    top_n: int = 10,
    group_a: str = "Champions",
    group_b: str = "New Customers",
    note: str | None = None,
) -> Figure:
    """Each group's top `top_n` products (share of the group's revenue) side by side, on the
    same x scale; products in both lists are hatched.

    `comparison`: rows of marts.champions_vs_new_products (only level = product is used).
    """
    title = f"Top {top_n} products: {group_a} vs {group_b}"
    products = comparison[comparison["level"] == "product"]
    groups = ((group_a, "champions"), (group_b, "new"))
    tops = {
        prefix: products[
            products[f"{prefix}_rank"].notna() & (products[f"{prefix}_rank"] <= top_n)
        ].sort_values(f"{prefix}_rank")
        for _, prefix in groups
    }
    if all(t.empty for t in tops.values()):
        return empty_figure(title, f"No purchases by {group_a} or {group_b}.")
    both = set(tops["champions"]["item_id"]) & set(tops["new"]["item_id"])
    fig = Figure(figsize=(15, 1.9 + 0.42 * top_n))
    axes = fig.subplots(1, 2)
    share_max = max(
        (float(t[f"{p}_share"].max()) for p, t in tops.items() if not t.empty), default=0.0
    )
    for ax, (group, prefix) in zip(axes, groups, strict=True):
        top = tops[prefix]
        ax.set_title(group, fontsize=12.5, fontweight="bold", loc="left")
        if top.empty:
            ax.axis("off")
            ax.text(0.5, 0.5, f"No purchases by {group}", ha="center", va="center")
            continue
        y = np.arange(len(top))
        shares = top[f"{prefix}_share"].astype(float).tolist()
        bars = ax.barh(y, shares, color=segment_colour(group), edgecolor="#333333", linewidth=0.5)
        for bar, item in zip(bars, top["item_id"], strict=True):
            if item in both:
                bar.set_hatch("///")
        _bar_labels(ax, bars, shares, "percent", horizontal=True)
        ax.set_xlim(0, share_max * 1.3 if share_max > 0 else 1)
        ax.set_yticks(
            y,
            [_product_label(n, c) for n, c in zip(top["item_name"], top["category"], strict=True)],
            fontsize=9.5,
        )
        ax.invert_yaxis()
        ax.set_xlabel(f"share of the {group} segment's revenue (%)", fontsize=10)
        percent_axis(ax.xaxis)
        clean_axes(ax)
    fig.legend(
        handles=[
            Patch(facecolor="white", edgecolor="#333333", hatch="///", label="in both top-10 lists")
        ],
        loc="upper right",
        frameon=False,
        fontsize=9.5,
        bbox_to_anchor=(0.995, 1 - 0.40 / fig.get_figheight()),
    )
    finish(
        fig,
        title,
        _subtitle("Ranked by revenue within each group; same x scale in both panels", note),
        "Source: marts.champions_vs_new_products (level = product). Ties in revenue are broken "
        "by product id.",
        w_pad=3.0,
    )
    return fig


# --------------------------------------------------------------------------------------------
# 4. spa_segment_top5_products.png
# --------------------------------------------------------------------------------------------


def plot_segment_top_products(
    top_products: pd.DataFrame,
    segments: Sequence[str],
    top_n: int = 5,
    note: str | None = None,
) -> Figure:
    """One panel per segment in `segments` (display order): its top `top_n` products by share
    of the segment's revenue, all on the same x scale. Segments without purchases are skipped.

    `top_products`: rows of marts.segment_top_products.
    """
    title = f"Top {top_n} products of the main RFM segments"
    present = [s for s in segments if s in set(top_products["segment"])]
    if not present:
        return empty_figure(title, "None of the selected segments has purchases.")
    ncols = 2 if len(present) > 1 else 1
    nrows = math.ceil(len(present) / ncols)
    fig = Figure(figsize=(15, 1.4 + nrows * (0.36 * top_n + 1.0)))
    axes = np.atleast_1d(fig.subplots(nrows, ncols)).ravel()
    shown = top_products[top_products["rank"] <= top_n]
    share_max = float(shown["revenue_share"].max()) if not shown.empty else 0.0
    for ax, segment in zip(axes, present, strict=False):
        top = shown[shown["segment"] == segment].sort_values("rank")
        y = np.arange(len(top))
        shares = top["revenue_share"].astype(float).tolist()
        bars = ax.barh(y, shares, color=segment_colour(segment), edgecolor="#333333", linewidth=0.5)
        _bar_labels(ax, bars, shares, "percent", horizontal=True)
        ax.set_xlim(0, share_max * 1.3 if share_max > 0 else 1)
        ax.set_yticks(
            y,
            [
                _product_label(n, c)
                for n, c in zip(top["product_name"], top["category"], strict=True)
            ],
            fontsize=9.5,
        )
        ax.invert_yaxis()
        ax.set_title(segment, fontsize=12, fontweight="bold", loc="left")
        ax.set_xlabel("share of the segment's revenue (%)", fontsize=9.5)
        percent_axis(ax.xaxis)
        clean_axes(ax)
    for ax in axes[len(present) :]:
        ax.axis("off")
    finish(
        fig,
        title,
        _subtitle("Ranked by revenue within each segment; same x scale in every panel", note),
        "Source: marts.segment_top_products. Ties in revenue are broken by product id.",
        h_pad=1.5,
        w_pad=3.0,
    )
    return fig


# --------------------------------------------------------------------------------------------
# 5. spa_segment_product_heatmap.png
# --------------------------------------------------------------------------------------------

_INDEX_TICKS = (0.25, 0.33, 0.5, 0.67, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0)


def plot_segment_category_heatmap(
    preference: pd.DataFrame,
    segment_order: Sequence[str],
    value: str = "shrunk_index",
    note: str | None = None,
    min_support_customers: int | None = None,
) -> Figure:
    """Segment (rows, display order) x category (columns, by overall share of spend) heatmap
    of the preference index on a log colour scale centred on 1 (diverging red-blue palette:
    red = the segment buys more of the category than all customers do, blue = less). Cells
    with low support have grey italic numbers.

    `preference`: rows of marts.segment_category_preference, which has no `Unknown` column
    (lines without a category take no part in the index); when there were such lines, the
    footnote gives their share of spend.
    """
    title = "Category preference by RFM segment"
    if preference.empty:
        return empty_figure(title, "No purchases with a category in the analysis window.")
    uncategorised = _uncategorised_share(preference)
    categories = (
        preference.groupby("category")["overall_share"]
        .first()
        .sort_values(ascending=False, kind="stable")
    )
    rows = [s for s in segment_order if s in set(preference["segment"])]
    columns = list(categories.index)
    grid = (
        preference.pivot(index="segment", columns="category", values=value)
        .reindex(index=rows, columns=columns)
        .astype(float)
    )
    low = (
        preference.pivot(index="segment", columns="category", values="low_support")
        .reindex(index=rows, columns=columns)
        .astype("boolean")
        .fillna(False)
        .astype(bool)
    )
    values = grid.to_numpy()
    # The colour range follows the cells with enough support: a cell a handful of customers
    # made cannot stretch (or saturate) the scale; it is drawn faded, its number in grey.
    supported = values[~low.to_numpy()] if (~low.to_numpy()).any() else values
    finite = supported[np.isfinite(supported) & (supported > 0)]
    spread = max(float(finite.max()), 1 / float(finite.min())) if finite.size else 2.0
    limit = min(max(spread, 1.5), 4.0)
    norm = LogNorm(vmin=1 / limit, vmax=limit)
    # log(0) is undefined: a cell without spend shows the lowest colour (its number says 0.00)
    plotted = grid.clip(lower=1 / limit, upper=limit)

    fig = Figure(figsize=(max(10.0, 0.72 * len(columns) + 4.5), 2.6 + 0.5 * len(rows)))
    ax = fig.subplots()
    # A heatmap as seaborn draws one (cells with white borders, no spines, rows top-down),
    # in matplotlib alone: importing seaborn and the scipy.stats it pulls in took longer than
    # drawing the figure.
    mesh = ax.pcolormesh(
        np.ma.masked_invalid(plotted.to_numpy()),
        cmap="RdBu_r",
        norm=norm,
        edgecolors="white",
        linewidth=0.6,
    )
    # Low-support cells: a white veil over their colour (the number stays readable).
    faded = np.ma.masked_where(~low.to_numpy(), np.ones(low.shape))
    ax.pcolormesh(
        faded, cmap=ListedColormap(["white"]), alpha=0.6, edgecolors="white", linewidth=0.6
    )
    ax.set_xlim(0, len(columns))
    ax.set_ylim(0, len(rows))
    ax.invert_yaxis()
    for spine in ax.spines.values():
        spine.set_visible(False)
    colourbar = fig.colorbar(
        mesh,
        ax=ax,
        label="preference index (log scale; 1 = same as all customers)",
        shrink=0.9,
        pad=0.015,
    )
    colourbar.outline.set_linewidth(0)
    ticks = [t for t in _INDEX_TICKS if 1 / limit <= t <= limit]
    colourbar.set_ticks(ticks, labels=[f"{t:g}" for t in ticks])
    colourbar.minorticks_off()
    for i, segment in enumerate(rows):
        for j, category in enumerate(columns):
            v = grid.loc[segment, category]
            if pd.isna(v):
                continue
            shade = float(norm(min(max(v, 1 / limit), limit)))
            dark = shade < 0.2 or shade > 0.8
            if bool(low.loc[segment, category]):
                colour, style = "#555555", "italic"  # on the faded cell
            else:
                colour, style = ("white" if dark else "#222222"), "normal"
            ax.text(
                j + 0.5,
                i + 0.5,
                f"{v:.2f}",
                ha="center",
                va="center",
                fontsize=8,
                color=colour,
                fontstyle=style,
            )
    ax.set_xticks(
        np.arange(len(columns)) + 0.5,
        [f"{c} ({100 * s:.1f}%)" for c, s in categories.items()],
        rotation=40,
        ha="right",
        rotation_mode="anchor",
        fontsize=9,
    )
    ax.set_yticks(np.arange(len(rows)) + 0.5, rows, rotation=0, fontsize=10)
    ax.tick_params(length=0)
    ax.set_xlabel(
        "category (its share of all spend on lines with a category)"
        if uncategorised
        else "category (its share of all spend)",
        fontsize=10,
    )
    ax.set_ylabel("RFM segment", fontsize=10)
    kind = (
        "shrunk toward 1 by empirical Bayes so small segments do not dominate"
        if value == "shrunk_index"
        else "raw, without shrinkage"
    )
    support = (
        f"fewer than {min_support_customers} of the segment's customers bought the category"
        if min_support_customers
        else "few customers bought the category"
    )
    finish(
        fig,
        title,
        _subtitle(
            "Index = the segment's share of spend in the category / all customers' share"
            f" ({kind}).\nRed = the segment buys more of the category than average, "
            "blue = less",
            note,
        ),
        f"Source: marts.segment_category_preference ({value}). Faded cells, grey italic "
        f"numbers: low support ({support}); they do not set the colour range. Colours "
        f"saturate beyond {1 / limit:.2g} and {limit:.2g}."
        + (
            f"\nLines without a category (Unknown, {pct(uncategorised)} of spend) take no "
            "part in the index and are not shown."
            if uncategorised
            else ""
        ),
    )
    return fig


def _uncategorised_share(preference: pd.DataFrame) -> float:
    """Share of all spend on lines without a category, from the per-segment columns of
    marts.segment_category_preference (0 when the column is absent)."""
    if "segment_uncategorised_revenue" not in preference:
        return 0.0
    per_segment = preference.groupby("segment")[
        ["segment_revenue", "segment_uncategorised_revenue"]
    ].first()
    left_out = float(per_segment["segment_uncategorised_revenue"].sum())
    total = left_out + float(per_segment["segment_revenue"].sum())
    return left_out / total if total > 0 else 0.0
