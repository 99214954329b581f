"""Raw -> staging: parse in DuckDB, validate with pandera, route every row to exactly one place.

For each day (partition) of transactions:

1. `TYPED_TRANSACTIONS_SQL` parses the day's raw text in DuckDB. A row whose text cannot be
   parsed (a missing id, a date that is not a date, a quantity that is not an integer, ...) or
   that repeats an earlier line of the same order exactly gets a `parse_rule`: it goes to the
   quarantine with that rule, the offending value, and the raw row as JSON.
2. The parsed rows (one day: a bounded frame) are validated by pandera: negative quantities
   against :class:`ReturnLine`, the rest against :class:`StagedTransaction`. A row a model
   rejects goes to the quarantine with the name of the failed check.
3. What passes goes to `staging.transactions` (sales) or `staging.returns`.

So `raw = staged + returns + quarantined` holds by construction, and is still checked.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import duckdb
import pandas as pd
import pandera.errors
import pandera.pandas as pa

from segment_pipeline.schemas import CustomerProfile, ProductRecord, ReturnLine, StagedTransaction
from segment_pipeline.sources.base import DatasetSource
from segment_pipeline.tables import (
    Column,
    TableDef,
    ensure_table,
    replace_rows,
    replace_rows_from_frame,
)

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
        Column("source_line", "BIGINT", "Line number in the file (header = line 1)"),
        Column("extra", "VARCHAR", "Other input columns, as a JSON object"),
    ),
)

_LINE_COLUMNS = (
    Column("line_id", "VARCHAR", "Unique line key: source file and line number", nullable=False),
    Column("partition_date", "DATE", "The day (partition) of the line", nullable=False),
    Column("order_id", "VARCHAR", "Order id", nullable=False),
    Column("customer_id", "VARCHAR", "Customer id", nullable=False),
    Column("order_ts", "TIMESTAMP", "Order timestamp", nullable=False),
    Column("product_id", "VARCHAR", "Product id", nullable=False),
    Column("product_name", "VARCHAR", "Product name from the line, if given"),
    Column("category", "VARCHAR", "Category from the line, if given"),
    Column("quantity", "BIGINT", "Units (> 0 for sales, < 0 for returns)", nullable=False),
    Column("unit_price", "DECIMAL(18,4)", "Price per unit (>= 0)", nullable=False),
    Column("amount", "DECIMAL(18,4)", "quantity * unit_price", nullable=False),
    Column("source_file", "VARCHAR", "File the line came from"),
    Column("source_line", "BIGINT", "Line number in the file"),
    Column("extra", "VARCHAR", "Other input columns, as a JSON object"),
)

STAGED_TRANSACTIONS = TableDef(
    schema="staging",
    name="transactions",
    description="Validated sale lines (quantity > 0), typed, with amount = quantity * unit_price.",
    columns=_LINE_COLUMNS,
    primary_key=("line_id",),
)

STAGED_RETURNS = TableDef(
    schema="staging",
    name="returns",
    description="Validated return / cancellation lines (quantity < 0), kept apart from sales.",
    columns=_LINE_COLUMNS,
    primary_key=("line_id",),
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
        Column("customer_id", "VARCHAR", "Customer id", nullable=False),
        Column("gender", "VARCHAR", "M, F or Unknown", nullable=False),
        Column(
            "age_band",
            "VARCHAR",
            "0-17, 18-25, 26-35, 36-45, 46-50, 51-55, 55+ or Unknown",
            nullable=False,
        ),
        Column("occupation", "VARCHAR", "Anonymised occupation code (or Unknown)", nullable=False),
        Column("marital_status", "VARCHAR", "0, 1 or Unknown", nullable=False),
        Column("city_category", "VARCHAR", "City category (or Unknown)", nullable=False),
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
        Column("product_id", "VARCHAR", "Product id", nullable=False),
        Column("product_name", "VARCHAR", "Product name (the id when unnamed)", nullable=False),
        Column("category", "VARCHAR", "Category (or Unknown)", nullable=False),
        Column("source_file", "VARCHAR", "File the row came from"),
        Column("source_line", "BIGINT", "Line number in the file"),
    ),
    primary_key=("product_id",),
)

#: Sale lines with product name and category resolved (line value, else the product master,
#: else `Unknown`) and the customer's demographics. Downstream layers read this view.
SALES_LINES_VIEW = "staging.sales_lines"
SALES_LINES_VIEW_SQL = """
CREATE OR REPLACE VIEW staging.sales_lines AS
SELECT
    t.line_id, t.partition_date, t.order_id, t.customer_id, t.order_ts, t.product_id,
    coalesce(nullif(t.product_name, ''), p.product_name, t.product_id) AS product_name,
    coalesce(nullif(t.category, ''), p.category, 'Unknown') AS category,
    t.quantity, t.unit_price, t.amount,
    coalesce(c.gender, 'Unknown') AS gender,
    coalesce(c.age_band, 'Unknown') AS age_band,
    coalesce(c.occupation, 'Unknown') AS occupation,
    coalesce(c.marital_status, 'Unknown') AS marital_status,
    coalesce(c.city_category, 'Unknown') AS city_category
