"""The latest month of customer_snapshots updated by a new day (logic/snapshot_update.py):
equal to the month computed directly with the layers' own SQL on random histories and new
days, computed directly instead whenever the record cannot vouch for the stored month, and
through the assets: updated, checked, and equal to a rebuild."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segment_pipeline.assets.dynamics import SNAPSHOTS_KEY
from segment_pipeline.logic import dynamics as dyn
from segment_pipeline.logic import snapshot_update as upd
from segment_pipeline.logic.rfm import load_segment_map
from segment_pipeline.logic.staging import ensure_staging_tables
from segment_pipeline_tests.conftest import settings_for

SEGMENT_MAP = load_segment_map()
JAN, FEB, MAR = date(2025, 1, 1), date(2025, 2, 1), date(2025, 3, 1)
KWARGS = dict(
    segment_map=SEGMENT_MAP, window_settings=dyn.WindowSettings(), min_customers_per_occupation=1
)


def _warehouse(rows: list[tuple]) -> duckdb.DuckDBPyConnection:
    """The staging tables and views, holding the sale lines `rows` (customer, order, day,
    category, amount, occupation) and each customer's profile (the occupation of their
    lines: a customer has one)."""
    conn = duckdb.connect(":memory:")
    ensure_staging_tables(conn)
    _add(conn, rows)
    return conn


def _add(conn: duckdb.DuckDBPyConnection, rows: list[tuple]) -> None:
    """Stage `rows` beside the staged lines, and their customers' profiles."""
    first = conn.execute("SELECT count(*) FROM staging.transactions").fetchall()[0][0]
    conn.executemany(
        "INSERT INTO staging.transactions (line_id, partition_date, order_id, customer_id, "
        "order_ts, product_id, product_name, category, quantity, unit_price, amount, "
        "source_file, source_line) VALUES (?, ?, ?, ?, ?, 'p-' || ?, NULL, ?, 1, ?, ?, 't', ?)",
        [
            (f"t:{first + i}", d, o, c, f"{d} 12:00:00", cat, cat, a, a, first + i)
            for i, (c, o, d, cat, a, _) in enumerate(rows)
        ],
    )
    for customer, occupation in sorted({(r[0], r[5]) for r in rows}):
        conn.execute("DELETE FROM staging.customers WHERE customer_id = ?", [customer])
        conn.execute(
            "INSERT INTO staging.customers (customer_id, gender, age_band, occupation, "
            "marital_status, city_category) VALUES (?, 'M', '26-35', ?, '0', 'A')",
            [customer, occupation],
        )


def _write(conn: duckdb.DuckDBPyConnection, months: list[date], kwargs: dict = KWARGS) -> str:
    """What the snapshot step does: update the one month when its record allows, else compute
    the months; write them with the record. Returns how ("updated", "ranged" or the reason
    the month was computed directly)."""
    update = upd.update_latest_month(conn, months[0], **kwargs) if len(months) == 1 else None
    if update is None or update.month is None:
        dyn.compute_snapshots(conn, months, **kwargs)
    dyn.write_snapshots(
        conn,
        months[0],
        months[-1],
        also=lambda c: upd.record_latest_month(
            c,
            months,
            window_settings=kwargs["window_settings"],
            min_customers_per_occupation=1,
            updates_since_direct=update.updates_since_direct if update and update.month else 0,
        ),
    )
    upd.drop_update_temps(conn)
    dyn.drop_snapshot_temps(conn)
    return (
        "updated"
        if update is not None and update.month is not None
        else (update.reason if update is not None else "ranged")
    )


def _direct(conn: duckdb.DuckDBPyConnection, month: date, kwargs: dict = KWARGS) -> None:
    """The month computed directly with the layers' own SQL into `_ref` (the check's
    reference)."""
    dyn.create_snapshot_temp(conn, "_ref")
    last_line = conn.execute(dyn.LAST_LINE_DATE_SQL).fetchall()[0][0]
    dyn.stage_lines(conn, dyn.month_end(month))
    dyn.compute_snapshot(conn, month, last_line=last_line, into="_ref", **kwargs)


def _differences(conn: duckdb.DuckDBPyConnection, month: date) -> list:
    stored = f"(SELECT * FROM {dyn.CUSTOMER_SNAPSHOTS.fqn} WHERE snapshot_month = '{month}')"
    tiers = f"(SELECT * FROM {dyn.CATEGORY_TIER_SNAPSHOTS.fqn} WHERE snapshot_month = '{month}')"
    out = []
    for a, b in ((stored, "_ref"), ("_ref", stored), (tiers, "_ref_tiers"), ("_ref_tiers", tiers)):
        out += conn.execute(f"SELECT * FROM {a} EXCEPT ALL SELECT * FROM {b}").fetchall()
    return out


