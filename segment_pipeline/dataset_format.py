"""The canonical dataset format's columns (SPEC section 2, docs/sample_data.md): what the
generator writes, and the fields every source adapter yields (`sources.base`).

No imports: the generator uses these without loading the sources (and DuckDB).
"""

from __future__ import annotations

#: transactions/YYYY-MM-DD.csv (product_name and category may follow, see sources.base).
TRANSACTION_COLUMNS: tuple[str, ...] = (
    "order_id",
    "customer_id",
    "order_ts",
    "product_id",
    "quantity",
    "unit_price",
)
#: customers.csv
CUSTOMER_COLUMNS: tuple[str, ...] = (
    "customer_id",
    "gender",
    "age_band",
    "occupation",
    "marital_status",
    "city_category",
)
#: products.csv
PRODUCT_COLUMNS: tuple[str, ...] = ("product_id", "product_name", "category")
