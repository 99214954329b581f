"""The `mapped` format: any CSV or Parquet dataset plus a small YAML mapping file that says
which column is which (see docs/sources.md and docs/examples/*.yaml).

This module also holds the machinery the other file-based adapters (Online Retail, Black
Friday) share, in :class:`FileDatasetSource`:

- finding the files: one file, or a folder of files. A folder of `YYYY-MM-DD.csv|parquet`
  files is read one file per day (the file name is the partition, like the canonical format);
  any other files are read whole and each row goes to the day of its own timestamp. Rows whose
  timestamp cannot be read go to the *first* day, where staging quarantines them
  (`order_ts_unparseable` / `order_ts_missing`), so no row is ever left out of a partition.
- reading a file as text with its file name and line number (header = line 1), with every
  input column the adapter does not use packed into `extra` as JSON;
- deriving customer profiles from transaction rows (one row per distinct profile, earliest
  line first, so a customer whose rows disagree shows up in staging's quarantine as
  `duplicate_customer_id`: the first profile wins, later ones are kept there as evidence).

Adapters return SQL that DuckDB runs inside the raw asset's insert: rows stream from the files
into the warehouse without passing through Python.
"""

from __future__ import annotations

import contextlib
import csv
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import yaml

from segment_pipeline.sources.base import (
    CUSTOMER_FIELDS,
    PRODUCT_FIELDS,
    RAW_TRANSACTION_FIELDS,
    DataContractError,
    DatasetSource,
    RawQuery,
)
from segment_pipeline.sources.canonical import (
    extra_json_select,
    parse_day_file_name,
    quote_ident,
)
from segment_pipeline.sources.lines import CsvFile, numbered_scan
from segment_pipeline.sources.text_encodings import (
    ACCEPTED_ENCODINGS,
    csv_input,
    explain_read_error,
    header_decode_error,
    normalise_encoding,
    open_text,
)

DATA_SUFFIXES = (".csv", ".parquet")
DEMOGRAPHIC_FIELDS: tuple[str, ...] = CUSTOMER_FIELDS[1:]

#: Bookkeeping columns every per-file scan adds (names no real dataset uses).
FILE_COL = "_sp_source_file"
LINE_COL = "_sp_source_line"
INDEX_COL = "_sp_file_index"
EXTRA_COL = "_sp_extra"

#: Time of day given to rows of undated data (Black Friday, or a mapping without order_ts).
UNDATED_TIME = "12:00:00"


def sql_literal(value: str) -> str:
    """A SQL string literal (standard quoting: `'` doubled; DuckDB has no backslash escapes in
    standard strings). Used for mapping values such as a date format, never for data."""
    return "'" + value.replace("'", "''") + "'"


def mcol(name: str) -> str:
    """The internal column holding the input column mapped to `name` (see `file_select`)."""
    return quote_ident(f"m_{name}")


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CsvOptions:
    """How CSV files are read. The dialect is declared, not sniffed, so a file is read the same
    way every day (and small daily files do not pay for DuckDB's sniffer).

    `encoding` is one of text_encodings.ENCODINGS; `declared_in` is the mapping file that
    declared these options (None: an adapter's fixed dialect), for the advice in errors.
    """

    delimiter: str = ","
    encoding: str = "utf-8"
    declared_in: Path | None = field(default=None, compare=False)

    @property
    def encoding_advice(self) -> str:
        """What to do about a file that is not in the declared encoding."""
        if self.declared_in is not None:
            return (
                f"Set `encoding:` in the mapping {self.declared_in} to the file's encoding, "
                f"one of: {ACCEPTED_ENCODINGS} (docs/sources.md)."
            )
        return (
            f"This format reads {self.encoding}: convert the file (for example "
            "`iconv -f CP1252 -t UTF-8 in.csv > out.csv`), or read it with --format mapped "
            "and an `encoding:` (docs/sources.md)."
        )


@dataclass(frozen=True)
class DataFiles:
    """The data files of one entity: either one file per day (`by_day`) or files whose rows
    carry their own dates."""

    location: Path
    files: tuple[Path, ...]
    by_day: dict[date, Path] = field(default_factory=dict)

    @property
    def day_named(self) -> bool:
        return bool(self.by_day)


