"""The canonical format (the bundled sample's): a folder with

    transactions/YYYY-MM-DD.csv   (or .parquet), one file per day
    customers.csv                 (optional; or .parquet)
    products.csv                  (optional; or .parquet)

Column names are the data contract's (SPEC section 2). A required column that is missing stops
the run with a message naming the file and the column; columns the contract does not know are
kept, as JSON, in the raw table's `extra` column.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from datetime import date
from pathlib import Path

import duckdb

from segment_pipeline.sources.base import (
    CUSTOMER_FIELDS,
    PRODUCT_FIELDS,
    RAW_TRANSACTION_FIELDS,
    REQUIRED_TRANSACTION_FIELDS,
    DataContractError,
    DatasetSource,
    RawQuery,
    with_partition_date,
)
from segment_pipeline.sources.lines import CsvFile, numbered_scan
from segment_pipeline.sources.text_encodings import explain_read_error, header_decode_error

DAY_FILE_PATTERN = re.compile(r"^(\d{4}-\d{2}-\d{2})\.(csv|parquet)$")
SUPPORTED_SUFFIXES = (".csv", ".parquet")

#: What to do about a canonical file that is not UTF-8.
UTF8_ADVICE = (
    "Canonical files are UTF-8: convert the file (for example "
    "`iconv -f CP1252 -t UTF-8 in.csv > out.csv`), or read the dataset with --format mapped "
    "and an `encoding:` (docs/sources.md)."
)


def quote_ident(name: str) -> str:
    """Quote a column name read from a file header for use as a SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def extra_json_select(columns: list[str], alias: str = "extra") -> str:
    """The input's columns outside the contract, kept as one JSON object of text (NULL when
    there are none), so no input column is lost."""
    if not columns:
        return f"CAST(NULL AS VARCHAR) AS {alias}"
    packed = ", ".join(f"{quote_ident(c)} := CAST({quote_ident(c)} AS VARCHAR)" for c in columns)
    return f"CAST(to_json(struct_pack({packed})) AS VARCHAR) AS {alias}"


def parse_day_file_name(name: str) -> date | None:
    """`2025-11-03.csv` -> date(2025, 11, 3); None for anything else (including impossible
    dates such as `2025-02-30.csv`)."""
    match = DAY_FILE_PATTERN.match(name)
    if not match:
        return None
    try:
        return date.fromisoformat(match.group(1))
    except ValueError:
        return None


def csv_header(path: Path) -> list[str]:
    """The column names on a CSV file's first line."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            header = next(csv.reader(handle), None)
    except UnicodeDecodeError:
        raise header_decode_error(path, "utf-8", UTF8_ADVICE) from None
    except (OSError, csv.Error) as exc:
        raise DataContractError(f"{path}: cannot read the header line: {exc}") from exc
    if header == []:
        raise DataContractError(
            f"{path}: line 1 is blank; the column names must be on line 1 (delete the blank "
            "line(s) at the top)"
        )
    if not header:
        raise DataContractError(f"{path}: the file is empty (no header line)")
    names = [name.strip() for name in header]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise DataContractError(
            f"{path}: line 1 (the header) repeats the column name(s) {', '.join(repeated)}; "
            "every column needs its own name"
        )
    return names


def scan_function(path: Path, columns: list[str] | None = None) -> str:
    """The DuckDB table function reading `path` as text (the path is bound as a parameter).

    CSV is read with the dialect fixed (comma, double quotes, header line) and every column
    declared as text: raw is loaded as it is, and typing (quarantining what does not parse) is
    staging's job, so a bad value never fails the load. Declaring the columns also skips
    DuckDB's sniffer, which dominated the cost of loading many small daily files.
    """
    if path.suffix == ".parquet":
        return "read_parquet(?)"
    if columns is None:
        return "read_csv(?, all_varchar = true, header = true)"
    declared = ", ".join(f"'{name.replace(chr(39), chr(39) * 2)}': 'VARCHAR'" for name in columns)
    return (
        "read_csv(?, header = true, auto_detect = false, delim = ',', quote = '\"', "
        f"escape = '\"', strict_mode = true, columns = {{{declared}}})"
    )


def file_columns(conn: duckdb.DuckDBPyConnection, path: Path) -> list[str]:
    """Column names of a CSV (from its header line) or Parquet file."""
    if path.suffix == ".csv":
        return csv_header(path)
    try:
        rows = conn.execute(f"DESCRIBE SELECT * FROM {scan_function(path)}", [str(path)]).fetchall()
    except duckdb.Error as exc:
        raise DataContractError(f"{path}: cannot be read as a table: {exc}") from exc
    return [row[0] for row in rows]


def _field_selects(found: list[str], fields: tuple[str, ...], *, with_extra: bool) -> list[str]:
    """The contract's `fields` as text (NULL when the file lacks one), plus `extra`: the
    file's other columns as a JSON object."""
    selects = [
        f"CAST({quote_ident(name)} AS VARCHAR) AS {name}"
        if name in found
        else f"CAST(NULL AS VARCHAR) AS {name}"
        for name in fields
    ]
    if with_extra:
        selects.append(extra_json_select([name for name in found if name not in fields]))
    return selects


