"""Raw -> staging: parse in DuckDB, validate with pandera, route every row to exactly one place.

Raw: :func:`load_raw_window` replaces a window of days with the source's rows in one
transaction (one multi-file read per source query, not one statement per day) and records
each loaded day in `raw.loads`.

Staging replaces the days it is given (a month, or the new day the schedule names), in batches
of days bounded by their line count:

1. `TYPED_TRANSACTIONS_SQL` parses the batch's raw text in DuckDB into a temp table. A row
   whose text cannot be parsed (a missing id, a date that is not a date, a quantity that is
   not an integer, ...) or that repeats an earlier line of the same order exactly gets a
   `parse_rule`: it goes to the quarantine with that rule, the offending value, and the raw row
   as JSON.
2. The parsed rows are validated by pandera (polars backend, handed over through Arrow):
   negative quantities against the schema of `STAGED_RETURNS`, the rest against that of
   `STAGED_TRANSACTIONS` (`schemas.pandera_schema`: the rules declared on the tables'
   columns). Only the rejected rows' keys, rules and details come back.
3. DuckDB moves what passed to `staging.transactions` (sales) or `staging.returns`, and the
   rest to `staging.quarantine`, in one transaction per batch, and records the day's counts in
   `staging.staged_days`.

So `raw = staged + returns + quarantined` holds by construction, and is still checked.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from segment_pipeline.schemas import (
    AMOUNT_IS_QUANTITY_TIMES_PRICE,
    NOT_EMPTY,
    ORDER_TS_ON_PARTITION_DAY,
    QUANTITY_NEGATIVE_FOR_RETURN,
    QUANTITY_POSITIVE_FOR_SALE,
    UNIT_PRICE_NOT_NEGATIVE,
    Rule,
    pandera_schema,
)
from segment_pipeline.sources.base import (
    CONTRACT_DEMOGRAPHICS,
    DataContractError,
    DatasetSource,
    RawQuery,
)
from segment_pipeline.sources.lines import first_undecodable_byte, physical_line_of_scan_line
from segment_pipeline.sql_files import load_sql
from segment_pipeline.tables import (
    Column,
    TableDef,
    ViewDef,
    ensure_tables,
    ensure_views,
)

if TYPE_CHECKING:
    # pandera and polars are imported where rows are validated (0.6 s that loading the
    # definitions does not pay; schemas.Rule)
    import pandera.polars as pa
    import polars as pl

# --------------------------------------------------------------------------------------------
# Table definitions
# --------------------------------------------------------------------------------------------

_RAW_TEXT_COLUMNS = (
    Column("order_id", "VARCHAR", "Order / invoice id as found in the input"),
    Column("customer_id", "VARCHAR", "Customer id as found in the input"),
    Column("order_ts", "VARCHAR", "Order timestamp as found in the input"),
    Column("product_id", "VARCHAR", "Product id as found in the input"),
    Column("quantity", "VARCHAR", "Quantity as found in the input"),
    Column("unit_price", "VARCHAR", "Unit price as found in the input"),
    Column("product_name", "VARCHAR", "Product name, when the input has it"),
    Column("category", "VARCHAR", "Product category, when the input has it"),
)

RAW_TRANSACTIONS = TableDef(
    schema="raw",
    name="transactions",
    description="Transaction lines exactly as found in the day's input, as text.",
    columns=(
        Column(
            "partition_date", "DATE", "The day (partition) the line was loaded for", nullable=False
        ),
        *_RAW_TEXT_COLUMNS,
        Column("source_file", "VARCHAR", "File (or source table) the line came from"),
        Column(
            "source_line", "BIGINT", "Line where the row starts, as an editor shows it (header = 1)"
        ),
        Column("extra", "VARCHAR", "Other input columns, as a JSON object"),
    ),
)


def _line_columns(quantity_rule: Rule) -> tuple[Column, ...]:
    """A staged line's columns; `validated` ones with their rules (schemas.py), the rest
    lineage. Sales and returns differ only in the sign rule on `quantity`."""
    return (
        Column("line_id", "VARCHAR", "Unique line key: source file and line number",
               nullable=False, validated=True, unique=True),
        Column("partition_date", "DATE", "The day (partition) of the line",
               nullable=False, validated=True),
        Column("order_id", "VARCHAR", "Order id",
               nullable=False, validated=True, checks=(NOT_EMPTY,)),
        Column("customer_id", "VARCHAR", "Customer id",
               nullable=False, validated=True, checks=(NOT_EMPTY,)),
        Column("order_ts", "TIMESTAMP", "Order timestamp", nullable=False, validated=True),
        Column("product_id", "VARCHAR", "Product id",
               nullable=False, validated=True, checks=(NOT_EMPTY,)),
        Column("product_name", "VARCHAR", "Product name from the line, if given", validated=True),
        Column("category", "VARCHAR", "Category from the line, if given", validated=True),
        Column("quantity", "BIGINT", "Units (> 0 for sales, < 0 for returns)",
               nullable=False, validated=True, checks=(quantity_rule,)),
        Column("unit_price", "DECIMAL(18,4)", "Price per unit (>= 0)",
               nullable=False, validated=True, checks=(UNIT_PRICE_NOT_NEGATIVE,)),
        Column("amount", "DECIMAL(18,4)", "quantity * unit_price", nullable=False, validated=True),
        Column("source_file", "VARCHAR", "File the line came from"),
        Column("source_line", "BIGINT", "Line number in the file"),
        Column("extra", "VARCHAR", "Other input columns, as a JSON object"),
    )  # fmt: skip


#: Rules over a whole line, in the order they are reported.
_LINE_CHECKS = (AMOUNT_IS_QUANTITY_TIMES_PRICE, ORDER_TS_ON_PARTITION_DAY)

STAGED_TRANSACTIONS = TableDef(
    schema="staging",
    name="transactions",
    description="Validated sale lines (quantity > 0), typed, with amount = quantity * unit_price.",
    columns=_line_columns(QUANTITY_POSITIVE_FOR_SALE),
    primary_key=("line_id",),
    checks=_LINE_CHECKS,
)

STAGED_RETURNS = TableDef(
    schema="staging",
    name="returns",
    description="Validated return / cancellation lines (quantity < 0), kept apart from sales.",
    columns=_line_columns(QUANTITY_NEGATIVE_FOR_RETURN),
    primary_key=("line_id",),
    checks=_LINE_CHECKS,
)

QUARANTINE = TableDef(
    schema="staging",
    name="quarantine",
    description="Every input row that broke a rule, with the rule, the offending value and the "
    "raw row. Nothing is dropped: it is here or in a staging table.",
    columns=(
        Column("entity", "VARCHAR", "transactions, customers or products", nullable=False),
        Column("partition_date", "DATE", "The day (transactions only)"),
        Column("source_file", "VARCHAR", "File the row came from"),
        Column("source_line", "BIGINT", "Line number in the file"),
        Column("rule", "VARCHAR", "The rule the row broke", nullable=False),
        Column("detail", "VARCHAR", "The offending value or an explanation"),
        Column("raw_values", "VARCHAR", "The raw row as a JSON object"),
    ),
)

STAGED_CUSTOMERS = TableDef(
    schema="staging",
    name="customers",
    description="Validated customer profiles, one per customer; missing demographics = Unknown.",
    columns=(
        # The source's own values (its age bands, its codes): a value outside what the
        # source declares was already set to Unknown, with a quarantine note (stage_master).
        Column(
            "customer_id",
            "VARCHAR",
            "Customer id",
            nullable=False,
            validated=True,
            unique=True,
            checks=(NOT_EMPTY,),
        ),
        Column(
            "gender",
            "VARCHAR",
            "M, F or Unknown",
            nullable=False,
            validated=True,
            checks=(NOT_EMPTY,),
        ),
        Column(
            "age_band",
            "VARCHAR",
            "0-17, 18-25, 26-35, 36-45, 46-50, 51-55, 55+ or Unknown",
            nullable=False,
            validated=True,
            checks=(NOT_EMPTY,),
        ),
        Column(
            "occupation",
            "VARCHAR",
            "Anonymised occupation code (or Unknown)",
            nullable=False,
            validated=True,
            checks=(NOT_EMPTY,),
        ),
        Column(
            "marital_status",
            "VARCHAR",
            "0, 1 or Unknown",
            nullable=False,
            validated=True,
            checks=(NOT_EMPTY,),
        ),
        Column(
            "city_category",
            "VARCHAR",
            "City category (or Unknown)",
            nullable=False,
            validated=True,
            checks=(NOT_EMPTY,),
        ),
        Column("source_file", "VARCHAR", "File the row came from"),
        Column("source_line", "BIGINT", "Line number in the file"),
    ),
    primary_key=("customer_id",),
)

STAGED_PRODUCTS = TableDef(
    schema="staging",
    name="products",
    description="Validated product master, one row per product; missing category = Unknown.",
    columns=(
        Column(
            "product_id",
            "VARCHAR",
            "Product id",
            nullable=False,
            validated=True,
            unique=True,
            checks=(NOT_EMPTY,),
        ),
        Column(
            "product_name",
            "VARCHAR",
            "Product name (the id when unnamed)",
            nullable=False,
            validated=True,
        ),
        Column(
            "category",
            "VARCHAR",
            "Category (or Unknown)",
            nullable=False,
            validated=True,
            checks=(NOT_EMPTY,),
        ),
        Column("source_file", "VARCHAR", "File the row came from"),
        Column("source_line", "BIGINT", "Line number in the file"),
    ),
    primary_key=("product_id",),
)

#: Sale lines with product name and category resolved (line value, else the product master,
#: else `Unknown`). Read it, not staging.sales_lines, when no customer column is needed:
#: DuckDB keeps a view's LEFT JOIN even when none of the joined columns is read (at 10M lines
#: segment_product_purchases' query 8.4-9.0 s -> 4.9-5.2 s, the category statistics
#: 4.1-5.0 s -> 3.2-3.3 s).
PRODUCT_LINES_VIEW = ViewDef(
    "staging", "product_lines", "Sale lines, product name and category resolved"
)
PRODUCT_LINES_VIEW_SQL = load_sql("staging/product_lines_view")
#: staging.product_lines plus the customer's demographics (Unknown when absent). Downstream
#: layers that group by customer attributes read this view.
SALES_LINES_VIEW = ViewDef("staging", "sales_lines", "Sale lines, product and customer resolved")
SALES_LINES_VIEW_SQL = load_sql("staging/sales_lines_view")


def ensure_staging_tables(conn: duckdb.DuckDBPyConnection) -> None:
    """Create every raw/staging table and the `staging.product_lines` and
    `staging.sales_lines` views."""
    ensure_tables(
        conn,
        (
            RAW_TRANSACTIONS,
            RAW_LOADS,
            STAGED_TRANSACTIONS,
            STAGED_RETURNS,
            QUARANTINE,
            STAGED_DAYS,
            STAGED_CUSTOMERS,
            STAGED_PRODUCTS,
            MASTER_LOADS,
        ),
    )
    ensure_views(
        conn,
        ((PRODUCT_LINES_VIEW, PRODUCT_LINES_VIEW_SQL), (SALES_LINES_VIEW, SALES_LINES_VIEW_SQL)),
    )


# --------------------------------------------------------------------------------------------
# Load bookkeeping: which raw load each day came from, and which load staging last processed
# --------------------------------------------------------------------------------------------

RAW_LOADS = TableDef(
    schema="raw",
    name="loads",
    description="One row per loaded day: the file its lines came from and how many there are. "
    "Which days are loaded, at a glance (the month partitions hold many days each).",
    columns=(
        Column("partition_date", "DATE", "The day", nullable=False),
        Column("source_file", "VARCHAR", "File (or source) the day's lines came from"),
        Column("rows", "BIGINT", "Lines loaded for the day", nullable=False),
    ),
    primary_key=("partition_date",),
)

STAGED_DAYS = TableDef(
    schema="staging",
    name="staged_days",
    description="One row per staged day with raw lines: where its lines went "
    "(raw = staged + returns + quarantined), counted from the tables after the write.",
    columns=(
        Column("partition_date", "DATE", "The day", nullable=False),
        Column("raw", "BIGINT", "Raw lines of the day", nullable=False),
        Column("staged", "BIGINT", "Lines in staging.transactions", nullable=False),
        Column("returns", "BIGINT", "Lines in staging.returns", nullable=False),
        Column("quarantined", "BIGINT", "Lines in staging.quarantine", nullable=False),
    ),
    primary_key=("partition_date",),
)

MASTER_LOADS = TableDef(
    schema="staging",
    name="master_loads",
    description="One row per master (customers, products) staged from files the source names: "
    "what it was staged from (a digest of the files' paths and contents, the declared "
    "demographic codes and the pipeline's code) and the counts it left. A later run whose "
    "digest and tables still match skips re-validating the master.",
    columns=(
        Column("entity", "VARCHAR", "customers or products", nullable=False),
        Column("input_key", "VARCHAR", "Digest of the inputs the master was staged from",
               nullable=False),
        Column("raw", "BIGINT", "Rows read from the file", nullable=False),
        Column("staged", "BIGINT", "Rows staged", nullable=False),
        Column("quarantined", "BIGINT", "Rows quarantined", nullable=False),
        Column("staged_at", "TIMESTAMP", "When it was staged (UTC)", nullable=False),
    ),
    primary_key=("entity",),
)  # fmt: skip

# --------------------------------------------------------------------------------------------
# Raw: a window of days in one statement per source query, one transaction
# --------------------------------------------------------------------------------------------


class RawLoadError(DataContractError):
    """An input could not be read (bad input: a user error); the message names the file, the
    line as an editor shows it, and what DuckDB found."""


@dataclass(frozen=True)
class RawLoad:
    """What one raw load wrote: rows and file per day (days without data are left out), and
    the blank lines skipped in the files read (not transactions, but never dropped unsaid)."""

    first: date
    last: date
    per_day: dict[date, tuple[str | None, int]]
    blank_lines: dict[str, int] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return sum(n for _, n in self.per_day.values())


def load_raw_window(
    conn: duckdb.DuckDBPyConnection, source: DatasetSource, first: date, last: date
) -> RawLoad:
    """Replace every day `first..last` of raw.transactions with the source's rows.

    One transaction: a failing file leaves raw exactly as it was. Raises DataContractError for
    a missing column and RawLoadError for a file DuckDB cannot parse.
    """
    ensure_staging_tables(conn)
    queries = source.raw_window(conn, first, last)
    columns = ", ".join(RAW_TRANSACTIONS.column_names)
    blank_lines: dict[str, int] = {}
    conn.execute("BEGIN TRANSACTION")
    try:
        conn.execute(DELETE_RAW_DAYS_SQL, [first, last])
        for query in queries:
            try:
                conn.execute(
                    load_sql("staging/insert_raw", columns=columns, source=query.sql),
                    [*query.params, first, last],
                )
            except duckdb.Error as exc:
                message = source.explain_read_error(exc)
                if message:
                    raise RawLoadError(message) from None
                raise _load_error(query, exc) from None
            for csv_file in query.csv_files:
                if blank := csv_file.shifts().blank_lines:
                    blank_lines[str(csv_file.path)] = blank
        conn.execute(DELETE_LOADS_SQL, [first, last])
        conn.execute(RECORD_LOADS_SQL, [first, last])
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    per_day = {
        day: (source_file, int(rows))
        for day, source_file, rows in conn.execute(LOADS_PER_DAY_SQL, [first, last]).fetchall()
    }
    return RawLoad(first=first, last=last, per_day=per_day, blank_lines=blank_lines)


def _load_error(query: RawQuery, exc: duckdb.Error) -> DataContractError:
    """DuckDB's first two lines name the line and show it; it names the file further down
    (`file = ...`), which replaces the folder a multi-file query was built for.

    DuckDB's line number does not count line breaks inside quoted fields: it is replaced by
    the editor's line. A byte that is not UTF-8 is reported at its line and byte offset.
    """
    text = str(exc).strip()
    named = re.search(r"^\s*file = (.+)$", text, flags=re.MULTILINE)
    where = named.group(1).strip() if named else query.source_file
    reason = " | ".join(text.splitlines()[:2])
    csv_file = next((f for f in query.csv_files if str(f.path) == where), None)
    read_as_utf8 = csv_file is None or csv_file.codec.startswith("utf-8")
    if "Invalid unicode" in text and read_as_utf8 and Path(where).is_file():
        found = first_undecodable_byte(Path(where))
        if found is not None:
            return DataContractError(found.message(where))
    numbered = re.search(r"CSV Error on Line: (\d+)", reason)
    if numbered and csv_file is not None:
        line = physical_line_of_scan_line(csv_file, int(numbered.group(1)))
        if line is not None:
            reason = reason.replace(numbered.group(0), f"CSV Error on Line: {line}", 1)
    todo = " (correct that line in the file, then run again)" if numbered else ""
    return RawLoadError(f"{where}: could not be loaded: {reason}{todo}")


#: One raw.loads row per day of the window that has lines. `?`: first, last day.
RECORD_LOADS_SQL = load_sql("staging/record_loads")

# sql/staging/insert_raw.sql appends one source query's rows (`source`: the adapter's SELECT,
# its values bound, then `?`: first, last day) to raw.transactions by the declared `columns`.
#: The days first..last of raw.transactions and of raw.loads, and the loads recorded per day.
DELETE_RAW_DAYS_SQL = load_sql("staging/delete_raw_days")
DELETE_LOADS_SQL = load_sql("staging/delete_loads")
LOADS_PER_DAY_SQL = load_sql("staging/loads_per_day")


# --------------------------------------------------------------------------------------------
# Staging: parse in DuckDB, validate with pandera (polars), route in DuckDB
# --------------------------------------------------------------------------------------------

#: Characters trimmed from both ends of an id (and of every text field): besides the ASCII
#: blanks, the invisible ones spreadsheets and web exports leave there (no-break space U+00A0,
#: zero-width space U+200B, byte-order mark U+FEFF). Inside an id they are not trimmed: an id
#: carrying one is quarantined (`id_invisible_character`), since "C1" and "C<U+200B>1" look
#: the same to a user but would be two customers. The one list both forms below come from.
ID_PAD_CODE_POINTS = (32, 9, 10, 11, 12, 13, 0xA0, 0x200B, 0xFEFF)

#: ID_PAD_CODE_POINTS as a DuckDB string expression (the characters `trim` removes).
ID_PAD_SQL = " || ".join(f"chr({point})" for point in ID_PAD_CODE_POINTS)

_ID_PAD_CLASS = "[" + "".join(f"\\x{{{point:04X}}}" for point in ID_PAD_CODE_POINTS) + "]"

#: An id that starts or ends with one of ID_PAD_CODE_POINTS (RE2 syntax): only those are
#: trimmed with the character set, which costs three times a plain trim (0.12 s vs 0.04 s per
#: id column and 570k lines); any other id is its own trim.
ID_PAD_EDGE_RE = f"^{_ID_PAD_CLASS}|{_ID_PAD_CLASS}$"

#: An invisible or control character left inside an id after trimming (RE2 syntax).
INVISIBLE_IN_ID_RE = r"[\x00-\x1F\x7F\x{00A0}\x{200B}-\x{200D}\x{2060}\x{FEFF}]"

#: Parse a batch of days of raw lines into the temp table `_typed`. Rules are tested in this
#: order; the first one broken is the row's `parse_rule`. `?`: first day, last day, the days,
#: the dataset's time zone.
TYPED_TRANSACTIONS_SQL = load_sql(
    "staging/typed_transactions",
    id_pad=ID_PAD_SQL,
    id_pad_edge=ID_PAD_EDGE_RE,
    invisible=INVISIBLE_IN_ID_RE,
)

# Per batch, for sales (`sign` `>= 0`) and returns (`< 0`), a comparison the code picks:
# sql/staging/validation_frame.sql hands the parsed rows of `_typed` to one pandera schema
# (money as DOUBLE: the checks compare with a tolerance, and a rejected value reads
# `unit_price=-3.5` in the quarantine, as the user wrote it); sql/staging/insert_lines.sql
# moves the valid lines (not parse-failed, not rejected by pandera) into the `target` table,
# by the column list of the table declaration.
_STAGED_COLUMNS = ", ".join(STAGED_TRANSACTIONS.column_names)
_LINE_SIGNS = ((">= 0", STAGED_TRANSACTIONS), ("< 0", STAGED_RETURNS))
#: The masters: table, the SQL that parses the adapter's rows.
_MASTERS = {
    "customers": (STAGED_CUSTOMERS, "staging/typed_customers"),
    "products": (STAGED_PRODUCTS, "staging/typed_products"),
}


@cache
def validation_schema(table: TableDef) -> pa.DataFrameSchema:
    """`schemas.pandera_schema` of a staging table, built at its first validation in a
    process (not when the module is imported: loading the definitions imports no pandera)."""
    return pandera_schema(table)


#: Parse failures and pandera rejections of `_typed`, with rule, detail and the raw row.
INSERT_QUARANTINE_SQL = load_sql("staging/insert_quarantine")

#: Where each day's lines went, counted from the tables themselves. `?`: the days, then
#: first, last four times.
RECORD_STAGED_DAYS_SQL = load_sql("staging/record_staged_days")

#: Raw lines per day (to cut a window into bounded batches).
RAW_DAY_COUNTS_SQL = load_sql("staging/raw_day_counts")

# A batch first deletes its days (`?`: first, last day, the days) from staging.transactions,
# returns and staged_days (sql/staging/delete_staged_days.sql, `target`: each table) and
# the transactions' quarantine rows of those days:
DELETE_QUARANTINED_DAYS_SQL = load_sql("staging/delete_quarantined_days")

#: The recorded counts of the days `?` in staging.staged_days.
STAGED_COUNTS_SQL = load_sql("staging/staged_counts")

#: Days are validated in batches of at most this many raw lines (a single larger day is one
#: batch), so memory is bounded by the batch, not by the length of a backfill; master files
#: in batches of this many rows.
DEFAULT_BATCH_ROWS = 500_000


@dataclass(frozen=True)
class StagingCounts:
    """What happened to one day's raw rows."""

    day: date
    raw: int
    staged: int
    returns: int
    quarantined: int

    @property
    def conserved(self) -> bool:
        return self.raw == self.staged + self.returns + self.quarantined


