"""The source abstraction: how a dataset's files (or database) become raw rows.

Every adapter yields the same *raw* shape (all text, as found in the input), so that typing,
validation and quarantine happen once, in staging, for every format:

- transactions: `order_id, customer_id, order_ts, product_id, quantity, unit_price,
  product_name, category` (the last two may be NULL), plus `source_file`, `source_line` and
  `extra` (a JSON object with the input's other columns, e.g. Country, or NULL);
- customers: `customer_id, gender, age_band, occupation, marital_status, city_category`, plus
  `source_file`, `source_line`;
- products: `product_id, product_name, category`, plus `source_file`, `source_line`.

Adapters return SQL (with bound parameters) that DuckDB runs inside the raw asset's insert, so
rows stream from the file into the warehouse without passing through Python.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import duckdb

from segment_pipeline.dataset_format import CUSTOMER_COLUMNS, PRODUCT_COLUMNS, TRANSACTION_COLUMNS
from segment_pipeline.sources.lines import CsvFile

RAW_TRANSACTION_FIELDS: tuple[str, ...] = (*TRANSACTION_COLUMNS, "product_name", "category")
REQUIRED_TRANSACTION_FIELDS: tuple[str, ...] = RAW_TRANSACTION_FIELDS[:6]
CUSTOMER_FIELDS: tuple[str, ...] = CUSTOMER_COLUMNS
#: The customer fields other than the id.
DEMOGRAPHIC_FIELDS: tuple[str, ...] = CUSTOMER_FIELDS[1:]
PRODUCT_FIELDS: tuple[str, ...] = PRODUCT_COLUMNS


class DataContractError(ValueError):
    """The input does not meet the data contract in a way no row-level quarantine can fix
    (a missing column, an unreadable file). The message names the file and the problem."""


@dataclass(frozen=True)
class RawQuery:
    """A SQL SELECT producing raw rows, with its bound parameters, and the CSV files it reads
    (so the loader can count their blank lines and name the line of a load error)."""

    sql: str
    params: list[Any] = field(default_factory=list)
    source_file: str = ""
    csv_files: tuple[CsvFile, ...] = ()


def with_partition_date(query: RawQuery, day: date) -> RawQuery:
    """`query`'s rows, all on `day`."""
    return RawQuery(
        sql=f"SELECT CAST(? AS DATE) AS partition_date, src.* FROM ({query.sql}) AS src",
        params=[day, *query.params],
        source_file=query.source_file,
        csv_files=query.csv_files,
    )


#: The canonical contract's demographic codes (those of the Black Friday data), in order.
CONTRACT_DEMOGRAPHICS: dict[str, tuple[str, ...]] = {
    "gender": ("M", "F"),
    "age_band": ("0-17", "18-25", "26-35", "36-45", "46-50", "51-55", "55+"),
    "marital_status": ("0", "1"),
}


class DatasetSource(ABC):
    """One dataset in one format."""

    @abstractmethod
    def describe(self) -> str:
        """Human-readable location (never with credentials)."""

    @abstractmethod
    def transaction_days(self) -> list[date]:
        """The days that have transaction data, ascending."""

    @abstractmethod
    def raw_transactions(self, conn: duckdb.DuckDBPyConnection, day: date) -> RawQuery | None:
        """Raw transaction rows of one day, or None when the day has no data (not an error)."""

    def raw_window(
        self, conn: duckdb.DuckDBPyConnection, first: date, last: date
    ) -> Iterable[RawQuery]:
        """Raw transaction rows of every day `first..last`, each with its `partition_date`.

        The caller runs each query before asking for the next, so a query may read a temp
        table its adapter filled for it. The default asks for each day in turn; adapters
        override it to read their input once for the whole window (a multi-file scan, one pass
        over a single export), so the cost follows the data, not the number of days.
        """
        for day in self.transaction_days():
            if first <= day <= last:
                query = self.raw_transactions(conn, day)
                if query is not None:
                    yield with_partition_date(query, day)

    def unrecognised_inputs(self) -> list[str]:
        """Files the dataset holds but that will not be loaded (a day file whose name is not a
        real YYYY-MM-DD date, a wrong extension): every file is loaded or reported."""
        return []

    def listed_day_range(self) -> tuple[date, date] | None:
        """The data's first and last day when they can be known without reading the data
        (from file names), else None. The partitions follow it; it must never scan rows."""
        return None

    def raw_customers(self, conn: duckdb.DuckDBPyConnection) -> RawQuery | None:
        """Raw customer profiles, or None when the dataset has none."""
        return None

    def declared_demographics(self) -> dict[str, tuple[str, ...]]:
        """The values the source declares for each demographic field, in the source's order.
        A staged value outside them becomes `Unknown` for that field, with a quarantine note
        (the profile is kept). A field not listed takes whatever values the source has.
        The canonical contract declares Black Friday's codes."""
        return dict(CONTRACT_DEMOGRAPHICS)

    def explain_read_error(self, error: BaseException) -> str | None:
        """A clearer message for a DuckDB error reading this dataset's files (a byte that is
        not in the file's encoding: file, line, byte offset), or None to keep DuckDB's."""
        return None

    def raw_products(self, conn: duckdb.DuckDBPyConnection) -> RawQuery | None:
        """Raw product master rows, or None when the dataset has none."""
        return None

    def master_files(self, entity: str) -> tuple[Path, ...] | None:
        """Every file `raw_customers` (`entity` "customers") or `raw_products` ("products")
        reads, when the source can name them without reading them; None when it cannot
        (a database, profiles derived from the transaction files). Staging skips
        re-validating a master whose files, rules and recorded result are unchanged."""
        return None
