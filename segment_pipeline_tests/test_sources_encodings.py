"""Text encodings of CSV inputs (issue 11, "Encodings").

Small files written here in each accepted encoding, with known text (curly quotes, the euro
sign, Korean product names), must reach raw and staging unchanged; a byte that is not in the
declared encoding stops the run with the file, the physical line, the byte offset and the
byte's value; a Windows-1252 export runs end to end through Dagster, and its mis-declared twin
fails through the CLI in one line.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest

from segment_pipeline.logic.staging import RawLoadError, ensure_staging_tables, load_raw_window
from segment_pipeline.runner import execute_pipeline
from segment_pipeline.sources import CanonicalSource, DataContractError
from segment_pipeline.sources import text_encodings as te
from segment_pipeline.sources.mapped import MappedSource
from segment_pipeline.sources.mapping_file import load_mapping
from segment_pipeline_tests.conftest import settings_for
from segment_pipeline_tests.test_sources_mapped import BASE_MAPPING, rows, stage, write_mapping

DAY = date(2025, 11, 3)
HEADER = ["Nr", "Kunde", "Zeit", "Artikel", "Menge", "Preis", "Name", "Gruppe", "Land"]

WESTERN = ["“Deluxe” Lamp", "Café – crème", "€5 voucher", "Señor’s mug"]
LATIN_1 = ["Café crème", "Größe ½", "Ça va ¿"]
KOREAN = ["한국 김치", "“특가” 세트", "떡볶이"]
KOREAN_CP949 = ["한국 김치", "똠양꿍", "쌰쌰"]  # 똠, 쌰: cp949 only, not in euc-kr
MIXED = ["“Deluxe” Lamp", "한국 김치", "Café"]


def csv_text(names: list[str], header: list[str] = HEADER) -> str:
    """A mapped file (BASE_MAPPING's layout) with one sale line per product name; the country
    column (kept in `extra`) repeats the name, so the JSON path is checked too."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\n")
    writer.writerow(header)
    for i, name in enumerate(names):
        writer.writerow([f"A{i}", "K1", "03/11/2025 09:30", f"P{i}", "1", "2,50", name, "G", name])
    return out.getvalue()


def encoded(text: str, how: str) -> bytes:
    if how == "utf-8-bom":
        return codecs.BOM_UTF8 + text.encode("utf-8")
    if how == "utf-16-le-bom":
        return codecs.BOM_UTF16_LE + text.encode("utf-16-le")
    if how == "utf-16-be-bom":
        return codecs.BOM_UTF16_BE + text.encode("utf-16-be")
    if how == "utf-16-le":  # no BOM: little-endian, as DuckDB assumes
        return text.encode("utf-16-le")
    return text.encode(how)


def mapped(
    tmp_path: Path, data: bytes, encoding: str | None, *, name: str = "2025-11-03.csv", **extra: Any
) -> MappedSource:
    path = tmp_path / "tx" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    doc = {**BASE_MAPPING, **extra}
    if encoding is not None:
        doc["encoding"] = encoding
    mapping = write_mapping(tmp_path / "mapping.yaml", doc)
    return MappedSource(tmp_path, load_mapping(mapping), undated_day=DAY)


# --------------------------------------------------------------------------------------------
# The mapping value
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("utf-8", "utf-8"),
        ("UTF8", "utf-8"),
        ("utf-8-sig", "utf-8"),
        ("UTF-16", "utf-16"),
        ("latin-1", "latin-1"),
        ("ISO-8859-1", "latin-1"),
        ("latin1", "latin-1"),
        ("cp1252", "cp1252"),
        ("Windows-1252", "cp1252"),
        ("CP949", "cp949"),
        ("ms949", "cp949"),
        ("EUC-KR", "euc-kr"),
        ("euckr", "euc-kr"),
    ],
)
def test_encoding_aliases_are_normalised(tmp_path: Path, value: str, expected: str) -> None:
    path = write_mapping(tmp_path / "m.yaml", {**BASE_MAPPING, "encoding": value})
    assert load_mapping(path).csv.encoding == expected