def discover_files(path: Path) -> DataFiles:
    """The CSV/Parquet files at `path` (a file, or a folder read non-recursively).

    A folder is either all `YYYY-MM-DD.csv|parquet` day files, or any other data files; a mix
    is refused (reading some files by name and others by content would be ambiguous).
    """
    path = Path(path)
    if not path.exists():
        raise DataContractError(f"{path}: no such file or folder")
    if path.is_file():
        if path.suffix.lower() not in DATA_SUFFIXES:
            raise DataContractError(f"{path}: not a .csv or .parquet file")
        day = parse_day_file_name(path.name)
        return DataFiles(path, (path,), {day: path} if day else {})
    files = tuple(
        sorted(
            p
            for p in path.iterdir()
            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in DATA_SUFFIXES
        )
    )
    by_day: dict[date, Path] = {}
    others: list[Path] = []
    for p in files:
        day = parse_day_file_name(p.name)
        if day is None:
            others.append(p)
        elif day in by_day:
            raise DataContractError(
                f"{path}: two files for {day}: {by_day[day].name} and {p.name}; keep one"
            )
        else:
            by_day[day] = p
    if by_day and others:
        names = ", ".join(p.name for p in others[:3])
        raise DataContractError(
            f"{path}: mixes day files (YYYY-MM-DD.csv) with other data files ({names}"
            f"{', ...' if len(others) > 3 else ''}); move the others elsewhere"
        )
    return DataFiles(path, files, by_day)


def read_columns(path: Path, options: CsvOptions) -> list[str]:
    """Column names of a CSV file (its header line) or a Parquet file."""
    if path.suffix.lower() == ".parquet":
        conn = duckdb.connect()
        try:
            rows = conn.execute("DESCRIBE SELECT * FROM read_parquet(?)", [str(path)]).fetchall()
        except duckdb.Error as exc:
            raise DataContractError(f"{path}: cannot be read as Parquet: {exc}") from None
        finally:
            conn.close()
        return [row[0] for row in rows]
    try:
        with open_text(path, options.encoding) as handle:
            header = next(csv.reader(handle, delimiter=options.delimiter), None)
    except UnicodeDecodeError:
        raise header_decode_error(path, options.encoding, options.encoding_advice) from None
    except (OSError, UnicodeError, csv.Error) as exc:
        raise DataContractError(f"{path}: cannot read the header line: {exc}") from None
    if not header:
        raise DataContractError(f"{path}: the file is empty (no header line)")
    names = [name.strip() for name in header]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise DataContractError(f"{path}: repeated column name(s) {', '.join(repeated)}")
    return names


def scan_sql(path: Path, columns: Sequence[str], options: CsvOptions, encoding: str) -> str:
    """The DuckDB table function reading `path` (bound as a parameter) with every CSV column
    as text: raw is loaded as found; typing and quarantine are staging's job. `encoding` is
    DuckDB's name for the encoding of the file it reads (see `csv_input`)."""
    if path.suffix.lower() == ".parquet":
        return "read_parquet(?)"
    declared = ", ".join(f"{sql_literal(name)}: 'VARCHAR'" for name in columns)
    return (
        "read_csv(?, header = true, auto_detect = false, "
        f"delim = {sql_literal(options.delimiter)}, quote = '\"', escape = '\"', "
        "strict_mode = true, "
        f"encoding = {sql_literal(encoding)}, columns = {{{declared}}})"
    )


def file_select(
    path: Path,
    index: int,
    columns: Sequence[str],
    mapped: Mapping[str, str | None],
    options: CsvOptions,
) -> tuple[str, list[Any]]:
    """One file as rows of text: each mapped input column under its internal name
    (`m_<name>`, NULL when the mapping leaves it out), the other columns as a JSON object
    (`_sp_extra`, NULL when there are none), and the file name, line number and file index.

    `source_line` is the line in the file where the row starts, as an editor shows it (header
    = line 1) for CSV, the row number for Parquet; DuckDB preserves insertion order, so
    `row_number() OVER ()` follows the file (see `lines.numbered_scan` for blank lines and
    multi-line fields). A CSV file in an encoding DuckDB cannot decode is read from a UTF-8
    copy (`csv_input`); `source_file` still names the original.
    """
    read_path, encoding = path, "utf-8"
    if path.suffix.lower() == ".csv":
        read_path, encoding = csv_input(path, options.encoding, options.encoding_advice)
    selects = [
        f"CAST({quote_ident(col)} AS VARCHAR) AS {mcol(name)}"
        if col
        else f"CAST(NULL AS VARCHAR) AS {mcol(name)}"
        for name, col in mapped.items()
    ]
    used = {col for col in mapped.values() if col}
    selects.append(extra_json_select([c for c in columns if c not in used], EXTRA_COL))
    csv_file = csv_file_of(read_path, options, encoding)
    source, line, line_params = numbered_scan(
        scan_sql(path, columns, options, encoding),
        csv_file.shifts() if csv_file else None,
        offset=1 if csv_file else 0,
    )
    selects += [
        f"CAST(? AS VARCHAR) AS {FILE_COL}",
        f"CAST({line} AS BIGINT) AS {LINE_COL}",
        f"CAST({int(index)} AS INTEGER) AS {INDEX_COL}",
    ]
    sql = f"SELECT {', '.join(selects)} FROM {source}"
    return sql, [path.name, str(read_path), *line_params]