def _line(c: str, o: int, day: date, cat: str = "Mid", amount: int = 50, occ: str = "7"):
    return (c, f"{c}{o}", str(day), cat, amount, occ)


# --------------------------------------------------------------------------------------------
# Hand-built: what is updated, what is kept, and when the month is computed directly instead
# --------------------------------------------------------------------------------------------

HISTORY = [
    _line("A", 1, JAN + timedelta(days=4), "Cheap", 10),
    _line("B", 1, JAN + timedelta(days=19), "Lux", 300),
    _line("C", 1, FEB + timedelta(days=2), "Mid", 50),
    _line("A", 2, MAR + timedelta(days=1), "Cheap", 10),
    _line("D", 1, MAR + timedelta(days=3), "Mid", 60),
]


def test_a_new_day_updates_the_month_and_equals_it_computed_directly() -> None:
    """March computed (a ranged run: its record), then March 10 added: D buys again (one more
    order: its F rank moves everyone's scores), E is new; A, B and C are kept. The updated
    month equals March computed directly, and the record counts one update."""
    conn = _warehouse(HISTORY)
    assert _write(conn, [JAN, FEB, MAR]) == "ranged"
    day = MAR + timedelta(days=9)
    _add(conn, [_line("D", 2, day, "Mid", 70), _line("E", 1, day, "Lux", 250)])
    update = upd.update_latest_month(conn, MAR, **KWARGS)
    assert update.month is not None, update.reason
    assert (update.new_days, update.recomputed, update.updates_since_direct) == (1, 2, 1)
    upd.drop_update_temps(conn)
    assert _write(conn, [MAR]) == "updated"
    _direct(conn, MAR)
    assert _differences(conn, MAR) == []
    # the earlier months are untouched
    assert conn.execute(
        "SELECT count(*) FROM marts.customer_snapshots WHERE snapshot_month < ?", [MAR]
    ).fetchall() == [(5,)]  # Jan: A, B; Feb: A, B, C
    record = conn.execute(
        "SELECT DISTINCT snapshot_month, updates_since_direct, rows_written "
        "FROM marts.customer_snapshot_inputs"
    ).fetchall()
    assert record == [(MAR, 1, 5)]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("correct", "a staged day it was computed from changed or is gone"),
        ("no record", "no record of what the stored month was computed from"),
        ("rows", "the stored month's rows changed since it was written"),
        ("past month", "not the month of the data's last line"),
        ("retier", "category"),
        ("regroup", "occupation"),
        ("master", "a master, the code, the window or a setting changed"),
        ("earlier day", "a master, the code, the window or a setting changed"),
    ],
)
def test_the_month_is_computed_directly_when_the_record_cannot_vouch_for_it(
    change: str, reason: str
) -> None:
    """Each thing that makes kept rows wrong or unknown: the month is computed directly, and
    equals the layers' own SQL."""
    conn = _warehouse(HISTORY)
    _write(conn, [JAN, FEB, MAR])
    month = MAR
    day = MAR + timedelta(days=9)
    new = [_line("E", 1, day, "Mid", 55)]
    if change == "correct":
        conn.execute("UPDATE staging.transactions SET amount = 11 WHERE customer_id = 'A'")
    elif change == "no record":
        conn.execute("DELETE FROM marts.customer_snapshot_inputs")
    elif change == "rows":
        conn.execute("DELETE FROM marts.customer_snapshots WHERE customer_id = 'B'")
    elif change == "past month":
        month = FEB
    elif change == "retier":
        # Cheap's median jumps above Lux's: the two swap tiers
        new = [_line("E", k, day, "Cheap", 900) for k in range(5)]
    elif change == "regroup":
        # a second occupation spending less per line: occupation 7 moves from Occ_Low up
        new = [_line(c, 1, day, "Mid", 5, occ="9") for c in "EFGHI"]
    elif change == "earlier day":
        # a day before the first line: every row's window starts earlier
        new = [_line("E", 1, JAN - timedelta(days=10), "Mid", 55)]
    elif change == "master":
        conn.execute(
            "INSERT INTO staging.master_loads VALUES ('customers', 'k', 1, 1, 0, now()::TIMESTAMP)"
        )
    _add(conn, new)
    update = upd.update_latest_month(conn, month, **KWARGS)
    assert update.month is None
    assert reason in update.reason
    upd.drop_update_temps(conn)
    _write(conn, [month])
    _direct(conn, month)
    assert _differences(conn, month) == []