@pytest.mark.parametrize("value", ["shift_jis", "ascii", "klingon", 1252.5])
def test_other_encodings_are_refused_listing_the_accepted_ones(tmp_path: Path, value) -> None:
    path = write_mapping(tmp_path / "m.yaml", {**BASE_MAPPING, "encoding": value})
    with pytest.raises(DataContractError) as error:
        load_mapping(path)
    message = str(error.value)
    assert str(path) in message and f"encoding {value!r} is not supported" in message
    for name in ("utf-8", "utf-16", "latin-1", "cp1252", "windows-1252", "cp949", "euc-kr"):
        assert name in message


# --------------------------------------------------------------------------------------------
# Files in each encoding load with the right text
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "how", "names", "name_column"),
    [
        ("utf-8", "utf-8", MIXED, "상품명 “name”"),
        ("utf-8", "utf-8-bom", MIXED, "상품명 “name”"),
        ("utf-8-sig", "utf-8-bom", MIXED, "Name"),
        ("utf-16", "utf-16-le-bom", MIXED, "상품명 “name”"),
        ("utf-16", "utf-16-be-bom", MIXED, "상품명 “name”"),
        ("utf-16", "utf-16-le", MIXED, "Name"),
        ("latin-1", "latin-1", LATIN_1, "Désignation"),
        ("windows-1252", "cp1252", WESTERN, "Bezeichnung “Name”"),
        ("cp949", "cp949", KOREAN_CP949, "상품명"),
        ("euc-kr", "euc-kr", KOREAN, "상품명"),
    ],
)
def test_each_encoding_reaches_raw_and_staging_unchanged(
    tmp_path: Path, encoding: str, how: str, names: list[str], name_column: str
) -> None:
    header = [*HEADER[:6], name_column, *HEADER[7:]]
    mapping = json.loads(json.dumps(BASE_MAPPING))
    mapping["transactions"]["columns"]["product_name"] = name_column
    source = mapped(tmp_path, encoded(csv_text(names, header), how), encoding, **mapping)
    conn = duckdb.connect()
    stage(conn, source)
    expected = [(name, 2 + i, {"Land": name}) for i, name in enumerate(names)]
    for table in ("raw.transactions", "staging.transactions"):
        found = rows(conn, f"SELECT product_name, source_line, extra FROM {table} ORDER BY 2")
        assert [(n, line, json.loads(x)) for n, line, x in found] == expected, table
    assert rows(conn, "SELECT DISTINCT source_file FROM raw.transactions") == [("2025-11-03.csv",)]
    assert rows(conn, "SELECT count(*) FROM staging.quarantine") == [(0,)]