def csv_file_of(path: Path, options: CsvOptions, encoding: str) -> CsvFile | None:
    """How to read the file DuckDB reads (`path`: the input, or its UTF-8 copy) again in
    Python, for line numbers; None for Parquet. `encoding` is DuckDB's name for it."""
    if path.suffix.lower() != ".csv":
        return None
    if encoding == "utf-16":  # DuckDB reads it as little-endian, with or without a BOM
        with path.open("rb") as handle:
            codec = "utf-16" if handle.read(2) == b"\xff\xfe" else "utf-16-le"
    else:
        codec = {"utf-8": "utf-8-sig"}.get(encoding, encoding)
    return CsvFile(path, options.delimiter, codec)


# --------------------------------------------------------------------------------------------
# Shared SQL fragments
# --------------------------------------------------------------------------------------------


def extra_json(*pairs: tuple[str, str]) -> str:
    """`_sp_extra` with extra keys added (`(key, SQL expression)`); keys whose value is NULL are
    left out (JSON merge-patch drops nulls), so most rows keep just their input columns."""
    if not pairs:
        return EXTRA_COL
    args = ", ".join(f"{sql_literal(k)}, {expr}" for k, expr in pairs)
    return f"CAST(json_merge_patch(coalesce({EXTRA_COL}, '{{}}'), json_object({args})) AS VARCHAR)"


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


# --------------------------------------------------------------------------------------------
# Value rules: declared timestamp format and decimal separator
# --------------------------------------------------------------------------------------------

#: What staging accepts as text (logic/staging.py TYPED_TRANSACTIONS_SQL).
STAGING_INT_RE = r"[+-]?[0-9]+(\.0*)?"  # staging reads integral decimals as integers
STAGING_DEC_RE = r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)"
_SEPARATOR_RE = {".": r"\.", ",": ",", " ": " ", "'": "'", "_": "_"}


