"""The pipeline's SQL statements, read from `segment_pipeline/sql/<layer>/<name>.sql`.

A file holds one statement as DuckDB runs it, with two kinds of `{{ ... }}` placeholders:

- `{{ schema.name }}` (a dotted name): a warehouse table or view, filled from the one registry
  of declared relations (:data:`segment_pipeline.tables.RELATIONS`). A name nobody declared is
  an error when the file is loaded, not when the query runs.
- `{{ name }}` (a plain name): a piece of SQL the calling code supplies because it is
  genuinely dynamic (a column list generated from a table declaration, a comparison chosen
  per call, a temp table name held in a Python constant). Every placeholder of the file must
  be given, and nothing else may be.

Values are never placeholders: they stay bound parameters (`?` or `$name`). Identifiers and
fragments come from the pipeline's own code, never from user input.

Files whose name starts with `_` are partials (e.g. a list of CTEs spliced into several
statements); they are loaded the same way and passed to another file as a fragment.
`segment_pipeline_tests/test_sql_files.py` lints every file with sqlfluff (`.sqlfluff`) and
checks that every file is used and every table placeholder names a declared relation.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache
from importlib import resources

from segment_pipeline.tables import RELATIONS

#: `{{ name }}` or `{{ schema.name }}`, spaces inside the braces optional.
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?)\s*\}\}")


class SqlFileError(LookupError):
    """A SQL file is missing, or its placeholders do not match what the code supplies."""


@cache
def sql_text(name: str) -> str:
    """The raw text of `sql/<name>.sql` (placeholders unfilled), read once per process."""
    path = resources.files("segment_pipeline").joinpath("sql", f"{name}.sql")
    if not path.is_file():
        raise SqlFileError(f"no SQL file segment_pipeline/sql/{name}.sql")
    return path.read_text(encoding="utf-8")


def placeholders(text: str) -> set[str]:
    """The placeholder names of a SQL text."""
    return set(PLACEHOLDER.findall(text))


def load_sql(name: str, **fragments: str) -> str:
    """The statement of `sql/<name>.sql` (e.g. `load_sql("rfm/summary")`), its table
    placeholders filled from the registry and its fragment placeholders from `fragments`."""
    text = sql_text(name)
    wanted = {p for p in placeholders(text) if "." not in p}
    if wanted != set(fragments):
        raise SqlFileError(
            f"sql/{name}.sql has the fragment placeholders {sorted(wanted)}, "
            f"but the code supplies {sorted(fragments)}"
        )

    def fill(match: re.Match[str]) -> str:
        key = match.group(1)
        if "." not in key:
            return fragments[key]
        relation = RELATIONS.get(key)
        if relation is None:
            raise SqlFileError(
                f"sql/{name}.sql names {key}, which no TableDef or ViewDef declares "
                "(or the module declaring it is not imported by the code loading the file)"
            )
        return relation.fqn

    # one pass: a fragment's own text is never scanned for placeholders
    return PLACEHOLDER.sub(fill, text)


#: The fragment `{{ customer_bucket_filter }}` of a per-customer query run in buckets of
#: customers to stay within DuckDB's memory limit: it keeps bucket $customer_bucket of
#: $customer_buckets by the hash of the id (logic/dynamics.py, `create_by_customer_buckets`).
#: `hash()` is a UBIGINT and a bound integer parameter an INTEGER, whose common type is a
#: HUGEINT: without the casts every row's modulo ran in 128 bits, which made a bucket's scan of
#: the 100M-line purchases 3.3 times slower (17.4 s against 5.3 s; the same buckets either way).
BUCKET_OF = "% CAST($customer_buckets AS UBIGINT) = CAST($customer_bucket AS UBIGINT)"
CUSTOMER_BUCKET_FILTER = f"WHERE hash(customer_id) {BUCKET_OF}"


def whole_and_one_bucket(load: Callable[..., str], name: str, **fragments: str) -> tuple[str, str]:
    """A per-customer statement twice, by `load` (`load_sql` or a wrapper of it): whole (its
    `customer_bucket_filter` empty) and for one bucket of customers (CUSTOMER_BUCKET_FILTER)."""
    return (
        load(name, customer_bucket_filter="", **fragments),
        load(name, customer_bucket_filter=CUSTOMER_BUCKET_FILTER, **fragments),
    )