def rejected_rows(frame: pl.DataFrame, schema: pa.DataFrameSchema, key: str) -> pl.DataFrame:
    """Validate `frame` lazily against `schema` (`schemas.pandera_schema` of a staging table);
    return `key`, `rule`, `detail` per rejected row.

    `rule` is the first failed check of the row, in the schema's order; `detail` is
    `column=value` for column checks (empty for dataframe-wide checks, whose callers know which
    columns to show). A failure that is not about particular rows (a missing column, a wrong
    dtype) is a bug in the pipeline, not bad input, and is raised.
    """
    import pandera.errors
    import polars as pl

    empty = pl.DataFrame(
        schema={key: frame.schema.get(key, pl.String), "rule": pl.String, "detail": pl.String}
    )
    if frame.is_empty():
        return empty
    try:
        schema.validate(frame, lazy=True)
        return empty
    except pandera.errors.SchemaErrors as errors:
        cases = errors.failure_cases
    structural = cases.filter(pl.col("index").is_null())
    if not structural.is_empty():
        raise RuntimeError(
            f"{schema.name}: schema-level validation failure (pipeline bug):\n"
            f"{structural.select('column', 'check', 'failure_case')}"
        )
    cases = (
        cases.with_row_index("order")
        .sort("index", "order")
        .unique("index", keep="first", maintain_order=True)
    )
    rules = [
        _rule_name(column, check, context == "Column")
        for column, check, context in cases.select("column", "check", "schema_context").rows()
    ]
    details = [
        f"{column}={value}" if context == "Column" else None
        for column, value, context in cases.select(
            "column", "failure_case", "schema_context"
        ).rows()
    ]
    keys = frame[key].gather(cases["index"].cast(pl.UInt32))
    return pl.DataFrame({key: keys, "rule": rules, "detail": details}, schema=empty.schema)


