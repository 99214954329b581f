"""Every figure's colours, in one place, named by what they colour.

Two qualitative palettes, both colour-blind safe:

- Okabe & Ito's: price and occupation tiers, strategy classes (by their `colour` index in the
  rule table), and the accents of the behavioural, CLV and dynamics figures;
- seaborn's "colorblind": the ten RFM segments, one colour each, assigned by the segment's
  name so it is the same in every figure.

The values are written out exactly: the figures' PNG bytes depend on them.
"""

from __future__ import annotations

from segment_pipeline.logic.behaviour import (
    OCC_HIGH,
    OCC_LOW,
    OCC_MID,
    OCC_OTHER,
    PRICE_HIGH,
    PRICE_LOW,
    PRICE_MID,
)
from segment_pipeline.logic.rfm import SEGMENT_NAMES

__all__ = [
    "ENTERED_GREY",
    "NEUTRAL_GREY",
    "OKABE_ITO",
    "SEABORN_COLORBLIND",
    "SEGMENT_COLOURS",
    "TIER_COLOURS",
    "class_colour",
    "segment_colour",
]

#: Okabe & Ito's colour-blind-safe qualitative palette (blue, orange, green, vermillion,
#: reddish purple, sky blue, yellow, black, grey).
OKABE_ITO: tuple[str, ...] = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#D55E00",
    "#CC79A7",
    "#56B4E9",
    "#F0E442",
    "#000000",
    "#999999",
)

#: seaborn's "colorblind" palette, written out: importing seaborn (and the scipy.stats it
#: pulls in) costs about 0.9 s on every load of the definitions, for ten colours.
SEABORN_COLORBLIND: tuple[str, ...] = (
    "#0173b2", "#de8f05", "#029e73", "#d55e00", "#cc78bc",
    "#ca9161", "#fbafe4", "#949494", "#ece133", "#56b4e9",
)  # fmt: skip

#: Grey for what has no colour of its own: a segment outside the ten, a strategy class the
#: rule table does not colour, Occ_Other.
NEUTRAL_GREY = OKABE_ITO[8]

#: Customers who entered between two snapshots (the dynamics figures' flows).
ENTERED_GREY = "#bbbbbb"

#: RFM segment -> colour (the palette cycles past ten, as seaborn's does).
SEGMENT_COLOURS: dict[str, str] = {
    name: SEABORN_COLORBLIND[i % len(SEABORN_COLORBLIND)] for i, name in enumerate(SEGMENT_NAMES)
}

#: Occupation groups and price segments: low / mid / high always light blue, dark blue,
#: orange; Occ_Other grey.
TIER_COLOURS: dict[str, str] = {
    OCC_LOW: OKABE_ITO[5],
    OCC_MID: OKABE_ITO[0],
    OCC_HIGH: OKABE_ITO[1],
    OCC_OTHER: NEUTRAL_GREY,
    PRICE_LOW: OKABE_ITO[5],
    PRICE_MID: OKABE_ITO[0],
    PRICE_HIGH: OKABE_ITO[1],
}


def segment_colour(segment: str) -> str:
    """The RFM segment's colour, the same in every figure (grey for a name outside the ten)."""
    return SEGMENT_COLOURS.get(segment, NEUTRAL_GREY)


def class_colour(index: int) -> str:
    """A strategy class's colour: its `colour` index in the rule table, into Okabe-Ito."""
    return OKABE_ITO[index % len(OKABE_ITO)]


#: Text colours for labels drawn on a coloured bar.
LIGHT_TEXT, DARK_TEXT = "white", "#222222"


def _relative_luminance(colour: str) -> float:
    """WCAG 2 relative luminance of a colour (0 black .. 1 white)."""
    from matplotlib.colors import to_rgb

    channels = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in to_rgb(colour)]
    return 0.2126 * channels[0] + 0.7152 * channels[1] + 0.0722 * channels[2]


def contrast_ratio(first: str, second: str) -> float:
    """WCAG 2 contrast ratio of two colours (1 .. 21)."""
    lighter, darker = sorted((_relative_luminance(first), _relative_luminance(second)))[::-1]
    return (lighter + 0.05) / (darker + 0.05)


def text_colour_on(background: str) -> str:
    """White or near-black, whichever reads better on `background`."""
    light = contrast_ratio(LIGHT_TEXT, background)
    return LIGHT_TEXT if light >= contrast_ratio(DARK_TEXT, background) else DARK_TEXT
