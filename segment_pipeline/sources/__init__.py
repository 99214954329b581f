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


#: Format name -> adapter factory. Adapters for other formats register here.
SOURCE_FORMATS: dict[str, Callable[[PipelineSettings], DatasetSource]] = {
    "canonical": _canonical,
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