@dataclass(frozen=True)
class ValueRules:
    """Turns text in a declared format into the canonical text staging reads.

    A value that fits the declared format is rewritten (`01.11.2025 09:30` -> `2025-11-01
    09:30:00`, `1.234,50` -> `1234.50`). A value that does not fit is passed on as found, so
    staging quarantines it with its own rule and the value in `detail`; when staging would
    accept it as it is (an ISO date under a declared `%d/%m/%Y`, `3.99` under a declared
    decimal comma), a note is appended (`3.99 [expected decimal separator ',']`) so it fails
    there too instead of being read with a meaning the mapping did not declare.
    """

    timestamp_format: str | None = None
    decimal_separator: str = "."
    thousands_separator: str = ""
    currency_symbols: tuple[str, ...] = ()
    """Symbols written before or after amounts (`$3.50`, `3,50 €`), declared in the mapping;
    they are dropped before the number is read."""

    @property
    def _int_re(self) -> str:
        if not self.thousands_separator:
            return "[0-9]+"
        sep = _SEPARATOR_RE[self.thousands_separator]
        return f"([0-9]+|[0-9]{{1,3}}({sep}[0-9]{{3}})+)"

    @property
    def int_re(self) -> str:
        # An integral decimal (`2.0`, `2,00` under a decimal comma) is an integer too.
        dec = _SEPARATOR_RE[self.decimal_separator]
        return f"[+-]?{self._int_re}({dec}0*)?"

    @property
    def dec_re(self) -> str:
        dec = _SEPARATOR_RE[self.decimal_separator]
        # Exponent notation (`4.440892e-16`, as spreadsheets and numpy write tiny or huge
        # values) is a decimal in any declared format.
        number = f"[+-]?({self._int_re}({dec}[0-9]*)?|{dec}[0-9]+)([eE][+-]?[0-9]+)?"
        if not self.currency_symbols:
            return number
        symbol = "(" + "|".join(re.escape(c) for c in self.currency_symbols) + ")"
        # -$3.50, $-3.50, $ 3.50, 3,50 EUR, -3,50 €
        return f"([+-]?{symbol} ?)?{number}( ?{symbol})?"

    @property
    def numbers_as_found(self) -> bool:
        """True when staging reads the declared number format as it is (no rewrite needed)."""
        return (
            not self.thousands_separator
            and self.decimal_separator == "."
            and not self.currency_symbols
        )

    # -- timestamps ------------------------------------------------------------------------

    def ts_parsed(self, v: str) -> str:
        """SQL: the value as a TIMESTAMP, NULL when empty or not in the declared format."""
        t = f"nullif(trim({v}), '')"
        if self.timestamp_format:
            return f"try_strptime({t}, {sql_literal(self.timestamp_format)})"
        return f"TRY_CAST({t} AS TIMESTAMP)"

    def ts_fits(self, v: str) -> str:
        return f"({self.ts_parsed(v)} IS NOT NULL)"

    def ts_text(self, v: str) -> str:
        if not self.timestamp_format:
            return v
        parsed = self.ts_parsed(v)
        note = sql_literal(f" [expected timestamp_format {self.timestamp_format}]")
        return (
            f"CASE WHEN {parsed} IS NOT NULL THEN CAST({parsed} AS VARCHAR) "
            f"WHEN TRY_CAST(trim({v}) AS TIMESTAMP) IS NOT NULL THEN {v} || {note} "
            f"ELSE {v} END"
        )

    # -- numbers ---------------------------------------------------------------------------

    def int_fits(self, v: str) -> str:
        return f"regexp_full_match(trim({v}), {sql_literal(self.int_re)})"

    def dec_fits(self, v: str) -> str:
        return f"regexp_full_match(trim({v}), {sql_literal(self.dec_re)})"

    def _number_text(
        self, v: str, fits: str, staging_re: str, expected: str, *, exponent: bool = False
    ) -> str:
        cleaned = f"trim({v})"
        for symbol in self.currency_symbols:
            cleaned = f"replace({cleaned}, {sql_literal(symbol)}, '')"
        if self.currency_symbols:
            cleaned = f"replace({cleaned}, ' ', '')"
        if self.thousands_separator:
            cleaned = f"replace({cleaned}, {sql_literal(self.thousands_separator)}, '')"
        if self.decimal_separator != ".":
            cleaned = f"replace({cleaned}, {sql_literal(self.decimal_separator)}, '.')"
        if exponent:
            # Staging reads plain decimals: write an exponent out (to 20 decimals, exact for
            # any price or amount; staging then quarantines what it cannot keep in 4).
            plain = (
                f"rtrim(rtrim(CAST(TRY_CAST({cleaned} AS DECIMAL(38,20)) AS VARCHAR), '0'), '.')"
            )
            cleaned = (
                f"CASE WHEN regexp_matches({cleaned}, '[eE]') "
                f"THEN coalesce({plain}, {cleaned}) ELSE {cleaned} END"
            )
        if self.numbers_as_found and not exponent:
            return v
        note = sql_literal(f" [expected {expected}]")
        return (
            f"CASE WHEN {fits} THEN {cleaned} "
            f"WHEN regexp_full_match(trim({v}), {sql_literal(staging_re)}) THEN {v} || {note} "
            f"ELSE {v} END"
        )

    def _expected(self, kind: str) -> str:
        parts = [kind]
        if kind == "decimal":
            parts.append(f"separator {self.decimal_separator!r}")
        if self.thousands_separator:
            parts.append(f"thousands separator {self.thousands_separator!r}")
        if kind == "decimal" and self.currency_symbols:
            parts.append(f"currency symbols {', '.join(self.currency_symbols)}")
        return " ".join(parts)

    def int_text(self, v: str) -> str:
        return self._number_text(v, self.int_fits(v), STAGING_INT_RE, self._expected("integer"))

    def dec_text(self, v: str) -> str:
        return self._number_text(
            v, self.dec_fits(v), STAGING_DEC_RE, self._expected("decimal"), exponent=True
        )

    def describe(self, kind: str) -> str:
        if kind == "timestamp":
            return (
                f"timestamp_format {self.timestamp_format!r}"
                if self.timestamp_format
                else "ISO timestamp (YYYY-MM-DD HH:MM:SS)"
            )
        return self._expected(kind)


