"""Tests for the synthetic data generator.

The pipeline's tests and the committed sample rely on these properties: byte-for-byte
determinism, the exact canonical columns, referential ids, returns that point at real earlier
purchases, defect counts that match the report, and behaviour realistic enough that every RFM
segment and price level shows up.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segment_pipeline.generator import (
    CUSTOMER_COLUMNS,
    DEFECT_RULES,
    PRODUCT_COLUMNS,
    TRANSACTION_COLUMNS,
    GenerationReport,
    generate,
)

SMALL = {"customers": 200, "days": 60, "seed": 7, "start": dt.date(2025, 11, 1)}
AGE_BANDS = {"0-17", "18-25", "26-35", "36-45", "46-50", "51-55", "55+"}


def _read_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def _all_bytes(out: Path) -> dict[str, bytes]:
    return {
        p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()
    }


def _classify(row: list[str], day: str) -> str:
    """Return 'sale', 'return' or the defect rule the row breaks (independent of the generator)."""
    _oid, cid, ts, _pid, qty, price = row
    if cid == "":
        return "missing_customer_id"
    try:
        parsed = dt.datetime.strptime(ts, "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return "malformed_order_ts"
    assert parsed.date().isoformat() == day, (ts, day)
    try:
        p = float(price)
    except ValueError:
        return "non_numeric_unit_price"
    if not math.isfinite(p):
        return "non_numeric_unit_price"
    if p < 0:
        return "negative_unit_price"
    q = int(qty)
    if q == 0:
        return "zero_quantity"
    return "sale" if q > 0 else "return"


def _transactions(out: Path) -> list[tuple[str, list[str], str]]:
    """All transaction rows as (file day, row, class)."""
    result = []
    for p in sorted((out / "transactions").glob("*.csv")):
        header, rows = _read_rows(p)
        assert header == list(TRANSACTION_COLUMNS)
        for row in rows:
            assert len(row) == len(TRANSACTION_COLUMNS), (p.name, row)
            result.append((p.stem, row, _classify(row, p.stem)))
    return result


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, GenerationReport]:
    out = tmp_path_factory.mktemp("gen_small")
    return out, generate(out, **SMALL)


@pytest.fixture(scope="module")
def small_tx(small: tuple[Path, GenerationReport]) -> list[tuple[str, list[str], str]]:
    return _transactions(small[0])


def test_same_seed_gives_identical_bytes_and_other_seed_differs(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    generate(a, **SMALL)
    generate(b, **SMALL)
    generate(c, **{**SMALL, "seed": SMALL["seed"] + 1})
    files_a, files_b, files_c = _all_bytes(a), _all_bytes(b), _all_bytes(c)
    assert files_a == files_b
    assert files_a.keys() - {"generation_report.json"}  # something was written
    assert files_a["transactions/2025-11-01.csv"] != files_c["transactions/2025-11-01.csv"]
    assert files_a["customers.csv"] != files_c["customers.csv"]


def test_headers_and_static_files(small: tuple[Path, GenerationReport]) -> None:
    out, report = small
    header, customers = _read_rows(out / "customers.csv")
    assert header == list(CUSTOMER_COLUMNS)
    assert len(customers) == report.customers == SMALL["customers"]
    assert [r[0] for r in customers] == [f"C{i:05d}" for i in range(1, len(customers) + 1)]
    for _cid, gender, age, occ, married, city in customers:
        assert gender in {"M", "F"}
        assert age in AGE_BANDS
        assert 0 <= int(occ) <= 20
        assert married in {"0", "1"}
        assert city in {"A", "B", "C"}

    header, products = _read_rows(out / "products.csv")
    assert header == list(PRODUCT_COLUMNS)
    assert len(products) == report.products
    assert len({r[0] for r in products}) == len(products)
    per_cat = Counter(r[2] for r in products)
    assert len(per_cat) == report.categories >= 18
    assert all(15 <= k <= 40 for k in per_cat.values())
    names = [(r[2], r[1]) for r in products]
    assert len(set(names)) == len(names)  # names unique within a category
    assert all(len(r) == 3 and r[1].strip() for r in products)


def test_timestamps_fall_on_their_file_day(small_tx: list[tuple[str, list[str], str]]) -> None:
    # _classify asserts every parseable order_ts is on the file's day
    classes = Counter(c for _d, _r, c in small_tx)
    assert classes["sale"] > 0
    for day, row, cls in small_tx:
        if cls != "malformed_order_ts":
            hour = int(row[2][11:13])
            assert 9 <= hour < 22, row  # opening hours
            assert row[2].startswith(day)


def test_report_counts_match_files(
    small: tuple[Path, GenerationReport], small_tx: list[tuple[str, list[str], str]]
) -> None:
    out, report = small
    classes = Counter(c for _d, _r, c in small_tx)
    assert report.transaction_lines == len(small_tx)
    assert report.sale_lines == classes["sale"]
    assert report.return_lines == classes["return"]
    assert report.defective_lines == {rule: classes[rule] for rule in DEFECT_RULES}
    assert report.transaction_lines == (
        report.sale_lines + report.return_lines + sum(report.defective_lines.values())
    )
    assert report.days_written == len(list((out / "transactions").glob("*.csv")))
    assert report.end == SMALL["start"] + dt.timedelta(days=SMALL["days"] - 1)


def test_ids_are_referential_and_orders_consistent(
    small: tuple[Path, GenerationReport], small_tx: list[tuple[str, list[str], str]]
) -> None:
    out, _ = small
    customer_ids = {r[0] for r in _read_rows(out / "customers.csv")[1]}
    product_ids = {r[0] for r in _read_rows(out / "products.csv")[1]}
    orders: dict[str, set[tuple[str, str, str]]] = defaultdict(set)
    products_in_order: dict[str, list[str]] = defaultdict(list)
    for day, row, cls in small_tx:
        oid, cid, ts, pid, _qty, price = row
        assert pid in product_ids
        if cls != "missing_customer_id":
            assert cid in customer_ids
        if cls in ("sale", "return"):
            assert len(price.split(".")[1]) == 2  # fixed 2 decimals
        if cls == "return":
            assert oid.startswith("R")
        else:
            assert oid.startswith("O")
        if cls not in ("missing_customer_id", "malformed_order_ts"):
            orders[oid].add((day, cid, ts))
        products_in_order[oid].append(pid)
    # all (well-formed) lines of an order share customer and timestamp
    assert all(len(v) == 1 for v in orders.values())
    # an order never lists the same product twice
    assert all(len(p) == len(set(p)) for p in products_in_order.values())
    assert max(len(p) for p in products_in_order.values()) > 1


def test_returns_reference_an_earlier_purchase(
    small_tx: list[tuple[str, list[str], str]],
) -> None:
    bought: dict[tuple[str, str], list[tuple[str, int, str]]] = defaultdict(list)
    returns = []
    for day, row, cls in small_tx:
        if cls == "sale":
            bought[(row[1], row[3])].append((day, int(row[4]), row[5]))
        elif cls == "return":
            returns.append((day, row))
    assert returns, "expected some returns"
    for day, row in returns:
        qty = int(row[4])
        assert qty < 0
        earlier = [b for b in bought[(row[1], row[3])] if b[0] < day and b[1] >= -qty]
        assert earlier, row
        assert row[5] in {b[2] for b in earlier}  # refunded at a price actually paid
    sales = sum(1 for *_x, c in small_tx if c == "sale")
    assert 0.003 < len(returns) / sales < 0.05


def test_defects_are_rare_and_each_rule_present(tmp_path: Path) -> None:
    report = generate(tmp_path, customers=600, days=120, seed=3)
    total = sum(report.defective_lines.values())
    assert list(report.defective_lines) == list(DEFECT_RULES)
    assert all(v > 0 for v in report.defective_lines.values())
    assert 0.002 < total / report.transaction_lines < 0.01


def test_price_levels_differ_by_category(
    small: tuple[Path, GenerationReport], small_tx: list[tuple[str, list[str], str]]
) -> None:
    out, _ = small
    cat_of = {r[0]: r[2] for r in _read_rows(out / "products.csv")[1]}
    prices: dict[str, list[float]] = defaultdict(list)
    for _d, row, cls in small_tx:
        if cls == "sale":
            prices[cat_of[row[3]]].append(float(row[5]))
    med = {c: float(np.median(v)) for c, v in prices.items()}
    assert 2 * med["Groceries"] < med["Books"] < 40
    assert med["Books"] * 3 < med["Electronics"] < med["Jewelry & Watches"]
    assert med["Jewelry & Watches"] > 50 * med["Groceries"]


def test_product_prices_are_stable(small_tx: list[tuple[str, list[str], str]]) -> None:
    by_product: dict[str, list[float]] = defaultdict(list)
    for _d, row, cls in small_tx:
        if cls == "sale":
            by_product[row[3]].append(float(row[5]))
    for prices in by_product.values():
        top = max(prices)
        assert min(prices) >= 0.79 * top  # at most a 20% promo discount


def test_frequency_spread(small_tx: list[tuple[str, list[str], str]]) -> None:
    orders: dict[str, set[str]] = defaultdict(set)
    for _d, row, cls in small_tx:
        if cls == "sale":
            orders[row[1]].add(row[0])
    freq = Counter(len(v) for v in orders.values())
    assert freq[1] >= 20  # one-time buyers
    assert max(freq) >= 8  # high-frequency customers even in 60 days


def test_full_default_sample_has_all_rfm_segments(tmp_path: Path) -> None:
    """The committed sample's promise: every RFM segment is clearly populated."""
    report = generate(tmp_path, customers=3000, days=365, seed=42)
    frames = [
        pd.read_csv(p, dtype=str, keep_default_na=False)
        for p in sorted((tmp_path / "transactions").glob("*.csv"))
    ]
    tx = pd.concat(frames, ignore_index=True)
    assert len(tx) == report.transaction_lines >= 30_000
    ts = pd.to_datetime(tx.order_ts, format="%Y-%m-%d %H:%M:%S", errors="coerce")
    price = pd.to_numeric(tx.unit_price, errors="coerce")
    qty = pd.to_numeric(tx.quantity, errors="coerce")
    ok = (tx.customer_id != "") & ts.notna() & (price >= 0) & (qty > 0)
    sales = tx[ok].assign(day=ts[ok].dt.normalize())
    as_of = sales.day.max() + pd.Timedelta(days=1)
    g = sales.groupby("customer_id")
    recency = (as_of - g.day.max()).dt.days
    frequency = g.order_id.nunique()
    n = len(recency)

    def score(x: pd.Series) -> pd.Series:  # ties share a score: rank(method="min")
        return 1 + np.floor(5 * (x.rank(method="min") - 1) / n).astype(int)

    r, f = score(-recency), score(frequency)
    grid = {
        5: ["New Customers", "Potential Loyalists", "Potential Loyalists", "Champions",
            "Champions"],
        4: ["Promising", "Potential Loyalists", "Potential Loyalists", "Loyal Customers",
            "Loyal Customers"],
        3: ["About To Sleep", "About To Sleep", "Need Attention", "Loyal Customers",
            "Loyal Customers"],
        2: ["Hibernating", "Hibernating", "At Risk", "At Risk", "Can't Lose Them"],
        1: ["Hibernating", "Hibernating", "At Risk", "At Risk", "Can't Lose Them"],
    }  # fmt: skip
    segments = Counter(grid[ri][fi - 1] for ri, fi in zip(r, f, strict=True))
    assert len(segments) == 10
    assert min(segments.values()) >= 50, segments
    assert frequency.max() >= 40
    # December is busier than a spring month; weekends busier than midweek
    per_day = sales.groupby("day").order_id.nunique()
    assert (
        per_day[per_day.index.month == 12].mean() > 1.3 * per_day[per_day.index.month == 5].mean()
    )
    dow = per_day.groupby(per_day.index.dayofweek).mean()
    assert dow[5] > 1.2 * dow[2]


