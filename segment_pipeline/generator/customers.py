"""The customers: demographics and spend power, category preferences, and lifecycles (when
each customer first and last orders, how often, and how big their baskets are)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from segment_pipeline.generator.parameters import (
    AGE_BANDS,
    AGE_P,
    AGE_SHIFT,
    CATEGORIES,
    CITY_P,
    GENDER_SHIFT,
    LIFECYCLES,
    MALE_P,
    OCC_P,
    OCC_TIER,
)
from segment_pipeline.generator.season import Calendar, sample_days

#: Customers per chunk when drawing category preferences (bounded temporaries).
PREFERENCE_CHUNK = 65536


@dataclass(frozen=True)
class Demographics:
    """Per customer (arrays of length n): gender, age band / occupation / city codes, married
    (0/1), spend power and its spend bucket (0 budget, 1 mid, 2 premium-seeking)."""

    male: np.ndarray
    age: np.ndarray
    occ: np.ndarray
    city: np.ndarray
    married: np.ndarray
    spend_power: np.ndarray
    bucket: np.ndarray


@dataclass(frozen=True)
class Activity:
    """Per customer: first order day, last active day, daily order probability (before the
    season) and mean extra basket size."""

    first_day: np.ndarray
    last_day: np.ndarray
    p_daily: np.ndarray
    basket_mu: np.ndarray


@dataclass(frozen=True)
class Customers:
    """Everything the day loop needs about the customers."""

    ids: np.ndarray  # C00001 ... (object)
    demographics: Demographics
    category_cum: np.ndarray  # [customer, category] cumulative preference (float32)
    activity: Activity


def draw_customers(rng: np.random.Generator, n: int, calendar: Calendar) -> Customers:
    """Draw `n` customers: demographics, then category preferences, then lifecycles (in this
    order: the draws follow the products' on the one generator)."""
    demographics = draw_demographics(rng, n)
    category_cum = draw_category_preferences(rng, demographics)
    activity = draw_activity(rng, demographics.spend_power, calendar)
    cid_width = max(5, len(str(n)))
    ids = np.array([f"C{i + 1:0{cid_width}d}" for i in range(n)], dtype=object)
    return Customers(ids, demographics, category_cum, activity)


def draw_demographics(rng: np.random.Generator, n: int) -> Demographics:
    """Gender, age band, occupation, city and marital status at the Black Friday sample's
    shares; spend power from the occupation's tier, men 26-35 and a little noise."""
    gender_male = rng.random(n) < MALE_P
    age = rng.choice(len(AGE_BANDS), size=n, p=np.array(AGE_P) / sum(AGE_P))
    occ = rng.choice(21, size=n, p=np.array(OCC_P) / sum(OCC_P))
    city = rng.choice(3, size=n, p=np.array(CITY_P) / sum(CITY_P))
    married = (rng.random(n) < np.where(age == 0, 0.0, np.where(age == 1, 0.25, 0.5))).astype(
        np.int64
    )
    occ_tier = np.array(OCC_TIER)[occ]
    occ_offset = (np.arange(21) % 5 - 2) * 0.08  # small fixed per-code differences
    male_2635 = gender_male & (age == 2)
    spend_power = (
        1.0 * occ_tier
        + occ_offset[occ]
        + 0.8 * male_2635
        + 0.2 * ((age == 3) | (age == 4))
        - 0.6 * (age == 0)
        - 0.2 * (age == 6)
        + 0.15 * (city == 0)
        + rng.normal(0.0, 0.35, n)
    )
    bucket = np.digitize(spend_power, [-0.45, 0.55])  # 0 budget, 1 mid, 2 premium-seeking
    return Demographics(gender_male, age, occ, city, married, spend_power, bucket)


def draw_category_preferences(rng: np.random.Generator, demo: Demographics) -> np.ndarray:
    """Each customer's cumulative category probabilities (float32 keeps memory at 80 B per
    customer): popularity, price level x spend power, age and gender shifts, and noise."""
    n, n_cats = len(demo.spend_power), len(CATEGORIES)
    cat_names = [c[0] for c in CATEGORIES]
    log_mid_price = np.log(np.array([np.sqrt(c[1] * c[2]) for c in CATEGORIES]))
    z_price = (log_mid_price - log_mid_price.mean()) / log_mid_price.std()
    age_shift = np.zeros((len(AGE_BANDS), n_cats))
    for ai, band in enumerate(AGE_BANDS):
        for cname, v in AGE_SHIFT.get(band, {}).items():
            age_shift[ai, cat_names.index(cname)] = v
    gender_shift = np.zeros((2, n_cats))  # row 0 = F, row 1 = M
    for gi, g in enumerate(("F", "M")):
        for cname, v in GENDER_SHIFT[g].items():
            gender_shift[gi, cat_names.index(cname)] = v
    log_pop = np.log(np.array([c[4] for c in CATEGORIES]))
    cat_cum = np.empty((n, n_cats), dtype=np.float32)
    for lo in range(0, n, PREFERENCE_CHUNK):  # chunked: bounded temporaries for many customers
        sl = slice(lo, min(n, lo + PREFERENCE_CHUNK))
        logw = (
            log_pop[None, :]
            + 0.55 * demo.spend_power[sl, None] * z_price[None, :]
            + age_shift[demo.age[sl]]
            + gender_shift[demo.male[sl].astype(np.int64)]
            + rng.normal(0.0, 0.6, (sl.stop - sl.start, n_cats))
        )
        cw = np.exp(logw - logw.max(axis=1, keepdims=True))
        cat_cum[sl] = np.cumsum(cw / cw.sum(axis=1, keepdims=True), axis=1)
    cat_cum[:, -1] = 2.0  # guard against float rounding
    return cat_cum


def draw_activity(
    rng: np.random.Generator, spend_power: np.ndarray, calendar: Calendar
) -> Activity:
    """Lifecycles (first order day, last active day, annual order rate) and basket sizes."""
    n, T = len(spend_power), calendar.days
    shares = np.array([lc[1] for lc in LIFECYCLES])
    life = rng.choice(len(LIFECYCLES), size=n, p=shares / shares.sum())
    first_day = np.zeros(n, dtype=np.int64)
    last_day = np.zeros(n, dtype=np.int64)
    rate = np.zeros(n)
    new_window = max(1, min(21, round(0.06 * T)))
    for li, (_name, _share, (f_lo, f_hi), end_rule, (r_med, r_sig)) in enumerate(LIFECYCLES):
        idx = np.flatnonzero(life == li)
        m = len(idx)
        if f_lo < 0:  # newly acquired: first order in the last weeks
            lo, hi = T - new_window, T - 1
        else:
            lo, hi = int(f_lo * T), max(int(f_lo * T), int(f_hi * T) - 1)
        fd = sample_days(rng, calendar.season, lo, hi, m)
        if end_rule[0] == "end":
            ld = np.full(m, T - 1)
        elif end_rule[0] == "abs":
            ld = (rng.uniform(end_rule[1], end_rule[2], m) * T).astype(np.int64)
        else:
            ld = fd + (rng.uniform(end_rule[1], end_rule[2], m) * T).astype(np.int64)
        first_day[idx] = fd
        last_day[idx] = np.clip(np.maximum(ld, fd), 0, T - 1)
        if r_med > 0:
            rate[idx] = np.clip(r_med * np.exp(rng.normal(0.0, r_sig, m)), 0.5, 75.0)
    rate *= np.exp(0.12 * spend_power)  # big spenders also come a bit more often
    p_daily = rate / 365.0
    basket_mu = np.clip(1.25 * np.exp(rng.normal(0.0, 0.3, n) + 0.1 * spend_power), 0.3, 4.0)
    return Activity(first_day, last_day, p_daily, basket_mu)