@dataclass(frozen=True)
class TypedColumn:
    """A column whose values must fit a declared type (checked before loading a day)."""

    name: str  # internal name (m_<name>)
    input_column: str  # as in the file
    kind: str  # timestamp, integer or decimal


def check_declared_types(
    conn: duckdb.DuckDBPyConnection,
    rows_sql: str,
    params: list[Any],
    typed: Sequence[TypedColumn],
    rules: ValueRules,
    *,
    strict: bool,
    mapping_file: Path | None,
    location: str = "",
    explain: Callable[[BaseException], str | None] | None = None,
) -> None:
    """Stop (DataContractError naming the file, line, column and value) when values do not fit
    their declared type: any value when `strict`, otherwise only when *no* non-empty value of a
    column fits (the declaration itself is then wrong, and quarantining every row would hide
    that). `explain` may turn a read error into a clearer message (an undecodable byte)."""
    if not typed:
        return
    parts = []
    for column in typed:
        v = f"src.{mcol(column.name)}"
        fits = {"timestamp": rules.ts_fits, "integer": rules.int_fits, "decimal": rules.dec_fits}[
            column.kind
        ](v)
        present = f"nullif(trim({v}), '') IS NOT NULL"
        bad = f"{present} AND NOT coalesce({fits}, false)"
        parts.append(
            f"count(*) FILTER (WHERE {present}), count(*) FILTER (WHERE {bad}), "
            f"arg_min(struct_pack(f := {FILE_COL}, l := {LINE_COL}, v := {v}), "
            f"{INDEX_COL} * 10000000000 + {LINE_COL}) FILTER (WHERE {bad})"
        )
    try:
        sql = f"SELECT {', '.join(parts)} FROM ({rows_sql}) AS src"
        row = conn.execute(sql, params).fetchall()[0]
    except duckdb.Error as exc:
        message = explain(exc) if explain else None
        raise DataContractError(
            message or f"{location or 'the data'}: could not be read: {exc}"
        ) from None
    for i, column in enumerate(typed):
        present, bad, example = row[3 * i], row[3 * i + 1], row[3 * i + 2]
        if not bad or (not strict and bad < present):
            continue
        where = f"{example['f']} line {example['l']}"
        declared = f"the declared {rules.describe(column.kind)}"
        mapping = f" ({mapping_file})" if mapping_file else ""
        if strict:
            raise DataContractError(
                f"{where}: column {column.input_column!r} ({column.name}): {bad} of {present} "
                f"value(s) do not match {declared}, e.g. {example['v']!r}. Fix the data or the "
                f"mapping{mapping}, or set `bad_values: quarantine` to quarantine such rows."
            )
        raise DataContractError(
            f"{where}: column {column.input_column!r} ({column.name}): none of its {present} "
            f"value(s) match {declared}, e.g. {example['v']!r}; the declaration looks wrong. "
            f"Fix the mapping{mapping}."
        )


# --------------------------------------------------------------------------------------------
# The shared file-based adapter
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# The mapping file
# --------------------------------------------------------------------------------------------

TRANSACTION_MAPPING_FIELDS: tuple[str, ...] = (
    "order_id",
    "customer_id",
    "order_ts",
    "product_id",
    "quantity",
    "unit_price",
    "amount",
    "product_name",
    "category",
)
REQUIRED_MAPPING_FIELDS: tuple[str, ...] = ("customer_id", "product_id", "quantity")
TOP_LEVEL_KEYS = (
    "transactions",
    "customers",
    "products",
    "timestamp_format",
    "decimal_separator",
    "thousands_separator",
    "currency_symbols",
    "delimiter",
    "encoding",
    "bad_values",
    "recode",
    "demographic_values",
)
BAD_VALUE_MODES = ("stop", "quarantine")


@dataclass(frozen=True)
class EntityMapping:
    """Where one entity's rows are (relative to the dataset folder; None = the folder itself)
    and which input column holds each field."""

    path: str | None
    columns: dict[str, str]