def test_a_run_of_an_earlier_month_keeps_the_latest_months_record() -> None:
    """February run again alone (a backfill of an earlier month) leaves March's rows and
    record: a new day of March is still an update when February's lines are as they were,
    and is computed directly when one of them was corrected."""
    conn = _warehouse(HISTORY)
    _write(conn, [JAN, FEB, MAR])
    assert _write(conn, [FEB]) == "not the month of the data's last line"
    _add(conn, [_line("E", 1, MAR + timedelta(days=9))])
    assert _write(conn, [MAR]) == "updated"
    conn.execute("UPDATE staging.transactions SET amount = 51 WHERE customer_id = 'C'")
    _write(conn, [FEB])
    _add(conn, [_line("F", 1, MAR + timedelta(days=10))])
    how = _write(conn, [MAR])
    assert how == "a staged day it was computed from changed or is gone", how
    _direct(conn, MAR)
    assert _differences(conn, MAR) == []


def test_after_six_updates_the_month_is_computed_directly() -> None:
    """Six new days in a row are updates; the seventh computes the month directly (and so the
    check compares it in full), which starts the count again."""
    conn = _warehouse(HISTORY)
    _write(conn, [JAN, FEB, MAR])
    hows = []
    for k in range(8):
        _add(conn, [_line("F", k, MAR + timedelta(days=10 + k), "Mid", 40 + k)])
        hows.append(_write(conn, [MAR]))
    assert hows[:6] == ["updated"] * 6
    assert "6 updates since the month was computed directly" in hows[6]
    assert hows[7] == "updated"
    _direct(conn, MAR)
    assert _differences(conn, MAR) == []


def test_an_update_recomputes_a_sample_of_the_kept_customers_and_finds_a_wrong_row(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Besides the new day's customer (E), the update recomputes a seeded sample of the kept
    ones from their own lines: here all four (A-D, fewer than the sample), or two of them
    with a sample of two. Their rows equal the stored ones, but for a kept row changed behind
    the update's back, which the blocking check then fails on."""
    conn = _warehouse(HISTORY)
    _write(conn, [JAN, FEB, MAR])
    _add(conn, [_line("E", 1, MAR + timedelta(days=9))])
    update = upd.update_latest_month(conn, MAR, seed="run-1", **KWARGS)
    assert (update.recomputed, update.sample_checked, update.sample_differing) == (1, 4, 0)
    monkeypatch.setattr(upd, "CHECK_SAMPLE_CUSTOMERS", 2)
    update = upd.update_latest_month(conn, MAR, seed="run-1", **KWARGS)
    assert (update.recomputed, update.sample_checked, update.sample_differing) == (1, 2, 0)
    monkeypatch.setattr(upd, "CHECK_SAMPLE_CUSTOMERS", 500)
    conn.execute(
        "UPDATE marts.customer_snapshots SET monetary = monetary + 1 "
        "WHERE customer_id = 'A' AND snapshot_month = ?",
        [MAR],
    )
    update = upd.update_latest_month(conn, MAR, seed="run-1", **KWARGS)
    assert update.month is not None
    assert (update.sample_checked, update.sample_differing) == (4, 1)


# --------------------------------------------------------------------------------------------
# Property: any history, any new days
# --------------------------------------------------------------------------------------------

_lines = st.lists(
    st.tuples(
        st.sampled_from("ABCDEFGH"),  # customer
        st.integers(0, 4),  # order number: an order's lines may fall on different days
        st.integers(0, 30),  # day of March
        st.sampled_from(["Cheap", "Mid", "Lux", "Unknown"]),
        st.integers(1, 400),
    ),
    max_size=25,
)
_earlier = st.lists(
    st.tuples(
        st.sampled_from("ABCDEFGH"),
        st.integers(5, 6),
        st.integers(0, 58),  # Jan and Feb
        st.sampled_from(["Cheap", "Mid", "Lux"]),
        st.integers(1, 400),
    ),
    min_size=1,
    max_size=15,
)


def _occupation(customer: str) -> str:
    """A customer's one profile (staging.sales_lines joins it from the master): two
    occupations, so that groups can move."""
    return "7" if customer in "ABCDE" else "9"


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    earlier=_earlier,
    march=_lines,
    cut=st.integers(1, 30),
    window=st.sampled_from(
        [
            dyn.WindowSettings(),
            dyn.WindowSettings(lookback_days=40),
            dyn.WindowSettings(window_start=FEB),
        ]
    ),
)
def test_an_updated_month_equals_the_month_computed_directly(earlier, march, cut, window) -> None:
    """March written from the lines before day `cut`, then the rest of March added a day at
    a time (one run per day, as the schedule runs): after every day the stored month, updated
    or computed directly, equals March computed directly with the layers' own SQL, in every
    column of both tables."""
    kwargs = {**KWARGS, "window_settings": window}
    rows = [
        _line(c, o, JAN + timedelta(days=d), cat, a, _occupation(c)) for c, o, d, cat, a in earlier
    ]
    by_day: dict[int, list[tuple]] = {}
    for c, o, d, cat, a in march:
        by_day.setdefault(d, []).append(
            _line(c, o, MAR + timedelta(days=d), cat, a, _occupation(c))
        )
    conn = _warehouse(rows + [r for d, rs in by_day.items() if d < cut for r in rs])
    _write(conn, [JAN, FEB, MAR], kwargs)
    for d in sorted(k for k in by_day if k >= cut):
        _add(conn, by_day[d])
        _write(conn, [MAR], kwargs)
        _direct(conn, MAR, kwargs)
        assert _differences(conn, MAR) == []


