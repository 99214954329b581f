"""The `mapped` format: any CSV or Parquet dataset plus a small YAML mapping file that says
which column is which (see docs/sources.md and docs/examples/*.yaml).

`MappedSource` is the adapter; what it builds on is in its own modules:

- `data_files`: finding the CSV/Parquet files and reading them as rows of text;
- `file_source`: `FileDatasetSource`, the machinery the file-based adapters share (days,
  windows, customer profiles from transaction rows);
- `mapping_file`: `load_mapping` / `DatasetMapping`, the mapping file read and validated;
- `value_rules`: declared timestamp and number formats, and the declared-type check.

The names this module used to define are still importable from it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import duckdb

from segment_pipeline.sources.base import (
    CUSTOMER_FIELDS,
    DEMOGRAPHIC_FIELDS,
    PRODUCT_FIELDS,
    DataContractError,
    RawQuery,
)
from segment_pipeline.sources.data_files import (
    FILE_COL,
    INDEX_COL,
    LINE_COL,
    CsvOptions,
    DataFiles,
    discover_files,
    extra_json,
    file_select,
    mcol,
    read_columns,
    sql_literal,
)
from segment_pipeline.sources.file_source import FileDatasetSource, profile_rows_sql
from segment_pipeline.sources.mapping_file import (
    TRANSACTION_MAPPING_FIELDS,
    DatasetMapping,
    EntityMapping,
    load_mapping,
)
from segment_pipeline.sources.value_rules import TypedColumn, ValueRules, check_declared_types

#: Time of day given to the rows of a mapping without order_ts (all on the undated day).
UNDATED_TIME = "12:00:00"


def _recoded(expr: str, values: Mapping[str, str] | None) -> str:
    if not values:
        return expr
    whens = " ".join(f"WHEN {sql_literal(a)} THEN {sql_literal(b)}" for a, b in values.items())
    return f"CASE trim({expr}) {whens} ELSE {expr} END"


class MappedSource(FileDatasetSource):
    """Any CSV/Parquet dataset described by a mapping file."""

    def __init__(self, data_dir: Path, mapping: DatasetMapping, *, undated_day: date) -> None:
        super().__init__(data_dir, undated_day=undated_day)
        self.mapping = mapping
        self.csv_options = mapping.csv
        self.rules = mapping.rules

    def declared_demographics(self) -> dict[str, tuple[str, ...]]:
        """The mapping's `demographic_values` (after `recode`); a field it does not list
        keeps the source's own values, whatever they are (age bands such as 19-24 / 65+,
        marital status words)."""
        return dict(self.mapping.demographic_values)

    def _resolve(self, entity: EntityMapping) -> Path:
        return self.location / entity.path if entity.path else self.location

    @property
    def transaction_location(self) -> Path:
        return self._resolve(self.mapping.transactions)

    def describe(self) -> str:
        return f"mapped dataset at {self.transaction_location} (mapping {self.mapping.source})"

    def input_files(self) -> list[Path]:
        found = super().input_files()
        for entity in (self.mapping.customers, self.mapping.products):
            if entity is not None:
                with contextlib.suppress(DataContractError):  # reported when it is read
                    found.extend(discover_files(self._resolve(entity)).files)
        return found

    def _check_columns(self, path: Path, columns: list[str], wanted: Mapping[str, str]) -> None:
        for name, column in wanted.items():
            if column not in columns:
                raise DataContractError(
                    f"{path}: the mapping {self.mapping.source} names column {column!r} for "
                    f"{name}, but the file has no such column (it has: {', '.join(columns)})"
                )

    def transaction_columns(self, path: Path, columns: list[str]) -> dict[str, str | None]:
        wanted = {**self.mapping.transactions.columns, **self.mapping.demographics}
        self._check_columns(path, columns, wanted)
        return {
            name: wanted.get(name) for name in (*TRANSACTION_MAPPING_FIELDS, *DEMOGRAPHIC_FIELDS)
        }

    def timestamp_expr(self) -> str | None:
        if "order_ts" not in self.mapping.transactions.columns:
            return None
        return self.rules.ts_parsed(f"src.{mcol('order_ts')}")

    def transaction_selects(self) -> dict[str, str]:
        cols = self.mapping.transactions.columns
        rules = self.rules

        def m(name: str) -> str:
            return f"src.{mcol(name)}"

        if "order_id" in cols:
            order_id = m("order_id")
        else:  # no order ids: each line is its own order, named after its file and line
            order_id = f"{FILE_COL} || ':' || CAST({LINE_COL} AS VARCHAR)"
        if "order_ts" in cols:
            order_ts = rules.ts_text(m("order_ts"))
        else:
            order_ts = sql_literal(f"{self.undated_day.isoformat()} {UNDATED_TIME}")
        quantity = rules.int_text(m("quantity"))
        if "unit_price" in cols:
            unit_price = rules.dec_text(m("unit_price"))
        else:
            # unit_price = amount / quantity, 4 decimals, for display: staging keeps the
            # stated amount (extra.stated_amount) as the line's amount. When the quantity is
            # zero or unreadable the amount is passed on as found: the line is quarantined
            # for its quantity either way.
            amount, qty = m("amount"), m("quantity")
            divide = (
                f"CAST(CAST(round(CAST({rules.dec_text(amount)} AS DECIMAL(18,4)) / "
                f"CAST({rules.int_text(qty)} AS BIGINT), 4) AS DECIMAL(18,4)) AS VARCHAR)"
            )
            unit_price = (
                f"CASE WHEN {rules.dec_fits(amount)} AND {rules.int_fits(qty)} AND "
                f"TRY_CAST({rules.int_text(qty)} AS BIGINT) <> 0 THEN {divide} "
                f"ELSE {rules.dec_text(amount)} END"
            )
        extra_pairs = []
        if "amount" in cols:
            # The stated line total is the truth (staging's `amount`, exactly); the unit price
            # derived from it above is for display. `stated_amount` is its normalised text.
            extra_pairs.append(("amount_as_found", m("amount")))
            extra_pairs.append(("stated_amount", rules.dec_text(m("amount"))))
        return {
            "order_id": order_id,
            "customer_id": m("customer_id"),
            "order_ts": order_ts,
            "product_id": m("product_id"),
            "quantity": quantity,
            "unit_price": unit_price,
            "product_name": m("product_name"),
            "category": m("category"),
            "extra": extra_json(*extra_pairs),
        }

    def check_rows(self, conn: duckdb.DuckDBPyConnection, rows_sql: str, params: list[Any]) -> None:
        cols = self.mapping.transactions.columns
        typed = [
            TypedColumn(name, cols[name], kind)
            for name, kind in (
                ("order_ts", "timestamp"),
                ("quantity", "integer"),
                ("unit_price", "decimal"),
                ("amount", "decimal"),
            )
            if name in cols
        ]
        check_declared_types(
            conn,
            rows_sql,
            params,
            typed,
            self.rules,
            strict=self.mapping.bad_values == "stop",
            mapping_file=self.mapping.source,
            location=str(self.transaction_location),
            explain=self.explain_read_error,
        )

    # -- customers and products ------------------------------------------------------------

    def _entity_rows(
        self, entity: EntityMapping, fields: Sequence[str]
    ) -> tuple[str, list[Any], DataFiles]:
        files = discover_files(self._resolve(entity))
        if not files.files:
            raise DataContractError(f"{files.location}: no .csv or .parquet files")
        parts, params = [], []
        for index, path in enumerate(files.files):
            columns = read_columns(path, self.csv_options)
            self._check_columns(path, columns, entity.columns)
            sql, p = file_select(
                path, index, columns, {f: entity.columns.get(f) for f in fields}, self.csv_options
            )
            parts.append(sql)
            params.extend(p)
        return " UNION ALL ".join(f"({p})" for p in parts), params, files

    def raw_customers(self, conn: duckdb.DuckDBPyConnection) -> RawQuery | None:
        recode = self.mapping.recode
        if self.mapping.customers is not None:
            rows, params, files = self._entity_rows(self.mapping.customers, CUSTOMER_FIELDS)
            selects = [f"src.{mcol('customer_id')} AS customer_id"] + [
                f"{_recoded(f'src.{mcol(f)}', recode.get(f))} AS {f}" for f in DEMOGRAPHIC_FIELDS
            ]
            sql = (
                f"SELECT {', '.join(selects)}, {FILE_COL} AS source_file, "
                f"{LINE_COL} AS source_line FROM ({rows}) AS src "
                f"ORDER BY {INDEX_COL}, {LINE_COL}"
            )
            return RawQuery(sql=sql, params=params, source_file=str(files.location))
        if not self.mapping.demographics:
            return None
        rows, params = self.rows_sql(self.files().files)
        demo = {f: _recoded(f"src.{mcol(f)}", recode.get(f)) for f in self.mapping.demographics}
        sql = profile_rows_sql(rows, f"src.{mcol('customer_id')}", demo)
        return RawQuery(sql=sql, params=params, source_file=str(self.files().location))

    def raw_products(self, conn: duckdb.DuckDBPyConnection) -> RawQuery | None:
        if self.mapping.products is None:
            return None
        rows, params, files = self._entity_rows(self.mapping.products, PRODUCT_FIELDS)
        selects = ", ".join(f"src.{mcol(f)} AS {f}" for f in PRODUCT_FIELDS)
        sql = (
            f"SELECT {selects}, {FILE_COL} AS source_file, {LINE_COL} AS source_line "
            f"FROM ({rows}) AS src ORDER BY {INDEX_COL}, {LINE_COL}"
        )
        return RawQuery(sql=sql, params=params, source_file=str(files.location))


def open_mapped(data_dir: Path, mapping_file: Path | None, undated_day: date) -> MappedSource:
    """The adapter for the dataset at `data_dir` described by `mapping_file` (read and
    validated first: every problem is a DataContractError naming the file)."""
    return MappedSource(data_dir, load_mapping(mapping_file), undated_day=undated_day)


__all__ = [
    "CsvOptions",
    "DataFiles",
    "DatasetMapping",
    "FileDatasetSource",
    "MappedSource",
    "ValueRules",
    "discover_files",
    "load_mapping",
    "open_mapped",
    "profile_rows_sql",
]