@dataclass(frozen=True)
class DatasetMapping:
    """A parsed, validated mapping file (see docs/sources.md, "mapped")."""

    source: Path
    transactions: EntityMapping
    demographics: dict[str, str] = field(default_factory=dict)
    customers: EntityMapping | None = None
    products: EntityMapping | None = None
    rules: ValueRules = ValueRules()
    csv: CsvOptions = CsvOptions()
    bad_values: str = "stop"
    recode: dict[str, dict[str, str]] = field(default_factory=dict)
    demographic_values: dict[str, tuple[str, ...]] = field(default_factory=dict)


def _fail(mapping_file: Path, message: str) -> DataContractError:
    return DataContractError(f"mapping {mapping_file}: {message}")


def _str_map(mapping_file: Path, where: str, value: Any, allowed: Sequence[str]) -> dict[str, str]:
    if not isinstance(value, dict):
        raise _fail(mapping_file, f"`{where}` must be a mapping of field: input column")
    out: dict[str, str] = {}
    for key, column in value.items():
        if key not in allowed:
            raise _fail(
                mapping_file,
                f"`{where}` has unknown field {key!r}; known fields: {', '.join(allowed)}",
            )
        if column is None or (isinstance(column, str) and not column.strip()):
            continue  # an explicit blank means "not in this dataset"
        if not isinstance(column, str | int):
            raise _fail(mapping_file, f"`{where}.{key}` must be a column name")
        out[str(key)] = str(column)
    return out


def _entity(mapping_file: Path, name: str, value: Any, allowed: Sequence[str]) -> EntityMapping:
    if not isinstance(value, dict):
        raise _fail(mapping_file, f"`{name}` must be a mapping with `columns` (and `path`)")
    unknown = set(value) - {"path", "columns", "demographics"}
    if unknown or ("demographics" in value and name != "transactions"):
        bad = sorted(
            unknown
            | ({"demographics"} if name != "transactions" and "demographics" in value else set())
        )
        raise _fail(mapping_file, f"`{name}` has unknown key(s) {', '.join(map(str, bad))}")
    path = value.get("path")
    if path is not None and not isinstance(path, str):
        raise _fail(mapping_file, f"`{name}.path` must be a file or folder name")
    return EntityMapping(
        path=path,
        columns=_str_map(mapping_file, f"{name}.columns", value.get("columns") or {}, allowed),
    )


