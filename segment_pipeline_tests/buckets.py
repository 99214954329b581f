"""Running the per-customer statements in buckets on data small enough for one."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from segment_pipeline.logic import memory


@contextmanager
def forced_customer_buckets(buckets: int | None) -> Iterator[None]:
    """Within the block, every statement sized by `memory.buckets_for` runs in `buckets`
    buckets of customers, as when its input would not fit in DuckDB's memory limit (None:
    sized as usual)."""
    sized = memory.customer_buckets
    if buckets is not None:
        memory.customer_buckets = lambda rows, limit, per_row: buckets
    try:
        yield
    finally:
        memory.customer_buckets = sized
