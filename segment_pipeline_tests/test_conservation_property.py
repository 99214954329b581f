"""Property: whatever mix of good and bad rows a day holds, every raw row ends up in exactly
one place (staged, returns or quarantine), and re-staging changes nothing."""

from __future__ import annotations

import tempfile
from datetime import date
from pathlib import Path

import duckdb
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segment_pipeline.logic.staging import ensure_staging_tables, stage_transactions_window
from segment_pipeline.sources import CanonicalSource
from segment_pipeline_tests.datasets import write_day
from segment_pipeline_tests.test_staging_rules import load_raw

DAYS = [date(2024, 3, 1), date(2024, 3, 2)]

texts = st.sampled_from(
    [
        "",
        " ",
        "x",
        "O1",
        "C1",
        "P1",
        "N/A",
        "0",
        "-1",
        "1.5",
        "3,50",
        "'quoted'",
        "é",
        "a,b",
        'say "hi"',
    ]
)
ids = st.one_of(st.sampled_from(["O1", "O2", "C1", "C2", "P1", "P2", ""]), texts)
timestamps = st.one_of(
    st.sampled_from(
        [
            "2024-03-01 10:00:00",
            "2024-03-02 11:30:00",
            "2024-03-01T08:00:00",
            "not a date",
            "",
            "2024-02-30 10:00:00",
        ]
    ),
    texts,
)
quantities = st.one_of(st.integers(-5, 5).map(str), texts)
prices = st.one_of(
    st.decimals(-10, 1000, places=2, allow_nan=False, allow_infinity=False).map(str), texts
)
rows = st.lists(st.tuples(ids, ids, timestamps, ids, quantities, prices), max_size=25)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(day_rows=st.tuples(rows, rows))
def test_rows_conserved_for_any_mix(day_rows: tuple[list, list]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        for day, day_data in zip(DAYS, day_rows, strict=True):
            write_day(root, day.isoformat(), [list(r) for r in day_data])
        conn = duckdb.connect(str(Path(tmp) / "w.duckdb"))
        ensure_staging_tables(conn)
        source = CanonicalSource(root)
        for day in DAYS:
            load_raw(conn, source, day)
        counts = stage_transactions_window(conn, DAYS, max_batch_rows=10)
        for day_counts, day_data in zip(counts, day_rows, strict=True):
            assert day_counts.raw == len(day_data)
            assert day_counts.conserved, day_counts

        placed = conn.execute(
            "SELECT partition_date, source_line FROM staging.transactions UNION ALL "
            "SELECT partition_date, source_line FROM staging.returns UNION ALL "
            "SELECT partition_date, source_line FROM staging.quarantine"
        ).fetchall()
        raw = conn.execute("SELECT partition_date, source_line FROM raw.transactions").fetchall()
        assert sorted(placed) == sorted(raw)  # each raw line exactly once

        before = conn.execute(
            "SELECT count(*), sum(hash(line_id)) FROM staging.transactions"
        ).fetchall()
        stage_transactions_window(conn, DAYS)
        assert (
            conn.execute("SELECT count(*), sum(hash(line_id)) FROM staging.transactions").fetchall()
            == before
        )
        conn.close()
