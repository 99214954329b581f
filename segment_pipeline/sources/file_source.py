"""`FileDatasetSource`: the adapter machinery the file-based formats (mapped, Online Retail,
Black Friday) share.

- Days: a folder of day files is read one file per day; any other files are read whole and
  each row goes to the day of its own timestamp. Rows whose timestamp cannot be read go to the
  *first* day, where staging quarantines them (`order_ts_unparseable` / `order_ts_missing`),
  so no row is ever left out of a partition.
- Customer profiles derived from transaction rows (`profile_rows_sql`): one row per distinct
  profile, earliest line first, so a customer whose rows disagree shows up in staging's
  quarantine as `duplicate_customer_id`: the first profile wins, later ones are kept there as
  evidence.

Adapters return SQL that DuckDB runs inside the raw asset's insert: rows stream from the files
into the warehouse without passing through Python.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import duckdb

from segment_pipeline.sources.base import (
    DEMOGRAPHIC_FIELDS,
    RAW_TRANSACTION_FIELDS,
    DataContractError,
    DatasetSource,
    RawQuery,
)
from segment_pipeline.sources.data_files import (
    FILE_COL,
    INDEX_COL,
    LINE_COL,
    CsvOptions,
    DataFiles,
    csv_file_of,
    discover_files,
    file_select,
    read_columns,
)
from segment_pipeline.sources.lines import CsvFile
from segment_pipeline.sources.text_encodings import csv_input, explain_read_error

__all__ = ["FileDatasetSource", "profile_rows_sql"]


class FileDatasetSource(DatasetSource):
    """A dataset of CSV/Parquet files whose transaction rows an adapter maps to the raw shape.

    Subclasses say which input columns they need (`transaction_columns`), how a row becomes a
    raw row (`transaction_selects`), and how to read a row's timestamp (`timestamp_expr`; None
    for undated data, which is all loaded as `undated_day`).
    """

    csv_options: CsvOptions = CsvOptions()

    def __init__(self, location: Path, *, undated_day: date) -> None:
        self.location = Path(location)
        self.undated_day = undated_day
        self._files: DataFiles | None = None
        self._columns: dict[Path, list[str]] = {}
        self._days: list[date] | None = None

    # -- hooks -----------------------------------------------------------------------------

    def transaction_columns(self, path: Path, columns: list[str]) -> dict[str, str | None]:
        """Internal name -> input column (None when absent and optional) for one file; raises
        DataContractError naming the file and the column when a required one is missing."""
        raise NotImplementedError

    def transaction_selects(self) -> dict[str, str]:
        """Raw field -> SQL expression over `src` (the `m_<name>` columns, `_sp_extra`,
        `_sp_source_file`, `_sp_source_line`), for every raw transaction field plus `extra`."""
        raise NotImplementedError

    def timestamp_expr(self) -> str | None:
        """SQL over `src`: the row's timestamp (TIMESTAMP, NULL when unreadable), or None when
        the data has no timestamps."""
        return None

    def check_rows(self, conn: duckdb.DuckDBPyConnection, rows_sql: str, params: list[Any]) -> None:
        """Stop on values that break the data contract (mapped: declared types)."""

    def input_files(self) -> list[Path]:
        """Every data file the dataset reads (transactions first)."""
        return list(self.files().files)

    def explain_read_error(self, error: BaseException) -> str | None:
        """A clearer message for DuckDB's `error` reading the files (an undecodable byte: the
        file, line, byte offset and byte, and what to do), or None."""
        return explain_read_error(
            error,
            self.input_files(),
            self.csv_options.encoding,
            self.csv_options.encoding_advice,
        )

    # -- files -----------------------------------------------------------------------------

    @property
    def transaction_location(self) -> Path:
        return self.location

    def files(self) -> DataFiles:
        if self._files is None:
            self._files = discover_files(self.transaction_location)
        return self._files

    def columns_of(self, path: Path) -> list[str]:
        if path not in self._columns:
            self._columns[path] = read_columns(path, self.csv_options)
        return self._columns[path]

    def rows_sql(self, paths: Sequence[Path]) -> tuple[str, list[Any]]:
        """Every row of `paths` (UNION ALL), mapped to internal names, as text."""
        all_files = self.files().files
        parts, params = [], []
        for path in paths:
            columns = self.columns_of(path)
            mapped = self.transaction_columns(path, columns)
            sql, p = file_select(path, all_files.index(path), columns, mapped, self.csv_options)
            parts.append(sql)
            params.extend(p)
        if not parts:
            raise DataContractError(f"{self.transaction_location}: no .csv or .parquet files")
        return " UNION ALL ".join(f"({p})" for p in parts), params

    # -- days ------------------------------------------------------------------------------

    def transaction_days(self) -> list[date]:
        if self._days is None:
            self._days = self._find_days()
        return self._days

    def _find_days(self) -> list[date]:
        files = self.files()
        if not files.files:
            return []
        ts = self.timestamp_expr()
        if ts is None:
            return [self.undated_day]
        if files.day_named:
            return sorted(files.by_day)
        rows, params = self.rows_sql(files.files)
        conn = duckdb.connect()
        conn.execute("SET enable_progress_bar = false")  # no bar among the CLI's lines
        try:
            found = conn.execute(
                f"SELECT DISTINCT CAST({ts} AS DATE) AS day FROM ({rows}) AS src ORDER BY day",
                params,
            ).fetchall()
        except duckdb.Error as exc:
            message = self.explain_read_error(exc)
            raise DataContractError(
                message or f"{files.location}: could not be read: {exc}"
            ) from None
        finally:
            conn.close()
        days = [row[0] for row in found if row[0] is not None]
        if not days and found:
            raise DataContractError(
                f"{files.location}: no row has a readable timestamp, so the data has no days; "
                "check the timestamp column and its format"
            )
        return days

    def _day_rows(self, day: date) -> tuple[str, list[Any]] | None:
        """The rows of `day`: its file (day files), or the rows dated that day; the first day
        also takes the rows whose timestamp cannot be read."""
        files = self.files()
        days = self.transaction_days()
        if day not in days:
            return None
        ts = self.timestamp_expr()
        if ts is None:
            return self.rows_sql(files.files)
        if files.day_named:
            return self.rows_sql([files.by_day[day]])
        rows, params = self.rows_sql(files.files)
        undated = f" OR ({ts}) IS NULL" if day == days[0] else ""
        sql = f"SELECT * FROM ({rows}) AS src WHERE CAST({ts} AS DATE) = ?{undated}"
        return sql, [*params, day]

    def raw_transactions(self, conn: duckdb.DuckDBPyConnection, day: date) -> RawQuery | None:
        found = self._day_rows(day)
        if found is None:
            return None
        rows, params = found
        self.check_rows(conn, rows, params)
        order = f"ORDER BY {INDEX_COL}, {LINE_COL}"
        sql = f"SELECT {self._raw_select_list()} FROM ({rows}) AS src {order}"
        files = self.files()
        source = (
            str(files.by_day[day])
            if files.day_named and day in files.by_day
            else str(files.location)
        )
        read = [files.by_day[day]] if files.day_named and day in files.by_day else files.files
        return RawQuery(sql=sql, params=params, source_file=source, csv_files=self._csv(read))

    def raw_window(
        self, conn: duckdb.DuckDBPyConnection, first: date, last: date
    ) -> Iterable[RawQuery]:
        """Day files one by one; any other export in ONE pass for the whole window, each row on
        the day of its own timestamp, so the cost does not grow with the days it spans. Rows
        whose timestamp cannot be read go with the data's first day (where staging quarantines
        them)."""
        files = self.files()
        ts = self.timestamp_expr()
        if not files.files or ts is None or files.day_named:
            return super().raw_window(conn, first, last)
        rows, params = self.rows_sql(files.files)
        self.check_rows(conn, rows, params)
        day = f"CAST({ts} AS DATE)"
        sql = (
            f"SELECT coalesce({day}, min({day}) OVER ()) AS partition_date, "
            f"{self._raw_select_list()} FROM ({rows}) AS src ORDER BY {INDEX_COL}, {LINE_COL}"
        )
        return [
            RawQuery(
                sql=sql,
                params=params,
                source_file=str(files.location),
                csv_files=self._csv(files.files),
            )
        ]

    def _csv(self, paths: Sequence[Path]) -> tuple[CsvFile, ...]:
        """The CSV files among `paths`, for the loader (blank lines, error lines)."""
        options = self.csv_options
        found = []
        for path in paths:
            if path.suffix.lower() == ".csv":
                # The file DuckDB read: the input, or its UTF-8 copy (made once per process).
                read_path, encoding = csv_input(path, options.encoding, options.encoding_advice)
                found.append(csv_file_of(read_path, options, encoding))
        return tuple(f for f in found if f is not None)

    def _raw_select_list(self) -> str:
        """The raw fields, source_file, source_line and extra, over `src`."""
        selects = self.transaction_selects()
        missing = [f for f in (*RAW_TRANSACTION_FIELDS, "extra") if f not in selects]
        if missing:  # pragma: no cover - a bug in an adapter
            raise RuntimeError(f"{type(self).__name__} does not select {missing}")
        select_list = [f"{selects[f]} AS {f}" for f in RAW_TRANSACTION_FIELDS]
        select_list += [
            f"{FILE_COL} AS source_file",
            f"{LINE_COL} AS source_line",
            f"{selects['extra']} AS extra",
        ]
        return ", ".join(select_list)

    def listed_day_range(self) -> tuple[date, date] | None:
        if self.timestamp_expr() is None:
            return (self.undated_day, self.undated_day)
        by_day = self.files().by_day  # file names only
        return (min(by_day), max(by_day)) if by_day else None


def profile_rows_sql(rows_sql: str, customer_expr: str, demographics: Mapping[str, str]) -> str:
    """Customer profiles derived from transaction rows: one row per distinct (customer,
    profile), at the line where that profile first appears, ordered by that line.

    A customer whose rows all agree yields one row. One whose rows disagree yields one row per
    version; staging keeps the earliest and quarantines the rest as `duplicate_customer_id`
    (entity `customers`), which is how conflicting profiles are reported. Values are trimmed
    (a one-letter gender upper-cased) first, so `m` and `M ` are not a conflict. Rows without
    a customer id yield no profile (the line itself is quarantined as `customer_id_missing`).
    """

    def norm(name: str) -> str:
        expr = demographics.get(name)
        if expr is None:
            return f"CAST(NULL AS VARCHAR) AS {name}"
        value = f"nullif(trim({expr}), '')"
        if name == "gender":  # m/f are M/F; words and other codes stay as the source has them
            value = f"CASE WHEN length({value}) = 1 THEN upper({value}) ELSE {value} END"
        return f"{value} AS {name}"

    fields = ", ".join(norm(name) for name in DEMOGRAPHIC_FIELDS)
    demo = ", ".join(DEMOGRAPHIC_FIELDS)
    return f"""
WITH src AS ({rows_sql}),
p AS (
    SELECT nullif(trim({customer_expr}), '') AS customer_id, {fields},
           {FILE_COL} AS source_file, {LINE_COL} AS source_line, {INDEX_COL} AS file_index
    FROM src
),
firsts AS (
    SELECT *, row_number() OVER (
        PARTITION BY customer_id, {demo} ORDER BY file_index, source_line
    ) AS nth
    FROM p WHERE customer_id IS NOT NULL
)
SELECT customer_id, {demo}, source_file, source_line
FROM firsts WHERE nth = 1
ORDER BY file_index, source_line
"""
