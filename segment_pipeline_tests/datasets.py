"""Helpers that write small canonical datasets for tests."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from pathlib import Path

from segment_pipeline.dataset_format import CUSTOMER_COLUMNS, PRODUCT_COLUMNS, TRANSACTION_COLUMNS

TRANSACTION_HEADER = list(TRANSACTION_COLUMNS)
CUSTOMER_HEADER = list(CUSTOMER_COLUMNS)
PRODUCT_HEADER = list(PRODUCT_COLUMNS)


def write_csv(path: Path, header: list[str], rows: Iterable[Mapping[str, object] | list]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for row in rows:
            writer.writerow([row.get(h, "") for h in header] if isinstance(row, Mapping) else row)
    return path


def write_day(
    root: Path,
    day: str,
    rows: Iterable[Mapping[str, object] | list],
    header: list[str] | None = None,
) -> Path:
    return write_csv(root / "transactions" / f"{day}.csv", header or TRANSACTION_HEADER, rows)


def line(
    order_id: str, customer_id: str, ts: str, product_id: str, quantity: object, unit_price: object
) -> dict[str, object]:
    return {
        "order_id": order_id,
        "customer_id": customer_id,
        "order_ts": ts,
        "product_id": product_id,
        "quantity": quantity,
        "unit_price": unit_price,
    }
