"""The day loop: each day's orders and sale lines (with promotions, scheduled returns and
deliberately defective lines), the returns due that day, and the day's file.

Lines are generated, formatted and written one day at a time, so memory is bounded by one
day's lines plus pending returns (<= 30 days of ~1.5% of lines).
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from segment_pipeline.dataset_format import TRANSACTION_COLUMNS
from segment_pipeline.generator.catalogue import Catalogue, fmt_cents
from segment_pipeline.generator.customers import Customers
from segment_pipeline.generator.parameters import (
    CLOSE_HOUR,
    DEFECT_RATE,
    DEFECT_RULES,
    HOUR_P,
    MAX_BASKET,
    OPEN_HOUR,
    RETURN_LAG_MAX,
    WEEKDAY_FACTOR,
)
from segment_pipeline.generator.season import Calendar

#: Probability of an order in each opening hour.
HOUR_PROBABILITIES = np.array(HOUR_P) / sum(HOUR_P)


@functools.cache
def time_of_day() -> np.ndarray:
    """ "HH:MM:SS" for every second of a day (object array, indexed by second)."""
    return np.array(
        [f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}" for s in range(86400)],
        dtype=object,
    )


#: A return waiting for its day: (customer, product, quantity returned, cents paid).
PendingReturn = tuple[int, int, int, int]


@dataclass
class DayTotals:
    """What the day loop wrote, summed over the days."""

    sale_lines: int = 0
    return_lines: int = 0
    orders: int = 0
    days_written: int = 0
    tx_bytes: int = 0
    defective_lines: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DEFECT_RULES, 0))


@dataclass(frozen=True)
class SaleLines:
    """One day's orders and their lines (before formatting), with the draws that decide each
    line's return and defect."""

    n_orders: int
    order_sec: np.ndarray  # per order: second of the day
    o_rank: np.ndarray  # per order: its rank in time order (ties: customer index)
    line_order: np.ndarray  # per line: its order's rank
    line_cust: np.ndarray
    cat: np.ndarray
    prod: np.ndarray
    qty: np.ndarray
    cents: np.ndarray  # paid (after any promotion)
    price_str: np.ndarray  # paid, formatted (object)
    is_ret: np.ndarray
    lag: np.ndarray
    ret_qty: np.ndarray
    defect: np.ndarray
    rule: np.ndarray
    variant: np.ndarray


@dataclass(frozen=True)
class IdWidths:
    """Digits of order and return ids, chosen from an upper estimate so that ids stay
    fixed-width and sortable."""

    order: int
    ret: int

    @classmethod
    def estimate(cls, customers: Customers, calendar: Calendar) -> IdWidths:
        a = customers.activity
        n = len(customers.ids)
        active_days = a.last_day - a.first_day + 1
        expected_orders = n + float((a.p_daily * active_days * calendar.season_norm.max()).sum())
        expected_lines = expected_orders * (1 + a.basket_mu.mean())
        return cls(
            order=max(7, len(str(int(expected_orders * 1.5) + 1))),
            ret=max(7, len(str(int(expected_lines * 0.05) + 1))),
        )


def write_days(
    rng: np.random.Generator,
    tx_dir: Path,
    calendar: Calendar,
    catalogue: Catalogue,
    customers: Customers,
) -> DayTotals:
    """Write `tx_dir/YYYY-MM-DD.csv` for every day with at least one line; a return is
    scheduled on the day of its sale and written on the day it is due."""
    widths = IdWidths.estimate(customers, calendar)
    header = ",".join(TRANSACTION_COLUMNS) + "\n"
    pending: dict[int, list[PendingReturn]] = {}  # due day -> returns
    totals = DayTotals()
    next_order = 1
    next_return = 1
    for d, date in enumerate(calendar.dates):
        sales = draw_sales(rng, d, calendar, catalogue, customers)
        schedule_returns(pending, sales, d, calendar.days)
        day_str = date.isoformat()
        sale_cols, sale_sec = sale_columns(
            sales, date, next_order, widths.order, catalogue, customers, totals.defective_lines
        )
        totals.sale_lines += len(sales.prod) - int(sales.defect.sum())
        totals.orders += sales.n_orders
        next_order += sales.n_orders

        due = pending.pop(d, [])
        ret_cols, r_sec, r_rank = return_columns(
            rng, due, day_str, next_return, widths.ret, catalogue, customers
        )
        next_return += len(due)
        totals.return_lines += len(due)

        if len(sales.prod) + len(due) == 0:
            continue
        path = tx_dir / f"{day_str}.csv"
        write_day(path, header, sales, sale_cols, sale_sec, ret_cols, r_sec, r_rank)
        totals.days_written += 1
        totals.tx_bytes += path.stat().st_size
    return totals