def test_utf8_copies_are_made_once_per_file_version(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_bytes(csv_text(WESTERN).encode("cp1252"))
    copy, duck = te.csv_input(path, "cp1252", "advice")
    assert duck == "utf-8" and copy != path
    assert copy.read_text(encoding="utf-8") == csv_text(WESTERN)
    assert te.csv_input(path, "cp1252", "advice")[0] == copy  # cached
    path.write_bytes(csv_text(WESTERN[:1]).encode("cp1252"))  # the file changes
    newer, _ = te.csv_input(path, "cp1252", "advice")
    assert newer != copy and not copy.exists()
    assert newer.read_text(encoding="utf-8") == csv_text(WESTERN[:1])
    # Encodings DuckDB reads itself are not copied.
    path.write_bytes(csv_text(LATIN_1).encode("latin-1"))
    assert te.csv_input(path, "latin-1", "advice") == (path, "latin-1")


def test_utf8_copies_are_deleted_when_the_process_exits(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_bytes(csv_text(KOREAN).encode("euc-kr"))
    script = (
        "import sys; from pathlib import Path; "
        "from segment_pipeline.sources.text_encodings import csv_input; "
        "print(csv_input(Path(sys.argv[1]), 'euc-kr', '')[0])"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(path)], capture_output=True, text=True, check=True
    )
    copy = Path(done.stdout.strip())
    assert copy.name.endswith("export.csv") and copy.parent.name.startswith("segment-pipeline")
    assert not copy.parent.exists()


def test_errors_in_a_copy_name_the_original_file(tmp_path: Path) -> None:
    text = csv_text(WESTERN) + "A9;K1;03/11/2025 09:30;P9;1;2,50;x;G;DE;one too many\n"
    source = mapped(tmp_path, text.encode("cp1252"), "cp1252")
    with pytest.raises((DataContractError, RawLoadError)) as error:
        load_raw_window(duckdb.connect(), source, DAY, DAY)
    message = str(error.value)
    assert message.startswith(f"{tmp_path / 'tx' / '2025-11-03.csv'}: could not be read")
    assert "segment-pipeline-utf8" not in message


# --------------------------------------------------------------------------------------------
# Undecodable bytes: file, physical line, byte offset, byte value, what to do
# --------------------------------------------------------------------------------------------

#: A cp1252 export: line 3 holds a quoted value over two physical lines, so the curly quote on
#: the third data row is on physical line 5 (DuckDB would say "line 4").
CP1252_EXPORT = (
    "Nr;Kunde;Zeit;Artikel;Menge;Preis;Name;Gruppe;Land\n"
    "A1;K1;03/11/2025 09:30;P1;1;2,50;Lamp;G;DE\n"
    'A2;K1;03/11/2025 09:30;P2;1;2,50;"two\nlines";G;DE\n'
    "A3;K1;03/11/2025 09:30;P3;1;2,50;“Deluxe” Lamp;G;DE\n"
).encode("cp1252")
QUOTE_OFFSET = CP1252_EXPORT.index(b"\x93")


def load_error(source: MappedSource | CanonicalSource) -> str:
    conn = duckdb.connect()
    ensure_staging_tables(conn)
    with pytest.raises((DataContractError, RawLoadError)) as error:
        load_raw_window(conn, source, DAY, DAY)
    return str(error.value)


@pytest.mark.parametrize("declared", ["utf-8", "latin-1"])
def test_a_cp1252_quote_in_a_file_declared_otherwise_is_located(
    tmp_path: Path, declared: str
) -> None:
    message = load_error(mapped(tmp_path, CP1252_EXPORT, declared))
    path = tmp_path / "tx" / "2025-11-03.csv"
    assert message.startswith(
        f"{path}: line 5, byte offset {QUOTE_OFFSET}: byte 0x93 cannot be read as {declared} "
        "(in cp1252, the Windows encoding, 0x93 is '“'). "
        f"Set `encoding:` in the mapping {tmp_path / 'mapping.yaml'} to the file's encoding"
    )
    assert "cp1252 (windows-1252)" in message and "\n" not in message


def test_a_single_export_declared_wrongly_stops_before_any_load(tmp_path: Path) -> None:
    # A file without a day in its name is read for its days first: the error comes from there.
    source = mapped(tmp_path, CP1252_EXPORT, "latin-1", name="export.csv")
    with pytest.raises(DataContractError) as error:
        source.transaction_days()
    assert f"export.csv: line 5, byte offset {QUOTE_OFFSET}: byte 0x93" in str(error.value)


def test_a_byte_cp1252_does_not_define_is_located(tmp_path: Path) -> None:
    data = CP1252_EXPORT + b"A4;K1;03/11/2025 09:30;P4;1;2,50;bad \x81 byte;G;DE\n"
    message = load_error(mapped(tmp_path, data, "cp1252"))
    offset = data.index(b"\x81")
    assert message.startswith(
        f"{tmp_path / 'tx' / '2025-11-03.csv'}: line 6, byte offset {offset}: "
        "byte 0x81 cannot be read as cp1252. Set `encoding:` in the mapping"
    )


def test_cp949_hangul_under_a_declared_euc_kr_is_located(tmp_path: Path) -> None:
    data = csv_text(KOREAN_CP949).encode("cp949")
    message = load_error(mapped(tmp_path, data, "euc-kr"))
    offset = data.index("똠".encode("cp949"))
    assert f"line 3, byte offset {offset}: byte 0x{data[offset]:02X} cannot be read as euc-kr" in (
        message
    )
    assert "cp949, Windows' Korean encoding, is a superset of euc-kr" in message


def test_a_utf16_file_declared_utf8_says_so(tmp_path: Path) -> None:
    message = load_error(mapped(tmp_path, encoded(csv_text(MIXED), "utf-16-le-bom"), None))
    assert message.startswith(
        f"{tmp_path / 'tx' / '2025-11-03.csv'}: line 1, byte offset 0: byte 0xFF cannot be "
        "read as utf-8 (the file starts with a UTF-16 byte-order mark: it is UTF-16)"
    )


def test_a_bad_byte_in_a_customers_file_is_located(tmp_path: Path) -> None:
    # The customers master is staged from the adapter's SQL; the asset asks the source to
    # explain DuckDB's error, which must look at the customers file too. (The bad byte is past
    # the part of the file the header read decodes.)
    customers = tmp_path / "customers.csv"
    good = "".join(f"K{i};M\n" for i in range(5000))
    data = f"Kunde;Geschlecht\n{good}K5000;“F”\n".encode("cp1252")
    customers.write_bytes(data)
    source = mapped(
        tmp_path,
        csv_text(WESTERN).encode("utf-8"),
        "utf-8",
        customers={
            "path": "customers.csv",
            "columns": {"customer_id": "Kunde", "gender": "Geschlecht"},
        },
    )
    query = source.raw_customers(duckdb.connect())
    assert query is not None
    with pytest.raises(duckdb.Error) as error:
        duckdb.connect().execute(f"SELECT * FROM ({query.sql})", query.params).fetchall()
    offset = data.index(b"\x93")
    assert str(source.explain_read_error(error.value)).startswith(
        f"{customers}: line 5002, byte offset {offset}: byte 0x93 cannot be read as utf-8"
    )


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 1 << 20])
@pytest.mark.parametrize(
    ("encoding", "codec", "bad"),
    [
        ("utf-8", "utf-8", b"\xe9"),
        ("utf-16", "utf-16-le", b"\x00\xdc"),  # a lone low surrogate
        ("latin-1", "latin-1", b"\x93"),
        ("cp1252", "cp1252", b"\x8d"),
        ("cp949", "cp949", b"\xff"),
        ("euc-kr", "euc_kr", b"\xff"),
    ],
)
def test_the_offset_is_exact_across_chunk_boundaries(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    chunk: int,
    encoding: str,
    codec: str,
    bad: bytes,
) -> None:
    monkeypatch.setattr(te, "CHUNK_BYTES", chunk)
    text = "a;b\nCafé;ok\n" if encoding in ("latin-1", "cp1252") else "a;김치\n“x”;가\n"
    before = (text * 3).encode(codec)
    bom = codecs.BOM_UTF16_LE if encoding == "utf-16" else b""
    path = tmp_path / "f.csv"
    path.write_bytes(bom + before + bad + text.encode(codec))
    found = te.find_undecodable(path, encoding)
    assert found is not None
    assert (found.line, found.offset, found.found[:1]) == (7, len(bom) + len(before), bad[:1])
    path.write_bytes(bom + before)
    assert te.find_undecodable(path, encoding) is None