FROM staging.transactions AS t
LEFT JOIN staging.products AS p USING (product_id)
LEFT JOIN staging.customers AS c USING (customer_id)
"""


def ensure_staging_tables(conn: duckdb.DuckDBPyConnection) -> None:
    """Create every raw/staging table and the `staging.sales_lines` view."""
    for table in (
        RAW_TRANSACTIONS,
        STAGED_TRANSACTIONS,
        STAGED_RETURNS,
        QUARANTINE,
        STAGED_CUSTOMERS,
        STAGED_PRODUCTS,
    ):
        ensure_table(conn, table)
    conn.execute(SALES_LINES_VIEW_SQL)


# --------------------------------------------------------------------------------------------
# Transactions
# --------------------------------------------------------------------------------------------


class RawLoadError(RuntimeError):
    """A day's input could not be read; the message names the file and what DuckDB found."""


def load_raw_day(
    conn: duckdb.DuckDBPyConnection, source: DatasetSource, day: date, *, ensure: bool = True
) -> RawLoad:
    """Replace `day`'s rows in raw.transactions with the source's rows for that day (none when
    the day has no data: an empty partition). Raises DataContractError for a missing column and
    RawLoadError for a file DuckDB cannot parse."""
    query = source.raw_transactions(conn, day)
    if query is None:
        select_sql, params = "SELECT * FROM raw.transactions WHERE false", []
    else:
        select_sql = f"SELECT CAST(? AS DATE) AS partition_date, src.* FROM ({query.sql}) AS src"
        params = [day, *query.params]
    try:
        rows = replace_rows(
            conn,
            RAW_TRANSACTIONS,
            select_sql,
            params,
            delete_where="partition_date = ?",
            delete_params=[day],
            ensure=ensure,  # a loop over many days ensures the tables once, before it
        )
    except duckdb.Error as exc:
        if query is None:
            raise
        # DuckDB names the line and shows it; its first two lines say it all.
        reason = " | ".join(str(exc).strip().splitlines()[:2])
        raise RawLoadError(f"{query.source_file}: could not be loaded: {reason}") from None
    return RawLoad(day=day, source_file=query.source_file if query else None, rows=rows)


@dataclass(frozen=True)
class RawLoad:
    day: date
    source_file: str | None
    rows: int