def _rule_name(column: str, check: str, is_column_check: bool) -> str:
    """Named checks (e.g. `unit_price_not_negative`) are the rule; built-in column checks
    (`isin(...)`, `not_nullable`) get their column in front: `gender:isin([...])`."""
    builtin = ("(" in check and not check.startswith(column)) or check in (
        "not_nullable",
        "field_uniqueness",
    )
    return f"{column}:{check}" if is_column_check and builtin else check


def day_batches(day_counts: dict[date, int], days: list[date], max_rows: int) -> list[list[date]]:
    """Cut consecutive `days` into batches of at most `max_rows` raw lines each."""
    batches: list[list[date]] = []
    current: list[date] = []
    current_rows = 0
    for day in days:
        rows = day_counts.get(day, 0)
        if current and current_rows + rows > max_rows:
            batches.append(current)
            current, current_rows = [], 0
        current.append(day)
        current_rows += rows
    if current:
        batches.append(current)
    return batches


def stage_transactions_window(
    conn: duckdb.DuckDBPyConnection,
    days: list[date],
    max_batch_rows: int = DEFAULT_BATCH_ROWS,
    timezone: str = "UTC",
) -> list[StagingCounts]:
    """Replace the rows of every day in `days` in staging.transactions / returns / quarantine.

    Days are processed in bounded batches; each batch is one transaction over all three tables
    and staging.staged_days. Returns the counts per day (days without raw rows included, with
    zeros), counted from the tables after the write.
    """
    if not days:
        return []
    days = sorted(set(days))
    ensure_staging_tables(conn)
    raw_counts = {
        row[0]: int(row[1])
        for row in conn.execute(RAW_DAY_COUNTS_SQL, [days[0], days[-1]]).fetchall()
    }
    counts: list[StagingCounts] = []
    for batch in day_batches(raw_counts, days, max_batch_rows):
        counts.extend(_stage_batch(conn, batch, timezone))
    return counts


