"""Value rules: a mapping's declared timestamp format, decimal and thousands separators and
currency symbols, turned into the canonical text staging reads (`ValueRules`), and the check
that stops a load when values do not fit their declared type (`check_declared_types`)."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from segment_pipeline.sources.base import DataContractError
from segment_pipeline.sources.data_files import FILE_COL, INDEX_COL, LINE_COL, mcol, sql_literal

__all__ = [
    "SEPARATORS",
    "STAGING_DEC_RE",
    "STAGING_INT_RE",
    "TypedColumn",
    "ValueRules",
    "check_declared_types",
]

#: What staging accepts as text (logic/staging.py TYPED_TRANSACTIONS_SQL).
STAGING_INT_RE = r"[+-]?[0-9]+(\.0*)?"  # staging reads integral decimals as integers
STAGING_DEC_RE = r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)"
_SEPARATOR_RE = {".": r"\.", ",": ",", " ": " ", "'": "'", "_": "_"}
#: The separators a mapping may declare (decimal: `.` or `,`; thousands: any other of these).
SEPARATORS: tuple[str, ...] = tuple(_SEPARATOR_RE)


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
        return _rewrite_or_flag(
            v,
            fits=f"{parsed} IS NOT NULL",
            rewritten=f"CAST({parsed} AS VARCHAR)",
            staging_reads=f"TRY_CAST(trim({v}) AS TIMESTAMP) IS NOT NULL",
            expected=f"timestamp_format {self.timestamp_format}",
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
        return _rewrite_or_flag(
            v,
            fits=fits,
            rewritten=cleaned,
            staging_reads=f"regexp_full_match(trim({v}), {sql_literal(staging_re)})",
            expected=expected,
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


def _rewrite_or_flag(
    v: str, *, fits: str, rewritten: str, staging_reads: str, expected: str
) -> str:
    """SQL: `rewritten` when the value `fits` the declared format; the value with the note
    ` [expected <expected>]` when staging would read it as it is (with a meaning the mapping
    did not declare), so that staging quarantines it; otherwise the value as found."""
    note = sql_literal(f" [expected {expected}]")
    return f"CASE WHEN {fits} THEN {rewritten} WHEN {staging_reads} THEN {v} || {note} ELSE {v} END"


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
