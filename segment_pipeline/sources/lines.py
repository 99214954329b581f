"""Physical line numbers: the line a user sees in an editor (the header is line 1).

DuckDB's CSV reader numbers *records*: it skips blank lines, and a quoted field with a line
break inside (`"Mug<newline>large"`) is one record over two lines. So the scan's
`row_number() + 1` is the editor's line only until the first blank line or multi-line field.

Keeping the load one DuckDB scan, every CSV file gets a cheap byte check (a blank line? a quoted
field spanning a line break?). Only a file that has one is read again, here, with Python's csv
module, to find the line where each record starts; the result is a short list of breakpoints
(from record k on, records start `shift` lines further down) that the scan's SQL joins in with
an ASOF join. Files without blank lines or multi-line fields (nearly all) add no join and no
Python parse.

Blank lines are not transactions: they are skipped (DuckDB does), and counted
(:attr:`LineShifts.blank_lines`), so no line disappears without a word.
"""

from __future__ import annotations

import codecs
import csv
import mmap
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

#: A blank line (LF or CRLF line ends).
_BLANK_LINE = re.compile(rb"\n\r?\n")
#: Matches when a quoted field holds a line break: quote pairs without one are skipped
#: (possessively: linear time), then a quote whose field runs into a CR or LF. Doubled quotes
#: (`""`, an escaped quote) pair up like any other two, so they never hide a break.
_QUOTED_BREAK = re.compile(rb'(?:[^"]*+"[^"\r\n]*+")*+[^"]*+"[^"\r\n]*+[\r\n]')
#: Bytes read at a time when looking for an undecodable byte.
_CHUNK = 1 << 20
#: Files up to this size are read into memory for the byte check (faster than mapping them);
#: larger ones are memory-mapped, so a big export is never copied into Python.
_READ_LIMIT = 1 << 25


@dataclass(frozen=True)
class LineShifts:
    """Where a CSV file's records start, as breakpoints: from record `breaks[i]` on (record 1 is
    the first after the header) a record starts `shifts[i]` lines below `record + 1`. No
    breakpoints: record k is on line k + 1."""

    breaks: tuple[int, ...] = ()
    shifts: tuple[int, ...] = ()
    blank_lines: int = 0

    def line(self, record: int) -> int:
        """The line record `record` starts on (what the SQL computes; for tests)."""
        shift = 0
        for first, value in zip(self.breaks, self.shifts, strict=True):
            if record >= first:
                shift = value
        return record + 1 + shift


@dataclass(frozen=True)
class CsvFile:
    """A CSV file a raw query reads, with what is needed to read it again in Python: the
    delimiter and the Python codec (`utf-8-sig` for UTF-8 with or without a BOM)."""

    path: Path
    delimiter: str = ","
    codec: str = "utf-8-sig"

    def shifts(self) -> LineShifts:
        return line_shifts(self.path, delimiter=self.delimiter, codec=self.codec)


@lru_cache(maxsize=32)
def _ascii_compatible(codec: str) -> bool:
    """Line breaks, quotes and delimiters are their ASCII bytes (UTF-8, Latin-1, cp1252), so
    the byte check applies; UTF-16 files always take the csv-module path."""
    sample = 'a\n\r",;\t|'
    try:
        return sample.encode(codec).endswith(sample.encode("ascii"))
    except (LookupError, UnicodeError):
        return False


@contextmanager
def _file_bytes(path: Path) -> Iterator[mmap.mmap | bytes]:
    """The file's bytes: read if small, memory-mapped if large."""
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size <= _READ_LIMIT:
            yield handle.read()
            return
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
            yield data


def _has_quoted_break(data: mmap.mmap | bytes) -> bool:
    return data.find(b'"') >= 0 and _QUOTED_BREAK.match(data) is not None


def may_shift(path: Path, codec: str = "utf-8-sig") -> bool:
    """False when the file certainly has no blank line and no quoted line break (its records
    are on lines 2, 3, ...). A fast byte scan; True is only a "maybe"."""
    if not _ascii_compatible(codec):
        return True
    with _file_bytes(path) as data:
        if data.find(b"\n") < 0:
            return data.find(b"\r") >= 0  # line breaks are CR alone (old Mac)
        if data[:1] in (b"\n", b"\r") or _BLANK_LINE.search(data) is not None:
            return True
        return _has_quoted_break(data)


def _items(path: Path, delimiter: str, codec: str):
    """(first line, is blank) of every header, record and blank line of the file, in order.
    Undecodable bytes are replaced: they do not move line breaks, and reporting them is the
    loader's job."""
    with path.open(newline="", encoding=codec, errors="replace") as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        end = 0
        for row in reader:
            yield end + 1, not row
            end = reader.line_num


