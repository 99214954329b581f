"""The latest month of customer_snapshots updated by a new day, instead of recomputed.

A one-month run (the schedule's and the sensor's daily run) computes its month with the RFM
and behaviour layers' own SQL over every line up to the month's end (`compute_snapshot`):
about 1.3 s at 745k lines and 12 s at 10M, the largest step of a new day. Most of that month
does not change with the day. Its as_of is the day after the month, the same all month long,
so a customer without a line on the new day has the same lines, the same RFM values and
recency, the same profile and the same month's orders as before; only the scores (ranks over
every customer of the month) and, when a category changes tier or an occupation changes
group, the behaviour columns can move for them.

So when the run's month is the data's latest, and the stored month was computed from staged
days that are all still as they were (their digests, `behaviour_day_digests.sql`), from the
same masters and code, and its window, occupation groups and category tiers are still those
of every line, the month is updated: the new days' customers are recomputed with the layers'
own SQL over their own lines (`compute_snapshot` on a copy of their lines, with the window
and lookups of every line), the other customers' rows are kept, and every customer of the
month is scored again with the RFM layer's scoring (`rescored_month.sql`). Anything else
(a corrected or missing day, a restaged master, another window, a re-tiered category, a
regrouped occupation, a month that is not the latest, no record) computes the month
directly, as before.

The record (`marts.customer_snapshot_inputs`, written in the snapshots' transaction) says
which days, with which digests, the latest month was computed from, and how many updates
have followed its last direct computation. After MAX_UPDATES_BETWEEN_DIRECT updates the
month is computed directly again: the blocking check `matches_as_of_recomputation` then
compares it, as every directly computed month, with the layers' own SQL in full. An update
recomputes, besides its new days' customers, a seeded sample of the kept ones
(`sampled_kept_customers.sql`): their rows must equal their stored rows in every column but
the scores (`sample_differences.sql`), and the stored month must equal what the update
computed; the check fails otherwise.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date

import duckdb
import pandas as pd

from segment_pipeline.logic.behaviour import (
    BEHAVIOUR_DAY_DIGESTS_SQL,
    OCCUPATION_STATS_SQL,
    assign_occupation_groups,
    assign_price_segments,
    category_stats,
)
from segment_pipeline.logic.dynamics import (
    CATEGORY_TIER_SNAPSHOTS,
    CUSTOMER_SNAPSHOTS,
    LAST_LINE_DATE_SQL,
    LINES_TABLE,
    SnapshotMonth,
    WindowSettings,
    compute_snapshot,
    create_snapshot_temp,
    month_end,
    snapshot_as_of,
)
from segment_pipeline.logic.memory import scratch_table
from segment_pipeline.logic.rfm import (
    RfmWindow,
    RfmWindowError,
    SegmentMap,
    resolve_window,
    rfm_scoring_ctes,
)
from segment_pipeline.logic.staging import STAGED_TRANSACTIONS, code_digest
from segment_pipeline.sql_files import load_sql
from segment_pipeline.tables import Column, TableDef, ensure_table, insert_record_rows, scalar

#: Updates of a month in a row before it is computed directly (and checked in full) again:
#: a month's state is never carried over more than this many new days unchecked in full.
MAX_UPDATES_BETWEEN_DIRECT = 6

#: Kept customers a month updated by a new day recomputes for its check, besides the new
#: days' customers.
CHECK_SAMPLE_CUSTOMERS = 500

SNAPSHOT_INPUTS = TableDef(
    schema="marts",
    name="customer_snapshot_inputs",
    description="What the latest month of customer_snapshots was computed from: one row per "
    "staged day with its digest, the digest of the masters, code and settings, the rows "
    "written and the updates since the month was last computed directly. A one-month run "
    "updates the month by its new days when all of it still holds (logic/snapshot_update.py).",
    columns=(
        Column("snapshot_month", "DATE", "The month the record describes", nullable=False),
        Column("partition_date", "DATE", "A staged day the month was computed from", False),
        Column("digest", "VARCHAR", "Lines and line-hash sum of that day's sale lines", False),
        Column(
            "settings_digest",
            "VARCHAR",
            "Digest of the masters' stagings, the code, the window and the settings",
            nullable=False,
        ),
        Column("rows_written", "BIGINT", "The month's customer rows after the write", False),
        Column(
            "updates_since_direct",
            "INTEGER",
            "New days applied as updates since the month was last computed directly",
            nullable=False,
        ),
        Column("computed_at", "TIMESTAMP", "When the month was written (UTC)", nullable=False),
    ),
    primary_key=("snapshot_month", "partition_date"),
)

SNAPSHOT_MASTERS_STATE_SQL = load_sql("dynamics/snapshot_masters_state")
NEW_DAY_CUSTOMERS_SQL = load_sql("dynamics/new_day_customers")

#: The temp tables of an update: the customers recomputed, and their rows.
CUSTOMERS_TEMP = "_update_customers"
RECOMPUTED_TEMP = "_update_recomputed"

#: The columns the RFM layer's scoring gives (rfm_scoring_ctes' `cells`): `rescored_month.sql`
#: takes them from its scoring, every other column as it is.
_SCORED = ("r_score", "f_score", "m_score", "rf_cell", "rfm_code", "segment", "segment_order")
RESCORED_MONTH_SQL = load_sql(
    "dynamics/rescored_month",
    recomputed=RECOMPUTED_TEMP,
    customers=CUSTOMERS_TEMP,
    scoring_ctes=rfm_scoring_ctes(),
    scored_columns=", ".join(_SCORED),
    columns=", ".join(CUSTOMER_SNAPSHOTS.column_names),
)
SAMPLED_KEPT_CUSTOMERS_SQL = load_sql("dynamics/sampled_kept_customers", customers=CUSTOMERS_TEMP)
#: The sale lines up to `$last_day` of the customers of CUSTOMERS_TEMP, with the columns of
#: the snapshots' copy (stage_lines.sql), filtered before the joins to the masters.
UPDATE_LINES_SQL = load_sql(
    "dynamics/update_lines",
    update_customer_lines=load_sql("behaviour/changed_customer_lines", customers=CUSTOMERS_TEMP),
)
#: The sampled kept customers recomputed, and those whose row differs from the stored one in
#: a column that does not depend on the other customers (every column but the scores).
SAMPLE_DIFFERENCES_SQL = load_sql(
    "dynamics/sample_differences",
    recomputed=RECOMPUTED_TEMP,
    customers=CUSTOMERS_TEMP,
    columns=", ".join(c for c in CUSTOMER_SNAPSHOTS.column_names if c not in _SCORED),
)
#: A month's stored record, and its stored rows.
STORED_RECORD_SQL = (
    "SELECT partition_date, digest, settings_digest, rows_written, updates_since_direct "
    f"FROM {SNAPSHOT_INPUTS.fqn} WHERE snapshot_month = ?"
)
MONTH_ROWS_SQL = f"SELECT count(*) FROM {CUSTOMER_SNAPSHOTS.fqn} WHERE snapshot_month = ?"


@dataclass(frozen=True)
class MonthUpdate:
    """What :func:`update_latest_month` did: `month` is None when the month must be computed
    directly (`reason` says why); otherwise `new_days`, the new days' `recomputed` customers,
    and the kept customers recomputed for the check (`sample_checked`) with those whose row
    differed from the stored one (`sample_differing`: 0 when the kept rows are right)."""

    month: SnapshotMonth | None
    reason: str = ""
    new_days: int = 0
    recomputed: int = 0
    updates_since_direct: int = 0
    sample_checked: int = 0
    sample_differing: int = 0


def day_digests(conn: duckdb.DuckDBPyConnection) -> dict[date, str]:
    """Every staged day's digest: customer_behaviour's (BEHAVIOUR_DAY_DIGESTS_SQL), which
    hashes every column the snapshots read from a sale line but the time of day (a line's
    day is its partition: staging's rule `order_ts_on_partition_day`)."""
    return dict(conn.execute(BEHAVIOUR_DAY_DIGESTS_SQL).fetchall())


def settings_digest(
    conn: duckdb.DuckDBPyConnection, window: RfmWindow, min_customers_per_occupation: int
) -> str:
    """The digest of what a month reads besides the lines: the masters' stagings, the code
    (SQL and Python), the window and the occupation threshold."""
    payload = "\n".join(
        [
            str(scalar(conn, SNAPSHOT_MASTERS_STATE_SQL)),
            code_digest(),
            f"{window.start}..{window.end} as of {window.as_of}",
            str(min_customers_per_occupation),
        ]
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def all_lines_window(
    conn: duckdb.DuckDBPyConnection, as_of: date, settings: WindowSettings
) -> RfmWindow | None:
    """The RFM window of a snapshot as of `as_of`, resolved over every staged sale line (what
    the copy of the lines up to the month's end holds when the month is the data's latest)."""
    try:
        return resolve_window(
            conn,
            window_start=settings.window_start,
            as_of=as_of,
            lookback_days=settings.lookback_days,
            lines_table=STAGED_TRANSACTIONS.fqn,
        )
    except RfmWindowError:
        return None


def all_lines_lookups(
    conn: duckdb.DuckDBPyConnection, min_customers_per_occupation: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The occupation groups and category tiers of every staged line: the behaviour layer's
    own functions (what the as-of lookups give when the month's end is on or after the last
    line)."""
    occupation = assign_occupation_groups(
        conn.execute(OCCUPATION_STATS_SQL).df(), min_customers_per_occupation
    )
    return occupation, assign_price_segments(category_stats(conn))


#: The stored month's occupation groups (from its rows) and category tiers, `?`: the month.
STORED_LOOKUPS_SQL = {
    "occupation": f"SELECT DISTINCT occupation, occupation_group FROM {CUSTOMER_SNAPSHOTS.fqn} "
    "WHERE snapshot_month = ?",
    "category": f"SELECT category, price_segment FROM {CATEGORY_TIER_SNAPSHOTS.fqn} "
    "WHERE snapshot_month = ?",
}


def _moved_lookup(
    conn: duckdb.DuckDBPyConnection,
    month: date,
    lookups: tuple[pd.DataFrame, pd.DataFrame],
) -> str:
    """Why the stored month's occupation groups or category tiers differ from `lookups`: the
    first stored occupation or category whose group or tier moved (empty when none did). A
    customer has one profile (staging.sales_lines joins it from the master), so a kept row's
    group is its occupation's group."""
    occupation, categories = lookups
    now = {
        "occupation": dict(
            zip(occupation["occupation"], occupation["occupation_group"], strict=True)
        ),
        "category": dict(zip(categories["category"], categories["price_segment"], strict=True)),
    }
    for kind, sql in STORED_LOOKUPS_SQL.items():
        for code, stored in conn.execute(sql, [month]).fetchall():
            if now[kind].get(code) != stored:
                return f"{kind} {code} moved from {stored} to {now[kind].get(code)}"
    return ""


def _recompute_customers(
    conn: duckdb.DuckDBPyConnection,
    month: date,
    *,
    segment_map: SegmentMap,
    window: RfmWindow,
    lookups: tuple[pd.DataFrame, pd.DataFrame],
    last_line: date,
    on_disk: bool,
) -> None:
    """The rows of `month` of the customers of CUSTOMERS_TEMP into RECOMPUTED_TEMP (and its
    `_tiers`, created empty): `compute_snapshot`, the layers' own SQL, over a copy of their
    lines up to the month's end (LINES_TABLE, replaced), with the window and lookups of every
    line. Their scores are among themselves only."""
    conn.execute(
        f"CREATE OR REPLACE {scratch_table(LINES_TABLE, on_disk=on_disk)} AS {UPDATE_LINES_SQL}",
        {"last_day": month_end(month)},
    )
    create_snapshot_temp(conn, RECOMPUTED_TEMP)
    compute_snapshot(
        conn,
        month,
        segment_map=segment_map,
        window_settings=WindowSettings(),
        min_customers_per_occupation=0,  # unused: the lookups are given
        last_line=last_line,
        into=RECOMPUTED_TEMP,
        window=window,
        lookups=lookups,
    )


def update_latest_month(
    conn: duckdb.DuckDBPyConnection,
    month: date,
    *,
    segment_map: SegmentMap,
    window_settings: WindowSettings,
    min_customers_per_occupation: int,
    seed: str = "",
    into: str = "_snapshots",
    on_disk: bool = False,
) -> MonthUpdate:
    """The rows of `month` updated by its new days into `into` (and `into`_tiers), when the
    stored month and its record allow it (the module docstring); otherwise a MonthUpdate
    without a month, whose reason says why, and nothing written.

    Besides the new days' customers, CHECK_SAMPLE_CUSTOMERS kept customers (a sample seeded
    by `seed`) are recomputed from their own lines: their recomputed rows must equal their
    stored rows in every column but the scores (`sample_differing` counts the rows that do
    not), the blocking check's evidence that the kept rows are still right."""
    ensure_table(conn, SNAPSHOT_INPUTS)
    last_line = scalar(conn, LAST_LINE_DATE_SQL)
    if last_line is None or not month <= last_line <= month_end(month):
        return MonthUpdate(None, "not the month of the data's last line")
    record = conn.execute(STORED_RECORD_SQL, [month]).fetchall()
    if not record:
        return MonthUpdate(None, "no record of what the stored month was computed from")
    updates = int(record[0][4])
    if updates >= MAX_UPDATES_BETWEEN_DIRECT:
        return MonthUpdate(None, f"{updates} updates since the month was computed directly")
    as_of = snapshot_as_of(month, last_line)
    assert as_of is not None
    window = all_lines_window(conn, as_of, window_settings)
    if window is None:
        return MonthUpdate(None, "no sale line in the month's window")
    if record[0][2] != settings_digest(conn, window, min_customers_per_occupation):
        return MonthUpdate(None, "a master, the code, the window or a setting changed")
    if int(scalar(conn, MONTH_ROWS_SQL, [month])) != int(record[0][3]):
        return MonthUpdate(None, "the stored month's rows changed since it was written")
    digests = day_digests(conn)
    recorded = {row[0]: row[1] for row in record}
    if any(digests.get(day) != digest for day, digest in recorded.items()):
        return MonthUpdate(None, "a staged day it was computed from changed or is gone")
    lookups = all_lines_lookups(conn, min_customers_per_occupation)
    moved = _moved_lookup(conn, month, lookups)
    if moved:
        return MonthUpdate(None, moved)
    new_days = sorted(day for day in digests if day not in recorded)
    conn.execute(
        f"CREATE OR REPLACE TEMP TABLE {CUSTOMERS_TEMP} AS {NEW_DAY_CUSTOMERS_SQL}",
        {"days": new_days},
    )
    recomputed = int(scalar(conn, f"SELECT count(*) FROM {CUSTOMERS_TEMP}"))
    conn.execute(
        f"INSERT INTO {CUSTOMERS_TEMP} {SAMPLED_KEPT_CUSTOMERS_SQL}",
        {"month": month, "seed": seed, "n": CHECK_SAMPLE_CUSTOMERS},
    )
    _recompute_customers(
        conn,
        month,
        segment_map=segment_map,
        window=window,
        lookups=lookups,
        last_line=last_line,
        on_disk=on_disk,
    )
    sampled, differing = conn.execute(SAMPLE_DIFFERENCES_SQL, {"month": month}).fetchall()[0]
    create_snapshot_temp(conn, into, on_disk=on_disk)
    conn.execute(
        f"INSERT INTO {into} ({', '.join(CUSTOMER_SNAPSHOTS.column_names)}) {RESCORED_MONTH_SQL}",
        {"month": month, **segment_map.sql_params()},
    )
    # the tiers of every line (compute_snapshot wrote them beside the recomputed customers)
    conn.execute(f"INSERT INTO {into}_tiers SELECT * FROM {RECOMPUTED_TEMP}_tiers")
    rows = int(scalar(conn, f"SELECT count(*) FROM {into}"))
    return MonthUpdate(
        SnapshotMonth(month, window.as_of, window, rows),
        "",
        len(new_days),
        recomputed,
        updates + 1,
        int(sampled),
        int(differing),
    )


def record_latest_month(
    conn: duckdb.DuckDBPyConnection,
    months: list[date],
    *,
    window_settings: WindowSettings,
    min_customers_per_occupation: int,
    updates_since_direct: int = 0,
) -> None:
    """Replace the record with what the last of `months` was computed from, when it is the
    month of the data's last line. A run of earlier months leaves the latest month's rows and
    record as they are: what it restaged shows in the record's day digests. Run inside the
    snapshots' write transaction (`write_snapshots(also=...)`)."""
    ensure_table(conn, SNAPSHOT_INPUTS)
    last_line = scalar(conn, LAST_LINE_DATE_SQL)
    month = months[-1]
    if last_line is None or not month <= last_line <= month_end(month):
        return
    conn.execute(f"DELETE FROM {SNAPSHOT_INPUTS.fqn}")
    as_of = snapshot_as_of(month, last_line)
    window = all_lines_window(conn, as_of, window_settings) if as_of else None
    if window is None:
        return
    digests = day_digests(conn)
    insert_record_rows(
        conn,
        SNAPSHOT_INPUTS,
        {"partition_date": list(digests), "digest": list(digests.values())},
        {
            "snapshot_month": month,
            "settings_digest": settings_digest(conn, window, min_customers_per_occupation),
            "rows_written": int(scalar(conn, MONTH_ROWS_SQL, [month])),
            "updates_since_direct": updates_since_direct,
        },
    )


def drop_update_temps(conn: duckdb.DuckDBPyConnection) -> None:
    """Drop the update's temp tables (the copy of the lines is the snapshot step's)."""
    for name in (CUSTOMERS_TEMP, RECOMPUTED_TEMP, f"{RECOMPUTED_TEMP}_tiers"):
        conn.execute(f"DROP TABLE IF EXISTS {name}")