def _stage_batch(
    conn: duckdb.DuckDBPyConnection, days: list[date], timezone: str
) -> list[StagingCounts]:
    import polars as pl

    first, last = days[0], days[-1]
    conn.execute(TYPED_TRANSACTIONS_SQL, [first, last, days, timezone])
    rejected = pl.concat(
        [
            rejected_rows(
                conn.sql(load_sql("staging/validation_frame", sign=sign)).pl(),
                validation_schema(table),
                "line_id",
            )
            for sign, table in _LINE_SIGNS
        ]
    )
    conn.register("_rejected", rejected)
    params = [first, last, days]
    conn.execute("BEGIN TRANSACTION")
    try:
        for table in (STAGED_TRANSACTIONS, STAGED_RETURNS, STAGED_DAYS):
            conn.execute(load_sql("staging/delete_staged_days", target=table.fqn), params)
        conn.execute(DELETE_QUARANTINED_DAYS_SQL, params)
        for sign, table in _LINE_SIGNS:
            conn.execute(
                load_sql(
                    "staging/insert_lines", target=table.fqn, sign=sign, columns=_STAGED_COLUMNS
                )
            )
        conn.execute(INSERT_QUARANTINE_SQL)
        conn.execute(RECORD_STAGED_DAYS_SQL, [days, *[first, last] * 4])
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    finally:
        conn.unregister("_rejected")
        conn.execute("DROP TABLE IF EXISTS _typed")
    return staged_counts(conn, days)


