"""Where a bad line is: `source_line`, quarantine rows and load errors name the line a user
opens in an editor (header = line 1), whatever blank lines, multi-line quoted fields, line
endings or undecodable bytes come before it. Files are written byte for byte by the tests."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import pytest

from segment_pipeline.logic.staging import (
    RawLoadError,
    ensure_staging_tables,
    load_raw_window,
    stage_master,
    stage_transactions_window,
)
from segment_pipeline.sources import CanonicalSource, DataContractError
from segment_pipeline.sources.lines import (
    CsvFile,
    LineShifts,
    first_undecodable_byte,
    line_shifts,
    may_shift,
)
from segment_pipeline.sources.online_retail import OnlineRetailSource
from segment_pipeline_tests.test_sources_mapped import mapped_source, rows

HEADER = "order_id,customer_id,order_ts,product_id,quantity,unit_price,product_name,category"
DAY1, DAY2 = date(2024, 3, 1), date(2024, 3, 2)
TS = "2024-03-01 10:00:00"


def write_bytes(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def day_file(root: Path, day: date, lines: list[str], nl: str = "\n") -> Path:
    text = nl.join([HEADER, *lines]) + nl
    return write_bytes(root / "transactions" / f"{day.isoformat()}.csv", text.encode())


def load_and_stage(root: Path, days: list[date]) -> tuple[duckdb.DuckDBPyConnection, object]:
    conn = duckdb.connect()
    ensure_staging_tables(conn)
    load = load_raw_window(conn, CanonicalSource(root), days[0], days[-1])
    stage_transactions_window(conn, days)
    return conn, load


def awkward_day(nl: str) -> list[str]:
    """Editor lines: 1 header, 2 a sale, 3-4 blank, 5-6 one sale whose product name holds a
    line break, 7 a sale, 8 a line without customer (quarantined), 9 blank at the end."""
    return [
        f"O1,C1,{TS},P1,1,2.00,Cup,Kitchen",
        "",
        "",
        f'O2,C1,{TS},P2,1,3.00,"Mug{nl}large",Kitchen',
        f"O3,C2,{TS},P1,2,2.00,Cup,Kitchen",
        f"O4,,{TS},P1,1,2.00,Cup,Kitchen",
        "",
    ]


@pytest.mark.parametrize("nl", ["\n", "\r\n", "\r"], ids=["LF", "CRLF", "CR"])
def test_quarantine_row_names_the_editor_line_after_blank_lines_and_a_multiline_field(
    tmp_path: Path, nl: str
) -> None:
    root = tmp_path / "data"
    path = day_file(root, DAY1, awkward_day(nl), nl)
    day_file(root, DAY2, [f"O5,,{TS.replace('03-01', '03-02')},P1,1,2.00,Cup,Kitchen"], nl)
    assert path.read_bytes().decode().split(nl)[7] == f"O4,,{TS},P1,1,2.00,Cup,Kitchen"

    conn, load = load_and_stage(root, [DAY1, DAY2])  # one multi-file scan

    assert rows(conn, "SELECT order_id, source_line FROM raw.transactions ORDER BY 1") == [
        ("O1", 2),
        ("O2", 5),
        ("O3", 7),
        ("O4", 8),
        ("O5", 2),  # the other file of the scan keeps plain numbering
    ]
    assert rows(
        conn,
        "SELECT source_file, source_line, rule FROM staging.quarantine ORDER BY source_file",
    ) == [
        ("2024-03-01.csv", 8, "customer_id_missing"),
        ("2024-03-02.csv", 2, "customer_id_missing"),
    ]
    assert rows(conn, "SELECT line_id FROM staging.transactions ORDER BY 1") == [
        ("2024-03-01.csv:2",),
        ("2024-03-01.csv:5",),
        ("2024-03-01.csv:7",),
    ]
    # Blank lines are not transactions: skipped, and counted.
    assert load.blank_lines == {str(path): 3}
    assert load.per_day[DAY1] == ("2024-03-01.csv", 4)


def test_single_day_query_numbers_editor_lines_too(tmp_path: Path) -> None:
    root = tmp_path / "data"
    day_file(root, DAY1, awkward_day("\n"))
    query = CanonicalSource(root).raw_transactions(duckdb.connect(), DAY1)
    assert query is not None
    found = duckdb.connect().execute(query.sql, query.params).fetchall()
    assert sorted((r[0], r[-1]) for r in found) == [("O1", 2), ("O2", 5), ("O3", 7), ("O4", 8)]


def test_master_file_quarantine_names_the_editor_line(tmp_path: Path) -> None:
    root = tmp_path / "data"
    day_file(root, DAY1, [f"O1,C1,{TS},P1,1,2.00,Cup,Kitchen"])
    write_bytes(
        root / "products.csv",
        b"product_id,product_name,category\n"
        b"P1,Cup,Kitchen\n"
        b"\n"
        b'P2,"Mug\nlarge",Kitchen\n'
        b"P1,Cup again,Kitchen\n",  # line 6: a repeated product id
    )
    conn = duckdb.connect()
    query = CanonicalSource(root).raw_products(conn)
    assert query is not None
    stage_master(conn, "products", query.sql, query.params)
    assert rows(conn, "SELECT product_id, source_line FROM staging.products ORDER BY 1") == [
        ("P1", 2),
        ("P2", 4),
    ]
    assert rows(conn, "SELECT source_line, rule FROM staging.quarantine") == [
        (6, "duplicate_product_id")
    ]


def test_mapped_source_numbers_editor_lines(tmp_path: Path) -> None:
    t = "03/11/2025 09:30"
    source = mapped_source(
        tmp_path,
        [
            ["A1", "K1", t, "P1", "2", "1,50", "Lamp", "Home", "DE"],  # line 2
            [],  # line 3: blank
            ["A2", "K1", t, "P2", "1", "2,00", "Mug\n\nlarge", "Home", "DE"],  # lines 4-6
            ["A3", "", t, "P3", "1", "2,50", "Cup", "Kitchen", "FR"],  # line 7: no customer
        ],
    )
    conn = duckdb.connect()
    ensure_staging_tables(conn)
    load = load_raw_window(conn, source, date(2025, 11, 3), date(2025, 11, 3))
    stage_transactions_window(conn, [date(2025, 11, 3)])
    assert rows(conn, "SELECT order_id, source_line FROM raw.transactions ORDER BY 2") == [
        ("A1", 2),
        ("A2", 4),
        ("A3", 7),
    ]
    assert rows(conn, "SELECT source_line, rule FROM staging.quarantine") == [
        (7, "customer_id_missing")
    ]
    assert sum(load.blank_lines.values()) == 1


def test_mapped_type_check_message_names_the_editor_line(tmp_path: Path) -> None:
    t = "03/11/2025 09:30"
    source = mapped_source(
        tmp_path,
        [
            ["A1", "K1", t, "P1", "2", "1,50", "Lamp\nshade", "Home", "DE"],  # lines 2-3
            [],  # line 4
            ["A2", "K1", t, "P2", "two", "2,00", "Mug", "Home", "DE"],  # line 5
        ],
    )
    with pytest.raises(DataContractError, match=r"2025-11-03\.csv line 5\b"):
        source.raw_transactions(duckdb.connect(), date(2025, 11, 3))


def test_online_retail_source_numbers_editor_lines(tmp_path: Path) -> None:
    header = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country"
    t = "2010-12-01 08:26:00"
    write_bytes(
        tmp_path / "or" / "2010-12-01.csv",
        "\n".join(
            [
                header,
                f"536365,85123A,WHITE HEART,6,{t},2.55,17850.0,United Kingdom",  # 2
                "",  # 3
                f'536366,22633,"HAND WARMER\nUNION JACK",6,{t},1.85,17850.0,United Kingdom',
                f"536367,POST,POSTAGE,1,{t},18.00,12583.0,France",  # 6: not a product
            ]
        ).encode()
        + b"\n",
    )
    conn = duckdb.connect()
    ensure_staging_tables(conn)
    load_raw_window(conn, OnlineRetailSource(tmp_path / "or"), date(2010, 12, 1), date(2010, 12, 1))
    stage_transactions_window(conn, [date(2010, 12, 1)])
    assert rows(conn, "SELECT order_id, source_line FROM raw.transactions ORDER BY 2") == [
        ("536365", 2),
        ("536366", 4),
        ("536367", 6),
    ]
    assert rows(conn, "SELECT source_line, rule FROM staging.quarantine") == [
        (6, "non_product_line")
    ]


def latin1_day(root: Path, pad: int) -> tuple[Path, int]:
    """A day file whose line 5 has a Latin-1 'é'; lines 2-4 carry `pad` characters each."""
    lines = [f"O{i},C1,{TS},P1,1,2.00,Cup{'x' * pad},Kitchen" for i in (1, 2, 3)]
    data = "\n".join([HEADER, *lines]).encode() + b"\n"
    data += f"O4,C1,{TS},P1,1,2.00,Caf".encode() + b"\xe9,Kitchen\n"
    data += f"O5,C1,{TS},P1,1,2.00,Cup,Kitchen\n".encode()
    path = write_bytes(root / "transactions" / "2024-03-01.csv", data)
    return path, data.index(b"\xe9")


@pytest.mark.parametrize(
    "pad",
    [0, 3000],
    ids=["small file (read with the header)", "past the first 8 KB (found by the DuckDB scan)"],
)
def test_a_latin1_byte_is_reported_at_its_line_and_byte_offset(tmp_path: Path, pad: int) -> None:
    root = tmp_path / "data"
    path, offset = latin1_day(root, pad)
    assert (offset > 8192) == (pad > 0)
    conn = duckdb.connect()
    with pytest.raises(DataContractError) as raised:
        load_raw_window(conn, CanonicalSource(root), DAY1, DAY1)
    message = str(raised.value)
    # One wording for every source (sources/text_encodings.py), whichever read found it.
    assert message.startswith(f"{path}: line 5, byte offset {offset}: byte 0xE9 "), message
    assert "header" not in message
    assert "utf-8" in message.lower() and "iconv" in message  # what it is, what to do


def test_first_undecodable_byte_across_chunk_boundaries(tmp_path: Path) -> None:
    # A valid two-byte character split by the 1 MiB read boundary is not an error; the first
    # bad byte after it is found with its line and offset.
    head = b"a" * ((1 << 20) - 1) + "é".encode() + b"\nline two\nthree \xff\n"
    path = write_bytes(tmp_path / "big.csv", head)
    found = first_undecodable_byte(path)
    assert found is not None
    assert (found.line, found.offset, found.byte) == (3, head.index(b"\xff"), 0xFF)
    assert found.before == "three "
    assert first_undecodable_byte(write_bytes(tmp_path / "ok.csv", "é\n".encode())) is None


def test_a_load_error_after_a_multiline_field_names_the_editor_line(tmp_path: Path) -> None:
    root = tmp_path / "data"
    day_file(
        root,
        DAY1,
        [
            f'O1,C1,{TS},P1,1,2.00,"Mug\nlarge",Kitchen',  # lines 2-3
            "",  # line 4
            f"O2,C1,{TS},P1,1,2.00,Cup,Kitchen",  # line 5
            f"O3,C1,{TS},P1,1",  # line 6: too few fields (DuckDB says line 5)
        ],
    )
    with pytest.raises(RawLoadError) as raised:
        load_raw_window(duckdb.connect(), CanonicalSource(root), DAY1, DAY1)
    message = str(raised.value)
    assert "2024-03-01.csv: could not be loaded: " in message
    assert "CSV Error on Line: 6 " in message
    assert "run again" in message
    assert isinstance(raised.value, DataContractError)  # a user error (exit code 2)


def test_a_blank_first_line_is_named(tmp_path: Path) -> None:
    root = tmp_path / "data"
    write_bytes(root / "transactions" / "2024-03-01.csv", f"\n{HEADER}\n".encode())
    with pytest.raises(DataContractError, match=r"2024-03-01\.csv: line 1 is blank"):
        load_raw_window(duckdb.connect(), CanonicalSource(root), DAY1, DAY1)


@pytest.mark.parametrize(
    ("data", "maybe"),
    [
        (b"a,b\n1,2\n3,4\n", False),
        (b"a,b\r\n1,2\r\n3,4", False),
        (b'a,b\n1,"x, ""quoted"" y"\n', False),
        (b"", False),
        (b"a,b\n1,2\n\n3,4\n", True),
        (b"a,b\r\n1,2\r\n\r\n3,4\r\n", True),
        (b'a,b\n1,"x\ny"\n', True),
        (b'a,b\n1,"x""\ny"\n', True),
        (b"a,b\r1,2\r", True),  # CR line ends: the csv module decides
    ],
)
def test_the_byte_check_only_lets_plain_files_skip_the_csv_parse(
    tmp_path: Path, data: bytes, maybe: bool
) -> None:
    assert may_shift(write_bytes(tmp_path / "f.csv", data)) is maybe


def test_line_shifts_of_a_file_and_the_cache_follows_changes(tmp_path: Path) -> None:
    path = write_bytes(tmp_path / "f.csv", b'h\n1\n\n"2\n2"\n3\n\n\n4\n')
    shifts = line_shifts(path)
    assert shifts == LineShifts(breaks=(2, 3, 4), shifts=(1, 2, 4), blank_lines=3)
    assert [shifts.line(r) for r in (1, 2, 3, 4)] == [2, 4, 6, 9]
    write_bytes(path, b"h\n1\n2\n3\n")
    assert CsvFile(path).shifts() == LineShifts()