def _line_shifts(path: Path, delimiter: str, codec: str) -> LineShifts:
    if not may_shift(path, codec):
        return LineShifts()
    breaks: list[int] = []
    shifts: list[int] = []
    blank = record = shift = 0
    items = _items(path, delimiter, codec)
    try:
        next(items, None)  # the header (DuckDB takes the first line, blank or not)
        for start, is_blank in items:
            if is_blank:
                blank += 1
                continue
            record += 1
            if start - record - 1 != shift:
                shift = start - record - 1
                breaks.append(record)
                shifts.append(shift)
    except csv.Error:
        # A field over the csv module's size limit: keep the breakpoints found so far (the
        # records before it are right); DuckDB reports anything malformed itself.
        pass
    return LineShifts(tuple(breaks), tuple(shifts), blank)


@lru_cache(maxsize=1024)
def _cached_shifts(path: str, size: int, mtime_ns: int, delimiter: str, codec: str) -> LineShifts:
    return _line_shifts(Path(path), delimiter, codec)


def line_shifts(path: Path, *, delimiter: str = ",", codec: str = "utf-8-sig") -> LineShifts:
    """The file's record -> line breakpoints (cached while the file is unchanged: adapters
    build their SQL more than once per run)."""
    stat = os.stat(path)
    return _cached_shifts(str(path), stat.st_size, stat.st_mtime_ns, delimiter, codec)


#: Names the numbering adds; data columns never start with `_sp_`.
_REC, _FROM, _SHIFT = "_sp_rec", "_sp_from", "_sp_shift"


def numbered_scan(scan: str, shifts: LineShifts | None, *, offset: int) -> tuple[str, str, list]:
    """FROM clause, line-number expression and the parameters the FROM clause adds after the
    scan's own, for one file read by `scan` (a table function).

    Without breakpoints this is the scan itself and `row_number() OVER () + offset` (offset 1
    for CSV: header = line 1; 0 for Parquet: row numbers). With them, the record number is
    taken over the scan first (DuckDB keeps the file's order), then the breakpoints are joined
    in (ASOF: the last breakpoint at or before the record).
    """
    if shifts is None or not shifts.breaks:
        return scan, f"row_number() OVER () + {offset}", []
    source = (
        f"(SELECT *, row_number() OVER () AS {_REC} FROM {scan}) AS _sp_numbered "
        f"ASOF LEFT JOIN (SELECT unnest(?::BIGINT[]) AS {_FROM}, "
        f"unnest(?::BIGINT[]) AS {_SHIFT}) AS _sp_breaks "
        f"ON _sp_numbered.{_REC} >= _sp_breaks.{_FROM}"
    )
    line = f"{_REC} + {offset} + coalesce({_SHIFT}, 0)"
    return source, line, [list(shifts.breaks), list(shifts.shifts)]


def physical_line_of_scan_line(csv_file: CsvFile, scan_line: int) -> int | None:
    """The editor line of the line DuckDB names in an error ("CSV Error on Line: N"). DuckDB
    counts the header, records and blank lines, but not line breaks inside quoted fields, so
    after a multi-line field its number is too small. None when the file ends first."""
    if scan_line < 1:
        return None
    if _ascii_compatible(csv_file.codec):
        with _file_bytes(csv_file.path) as data:
            if not _has_quoted_break(data):
                return scan_line
    for n, (start, _) in enumerate(_items(csv_file.path, csv_file.delimiter, csv_file.codec), 1):
        if n == scan_line:
            return start
    return None


@dataclass(frozen=True)
class Undecodable:
    """The first byte of a file that is not valid UTF-8."""

    line: int
    offset: int
    byte: int
    before: str

    def message(self, path: Path | str) -> str:
        hint = " (it looks like Latin-1 or Windows-1252 text)" if self.byte >= 0x80 else ""
        context = f", after {self.before!r}" if self.before else ""
        return (
            f"{path}: line {self.line}: byte 0x{self.byte:02X} at byte offset {self.offset} "
            f"is not UTF-8{context}{hint}. Save the file as UTF-8 (e.g. `iconv -f latin1 "
            f"-t utf-8`, or 'CSV UTF-8' in a spreadsheet) and run again"
        )


def first_undecodable_byte(path: Path) -> Undecodable | None:
    """Where the file stops being valid UTF-8 (line, byte offset), read in chunks; None when
    it is valid throughout."""
    carry = b""
    base = 0  # file offset of carry[0]
    newlines = 0  # line breaks before `base`
    with Path(path).open("rb") as handle:
        while True:
            chunk = handle.read(_CHUNK)
            data = carry + chunk
            final = not chunk
            try:
                _, consumed = codecs.utf_8_decode(data, "strict", final)
            except UnicodeDecodeError as exc:
                line_start = data.rfind(b"\n", 0, exc.start) + 1
                before = data[max(line_start, exc.start - 30) : exc.start]
                return Undecodable(
                    line=newlines + data.count(b"\n", 0, exc.start) + 1,
                    offset=base + exc.start,
                    byte=data[exc.start],
                    before=before.decode("utf-8", "replace").lstrip("\ufeff"),
                )
            if final:
                return None
            newlines += data.count(b"\n", 0, consumed)
            base += consumed
            carry = data[consumed:]