def draw_sales(
    rng: np.random.Generator, d: int, calendar: Calendar, catalogue: Catalogue, cust: Customers
) -> SaleLines:
    """Day `d`'s orders (who orders, when, how many lines) and their lines (category, product,
    quantity, promotion, whether it is returned later, whether it is defective)."""
    a, demo = cust.activity, cust.demographics
    n = len(cust.ids)
    date = calendar.dates[d]
    u = rng.random(n)
    active = (a.first_day < d) & (d <= a.last_day)
    ordering = (a.first_day == d) | (active & (u < a.p_daily * calendar.season_norm[d]))
    oc = np.flatnonzero(ordering)
    n_orders = len(oc)
    k = np.minimum(1 + rng.poisson(a.basket_mu[oc]), MAX_BASKET)
    hours = HOUR_PROBABILITIES
    order_sec = (
        (OPEN_HOUR + rng.choice(len(hours), size=n_orders, p=hours)) * 3600
        + rng.integers(0, 3600, n_orders)
    ).astype(np.int64)
    # order ids follow time order within the day (ties: customer index)
    o_rank = np.empty(n_orders, dtype=np.int64)
    o_rank[np.lexsort((oc, order_sec))] = np.arange(n_orders)
    line_order = np.repeat(o_rank, k)
    line_cust = np.repeat(oc, k)
    L = len(line_cust)
    u_cat = rng.random(L).astype(np.float32)
    cat = (u_cat[:, None] > cust.category_cum[line_cust]).sum(axis=1)
    u_prod = rng.random(L)
    prod_local = (u_prod[:, None] > catalogue.product_cum[demo.bucket[line_cust], cat]).sum(axis=1)
    prod = catalogue.cat_offset[cat] + prod_local
    # each product at most once per order (keep first draw)
    _, first_idx = np.unique(line_order * catalogue.n_products + prod, return_index=True)
    keep = np.sort(first_idx)
    line_order, line_cust, cat, prod = line_order[keep], line_cust[keep], cat[keep], prod[keep]
    L = len(prod)
    qty = np.minimum(1 + rng.poisson(catalogue.quantity_mean[cat]), 12)
    # promotions: 10-20% off, more of them around Black Friday / December
    promo_p = 0.25 if calendar.season[d] / WEEKDAY_FACTOR[date.weekday()] >= 1.3 else 0.07
    promo = rng.random(L) < promo_p
    pct = rng.choice(np.array([10, 15, 20]), size=L)
    base = catalogue.cents[prod]
    cents = np.where(promo, base * (100 - pct) // 100, base)
    price_str = catalogue.base_price_str[prod]
    if promo.any():
        price_str[promo] = fmt_cents(cents[promo])
    # returns, for later days
    is_ret = rng.random(L) < catalogue.return_p[cat]
    lag = np.minimum(rng.geometric(0.15, L), RETURN_LAG_MAX)
    ret_qty = 1 + (rng.random(L) * qty).astype(np.int64)
    # defects: only on lines that are not referenced by a return
    defect = (rng.random(L) < DEFECT_RATE) & ~is_ret
    rule = rng.integers(0, len(DEFECT_RULES), L)
    variant = rng.random(L) < 0.5
    return SaleLines(
        n_orders, order_sec, o_rank, line_order, line_cust, cat, prod, qty, cents, price_str,
        is_ret, lag, ret_qty, defect, rule, variant,
    )  # fmt: skip


def schedule_returns(
    pending: dict[int, list[PendingReturn]], sales: SaleLines, d: int, days: int
) -> None:
    """Add the day's returned lines to `pending` under the day they are due (within the
    period; a return due after it is never written)."""
    for j in np.flatnonzero(sales.is_ret & (d + sales.lag < days)).tolist():
        pending.setdefault(d + int(sales.lag[j]), []).append(
            (
                int(sales.line_cust[j]),
                int(sales.prod[j]),
                int(sales.ret_qty[j]),
                int(sales.cents[j]),
            )
        )


def sale_columns(
    sales: SaleLines,
    date: dt.date,
    next_order: int,
    order_width: int,
    catalogue: Catalogue,
    cust: Customers,
    defect_counts: dict[str, int],
) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """The sale lines as text columns (order_id .. unit_price), each defective line breaking
    its one rule (counted in `defect_counts`), and each line's second of the day."""
    day_str = date.isoformat()
    order_ids = np.array(
        [f"O{next_order + r:0{order_width}d}" for r in range(sales.n_orders)], dtype=object
    )
    col_oid = order_ids[sales.line_order]
    col_cid = cust.ids[sales.line_cust]
    sale_sec = sales.order_sec[np.argsort(sales.o_rank)][sales.line_order]  # o_rank -> seconds
    col_ts = (day_str + " ") + time_of_day()[sale_sec]
    col_pid = catalogue.ids[sales.prod]
    col_qty = np.array([str(q) for q in sales.qty.tolist()], dtype=object)
    col_price = sales.price_str
    for j in np.flatnonzero(sales.defect).tolist():
        r = DEFECT_RULES[sales.rule[j]]
        defect_counts[r] += 1
        if r == "missing_customer_id":
            col_cid[j] = ""
        elif r == "negative_unit_price":
            col_price[j] = "-" + col_price[j]
        elif r == "non_numeric_unit_price":
            col_price[j] = "N/A" if sales.variant[j] else "TBD"
        elif r == "malformed_order_ts":
            col_ts[j] = f"{date.year}-13-45 25:61:00" if sales.variant[j] else "not a date"
        else:
            col_qty[j] = "0"
    return (col_oid, col_cid, col_ts, col_pid, col_qty, col_price), sale_sec


def return_columns(
    rng: np.random.Generator,
    due: list[PendingReturn],
    day_str: str,
    next_return: int,
    return_width: int,
    catalogue: Catalogue,
    cust: Customers,
) -> tuple[tuple[np.ndarray, ...], np.ndarray, np.ndarray]:
    """The returns due today as text columns, one line per return order (`R...` ids in time
    order), with each line's second of the day and its rank."""
    R = len(due)
    if R:
        r_cust = np.array([x[0] for x in due], dtype=np.int64)
        r_prod = np.array([x[1] for x in due], dtype=np.int64)
        r_qty = np.array([x[2] for x in due], dtype=np.int64)
        r_cents = np.array([x[3] for x in due], dtype=np.int64)
    else:
        r_cust = r_prod = r_qty = r_cents = np.zeros(0, dtype=np.int64)
    r_sec = (
        (OPEN_HOUR + rng.integers(0, CLOSE_HOUR - OPEN_HOUR, R)) * 3600 + rng.integers(0, 3600, R)
    ).astype(np.int64)
    r_rank = np.empty(R, dtype=np.int64)
    r_rank[np.lexsort((np.arange(R), r_sec))] = np.arange(R)
    ret_oid = np.array(
        [f"R{next_return + int(r):0{return_width}d}" for r in r_rank.tolist()], dtype=object
    )
    cols = (
        ret_oid,
        cust.ids[r_cust],
        (day_str + " ") + time_of_day()[r_sec],
        catalogue.ids[r_prod],
        np.array([str(-q) for q in r_qty.tolist()], dtype=object),
        np.array(fmt_cents(r_cents), dtype=object),
    )
    return cols, r_sec, r_rank


def write_day(
    path: Path,
    header: str,
    sales: SaleLines,
    sale_cols: tuple[np.ndarray, ...],
    sale_sec: np.ndarray,
    ret_cols: tuple[np.ndarray, ...],
    r_sec: np.ndarray,
    r_rank: np.ndarray,
) -> None:
    """Write one day file: sales and returns merged by time, then order, then original line
    position."""
    L, R = len(sale_sec), len(r_sec)
    all_sec = np.concatenate([sale_sec, r_sec])
    kind = np.concatenate([np.zeros(L, dtype=np.int64), np.ones(R, dtype=np.int64)])
    seq = np.concatenate([sales.line_order, r_rank])
    pos = np.concatenate([np.arange(L), np.arange(R)])
    order = np.lexsort((pos, seq, kind, all_sec))
    cols = [np.concatenate([s, r]) for s, r in zip(sale_cols, ret_cols, strict=True)]
    rows = zip(*(c[order].tolist() for c in cols), strict=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(header)
        f.write("\n".join(map(",".join, rows)))
        f.write("\n")
