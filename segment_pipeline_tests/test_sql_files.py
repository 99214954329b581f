"""The SQL files (segment_pipeline/sql): linted by sqlfluff, every file used by the code, every
table placeholder a declared table or view."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import segment_pipeline.assets.ingest
import segment_pipeline.figures
import segment_pipeline.logic.clv
import segment_pipeline.logic.dynamics
import segment_pipeline.logic.preference
import segment_pipeline.logic.report  # noqa: F401 (imports every module that declares tables)
from segment_pipeline.sql_files import PLACEHOLDER, SqlFileError, load_sql, placeholders, sql_text
from segment_pipeline.tables import RELATIONS

ROOT = Path(__file__).resolve().parents[1]
SQL_DIR = ROOT / "segment_pipeline" / "sql"
FILES = sorted(SQL_DIR.rglob("*.sql"))
NAMES = [p.relative_to(SQL_DIR).with_suffix("").as_posix() for p in FILES]


def test_there_are_sql_files() -> None:
    assert len(FILES) > 50


@pytest.mark.parametrize("name", NAMES)
def test_table_placeholders_name_declared_tables(name: str) -> None:
    unknown = {p for p in placeholders(sql_text(name)) if "." in p} - set(RELATIONS)
    assert not unknown, f"sql/{name}.sql names undeclared tables {sorted(unknown)}"


def test_every_file_is_loaded_by_the_code() -> None:
    """A file nobody loads is dead SQL (or a typo in a load_sql call)."""
    code = "\n".join(
        p.read_text(encoding="utf-8") for p in (ROOT / "segment_pipeline").rglob("*.py")
    )
    loaded = set(re.findall(r"""["']((?:[a-z_]+)/_?[a-z_]+)["']""", code))
    # names built in code: dynamics/prepare_<name>
    loaded |= {f"dynamics/prepare_{n}" for n in ("order_days", "category_months", "profiles")}
    unused = sorted(set(NAMES) - loaded)
    assert not unused, f"SQL files no code loads: {unused}"


def test_no_schema_qualified_table_outside_placeholders() -> None:
    """Tables are named through the registry: `staging.x` written out is a slip."""
    schemas = {r.schema for r in RELATIONS.values()}
    pattern = re.compile(r"(?<![\w.{])(" + "|".join(sorted(schemas)) + r")\.[a-z_]+")
    slips = []
    for name in NAMES:
        for number, line in enumerate(sql_text(name).splitlines(), 1):
            code = PLACEHOLDER.sub("", line.split("--")[0])
            if pattern.search(code):
                slips.append(f"sql/{name}.sql:{number}: {line.strip()}")
    assert not slips, "\n".join(slips)


def test_load_sql_refuses_missing_or_extra_fragments() -> None:
    with pytest.raises(SqlFileError, match="fragment placeholders"):
        load_sql("staging/validation_frame")
    with pytest.raises(SqlFileError, match="fragment placeholders"):
        load_sql("rfm/summary", sign=">= 0")
    with pytest.raises(SqlFileError, match="no SQL file"):
        load_sql("rfm/no_such_file")


def test_sqlfluff_lint() -> None:
    """sqlfluff (config: .sqlfluff) finds nothing: every file parses in the duckdb dialect and
    keeps the layout, capitalisation and aliasing rules. Partials (`_name.sql`, CTE lists) are
    linted wrapped in `WITH ... SELECT 1`."""
    sqlfluff = pytest.importorskip("sqlfluff")
    from sqlfluff.core import FluffConfig, Linter

    config = FluffConfig.from_path(str(ROOT))
    linter = Linter(config=config)
    result = linter.lint_paths((str(SQL_DIR),), processes=2)
    problems = [
        f"{v['filepath']}:{v['start_line_no']}:{v['start_line_pos']}: {v['code']} "
        f"{v['description']}"
        for record in result.as_records()
        for v in [{**x, "filepath": record["filepath"]} for x in record["violations"]]
    ]
    for path in SQL_DIR.rglob("_*.sql"):
        wrapped = f"WITH\n{path.read_text(encoding='utf-8')}SELECT 1 AS x\n"
        for v in linter.lint_string(wrapped, fname=str(path)).get_violations():
            if v.rule_code() == "ST03":  # the wrapper uses none of the partial's CTEs
                continue
            problems.append(f"{path}:{v.line_no - 1}: {v.rule_code()} {v.desc()}")
    assert sqlfluff and not problems, "sqlfluff:\n" + "\n".join(problems)