def staged_counts(conn: duckdb.DuckDBPyConnection, days: list[date]) -> list[StagingCounts]:
    """The recorded counts of `days` (zeros for a day staging has no record of)."""
    found = {row[0]: row[1:] for row in conn.execute(STAGED_COUNTS_SQL, [days]).fetchall()}
    return [StagingCounts(day, *(int(n) for n in found.get(day, (0, 0, 0, 0)))) for day in days]


# --------------------------------------------------------------------------------------------
# Customers and products (unpartitioned: the whole file each time)
# --------------------------------------------------------------------------------------------

# sql/staging/typed_customers.sql normalises a customer file: blanks become Unknown; a
# repeated customer_id keeps its first row, later ones are quarantined. Its `source` is the
# adapter's SELECT (parameters bound), so it is filled per call; typed_products.sql likewise.


@dataclass(frozen=True)
class MasterCounts:
    raw: int
    staged: int
    quarantined: int


#: The quarantine rows of a master file: parse failures and pandera rejections (keyed by
#: source_line: one file, one line each). `?`: the entity.
INSERT_MASTER_QUARANTINE_SQL = load_sql("staging/insert_master_quarantine")

#: The quarantine rows of an entity (`?`).
DELETE_QUARANTINE_ENTITY_SQL = load_sql("staging/delete_quarantine_entity")

