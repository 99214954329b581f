"""The `sql` format: transactions (and optional customers / products) in a SQL database, read
through SQLAlchemy.

- **Connection**: the SQLAlchemy URL comes from the environment variable
  `SEGMENT_PIPELINE_SQL_URL` or, when unset, from `.env` in the working directory; never from
  code, flags or config (which end up in logs and the Dagster UI). Every message shows the URL
  with its password masked (`postgresql://seg:***@db/shop`), `describe()` included.
- **Tables**: `SEGMENT_PIPELINE_SQL_TRANSACTIONS` (default `transactions`),
  `SEGMENT_PIPELINE_SQL_CUSTOMERS` (`customers`), `SEGMENT_PIPELINE_SQL_PRODUCTS`
  (`products`); `schema.table` is accepted. Customers and products are optional: a missing
  table is simply not there. Columns use the canonical names (SPEC section 2); other columns
  go to `extra`. Any column type works: values are read as text (`CAST(... AS VARCHAR)` in the
  database), so a typed TIMESTAMP/NUMERIC table and an all-text landing table load alike.
- **Days**: `SELECT DISTINCT CAST(order_ts AS DATE)` for a date/time column; for a text column
  the first ten characters (`YYYY-MM-DD`). Rows whose date cannot be read (NULL, `not a date`,
  `2025-13-45 ...`) are loaded with the *first* day, where staging quarantines them: no row is
  left out of a partition. (A row added later with an unreadable date is picked up when the
  first day is re-run, e.g. by a full backfill.)
- **Streaming**: one day at a time, with a server-side cursor in chunks of
  `SEGMENT_PIPELINE_SQL_CHUNK_ROWS` rows (default 50,000) into a DuckDB temporary table on the
  warehouse connection; memory holds one chunk. The day's query selects from that table and is
  valid until the next day's query is requested (each day replaces the previous day's table).
- **Lineage**: a database row has no file and line. `source_file` is `<table>@<day>` (the
  table name for customers/products) and `source_line` numbers the day's rows in a stable
  order (by order_ts, order_id, product_id, customer_id, quantity, unit_price, ...), so
  re-loading a day gives the same line ids.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from urllib.parse import quote, unquote

import duckdb
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from segment_pipeline.settings import DEFAULT_SQL_CHUNK_ROWS, ENV_PREFIX, ENV_VARS
from segment_pipeline.sources.base import (
    CUSTOMER_FIELDS,
    PRODUCT_FIELDS,
    RAW_TRANSACTION_FIELDS,
    REQUIRED_TRANSACTION_FIELDS,
    DataContractError,
    DatasetSource,
    RawQuery,
)
from segment_pipeline.sources.canonical import extra_json_select, quote_ident

URL_ENV = ENV_PREFIX + "SQL_URL"
#: The variables naming the tables (settings.ENV_VARS), for error messages.
TABLE_ENVS: dict[str, str] = {
    entity: ENV_VARS[f"sql_{entity}_table"] for entity in ("transactions", "customers", "products")
}
CHUNK_ENV = ENV_VARS["sql_chunk_rows"]
DEFAULT_CHUNK_ROWS = DEFAULT_SQL_CHUNK_ROWS
MASK = "***"

_DAY_TEXT = re.compile(r"^\d{4}-\d{2}-\d{2}$")
#: `scheme://user:PASSWORD@host`; greedy up to the last `@` of the authority part, so an
#: unencoded `@` inside the password is masked too.
_USERINFO_PASSWORD = re.compile(
    r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s]*:)(?P<pw>[^\s/?#]*)@"
)
_QUERY_PASSWORD = re.compile(r"(?i)(?P<head>password=)(?P<pw>[^&\s]*)")


# --------------------------------------------------------------------------------------------
# The URL and its secret
# --------------------------------------------------------------------------------------------


#: `scheme://user:PASSWORD@host...`, where the password runs to the LAST `@`: hosts never
#: contain `@`, while a password that was not URL-encoded may contain `@`, `:`, `/` or `%`.
_RAW_PASSWORD = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s]*:(?P<pw>.*)@[^@]*$", re.DOTALL)
_PASSWORD_SEPARATORS = re.compile(r"[@:/%]")


def _password_fragments(password: str) -> set[str]:
    """A password and every piece of it a driver may echo after mis-parsing the URL (e.g. the
    part after an unencoded `@` taken for a host name): each prefix ending and suffix starting
    at a separator, and each piece between separators. Pieces of one or two characters are
    left out: they would mask those letters all over a message ("ss" in "address") and give
    away almost nothing of the password."""
    cuts = [0, *(m.start() for m in _PASSWORD_SEPARATORS.finditer(password)), len(password)]
    fragments = {password}
    for i, start in enumerate(cuts):
        for end in cuts[i + 1 :]:
            for a in (start, start + 1):
                piece = password[a:end]
                fragments.update({piece, piece.strip("@:/%")})
    return {f for f in fragments if len(f) >= 3}


def mask_url(url: str) -> str:
    """The URL with its password replaced by `***` (also for URLs SQLAlchemy cannot parse)."""
    raw = _RAW_PASSWORD.match(url)
    if raw and raw["pw"]:
        url = url[: raw.start("pw")] + MASK + url[raw.end("pw") :]
    try:
        masked = make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparseable URL must still be masked, never echoed
        masked = url
    masked = _USERINFO_PASSWORD.sub(lambda m: f"{m['head']}{MASK}@", masked)
    return _QUERY_PASSWORD.sub(lambda m: f"{m['head']}{MASK}", masked)


def _secrets(url: str) -> list[str]:
    """Every spelling of the URL's password(s) that could appear in a driver's message."""
    found: set[str] = set()
    for pattern in (_USERINFO_PASSWORD, _QUERY_PASSWORD):
        for match in pattern.finditer(url):
            if match["pw"]:
                found.add(match["pw"])
    try:
        password = make_url(url).password
        if password:
            found.add(str(password))
    except Exception:
        pass
    raw = _RAW_PASSWORD.match(url)
    if raw and raw["pw"]:
        found.update(_password_fragments(raw["pw"]))
        found.update(_password_fragments(unquote(raw["pw"])))
    for value in list(found):
        found.update({unquote(value), quote(value, safe="")})
    return sorted((s for s in found if s and s != MASK), key=len, reverse=True)


def mask_secrets(text: str, url: str) -> str:
    """`text` with the URL masked and any spelling of its password replaced by `***`."""
    text = text.replace(url, mask_url(url))
    for secret in _secrets(url):
        text = text.replace(secret, MASK)
    return text


def read_sql_url(env: Mapping[str, str] | None = None) -> str:
    """The database URL from the environment (`.env` is loaded into it by the entry points:
    Dagster's commands and `segment-pipeline`)."""
    env = os.environ if env is None else env
    url = (env.get(URL_ENV) or "").strip()
    if not url:
        raise DataContractError(
            f"format 'sql' needs the database URL in the environment variable {URL_ENV} (or in "
            "a .env file in the working directory), e.g. "
            "postgresql+psycopg2://user:password@host:5432/dbname"
        )
    return url


@dataclass(frozen=True)
class SqlTables:
    """Which tables hold the dataset (`schema.table` allowed)."""

    transactions: str = "transactions"
    customers: str = "customers"
    products: str = "products"


def _split_table(name: str) -> tuple[str | None, str]:
    schema, _, table = name.rpartition(".")
    return (schema or None), table


# --------------------------------------------------------------------------------------------
# The adapter
# --------------------------------------------------------------------------------------------


@dataclass
class _Table:
    """A reflected table: its SQLAlchemy object and column names."""

    label: str
    table: sa.Table

    @property
    def columns(self) -> list[str]:
        return [c.name for c in self.table.columns]


#: The order a day's lines are numbered in (then the table's other columns): a table has no
#: line numbers, so `source_line` is the rank in this order, stable across runs.
TRANSACTION_LINE_ORDER = (
    "order_ts", "order_id", "product_id", "customer_id", "quantity", "unit_price",
    "product_name", "category",
)  # fmt: skip


def _select_parts(
    table: _Table, fields: tuple[str, ...], order: tuple[str, ...], *, with_extra: bool = True
) -> tuple[str, list[str]]:
    """The ORDER BY list that numbers the rows, and the SELECT list of `fields` as text (NULL
    when the table lacks one) plus `extra`: the table's other columns as a JSON object."""
    present = table.columns
    others = [c for c in present if c not in fields]
    order_by = ", ".join(quote_ident(c) for c in (*[f for f in order if f in present], *others))
    selects = [quote_ident(f) if f in present else f"CAST(NULL AS VARCHAR) AS {f}" for f in fields]
    if with_extra:
        selects.append(extra_json_select(others))
    return order_by, selects


class SqlSource(DatasetSource):
    """A dataset in a SQL database (see the module docstring)."""

    def __init__(
        self,
        url: str,
        *,
        tables: SqlTables | None = None,
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
    ) -> None:
        self._url = url
        self.tables = tables or SqlTables()
        self.chunk_rows = max(1, int(chunk_rows))
        self._engine: sa.Engine | None = None
        self._reflected: dict[str, _Table | None] = {}
        self._days: tuple[list[date], list[Any]] | None = None
        #: Chunks fetched so far (tests use it to see that streaming happened).
        self.chunks_fetched = 0

    def __repr__(self) -> str:
        return f"SqlSource({self.masked_url!r}, tables={self.tables!r})"

    @property
    def masked_url(self) -> str:
        return mask_url(self._url)

    def describe(self) -> str:
        t = self.tables
        return (
            f"SQL database {self.masked_url} (tables: transactions={t.transactions}, "
            f"customers={t.customers}, products={t.products})"
        )

    # -- connection ------------------------------------------------------------------------

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        """Turn database errors into DataContractError with every secret masked."""
        try:
            yield
        except DataContractError:
            raise
        except (sa.exc.SQLAlchemyError, ImportError, OSError, ValueError) as exc:
            original = getattr(exc, "orig", None) or exc
            first = str(original).strip().splitlines()[0] if str(original).strip() else ""
            message = f"{type(original).__name__}: {first}" if first else type(original).__name__
            raise DataContractError(
                mask_secrets(
                    f"SQL database {self.masked_url}: {doing} failed: {message}", self._url
                )
            ) from None

    def engine(self) -> sa.Engine:
        if self._engine is None:
            with self._errors("opening the connection"):
                # NullPool: no connection outlives its use (runs are short; a pool would keep
                # idle connections open on the server between Dagster steps).
                self._engine = sa.create_engine(self._url, poolclass=NullPool)
        return self._engine

    def _reflect(self, entity: str) -> _Table | None:
        if entity not in self._reflected:
            label = getattr(self.tables, entity)
            schema, name = _split_table(label)
            with self._errors(f"reading the columns of table {label}"):
                inspector = sa.inspect(self.engine())
                if not inspector.has_table(name, schema=schema):
                    self._reflected[entity] = None
                else:
                    columns = inspector.get_columns(name, schema=schema)
                    table = sa.Table(
                        name,
                        sa.MetaData(),
                        *[sa.Column(c["name"], c["type"]) for c in columns],
                        schema=schema,
                    )
                    self._reflected[entity] = _Table(label, table)
        return self._reflected[entity]

    def _required(self, entity: str, fields: tuple[str, ...]) -> _Table:
        found = self._reflect(entity)
        if found is None:
            raise DataContractError(
                f"SQL database {self.masked_url}: no table {getattr(self.tables, entity)!r} "
                f"(set {TABLE_ENVS[entity]} to the table holding the {entity})"
            )
        missing = [f for f in fields if f not in found.columns]
        if missing:
            raise DataContractError(
                f"SQL database {self.masked_url}: table {found.label} has no column(s) "
                f"{', '.join(missing)} (it has: {', '.join(found.columns)})"
            )
        return found

    # -- days ------------------------------------------------------------------------------

    def _ts_is_typed(self, table: _Table) -> bool:
        return isinstance(table.table.c["order_ts"].type, sa.DateTime | sa.Date)

    def _day_key(self, table: _Table) -> sa.ColumnElement[Any]:
        ts = table.table.c["order_ts"]
        if self._ts_is_typed(table):
            return sa.cast(ts, sa.Date)
        return sa.func.substr(ts, 1, 10)

    def _scan_days(self) -> tuple[list[date], list[Any]]:
        """(days, day keys that are not dates: their rows go to the first day)."""
        if self._days is None:
            table = self._required("transactions", REQUIRED_TRANSACTION_FIELDS)
            key = self._day_key(table)
            with (
                self._errors(f"listing the days of table {table.label}"),
                self.engine().connect() as conn,
            ):
                keys = [row[0] for row in conn.execute(sa.select(key).distinct())]
            days: set[date] = set()
            undated: list[Any] = []
            for value in keys:
                day = _as_day(value)
                if day is None:
                    undated.append(value)
                else:
                    days.add(day)
            self._days = (sorted(days), undated)
        return self._days

    def transaction_days(self) -> list[date]:
        return self._scan_days()[0]

    def _day_filter(self, table: _Table, day: date) -> sa.ColumnElement[bool]:
        ts = table.table.c["order_ts"]
        days, undated = self._scan_days()
        if self._ts_is_typed(table):
            if isinstance(ts.type, sa.DateTime):
                start = datetime.combine(day, time())
                condition = sa.and_(ts >= start, ts < start + timedelta(days=1))
            else:
                condition = ts == day
        else:
            condition = self._day_key(table) == day.isoformat()
        if day == days[0]:
            extra = [ts.is_(None)]
            texts = [k for k in undated if k is not None]
            if texts:
                extra.append(self._day_key(table).in_(texts))
            condition = sa.or_(condition, *extra)
        return condition

    # -- streaming into DuckDB -------------------------------------------------------------

    def _load(
        self,
        conn: duckdb.DuckDBPyConnection,
        slot: str,
        table: _Table,
        where: sa.ColumnElement[bool] | None,
    ) -> str:
        """Stream the (filtered) table into a DuckDB temp table, all columns as text; returns
        the temp table's name. The slot's previous table is replaced (bounded memory)."""
        name = f"_segment_sql_{slot}"
        columns = table.columns
        conn.execute(
            f"CREATE OR REPLACE TEMP TABLE {name} ("
            + ", ".join(f"{quote_ident(c)} VARCHAR" for c in columns)
            + ")"
        )
        stmt = sa.select(*[sa.cast(table.table.c[c], sa.String).label(c) for c in columns])
        if where is not None:
            stmt = stmt.where(where)
        view = f"_segment_sql_chunk_{slot}"
        with self._errors(f"reading table {table.label}"), self.engine().connect() as db:
            result = db.execution_options(stream_results=True, yield_per=self.chunk_rows).execute(
                stmt
            )
            for chunk in result.partitions(self.chunk_rows):
                frame = pd.DataFrame.from_records(
                    [tuple(row) for row in chunk], columns=columns
                ).astype(object)
                conn.register(view, frame)
                try:
                    conn.execute(f"INSERT INTO {name} SELECT * FROM {view}")
                finally:
                    conn.unregister(view)
                self.chunks_fetched += 1
        return name

    def _raw_select(
        self,
        temp: str,
        table: _Table,
        fields: tuple[str, ...],
        order: tuple[str, ...],
        source_file: str,
        *,
        with_extra: bool,
    ) -> RawQuery:
        order_by, selects = _select_parts(table, fields, order, with_extra=with_extra)
        selects.append("CAST(? AS VARCHAR) AS source_file")
        selects.append(f"CAST(row_number() OVER (ORDER BY {order_by}) AS BIGINT) AS source_line")
        sql = f"SELECT {', '.join(selects)} FROM {temp} ORDER BY source_line"
        return RawQuery(sql=sql, params=[source_file], source_file=source_file)

    # -- the DatasetSource interface ---------------------------------------------------------

    def raw_transactions(self, conn: duckdb.DuckDBPyConnection, day: date) -> RawQuery | None:
        if day not in self.transaction_days():
            return None
        table = self._required("transactions", REQUIRED_TRANSACTION_FIELDS)
        temp = self._load(conn, "transactions", table, self._day_filter(table, day))
        return self._raw_select(
            temp,
            table,
            RAW_TRANSACTION_FIELDS,
            TRANSACTION_LINE_ORDER,
            f"{table.label}@{day.isoformat()}",
            with_extra=True,
        )

    def raw_window(
        self, conn: duckdb.DuckDBPyConnection, first: date, last: date
    ) -> Iterable[RawQuery]:
        """The window's rows in one streamed read (not one query per day), each on its day;
        rows whose date cannot be read go with the data's first day, as in `raw_transactions`.
        Lines are numbered per day in the same order as a day-by-day read, so line ids match."""
        all_days, undated = self._scan_days()
        days = [d for d in all_days if first <= d <= last]
        if not days:
            return []
        table = self._required("transactions", REQUIRED_TRANSACTION_FIELDS)
        ts = table.table.c["order_ts"]
        if isinstance(ts.type, sa.DateTime):
            condition = sa.and_(
                ts >= datetime.combine(days[0], time()),
                ts < datetime.combine(days[-1] + timedelta(days=1), time()),
            )
        elif isinstance(ts.type, sa.Date):
            condition = ts.between(days[0], days[-1])
        else:
            condition = self._day_key(table).between(days[0].isoformat(), days[-1].isoformat())
        if days[0] == all_days[0]:
            texts = [k for k in undated if k is not None]
            extra = [self._day_key(table).in_(texts)] if texts else []
            condition = sa.or_(condition, ts.is_(None), *extra)
        temp = self._load(conn, "transactions", table, condition)
        order_by, selects = _select_parts(table, RAW_TRANSACTION_FIELDS, TRANSACTION_LINE_ORDER)
        day = "coalesce(TRY_CAST(substr(CAST(order_ts AS VARCHAR), 1, 10) AS DATE), ?::DATE)"
        sql = f"""
            WITH dated AS (SELECT *, {day} AS partition_date FROM {temp})
            SELECT partition_date, {", ".join(selects)},
                   ? || '@' || CAST(partition_date AS VARCHAR) AS source_file,
                   CAST(row_number() OVER (PARTITION BY partition_date ORDER BY {order_by})
                        AS BIGINT) AS source_line
            FROM dated
        """
        return [RawQuery(sql=sql, params=[all_days[0], table.label], source_file=table.label)]

    def _master(
        self, conn: duckdb.DuckDBPyConnection, entity: str, fields: tuple[str, ...]
    ) -> RawQuery | None:
        found = self._reflect(entity)
        if found is None:
            return None
        table = self._required(entity, fields[:1])
        temp = self._load(conn, entity, table, None)
        return self._raw_select(temp, table, fields, fields, table.label, with_extra=False)

    def raw_customers(self, conn: duckdb.DuckDBPyConnection) -> RawQuery | None:
        return self._master(conn, "customers", CUSTOMER_FIELDS)

    def raw_products(self, conn: duckdb.DuckDBPyConnection) -> RawQuery | None:
        return self._master(conn, "products", PRODUCT_FIELDS)


def _as_day(value: Any) -> date | None:
    """A day key from the database as a date, None when it is not one."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str) and _DAY_TEXT.match(value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            return None
    return None