def test_demographics_drive_spend(tmp_path: Path) -> None:
    generate(tmp_path, customers=1500, days=120, seed=11)
    tx = pd.concat(
        [pd.read_csv(p) for p in sorted((tmp_path / "transactions").glob("*.csv"))],
        ignore_index=True,
    )
    tx = tx[pd.to_numeric(tx.unit_price, errors="coerce").gt(0) & tx.quantity.gt(0)]
    tx = tx.merge(pd.read_csv(tmp_path / "customers.csv"), on="customer_id")
    tx["amount"] = tx.unit_price.astype(float) * tx.quantity
    occ = tx.groupby("occupation").amount.apply(lambda a: np.log1p(a).mean())
    assert occ.max() - occ.min() > 0.8  # occupations differ clearly in spend
    key = (tx.gender == "M") & (tx.age_band == "26-35") & tx.occupation.isin([12, 17])
    assert tx.amount[key].mean() > 1.5 * tx.amount[~key].mean()


def test_rerun_removes_stale_day_files_only(tmp_path: Path) -> None:
    generate(tmp_path, customers=50, days=20, seed=1)
    keep = tmp_path / "transactions" / "notes.txt"
    keep.write_text("not generated")
    report = generate(tmp_path, customers=50, days=5, seed=1)
    assert len(list((tmp_path / "transactions").glob("*.csv"))) == report.days_written <= 5
    assert keep.exists()


