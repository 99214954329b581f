"""Daily partitions that follow the data's own days, not a fixed calendar.

The partitions definition starts at the dataset's first day (found from its file names when the
definitions load), so data from 1997, 2010 or this year works without editing code. It runs up
to yesterday (so the daily schedule targets the day that just ended) or the dataset's last day,
whichever is later. Undated data (Black Friday) is one configured day.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import dagster as dg
from dagster import AssetExecutionContext

from segment_pipeline.settings import PipelineSettings
from segment_pipeline.sources import DatasetSource

PARTITION_FORMAT = "%Y-%m-%d"


def dataset_partitions(
    settings: PipelineSettings, source: DatasetSource, today: date | None = None
) -> dg.DailyPartitionsDefinition:
    """The daily partitions for `source`'s days."""
    today = today or datetime.now(UTC).date()
    days = source.transaction_days()
    start = settings.start_date or (days[0] if days else today - timedelta(days=1))
    yesterday = today - timedelta(days=1)
    last_day = max(days[-1], yesterday) if days else yesterday
    # end_offset extends the partition set past "yesterday" when the data runs into the future
    # (a generated dataset, or a timezone ahead of UTC).
    end_offset = max(0, (last_day - yesterday).days)
    return dg.DailyPartitionsDefinition(
        start_date=start.strftime(PARTITION_FORMAT), end_offset=end_offset, timezone="UTC"
    )


def window_days(context: AssetExecutionContext) -> list[date]:
    """The days of the run's partition window (one day, or a whole backfill range)."""
    window = context.partition_time_window
    start, end = window.start.date(), window.end.date()
    return [start + timedelta(days=i) for i in range((end - start).days)]