# --------------------------------------------------------------------------------------------
# Canonical day files are UTF-8
# --------------------------------------------------------------------------------------------

CANONICAL_HEADER = "order_id,customer_id,order_ts,product_id,quantity,unit_price,product_name\n"


def canonical(tmp_path: Path, data: bytes) -> CanonicalSource:
    path = tmp_path / "transactions" / "2025-11-03.csv"
    path.parent.mkdir(parents=True)
    path.write_bytes(data)
    return CanonicalSource(tmp_path)


def test_a_canonical_day_file_with_a_bad_byte_names_line_and_offset(tmp_path: Path) -> None:
    data = (
        CANONICAL_HEADER
        + "O1,C1,2025-11-03 09:00:00,P1,1,2.50,“Deluxe” Lamp\n"
        + 'O2,C1,2025-11-03 09:00:00,P2,1,2.50,"two\nlines"\n'
    ).encode("utf-8") + b"O3,C1,2025-11-03 09:00:00,P3,1,2.50,Caf\xe9\n"
    message = load_error(canonical(tmp_path, data))
    offset = data.index(b"\xe9")
    assert message.startswith(
        f"{tmp_path / 'transactions' / '2025-11-03.csv'}: line 5, byte offset {offset}: "
        "byte 0xE9 cannot be read as utf-8. Canonical files are UTF-8"
    )