#: Parse one day of raw lines. Rules are tested in this order; the first one broken is the
#: row's `parse_rule`. `?` is the partition date.
TYPED_TRANSACTIONS_SQL = r"""
WITH src AS (
    SELECT * FROM raw.transactions WHERE partition_date BETWEEN ? AND ?
),
cleaned AS (
    SELECT
        *,
        nullif(trim(order_id), '') AS c_order_id,
        nullif(trim(customer_id), '') AS c_customer_id,
        nullif(trim(product_id), '') AS c_product_id,
        nullif(trim(order_ts), '') AS c_order_ts,
        nullif(trim(quantity), '') AS c_quantity,
        nullif(trim(unit_price), '') AS c_unit_price,
        json_extract_string(extra, '$.adapter_rule') AS adapter_rule,
        json_extract_string(extra, '$.adapter_detail') AS adapter_detail
    FROM src
),
typed AS (
    SELECT
        *,
        TRY_CAST(c_order_ts AS TIMESTAMP) AS t_order_ts,
        CASE WHEN regexp_full_match(c_quantity, '[+-]?[0-9]+')
             THEN TRY_CAST(c_quantity AS BIGINT) END AS t_quantity,
        CASE WHEN regexp_full_match(c_unit_price, '[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)')
             THEN TRY_CAST(c_unit_price AS DECIMAL(18,4)) END AS t_unit_price
    FROM cleaned
),
ruled AS (
    SELECT
        *,
        CASE
            WHEN c_order_id IS NULL THEN 'order_id_missing'
            WHEN c_customer_id IS NULL THEN 'customer_id_missing'
            -- A source adapter may flag a row it knows is not a purchase (e.g. a postage line
            -- in Online Retail) with `extra.adapter_rule`; it is quarantined under that name.
            WHEN adapter_rule IS NOT NULL THEN adapter_rule
            WHEN c_product_id IS NULL THEN 'product_id_missing'
            WHEN c_order_ts IS NULL THEN 'order_ts_missing'
            WHEN t_order_ts IS NULL THEN 'order_ts_unparseable'
            WHEN c_quantity IS NULL THEN 'quantity_missing'
            WHEN t_quantity IS NULL THEN 'quantity_not_integer'
            WHEN c_unit_price IS NULL THEN 'unit_price_missing'
            WHEN t_unit_price IS NULL THEN 'unit_price_unparseable'
            -- An exact repeat of an earlier line of the same order (same customer, time,
            -- product, quantity and price) is a duplicated record, not a second purchase.
            WHEN row_number() OVER (
                PARTITION BY partition_date, c_order_id, c_customer_id, t_order_ts,
                             c_product_id, t_quantity, t_unit_price
                ORDER BY source_line
            ) > 1 THEN 'duplicate_line'
        END AS parse_rule
    FROM typed
)
SELECT
    source_file || ':' || CAST(source_line AS VARCHAR) AS line_id,
    partition_date,
    c_order_id AS order_id,
    c_customer_id AS customer_id,
    t_order_ts AS order_ts,
    c_product_id AS product_id,
    nullif(trim(product_name), '') AS product_name,
    nullif(trim(category), '') AS category,
    t_quantity AS quantity,
    t_unit_price AS unit_price,
    t_quantity * t_unit_price AS amount,
    source_file,
    source_line,
    extra,
    parse_rule,
    CASE parse_rule
        WHEN 'order_ts_unparseable' THEN 'order_ts=' || order_ts
        WHEN 'quantity_not_integer' THEN 'quantity=' || quantity
        WHEN 'unit_price_unparseable' THEN 'unit_price=' || unit_price
        WHEN 'duplicate_line' THEN 'repeats an earlier line of order ' || c_order_id
        WHEN adapter_rule THEN adapter_detail
    END AS parse_detail,
    CAST(to_json(struct_pack(
        order_id := order_id, customer_id := customer_id, order_ts := order_ts,
        product_id := product_id, quantity := quantity, unit_price := unit_price,
        product_name := product_name, category := category, extra := extra
    )) AS VARCHAR) AS raw_values
FROM ruled
ORDER BY partition_date, source_line
"""

#: Raw lines per day in a window (to cut the window into bounded batches).
RAW_DAY_COUNTS_SQL = """
SELECT partition_date, count(*) AS n FROM raw.transactions
WHERE partition_date BETWEEN ? AND ? GROUP BY partition_date ORDER BY partition_date
"""

