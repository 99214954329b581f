"""The "Black Friday" retail format (User_ID, Product_ID, Gender, Age, Occupation,
City_Category, Stay_In_Current_City_Years, Marital_Status, Product_Category_1..3, Purchase).

The data has no order ids and no timestamps. Rules (docs/sources.md):

- **One day**: every line is dated `undated_day` (settings / SEGMENT_PIPELINE_UNDATED_DAY,
  default 2024-11-29, Black Friday 2024) at a fixed time, `order_time` (default 12:00:00).
  Recency is therefore the same for everyone; RFM on such data degenerates and reports must
  say so instead of inventing differences.
- **Orders**: each line is its own order, `BF-<line>` (the line in the file, header = 1), so
  frequency = lines. With `orders: per_customer` (options file, see below) all of a
  customer's lines form one order `BF-<User_ID>`.
- **Lines**: quantity 1, unit_price = Purchase, category = Product_Category_1 (the anonymised
  code, as found). Product_Category_2/3, Stay_In_Current_City_Years and any other column are
  kept in `extra`.
- **Customers** come from the same rows: one profile (Gender, Age, Occupation, City_Category,
  Marital_Status) per User_ID. When a user's rows disagree, the profile on the earliest line
  wins; every other version is emitted too, at the line where it first appears, and staging
  quarantines it as `duplicate_customer_id` (entity `customers`): conflicts are reported, not
  resolved silently.

Location: the CSV/Parquet file itself, or a folder holding exactly one such file. Options
(optional) come from a small YAML file passed as `--mapping`: `orders: per_line|per_customer`,
`order_time: "HH:MM:SS"`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import yaml

from segment_pipeline.sources.base import DataContractError, RawQuery
from segment_pipeline.sources.data_files import (
    LINE_COL,
    DataFiles,
    discover_files,
    extra_json,
    mcol,
    sql_literal,
)
from segment_pipeline.sources.file_source import FileDatasetSource, profile_rows_sql

#: Internal name -> input column. The first four are required.
COLUMNS: dict[str, str] = {
    "user_id": "User_ID",
    "product_id": "Product_ID",
    "purchase": "Purchase",
    "category": "Product_Category_1",
    "gender": "Gender",
    "age_band": "Age",
    "occupation": "Occupation",
    "city_category": "City_Category",
    "marital_status": "Marital_Status",
}
REQUIRED = ("user_id", "product_id", "purchase", "category")
DEMOGRAPHICS = ("gender", "age_band", "occupation", "city_category", "marital_status")

ORDER_MODES = ("per_line", "per_customer")
DEFAULT_ORDER_TIME = "12:00:00"
_TIME = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]$")


@dataclass(frozen=True)
class BlackFridayOptions:
    orders: str = "per_line"
    order_time: str = DEFAULT_ORDER_TIME


def load_options(path: Path | None) -> BlackFridayOptions:
    """Options from a small YAML file (`orders`, `order_time`); defaults when `path` is None."""
    if path is None:
        return BlackFridayOptions()
    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise DataContractError(f"options file {path}: cannot be read: {exc}") from None
    if not isinstance(doc, dict) or set(doc) - {"orders", "order_time"}:
        raise DataContractError(
            f"options file {path}: black_friday accepts only `orders` "
            f"({' or '.join(ORDER_MODES)}) and `order_time` (HH:MM:SS)"
        )
    options = BlackFridayOptions(
        orders=str(doc.get("orders", "per_line")),
        order_time=str(doc.get("order_time", DEFAULT_ORDER_TIME)),
    )
    if options.orders not in ORDER_MODES:
        raise DataContractError(
            f"options file {path}: orders must be one of "
            f"{', '.join(ORDER_MODES)} (not {options.orders!r})"
        )
    if not _TIME.match(options.order_time):
        raise DataContractError(
            f"options file {path}: order_time must be HH:MM:SS (not {options.order_time!r})"
        )
    return options


class BlackFridaySource(FileDatasetSource):
    """One Black Friday file, all of it on one configured day."""

    def __init__(
        self, location: Path, *, undated_day: date, options: BlackFridayOptions | None = None
    ) -> None:
        super().__init__(location, undated_day=undated_day)
        self.options = options or BlackFridayOptions()

    def files(self) -> DataFiles:
        if self._files is None:
            found = discover_files(self.location)
            if len(found.files) != 1:
                names = ", ".join(p.name for p in found.files) or "none"
                raise DataContractError(
                    f"{self.location}: black_friday reads one .csv or .parquet file; found "
                    f"{len(found.files)} ({names}). Point --data at the file."
                )
            # One file, read whole (never by a day in its name): the data is undated.
            self._files = DataFiles(found.location, found.files)
        return self._files

    @property
    def file(self) -> Path:
        return self.files().files[0]

    def describe(self) -> str:
        return (
            f"Black Friday file {self.location} (undated: every line on "
            f"{self.undated_day.isoformat()} {self.options.order_time})"
        )

    def transaction_columns(self, path: Path, columns: list[str]) -> dict[str, str | None]:
        missing = [COLUMNS[n] for n in REQUIRED if COLUMNS[n] not in columns]
        if missing:
            raise DataContractError(
                f"{path}: missing Black Friday column(s) {', '.join(missing)} "
                f"(the file has: {', '.join(columns)})"
            )
        return {name: (col if col in columns else None) for name, col in COLUMNS.items()}

    def transaction_selects(self) -> dict[str, str]:
        def m(name: str) -> str:
            return f"src.{mcol(name)}"

        if self.options.orders == "per_customer":
            order_id = f"'BF-' || trim({m('user_id')})"
        else:
            order_id = f"'BF-' || CAST({LINE_COL} AS VARCHAR)"
        stamp = f"{self.undated_day.isoformat()} {self.options.order_time}"
        return {
            "order_id": order_id,
            "customer_id": m("user_id"),
            "order_ts": sql_literal(stamp),
            "product_id": m("product_id"),
            "quantity": "'1'",
            "unit_price": m("purchase"),
            "product_name": "CAST(NULL AS VARCHAR)",
            "category": m("category"),
            "extra": extra_json(),
        }

    def raw_customers(self, conn: duckdb.DuckDBPyConnection) -> RawQuery | None:
        rows, params = self.rows_sql(self.files().files)
        present = self.transaction_columns(self.file, self.columns_of(self.file))
        demographics = {n: f"src.{mcol(n)}" for n in DEMOGRAPHICS if present[n]}
        sql = profile_rows_sql(rows, f"src.{mcol('user_id')}", demographics)
        return RawQuery(sql=sql, params=params, source_file=str(self.file))


__all__ = ["BlackFridayOptions", "BlackFridaySource", "load_options"]