def test_other_start_dates(tmp_path: Path) -> None:
    report = generate(tmp_path, customers=30, days=3, seed=5, start=dt.date(2010, 12, 1))
    names = sorted(p.name for p in (tmp_path / "transactions").glob("*.csv"))
    assert names and set(names) <= {"2010-12-01.csv", "2010-12-02.csv", "2010-12-03.csv"}
    assert report.end == dt.date(2010, 12, 3)


@pytest.mark.parametrize("kwargs", [{"customers": 0}, {"days": 0}])
def test_invalid_sizes_rejected(tmp_path: Path, kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        generate(tmp_path, **kwargs)


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    customers=st.integers(min_value=1, max_value=120),
    days=st.integers(min_value=1, max_value=45),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_report_matches_files_for_any_size(
    tmp_path_factory: pytest.TempPathFactory, customers: int, days: int, seed: int
) -> None:
    out = tmp_path_factory.mktemp("hyp")
    report = generate(out, customers=customers, days=days, seed=seed)
    tx = _transactions(out)
    classes = Counter(c for _d, _r, c in tx)
    assert report.transaction_lines == len(tx)
    assert report.sale_lines == classes["sale"]
    assert report.return_lines == classes["return"]
    assert report.defective_lines == {rule: classes[rule] for rule in DEFECT_RULES}
    order_ids = [r[0] for _d, r, _c in tx]
    # every customer places a first order inside the window, so nothing is empty
    assert report.orders == len({o for o in order_ids if o.startswith("O")}) >= customers
    assert report.days_written <= days
