"""`generate`: the synthetic dataset written as a short sequence of named steps, and the
`GenerationReport` it returns (also written as `generation_report.json`)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from segment_pipeline.dataset_format import CUSTOMER_COLUMNS, PRODUCT_COLUMNS
from segment_pipeline.generator.catalogue import Catalogue, build_catalogue
from segment_pipeline.generator.customers import Customers, draw_customers
from segment_pipeline.generator.days import DayTotals, write_days
from segment_pipeline.generator.parameters import (
    AGE_BANDS,
    CATEGORIES,
    DAY_FILE_RE,
)
from segment_pipeline.generator.season import Calendar

STATIC_FILES = ("customers.csv", "products.csv")


@dataclass(frozen=True)
class GenerationReport:
    """What ``generate`` wrote, so callers and tests can check the files against it.

    ``transaction_lines == sale_lines + return_lines + sum(defective_lines.values())``.
    """

    out_dir: Path
    start: dt.date
    end: dt.date  # last calendar day covered (inclusive)
    seed: int
    days: int
    days_written: int
    transaction_lines: int
    sale_lines: int
    return_lines: int
    defective_lines: dict[str, int] = field(default_factory=dict)
    customers: int = 0
    products: int = 0
    categories: int = 0
    orders: int = 0
    return_orders: int = 0
    bytes_written: int = 0

    def to_json_dict(self) -> dict[str, object]:
        """JSON-ready dict without ``out_dir`` (so the manifest is machine independent)."""
        d = asdict(self)
        d.pop("out_dir")
        d["start"] = self.start.isoformat()
        d["end"] = self.end.isoformat()
        return d


def generate(
    out_dir: Path,
    customers: int = 3000,
    days: int = 365,
    seed: int = 42,
    start: dt.date = dt.date(2025, 11, 1),
) -> GenerationReport:
    """Write a deterministic synthetic dataset to ``out_dir`` and report what was written.

    Same arguments give byte-identical files. Existing ``transactions/YYYY-MM-DD.csv`` files in
    ``out_dir`` are removed first (the folder's day files belong to the generator), other files
    are left alone. Every step draws from the one generator, in this order.
    """
    if customers < 1:
        raise ValueError(f"customers must be >= 1, got {customers}")
    if days < 1:
        raise ValueError(f"days must be >= 1, got {days}")
    out_dir = Path(out_dir)
    tx_dir = prepare_out_dir(out_dir)
    rng = np.random.default_rng(seed)
    calendar = Calendar.of(start, days)
    catalogue = build_catalogue(rng)
    people = draw_customers(rng, customers, calendar)
    write_customers(out_dir / "customers.csv", people)
    write_products(out_dir / "products.csv", catalogue)
    totals = write_days(rng, tx_dir, calendar, catalogue, people)
    report = make_report(out_dir, seed, calendar, catalogue, people, totals)
    write_report(out_dir / "generation_report.json", report)
    return report


def prepare_out_dir(out_dir: Path) -> Path:
    """Create ``out_dir/transactions`` and remove its earlier day files, so that a smaller
    re-run leaves no stale days behind; return that folder."""
    tx_dir = out_dir / "transactions"
    tx_dir.mkdir(parents=True, exist_ok=True)
    for p in sorted(tx_dir.iterdir()):
        if p.is_file() and DAY_FILE_RE.match(p.name):
            p.unlink()
    return tx_dir


def write_customers(path: Path, people: Customers) -> None:
    """``customers.csv``: one row per customer with its demographics."""
    demo = people.demographics
    gchar = np.where(demo.male, "M", "F")
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(",".join(CUSTOMER_COLUMNS) + "\n")
        f.write(
            "".join(
                f"{people.ids[i]},{gchar[i]},{AGE_BANDS[demo.age[i]]},{demo.occ[i]},"
                f"{demo.married[i]},{'ABC'[demo.city[i]]}\n"
                for i in range(len(people.ids))
            )
        )


def write_products(path: Path, catalogue: Catalogue) -> None:
    """``products.csv``: one row per product with its name and category."""
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(",".join(PRODUCT_COLUMNS) + "\n")
        f.write(
            "".join(
                f"{catalogue.ids[i]},{catalogue.names[i]},{catalogue.categories[i]}\n"
                for i in range(catalogue.n_products)
            )
        )


def make_report(
    out_dir: Path,
    seed: int,
    calendar: Calendar,
    catalogue: Catalogue,
    people: Customers,
    totals: DayTotals,
) -> GenerationReport:
    """The report of what was written (bytes: the day files and the two static files)."""
    n_def = sum(totals.defective_lines.values())
    bytes_written = totals.tx_bytes + sum((out_dir / name).stat().st_size for name in STATIC_FILES)
    return GenerationReport(
        out_dir=out_dir,
        start=calendar.dates[0],
        end=calendar.dates[-1],
        seed=seed,
        days=calendar.days,
        days_written=totals.days_written,
        transaction_lines=totals.sale_lines + totals.return_lines + n_def,
        sale_lines=totals.sale_lines,
        return_lines=totals.return_lines,
        defective_lines=totals.defective_lines,
        customers=len(people.ids),
        products=catalogue.n_products,
        categories=len(CATEGORIES),
        orders=totals.orders,
        return_orders=totals.return_lines,
        bytes_written=bytes_written,
    )


def write_report(path: Path, report: GenerationReport) -> None:
    """``generation_report.json``: the report without the machine-specific out_dir."""
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(json.dumps(report.to_json_dict(), indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    """Convenience entry point: ``python -m segment_pipeline.generator --out DIR``."""
    ap = argparse.ArgumentParser(
        prog="python -m segment_pipeline.generator",
        description="Generate the synthetic segment_pipeline dataset.",
    )
    ap.add_argument("--out", required=True, type=Path, help="output folder")
    ap.add_argument("--customers", type=int, default=3000)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--start", type=dt.date.fromisoformat, default=dt.date(2025, 11, 1))
    a = ap.parse_args(argv)
    rep = generate(a.out, customers=a.customers, days=a.days, seed=a.seed, start=a.start)
    print(json.dumps(rep.to_json_dict(), indent=2))
    return 0
