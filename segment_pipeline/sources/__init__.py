"""Dataset sources. `open_source(settings)` returns the adapter for the configured format."""

from __future__ import annotations

from collections.abc import Callable

from segment_pipeline.settings import PipelineSettings
from segment_pipeline.sources.base import (
    CUSTOMER_FIELDS,
    PRODUCT_FIELDS,
    RAW_TRANSACTION_FIELDS,
    REQUIRED_TRANSACTION_FIELDS,
    DataContractError,
    DatasetSource,
    RawQuery,
)
from segment_pipeline.sources.canonical import CanonicalSource

__all__ = [
    "CUSTOMER_FIELDS",
    "PRODUCT_FIELDS",
    "RAW_TRANSACTION_FIELDS",
    "REQUIRED_TRANSACTION_FIELDS",
    "SOURCE_FORMATS",
    "CanonicalSource",
    "DataContractError",
    "DatasetSource",
    "RawQuery",
    "open_source",
]


def _canonical(settings: PipelineSettings) -> DatasetSource:
    return CanonicalSource(settings.data_dir)


# The other adapters are imported when chosen, so a run on the sample never imports SQLAlchemy.


def _online_retail(settings: PipelineSettings) -> DatasetSource:
    from segment_pipeline.sources.online_retail import OnlineRetailSource

    return OnlineRetailSource(settings.data_dir, undated_day=settings.undated_day)


def _black_friday(settings: PipelineSettings) -> DatasetSource:
    from segment_pipeline.sources.black_friday import BlackFridaySource, load_options

    return BlackFridaySource(
        settings.data_dir,
        undated_day=settings.undated_day,
        options=load_options(settings.mapping_file),
    )


def _mapped(settings: PipelineSettings) -> DatasetSource:
    from segment_pipeline.sources.mapped import open_mapped

    return open_mapped(settings.data_dir, settings.mapping_file, settings.undated_day)


def _sql(settings: PipelineSettings) -> DatasetSource:
    # The URL (with its password) comes from the environment (or .env, which the entry points
    # load), never from settings, which are shown in the Dagster UI and on the command line.
    from segment_pipeline.sources.sql import SqlSource, SqlTables, read_sql_url

    tables = SqlTables(
        transactions=settings.sql_transactions_table,
        customers=settings.sql_customers_table,
        products=settings.sql_products_table,
    )
    return SqlSource(read_sql_url(), tables=tables, chunk_rows=settings.sql_chunk_rows)


#: Format name -> adapter factory. Adapters for other formats register here.
SOURCE_FORMATS: dict[str, Callable[[PipelineSettings], DatasetSource]] = {
    "canonical": _canonical,
    "online_retail": _online_retail,
    "black_friday": _black_friday,
    "mapped": _mapped,
    "sql": _sql,
}


def open_source(settings: PipelineSettings) -> DatasetSource:
    """The adapter for `settings.source_format`, or a clear error naming the known formats."""
    try:
        factory = SOURCE_FORMATS[settings.source_format]
    except KeyError:
        known = ", ".join(sorted(SOURCE_FORMATS))
        raise DataContractError(
            f"Unknown source format {settings.source_format!r}; known formats: {known}"
        ) from None
    return factory(settings)