#: The field-level notes of `_field_notes` as quarantine rows of the entity `?`.
INSERT_FIELD_NOTES_SQL = load_sql("staging/insert_field_notes")

# sql/staging/insert_master.sql moves the valid rows of `_typed_master` into the master table
# (`target`, by its declared `columns`); master_counts.sql counts parsed, staged and
# quarantined rows (`?`: the entity).


#: The quarantine entity of field-level notes: a customer kept with one field set to Unknown.
CUSTOMER_FIELDS_ENTITY = "customer_fields"

# sql/staging/field_notes.sql: notes for the values of one demographic field (`field`, one of
# DEMOGRAPHIC_FIELDS: our own name, never input, filled per field) outside what the source
# declares (`?`: the field name twice, the declared values twice). The profile is kept; the
# value becomes Unknown (undeclared_to_unknown.sql).
DEMOGRAPHIC_FIELDS = ("gender", "age_band", "occupation", "marital_status", "city_category")


def _note_undeclared_values(
    conn: duckdb.DuckDBPyConnection, declared: Mapping[str, Sequence[str]]
) -> None:
    """Fill `_field_notes` and set undeclared demographic values of `_typed_master` to
    Unknown: one field outside the source's list never costs the whole profile."""
    conn.execute(
        "CREATE OR REPLACE TEMP TABLE _field_notes (source_file VARCHAR, source_line BIGINT, "
        "rule VARCHAR, detail VARCHAR, raw_values VARCHAR)"
    )
    for name, values in declared.items():
        if name not in DEMOGRAPHIC_FIELDS:
            raise ValueError(f"unknown demographic field {name!r}")
        allowed = [str(v) for v in values]
        conn.execute(load_sql("staging/field_notes", field=name), [name, name, allowed, allowed])
        conn.execute(load_sql("staging/undeclared_to_unknown", field=name), [allowed])