#: Days are validated in batches of at most this many raw lines (a single larger day is one
#: batch), so memory is bounded by the batch, not by the length of a backfill.
DEFAULT_BATCH_ROWS = 250_000


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


#: The columns worth showing in `detail` for each dataframe-level check.
DATAFRAME_CHECK_COLUMNS: dict[str, tuple[str, ...]] = {
    "order_ts_on_partition_day": ("order_ts", "partition_date"),
    "amount_is_quantity_times_price": ("quantity", "unit_price", "amount"),
}


def split_by_model(
    frame: pd.DataFrame, model: type[pa.DataFrameModel]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Validate `frame` lazily against `model`; return (valid rows, rejected rows).

    Rejected rows carry `rule` (the first failed check, in the model's order) and `detail`
    (`column=value`). A failure that is not about particular rows (a missing column, a wrong
    dtype) is a bug in the pipeline, not bad input, and is raised.
    """
    if frame.empty:
        return frame.copy(), frame.assign(rule=pd.Series(dtype=str), detail=pd.Series(dtype=str))
    try:
        model.validate(frame, lazy=True)
        rejected_index: pd.Index = pd.Index([])
        reasons = pd.DataFrame(columns=["rule", "detail"])
    except pandera.errors.SchemaErrors as errors:
        cases = errors.failure_cases.copy()
        structural = cases[cases["index"].isna()]
        if not structural.empty:
            raise RuntimeError(
                f"{model.__name__}: schema-level validation failure (pipeline bug):\n"
                f"{structural[['column', 'check', 'failure_case']].to_string(index=False)}"
            ) from errors
        cases["order"] = range(len(cases))
        cases = cases.sort_values(["index", "order"]).drop_duplicates("index", keep="first")
        cases["detail"] = [
            f"{col}={value}" if isinstance(col, str) and col else str(value)
            for col, value in zip(cases["column"], cases["failure_case"], strict=True)
        ]
        # Named checks (e.g. `unit_price_not_negative`) are the rule; built-in column checks
        # (`isin(...)`, `not_nullable`) get their column in front: `gender:isin([...])`.
        cases["check"] = [
            f"{col}:{check}"
            if (
                isinstance(col, str)
                and col
                and not str(check).startswith(col)
                and "(" in str(check)
            )
            or check in ("not_nullable", "field_uniqueness")
            else str(check)
            for col, check in zip(cases["column"], cases["check"], strict=True)
        ]
        reasons = cases.set_index("index")[["check", "detail"]].rename(columns={"check": "rule"})
        reasons.index = reasons.index.astype(frame.index.dtype)
        # A dataframe-level check reports every column of the row; show the ones it is about.
        for rule, columns in DATAFRAME_CHECK_COLUMNS.items():
            hit = reasons.index[reasons["rule"] == rule]
            if len(hit):
                reasons.loc[hit, "detail"] = [
                    ", ".join(f"{c}={frame.at[i, c]}" for c in columns) for i in hit
                ]
        rejected_index = reasons.index
    valid = frame.loc[~frame.index.isin(rejected_index)]
    rejected = frame.loc[frame.index.isin(rejected_index)].join(reasons)
    return valid, rejected


def _quarantine_frame(rejected: pd.DataFrame, entity: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "entity": entity,
            "partition_date": rejected.get("partition_date", pd.NaT),
            "source_file": rejected["source_file"],
            "source_line": rejected["source_line"],
            "rule": rejected["rule"].astype(str),
            "detail": rejected["detail"].fillna("").astype(str),
            "raw_values": rejected["raw_values"],
        }
    )


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
    conn: duckdb.DuckDBPyConnection, days: list[date], max_batch_rows: int = DEFAULT_BATCH_ROWS
) -> list[StagingCounts]:
    """Replace the rows of every day in `days` in staging.transactions / returns / quarantine.

    Days are processed in bounded batches; each batch is one transaction over all three tables.
    Returns the counts per day (days without raw rows included, with zeros).
    """
    if not days:
        return []
    ensure_staging_tables(conn)
    raw_counts = {
        row[0]: int(row[1])
        for row in conn.execute(RAW_DAY_COUNTS_SQL, [days[0], days[-1]]).fetchall()
    }
    counts: list[StagingCounts] = []
    for batch in day_batches(raw_counts, days, max_batch_rows):
        counts.extend(_stage_batch(conn, batch))
    return counts


def stage_transactions_day(conn: duckdb.DuckDBPyConnection, day: date) -> StagingCounts:
    """Replace one day's rows (see :func:`stage_transactions_window`)."""
    return stage_transactions_window(conn, [day])[0]


def _stage_batch(conn: duckdb.DuckDBPyConnection, days: list[date]) -> list[StagingCounts]:
    first, last = days[0], days[-1]
    typed = conn.execute(TYPED_TRANSACTIONS_SQL, [first, last]).df()
    parse_failed = typed[typed["parse_rule"].notna()].rename(
        columns={"parse_rule": "rule", "parse_detail": "detail"}
    )
    parsed = typed[typed["parse_rule"].isna()].drop(columns=["parse_rule", "parse_detail"])
    parsed = parsed.astype({"quantity": "int64", "unit_price": "float64", "amount": "float64"})
    for col in ("product_name", "category"):
        parsed[col] = parsed[col].astype(object)

    returns_valid, returns_rejected = split_by_model(parsed[parsed["quantity"] < 0], ReturnLine)
    sales_valid, sales_rejected = split_by_model(parsed[parsed["quantity"] >= 0], StagedTransaction)
    quarantined = pd.concat(
        [
            _quarantine_frame(df, "transactions")
            for df in (parse_failed, returns_rejected, sales_rejected)
        ],
        ignore_index=True,
    ).sort_values(["partition_date", "source_line"], kind="stable")

    line_cols = STAGED_TRANSACTIONS.column_names
    window = "partition_date BETWEEN ? AND ?"
    conn.execute("BEGIN TRANSACTION")
    try:
        _write_frame(conn, STAGED_TRANSACTIONS, sales_valid[line_cols], window, [first, last])
        _write_frame(conn, STAGED_RETURNS, returns_valid[line_cols], window, [first, last])
        _write_frame(
            conn, QUARANTINE, quarantined, f"entity = 'transactions' AND {window}", [first, last]
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise

    def per_day(frame: pd.DataFrame) -> pd.Series:
        if frame.empty:
            return pd.Series(dtype="int64")
        return frame.groupby(pd.to_datetime(frame["partition_date"]).dt.date).size()

    raw_n, staged_n = per_day(typed), per_day(sales_valid)
    returns_n, quarantined_n = per_day(returns_valid), per_day(quarantined)
    return [
        StagingCounts(
            day=day,
            raw=int(raw_n.get(day, 0)),
            staged=int(staged_n.get(day, 0)),
            returns=int(returns_n.get(day, 0)),
            quarantined=int(quarantined_n.get(day, 0)),
        )
        for day in days
    ]


def _write_frame(
    conn: duckdb.DuckDBPyConnection,
    table: TableDef,
    frame: pd.DataFrame,
    delete_where: str | None,
    delete_params: list[object],
) -> int:
    """Delete then insert inside the caller's transaction (tables already ensured)."""
    return replace_rows_from_frame(
        conn,
        table,
        frame,
        delete_where=delete_where,
        delete_params=delete_params,
        in_transaction=False,
        ensure=False,
    )


# --------------------------------------------------------------------------------------------
# Customers and products (unpartitioned: the whole file each time)
# --------------------------------------------------------------------------------------------

#: Normalise a customer file: blanks become Unknown; a repeated customer_id keeps its first
#: row, later ones are quarantined. `{source}` is the adapter's SELECT (parameters bound).
TYPED_CUSTOMERS_SQL = """
WITH src AS ({source}),
cleaned AS (
    SELECT
        nullif(trim(customer_id), '') AS customer_id,
        coalesce(nullif(upper(trim(gender)), ''), 'Unknown') AS gender,
        coalesce(nullif(trim(age_band), ''), 'Unknown') AS age_band,
        coalesce(nullif(trim(occupation), ''), 'Unknown') AS occupation,
        coalesce(nullif(trim(marital_status), ''), 'Unknown') AS marital_status,
        coalesce(nullif(trim(city_category), ''), 'Unknown') AS city_category,
        source_file, source_line,
        CAST(to_json(struct_pack(
            customer_id := customer_id, gender := gender, age_band := age_band,
            occupation := occupation, marital_status := marital_status,
            city_category := city_category
        )) AS VARCHAR) AS raw_values
    FROM src
)
SELECT
    *,
    CASE
        WHEN customer_id IS NULL THEN 'customer_id_missing'
        WHEN row_number() OVER (PARTITION BY customer_id ORDER BY source_line) > 1
            THEN 'duplicate_customer_id'
    END AS parse_rule
FROM cleaned
ORDER BY source_line
"""

TYPED_PRODUCTS_SQL = """
WITH src AS ({source}),
cleaned AS (
    SELECT
        nullif(trim(product_id), '') AS product_id,
        coalesce(nullif(trim(product_name), ''), nullif(trim(product_id), '')) AS product_name,
        coalesce(nullif(trim(category), ''), 'Unknown') AS category,
        source_file, source_line,
        CAST(to_json(struct_pack(
            product_id := product_id, product_name := product_name, category := category
        )) AS VARCHAR) AS raw_values
    FROM src
)
SELECT
    *,
    CASE
        WHEN product_id IS NULL THEN 'product_id_missing'
        WHEN row_number() OVER (PARTITION BY product_id ORDER BY source_line) > 1
            THEN 'duplicate_product_id'
    END AS parse_rule
FROM cleaned
ORDER BY source_line
"""


@dataclass(frozen=True)
class MasterCounts:
    raw: int
    staged: int
    quarantined: int


def stage_master(
    conn: duckdb.DuckDBPyConnection,
    entity: str,
    source_sql: str | None,
    params: list[object],
) -> MasterCounts:
    """Replace staging.customers or staging.products (and their quarantine rows)."""
    table, model, typed_sql = {
        "customers": (STAGED_CUSTOMERS, CustomerProfile, TYPED_CUSTOMERS_SQL),
        "products": (STAGED_PRODUCTS, ProductRecord, TYPED_PRODUCTS_SQL),
    }[entity]
    ensure_staging_tables(conn)
    if source_sql is None:
        typed = pd.DataFrame(columns=[*table.column_names, "raw_values", "parse_rule"])
    else:
        # The adapter's SELECT is our own SQL text (not user input); its values are bound.
        typed = conn.execute(typed_sql.format(source=source_sql), params).df()
    parse_failed = typed[typed["parse_rule"].notna()].assign(
        rule=lambda df: df["parse_rule"],
        detail=lambda df: (
            df["parse_rule"]
            .map(
                {
                    "duplicate_customer_id": "an earlier row has this customer_id",
                    "duplicate_product_id": "an earlier row has this product_id",
                }
            )
            .fillna("")
        ),
    )
    parsed = typed[typed["parse_rule"].isna()].drop(columns=["parse_rule"])
    valid, rejected = split_by_model(parsed, model)
    quarantined = pd.concat(
        [_quarantine_frame(df, entity) for df in (parse_failed, rejected)],
        ignore_index=True,
    ).sort_values("source_line", kind="stable")
    conn.execute("BEGIN TRANSACTION")
    try:
        staged = _write_frame(conn, table, valid[table.column_names], None, [])
        quarantined_n = _write_frame(conn, QUARANTINE, quarantined, "entity = ?", [entity])
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return MasterCounts(raw=len(typed), staged=staged, quarantined=quarantined_n)