def _check_required(path: Path, found: list[str], required: tuple[str, ...]) -> None:
    missing = [name for name in required if name not in found]
    if missing:
        raise DataContractError(
            f"{path}: missing required column(s) {', '.join(missing)} "
            f"(the file has: {', '.join(found)})"
        )


def build_raw_query(
    conn: duckdb.DuckDBPyConnection,
    path: Path,
    fields: tuple[str, ...],
    required: tuple[str, ...],
    *,
    with_extra: bool,
) -> RawQuery:
    """SELECT the contract's `fields` as text from one file, with its file name and line number.

    `source_line` is the line in the file where the row starts, as an editor shows it (the
    header is line 1) for CSV, the row number for Parquet; DuckDB preserves insertion order,
    so `row_number() OVER ()` follows the file (see `lines.numbered_scan` for blank lines and
    multi-line fields).
    """
    found = file_columns(conn, path)
    _check_required(path, found, required)
    selects = _field_selects(found, fields, with_extra=with_extra)
    is_csv = path.suffix == ".csv"
    csv_files = (CsvFile(path),) if is_csv else ()
    source, line, line_params = numbered_scan(
        scan_function(path, found if is_csv else None),
        csv_files[0].shifts() if is_csv else None,
        offset=1 if is_csv else 0,
    )
    selects.append("CAST(? AS VARCHAR) AS source_file")
    selects.append(f"CAST({line} AS BIGINT) AS source_line")
    sql = f"SELECT {', '.join(selects)} FROM {source}"
    return RawQuery(
        sql=sql,
        params=[str(path.name), str(path), *line_params],
        source_file=str(path),
        csv_files=csv_files,
    )


#: Column names the multi-file query adds; a data file's own columns never start with `_sp_`.
_FILE_COL, _ROW_COL = "_sp_file", "_sp_row"


def day_files_query(paths: list[Path], days: list[date], found: list[str]) -> RawQuery:
    """One scan over day files that share a header: every line with its day (the file's
    name), file name and line number (header = line 1).

    DuckDB reads the files in the order given and keeps each file's lines in order, so a
    running row number minus the first one of each file is the record within the file, and
    the record + 1 its line, unless the file has blank lines or multi-line fields: then the
    breakpoints of those files (`lines.line_shifts`) are joined in. Other files, and scans
    without such files, pay nothing for it.
    """
    selects = _field_selects(found, RAW_TRANSACTION_FIELDS, with_extra=True)
    scan = scan_function(paths[0], found).replace(
        "read_csv(?, ", f"read_csv(?, filename = '{_FILE_COL}', "
    )
    csv_files = tuple(CsvFile(p) for p in paths)
    shifted = [(str(f.path), f.shifts()) for f in csv_files]
    shifted = [(name, s) for name, s in shifted if s.breaks]
    line = f"{_ROW_COL} - _sp_first + 2"
    shift_ctes, shift_join, line_params = "", "", []
    if shifted:
        # The breakpoints meet the rows of their own files only (ASOF), and the shifts join
        # back by row number: the other files' rows see one cheap hash-join probe.
        shift_ctes = f""",
        breaks AS (
            SELECT unnest(?::VARCHAR[]) AS _sp_break_file, unnest(?::BIGINT[]) AS _sp_from,
                   unnest(?::BIGINT[]) AS _sp_shift
        ),
        shifted AS (
            SELECT r.{_ROW_COL}, breaks._sp_shift
            FROM (
                SELECT {_FILE_COL}, {_ROW_COL}, {_ROW_COL} - _sp_first + 1 AS _sp_rec
                FROM numbered JOIN starts USING ({_FILE_COL})
                WHERE list_contains(?::VARCHAR[], {_FILE_COL})
            ) AS r
            ASOF JOIN breaks
                ON r.{_FILE_COL} = breaks._sp_break_file AND r._sp_rec >= breaks._sp_from
        )"""
        shift_join = f" LEFT JOIN shifted USING ({_ROW_COL})"
        line += " + coalesce(_sp_shift, 0)"
        line_params = [
            [name for name, s in shifted for _ in s.breaks],
            [b for _, s in shifted for b in s.breaks],
            [v for _, s in shifted for v in s.shifts],
            [name for name, _ in shifted],
        ]
    sql = f"""
        WITH numbered AS MATERIALIZED (
            SELECT *, row_number() OVER () AS {_ROW_COL} FROM {scan}
        ),
        files AS (
            SELECT unnest(?::VARCHAR[]) AS {_FILE_COL}, unnest(?::DATE[]) AS partition_date,
                   unnest(?::VARCHAR[]) AS source_file
        ),
        starts AS (SELECT {_FILE_COL}, min({_ROW_COL}) AS _sp_first FROM numbered GROUP BY 1)
        {shift_ctes}
        SELECT files.partition_date, {", ".join(selects)}, files.source_file,
               CAST({line} AS BIGINT) AS source_line
        FROM numbered JOIN starts USING ({_FILE_COL}) JOIN files USING ({_FILE_COL}){shift_join}
    """
    names = [str(p) for p in paths]
    return RawQuery(
        sql=sql,
        params=[names, names, days, [p.name for p in paths], *line_params],
        source_file=str(paths[0].parent) if len(paths) > 1 else str(paths[0]),
        csv_files=csv_files,
    )