def _rejected_master_rows(
    conn: duckdb.DuckDBPyConnection, schema: pa.DataFrameSchema, batch_rows: int
) -> pl.DataFrame:
    """pandera's rejections of `_typed_master`'s parsed rows, validated `batch_rows` at a
    time from an Arrow stream. The whole file as one polars frame took the process to 3.2 GB
    of RSS at 5.4M customers (the 100M-line dataset); in batches its memory is bounded like
    the transactions'. Ids are already unique when pandera sees them (typed_customers.sql /
    typed_products.sql quarantine every repeat of an id), so the schemas' `unique` checks lose
    nothing by seeing one batch at a time."""
    import polars as pl

    parsed = conn.sql("SELECT * FROM _typed_master WHERE parse_rule IS NULL")
    rejected = [
        rejected_rows(pl.from_arrow(batch), schema, "source_line")
        for batch in parsed.to_arrow_reader(batch_rows)
        if batch.num_rows
    ]
    if not rejected:  # an empty file: the empty result, typed by the table's columns
        return rejected_rows(parsed.limit(0).pl(), schema, "source_line")
    return pl.concat(rejected)


#: A master whose files are larger than this is typed into a table of the warehouse file
#: (`main._typed_master`, dropped when staged) rather than a temp table. A temp table stays in
#: DuckDB's memory: 5.4M customers (a 126 MB file) made 577 MB of it, held while pandera read
#: them, and the step peaked at 1,345 MiB of RSS alone (1,467 MiB in a 100M-line run); on
#: disk 1,143 MiB, the rows identical. Below it the temp table is faster (540k customers, a
#: 12 MB file: 2.2 s against 3.0-3.3 s on disk).
MASTER_SCRATCH_ON_DISK_BYTES = 64 * 2**20


def master_scratch_on_disk(files: Sequence[Path] | None) -> bool:
    """Whether a master read from `files` is typed on disk (MASTER_SCRATCH_ON_DISK_BYTES);
    never when the source cannot name its files (None: a database, profiles derived from the
    transaction files)."""
    return sum(path.stat().st_size for path in files or ()) > MASTER_SCRATCH_ON_DISK_BYTES


