"""What every figure module shares: text sizes and colours, the title / subtitle / footnote
block (`finish`), the empty-state figure, axis styling.

(Colours of the data are in `palette.py`.) Positions are in inches from the figure's edges, so
that the gaps look the same whatever a figure's height.
"""

from __future__ import annotations

from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

TITLE_SIZE = 15
SUBTITLE_SIZE = 10.5
FOOTNOTE_SIZE = 8.5
SUBTITLE_COLOUR = "#333333"
FOOTNOTE_COLOUR = "#555555"


def add_subtitle(fig: Figure, subtitle: str, inches_from_top: float) -> None:
    """The subtitle, left-aligned, its top `inches_from_top` below the figure's top edge."""
    fig.text(
        0.01,
        1 - inches_from_top / fig.get_size_inches()[1],
        subtitle,
        fontsize=SUBTITLE_SIZE,
        ha="left",
        va="top",
        color=SUBTITLE_COLOUR,
    )


def finish(
    fig: Figure,
    title: str,
    subtitle: str | None = None,
    footnote: str | None = None,
    **tight: float,
) -> None:
    """Title and subtitle at the top-left, a footnote at the bottom, panels in between.

    Positions are in inches from the edges (not fractions), so the gaps look the same
    whatever the figure's height.
    """
    height = fig.get_figheight()
    # fig.text, not suptitle: tight_layout would reserve room for a suptitle a second time
    fig.text(
        0.01, 1 - 0.10 / height, title, fontsize=TITLE_SIZE, fontweight="bold", ha="left", va="top"
    )
    if subtitle:
        add_subtitle(fig, subtitle, 0.45)
    if footnote:
        fig.text(
            0.01,
            0.08 / height,
            footnote,
            fontsize=FOOTNOTE_SIZE,
            ha="left",
            va="bottom",
            color=FOOTNOTE_COLOUR,
        )
    lines = subtitle.count("\n") + 1 if subtitle else 0
    top = 1 - (0.55 + 0.25 * lines) / height
    bottom = (0.05 + 0.25 * (footnote.count("\n") + 1 if footnote else 0)) / height
    fig.tight_layout(rect=(0, bottom, 1, top), **tight)


def percent_axis(axis) -> None:
    """Percent ticks at 1-2-2.5-5 steps for values stored as fractions 0..1."""
    axis.set_major_locator(MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10]))
    # :g keeps "5%" and "2.5%" exact without trailing zeros (100 * 0.07 = 7.000000000000001)
    axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{100 * v:g}%"))


def empty_figure(title: str, message: str) -> Figure:
    """A readable placeholder when there is nothing to draw (e.g. no Champions in the data)."""
    fig = Figure(figsize=(9, 3.5))
    ax = fig.subplots()
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=12, wrap=True)
    finish(fig, title)
    return fig


def clean_axes(ax, grid_axis: str = "x") -> None:
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(axis=grid_axis, color="#dddddd", linewidth=0.8)
    ax.set_axisbelow(True)