def test_a_canonical_header_with_a_bad_byte_names_line_and_offset(tmp_path: Path) -> None:
    data = b"order_id,customer_id,order_ts,product_id,quantity,unit_price,Pr\x9fis\n"
    source = canonical(tmp_path, data)
    with pytest.raises(DataContractError) as error:
        source.raw_transactions(duckdb.connect(), DAY)
    offset = data.index(b"\x9f")
    assert f"line 1, byte offset {offset}: byte 0x9F cannot be read as utf-8" in str(error.value)


def test_canonical_utf8_with_a_bom_loads(tmp_path: Path) -> None:
    data = codecs.BOM_UTF8 + (
        CANONICAL_HEADER + "O1,C1,2025-11-03 09:00:00,P1,1,2.50,“Deluxe” 김치\n"
    ).encode("utf-8")
    conn = duckdb.connect()
    stage(conn, canonical(tmp_path, data))
    assert rows(conn, "SELECT product_name, source_line FROM staging.transactions") == [
        ("“Deluxe” 김치", 2)
    ]


# --------------------------------------------------------------------------------------------
# End to end: a Windows-1252 export through Dagster, and a mis-declared one through the CLI
# --------------------------------------------------------------------------------------------


def write_export(tmp_path: Path, encoding: str) -> tuple[Path, Path]:
    data = tmp_path / "data"
    (data / "tx").mkdir(parents=True)
    (data / "tx" / "export.csv").write_bytes(csv_text(WESTERN).encode("cp1252"))
    mapping = write_mapping(
        tmp_path / "mapping.yaml",
        {**BASE_MAPPING, "transactions": {**BASE_MAPPING["transactions"], "path": "tx"}}
        | {"encoding": encoding},
    )
    return data, mapping


def test_a_windows_1252_export_runs_end_to_end(
    tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    data, mapping = write_export(tmp_path, "windows-1252")
    db = tmp_path / "w" / "w.duckdb"
    settings = settings_for(data, db, source_format="mapped", mapping_file=mapping)
    outcome = execute_pipeline(
        settings, instance=instance, selection='key:"raw/*" or key:"staging/*"', echo=False
    )
    assert outcome.success, outcome.messages
    with duckdb.connect(str(db), read_only=True) as conn:
        assert rows(conn, "SELECT product_name FROM staging.transactions ORDER BY 1") == [
            (name,) for name in sorted(WESTERN)
        ]
        assert rows(conn, "SELECT DISTINCT source_file FROM raw.transactions") == [("export.csv",)]


def test_a_mis_declared_export_fails_through_the_cli_in_one_line(tmp_path: Path) -> None:
    data, mapping = write_export(tmp_path, "latin-1")
    args = ["run", "--data", str(data), "--format", "mapped", "--mapping", str(mapping)]
    args += ["--db", str(tmp_path / "w.duckdb")]
    done = subprocess.run(
        [sys.executable, "-m", "segment_pipeline.cli", *args],
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("SEGMENT_PIPELINE_")},
            "DAGSTER_HOME": str(tmp_path / "dagster_home"),
        },
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    offset = csv_text(WESTERN).encode("cp1252").index(b"\x93")
    [error] = [line for line in output.splitlines() if line.startswith("error")]
    assert error.startswith(
        f"error: {data / 'tx' / 'export.csv'}: line 2, byte offset {offset}: byte 0x93 "
        "cannot be read as latin-1 (in cp1252, the Windows encoding, 0x93 is '“'). "
        f"Set `encoding:` in the mapping {mapping}"
    ), output
    assert "Traceback" not in output
