"""The generated period: its days and how busy each one is (weekends, Black Friday, the
December peak), which drives both when orders happen and when customers first order."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from segment_pipeline.generator.parameters import WEEKDAY_FACTOR


def season_weight(day: dt.date) -> float:
    """Relative order intensity of a calendar day: weekends, Black Friday, December peak."""
    w = WEEKDAY_FACTOR[day.weekday()]
    m, d = day.month, day.day
    # Black Friday = the day after the 4th Thursday of November.
    nov1 = dt.date(day.year, 11, 1)
    thanksgiving = nov1 + dt.timedelta(days=(3 - nov1.weekday()) % 7 + 21)
    black_friday = thanksgiving + dt.timedelta(days=1)
    delta = (day - black_friday).days
    if delta == 0:
        s = 3.0
    elif 1 <= delta <= 3:  # weekend + Cyber Monday
        s = 2.2
    elif -7 <= delta < 0:
        s = 1.3
    elif m == 11:
        s = 1.05
    elif m == 12:
        if d <= 23:
            s = 1.35 + 0.02 * d  # ramp up to Christmas
        elif d == 24:
            s = 1.2
        elif d == 25:
            s = 0.25
        else:
            s = 1.3  # boxing week sales
    elif m == 1:
        s = 0.8
    elif m == 2:
        s = 0.85
    elif m in (7, 8):
        s = 1.05
    else:
        s = 0.95
    return w * s


@dataclass(frozen=True)
class Calendar:
    """The generated days and their seasonal weights (`season_norm`: weights / their mean)."""

    dates: list[dt.date]
    season: np.ndarray
    season_norm: np.ndarray

    @classmethod
    def of(cls, start: dt.date, days: int) -> Calendar:
        """`days` consecutive days from `start`."""
        dates = [start + dt.timedelta(days=i) for i in range(days)]
        season = np.array([season_weight(d) for d in dates])
        return cls(dates, season, season / season.mean())

    @property
    def days(self) -> int:
        return len(self.dates)


def sample_days(
    rng: np.random.Generator, weights: np.ndarray, lo: int, hi: int, size: int
) -> np.ndarray:
    """Draw days in [lo, hi] proportional to seasonal weights (acquisition is seasonal too)."""
    lo = max(0, min(lo, len(weights) - 1))
    hi = max(lo, min(hi, len(weights) - 1))
    w = weights[lo : hi + 1]
    return lo + rng.choice(len(w), size=size, p=w / w.sum())
