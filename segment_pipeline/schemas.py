"""pandera models: the data contract of the staging layer (SPEC section 2).

Staging parses text in DuckDB (what cannot be parsed is quarantined there, with the reason),
then validates the typed rows against these models. Every row a model rejects goes to
`staging.quarantine` with the name of the check it failed, so the check names below are the
rule names users see.

The models use pandera's polars backend: DuckDB hands a batch to polars through Arrow without
copying row by row, and the checks run as vectorised polars expressions. On 745k lines that is
0.8 s against 4.2 s for the same models on pandas (docs/architecture.md, "Validation").
"""

from __future__ import annotations

import pandera.polars as pa
import polars as pl
from pandera.api.polars.model_config import BaseConfig
from pandera.api.polars.types import PolarsData

UNKNOWN = "Unknown"

#: Largest absolute difference between `amount` and `quantity * unit_price` that is rounding:
#: half a cent, plus half the last unit-price decimal per unit (a unit price derived from a
#: stated line total is rounded to 4 decimals; the stated amount stays exact).
AMOUNT_TOLERANCE = 0.005
UNIT_PRICE_HALF_STEP = 0.00005


class _FilterConfig(BaseConfig):
    strict = "filter"  # ignore bookkeeping columns (source_file, raw_values, ...)
    coerce = False


class _TransactionLine(pa.DataFrameModel):
    line_id: str = pa.Field(nullable=False, unique=True)
    partition_date: pl.Date = pa.Field(nullable=False)
    order_id: str = pa.Field(nullable=False, str_length={"min_value": 1})
    customer_id: str = pa.Field(nullable=False, str_length={"min_value": 1})
    order_ts: pl.Datetime = pa.Field(nullable=False)
    product_id: str = pa.Field(nullable=False, str_length={"min_value": 1})
    product_name: str = pa.Field(nullable=True)
    category: str = pa.Field(nullable=True)
    quantity: pl.Int64 = pa.Field(nullable=False)
    unit_price: pl.Float64 = pa.Field(nullable=False)
    amount: pl.Float64 = pa.Field(nullable=False)

    @pa.check("unit_price", name="unit_price_not_negative")
    def unit_price_not_negative(cls, data: PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col(data.key) >= 0)

    @pa.dataframe_check(name="amount_is_quantity_times_price")
    def amount_is_quantity_times_price(cls, data: PolarsData) -> pl.LazyFrame:
        difference = pl.col("amount") - pl.col("quantity") * pl.col("unit_price")
        rounding = AMOUNT_TOLERANCE + pl.col("quantity").abs() * UNIT_PRICE_HALF_STEP
        return data.lazyframe.select(difference.abs() <= rounding)

    @pa.dataframe_check(name="order_ts_on_partition_day")
    def order_ts_on_partition_day(cls, data: PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col("order_ts").dt.date() == pl.col("partition_date"))

    Config = _FilterConfig


class StagedTransaction(_TransactionLine):
    """A sale line: positive quantity."""

    @pa.check("quantity", name="quantity_positive_for_sale")
    def quantity_positive_for_sale(cls, data: PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col(data.key) > 0)


class ReturnLine(_TransactionLine):
    """A return or cancellation line: negative quantity."""

    @pa.check("quantity", name="quantity_negative_for_return")
    def quantity_negative_for_return(cls, data: PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col(data.key) < 0)


class CustomerProfile(pa.DataFrameModel):
    """One profile per customer; missing demographics are `Unknown`, not errors."""

    customer_id: str = pa.Field(nullable=False, unique=True, str_length={"min_value": 1})
    # The source's own values (its age bands, its codes): a value outside what the source
    # declares was already set to Unknown, with a quarantine note (staging.stage_master).
    gender: str = pa.Field(nullable=False, str_length={"min_value": 1})
    age_band: str = pa.Field(nullable=False, str_length={"min_value": 1})
    occupation: str = pa.Field(nullable=False, str_length={"min_value": 1})
    marital_status: str = pa.Field(nullable=False, str_length={"min_value": 1})
    city_category: str = pa.Field(nullable=False, str_length={"min_value": 1})

    Config = _FilterConfig


class ProductRecord(pa.DataFrameModel):
    """One row per product; a product without a category is `Unknown`."""

    product_id: str = pa.Field(nullable=False, unique=True, str_length={"min_value": 1})
    product_name: str = pa.Field(nullable=False)
    category: str = pa.Field(nullable=False, str_length={"min_value": 1})

    Config = _FilterConfig
