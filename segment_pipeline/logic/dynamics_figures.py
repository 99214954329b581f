"""The three customer-dynamics figures: small mart tables in (pandas), a matplotlib Figure out.

Pure functions `plot_xxx(frames..., note=...) -> Figure`, built without pyplot state
(headless, repeatable); `segment_pipeline.figures.figure_assets` draws and stores the PNGs. Same
visual standard as the other figures (the RFM figures' title / subtitle / footnote layout and
axes helpers are reused): RFM segments in their own colours and display order, price tiers in
the tier colours (`palette`), every figure names its source table in a footnote, and a figure
that has nothing to compare yet (one monthly snapshot) says so instead of failing.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # headless

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import PathPatch, Rectangle
from matplotlib.path import Path
from matplotlib.ticker import FuncFormatter, MaxNLocator

from segment_pipeline.logic.behaviour import PRICE_HIGH, PRICE_LOW, PRICE_MID, PRICE_UNKNOWN
from segment_pipeline.logic.dynamics import DIM_PRICE, DIM_RFM, ENTERED, LEFT
from segment_pipeline.logic.figure_style import clean_axes, empty_figure, finish, percent_axis
from segment_pipeline.logic.palette import (
    ENTERED_GREY,
    NEUTRAL_GREY,
    OKABE_ITO,
    TIER_COLOURS,
    segment_colour,
    text_colour_on,
)
from segment_pipeline.logic.report import money_short

__all__ = [
    "plot_price_tier_flow",
    "plot_segment_migration",
    "plot_segment_share_over_time",
]

TIER_ORDER: tuple[str, ...] = (PRICE_HIGH, PRICE_MID, PRICE_LOW, PRICE_UNKNOWN)
_SHORT_TIER = {PRICE_LOW: "Low", PRICE_MID: "Mid", PRICE_HIGH: "High", PRICE_UNKNOWN: "Unknown"}


def _month(value) -> str:
    """`Sep 2026`."""
    return pd.Timestamp(value).strftime("%b %Y")


#: Month bars a figure shows at most (the latest ones; the table has them all).
MAX_MONTHS_SHOWN = 24
#: Month labels an axis shows at most (every k-th month beyond that).
MAX_MONTH_LABELS = 13


def month_tick_labels(months: Sequence[object]) -> list[str]:
    """`Sep\n2026` under every month, or under every k-th one (the last month always) when
    there are more than MAX_MONTH_LABELS, so that labels never overlap."""
    step = max(1, -(-len(months) // MAX_MONTH_LABELS))
    last = len(months) - 1
    return [
        pd.Timestamp(m).strftime("%b\n%Y") if (last - i) % step == 0 else ""
        for i, m in enumerate(months)
    ]


def _last_pair(transitions: pd.DataFrame, dimension: str) -> pd.DataFrame:
    rows = transitions[transitions["dimension"] == dimension]
    if rows.empty:
        return rows
    return rows[rows["from_month"] == rows["from_month"].max()]


def _no_history(title: str, note: str | None) -> Figure:
    message = (
        note or "No previous snapshot: a comparison needs the snapshots of two consecutive months."
    )
    return empty_figure(title, "\n".join(textwrap.wrap(message, width=90)))


# --------------------------------------------------------------------------------------------
# 1. dyn_segment_migration.png
# --------------------------------------------------------------------------------------------


def plot_segment_migration(
    transitions: pd.DataFrame, segment_order: Sequence[str], note: str | None = None
) -> Figure:
    """From-segment (rows) x to-segment (columns) heatmap of the last month-to-month RFM
    transition: colour and percentage = share of the row, with the count; (entered) is the
    bottom row, (left) the last column when anyone left the window. `note` replaces the
    message when there is no pair of months yet (and is added to the subtitle otherwise)."""
    title = "RFM segment migration since last month"
    pair = _last_pair(transitions, DIM_RFM)
    if pair.empty:
        return _no_history(title, note)
    from_month, to_month = pair["from_month"].iloc[0], pair["to_month"].iloc[0]
    present_from = set(pair["from_state"])
    present_to = set(pair["to_state"])
    known = list(segment_order) + sorted(
        (present_from | present_to) - set(segment_order) - {ENTERED, LEFT}
    )
    rows = [s for s in known if s in present_from] + ([ENTERED] if ENTERED in present_from else [])
    cols = [s for s in known if s in present_to] + ([LEFT] if LEFT in present_to else [])
    counts = (
        pair.pivot_table(index="from_state", columns="to_state", values="customers", aggfunc="sum")
        .reindex(index=rows, columns=cols)
        .fillna(0)
        .astype(int)
    )
    shares = counts.div(counts.sum(axis=1).replace(0, np.nan), axis=0).fillna(0.0)
    fig = Figure(figsize=(1.05 * len(cols) + 4.2, 0.55 * len(rows) + 3.3))
    ax = fig.subplots()
    image = ax.imshow(shares.to_numpy(float), cmap="Blues", vmin=0, vmax=1, aspect="auto")
    for i, source in enumerate(rows):
        for j, target in enumerate(cols):
            n = int(counts.iloc[i, j])
            if n == 0:
                continue
            share = float(shares.iloc[i, j])
            ax.text(
                j,
                i,
                f"{n:,}\n{100 * share:.0f}%",
                ha="center",
                va="center",
                fontsize=7.5,
                color="white" if share > 0.55 else "#222222",
            )
            if source == target:  # stayers: outlined
                ax.add_patch(
                    Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="#333333", lw=1.2)
                )
    row_totals, col_totals = counts.sum(axis=1), counts.sum(axis=0)
    ax.set_yticks(
        range(len(rows)),
        [f"{s}  (n={int(row_totals[s]):,})" for s in rows],
        fontsize=9,
    )
    ax.set_xticks(
        range(len(cols)),
        [f"{s}\n(n={int(col_totals[s]):,})" for s in cols],
        rotation=40,
        ha="right",
        rotation_mode="anchor",
        fontsize=9,
    )
    ax.tick_params(length=0)
    ax.set_xlabel(f"segment at the end of {_month(to_month)}", fontsize=10)
    ax.set_ylabel(f"segment at the end of {_month(from_month)}", fontsize=10)
    if ENTERED in rows:
        ax.axhline(len(rows) - 1.5, color="#555555", lw=0.8)
    if LEFT in cols:
        ax.axvline(len(cols) - 1.5, color="#555555", lw=0.8)
    bar = fig.colorbar(image, ax=ax, shrink=0.85, pad=0.015)
    bar.set_label("share of the row (where the row's customers went)", fontsize=9)
    percent_axis(bar.ax.yaxis)
    movers = pair[pair["direction"] == "moved"]
    stayed = int(pair.loc[pair["direction"] == "same", "customers"].sum())
    earlier = int(pair.loc[pair["from_state"] != ENTERED, "customers"].sum())
    entered = int(pair.loc[pair["from_state"] == ENTERED, "customers"].sum())
    moved = int(movers["customers"].sum())
    subtitle = (
        f"Customers by segment at the end of {_month(from_month)} (rows) and of "
        f"{_month(to_month)} (columns); colour and % = share of the row, outlined = stayed.\n"
        f"{moved:,} of {earlier:,} customers changed segment, {stayed:,} stayed, "
        f"{entered:,} entered (first purchase in the window)"
    )
    if note:
        subtitle += f". {note}"
    finish(
        fig,
        title,
        subtitle,
        "Source: marts.segment_transitions (dimension rfm_segment). Revenue of the customers "
        f"who changed segment: {money_short(float(movers['revenue_from_month'].sum()))} in "
        f"{_month(from_month)}, {money_short(float(movers['revenue_to_month'].sum()))} in "
        f"{_month(to_month)}.",
    )
    return fig


# --------------------------------------------------------------------------------------------
# 2. dyn_segment_share_over_time.png
# --------------------------------------------------------------------------------------------


def plot_segment_share_over_time(
    shares: pd.DataFrame, segment_order: Sequence[str], note: str | None = None
) -> Figure:
    """Stacked bars: each month's snapshot, customers by RFM segment as a share (segments in
    their colours and display order, customers above each bar).

    `shares`: one row per snapshot_month x segment with `customers`. One month draws one bar
    and says that the chart grows by a bar a month."""
    title = "RFM segment shares, month by month"
    if shares.empty:
        return empty_figure(title, note or "No monthly snapshot yet.")
    table = (
        shares.pivot_table(
            index="snapshot_month", columns="segment", values="customers", aggfunc="sum"
        )
        .fillna(0)
        .sort_index()
    )
    order = [s for s in segment_order if s in table.columns] + sorted(
        set(table.columns) - set(segment_order)
    )
    table = table[order]
    all_months = len(table)
    table = table.iloc[-MAX_MONTHS_SHOWN:]  # the latest months; bars stay readable
    totals = table.sum(axis=1)
    fractions = table.div(totals.replace(0, np.nan), axis=0).fillna(0.0)
    months = list(fractions.index)
    fig = Figure(figsize=(max(8.5, 0.62 * len(months) + 6.0), 6.2))
    ax = fig.subplots()
    x = np.arange(len(months))
    bottom = np.zeros(len(months))
    for segment in order:
        values = fractions[segment].to_numpy(float)
        ax.bar(
            x,
            values,
            0.78,
            bottom=bottom,
            color=segment_colour(segment),
            edgecolor="white",
            linewidth=0.5,
            label=segment,
        )
        for i, value in enumerate(values):
            if value >= 0.06:
                ax.text(
                    x[i],
                    bottom[i] + value / 2,
                    f"{100 * value:.0f}%",
                    ha="center",
                    va="center",
                    fontsize=7.5,
                    color=text_colour_on(segment_colour(segment)),
                )
        bottom += values
    for i, total in enumerate(totals):
        ax.text(x[i], 1.01, f"n={int(total):,}", ha="center", va="bottom", fontsize=8)
    ax.set_ylim(0, 1.07)
    ax.set_xlim(-0.6, len(months) - 0.4)
    ax.set_xticks(x, [pd.Timestamp(m).strftime("%b\n%Y") for m in months], fontsize=9)
    percent_axis(ax.yaxis)
    ax.set_ylabel("share of the month's customers", fontsize=10)
    ax.set_xlabel("monthly snapshot (as of the month's end)", fontsize=10)
    clean_axes(ax, grid_axis="y")
    handles, labels = ax.get_legend_handles_labels()
    ax.legend(
        handles[::-1],
        labels[::-1],
        loc="center left",
        bbox_to_anchor=(1.01, 0.5),
        frameon=False,
        fontsize=9,
    )
    subtitle = (
        "Every customer with a purchase in the RFM window, by segment as of each month's end "
        "(lines up to that day only)"
    )
    if len(months) == 1:
        subtitle += (
            f".\nOnly one monthly snapshot ({_month(months[0])}): the chart adds a bar per month"
        )
    if all_months > len(months):
        subtitle += (
            f".\nThe latest {len(months)} of {all_months} months (all are in "
            "marts.customer_snapshots)"
        )
    if note:
        subtitle += f". {note}"
    finish(
        fig,
        title,
        subtitle,
        "Source: marts.customer_snapshots (customers per snapshot_month and segment). Shares "
        "below 6% are not labelled.",
    )
    return fig


# --------------------------------------------------------------------------------------------
# 3. dyn_price_tier_flow.png
# --------------------------------------------------------------------------------------------


def _tier_colour(state: str) -> str:
    if state == ENTERED:
        return ENTERED_GREY
    return TIER_COLOURS.get(state, NEUTRAL_GREY)


def _band(ax, x0: float, y0: tuple[float, float], x1: float, y1: tuple[float, float], colour):
    """A flow band from the span y0 (bottom, top) at x0 to the span y1 at x1 (S-curves)."""
    mid = (x0 + x1) / 2
    vertices = [
        (x0, y0[1]),
        (mid, y0[1]),
        (mid, y1[1]),
        (x1, y1[1]),
        (x1, y1[0]),
        (mid, y1[0]),
        (mid, y0[0]),
        (x0, y0[0]),
        (x0, y0[1]),
    ]
    codes = [Path.MOVETO, *[Path.CURVE4] * 3, Path.LINETO, *[Path.CURVE4] * 3, Path.CLOSEPOLY]
    ax.add_patch(PathPatch(Path(vertices, codes), facecolor=colour, alpha=0.45, lw=0))


def _draw_alluvial(ax, pair: pd.DataFrame) -> None:
    """Two stacked columns (tiers at the earlier and at the later month's end) joined by bands
    as wide as the customers moving between them."""
    sources = [s for s in TIER_ORDER if s in set(pair["from_state"])]
    if ENTERED in set(pair["from_state"]):
        sources.append(ENTERED)
    targets = [s for s in TIER_ORDER if s in set(pair["to_state"])]
    if LEFT in set(pair["to_state"]):
        targets.append(LEFT)
    total = float(max(pair["customers"].sum(), 1))
    gap = 0.02
    width = 0.08

    def stack(states: list[str], column: str) -> dict[str, tuple[float, float]]:
        sizes = pair.groupby(column)["customers"].sum() / total
        spans, top = {}, 1.0 + gap * (len(states) - 1)
        for state in states:
            size = float(sizes.get(state, 0.0))
            spans[state] = (top - size, top)
            top -= size + gap
        return spans

    left, right = stack(sources, "from_state"), stack(targets, "to_state")
    left_next = {s: span[1] for s, span in left.items()}
    right_next = {s: span[1] for s, span in right.items()}
    for source in sources:  # bands in target order inside each source block
        for target in targets:
            hit = pair[(pair["from_state"] == source) & (pair["to_state"] == target)]
            n = float(hit["customers"].sum())
            if n <= 0:
                continue
            h = n / total
            y0 = (left_next[source] - h, left_next[source])
            y1 = (right_next[target] - h, right_next[target])
            left_next[source] -= h
            right_next[target] -= h
            colour = _tier_colour(target if source == ENTERED else source)
            _band(ax, width, y0, 1 - width, y1, colour)
    counts_from = pair.groupby("from_state")["customers"].sum()
    counts_to = pair.groupby("to_state")["customers"].sum()
    for spans, x, counts, ha, dx in (
        (left, 0.0, counts_from, "right", -0.02),
        (right, 1 - width, counts_to, "left", width + 0.02),
    ):
        for state, (lo, hi) in spans.items():
            ax.add_patch(Rectangle((x, lo), width, hi - lo, color=_tier_colour(state), lw=0))
            ax.text(
                x + dx,
                (lo + hi) / 2,
                f"{_SHORT_TIER.get(state, state)}  {int(counts.get(state, 0)):,}",
                ha=ha,
                va="center",
                fontsize=9,
            )
    ax.set_xlim(-0.42, 1.42)
    ax.set_ylim(-0.02, 1.0 + gap * max(len(sources), len(targets)) + 0.02)
    ax.axis("off")


def _moves_by_month(transitions: pd.DataFrame) -> pd.DataFrame:
    rows = transitions[transitions["dimension"] == DIM_PRICE]
    moves = rows.pivot_table(
        index="to_month", columns="direction", values="customers", aggfunc="sum"
    ).fillna(0)
    for column in ("up", "down"):
        if column not in moves.columns:
            moves[column] = 0
    return moves.sort_index()


def plot_price_tier_flow(
    transitions: pd.DataFrame, tier_changes: pd.DataFrame | None = None, note: str | None = None
) -> Figure:
    """Left: the last month's price-tier flow (customers by dominant price tier at the end of
    the earlier and the later month; bands = customers moving, entrants grey). Right: every
    month's moves up and down a tier, with the months in which a category itself changed tier
    marked (`tier_changes`: to_month, category, from_tier, to_tier), since that moves its
    buyers without any change in what they buy."""
    title = "Price-tier migration (Price_Low -> Price_Mid -> Price_High)"
    pair = _last_pair(transitions, DIM_PRICE)
    if pair.empty:
        return _no_history(title, note)
    from_month, to_month = pair["from_month"].iloc[0], pair["to_month"].iloc[0]
    fig = Figure(figsize=(15, 6.4))
    grid = fig.add_gridspec(1, 2, width_ratios=[1.0, 1.25])
    flow, bars = fig.add_subplot(grid[0]), fig.add_subplot(grid[1])
    _draw_alluvial(flow, pair)
    flow.set_title(
        f"{_month(from_month)} -> {_month(to_month)}", fontsize=12, loc="left", fontweight="bold"
    )
    moves = _moves_by_month(transitions)
    x = np.arange(len(moves))
    up, down = moves["up"].to_numpy(float), moves["down"].to_numpy(float)
    bars.bar(x, up, 0.7, color=OKABE_ITO[2], label="moved up a tier")
    bars.bar(x, -down, 0.7, color=OKABE_ITO[3], label="moved down a tier")
    bars.plot(x, up - down, color="#222222", marker="o", ms=4, lw=1.2, label="net")
    bars.axhline(0, color="#555555", lw=0.8)
    if len(moves) <= MAX_MONTH_LABELS:  # beyond, the numbers would overlap: the axis reads
        for i in range(len(moves)):
            bars.text(x[i], up[i], f"{int(up[i])}", ha="center", va="bottom", fontsize=8)
            bars.text(x[i], -down[i], f"{int(down[i])}", ha="center", va="top", fontsize=8)
    top = float(max(up.max(initial=0), down.max(initial=0), 1))
    bars.set_ylim(-top * 1.45, top * 1.45)
    bars.yaxis.set_major_locator(MaxNLocator(nbins=6, integer=True))
    bars.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{abs(v):,.0f}"))
    bars.set_xticks(x, month_tick_labels(list(moves.index)), fontsize=8.5)
    bars.set_ylabel("customers changing tier (up above 0, down below)", fontsize=10)
    bars.set_title(
        "Moves per month (to the month shown)", fontsize=12, loc="left", fontweight="bold"
    )
    clean_axes(bars, grid_axis="y")
    notes = []
    if tier_changes is not None and not tier_changes.empty:
        positions = {pd.Timestamp(m): i for i, m in enumerate(moves.index)}
        for month, group in tier_changes.groupby("to_month"):
            i = positions.get(pd.Timestamp(month))
            if i is None:
                continue
            bars.annotate(
                "*",
                (x[i], -top * 1.32),
                ha="center",
                va="center",
                fontsize=14,
                color=OKABE_ITO[4],
                fontweight="bold",
            )
            for row in group.itertuples():
                notes.append(
                    f"{_month(month)}: {row.category} "
                    f"{_SHORT_TIER.get(row.from_tier, row.from_tier)} -> "
                    f"{_SHORT_TIER.get(row.to_tier, row.to_tier)}"
                )
    bars.legend(frameon=False, fontsize=9, loc="upper right", ncol=3)
    ups = int(pair.loc[pair["direction"] == "up", "customers"].sum())
    downs = int(pair.loc[pair["direction"] == "down", "customers"].sum())
    subtitle = (
        "A customer's tier = the price segment holding most of their spend, as of each month's "
        f"end. In {_month(to_month)}: {ups:,} moved up, {downs:,} moved down (seed B's "
        "price-tier migration)"
    )
    if note:
        subtitle += f". {note}"
    footnote = "Source: marts.segment_transitions (dimension price_tier)"
    if notes:
        shown = notes[:4] + ([f"... {len(notes) - 4} more"] if len(notes) > 4 else [])
        footnote += (
            ", marts.category_tier_snapshots. * = a category changed tier that month (its buyers "
            "move with it): " + "; ".join(shown)
        )
    finish(fig, title, subtitle, footnote + ".", w_pad=3.0)
    return fig
