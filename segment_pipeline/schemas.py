"""pandera models: the data contract of the staging layer (SPEC section 2).

Staging parses text in DuckDB (what cannot be parsed is quarantined there, with the reason),
then validates each day's typed rows against these models. Every row a model rejects goes to
`staging.quarantine` with the name of the check it failed, so the check names below are the
rule names users see.
"""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

AGE_BANDS: tuple[str, ...] = ("0-17", "18-25", "26-35", "36-45", "46-50", "51-55", "55+")
UNKNOWN = "Unknown"


class _TransactionLine(pa.DataFrameModel):
    line_id: Series[str] = pa.Field(nullable=False, unique=True)
    partition_date: Series[pd.Timestamp] = pa.Field(nullable=False)
    order_id: Series[str] = pa.Field(nullable=False, str_length={"min_value": 1})
    customer_id: Series[str] = pa.Field(nullable=False, str_length={"min_value": 1})
    order_ts: Series[pd.Timestamp] = pa.Field(nullable=False)
    product_id: Series[str] = pa.Field(nullable=False, str_length={"min_value": 1})
    product_name: Series[str] = pa.Field(nullable=True)
    category: Series[str] = pa.Field(nullable=True)
    quantity: Series[int] = pa.Field(nullable=False)
    unit_price: Series[float] = pa.Field(nullable=False)
    amount: Series[float] = pa.Field(nullable=False)

    @pa.check("unit_price", name="unit_price_not_negative")
    def unit_price_not_negative(cls, unit_price: Series[float]) -> Series[bool]:
        return unit_price >= 0

    @pa.dataframe_check(name="amount_is_quantity_times_price")
    def amount_is_quantity_times_price(cls, df: pd.DataFrame) -> Series[bool]:
        return (df["amount"] - df["quantity"] * df["unit_price"]).abs() <= 0.005

    @pa.dataframe_check(name="order_ts_on_partition_day")
    def order_ts_on_partition_day(cls, df: pd.DataFrame) -> Series[bool]:
        return df["order_ts"].dt.normalize() == df["partition_date"].dt.normalize()

    class Config:
        strict = "filter"  # ignore bookkeeping columns (source_file, raw_values, ...)
        coerce = False


class StagedTransaction(_TransactionLine):
    """A sale line: positive quantity."""

    @pa.check("quantity", name="quantity_positive_for_sale")
    def quantity_positive_for_sale(cls, quantity: Series[int]) -> Series[bool]:
        return quantity > 0


class ReturnLine(_TransactionLine):
    """A return or cancellation line: negative quantity."""

    @pa.check("quantity", name="quantity_negative_for_return")
    def quantity_negative_for_return(cls, quantity: Series[int]) -> Series[bool]:
        return quantity < 0


class CustomerProfile(pa.DataFrameModel):
    """One profile per customer; missing demographics are `Unknown`, not errors."""

    customer_id: Series[str] = pa.Field(nullable=False, unique=True, str_length={"min_value": 1})
    gender: Series[str] = pa.Field(isin=["M", "F", UNKNOWN])
    age_band: Series[str] = pa.Field(isin=[*AGE_BANDS, UNKNOWN])
    occupation: Series[str] = pa.Field(nullable=False, str_length={"min_value": 1})
    marital_status: Series[str] = pa.Field(isin=["0", "1", UNKNOWN])
    city_category: Series[str] = pa.Field(nullable=False, str_length={"min_value": 1})

    class Config:
        strict = "filter"
        coerce = False


class ProductRecord(pa.DataFrameModel):
    """One row per product; a product without a category is `Unknown`."""

    product_id: Series[str] = pa.Field(nullable=False, unique=True, str_length={"min_value": 1})
    product_name: Series[str] = pa.Field(nullable=False)
    category: Series[str] = pa.Field(nullable=False, str_length={"min_value": 1})

    class Config:
        strict = "filter"
        coerce = False
