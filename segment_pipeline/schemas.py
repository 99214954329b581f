"""The rules of the staging layer's data contract (SPEC section 2), as rules that build their
pandera checks, and the pandera schema of a table built from its declaration.

A staging table is declared once, as a `TableDef` in `logic/staging.py`: its columns' DuckDB
types, nullability and, for the columns staging validates, their uniqueness and checks (the
rules below). That one declaration creates the table in DuckDB, gives the asset its column
schema in the Dagster UI (with these constraints) and, through `pandera_schema`, validates the
typed rows. Every row a schema rejects goes to `staging.quarantine` with the name of the check
it failed, so the check names below are the rule names users see.

The schemas use pandera's polars backend: DuckDB hands a batch to polars through Arrow without
copying row by row, and the checks run as vectorised polars expressions. On 745k lines that is
0.8 s against 4.2 s for the same checks on pandas (docs/architecture.md, "Validation").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from segment_pipeline.tables import TableDef

if TYPE_CHECKING:
    import pandera.polars as pa
    import polars as pl
    from pandera.api.polars.types import PolarsData

UNKNOWN = "Unknown"

#: Largest absolute difference between `amount` and `quantity * unit_price` that is rounding:
#: half a cent, plus half the last unit-price decimal per unit (a unit price derived from a
#: stated line total is rounded to 4 decimals; the stated amount stays exact).
AMOUNT_TOLERANCE = 0.005
UNIT_PRICE_HALF_STEP = 0.00005


@dataclass(frozen=True)
class Rule:
    """A rule of the contract as the tables declare it: the name it is shown under (the UI's
    column constraints; a rejected row's rule in the quarantine is pandera's name for the same
    check) and how its pandera check is built.

    The check is built when a schema is (:func:`pandera_schema`), not when a table is
    declared: declaring the tables is part of loading the definitions (the UI's code location,
    every `dagster` command, every run), which then imports neither pandera nor polars, about
    0.6 s of it on this VM."""

    label: str
    build: Callable[[], pa.Check]

    def check(self) -> pa.Check:
        """A new pandera check of this rule (a process builds each table's schema once:
        `staging.validation_schema`)."""
        return self.build()


def _not_empty() -> pa.Check:
    import pandera.polars as pa

    return pa.Check.str_length(min_value=1)


def _sign_rule(name: str, holds: Callable[[pl.Expr], pl.Expr]) -> Rule:
    """A rule on the sign of the column it is declared on (`holds` of the column)."""

    def build() -> pa.Check:
        import pandera.polars as pa
        import polars as pl

        return pa.Check(lambda data: data.lazyframe.select(holds(pl.col(data.key))), name=name)

    return Rule(name, build)


#: A text id or label that is not empty (pandera's built-in; its name is its text).
NOT_EMPTY = Rule("str_length(1, None)", _not_empty)

UNIT_PRICE_NOT_NEGATIVE = _sign_rule("unit_price_not_negative", lambda value: value >= 0)
QUANTITY_POSITIVE_FOR_SALE = _sign_rule("quantity_positive_for_sale", lambda value: value > 0)
QUANTITY_NEGATIVE_FOR_RETURN = _sign_rule("quantity_negative_for_return", lambda value: value < 0)


def _amount_is_quantity_times_price(data: PolarsData) -> pl.LazyFrame:
    import polars as pl

    difference = pl.col("amount") - pl.col("quantity") * pl.col("unit_price")
    rounding = AMOUNT_TOLERANCE + pl.col("quantity").abs() * UNIT_PRICE_HALF_STEP
    return data.lazyframe.select(difference.abs() <= rounding)


def _order_ts_on_partition_day(data: PolarsData) -> pl.LazyFrame:
    import polars as pl

    return data.lazyframe.select(pl.col("order_ts").dt.date() == pl.col("partition_date"))


def _row_rule(name: str, holds: Callable[[PolarsData], pl.LazyFrame]) -> Rule:
    """A rule over whole rows (a pandera dataframe check)."""

    def build() -> pa.Check:
        import pandera.polars as pa

        return pa.Check(holds, name=name)

    return Rule(name, build)


AMOUNT_IS_QUANTITY_TIMES_PRICE = _row_rule(
    "amount_is_quantity_times_price", _amount_is_quantity_times_price
)
ORDER_TS_ON_PARTITION_DAY = _row_rule("order_ts_on_partition_day", _order_ts_on_partition_day)


def _polars_type(sql_type: str) -> type[pl.DataType]:
    """The polars type a DuckDB type's values have when DuckDB hands a batch over (DECIMAL is
    validated as DOUBLE: sql/staging/validation_frame.sql casts it)."""
    import polars as pl

    return {
        "VARCHAR": pl.String,
        "DATE": pl.Date,
        "TIMESTAMP": pl.Datetime,
        "BIGINT": pl.Int64,
        "DECIMAL": pl.Float64,
        "DOUBLE": pl.Float64,
    }[sql_type.split("(")[0]]


def pandera_schema(table: TableDef) -> pa.DataFrameSchema:
    """The pandera schema of `table`'s validated columns (in declaration order, which is the
    order rules are reported in) and its row checks. Other columns (lineage, bookkeeping) are
    ignored (`strict="filter"`); nothing is coerced: the types are DuckDB's."""
    import pandera.polars as pa

    columns = {
        c.name: pa.Column(
            _polars_type(c.sql_type),
            checks=[rule.check() for rule in c.checks],
            nullable=c.nullable,
            unique=c.unique,
        )
        for c in table.columns
        if c.validated
    }
    return pa.DataFrameSchema(
        columns,
        checks=[rule.check() for rule in table.checks],
        strict="filter",
        coerce=False,
        name=table.fqn,
    )