class CanonicalSource(DatasetSource):
    """A folder of daily files in the canonical format."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._day_files: dict[date, Path] | None = None

    @property
    def transactions_dir(self) -> Path:
        return self.root / "transactions"

    def describe(self) -> str:
        return f"canonical dataset at {self.root}"

    def day_files(self) -> dict[date, Path]:
        """Transaction files by day (scanned once per source object); a day with both CSV and
        Parquet is an error."""
        if self._day_files is None:
            self._day_files = self._scan_day_files()
        return self._day_files

    def _scan_day_files(self) -> dict[date, Path]:
        files: dict[date, Path] = {}
        if not self.transactions_dir.is_dir():
            return files
        for path in sorted(self.transactions_dir.iterdir()):
            day = parse_day_file_name(path.name)
            if day is None:
                continue
            if day in files:
                raise DataContractError(
                    f"{self.transactions_dir}: two files for {day}: {files[day].name} and "
                    f"{path.name}; keep one"
                )
            files[day] = path
        return files

    def unrecognised_files(self) -> list[Path]:
        """Files in transactions/ whose name is not a valid `YYYY-MM-DD.csv|parquet`."""
        if not self.transactions_dir.is_dir():
            return []
        return [
            p
            for p in sorted(self.transactions_dir.iterdir())
            if p.is_file() and not p.name.startswith(".") and parse_day_file_name(p.name) is None
        ]

    def unrecognised_inputs(self) -> list[str]:
        return [str(p) for p in self.unrecognised_files()]

    def transaction_days(self) -> list[date]:
        return sorted(self.day_files())

    def listed_day_range(self) -> tuple[date, date] | None:
        days = self.transaction_days()  # file names only
        return (days[0], days[-1]) if days else None

    def explain_read_error(self, error: BaseException) -> str | None:
        files = [*self.day_files().values()]
        files += [p for p in map(self._optional_file, ("customers", "products")) if p]
        return explain_read_error(error, files, "utf-8", UTF8_ADVICE)

    def raw_window(
        self, conn: duckdb.DuckDBPyConnection, first: date, last: date
    ) -> Iterable[RawQuery]:
        """CSV day files sharing a header are read in one scan; Parquet files one by one."""
        in_window = {d: p for d, p in self.day_files().items() if first <= d <= last}
        groups: dict[tuple[str, ...], list[date]] = {}
        queries: list[RawQuery] = []
        for day, path in sorted(in_window.items()):
            if path.suffix == ".csv":
                found = csv_header(path)
                _check_required(path, found, REQUIRED_TRANSACTION_FIELDS)
                groups.setdefault(tuple(found), []).append(day)
            else:
                queries.append(with_partition_date(self.raw_transactions(conn, day), day))
        for found, days in groups.items():
            queries.append(day_files_query([in_window[d] for d in days], days, list(found)))
        return queries

    def raw_transactions(self, conn: duckdb.DuckDBPyConnection, day: date) -> RawQuery | None:
        path = self.day_files().get(day)
        if path is None:
            return None
        return build_raw_query(
            conn, path, RAW_TRANSACTION_FIELDS, REQUIRED_TRANSACTION_FIELDS, with_extra=True
        )

    def _optional_file(self, stem: str) -> Path | None:
        for suffix in SUPPORTED_SUFFIXES:
            path = self.root / f"{stem}{suffix}"
            if path.is_file():
                return path
        return None

    def master_files(self, entity: str) -> tuple[Path, ...] | None:
        path = self._optional_file(entity)
        return None if path is None else (path,)

    def raw_customers(self, conn: duckdb.DuckDBPyConnection) -> RawQuery | None:
        path = self._optional_file("customers")
        if path is None:
            return None
        return build_raw_query(conn, path, CUSTOMER_FIELDS, ("customer_id",), with_extra=False)

    def raw_products(self, conn: duckdb.DuckDBPyConnection) -> RawQuery | None:
        path = self._optional_file("products")
        if path is None:
            return None
        return build_raw_query(conn, path, PRODUCT_FIELDS, ("product_id",), with_extra=False)
