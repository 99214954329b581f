"""Text encodings of CSV inputs: which ones a mapping may declare, how each is read, and where a
file stops being valid in its encoding.

DuckDB's CSV reader decodes UTF-8 (skipping a BOM), little-endian UTF-16 and Latin-1 itself;
those files are read by DuckDB directly. Other encodings need DuckDB's `encodings` extension,
which is downloaded on first use (so not available offline). Files in those encodings, and
big-endian UTF-16 (which DuckDB 2.0 reads as zero rows, silently), are first transcoded by
Python to a UTF-8 copy: streamed in 1 MiB chunks, made once per file version and process, kept
in one temporary folder (under TMPDIR) that is deleted when the process exits.

An undecodable byte is reported with the file, the physical line (1-based, as an editor counts
lines), the byte offset within the file (from 0) and the byte's value. For files DuckDB reads
itself this costs nothing until DuckDB fails: only then is the file scanned to locate the byte
(`explain_read_error`).
"""

from __future__ import annotations

import atexit
import codecs
import io
import itertools
import re
import shutil
import tempfile
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from segment_pipeline.sources.base import DataContractError

CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class Encoding:
    """One accepted encoding: its name in mappings and messages, the Python codec reading it,
    and DuckDB's name for it when DuckDB reads it natively (None: transcoded to UTF-8 first)."""

    name: str
    codec: str
    duckdb: str | None
    #: Characters the codec decodes but DuckDB refuses (Latin-1's C1 controls 0x80-0x9F, which
    #: in practice mean the file is Windows-1252).
    refused: str | None = None


ENCODINGS: dict[str, Encoding] = {
    e.name: e
    for e in (
        Encoding("utf-8", "utf-8", "utf-8"),
        Encoding("utf-16", "utf-16-le", "utf-16"),
        Encoding("latin-1", "latin-1", "latin-1", refused="[\x80-\x9f]"),
        Encoding("cp1252", "cp1252", None),
        Encoding("cp949", "cp949", None),
        Encoding("euc-kr", "euc_kr", None),
    )
}

#: Python's canonical codec name (`codecs.lookup(x).name`) -> the accepted encoding.
_BY_CODEC: dict[str, str] = {
    "utf-8": "utf-8",
    "utf-8-sig": "utf-8",
    "utf-16": "utf-16",
    "iso8859-1": "latin-1",
    "cp1252": "cp1252",
    "cp949": "cp949",
    "euc_kr": "euc-kr",
}

ACCEPTED_ENCODINGS = (
    "utf-8 (default; a BOM is fine), utf-16 (a BOM tells the byte order), "
    "latin-1 (iso-8859-1), cp1252 (windows-1252), cp949, euc-kr"
)


def normalise_encoding(value: object) -> str | None:
    """The accepted encoding a mapping value names (any alias Python knows, any case:
    `Windows-1252` -> `cp1252`, `UTF8` -> `utf-8`, `latin1` -> `latin-1`), or None."""
    try:
        name = codecs.lookup(str(value).strip()).name
    except LookupError:
        return None
    return _BY_CODEC.get(name)


# --------------------------------------------------------------------------------------------
# Decoding as a stream, and where it fails
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Undecodable:
    """The first place a file is not valid in its declared encoding."""

    path: Path
    encoding: str
    line: int  # physical line, 1-based
    offset: int  # byte offset within the file, 0-based
    found: bytes  # the byte(s) that cannot be decoded
    utf16_bom: bool = False  # the file starts with a UTF-16 byte-order mark

    def message(self, advice: str) -> str:
        value = " ".join(f"0x{b:02X}" for b in self.found)
        noun = "byte" if len(self.found) == 1 else "bytes"
        return (
            f"{self.path}: line {self.line}, byte offset {self.offset}: {noun} {value} "
            f"cannot be read as {self.encoding}{self._hint()}. {advice}"
        )

    def _hint(self) -> str:
        if self.utf16_bom and self.encoding != "utf-16":
            return " (the file starts with a UTF-16 byte-order mark: it is UTF-16)"
        first = self.found[:1]
        if self.encoding in ("utf-8", "latin-1") and first and 0x80 <= first[0] <= 0x9F:
            try:
                char = first.decode("cp1252")
            except UnicodeDecodeError:
                return ""
            return f" (in cp1252, the Windows encoding, 0x{first[0]:02X} is {char!r})"
        if self.encoding == "euc-kr":
            return " (cp949, Windows' Korean encoding, is a superset of euc-kr)"
        return ""


