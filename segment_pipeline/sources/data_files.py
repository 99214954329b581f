"""A dataset's CSV/Parquet files: finding them, and reading each as rows of text.

- Finding the files (`discover_files`): one file, or a folder of files. A folder of
  `YYYY-MM-DD.csv|parquet` files is read one file per day (the file name is the partition,
  like the canonical format); any other files are read whole and each row goes to the day of
  its own timestamp (see `file_source.FileDatasetSource`).
- Reading a file as text (`file_select`) with its file name and line number (header = line
  1), with every input column the adapter does not use packed into `_sp_extra` as JSON.

The SQL these build is run by DuckDB inside the raw asset's insert: rows stream from the files
into the warehouse without passing through Python.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import duckdb

from segment_pipeline.sources.base import DataContractError
from segment_pipeline.sources.canonical import (
    extra_json_select,
    parse_day_file_name,
    quote_ident,
)
from segment_pipeline.sources.lines import CsvFile, numbered_scan
from segment_pipeline.sources.text_encodings import (
    ACCEPTED_ENCODINGS,
    csv_input,
    header_decode_error,
    open_text,
)

__all__ = [
    "DATA_SUFFIXES",
    "EXTRA_COL",
    "FILE_COL",
    "INDEX_COL",
    "LINE_COL",
    "CsvOptions",
    "DataFiles",
    "csv_file_of",
    "discover_files",
    "extra_json",
    "file_select",
    "mcol",
    "read_columns",
    "scan_sql",
    "sql_literal",
]

DATA_SUFFIXES = (".csv", ".parquet")

#: Bookkeeping columns every per-file scan adds (names no real dataset uses).
FILE_COL = "_sp_source_file"
LINE_COL = "_sp_source_line"
INDEX_COL = "_sp_file_index"
EXTRA_COL = "_sp_extra"


def sql_literal(value: str) -> str:
    """A SQL string literal (standard quoting: `'` doubled; DuckDB has no backslash escapes in
    standard strings). Used for mapping values such as a date format, never for data."""
    return "'" + value.replace("'", "''") + "'"


def mcol(name: str) -> str:
    """The internal column holding the input column mapped to `name` (see `file_select`)."""
    return quote_ident(f"m_{name}")


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


def extra_json(*pairs: tuple[str, str]) -> str:
    """`_sp_extra` with extra keys added (`(key, SQL expression)`); keys whose value is NULL are
    left out (JSON merge-patch drops nulls), so most rows keep just their input columns."""
    if not pairs:
        return EXTRA_COL
    args = ", ".join(f"{sql_literal(k)}, {expr}" for k, expr in pairs)
    return f"CAST(json_merge_patch(coalesce({EXTRA_COL}, '{{}}'), json_object({args})) AS VARCHAR)"
