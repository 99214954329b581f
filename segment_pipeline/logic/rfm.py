"""RFM: recency, frequency and monetary value per customer, 1-5 scores, and segments.

Definitions (SPEC section 3; docs/rfm_and_preference.md explains them for analysts):

- The **analysis window** is a range of order dates `[window_start, window_end]`. By default it
  is all history; it can be bounded by dates or by a look-back of N days before `as_of`.
- **as_of** is the day after the last sale line in the window, unless configured. A configured
  as_of also ends the window on the day before it (a line on or after as_of would have a
  negative recency).
- **recency_days** = as_of - date of the customer's last purchase (so >= 1 by default);
  **frequency** = distinct orders; **monetary** = total spend (sum of line amounts, exact
  DECIMAL arithmetic so equal spend is really equal).
- **Scores**: `score = 1 + floor(5 * (rank_min - 1) / n_customers)`, where `rank_min` is SQL
  `rank()` (equal values share the lowest rank of their group) over the value in ascending
  order - for R over recency_days in *descending* order, so the most recent customers get 5.
  Equal values always get equal scores and the result does not depend on row order. With no
  ties every score holds 20% of customers; a large tie (e.g. half the customers have one order)
  all get the score of the tie's lowest rank, so that score holds more than 20%. When every
  customer has the same value (one-day Black Friday data: all recencies equal), everyone gets 1.
- **Segment**: looked up from the (R score, F score) cell in the segment map, a YAML file
  (`segment_pipeline/config/segment_map.yaml` by default) validated by
  :func:`parse_segment_map` before any work is done.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import yaml

# Importing the modules that declare the tables and views these SQL files read registers
# the names their placeholders resolve against (segment_pipeline.sql_files).
from segment_pipeline.logic.staging import STAGED_TRANSACTIONS
from segment_pipeline.sql_files import load_sql
from segment_pipeline.tables import Column, TableDef, replace_rows

# --------------------------------------------------------------------------------------------
# Segment map
# --------------------------------------------------------------------------------------------

#: The ten segment names a map may use, in the default display order.
SEGMENT_NAMES: tuple[str, ...] = (
    "Champions",
    "Loyal Customers",
    "Potential Loyalists",
    "New Customers",
    "Promising",
    "Need Attention",
    "About To Sleep",
    "At Risk",
    "Can't Lose Them",
    "Hibernating",
)

SCORES: tuple[int, ...] = (1, 2, 3, 4, 5)
ALL_CELLS: tuple[tuple[int, int], ...] = tuple((r, f) for r in SCORES for f in SCORES)

#: The packaged default map (the SPEC's R x F grid).
DEFAULT_SEGMENT_MAP_RESOURCE = ("segment_pipeline", "config/segment_map.yaml")

_ENTRY_KEYS = {"name", "r", "f", "cells"}
_TOP_LEVEL_KEYS = {"segments", "description"}


class SegmentMapError(ValueError):
    """A segment map that does not assign every R x F cell to exactly one known segment."""


@dataclass(frozen=True)
class SegmentMap:
    """A validated R x F -> segment map. `segments` is the display order."""

    segments: tuple[str, ...]
    cells: Mapping[tuple[int, int], str]

    def segment_of(self, r_score: int, f_score: int) -> str:
        return self.cells[(r_score, f_score)]

    def sql_params(self) -> dict[str, list[Any]]:
        """The map as three parallel lists for the `$map_*` parameters of the RFM SQL, plus
        `$segments` (display order)."""
        cells = sorted(self.cells.items())
        return {
            "map_r": [rf[0] for rf, _ in cells],
            "map_f": [rf[1] for rf, _ in cells],
            "map_segment": [name for _, name in cells],
            "segments": list(self.segments),
        }

    def segments_param(self) -> dict[str, list[str]]:
        """`$segments` alone (DuckDB refuses unused named parameters)."""
        return {"segments": list(self.segments)}

    def grid_frame(self) -> pd.DataFrame:
        """The map as an R (rows, 5 first) x F (columns) table, for metadata and docs."""
        return pd.DataFrame(
            [[f"R{r}", *(self.cells[(r, f)] for f in SCORES)] for r in reversed(SCORES)],
            columns=["R \\ F", *(f"F{f}" for f in SCORES)],
        )


class _StrictLoader(yaml.SafeLoader):
    """A YAML loader that refuses duplicate keys (PyYAML silently keeps the last one, which
    would hide a cell listed twice)."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise SegmentMapError(f"duplicate key {key!r} at line {key_node.start_mark.line + 1}")
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _is_score(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 5


def _score_list(value: object, what: str, problems: list[str]) -> list[int]:
    if not isinstance(value, list) or not value:
        problems.append(f"{what} must be a non-empty list of scores 1-5, got {value!r}")
        return []
    bad = [v for v in value if not _is_score(v)]
    if bad:
        problems.append(f"{what} has scores outside 1-5 (or not whole numbers): {bad!r}")
    return [v for v in value if _is_score(v)]


def parse_segment_map(data: object, source: str = "segment map") -> SegmentMap:
    """Validate a parsed segment map (the YAML's structure) and return it.

    Rejects, listing every problem at once: a structure that is not `segments: [...]`, an
    entry with a missing, empty, unknown or repeated segment name, unknown keys, scores that
    are not whole numbers 1-5, a cell covered more than once, and any of the 25 cells not
    covered.
    """
    problems: list[str] = []
    if not isinstance(data, dict):
        raise SegmentMapError(
            f"Invalid segment map ({source}): expected a mapping with a `segments` list, "
            f"got {type(data).__name__}"
        )
    unknown_top = sorted(set(map(str, data)) - _TOP_LEVEL_KEYS)
    if unknown_top:
        problems.append(f"unknown top-level keys {unknown_top} (allowed: segments, description)")
    entries = data.get("segments")
    if not isinstance(entries, list) or not entries:
        problems.append("`segments` must be a non-empty list of {name, r, f | cells} entries")
        entries = []

    order: list[str] = []
    covered: dict[tuple[int, int], list[str]] = {}
    for i, entry in enumerate(entries, start=1):
        label = f"entry {i}"
        if not isinstance(entry, dict):
            problems.append(f"{label} must be a mapping with name and r/f or cells, got {entry!r}")
            continue
        name = entry.get("name")
        if not isinstance(name, str) or not name.strip():
            problems.append(f"{label} has a missing or empty segment name")
            name = None
        elif name not in SEGMENT_NAMES:
            close = difflib.get_close_matches(name, SEGMENT_NAMES, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(
                f"{label} has unknown segment name {name!r}{hint}; allowed: "
                + ", ".join(SEGMENT_NAMES)
            )
            name = None
        else:
            label = f"{label} ({name})"
            if name in order:
                problems.append(f"{label}: segment listed twice; put all its cells in one entry")
            else:
                order.append(name)
        extra = sorted(set(map(str, entry)) - _ENTRY_KEYS)
        if extra:
            problems.append(f"{label} has unknown keys {extra} (allowed: name, r, f, cells)")

        cells: list[tuple[int, int]] = []
        has_r, has_f = "r" in entry, "f" in entry
        if has_r != has_f:
            problems.append(f"{label} needs both `r` and `f` (or use `cells`)")
        elif has_r:
            rs = _score_list(entry["r"], f"{label} r", problems)
            fs = _score_list(entry["f"], f"{label} f", problems)
            cells.extend((r, f) for r in rs for f in fs)
        if "cells" in entry:
            listed = entry["cells"]
            if not isinstance(listed, list) or not listed:
                problems.append(f"{label} cells must be a non-empty list of [r, f] pairs")
            else:
                for cell in listed:
                    if (
                        isinstance(cell, list)
                        and len(cell) == 2
                        and all(_is_score(v) for v in cell)
                    ):
                        cells.append((cell[0], cell[1]))
                    else:
                        problems.append(
                            f"{label} cell {cell!r} is not an [r, f] pair of scores 1-5"
                        )
        if not has_r and not has_f and "cells" not in entry:
            problems.append(f"{label} covers no cells (give r and f, or cells)")
        for cell in cells:
            covered.setdefault(cell, []).append(name or f"entry {i}")

    for (r, f), names in sorted(covered.items()):
        if len(names) > 1:
            problems.append(f"cell R{r}F{f} is covered {len(names)} times ({', '.join(names)})")
    missing = [f"R{r}F{f}" for r, f in ALL_CELLS if (r, f) not in covered]
    if missing:
        problems.append(f"cells not covered by any segment: {', '.join(missing)}")
    if problems:
        raise SegmentMapError(
            f"Invalid segment map ({source}):\n" + "\n".join(f"  - {p}" for p in problems)
        )
    return SegmentMap(
        segments=tuple(order),
        cells={cell: names[0] for cell, names in sorted(covered.items())},
    )


def load_segment_map(path: str | Path | None = None) -> SegmentMap:
    """Read and validate a segment map YAML (`None`: the packaged default grid)."""
    if path is None:
        package, name = DEFAULT_SEGMENT_MAP_RESOURCE
        text = resources.files(package).joinpath(name).read_text(encoding="utf-8")
        source = f"packaged default {name}"
    else:
        file = Path(path)
        source = str(file)
        if not file.is_file():
            raise SegmentMapError(f"Segment map file not found: {file}")
        text = file.read_text(encoding="utf-8")
    return _segment_map_from_text(text, source)


@functools.lru_cache(maxsize=16)
def _segment_map_from_text(text: str, source: str) -> SegmentMap:
    """Parse and validate a map's text (cached by its text: every step of a run asks for the
    map, and pure-Python YAML parsing cost about 8 ms each time; a changed file is new text)."""
    try:
        data = yaml.load(text, Loader=_StrictLoader)
    except SegmentMapError as exc:
        raise SegmentMapError(f"Invalid segment map ({source}): {exc}") from None
    except yaml.YAMLError as exc:
        raise SegmentMapError(f"Segment map {source} is not valid YAML: {exc}") from None
    return parse_segment_map(data, source)


# --------------------------------------------------------------------------------------------
# Analysis window
# --------------------------------------------------------------------------------------------


class RfmWindowError(ValueError):
    """The configured window holds no sale lines (or is inconsistent)."""


@dataclass(frozen=True)
class RfmWindow:
    """The order dates analysed (inclusive) and the reference date for recency."""

    start: date
    end: date
    as_of: date

    def sql_params(self) -> dict[str, date]:
        """`$window_start`, `$window_end` and `$as_of`."""
        return {**self.range_params(), "as_of": self.as_of}

    def range_params(self) -> dict[str, date]:
        """`$window_start` and `$window_end` alone (DuckDB refuses unused named parameters)."""
        return {"window_start": self.start, "window_end": self.end}


# sql/rfm/line_dates.sql: first and last sale line day and the lines between $lo and $hi
# (either may be NULL); window_lines.sql: the lines in the window. `lines_table`: the sale
# lines (staging.transactions, or the monthly snapshots' copy of them).


def resolve_window(
    conn: duckdb.DuckDBPyConnection,
    *,
    window_start: date | None = None,
    window_end: date | None = None,
    as_of: date | None = None,
    lookback_days: int | None = None,
    lines_table: str = STAGED_TRANSACTIONS.fqn,
) -> RfmWindow:
    """The effective window for the configured bounds (see the module docstring), from the
    sale lines of `lines_table` (a copy of them, for the monthly snapshots).

    - upper bound = window_end and/or the day before a configured as_of (the earlier one);
    - as_of = configured, else the day after the last sale line up to that bound (and on or
      after window_start);
    - window_end = the upper bound, else the day before as_of;
    - window_start = window_start and/or as_of - lookback_days (the later one), else the first
      sale line's date.
    """
    if lookback_days is not None and lookback_days < 1:
        raise RfmWindowError(f"lookback_days must be >= 1, got {lookback_days}")
    upper_candidates = [d for d in (window_end, as_of and as_of - timedelta(days=1)) if d]
    upper = min(upper_candidates) if upper_candidates else None
    if window_start and upper and window_start > upper:
        raise RfmWindowError(
            f"the RFM window is empty: window_start {window_start} is after its end {upper}"
        )
    first, last, n = conn.execute(
        load_sql("rfm/line_dates", lines_table=lines_table),
        {"lo": window_start, "hi": upper},
    ).fetchall()[0]
    if not n:
        raise RfmWindowError(
            "no staged sale lines in the RFM window "
            f"({window_start or 'first day'} .. {upper or 'last day'}); materialize staging "
            "first or widen the window"
        )
    resolved_as_of = as_of or last + timedelta(days=1)
    end = upper or resolved_as_of - timedelta(days=1)
    starts = [
        d
        for d in (window_start, lookback_days and resolved_as_of - timedelta(days=lookback_days))
        if d
    ]
    start = max(starts) if starts else first
    window = RfmWindow(start=start, end=end, as_of=resolved_as_of)
    count = conn.execute(
        load_sql("rfm/window_lines", lines_table=lines_table),
        {"window_start": window.start, "window_end": window.end},
    ).fetchall()[0][0]
    if not count:
        raise RfmWindowError(
            f"no staged sale lines in the RFM window {window.start} .. {window.end} "
            f"(as_of {window.as_of})"
        )
    return window


# --------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------

RFM_CUSTOMER_SEGMENTS = TableDef(
    schema="marts",
    name="rfm_customer_segments",
    description="One row per customer with a sale in the window: R, F, M values and 1-5 scores, "
    "the R x F cell and the segment it maps to.",
    columns=(
        Column("customer_id", "VARCHAR", "Customer id", nullable=False),
        Column("first_purchase_date", "DATE", "Date of the customer's first order in the window"),
        Column("last_purchase_date", "DATE", "Date of the customer's last order in the window"),
        Column("recency_days", "INTEGER", "as_of - last_purchase_date, in days", nullable=False),
        Column("frequency", "BIGINT", "Distinct orders in the window", nullable=False),
        Column(
            "monetary",
            # A line fits DECIMAL(18,4); a customer's sum of lines needs the widest decimal.
            "DECIMAL(38,4)",
            "Total spend in the window (sum of line amounts)",
            nullable=False,
        ),
        Column(
            "r_score",
            "INTEGER",
            "Recency score 1-5 (5 = most recent); ties share a score",
            nullable=False,
        ),
        Column("f_score", "INTEGER", "Frequency score 1-5 (5 = most orders)", nullable=False),
        Column("m_score", "INTEGER", "Monetary score 1-5 (5 = highest spend)", nullable=False),
        Column("rf_cell", "VARCHAR", "The R x F cell, e.g. R5F4", nullable=False),
        Column("rfm_code", "VARCHAR", "R, F and M scores as one code, e.g. 543", nullable=False),
        Column("segment", "VARCHAR", "Segment of the rf_cell in the segment map", nullable=False),
        Column(
            "segment_order",
            "INTEGER",
            "Display position of the segment (1 = first)",
            nullable=False,
        ),
        Column("as_of", "DATE", "Reference date for recency", nullable=False),
        Column("window_start", "DATE", "First order date analysed", nullable=False),
        Column("window_end", "DATE", "Last order date analysed", nullable=False),
    ),
    primary_key=("customer_id",),
)

RFM_SUMMARY = TableDef(
    schema="marts",
    name="rfm_summary",
    description="One row per segment of the map (empty segments included): customers, their "
    "share, mean and median R/F/M values, revenue, revenue share and average order value.",
    columns=(
        Column("segment_order", "INTEGER", "Display position of the segment", nullable=False),
        Column("segment", "VARCHAR", "Segment name", nullable=False),
        Column("customers", "BIGINT", "Customers in the segment", nullable=False),
        Column("customer_share", "DOUBLE", "customers / all customers (sums to 1)"),
        Column("mean_recency_days", "DOUBLE", "Mean recency in days"),
        Column("median_recency_days", "DOUBLE", "Median recency in days"),
        Column("mean_frequency", "DOUBLE", "Mean orders per customer"),
        Column("median_frequency", "DOUBLE", "Median orders per customer"),
        Column("mean_monetary", "DOUBLE", "Mean spend per customer"),
        Column("median_monetary", "DOUBLE", "Median spend per customer"),
        Column("mean_r_score", "DOUBLE", "Mean R score"),
        Column("mean_f_score", "DOUBLE", "Mean F score"),
        Column("mean_m_score", "DOUBLE", "Mean M score"),
        Column("orders", "BIGINT", "Distinct orders of the segment's customers", nullable=False),
        Column("revenue", "DOUBLE", "Total spend of the segment's customers", nullable=False),
        Column("revenue_share", "DOUBLE", "revenue / all revenue (sums to 1)"),
        Column("aov", "DOUBLE", "Average order value = revenue / orders"),
    ),
    primary_key=("segment",),
)

# --------------------------------------------------------------------------------------------
# SQL (named parameters: $window_start, $window_end, $as_of, $map_r, $map_f, $map_segment,
# $segments - see RfmWindow.sql_params and SegmentMap.sql_params)
# --------------------------------------------------------------------------------------------


def rfm_scoring_ctes(partition_by: str | None = None) -> str:
    """The CTEs `ranked`, `scored` and `segment_map` that turn `valued` (per customer:
    recency_days, frequency, monetary, n_customers) into R, F, M scores 1-5 and the map's
    cells: the one definition of scoring, used as is by this layer and with
    `PARTITION BY snapshot_month` by the monthly snapshots."""
    # The one thing that differs between the two users: the window's PARTITION BY.
    partition = f"PARTITION BY {partition_by}" if partition_by else ""
    return load_sql("rfm/_scoring_ctes", partition_by=partition)


RFM_CUSTOMER_SEGMENTS_SQL = load_sql("rfm/customer_segments", scoring_ctes=rfm_scoring_ctes())

#: The summary's rows; it reads the distinct orders per segment from `_rfm_segment_orders`,
#: which :func:`replace_rfm_summary` computes first (RFM_SEGMENT_ORDERS_SQL).
RFM_SUMMARY_SQL = load_sql("rfm/summary")

#: Distinct orders per segment in its customers' windows (a statement apart: memory).
RFM_SEGMENT_ORDERS_SQL = load_sql("rfm/segment_orders")


def replace_rfm_summary(
    conn: duckdb.DuckDBPyConnection, segments_param: Mapping[str, object]
) -> int:
    """Replace marts.rfm_summary (`segments_param`: the segment map's `segments_param()`):
    the distinct orders per segment first, into a temporary table, then the summary. In one
    statement the two ran out of the default memory limit at 100M lines."""
    conn.execute(f"CREATE OR REPLACE TEMP TABLE _rfm_segment_orders AS {RFM_SEGMENT_ORDERS_SQL}")
    try:
        return replace_rows(conn, RFM_SUMMARY, RFM_SUMMARY_SQL, segments_param)
    finally:
        conn.execute("DROP TABLE IF EXISTS _rfm_segment_orders")


#: Check: customers in the window's sale lines vs rows, distinct customers, rows without a
#: segment of the map. Parameters: the window and $segments.
RFM_SEGMENT_COVERAGE_SQL = load_sql("rfm/segment_coverage")

#: The window recorded by the last RFM build (downstream tables use exactly this window).
RFM_WINDOW_SQL = load_sql("rfm/window")


def read_window(conn: duckdb.DuckDBPyConnection) -> RfmWindow:
    """The window of the current `marts.rfm_customer_segments` (one window by construction)."""
    rows = conn.execute(RFM_WINDOW_SQL).fetchall()
    if len(rows) != 1:
        raise RfmWindowError(f"marts.rfm_customer_segments holds {len(rows)} windows; rebuild it")
    start, end, as_of = rows[0]
    return RfmWindow(start=start, end=end, as_of=as_of)


def rfm_params(window: RfmWindow, segment_map: SegmentMap) -> dict[str, Any]:
    """Named parameters for RFM_CUSTOMER_SEGMENTS_SQL."""
    return {**window.sql_params(), **segment_map.sql_params()}


#: Customers per (R, F) cell, for rf_grid_counts.
RF_CELL_COUNTS_SQL = load_sql("rfm/rf_cell_counts")

#: Customers per segment of rfm_customer_segments, in segment order.
CUSTOMERS_PER_SEGMENT_SQL = load_sql("rfm/customers_per_segment")

#: Check of rfm_summary: customer and revenue share sums, its customers, and the rows of
#: rfm_customer_segments.
RFM_SUMMARY_TOTALS_SQL = load_sql("rfm/summary_totals")


def rf_grid_counts(cell_counts: pd.DataFrame) -> pd.DataFrame:
    """Customers per R x F cell as a grid (R5 on top, empty cells 0), for the UI.

    `cell_counts`: columns r_score, f_score, customers (RF_CELL_COUNTS_SQL), so only 25 rows
    ever leave DuckDB however many customers there are.
    """
    counts = (
        cell_counts.set_index(["r_score", "f_score"])["customers"]
        .reindex(pd.MultiIndex.from_tuples(ALL_CELLS, names=["r_score", "f_score"]), fill_value=0)
        .unstack("f_score")
        .sort_index(ascending=False)
    )
    counts.columns = [f"F{f}" for f in counts.columns]
    counts.insert(0, "R \\ F", [f"R{r}" for r in counts.index])
    return counts.reset_index(drop=True)