def stage_master(
    conn: duckdb.DuckDBPyConnection,
    entity: str,
    source_sql: str | None,
    params: list[object],
    declared: Mapping[str, Sequence[str]] | None = None,
    scratch_on_disk: bool = False,
) -> MasterCounts:
    """Replace staging.customers or staging.products (and their quarantine rows).

    `declared`: the demographic values the source declares (default: the canonical
    contract's codes); a customer's value outside them becomes Unknown with a note
    (entity `customer_fields` in staging.quarantine), and the profile is staged.
    `scratch_on_disk`: type the rows into a table of the warehouse file, not a temp table
    (master_scratch_on_disk; the same result, less memory for a large master).
    """
    if declared is None:
        declared = CONTRACT_DEMOGRAPHICS
    table, sql_file = _MASTERS[entity]
    schema = validation_schema(table)
    ensure_staging_tables(conn)
    columns = ", ".join(table.column_names)
    if source_sql is None:  # the optional file is absent: an empty master
        typed_sql, params = (
            f"SELECT {columns}, NULL::VARCHAR AS raw_values, NULL::VARCHAR AS parse_rule "
            f"FROM {table.fqn} WHERE false",
            [],
        )
    else:
        # The adapter's SELECT is our own SQL text (not user input); its values are bound.
        typed_sql = load_sql(
            sql_file, source=source_sql, id_pad=ID_PAD_SQL, invisible=INVISIBLE_IN_ID_RE
        )
    # the later statements name it `_typed_master`: the temp one, or else main's
    scratch = "TABLE main._typed_master" if scratch_on_disk else "TEMP TABLE _typed_master"
    conn.execute(f"CREATE OR REPLACE {scratch} AS {typed_sql}", params)
    _note_undeclared_values(conn, declared if entity == "customers" else {})
    conn.register("_rejected_master", _rejected_master_rows(conn, schema, DEFAULT_BATCH_ROWS))
    try:
        conn.execute("BEGIN TRANSACTION")
        try:
            conn.execute(f"DELETE FROM {table.fqn}")
            conn.execute(DELETE_QUARANTINE_ENTITY_SQL, [entity])
            conn.execute(load_sql("staging/insert_master", target=table.fqn, columns=columns))
            conn.execute(INSERT_MASTER_QUARANTINE_SQL, [entity])
            if entity == "customers":
                conn.execute(DELETE_QUARANTINE_ENTITY_SQL, [CUSTOMER_FIELDS_ENTITY])
                conn.execute(INSERT_FIELD_NOTES_SQL, [CUSTOMER_FIELDS_ENTITY])
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        raw, staged, quarantined = conn.execute(
            load_sql("staging/master_counts", target=table.fqn), [entity]
        ).fetchall()[0]
    finally:
        conn.unregister("_rejected_master")
        conn.execute("DROP TABLE IF EXISTS _typed_master")
        conn.execute("DROP TABLE IF EXISTS _field_notes")
    return MasterCounts(raw=int(raw), staged=int(staged), quarantined=int(quarantined))


# --------------------------------------------------------------------------------------------
# Masters unchanged since they were staged
# --------------------------------------------------------------------------------------------
#
# The masters are unpartitioned: every run re-staged them whole, a cost proportional to the
# customers, not to the new day (0.4 s at 40k customers, 2.7 s at 540k, 34 s at 5.4M). When
# the source names the files a master reads, a run whose files (path and content), declared
# codes and pipeline code are those of the last staging, and whose tables still hold what
# that staging left, keeps the staged master as it is.


@cache
def code_digest() -> str:
    """A digest of the package's Python and SQL files: staging rules changed by any edit of
    the code are never assumed unchanged."""
    import hashlib
    from importlib import resources

    digest = hashlib.sha256()
    root = resources.files("segment_pipeline")
    for path in sorted(Path(str(root)).rglob("*")):
        if path.suffix in {".py", ".sql", ".yaml"} and path.is_file():
            digest.update(str(path.relative_to(Path(str(root)))).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def master_input_key(
    entity: str,
    files: Sequence[Path],
    declared: Mapping[str, Sequence[str]] | None,
) -> str:
    """The digest a master is staged from: its files' resolved paths and contents, the
    declared demographic codes and the pipeline's code. The contents, not modification
    times (which a copy may keep and a coarse file system may not change): BLAKE2 reads
    about 1 GB/s here, so a 5.4M-customer file costs a fraction of a second against the
    34 s of staging it."""
    import hashlib
    import json

    stats = []
    for path in files:
        with path.open("rb") as handle:
            content = hashlib.file_digest(handle, "blake2b").hexdigest()
        stats.append([str(path.resolve()), content])
    declared_codes = {k: list(v) for k, v in sorted((declared or {}).items())}
    payload = {
        "entity": entity,
        "files": stats,
        "declared": declared_codes,
        "code": code_digest(),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def unchanged_master(
    conn: duckdb.DuckDBPyConnection, entity: str, input_key: str
) -> MasterCounts | None:
    """The counts of the master's last staging when it was staged from `input_key` and its
    table and quarantine rows are still those it left; None when it must be staged again."""
    table = _MASTERS[entity][0]
    ensure_staging_tables(conn)
    row = conn.execute(
        load_sql("staging/master_load_state", target=table.fqn), [entity, entity]
    ).fetchall()
    if not row:
        return None
    key, raw, staged, quarantined, staged_now, quarantined_now = row[0]
    if key != input_key or staged != staged_now or quarantined != quarantined_now:
        return None
    return MasterCounts(raw=int(raw), staged=int(staged), quarantined=int(quarantined))


def forget_master_load(conn: duckdb.DuckDBPyConnection, entity: str) -> None:
    """Forget what a master was staged from: its next run stages it again (done before
    staging, so a run that stops half-way never leaves a record of the previous files)."""
    ensure_staging_tables(conn)
    conn.execute(f"DELETE FROM {MASTER_LOADS.fqn} WHERE entity = ?", [entity])


def record_master_load(
    conn: duckdb.DuckDBPyConnection, entity: str, input_key: str, counts: MasterCounts
) -> None:
    """Record that a master was staged from `input_key`, leaving `counts`."""
    forget_master_load(conn, entity)
    conn.execute(
        f"INSERT INTO {MASTER_LOADS.fqn} VALUES (?, ?, ?, ?, ?, now()::TIMESTAMP)",
        [entity, input_key, counts.raw, counts.staged, counts.quarantined],
    )
