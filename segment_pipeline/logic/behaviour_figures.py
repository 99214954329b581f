"""The five behavioural figures: the line-amount distribution, occupation groups, price
segments, behavioural segments on a value map, and the strategy classes' shares. Small mart
tables in (pandas), a matplotlib Figure out.

Built without pyplot state (headless, repeatable); `segment_pipeline.figures.figure_assets`
draws and stores the PNGs. Shared conventions (colours from `palette`): the Okabe-Ito palette;
low / mid / high tiers always in the same three colours (`TIER_COLOURS`: light blue, dark
blue, orange; Occ_Other grey), strategy classes in the colours of the rule table and in its
order; amounts are in the data's currency units; codes that are bare numbers (Black Friday's
occupations and categories) are labelled "Occupation 8", "Category 5"; each figure names its
source table in a footnote.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.legend import Legend
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter

from segment_pipeline.logic.behaviour import (
    OCC_HIGH,
    OCC_LOW,
    OCC_MID,
    OCC_OTHER,
    PRICE_HIGH,
    PRICE_LOW,
    PRICE_MID,
    PRICE_UNKNOWN,
)
from segment_pipeline.logic.figure_style import (
    FOOTNOTE_SIZE,
    SUBTITLE_COLOUR,
    SUBTITLE_SIZE,
    TITLE_SIZE,
    add_subtitle,
)
from segment_pipeline.logic.palette import NEUTRAL_GREY, OKABE_ITO, TIER_COLOURS
from segment_pipeline.logic.report import money, pct, skew_words


def code_label(value: str, kind: str) -> str:
    """`8` -> `Occupation 8`; readable names stay as they are."""
    text = str(value)
    return f"{kind} {text}" if text.isdigit() else text


def _title(fig: Figure, title: str, subtitle: str | None = None) -> None:
    fig.suptitle(title, fontsize=TITLE_SIZE, fontweight="bold", x=0.01, ha="left", y=0.995)
    if subtitle:
        fig.text(0.01, 0.945, subtitle, fontsize=SUBTITLE_SIZE, ha="left", va="top",
                 color=SUBTITLE_COLOUR)  # fmt: skip


def _layout(
    fig: Figure, left: float, right: float = 0.98, top_in: float = 0.95, bottom_in: float = 0.85
) -> None:
    """Margins in inches at top (title + subtitle) and bottom (x label + footnote), so tall
    and short figures look alike."""
    height = fig.get_size_inches()[1]
    fig.subplots_adjust(left=left, right=right, top=1 - top_in / height, bottom=bottom_in / height)


def _title_fixed(fig: Figure, title: str, subtitle: str | None = None) -> None:
    """Title and subtitle at fixed distances (inches) from the top edge."""
    height = fig.get_size_inches()[1]
    fig.suptitle(
        title,
        fontsize=TITLE_SIZE,
        fontweight="bold",
        x=0.01,
        ha="left",
        y=1 - 0.08 / height,
        va="top",
    )
    if subtitle:
        add_subtitle(fig, subtitle, 0.42)


def _footnote(fig: Figure, text: str) -> None:
    fig.text(0.01, 0.005, text, fontsize=FOOTNOTE_SIZE, ha="left", va="bottom", color="#555555")


def _legend_above(ax, **kwargs: Any) -> Legend:
    """A legend in one row just above the axes, left-aligned, without a frame."""
    return ax.legend(
        loc="lower left", bbox_to_anchor=(0.0, 1.0), frameon=False, fontsize=9.5, **kwargs
    )


def _empty_figure(title: str, message: str) -> Figure:
    fig = Figure(figsize=(9, 3.5))
    ax = fig.subplots()
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=12)
    _title(fig, title)
    return fig


def _stat(dist: pd.DataFrame, measure: str, name: str) -> float | None:
    hit = dist[(dist["measure"] == measure) & (dist["name"] == name)]
    if hit.empty or pd.isna(hit["value"].iloc[0]):
        return None
    return float(hit["value"].iloc[0])


# --------------------------------------------------------------------------------------------
# 1. Purchase distribution
# --------------------------------------------------------------------------------------------


def plot_purchase_distribution(dist: pd.DataFrame) -> Figure:
    """Raw and log1p histograms side by side, price clusters shaded and their centres marked
    (a cluster's centre is its mixture component's mean on the log1p scale)."""
    raw = dist[dist["measure"] == "histogram_raw"]
    log = dist[dist["measure"] == "histogram_log1p"]
    clusters = dist[dist["measure"] == "cluster"].sort_values("log1p_value")
    skew_raw = _stat(dist, "skewness", "raw")
    skew_log = _stat(dist, "skewness", "log1p")
    shape = skew_words(skew_raw) if skew_raw is not None else "distribution"
    title = f"Line amounts: {shape}, with {_plural(len(clusters), 'price cluster')}"
    if log["lines"].fillna(0).sum() == 0:
        return _empty_figure("Line amounts", "No sale lines to draw.")
    fig = Figure(figsize=(13, 5.6))
    ax_raw, ax_log = fig.subplots(1, 2, gridspec_kw={"wspace": 0.18})

    bins = raw[raw["name"] != "above_p99"]
    ax_raw.bar(
        bins["lower"],
        bins["lines"],
        width=(bins["upper"] - bins["lower"]),
        align="edge",
        color=OKABE_ITO[0],
        edgecolor="white",
        linewidth=0.3,
    )
    overflow = raw[raw["name"] == "above_p99"]
    above = int(overflow["lines"].iloc[0]) if not overflow.empty else 0
    skew_text = f"skewness {skew_raw:.2f}; " if skew_raw is not None else ""
    ax_raw.set_title(
        f"Raw amounts ({skew_text}0 to the 99th percentile, {above:,} lines above not shown)",
        fontsize=10.5,
    )
    ax_raw.set_xlabel("Line amount (currency units)")
    ax_raw.set_ylabel("Sale lines per bin")
    p99 = float(bins["upper"].max()) if not bins.empty else None
    marked = False
    for _, c in clusters.iterrows():
        if p99 is None or c["value"] <= p99:
            ax_raw.axvline(
                c["value"],
                color=OKABE_ITO[3],
                linestyle="--",
                linewidth=1.2,
                label=None if marked else "price cluster centres",
            )
            marked = True
    if marked:
        ax_raw.legend(loc="best", fontsize=9.5)

    centres = log["log1p_value"].to_numpy(dtype=float)
    width = float(np.median(np.diff(centres))) if len(centres) > 1 else 1.0
    ax_log.bar(
        centres, log["lines"], width=width, color=OKABE_ITO[0], edgecolor="white", linewidth=0.3
    )
    ymax = float(log["lines"].max())
    shades = ["#f2f2f2", "#dddddd"]
    span = (centres.max() - centres.min() + width) or 1.0
    # labels stack in up to three rows: each goes to the lowest row whose last label is at
    # least ~1/6 of the axis away (six clusters on a narrow range still read)
    row_last = [-math.inf] * 3
    for k, (_, c) in enumerate(clusters.iterrows()):
        lo, hi = math.log1p(max(c["lower"], 0.0)), math.log1p(max(c["upper"], 0.0))
        ax_log.axvspan(lo, hi, color=shades[k % 2], zorder=0)
        ax_log.axvline(c["log1p_value"], color=OKABE_ITO[3], linestyle="--", linewidth=1.2)
        x = c["log1p_value"]
        free = [r for r, last in enumerate(row_last) if (x - last) / span >= 0.17]
        level = free[0] if free else int(np.argmin(row_last))
        row_last[level] = x
        ax_log.text(
            x,
            ymax * (1.02 + 0.15 * level),
            f"≈ {money(c['value'], whole_from=100)}\n{100 * c['share']:.0f}% of lines",
            ha="center",
            va="bottom",
            fontsize=8.5,
            color=OKABE_ITO[3],
            zorder=5,
            bbox={"facecolor": "white", "edgecolor": "none", "pad": 1.5},
        )
    ax_log.set_ylim(0, ymax * 1.55)
    ticks = [
        t
        for t in (0, 1, 3, 10, 30, 100, 300, 1000, 3000, 10000, 30000)
        if centres.min() - width <= math.log1p(t) <= centres.max() + width
    ]
    ax_log.set_xticks([math.log1p(t) for t in ticks])
    ax_log.set_xticklabels([f"{t:,}" for t in ticks])
    ax_log.set_xlabel("Line amount (log1p scale; ticks in currency units)")
    ax_log.set_ylabel("Sale lines per bin")
    skew_text = f"skewness {skew_log:.2f}; " if skew_log is not None else ""
    ax_log.set_title(
        f"log1p(amount) ({skew_text}price clusters shaded, centres marked)", fontsize=10.5
    )
    for ax in (ax_raw, ax_log):
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
        ax.spines[["top", "right"]].set_visible(False)
    lines_total = _stat(dist, "summary", "lines")
    _title(
        fig,
        title,
        f"{lines_total:,.0f} sale lines. Large purchases are kept as real "
        "behaviour, not outliers; the log1p scale shows the price levels."
        if lines_total
        else None,
    )
    _footnote(
        fig,
        "Source: marts.purchase_distribution (histograms computed in DuckDB; price clusters: "
        "a Gaussian mixture on log1p(amount), components chosen by BIC, cut where neighbours' "
        "densities cross).",
    )
    fig.subplots_adjust(top=0.84, bottom=0.14, left=0.06, right=0.99)
    return fig


# --------------------------------------------------------------------------------------------
# 2. Occupation groups
# --------------------------------------------------------------------------------------------


def plot_occupation_groups(groups: pd.DataFrame, min_customers: int) -> Figure:
    """One bar per occupation code: typical line amount, coloured by occupation group."""
    title = "Occupation groups by typical line amount"
    if groups.empty:
        return _empty_figure(title, "No occupations in the data.")
    # bottom to top: Occ_Other, then the ranked groups low to high (each by its mean)
    rank = {OCC_OTHER: 0, OCC_LOW: 1, OCC_MID: 2, OCC_HIGH: 3}
    data = (
        groups.assign(_g=groups["occupation_group"].map(rank).fillna(0))
        .sort_values(["_g", "mean_log1p_amount", "occupation"])
        .reset_index(drop=True)
    )
    fig = Figure(figsize=(11, max(4.0, 0.32 * len(data) + 1.9)))
    ax = fig.subplots()
    y = np.arange(len(data))
    colours = [TIER_COLOURS.get(g, NEUTRAL_GREY) for g in data["occupation_group"]]
    bars = ax.barh(y, data["typical_line_amount"], color=colours, edgecolor="white")
    for bar, group in zip(bars, data["occupation_group"], strict=True):
        if group == OCC_OTHER:
            bar.set_hatch("//")
            bar.set_edgecolor("#555555")
    xmax = float(data["typical_line_amount"].max())
    for i, row in data.iterrows():
        ax.text(
            row["typical_line_amount"] + xmax * 0.01,
            i,
            f"{money(row['typical_line_amount'], whole_from=100)}  ·  "
            f"{_count(int(row['customers']), 'customer')}",
            va="center",
            fontsize=9,
        )
    ax.set_yticks(y)
    ax.set_yticklabels([code_label(o, "Occupation") for o in data["occupation"]])
    ax.set_xlim(0, xmax * 1.32)
    ax.set_xlabel("Typical line amount = expm1(mean log1p(line amount)) (currency units)")
    ax.spines[["top", "right"]].set_visible(False)
    present = [
        g for g in (OCC_HIGH, OCC_MID, OCC_LOW, OCC_OTHER) if g in set(data["occupation_group"])
    ]
    _legend_above(
        ax,
        handles=[
            Patch(
                facecolor=TIER_COLOURS[g],
                hatch="//" if g == OCC_OTHER else None,
                edgecolor="#555555" if g == OCC_OTHER else "white",
                label=_plural(int((data["occupation_group"] == g).sum()), "code", prefix=f"{g} ("),
            )
            for g in present
        ],
        ncol=4,
    )
    ax.set_ylim(-0.6, len(data) - 0.4)
    _title_fixed(
        fig,
        title,
        "Codes ranked by mean log1p(line amount), split into terciles; "
        f"codes with fewer than {min_customers} customers (and Unknown) are Occ_Other.",
    )
    _footnote(
        fig,
        "Source: marts.occupation_groups. Occupation codes are anonymised and carry "
        "no order of their own.",
    )
    _layout(fig, left=0.14, top_in=1.25)
    return fig


def _plural(n: int, word: str, prefix: str = "") -> str:
    return f"{prefix}{n} {word}{'' if n == 1 else 's'}{')' if prefix else ''}"


def _count(n: int, word: str) -> str:
    """`1 customer`, `2,345 customers`."""
    return f"{n:,} {word}{'' if n == 1 else 's'}"


# --------------------------------------------------------------------------------------------
# 3. Price segments
# --------------------------------------------------------------------------------------------


def plot_price_segments(categories: pd.DataFrame) -> Figure:
    """One dot per tiered category: median line amount (log scale), coloured by price segment.
    Dots, not bars: on a log axis a bar's length is not proportional to its value.

    `Unknown` (lines without a category) takes no tier: it is not drawn among the categories,
    and the footnote gives its lines and share of gross sales.
    """
    title = "Price segments: categories by median line amount"
    if categories.empty:
        return _empty_figure(title, "No categories in the data.")
    untiered = categories["price_segment"] == PRICE_UNKNOWN
    footnote = "Source: marts.category_price_segments."
    if untiered.any():
        total = float(categories["gross_sales"].sum())
        left_out = categories[untiered]
        footnote = (
            "Not drawn: Unknown (lines without a category; "
            f"{_plural(int(left_out['lines'].sum()), 'line')}, "
            f"{pct(float(left_out['gross_sales'].sum()) / total if total else None)} of "
            "gross sales) takes no price tier. " + footnote
        )
    if untiered.all():
        return _empty_figure(title, "No line has a category, so no category has a price tier.")
    data = (
        categories[~untiered].sort_values(["median_line_amount", "category"]).reset_index(drop=True)
    )
    fig = Figure(figsize=(11, max(4.0, 0.32 * len(data) + 1.9)))
    ax = fig.subplots()
    y = np.arange(len(data))
    ax.scatter(
        data["median_line_amount"].clip(lower=0.01),
        y,
        s=70,
        color=[TIER_COLOURS[s] for s in data["price_segment"]],
        edgecolor="white",
        zorder=3,
    )
    ax.grid(axis="y", color="#e6e6e6", linewidth=0.8, zorder=0)
    ax.set_xscale("log")
    xmax = float(data["median_line_amount"].max())
    for i, row in data.iterrows():
        ax.text(
            max(row["median_line_amount"], 0.01) * 1.06,
            i,
            f"{money(row['median_line_amount'], whole_from=100)}  ·  "
            f"{_count(int(row['lines']), 'line')}",
            va="center",
            fontsize=9,
        )
    ax.set_xlim(right=max(xmax, 1) * 3)
    ax.set_yticks(y)
    ax.set_yticklabels([code_label(c, "Category") for c in data["category"]])
    ax.set_xlabel("Median line amount (currency units, log scale)")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1 else f"{v:g}"))
    ax.spines[["top", "right"]].set_visible(False)
    _legend_above(
        ax,
        handles=[
            Patch(
                facecolor=TIER_COLOURS[s],
                label=_plural(
                    int((data["price_segment"] == s).sum()), "category", prefix=f"{s} ("
                ).replace("categorys", "categories"),
            )
            for s in (PRICE_HIGH, PRICE_MID, PRICE_LOW)
        ],
        ncol=3,
    )
    ax.set_ylim(-0.6, len(data) - 0.4)
    _title_fixed(
        fig,
        title,
        "Categories split into terciles of their median line amount; "
        "equal medians share the lower tier.",
    )
    _footnote(fig, footnote)
    longest = max(len(code_label(c, "Category")) for c in data["category"])
    _layout(fig, left=min(0.4, 0.03 + 0.0085 * longest), top_in=1.25)
    return fig


# --------------------------------------------------------------------------------------------
# 4. Segment value map
# --------------------------------------------------------------------------------------------


def short_segment(row: pd.Series) -> str:
    """`M 26-35 · Occ_High · Price_High` (labels in figures)."""
    return f"{row['gender']} {row['age_band']} · {row['occupation_group']} · {row['price_segment']}"


#: Where the value map's labels start (axes fraction, right of the plot).
LABEL_X = 1.03


def _cross(
    a: tuple[float, float], b: tuple[float, float], c: tuple[float, float], d: tuple[float, float]
) -> bool:
    """Whether segments a-b and c-d cross (touching ends do not count)."""

    def side(p: tuple[float, float], q: tuple[float, float], r: tuple[float, float]) -> float:
        return (q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0])

    d1, d2 = side(c, d, a), side(c, d, b)
    d3, d4 = side(a, b, c), side(a, b, d)
    return d1 * d2 < 0 and d3 * d4 < 0


def leader_crossings(
    points: Sequence[tuple[float, float]], slots: Sequence[float], label_x: float
) -> int:
    """How many pairs of leader lines (point -> (label_x, slot)) cross."""
    lines = [(p, (label_x, s)) for p, s in zip(points, slots, strict=True)]
    return sum(
        _cross(*lines[i], *lines[j]) for i in range(len(lines)) for j in range(i + 1, len(lines))
    )


def assign_label_slots(
    points: Sequence[tuple[float, float]], slots: Sequence[float], label_x: float
) -> list[float]:
    """The slot of each point's label: the assignment with the fewest crossing leader lines,
    then the least vertical travel (points and slots in axes fractions; `slots` are given for
    the points in order). Up to 7 labels are searched exhaustively."""
    if len(points) > 7:
        return list(slots)
    best: tuple[int, float, tuple[float, ...]] | None = None
    for order in itertools.permutations(slots):
        travel = sum(abs(p[1] - s) for p, s in zip(points, order, strict=True))
        score = (leader_crossings(points, order, label_x), travel, order)
        if best is None or score[:2] < best[:2]:
            best = score
    assert best is not None
    return list(best[2])


def plot_segment_value_map(
    segments: pd.DataFrame,
    class_order: Sequence[str],
    class_colours: dict[str, str],
    top_n: int = 5,
) -> Figure:
    """Behavioural segments: customers (x) vs AOV (y), bubble area = gross sales, colour =
    strategy class; the top `top_n` by gross sales are labelled."""
    title = "Behavioural segments: size, order value and revenue"
    if segments.empty:
        return _empty_figure(title, "No behavioural segments.")
    data = segments.sort_values("sales_rank").reset_index(drop=True)
    fig = Figure(figsize=(12.5, 7.4))
    ax = fig.subplots()
    max_sales = float(data["gross_sales"].max()) or 1.0
    sizes = 30 + 1800 * (data["gross_sales"].clip(lower=0) / max_sales)
    for cls in class_order:
        part = data["strategy_class"] == cls
        if not part.any():
            continue
        ax.scatter(
            data.loc[part, "customers"],
            data.loc[part, "aov"].clip(lower=0.01),
            s=sizes[part],
            color=class_colours.get(cls, NEUTRAL_GREY),
            alpha=0.7,
            edgecolor="white",
            linewidth=0.8,
            label=cls,
            zorder=3,
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("Customers in the segment (log scale)")
    ax.set_ylabel("Average order value (currency units, log scale)")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1 else f"{v:g}"))
    ax.grid(True, which="major", color="#e5e5e5", zorder=0)
    ax.spines[["top", "right"]].set_visible(False)
    # Label the top segments in a column right of the axes, each as close to its point's
    # height as the others allow (a 1-D spread with a minimum gap): labels never overlap each
    # other or the bubbles. Which label takes which slot is chosen so that no two leader
    # lines cross (a point further left may need a lower slot than one further right).
    top = data.head(top_n)
    ax.set_xlim(right=float(data["customers"].max()) * 1.6)
    xmin, xmax = ax.get_xlim()
    ymin, ymax = ax.get_ylim()
    fig.subplots_adjust(left=0.08, right=0.70, top=0.84, bottom=0.12)

    def frac(v: float, low: float, high: float) -> float:
        return math.log(max(v, low) / low) / math.log(high / low)

    points = {
        i: (frac(float(r["customers"]), xmin, xmax), frac(float(r["aov"]), ymin, ymax))
        for i, r in top.iterrows()
    }
    targets = sorted(((y, i) for i, (_x, y) in points.items()), reverse=True)
    gap = 0.1
    placed: list[float] = []
    for target, _ in targets:
        y_pos = min(target, 0.97) if not placed else min(target, placed[-1] - gap)
        placed.append(y_pos)
    if placed and placed[-1] < 0.03:  # pushed below the axes: shift the column up
        shift = 0.03 - placed[-1]
        placed = [min(p + shift, 0.97 - gap * k) for k, p in enumerate(placed)]
    slots = assign_label_slots([points[i] for _, i in targets], placed, LABEL_X)
    for y_pos, (_, i) in zip(slots, targets, strict=True):
        row = top.loc[i]
        ax.annotate(
            f"#{int(row['sales_rank'])} {short_segment(row)}\n"
            f"{100 * row['revenue_share']:.1f}% of sales, "
            f"{_count(int(row['customers']), 'customer')}",
            xy=(row["customers"], max(row["aov"], 0.01)),
            xycoords="data",
            xytext=(LABEL_X, y_pos),
            textcoords="axes fraction",
            fontsize=9,
            va="center",
            ha="left",
            arrowprops={"arrowstyle": "-", "color": "#777777", "linewidth": 0.8},
            annotation_clip=False,
        )
    legend = _legend_above(ax, title="Strategy class", ncol=len(class_order))
    for handle in legend.legend_handles:
        handle.set_sizes([70])
    legend.get_title().set_fontsize(9.5)
    _title(
        fig,
        title,
        f"{len(data):,} segments (age band x gender x occupation group x price "
        f"segment). Bubble area = gross sales; the top {len(top)} by gross sales are "
        "labelled.",
    )
    _footnote(fig, "Source: marts.segment_strategy (metrics from marts.behavioural_segments).")
    return fig


# --------------------------------------------------------------------------------------------
# 5. Strategy summary
# --------------------------------------------------------------------------------------------


def plot_strategy_summary(summary: pd.DataFrame, class_colours: dict[str, str]) -> Figure:
    """Customer share vs revenue share per strategy class (rule-table order)."""
    title = "Strategy classes: share of customers vs share of revenue"
    if summary.empty:
        return _empty_figure(title, "No strategy classes.")
    data = summary.sort_values("class_order").reset_index(drop=True)
    fig = Figure(figsize=(11, 1.25 * len(data) + 2.6))
    ax = fig.subplots()
    y = np.arange(len(data))
    h = 0.38
    cust = data["customer_share"].fillna(0).to_numpy()
    rev = data["revenue_share"].fillna(0).to_numpy()
    colours = [class_colours.get(c, NEUTRAL_GREY) for c in data["strategy_class"]]
    ax.barh(y - h / 2, cust, height=h, color="white", edgecolor=colours, hatch="///", linewidth=1.2)
    ax.barh(y + h / 2, rev, height=h, color=colours, edgecolor="white")
    for i, row in data.iterrows():
        text = f"{100 * cust[i]:.1f}% of customers ({int(row['customers']):,})"
        if cust[i] > 0.6:
            ax.text(
                cust[i] - 0.01,
                i - h / 2,
                text,
                va="center",
                ha="right",
                fontsize=9.5,
                bbox={"facecolor": "white", "edgecolor": "none", "pad": 1},
            )
        else:
            ax.text(cust[i] + 0.01, i - h / 2, text, va="center", fontsize=9.5)
        vi = row["value_index"]
        vi_text = f", {vi:.2f}x their share of customers" if pd.notna(vi) else ""
        text = f"{100 * rev[i]:.1f}% of revenue{vi_text}"
        if rev[i] > 0.55:  # long bar: label inside, so it never runs off the axes
            ax.text(
                rev[i] - 0.01,
                i + h / 2,
                text,
                va="center",
                ha="right",
                fontsize=9.5,
                fontweight="bold",
                color="white",
            )
        else:
            ax.text(rev[i] + 0.01, i + h / 2, text, va="center", fontsize=9.5, fontweight="bold")
    ax.set_yticks(y)
    ax.set_yticklabels(
        [
            f"{c}\n{int(s)} segments"
            for c, s in zip(data["strategy_class"], data["segments"], strict=True)
        ],
        fontsize=10.5,
    )
    ax.invert_yaxis()
    ax.set_xlim(0, 1.0)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{100 * v:.0f}%"))
    ax.set_xlabel("Share of all customers (hatched) and of all gross sales (solid)")
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(
        handles=[
            Patch(facecolor="white", edgecolor="#555555", hatch="///", label="customer share"),
            Patch(facecolor="#555555", label="revenue share"),
        ],
        # Above the plot, not in it: inside, a long bar label could run under it.
        loc="lower right",
        bbox_to_anchor=(1.0, 1.0),
        ncol=2,
        frameon=False,
        fontsize=9.5,
    )
    _title(
        fig,
        title,
        "Each behavioural segment has exactly one class (rule table: occupation "
        "group x dominant price segment).",
    )
    _footnote(fig, "Source: marts.strategy_summary.")
    inches = fig.get_size_inches()[1]
    fig.subplots_adjust(top=1 - 1.0 / inches, bottom=0.75 / inches, left=0.13, right=0.98)
    return fig
