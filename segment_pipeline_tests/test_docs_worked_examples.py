"""The worked examples of docs/sources.md, run as written: the files and the mapping are taken
from the page (`<!-- example-file: PATH [encoding=..] [newline=crlf] -->` before each block),
the command's flags are parsed by the CLI's own parser, and the results the page states are
checked. A change that breaks an example breaks this test, not a reader's first run."""

from __future__ import annotations

import re
import shlex
from decimal import Decimal
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from segment_pipeline.cli import _settings_from_args, build_parser
from segment_pipeline.runner import execute_pipeline
from segment_pipeline.settings import PROJECT_ROOT
from segment_pipeline.sources import DataContractError
from segment_pipeline_tests.conftest import settings_for

DOC = PROJECT_ROOT / "docs" / "sources.md"
FILE_BLOCK = re.compile(
    r"<!-- example-file: (?P<path>\S+)(?P<options>(?: \w+=\S+)*) -->\n```[^\n]*\n(?P<body>.*?)```",
    re.DOTALL,
)
COMMAND_BLOCK = re.compile(r"<!-- example-command -->\n```bash\n(?P<command>.*?)\n```", re.DOTALL)


def worked_examples() -> dict[str, str]:
    """Title -> text of every '#### Worked example:' section."""
    parts = re.split(r"^#### Worked example: (.+)$", DOC.read_text(encoding="utf-8"), flags=re.M)
    return {
        title.strip(): re.split(r"^#{1,4} ", body, maxsplit=1, flags=re.M)[0]
        for title, body in zip(parts[1::2], parts[2::2], strict=True)
    }


def run_example(section: str, root: Path, instance: dg.DagsterInstance, selection: str):
    """Write the section's files under `root`, run its command there; the warehouse path."""
    for block in FILE_BLOCK.finditer(section):
        options = dict(o.split("=", 1) for o in block["options"].split())
        text = block["body"]
        if options.get("newline") == "crlf":
            text = text.replace("\n", "\r\n")
        path = root / block["path"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode(options.get("encoding", "utf-8")))
    command = shlex.split(COMMAND_BLOCK.search(section)["command"])
    assert command[:2] == [".venv/bin/segment-pipeline", "run"]
    args = build_parser().parse_args(command[1:])
    for name in ("data", "mapping", "db"):  # relative to the folder the reader runs it in
        setattr(args, name, root / getattr(args, name))
    settings = _settings_from_args(args)
    outcome = execute_pipeline(settings, instance=instance, selection=selection, echo=False)
    assert outcome.success, outcome.messages
    return settings.db_path


INGEST = 'key:"raw/*" or key:"staging/*"'


def test_every_worked_example_is_tested() -> None:
    assert set(worked_examples()) == {
        "line totals instead of unit prices",
        "a household file with its own bands",
        "a Windows-1252 export",
    }


def test_line_totals_example(tmp_path: Path, instance: dg.DagsterInstance) -> None:
    section = worked_examples()["line totals instead of unit prices"]
    db = run_example(section, tmp_path, instance, f'{INGEST} or key:"marts/rfm_customer_segments"')
    with duckdb.connect(str(db), read_only=True) as conn:
        lines = conn.execute(
            "SELECT product_id, quantity, amount, unit_price FROM staging.transactions "
            "ORDER BY source_line"
        ).fetchall()
        monetary = dict(
            conn.execute("SELECT customer_id, monetary FROM marts.rfm_customer_segments").fetchall()
        )
        quarantined = conn.execute("SELECT count(*) FROM staging.quarantine").fetchall()[0][0]
    assert lines == [
        ("BOLT-M4", 26547, Decimal("65.0100"), Decimal("0.0024")),
        ("DRILL-1", 1, Decimal("89.9000"), Decimal("89.9000")),
        ("BOLT-M4", 100, Decimal("0.2500"), Decimal("0.0025")),
    ]
    assert monetary == {"C1": Decimal("154.9100"), "C2": Decimal("0.2500")}
    assert quarantined == 0
    assert "63.7128" in section and "154.91" in section  # what the page says


def test_household_example(tmp_path: Path, instance: dg.DagsterInstance) -> None:
    section = worked_examples()["a household file with its own bands"]
    behaviour = (
        'key:"marts/occupation_groups" or key:"marts/category_price_segments" '
        'or key:"marts/customer_behaviour"'
    )
    db = run_example(section, tmp_path, instance, f"{INGEST} or {behaviour}")
    with duckdb.connect(str(db), read_only=True) as conn:
        profiles = conn.execute(
            "SELECT customer_id, age_band, marital_status, gender FROM staging.customers "
            "ORDER BY customer_id"
        ).fetchall()
        notes = conn.execute(
            "SELECT entity, rule, source_file, source_line FROM staging.quarantine"
        ).fetchall()
        bands = dict(
            conn.execute("SELECT customer_id, age_band FROM marts.customer_behaviour").fetchall()
        )
    assert profiles == [
        ("H1", "25-34", "verheiratet", "F"),
        ("H2", "65+", "ledig", "M"),
        ("H3", "19-24", "ledig", "F"),
        ("H4", "Unknown", "verwitwet", "M"),
    ]
    assert [(e, r, Path(f).name, n) for e, r, f, n in notes] == [
        ("customer_fields", "age_band_not_declared", "households.csv", 5)
    ]
    assert bands == {"H1": "25-34", "H2": "65+", "H3": "19-24", "H4": "Unknown"}


def test_windows_1252_example(tmp_path: Path, instance: dg.DagsterInstance) -> None:
    section = worked_examples()["a Windows-1252 export"]
    db = run_example(section, tmp_path, instance, INGEST)
    with duckdb.connect(str(db), read_only=True) as conn:
        names = conn.execute(
            "SELECT product_name, source_line FROM staging.transactions ORDER BY source_line"
        ).fetchall()
    assert names == [("“Deluxe” Lampe", 2), ("Café – Tasse", 3), ("Geschenkkarte €25", 4)]
    assert (tmp_path / "data" / "export.csv").read_bytes().count(b"\r\n") == 4
    # Declared as latin-1 instead, the run stops before loading anything (exit code 2).
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(mapping.read_text().replace("windows-1252", "latin-1"))
    settings = settings_for(tmp_path / "data", tmp_path / "w2.duckdb", source_format="mapped")
    settings = settings.with_overrides(mapping_file=mapping)
    with pytest.raises(DataContractError, match=r"line 2, byte offset 89: byte 0x93"):
        execute_pipeline(settings, instance=instance, selection=INGEST, echo=False)
    assert not (tmp_path / "w2.duckdb").exists()