class _Stop(Exception):
    def __init__(self, where: Undecodable) -> None:
        super().__init__(str(where))
        self.where = where


def _byte_order(head: bytes, encoding: Encoding) -> tuple[int, str]:
    """(BOM length, Python codec for the rest of the file)."""
    if encoding.name == "utf-8" and head.startswith(codecs.BOM_UTF8):
        return len(codecs.BOM_UTF8), "utf-8"
    if encoding.name == "utf-16":
        if head.startswith(codecs.BOM_UTF16_LE):
            return 2, "utf-16-le"
        if head.startswith(codecs.BOM_UTF16_BE):
            return 2, "utf-16-be"
    return 0, encoding.codec


def open_text(path: Path, encoding: str) -> TextIO:
    """`path` opened as text in `encoding` (after its BOM, if any), for the csv module."""
    handle = path.open("rb")
    try:
        skip, codec = _byte_order(handle.read(4), ENCODINGS[encoding])
        handle.seek(skip)
        return io.TextIOWrapper(handle, encoding=codec, newline="")
    except BaseException:
        handle.close()
        raise


def is_big_endian_utf16(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(2) == codecs.BOM_UTF16_BE


def _decoded(path: Path, encoding: Encoding) -> Iterator[str]:
    """The file's text in chunks (without a BOM); raises _Stop at the first undecodable byte.
    Reads CHUNK_BYTES at a time, so memory does not grow with the file."""
    refused = re.compile(encoding.refused) if encoding.refused else None
    with path.open("rb") as handle:
        head = handle.read(4)
        skip, codec = _byte_order(head, encoding)
        utf16_bom = head[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
        handle.seek(skip)
        decoder = codecs.getincrementaldecoder(codec)(errors="strict")
        position, newlines = skip, 0  # file offset of the next chunk; '\n' seen so far

        def stop(start: int, found: bytes, before: str) -> _Stop:
            line = newlines + before.count("\n") + 1
            return _Stop(Undecodable(path, encoding.name, line, start, found, utf16_bom))

        while True:
            chunk = handle.read(CHUNK_BYTES)
            pending = decoder.getstate()[0]
            try:
                text = decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError:
                # Decode the bytes held back plus this chunk in one go: the error's position is
                # then relative to a known file offset.
                data = pending + chunk
                base = position - len(pending)
                try:
                    data.decode(codec)
                except UnicodeDecodeError as exc:
                    before = data[: exc.start].decode(codec)
                    raise stop(base + exc.start, data[exc.start : exc.end], before) from None
                raise  # pragma: no cover - the incremental and one-shot decoders disagree
            if refused is not None and (bad := refused.search(text)):
                # Only single-byte encodings refuse characters: one character = one byte.
                start = bad.start()
                raise stop(position + start, chunk[start : start + 1], text[:start])
            if text:
                yield text
            if not chunk:
                return
            newlines += text.count("\n")
            position += len(chunk)


def find_undecodable(path: Path, encoding: str) -> Undecodable | None:
    """The first byte of `path` that is not valid in `encoding`, or None (reads the whole
    file in chunks)."""
    try:
        for _ in _decoded(path, ENCODINGS[encoding]):
            pass
    except _Stop as stop:
        return stop.where
    return None


#: DuckDB's messages for a file that is not in the encoding it was told.
_DUCKDB_DECODE_ERROR = re.compile(r"Invalid unicode|is not [\w-]+ encoded", re.IGNORECASE)
_DUCKDB_FILE = re.compile(r"^\s*file = (.+)$", re.MULTILINE)


def explain_read_error(
    error: BaseException, candidates: Iterable[Path], encoding: str, advice: str
) -> str | None:
    """A clearer message for DuckDB's `error` reading CSV files, or None (keep DuckDB's).

    - A file not in `encoding`: the file, line, byte offset and byte, and `advice` (the file
      DuckDB names, else the first of `candidates` with an undecodable byte).
    - Any other error in a UTF-8 copy: the original file is named instead of the copy.
    """
    text = str(error)
    named = _DUCKDB_FILE.search(text)
    named_path = Path(named.group(1).strip()) if named else None
    if not _DUCKDB_DECODE_ERROR.search(text):
        original = _COPIES.original(named_path) if named_path else None
        if original is None:
            return None
        reason = " | ".join(text.replace(str(named_path), str(original)).splitlines()[:2])
        return f"{original}: could not be read: {reason}"
    paths = [named_path] if named_path else list(candidates)
    for path in paths:
        if path.suffix.lower() != ".csv" or not path.is_file():
            continue
        found = find_undecodable(path, encoding)
        if found is not None:
            return found.message(advice)
    return None


def header_decode_error(path: Path, encoding: str, advice: str) -> DataContractError:
    """The error for a header line that cannot be decoded (located like any other byte)."""
    found = find_undecodable(path, encoding)
    if found is None:  # pragma: no cover - Python's header read and the scan disagree
        return DataContractError(f"{path}: the header line cannot be read as {encoding}. {advice}")
    return DataContractError(found.message(advice))


# --------------------------------------------------------------------------------------------
# UTF-8 copies of files DuckDB cannot decode itself
# --------------------------------------------------------------------------------------------


class _Copies:
    """UTF-8 copies by (file, encoding), remade when the file changes (size or mtime); one
    temporary folder per process, deleted at exit."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.folder: Path | None = None
        self.made: dict[tuple[Path, str], tuple[tuple[int, int], Path]] = {}
        self.numbers = itertools.count(1)

    def get(self, path: Path, encoding: Encoding, advice: str) -> Path:
        key = (path.resolve(), encoding.name)
        stat = path.stat()
        version = (stat.st_size, stat.st_mtime_ns)
        with self.lock:
            known = self.made.pop(key, None)
            if known is not None:
                if known[0] == version and known[1].is_file():
                    self.made[key] = known
                    return known[1]
                known[1].unlink(missing_ok=True)
            if self.folder is None:
                self.folder = Path(tempfile.mkdtemp(prefix="segment-pipeline-utf8-"))
                atexit.register(shutil.rmtree, self.folder, ignore_errors=True)
            target = self.folder / f"{next(self.numbers)}-{path.stem}.csv"
            _transcode(path, encoding, target, advice)
            self.made[key] = (version, target)
            return target

    def original(self, copy: Path) -> Path | None:
        """The file `copy` is a UTF-8 copy of, or None."""
        with self.lock:
            return next((key[0] for key, (_, made) in self.made.items() if made == copy), None)


_COPIES = _Copies()


def _transcode(path: Path, encoding: Encoding, target: Path, advice: str) -> None:
    try:
        with target.open("wb") as out:
            for text in _decoded(path, encoding):
                out.write(text.encode("utf-8"))
    except _Stop as stop:
        target.unlink(missing_ok=True)
        raise DataContractError(stop.where.message(advice)) from None
    except BaseException:
        target.unlink(missing_ok=True)
        raise


def csv_input(path: Path, encoding: str, advice: str) -> tuple[Path, str]:
    """(the file DuckDB should read, the encoding to tell it): `path` itself when DuckDB
    decodes `encoding`, else a UTF-8 copy (DataContractError at an undecodable byte)."""
    spec = ENCODINGS[encoding]
    if spec.duckdb is not None and not (encoding == "utf-16" and is_big_endian_utf16(path)):
        return path, spec.duckdb
    return _COPIES.get(path, spec, advice), "utf-8"


__all__ = [
    "ACCEPTED_ENCODINGS",
    "ENCODINGS",
    "Encoding",
    "Undecodable",
    "csv_input",
    "explain_read_error",
    "find_undecodable",
    "header_decode_error",
    "normalise_encoding",
    "open_text",
]