def load_mapping(mapping_file: Path | None) -> DatasetMapping:
    """Read and validate a mapping file; every problem is a DataContractError naming the file."""
    if mapping_file is None:
        raise DataContractError(
            "format 'mapped' needs a mapping file: --mapping FILE (or SEGMENT_PIPELINE_MAPPING); "
            "see docs/sources.md"
        )
    mapping_file = Path(mapping_file)
    try:
        doc = yaml.safe_load(mapping_file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise _fail(mapping_file, f"cannot be read: {exc}") from None
    except yaml.YAMLError as exc:
        raise _fail(mapping_file, f"is not valid YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise _fail(mapping_file, "must be a YAML mapping with a `transactions` section")
    unknown = sorted(set(doc) - set(TOP_LEVEL_KEYS))
    if unknown:
        raise _fail(
            mapping_file,
            f"unknown key(s) {', '.join(map(str, unknown))}; known keys: "
            f"{', '.join(TOP_LEVEL_KEYS)}",
        )
    if "transactions" not in doc:
        raise _fail(mapping_file, "has no `transactions` section")
    tx = _entity(mapping_file, "transactions", doc["transactions"], TRANSACTION_MAPPING_FIELDS)
    missing = [f for f in REQUIRED_MAPPING_FIELDS if f not in tx.columns]
    if missing:
        raise _fail(mapping_file, f"`transactions.columns` must name {', '.join(missing)}")
    if ("unit_price" in tx.columns) == ("amount" in tx.columns):
        raise _fail(
            mapping_file,
            "`transactions.columns` must name exactly one of unit_price "
            "(price per unit) and amount (line total)",
        )
    demographics = _str_map(
        mapping_file,
        "transactions.demographics",
        doc["transactions"].get("demographics") or {},
        DEMOGRAPHIC_FIELDS,
    )
    customers = (
        _entity(mapping_file, "customers", doc["customers"], CUSTOMER_FIELDS)
        if doc.get("customers")
        else None
    )
    products = (
        _entity(mapping_file, "products", doc["products"], PRODUCT_FIELDS)
        if doc.get("products")
        else None
    )
    if customers and "customer_id" not in customers.columns:
        raise _fail(mapping_file, "`customers.columns` must name customer_id")
    if products and "product_id" not in products.columns:
        raise _fail(mapping_file, "`products.columns` must name product_id")
    if customers and demographics:
        raise _fail(
            mapping_file,
            "declare demographics either in `transactions.demographics` "
            "or in a `customers` file, not both",
        )

    ts_format = doc.get("timestamp_format")
    if ts_format is not None and (not isinstance(ts_format, str) or "%" not in ts_format):
        raise _fail(
            mapping_file,
            f"timestamp_format {ts_format!r} is not a strptime format such as '%d/%m/%Y %H:%M'",
        )
    decimal = str(doc.get("decimal_separator", "."))
    thousands = doc.get("thousands_separator") or ""
    if decimal not in (".", ","):
        raise _fail(mapping_file, f"decimal_separator must be '.' or ',' (not {decimal!r})")
    if thousands not in ("", *_SEPARATOR_RE) or thousands == decimal:
        raise _fail(
            mapping_file,
            f"thousands_separator {thousands!r} must be one of "
            f"{', '.join(repr(s) for s in _SEPARATOR_RE if s != decimal)} or empty",
        )
    symbols = doc.get("currency_symbols") or []
    if isinstance(symbols, str):
        symbols = [symbols]
    if not isinstance(symbols, list) or any(
        not isinstance(c, str)
        or not c.strip()
        or any(ch.isdigit() for ch in c)
        or c in (decimal, thousands)
        for c in symbols
    ):
        raise _fail(
            mapping_file,
            "currency_symbols must be a list of symbols written around amounts, such as "
            "['$', '€', 'EUR'] (no digits, not a separator)",
        )
    delimiter = str(doc.get("delimiter", ","))
    if len(delimiter) != 1 and delimiter != "\\t":
        raise _fail(mapping_file, f"delimiter must be one character (not {delimiter!r})")
    encoding = normalise_encoding(doc.get("encoding", "utf-8"))
    if encoding is None:
        raise _fail(
            mapping_file,
            f"encoding {doc.get('encoding')!r} is not supported; use one of: {ACCEPTED_ENCODINGS}",
        )
    bad_values = str(doc.get("bad_values", "stop"))
    if bad_values not in BAD_VALUE_MODES:
        raise _fail(mapping_file, f"bad_values must be one of {', '.join(BAD_VALUE_MODES)}")
    recode_doc = doc.get("recode") or {}
    if not isinstance(recode_doc, dict) or any(
        k not in DEMOGRAPHIC_FIELDS or not isinstance(v, dict) for k, v in recode_doc.items()
    ):
        raise _fail(
            mapping_file,
            "`recode` maps a demographic field to {value as found: "
            f"canonical value}}; fields: {', '.join(DEMOGRAPHIC_FIELDS)}",
        )
    recode = {k: {str(a): str(b) for a, b in v.items()} for k, v in recode_doc.items()}
    values_doc = doc.get("demographic_values") or {}
    if not isinstance(values_doc, dict) or any(
        k not in DEMOGRAPHIC_FIELDS or not isinstance(v, list) or not v
        for k, v in values_doc.items()
    ):
        raise _fail(
            mapping_file,
            "`demographic_values` lists, per demographic field, the values the source uses "
            f"(in their order), e.g. age_band: [19-24, 25-34, 65+]; fields: "
            f"{', '.join(DEMOGRAPHIC_FIELDS)}",
        )
    demographic_values = {k: tuple(str(x).strip() for x in v) for k, v in values_doc.items()}
    return DatasetMapping(
        source=mapping_file,
        transactions=tx,
        demographics=demographics,
        customers=customers,
        products=products,
        rules=ValueRules(ts_format, decimal, thousands, tuple(c.strip() for c in symbols)),
        csv=CsvOptions("\t" if delimiter == "\\t" else delimiter, encoding, mapping_file),
        bad_values=bad_values,
        recode=recode,
        demographic_values=demographic_values,
    )


# --------------------------------------------------------------------------------------------
# The mapped adapter
# --------------------------------------------------------------------------------------------


def _recoded(expr: str, values: Mapping[str, str] | None) -> str:
    if not values:
        return expr
    whens = " ".join(f"WHEN {sql_literal(a)} THEN {sql_literal(b)}" for a, b in values.items())
    return f"CASE trim({expr}) {whens} ELSE {expr} END"


class MappedSource(FileDatasetSource):
    """Any CSV/Parquet dataset described by a mapping file."""

    format_name = "mapped"

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
