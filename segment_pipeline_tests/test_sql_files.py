"""The SQL files (segment_pipeline/sql): linted by sqlfluff, every file used by the code, every
table placeholder a declared table or view."""

from __future__ import annotations

import ast
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


#: An SQL keyword in upper case (as the project writes SQL, sqlfluff's CP01): what tells a
#: query from prose such as "Source: marts.rfm_summary (from marts.rfm_customer_segments)" in
#: a figure caption or an asset description.
_SQL_KEYWORD = re.compile(r"\b(SELECT|FROM|JOIN|INTO|UPDATE|DELETE|INSERT|CREATE|DROP|WITH)\b")
_DECLARATIONS = {"TableDef", "ViewDef"}


def sql_strings_naming_tables(source: str, schemas: set[str]) -> list[tuple[int, str]]:
    """(line, text) of the string literals and f-strings of a Python source that are SQL and
    write a schema-qualified table name out, or that are nothing but such a name (a table
    handed to SQL built elsewhere). Docstrings and the arguments of TableDef / ViewDef
    declarations are skipped."""
    schema = "|".join(sorted(schemas))
    qualified = re.compile(rf"(?<![\w.{{])(?:{schema})\.[A-Za-z_]\w*")
    tree = ast.parse(source)
    skipped: set[int] = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
        ):
            skipped.add(id(body[0].value))
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            if name in _DECLARATIONS:
                skipped.update(id(n) for n in ast.walk(node))
        if isinstance(node, ast.JoinedStr):  # judged whole, not part by part
            skipped.update(id(v) for v in node.values)
    found = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
        elif isinstance(node, ast.JoinedStr):
            text = "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
        else:
            continue
        if qualified.fullmatch(text.strip()) or (
            qualified.search(text) and _SQL_KEYWORD.search(text)
        ):
            found.append((node.lineno, " ".join(text.split())))
    return found


def test_no_schema_qualified_table_in_python_sql() -> None:
    """The Python code names no table in its SQL: queries are SQL files with table
    placeholders, or built from a TableDef (`table.fqn`, tables.read_table / row_count)."""
    schemas = {r.schema for r in RELATIONS.values()}
    slips = [
        f"{path.relative_to(ROOT)}:{line}: {text[:120]}"
        for path in sorted((ROOT / "segment_pipeline").rglob("*.py"))
        for line, text in sql_strings_naming_tables(path.read_text(encoding="utf-8"), schemas)
    ]
    assert not slips, "SQL naming a table outside the registry:\n" + "\n".join(slips)


def test_the_python_sql_check_finds_slips() -> None:
    source = '''"""Reads marts.rfm_summary (a docstring)."""
T = TableDef("marts", "x", columns=(Column("id", "INT", "Key of staging.sales_lines"),))
CAPTION = "Source: marts.rfm_summary (from marts.rfm_customer_segments)"
A = "SELECT count(*) FROM marts.rfm_summary"
B = f"DELETE FROM staging.quarantine WHERE entity = {entity!r}"
C = ("SELECT * "
     "FROM raw.loads")
D = f"SELECT * FROM {T.fqn}"
E = sql.replace("staging.sales_lines", lines_table)
'''
    found = sql_strings_naming_tables(source, {"marts", "staging", "raw"})
    assert [line for line, _ in found] == [4, 5, 6, 9]


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
    linted wrapped in `WITH ... SELECT 1`, expression partials (`_name_expr.sql`) in
    `SELECT ... AS x FROM t`."""
    # sqlfluff is a dev dependency (`make test` installs it): a missing linter fails here,
    # it does not skip.
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
        text = path.read_text(encoding="utf-8")
        expression = path.stem.endswith("_expr")
        wrapped = f"SELECT\n{text}AS x\nFROM t\n" if expression else f"WITH\n{text}SELECT 1 AS x\n"
        for v in linter.lint_string(wrapped, fname=str(path)).get_violations():
            if v.rule_code() == "ST03":  # the wrapper uses none of the partial's CTEs
                continue
            problems.append(f"{path}:{v.line_no - 1}: {v.rule_code()} {v.desc()}")
    assert not problems, "sqlfluff:\n" + "\n".join(problems)