# --------------------------------------------------------------------------------------------
# Through the assets: a held-back day added the way the schedule and the sensor add it
# --------------------------------------------------------------------------------------------


@pytest.mark.e2e
def test_a_new_day_through_the_runner_is_an_update_equal_to_a_rebuild(tmp_path: Path) -> None:
    """Forty-five days with the last held back, then that day run alone (as the schedule
    does): the month is updated (its materialization says so), the blocking check passes, and
    the stored month equals the one a rebuild over every day computes."""
    from segment_pipeline.generator import generate
    from segment_pipeline.runner import execute_pipeline

    data = tmp_path / "data"
    generate(data, customers=60, days=45, seed=11, start=JAN)
    last = JAN + timedelta(days=44)  # Feb 14
    day_file = data / "transactions" / f"{last}.csv"
    held = tmp_path / "held.csv"
    day_file.rename(held)
    selection = 'key:"raw/*" or key:"staging/*" or key:"marts/customer_snapshots"'
    daily = settings_for(data, tmp_path / "daily" / "segments.duckdb")
    with dg.instance_for_test() as instance:
        first = execute_pipeline(daily, instance=instance, selection=selection, echo=False)
        assert first.success, first.messages
        held.rename(day_file)
        run = execute_pipeline(
            daily, instance=instance, selection=selection, start=last, end=last, echo=False
        )
        assert run.success, run.messages
        (record,) = instance.fetch_materializations(SNAPSHOTS_KEY, limit=1).records
        computed = record.asset_materialization.metadata["computed"].value
        assert computed.startswith("updated by 1 new day(s)"), computed
        logs = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
        checks = {e.dagster_event.event_specific_data.check_name: e for e in logs}
        evaluation = checks["matches_as_of_recomputation"].dagster_event.event_specific_data
        assert evaluation.passed
        assert "updated by a new day" in evaluation.metadata["recomputed"].value
        assert evaluation.metadata["kept_customers_recomputed"].value > 0
        assert evaluation.metadata["kept_customers_differing"].value == 0
        assert evaluation.metadata["rows_differing"].value == 0
    rebuilt = settings_for(data, tmp_path / "rebuilt" / "segments.duckdb")
    with dg.instance_for_test() as instance:
        whole = execute_pipeline(rebuilt, instance=instance, selection=selection, echo=False)
        assert whole.success, whole.messages
    with duckdb.connect(str(daily.db_path)) as conn:
        conn.execute(f"ATTACH '{rebuilt.db_path}' AS rebuilt (READ_ONLY)")
        for table in (dyn.CUSTOMER_SNAPSHOTS, dyn.CATEGORY_TIER_SNAPSHOTS):
            ours = f"SELECT * FROM {table.fqn} WHERE snapshot_month = '{FEB}'"
            theirs = f"SELECT * FROM rebuilt.{table.fqn} WHERE snapshot_month = '{FEB}'"
            for a, b in ((ours, theirs), (theirs, ours)):
                assert conn.execute(f"SELECT count(*) FROM ({a} EXCEPT ALL {b})").fetchall() == [
                    (0,)
                ], table.fqn
            assert conn.execute(f"SELECT count(*) FROM ({ours})").fetchall()[0][0] > 0
