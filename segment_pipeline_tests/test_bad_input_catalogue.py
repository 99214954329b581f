# ruff: noqa: E501  (the catalogue tables read best one kind per line)
"""The bad-input catalogue: every kind of bad (or merely awkward) input a user has sent us, what
the pipeline does with it, the exit code the CLI gives, the message, and that every line is
in exactly one place (staged, returned or quarantined) or, when the input cannot be read,
that nothing was written.

Line-level kinds share one day file and one real Dagster run (raw and staging); file-level
kinds each get their own run, since one unreadable file stops its whole window. Usage errors
of the CLI itself (a --db that is a folder, a bad --select, ...) are in
test_project.py::test_user_errors_get_one_clear_line_and_exit_2.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import duckdb
import pytest

from segment_pipeline.runner import RunOutcome, execute_pipeline
from segment_pipeline_tests.conftest import settings_for
from segment_pipeline_tests.datasets import TRANSACTION_HEADER, line, write_day

INGEST = 'key:"raw/*" or key:"staging/*"'
DAY = "2024-03-01"
TS = "2024-03-01 10:00:00"

# --------------------------------------------------------------------------------------------
# Line-level kinds: (kind, row, where it lands, rule, a fragment of the quarantine detail)
# --------------------------------------------------------------------------------------------

LINE_KINDS: list[tuple[str, list[object], str, str | None, str | None]] = [
    ("valid line", line("A1", "C1", TS, "P1", 2, "3.50"), "staged", None, None),
    ("order id empty", line("", "C1", TS, "P1", 1, "1"), "quarantine", "order_id_missing", None),
    ("customer id empty", line("A2", "", TS, "P1", 1, "1"), "quarantine", "customer_id_missing", None),
    ("customer id blanks only", line("A3", "   ", TS, "P1", 1, "1"), "quarantine", "customer_id_missing", None),
    ("customer id no-break space only", line("A4", "\u00a0", TS, "P1", 1, "1"), "quarantine", "customer_id_missing", None),
    ("product id empty", line("A5", "C1", TS, "", 1, "1"), "quarantine", "product_id_missing", None),
    ("timestamp empty", line("A6", "C1", "", "P1", 1, "1"), "quarantine", "order_ts_missing", None),
    ("timestamp words", line("A7", "C1", "yesterday", "P1", 1, "1"), "quarantine", "order_ts_unparseable", "order_ts=yesterday"),
    ("timestamp impossible date", line("A8", "C1", "2024-02-30 10:00:00", "P1", 1, "1"), "quarantine", "order_ts_unparseable", None),
    ("timestamp day-first", line("A9", "C1", "01/03/2024 10:00", "P1", 1, "1"), "quarantine", "order_ts_unparseable", None),
    ("timestamp of another day", line("A10", "C1", "2024-03-02 10:00:00", "P1", 1, "1"), "quarantine", "order_ts_on_partition_day", "partition_date=2024-03-01"),
    ("timestamp offset into the next day", line("A11", "C1", "2024-03-01 23:30:00-05:00", "P1", 1, "1"), "quarantine", "order_ts_on_partition_day", None),
    ("timestamp with Z", line("A12", "C1", "2024-03-01T10:00:00Z", "P1", 1, "1"), "staged", None, None),
    ("quantity empty", line("A13", "C1", TS, "P1", "", "1"), "quarantine", "quantity_missing", None),
    ("quantity fractional", line("A14", "C1", TS, "P1", "1.5", "1"), "quarantine", "quantity_not_integer", "quantity=1.5"),
    ("quantity word", line("A15", "C1", TS, "P1", "two", "1"), "quarantine", "quantity_not_integer", None),
    ("quantity beyond 64 bits", line("A16", "C1", TS, "P1", "99999999999999999999", "1"), "quarantine", "quantity_not_integer", None),
    ("quantity exponent", line("A17", "C1", TS, "P1", "1e3", "1"), "quarantine", "quantity_not_integer", None),
    ("quantity integral decimal", line("A18", "C1", TS, "P1", "2.0", "1"), "staged", None, None),
    ("quantity zero", line("A19", "C1", TS, "P1", 0, "1"), "quarantine", "quantity_positive_for_sale", None),
    ("price empty", line("A20", "C1", TS, "P1", 1, ""), "quarantine", "unit_price_missing", None),
    ("price words", line("A21", "C1", TS, "P1", 1, "N/A"), "quarantine", "unit_price_unparseable", "unit_price=N/A"),
    ("price decimal comma", line("A22", "C1", TS, "P1", 1, "3,50"), "quarantine", "unit_price_unparseable", None),
    ("price currency symbol", line("A23", "C1", TS, "P1", 1, "$3.50"), "quarantine", "unit_price_unparseable", None),
    ("price negative", line("A24", "C1", TS, "P1", 1, "-3.50"), "quarantine", "unit_price_not_negative", None),
    ("price more than 4 decimals", line("A25", "C1", TS, "P1", 1, "2.08333"), "quarantine", "unit_price_too_precise", "more than 4 decimals"),
    ("price trailing zeros", line("A26", "C1", TS, "P1", 1, "2.500000"), "staged", None, None),
    ("price free item", line("A27", "C1", TS, "P1", 1, "0"), "staged", None, None),
    ("line total beyond DECIMAL(18,4)", line("A28", "C1", TS, "P1", 1000000000, "99999999"), "quarantine", "amount_out_of_range", None),
    ("exact repeat of a line", line("A1", "C1", TS, "P1", 2, "3.50"), "quarantine", "duplicate_line", "repeats an earlier line"),
    ("zero-width space inside an id", line("A29", "C\u200b1", TS, "P1", 1, "1"), "quarantine", "id_invisible_character", "U+200B"),
    ("NUL byte inside an id", line("A30", "C1", TS, "P\x001", 1, "1"), "quarantine", "id_invisible_character", "U+0000"),
    ("tab inside an id", line("A31", "C1", TS, "P\t1", 1, "1"), "quarantine", "id_invisible_character", "U+0009"),
    ("invisible padding around ids", line("\ufeffA32", " C1\u00a0", TS, "\u200bP1", 1, "1"), "staged", None, None),
    ("return line", line("A33", "C1", TS, "P1", -1, "3.50"), "returns", None, None),
    ("return with negative price", line("A34", "C1", TS, "P1", -1, "-3.50"), "quarantine", "unit_price_not_negative", None),
    ("non-ASCII text", line("A35", "C1", TS, "P\u00e9\u4e2d", 1, "1"), "staged", None, None),
]  # fmt: skip


@pytest.fixture(scope="module")
def line_kinds_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[RunOutcome, Path]:
    root = tmp_path_factory.mktemp("catalogue")
    write_day(root / "data", DAY, [row for _, row, _, _, _ in LINE_KINDS])
    db = root / "w.duckdb"
    with dg.instance_for_test() as instance:
        outcome = execute_pipeline(
            settings_for(root / "data", db), instance=instance, selection=INGEST, echo=False
        )
    return outcome, db


def _place_of(conn: duckdb.DuckDBPyConnection, source_line: int) -> list[tuple]:
    return conn.execute(
        """
        SELECT 'staged', NULL, NULL FROM staging.transactions WHERE source_line = $1
        UNION ALL SELECT 'returns', NULL, NULL FROM staging.returns WHERE source_line = $1
        UNION ALL SELECT 'quarantine', rule, detail FROM staging.quarantine
                  WHERE entity = 'transactions' AND source_line = $1
        """,
        [source_line],
    ).fetchall()


@pytest.mark.parametrize(
    ("index", "where", "rule", "detail"),
    [(i, where, rule, detail) for i, (_, _, where, rule, detail) in enumerate(LINE_KINDS)],
    ids=[kind for kind, *_ in LINE_KINDS],
)
def test_line_kind(
    line_kinds_run: tuple[RunOutcome, Path],
    index: int,
    where: str,
    rule: str | None,
    detail: str | None,
) -> None:
    outcome, db = line_kinds_run
    # Bad lines never fail the run: exit 0, the quarantine says why.
    assert outcome.exit_code == 0, outcome.messages
    with duckdb.connect(str(db), read_only=True) as conn:
        places = _place_of(conn, index + 2)  # line 1 is the header
    assert len(places) == 1, f"line {index + 2} is in {len(places)} places: {places}"
    assert places[0][:2] == (where, rule)
    if detail is not None:
        assert detail in places[0][2]


def test_line_kinds_are_conserved(line_kinds_run: tuple[RunOutcome, Path]) -> None:
    _, db = line_kinds_run
    with duckdb.connect(str(db), read_only=True) as conn:
        raw, staged, returns, quarantined = conn.execute(
            "SELECT (SELECT count(*) FROM raw.transactions), "
            "(SELECT count(*) FROM staging.transactions), (SELECT count(*) FROM staging.returns), "
            "(SELECT count(*) FROM staging.quarantine WHERE entity = 'transactions')"
        ).fetchall()[0]
        padded = conn.execute(
            "SELECT order_id, customer_id, product_id FROM staging.transactions "
            "WHERE order_id = 'A32'"
        ).fetchall()
    assert raw == len(LINE_KINDS) == staged + returns + quarantined
    assert padded == [("A32", "C1", "P1")]


# --------------------------------------------------------------------------------------------
# File-level kinds: the day file 2024-03-02 cannot be read as the contract says. The run
# stops with one message naming the file (exit 2, a user error) and writes nothing: the
# valid day 2024-03-01 of the same window is not loaded either.
# --------------------------------------------------------------------------------------------

HEADER = ",".join(TRANSACTION_HEADER) + "\n"
GOOD = "B1,C1,2024-03-02 10:00:00,P1,1,2\n"

FILE_KINDS: list[tuple[str, bytes | None, str]] = [
    ("empty file", b"", "the file is empty"),
    ("missing column", b"order_id,customer_id,order_ts,sku,quantity,unit_price\n", "missing required column(s) product_id"),
    ("semicolon delimiter", HEADER.replace(",", ";").encode(), "missing required column(s)"),
    ("repeated column name", (HEADER.rstrip("\n") + ",quantity\n").encode(), "repeats the column name(s) quantity"),
    ("too many fields", (HEADER + GOOD.rstrip("\n") + ",extra\n").encode(), "Line: 2"),
    ("too few fields", (HEADER + "B1,C1,2024-03-02 10:00:00,P1,1\n").encode(), "Line: 2"),
    ("unterminated quote", (HEADER + 'B1,C1,2024-03-02 10:00:00,"P1,1,2\n' + GOOD).encode(), "Line: 2"),
    ("binary content", bytes(range(256)) * 4, "2024-03-02.csv"),
    ("Latin-1 byte", (HEADER + GOOD).encode() + "B2,C1,2024-03-02 10:00:00,P\xe9,1,2\n".encode("latin-1"), "2024-03-02.csv"),
    ("a folder named like a day file", None, "2024-03-02.csv"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("content", "says"),
    [(content, says) for _, content, says in FILE_KINDS],
    ids=[kind for kind, _, _ in FILE_KINDS],
)
def test_file_kind(
    tmp_path: Path, instance: dg.DagsterInstance, content: bytes | None, says: str
) -> None:
    data = tmp_path / "data"
    write_day(data, DAY, [line("A1", "C1", TS, "P1", 1, "1")])
    bad = data / "transactions" / "2024-03-02.csv"
    if content is None:
        bad.mkdir()
    else:
        bad.write_bytes(content)
    db = tmp_path / "w.duckdb"
    outcome = execute_pipeline(
        settings_for(data, db), instance=instance, selection=INGEST, echo=False
    )
    assert outcome.exit_code == 2, (outcome.messages, outcome.bugs, outcome.failed_checks)
    assert any(says in m and "2024-03-02.csv" in m for m in outcome.messages), outcome.messages
    assert not any("Traceback" in m for m in outcome.messages)
    # Nothing written: the failed run was undone, its tables included.
    with duckdb.connect(str(db), read_only=True) as conn:
        tables = conn.execute(
            "SELECT table_schema || '.' || table_name FROM information_schema.tables "
            "WHERE table_schema IN ('raw', 'staging', 'marts')"
        ).fetchall()
    assert tables == []


def test_header_only_file_is_an_empty_day(tmp_path: Path, instance: dg.DagsterInstance) -> None:
    """Not an error: a day with no sales (the header says the file is well formed)."""
    data = tmp_path / "data"
    write_day(data, DAY, [line("A1", "C1", TS, "P1", 1, "1")])
    (data / "transactions" / "2024-03-02.csv").write_text(HEADER)
    db = tmp_path / "w.duckdb"
    outcome = execute_pipeline(
        settings_for(data, db), instance=instance, selection=INGEST, echo=False
    )
    assert outcome.exit_code == 0, outcome.messages
    assert outcome.messages == []
    with duckdb.connect(str(db), read_only=True) as conn:
        per_day = conn.execute(
            "SELECT partition_date::VARCHAR, count(*) FROM raw.transactions GROUP BY 1"
        ).fetchall()
    assert per_day == [("2024-03-01", 1)]
